//! Finding tests and their variants, as WPT names them.

use std::path::{Path, PathBuf};

/// The kind of global a variant runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.any.html`, `.window.html`.
    Window,
    /// `.any.worker.html`, `.worker.html`.
    DedicatedWorker,
    /// `.any.serviceworker.html`.
    ServiceWorker,
}

/// The `// META:` lines of a test file.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `script=` values, in order.
    pub scripts: Vec<String>,
    /// `timeout=long`.
    pub long: bool,
    /// `title=`.
    pub title: Option<String>,
    /// `variant=` values (each a `?query` or `#fragment`).
    pub variants: Vec<String>,
    /// `global=` values, comma-separated, as given.
    pub globals: Option<Vec<String>>,
}

/// One runnable (or skipped) test: a file in one global with one variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The wpt.fyi test id, e.g. `/background-sync/idlharness.https.any.worker.html`.
    pub id: String,
    /// Its URL path, e.g. `/background-sync/idlharness.https.any.js`.
    pub url_path: String,
    /// The global.
    pub kind: Kind,
    /// The `?query` or `#fragment` of the variant, or empty.
    pub query: String,
    /// The file's META.
    pub meta: Meta,
    /// Why it cannot run here, if it cannot.
    pub skip: Option<String>,
}

/// Parses the `// META: key=value` header of a JS test file.
pub fn parse_meta(source: &str) -> Meta {
    let mut meta = Meta::default();
    for line in source.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("//") else {
            if line.is_empty() {
                continue;
            }
            break;
        };
        let Some(rest) = rest.trim().strip_prefix("META:") else {
            continue;
        };
        let Some((key, value)) = rest.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "script" => meta.scripts.push(value),
            "timeout" => meta.long = value == "long",
            "title" => meta.title = Some(value),
            "variant" => meta.variants.push(value),
            "global" => {
                meta.globals = Some(value.split(',').map(|g| g.trim().to_owned()).collect())
            }
            _ => {}
        }
    }
    meta
}

