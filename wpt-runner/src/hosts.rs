//! WPT's host names, as its server (wptserve) configures them by default: the browser host and
//! an alternate one, each with the same subdomains, two HTTPS and two HTTP ports. The runner
//! serves the test tree from every such origin and substitutes their names in `.sub.` files.

use url::Url;

/// The subdomains WPT's default configuration gives both hosts (`{{domains[www]}}`, …); the
/// last two are internationalized names, written in their ASCII (punycode) form in URLs.
pub(crate) const SUBDOMAINS: [&str; 5] = ["www", "www1", "www2", "天気の良い日", "élève"];

/// What the runner serves and substitutes for a base URL such as
/// `https://web-platform.test:8443/`.
#[derive(Debug, Clone)]
pub(crate) struct WptHosts {
    /// `(template, value)` pairs substituted in files with `.sub.` in their name.
    pub substitutions: Vec<(String, String)>,
    /// Every origin the test tree is served from (the base's among them), as URLs of `/`.
    pub origins: Vec<Url>,
}

/// A host name in the form URLs carry it (IDNA: punycode for non-ASCII labels).
fn ascii_host(host: &str) -> String {
    Url::parse(&format!("https://{host}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| host.to_owned())
}

/// WPT's hosts around `base`: its host is the browser host, `not-` + it the alternate host
/// (`not-web-platform.test`), the HTTPS ports are the base's and the next one, the HTTP ports
/// 8000 and 8001.
pub(crate) fn wpt_hosts(base: &Url) -> WptHosts {
    let host = base.host_str().unwrap_or("web-platform.test").to_owned();
    let alt = format!("not-{host}");
    let https = base.port_or_known_default().unwrap_or(443);
    let ports = [
        ("https", https),
        ("https", https + 1),
        ("http", 8000),
        ("http", 8001),
    ];
    let mut s: Vec<(String, String)> = vec![
        ("{{host}}".into(), host.clone()),
        ("{{domains[]}}".into(), host.clone()),
        ("{{hosts[][]}}".into(), host.clone()),
        ("{{hosts[alt][]}}".into(), alt.clone()),
        ("{{ports[https][0]}}".into(), https.to_string()),
        ("{{ports[https][1]}}".into(), (https + 1).to_string()),
        ("{{ports[http][0]}}".into(), "8000".into()),
        ("{{ports[http][1]}}".into(), "8001".into()),
        ("{{location[host]}}".into(), format!("{host}:{https}")),
        ("{{location[hostname]}}".into(), host.clone()),
        ("{{location[port]}}".into(), https.to_string()),
        ("{{location[scheme]}}".into(), "https".into()),
    ];
    let mut hosts = vec![host.clone(), alt.clone()];
    for sub in SUBDOMAINS {
        let main = ascii_host(&format!("{sub}.{host}"));
        let other = ascii_host(&format!("{sub}.{alt}"));
        s.push((format!("{{{{domains[{sub}]}}}}"), main.clone()));
        s.push((format!("{{{{hosts[][{sub}]}}}}"), main.clone()));
        s.push((format!("{{{{hosts[alt][{sub}]}}}}"), other.clone()));
        hosts.push(main);
        hosts.push(other);
    }
    let origins = hosts
        .iter()
        .flat_map(|h| {
            ports.iter().filter_map(move |(scheme, port)| {
                Url::parse(&format!("{scheme}://{h}:{port}/")).ok()
            })
        })
        .collect();
    WptHosts {
        substitutions: s,
        origins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_substitutions_follow_wpts_default_configuration() {
        let h = wpt_hosts(&Url::parse("https://web-platform.test:8443/").unwrap());
        let get = |k: &str| {
            h.substitutions
                .iter()
                .find(|(from, _)| from == k)
                .map(|(_, to)| to.as_str())
        };
        assert_eq!(get("{{host}}"), Some("web-platform.test"));
        assert_eq!(get("{{domains[www]}}"), Some("www.web-platform.test"));
        assert_eq!(get("{{domains[www2]}}"), Some("www2.web-platform.test"));
        assert_eq!(get("{{hosts[alt][]}}"), Some("not-web-platform.test"));
        assert_eq!(
            get("{{hosts[alt][www]}}"),
            Some("www.not-web-platform.test")
        );
        assert_eq!(
            get("{{domains[élève]}}"),
            Some("xn--lve-6lad.web-platform.test")
        );
        assert_eq!(
            get("{{domains[天気の良い日]}}"),
            Some("xn--n8j6ds53lwwkrqhv28a.web-platform.test")
        );
        assert_eq!(get("{{ports[https][1]}}"), Some("8444"));
        assert_eq!(get("{{ports[http][0]}}"), Some("8000"));
        // 2 hosts × (1 + 5 subdomains) × 4 ports.
        assert_eq!(h.origins.len(), 48);
        assert!(h
            .origins
            .iter()
            .any(|u| u.as_str() == "https://www1.not-web-platform.test:8444/"));
        assert!(h
            .origins
            .iter()
            .any(|u| u.as_str() == "http://web-platform.test:8000/"));
    }
}
