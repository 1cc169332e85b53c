//! Periodic Background Sync through the engine: the embedder's permission and engagement, the
//! `periodicsync` event the host receives, and registrations kept across a restart in SQLite
//! with their schedule (and removed at start-up if the permission was revoked meanwhile).

use std::sync::Arc;
use std::time::Duration;

use bgsync::testing::{EngagementTable, FixedNetwork, OpenWindows, PermissionTable, ScriptedHost};
use bgsync::{
    BackgroundSync, DomExceptionName, Engagement, Origin, PermissionState, SwRegistrationId,
    SyncKind, Timestamp, VirtualClock,
};

const H: u64 = 60 * 60 * 1000;

struct Setup {
    a: Origin,
    host: Arc<ScriptedHost>,
    clock: VirtualClock,
    permissions: Arc<PermissionTable>,
    engagement: Arc<EngagementTable>,
}

fn setup() -> Setup {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    Setup {
        a,
        host,
        clock: VirtualClock::new(Timestamp(0)),
        permissions: Arc::new(PermissionTable::default()),
        engagement: Arc::new(EngagementTable::default()),
    }
}

fn start(s: &Setup, dir: &std::path::Path) -> BackgroundSync {
    BackgroundSync::builder(s.host.clone(), Arc::new(OpenWindows::with([s.a.clone()])))
        .network(Arc::new(FixedNetwork(true)))
        .clock(Arc::new(s.clock.clone()))
        .permissions(s.permissions.clone())
        .engagement(s.engagement.clone())
        .data_dir(dir)
        .start()
        .unwrap()
}

fn periodic_fired(host: &ScriptedHost) -> usize {
    host.fired()
        .iter()
        .filter(|e| e.kind == SyncKind::Periodic)
        .count()
}

#[test]
fn the_permission_is_denied_until_granted_then_events_come_at_the_interval() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let sync = start(&s, dir.path());
    let refused = sync
        .periodic_register_with_reply(&s.a, SwRegistrationId(1), "news", Duration::ZERO)
        .recv()
        .unwrap();
    assert_eq!(refused.unwrap_err().name, DomExceptionName::NotAllowedError);
    s.permissions.set_periodic(&s.a, PermissionState::Granted);
    sync.periodic_permission_changed(&s.a, PermissionState::Granted);
    sync.periodic_register_with_reply(&s.a, SwRegistrationId(1), "news", Duration::ZERO)
        .recv()
        .unwrap()
        .unwrap();
    s.clock.set(Timestamp(12 * H - 1));
    sync.settle_blocking();
    assert_eq!(periodic_fired(&s.host), 0);
    s.clock.set(Timestamp(12 * H));
    sync.settle_blocking();
    let fired = s.host.fired();
    assert_eq!(periodic_fired(&s.host), 1);
    assert!(!fired[0].last_chance);
    // Low engagement: the next interval snaps to 24 h.
    s.engagement.set(&s.a, Engagement::Low);
    sync.engagement_changed(&s.a, Engagement::Low);
    sync.settle_blocking();
    s.clock.set(Timestamp(24 * H));
    sync.settle_blocking();
    assert_eq!(periodic_fired(&s.host), 1, "not at 12 h more");
    s.clock.set(Timestamp(36 * H));
    sync.settle_blocking();
    assert_eq!(periodic_fired(&s.host), 2, "at 24 h more");
    sync.shutdown();
}

#[test]
fn registrations_survive_a_restart_and_go_if_the_permission_was_revoked_meanwhile() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    s.permissions.set_periodic(&s.a, PermissionState::Granted);
    let sync = start(&s, dir.path());
    sync.periodic_register_with_reply(
        &s.a,
        SwRegistrationId(1),
        "kept",
        Duration::from_millis(13 * H),
    )
    .recv()
    .unwrap()
    .unwrap();
    s.clock.set(Timestamp(5 * H));
    sync.settle_blocking();
    sync.shutdown();

    let sync = start(&s, dir.path());
    let (tx, rx) = crossbeam_channel::bounded(1);
    sync.periodic_get_tags_then(&s.a, SwRegistrationId(1), move |r| {
        let _ = tx.send(r);
    });
    assert_eq!(rx.recv().unwrap().unwrap(), [bgsync::Tag::from("kept")]);
    s.clock.set(Timestamp(24 * H - 1));
    sync.settle_blocking();
    assert_eq!(
        periodic_fired(&s.host),
        0,
        "the schedule is kept: 24 h from registration"
    );
    s.clock.set(Timestamp(24 * H));
    sync.settle_blocking();
    assert_eq!(periodic_fired(&s.host), 1);
    sync.shutdown();

    s.permissions.set_periodic(&s.a, PermissionState::Denied);
    let sync = start(&s, dir.path());
    let (tx, rx) = crossbeam_channel::bounded(1);
    sync.periodic_get_tags_then(&s.a, SwRegistrationId(1), move |r| {
        let _ = tx.send(r);
    });
    assert!(
        rx.recv().unwrap().unwrap().is_empty(),
        "revoked while stopped: removed at start-up"
    );
    sync.shutdown();
}