/// Every test variant under `paths` (files or directories), with URL paths relative to `root`.
pub fn discover(root: &Path, paths: &[PathBuf]) -> Result<Vec<Variant>, String> {
    let mut files = Vec::new();
    for p in paths {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir().map_err(|e| e.to_string())?.join(p)
        };
        let p = p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        collect(&p, &mut files)?;
    }
    files.sort();
    files.dedup();
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&root).map_err(|_| {
            format!(
                "{} is not under the test root {}",
                file.display(),
                root.display()
            )
        })?;
        let url_path = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        variants_of(&file, &url_path, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_dir() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if matches!(
            name.as_str(),
            "resources" | "support" | "tools" | "common" | ".git"
        ) {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else if is_test(path) {
        out.push(path.to_owned());
    }
    Ok(())
}

fn is_test(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.ends_with(".any.js")
        || name.ends_with(".window.js")
        || name.ends_with(".worker.js")
        || ((name.ends_with(".html") || name.ends_with(".htm")) && !name.starts_with('_'))
}

fn variants_of(file: &Path, url_path: &str, out: &mut Vec<Variant>) -> Result<(), String> {
    let name = url_path.rsplit('/').next().unwrap_or("");
    let base = Variant {
        id: String::new(),
        url_path: url_path.to_owned(),
        kind: Kind::Window,
        query: String::new(),
        meta: Meta::default(),
        skip: None,
    };
    if name.ends_with(".html") || name.ends_with(".htm") {
        let crash = url_path.contains("/crashtests/") || name.contains("-crash.");
        out.push(Variant {
            id: url_path.to_owned(),
            skip: Some(if crash {
                "a crash test needs a DOM (documents, iframes), which this runner does not have"
                    .to_owned()
            } else {
                "an HTML test needs a DOM, which this runner does not have".to_owned()
            }),
            ..base
        });
        return Ok(());
    }
    let source = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let meta = parse_meta(&source);
    let stem = url_path.strip_suffix(".js").unwrap_or(url_path);
    let mut kinds: Vec<(Kind, String, Option<String>)> = Vec::new();
    if let Some(any) = stem.strip_suffix(".any") {
        let globals = meta
            .globals
            .clone()
            .unwrap_or_else(|| vec!["window".into(), "dedicatedworker".into()]);
        let mut expanded = Vec::new();
        for g in globals {
            match g.as_str() {
                "worker" => expanded
                    .extend(["dedicatedworker", "sharedworker", "serviceworker"].map(String::from)),
                _ => expanded.push(g),
            }
        }
        expanded.dedup();
        for g in expanded {
            match g.as_str() {
                "window" => kinds.push((Kind::Window, format!("{any}.any.html"), None)),
                "dedicatedworker" => kinds.push((
                    Kind::DedicatedWorker,
                    format!("{any}.any.worker.html"),
                    None,
                )),
                "serviceworker" => kinds.push((
                    Kind::ServiceWorker,
                    format!("{any}.any.serviceworker.html"),
                    None,
                )),
                "sharedworker" => kinds.push((
                    Kind::DedicatedWorker,
                    format!("{any}.any.sharedworker.html"),
                    Some("shared workers are not supported by this runner".into()),
                )),
                "shadowrealm" | "shadowrealm-in-window" => kinds.push((
                    Kind::Window,
                    format!("{any}.any.{g}.html"),
                    Some("ShadowRealm is not supported by this runner".into()),
                )),
                "jsshell" => {}
                other => {
                    return Err(format!(
                        "{url_path}: unknown global {other} in META: global="
                    ))
                }
            }
        }
    } else if let Some(w) = stem.strip_suffix(".window") {
        kinds.push((Kind::Window, format!("{w}.window.html"), None));
    } else if let Some(w) = stem.strip_suffix(".worker") {
        kinds.push((Kind::DedicatedWorker, format!("{w}.worker.html"), None));
    }
    let queries = if meta.variants.is_empty() {
        vec![String::new()]
    } else {
        meta.variants.clone()
    };
    for (kind, id, skip) in kinds {
        for q in &queries {
            out.push(Variant {
                id: format!("{id}{q}"),
                kind,
                query: q.clone(),
                meta: meta.clone(),
                skip: skip.clone(),
                ..base.clone()
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_lines_are_read_until_the_code_starts() {
        let m = parse_meta("// META: script=/resources/WebIDLParser.js\n// META: script=helpers.js\n// META: timeout=long\n// META: global=window,serviceworker\n// META: variant=?a\n// META: variant=?b\n\n'use strict';\n// META: script=ignored.js\n");
        assert_eq!(m.scripts, ["/resources/WebIDLParser.js", "helpers.js"]);
        assert!(m.long);
        assert_eq!(m.globals.unwrap(), ["window", "serviceworker"]);
        assert_eq!(m.variants, ["?a", "?b"]);
    }

    #[test]
    fn any_files_expand_to_wpt_ids() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("background-sync");
        std::fs::create_dir_all(d.join("crashtests")).unwrap();
        std::fs::create_dir_all(d.join("resources")).unwrap();
        std::fs::write(d.join("idlharness.https.any.js"), "// META: timeout=long\n").unwrap();
        std::fs::write(
            d.join("sw.https.any.js"),
            "// META: global=serviceworker\n// META: variant=?x\n",
        )
        .unwrap();
        std::fs::write(d.join("page.https.window.js"), "").unwrap();
        std::fs::write(d.join("crashtests/detached.https.html"), "").unwrap();
        std::fs::write(d.join("resources/helper.js"), "").unwrap();
        let v = discover(dir.path(), &[dir.path().to_owned()]).unwrap();
        let ids: Vec<(&str, bool)> = v
            .iter()
            .map(|v| (v.id.as_str(), v.skip.is_some()))
            .collect();
        assert_eq!(
            ids,
            [
                ("/background-sync/crashtests/detached.https.html", true),
                ("/background-sync/idlharness.https.any.html", false),
                ("/background-sync/idlharness.https.any.worker.html", false),
                ("/background-sync/page.https.window.html", false),
                ("/background-sync/sw.https.any.serviceworker.html?x", false),
            ]
        );
    }
}
