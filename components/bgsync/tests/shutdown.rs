//! Shutting down under load answers each call with what happened to it: a call whose change was
//! committed is answered Ok (it is there after a restart), any other is rejected (it is not).

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, VirtualClock};
use bgsync_store::RegistrationStore;
use bgsync_store_sqlite::SqliteStore;
use bgsync_types::{Origin, SwRegistrationId, Tag, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_answers_what_happened() {
    let origin = Origin::parse("https://mail.example").unwrap();
    let mut mismatches = Vec::new();
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let host = Arc::new(ScriptedHost::new());
        host.add_registration(SwRegistrationId(1), origin.clone());
        let sync = BackgroundSync::builder(host, Arc::new(OpenWindows::with([origin.clone()])))
            .network(Arc::new(FixedNetwork(false)))
            .clock(Arc::new(VirtualClock::new(Timestamp(0))))
            .data_dir(dir.path())
            .start()
            .unwrap();
        let calls: Vec<_> = (0..64)
            .map(|i| {
                let tag = format!("r{round}-{i}");
                (
                    tag.clone(),
                    sync.register_with_reply(&origin, SwRegistrationId(1), tag.as_str()),
                )
            })
            .collect();
        sync.shutdown();
        let answered_ok: Vec<Tag> = calls
            .into_iter()
            .filter(|(_, rx)| matches!(rx.recv(), Ok(Ok(()))))
            .map(|(tag, _)| Tag::from(tag.as_str()))
            .collect();
        let mut stored: Vec<Tag> = SqliteStore::open(dir.path())
            .unwrap()
            .load_all()
            .unwrap()
            .into_iter()
            .map(|r| r.tag)
            .collect();
        stored.sort();
        let mut ok = answered_ok;
        ok.sort();
        if ok != stored {
            mismatches.push(format!(
                "round {round}: {} answered Ok, {} stored",
                ok.len(),
                stored.len()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
