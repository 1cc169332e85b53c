use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use url::{Host, Url};

use crate::{DomException, DomExceptionName};

/// A tuple origin (scheme, host, port) that may own sync registrations.
///
/// Built on the [`url`] crate's [`url::Origin`]. Opaque origins (`data:` URLs, sandboxed
/// documents, unparseable schemes) cannot be represented: constructing one from them fails with
/// [`OriginError::Opaque`], which callers report as a `SecurityError`. `file:` URLs, whose origin
/// the URL standard leaves to the implementation, are all treated as one origin, `file://`, because
/// the Secure Contexts spec counts them as potentially trustworthy. Clones share one allocation,
/// which also holds the origin's hash: the engine's maps are keyed by origins, and hashing one is
/// then a single word, not its scheme and host.
#[derive(Clone)]
pub struct Origin(Arc<Inner>);

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Origin").field(&self.0.repr).finish()
    }
}

struct Inner {
    repr: Repr,
    /// `repr` hashed with this process's random keys (so that no one can choose origins that
    /// collide), computed once.
    hash: u64,
}

impl Inner {
    fn new(repr: Repr) -> Arc<Inner> {
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let hash = std::hash::BuildHasher::hash_one(KEYS.get_or_init(Default::default), &repr);
        Arc::new(Inner { repr, hash })
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.repr == other.0.repr)
    }
}

impl Eq for Origin {}

impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Repr {
    Tuple(url::Origin),
    File,
}

/// Why a string or URL did not give a usable origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// The input is not a URL.
    #[error("`{input}` is not a valid URL ({reason}); pass a URL such as https://example.com")]
    Invalid {
        /// What was given.
        input: String,
        /// The URL parser's complaint.
        reason: String,
    },
    /// The URL has an opaque origin, which cannot own sync registrations.
    #[error("`{input}` has an opaque origin; Background Sync needs a tuple origin such as https://example.com")]
    Opaque {
        /// What was given.
        input: String,
    },
}

impl From<OriginError> for DomException {
    fn from(e: OriginError) -> Self {
        DomException::new(DomExceptionName::SecurityError, e.to_string())
    }
}

