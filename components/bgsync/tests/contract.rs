//! The facade's one contract, for both APIs: a call is queued when it is made (an async call
//! too, before its future is polled); after shutdown every call that answers fails alike; and
//! dropping the last handle closes the profile, so it can be opened again at once.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, DomExceptionName, Origin, SwRegistrationId, Tag};

fn engine(dir: Option<&std::path::Path>) -> BackgroundSync {
    let origin = Origin::parse("https://mail.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), origin.clone());
    let b = BackgroundSync::builder(host, Arc::new(OpenWindows::with([origin])))
        .network(Arc::new(FixedNetwork(false)));
    match dir {
        Some(d) => b.data_dir(d),
        None => b,
    }
    .start()
    .unwrap()
}

fn origin() -> Origin {
    Origin::parse("https://mail.example").unwrap()
}

#[tokio::test]
async fn an_async_call_is_queued_when_it_is_made() {
    let sync = engine(None);
    // Made, never polled.
    let unpolled = sync.register(&origin(), SwRegistrationId(1), "sent-at-once");
    sync.settle().await;
    assert_eq!(
        sync.get_tags(&origin(), SwRegistrationId(1)).await.unwrap(),
        [Tag::from("sent-at-once")]
    );
    drop(unpolled);
}

#[tokio::test]
async fn after_shutdown_every_call_fails_alike() {
    let sync = engine(None);
    sync.shutdown();
    let shut = |e: bgsync::DomException| {
        assert_eq!(e.name, DomExceptionName::UnknownError, "{e:?}");
        assert!(e.message.contains("shut down"), "{}", e.message);
    };
    shut(
        sync.register(&origin(), SwRegistrationId(1), "x")
            .await
            .unwrap_err(),
    );
    shut(
        sync.register_with_reply(origin(), SwRegistrationId(1), "x")
            .recv()
            .expect("the channel API answers too")
            .unwrap_err(),
    );
    shut(
        sync.get_tags(&origin(), SwRegistrationId(1))
            .await
            .unwrap_err(),
    );
    shut(
        sync.get_tags_with_reply(origin(), SwRegistrationId(1))
            .recv()
            .expect("answered")
            .unwrap_err(),
    );
    shut(sync.clear_origin(&origin()).await.unwrap_err());
    shut(sync.log().await.unwrap_err());
    shut(sync.next_wake_up().await.unwrap_err());
    shut(sync.recoveries().await.unwrap_err());
    shut(sync.status_blocking().unwrap_err());
    // Nothing left to wait for.
    sync.settle().await;
}

#[test]
fn dropping_the_last_handle_closes_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let sync = engine(Some(dir.path()));
    let other = sync.clone();
    sync.register_with_reply(origin(), SwRegistrationId(1), "kept")
        .recv()
        .unwrap()
        .unwrap();
    drop(sync);
    drop(other);
    // At once: no "already in use".
    let again = engine(Some(dir.path()));
    assert_eq!(again.start_report().restored, 1);
}
