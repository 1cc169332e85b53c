//! Set-up shared by the engine's integration tests.

use std::sync::Arc;

use bgsync::testing::{FixedNetwork, OpenWindows, ScriptedHost};
use bgsync::{BackgroundSync, Origin, SwRegistrationId, Timestamp, VirtualClock};

/// An online engine on a virtual clock starting at `start_ms`, with one origin
/// (`https://a.example`) whose window is open and whose service worker registration 1 the
/// scripted host knows.
pub fn online_engine(start_ms: u64) -> (Origin, Arc<ScriptedHost>, VirtualClock, BackgroundSync) {
    let a = Origin::parse("https://a.example").unwrap();
    let host = Arc::new(ScriptedHost::new());
    host.add_registration(SwRegistrationId(1), a.clone());
    let clock = VirtualClock::new(Timestamp(start_ms));
    let sync = BackgroundSync::builder(host.clone(), Arc::new(OpenWindows::with([a.clone()])))
        .network(Arc::new(FixedNetwork(true)))
        .clock(Arc::new(clock.clone()))
        .start()
        .unwrap();
    (a, host, clock, sync)
}
