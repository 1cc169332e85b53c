//! The arrows an engine team draws: the core (types, the store's trait, the scheduler, the
//! dispatcher) and the binding crate link no SQLite, no tokio and not the facade, and the facade
//! builds without SQLite when its `sqlite` feature is off (`cargo tree` is the check).

use std::process::Command;

fn tree(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn crates(tree: &str) -> Vec<String> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_core_and_the_binding_link_no_sqlite_tokio_or_facade() {
    for core in [
        "bgsync-types",
        "bgsync-store",
        "bgsync-scheduler",
        "bgsync-dispatcher",
        "bgsync-idl",
    ] {
        let deps = crates(&tree(&["-p", core]));
        for forbidden in [
            "rusqlite",
            "libsqlite3-sys",
            "tokio",
            "bgsync",
            "bgsync-store-sqlite",
        ] {
            assert!(
                !deps.iter().any(|d| d == forbidden),
                "{core} depends on {forbidden}: {deps:?}"
            );
        }
    }
}

#[test]
fn the_facade_builds_without_sqlite() {
    let deps = crates(&tree(&["-p", "bgsync", "--no-default-features"]));
    assert!(deps.iter().any(|d| d == "tokio"));
    for forbidden in ["rusqlite", "libsqlite3-sys", "bgsync-store-sqlite"] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "{forbidden}: {deps:?}"
        );
    }
    let with = crates(&tree(&["-p", "bgsync"]));
    assert!(
        with.iter().any(|d| d == "rusqlite"),
        "the default has SQLite"
    );
}