impl Origin {
    /// Whether `other` is this very allocation (a clone of it), not merely an equal origin.
    pub fn same_allocation(&self, other: &Origin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The address of the allocation, for a cache keyed by it (which must keep a clone, so
    /// that the address is not reused while it is a key).
    pub fn allocation_address(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// An equal origin in an allocation of its own, which no other clone shares: for a thread
    /// that keeps many clones of an origin its callers also clone, so that the two do not
    /// change counts on one allocation (each such change moves it between CPUs' caches).
    pub fn unshared(&self) -> Origin {
        Origin(Arc::new(Inner {
            repr: self.0.repr.clone(),
            hash: self.0.hash,
        }))
    }

    /// The origin of a URL string (a bare origin such as `https://a.example:8443` works too).
    pub fn parse(input: &str) -> Result<Origin, OriginError> {
        let url = Url::parse(input).map_err(|e| OriginError::Invalid {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        Origin::from_url(&url)
    }

    /// The origin of `url`.
    pub fn from_url(url: &Url) -> Result<Origin, OriginError> {
        if url.scheme() == "file" {
            return Ok(Origin(Inner::new(Repr::File)));
        }
        match url.origin() {
            o @ url::Origin::Tuple(..) => Ok(Origin(Inner::new(Repr::Tuple(o)))),
            url::Origin::Opaque(_) => Err(OriginError::Opaque {
                input: url.as_str().to_owned(),
            }),
        }
    }

    /// The ASCII serialization of the origin (`https://example.com`, `http://localhost:8000`).
    pub fn serialize(&self) -> String {
        match &self.0.repr {
            Repr::Tuple(o) => o.ascii_serialization(),
            Repr::File => "file://".to_owned(),
        }
    }

    /// [Is origin potentially trustworthy?](https://w3c.github.io/webappsec-secure-contexts/#is-origin-trustworthy)
    ///
    /// True for `https`, `wss` and `file`, for the loopback hosts 127.0.0.0/8 and `::1`, and for
    /// `localhost` and names under `.localhost`.
    pub fn is_potentially_trustworthy(&self) -> bool {
        let (scheme, host) = match &self.0.repr {
            Repr::File => return true,
            Repr::Tuple(url::Origin::Tuple(scheme, host, _)) => (scheme.as_str(), host),
            Repr::Tuple(url::Origin::Opaque(_)) => return false,
        };
        // Step 3: https or wss.
        if scheme == "https" || scheme == "wss" {
            return true;
        }
        // Steps 4-5: loopback addresses and localhost names.
        match host {
            Host::Ipv4(a) => Ipv4Addr::is_loopback(a),
            Host::Ipv6(a) => *a == Ipv6Addr::LOCALHOST,
            Host::Domain(d) => {
                let d = d.trim_end_matches('.');
                d == "localhost" || d.ends_with(".localhost")
            }
        }
    }

    /// Refuses origins that may not use the API with a `SecurityError` that says why.
    pub fn require_potentially_trustworthy(&self) -> Result<(), DomException> {
        if self.is_potentially_trustworthy() {
            Ok(())
        } else {
            Err(DomException::new(
                DomExceptionName::SecurityError,
                format!(
                    "Background Sync is only available in secure contexts; {} is not potentially \
                     trustworthy (serve the page over https, or from localhost)",
                    self.serialize()
                ),
            ))
        }
    }

    /// The loopback IP address of the origin's host, if it has one (used by tests and docs).
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.0.repr {
            Repr::Tuple(url::Origin::Tuple(_, Host::Ipv4(a), _)) => Some(IpAddr::V4(*a)),
            Repr::Tuple(url::Origin::Tuple(_, Host::Ipv6(a), _)) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialize())
    }
}

/// An origin as its ASCII serialization (`"https://mail.example"`), parsed back on reading.
#[cfg(feature = "serde")]
impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.serialize())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trustworthy(s: &str) -> bool {
        Origin::parse(s).unwrap().is_potentially_trustworthy()
    }

    #[test]
    fn secure_schemes_and_loopback_are_trustworthy() {
        assert!(trustworthy("https://example.com/app/"));
        assert!(trustworthy("wss://example.com"));
        assert!(trustworthy("http://localhost:8000"));
        assert!(trustworthy("http://mail.localhost"));
        assert!(trustworthy("http://127.0.0.1"));
        assert!(trustworthy("http://127.255.0.9:81"));
        assert!(trustworthy("http://[::1]:8080"));
        assert!(trustworthy("file:///home/me/index.html"));
    }

    #[test]
    fn plain_http_is_not_trustworthy() {
        assert!(!trustworthy("http://example.com"));
        assert!(!trustworthy("http://128.0.0.1"));
        assert!(!trustworthy("http://localhost.example.com"));
        assert!(!trustworthy("ws://example.com"));
        let err = Origin::parse("http://example.com")
            .unwrap()
            .require_potentially_trustworthy()
            .unwrap_err();
        assert_eq!(err.name, DomExceptionName::SecurityError);
        assert!(
            err.message.contains("http://example.com"),
            "{}",
            err.message
        );
    }

    #[test]
    fn opaque_origins_are_refused_with_security_error() {
        let err = Origin::parse("data:text/html,hi").unwrap_err();
        assert!(matches!(err, OriginError::Opaque { .. }));
        assert_eq!(
            DomException::from(err).name,
            DomExceptionName::SecurityError
        );
        assert!(matches!(
            Origin::parse("not a url"),
            Err(OriginError::Invalid { .. })
        ));
    }

    #[test]
    fn origin_ignores_path_and_normalises_default_port() {
        let a = Origin::parse("https://example.com:443/a?b").unwrap();
        let b = Origin::parse("https://EXAMPLE.com/c").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.serialize(), "https://example.com");
        assert_ne!(a, Origin::parse("https://example.com:8443").unwrap());
        assert_eq!(
            Origin::parse("http://127.0.0.1").unwrap().ip(),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
