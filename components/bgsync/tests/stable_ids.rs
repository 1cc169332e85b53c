//! Engines whose service worker registration ids last one session ask the engine for stable
//! ones, by storage key and scope: the same across restarts, a new one for a new pair.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, Origin, Tag};

/// As an engine whose service-worker registry loads after Background Sync starts.
fn start(dir: &std::path::Path, host: Arc<ScriptedHost>, origin: &Origin) -> BackgroundSync {
    BackgroundSync::builder(host, Arc::new(OpenWindows::with([origin.clone()])))
        .network(Arc::new(FixedNetwork(false)))
        .data_dir(dir)
        .registry_loading()
        .start()
        .unwrap()
}

#[tokio::test]
async fn a_scope_keeps_its_id_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::parse("https://mail.example").unwrap();
    let key = bgsync::StorageKey::new(origin.clone());
    let host = Arc::new(ScriptedHost::new());
    let sync = start(dir.path(), host.clone(), &origin);
    let app = sync
        .service_worker_id(&key, "https://mail.example/app/")
        .await
        .unwrap();
    let again = sync
        .service_worker_id(&key, "https://mail.example/app/")
        .await
        .unwrap();
    let other = sync
        .service_worker_id(&key, "https://mail.example/other/")
        .await
        .unwrap();
    assert_eq!(app, again);
    assert_ne!(app, other);
    assert!(app.0 >= 1 << 32, "keyed ids stay clear of an engine's own");
    host.add_registration(app, origin.clone());
    sync.registry_loaded();
    sync.register(&origin, app, "send-mail").await.unwrap();
    sync.shutdown();

    // A new session: the engine has forgotten its ids, the store has not.
    let host = Arc::new(ScriptedHost::new());
    let sync = start(dir.path(), host.clone(), &origin);
    let after = sync
        .service_worker_id(&key, "https://mail.example/app/")
        .await
        .unwrap();
    assert_eq!(after, app);
    let fresh = sync
        .service_worker_id(&key, "https://mail.example/new/")
        .await
        .unwrap();
    assert!(
        fresh != app && fresh != other,
        "a new pair gets an id of its own"
    );
    host.add_registration(after, origin.clone());
    sync.registry_loaded();
    assert_eq!(
        sync.get_tags(&origin, after).await.unwrap(),
        [Tag::from("send-mail")]
    );
}
