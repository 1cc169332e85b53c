//! The Background Sync WebIDL and the binding semantics an engine's bindings need, with no JS
//! engine attached.
//!
//! - [`BACKGROUND_SYNC_WEBIDL`]: the IDL fragments of the spec, for the engine's bindings
//!   generator.
//! - [`SyncEventInit`] and [`SyncEvent`]: the dictionary's required and defaulted members, and the
//!   event the engine creates for each dispatch.
//!
//! ```
//! use bgsync_idl::{SyncEvent, SyncEventInit};
//! use bgsync_types::Tag;
//!
//! // new SyncEvent('sync', {tag: 'send-mail'})
//! let init = SyncEventInit::from_members(Some(Tag::from("send-mail")), None).unwrap();
//! let event = SyncEvent::new("sync", init);
//! assert!(!event.last_chance);
//! // new SyncEvent('sync', {}) throws a TypeError.
//! assert!(SyncEventInit::from_members(None, Some(true)).is_err());
//! ```

mod dom_string;
mod errors;
mod extendable;

pub use dom_string::{number_to_string, to_dom_string, IdlValue};
pub use errors::{
    exception_for_engine_error, illegal_constructor, illegal_invocation, missing_arguments,
    BindingError,
};
pub use extendable::{EventOutcome, ExtendableEventLifetime};

use bgsync_dispatcher::SyncEventDispatch;
use bgsync_types::Tag;

/// The spec's IDL for one-shot Background Sync: `ServiceWorkerRegistration.sync`, `SyncManager`,
/// `onsync`, `SyncEvent` and `SyncEventInit`.
pub const BACKGROUND_SYNC_WEBIDL: &str = include_str!("../webidl/background-sync.webidl");

/// The spec's IDL for Periodic Background Sync: `ServiceWorkerRegistration.periodicSync`,
/// `PeriodicSyncManager`, `BackgroundSyncOptions`, `onperiodicsync`, `PeriodicSyncEvent` and
/// `PeriodicSyncEventInit`.
pub const PERIODIC_BACKGROUND_SYNC_WEBIDL: &str =
    include_str!("../webidl/periodic-background-sync.webidl");

/// A WebIDL conversion failure: script sees a `TypeError` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TypeError: {0}")]
pub struct TypeError(pub String);

/// The `SyncEventInit` dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEventInit {
    /// `tag` (required).
    pub tag: Tag,
    /// `lastChance` (default false).
    pub last_chance: bool,
}

impl SyncEventInit {
    /// Builds the dictionary from its members as converted from script (`None` when a member is
    /// absent or undefined): a missing `tag` is a `TypeError`, a missing `lastChance` is false.
    pub fn from_members(tag: Option<Tag>, last_chance: Option<bool>) -> Result<Self, TypeError> {
        let tag = tag.ok_or_else(|| {
            TypeError(
                "Failed to construct 'SyncEvent': required member tag is undefined.".to_owned(),
            )
        })?;
        Ok(SyncEventInit {
            tag,
            last_chance: last_chance.unwrap_or(false),
        })
    }
}

/// A `SyncEvent`'s own attributes (the `ExtendableEvent` part is the engine's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEvent {
    /// `Event.type`.
    pub event_type: String,
    /// `SyncEvent.tag`.
    pub tag: Tag,
    /// `SyncEvent.lastChance`.
    pub last_chance: bool,
}

impl SyncEvent {
    /// `new SyncEvent(type, init)`.
    pub fn new(event_type: &str, init: SyncEventInit) -> Self {
        SyncEvent {
            event_type: event_type.to_owned(),
            tag: init.tag,
            last_chance: init.last_chance,
        }
    }

    /// The `sync` event the engine fires for a dispatch.
    pub fn for_dispatch(dispatch: &SyncEventDispatch) -> Self {
        SyncEvent {
            event_type: "sync".to_owned(),
            tag: dispatch.tag.clone(),
            last_chance: dispatch.last_chance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgsync_types::{DispatchId, Origin, SwRegistrationId};

    #[test]
    fn the_periodic_idl_declares_every_member_of_the_spec() {
        let idl = PERIODIC_BACKGROUND_SYNC_WEBIDL;
        for needle in [
            "attribute EventHandler onperiodicsync;",
            "readonly attribute PeriodicSyncManager periodicSync;",
            "[Exposed=(Window,Worker), SecureContext]\ninterface PeriodicSyncManager {",
            "Promise<undefined> register(DOMString tag, optional BackgroundSyncOptions options = {});",
            "Promise<sequence<DOMString>> getTags();",
            "Promise<undefined> unregister(DOMString tag);",
            "[EnforceRange] unsigned long long minInterval = 0;",
            "dictionary PeriodicSyncEventInit : ExtendableEventInit {",
            "[Exposed=ServiceWorker]\ninterface PeriodicSyncEvent : ExtendableEvent {",
            "constructor(DOMString type, PeriodicSyncEventInit init);",
        ] {
            assert!(idl.contains(needle), "missing {needle:?}");
        }
        assert_eq!(
            idl.matches('{').count() - 1,
            idl.matches("};").count(),
            "`= {{}}` opens none"
        );
    }

    #[test]
    fn the_idl_declares_every_member_of_the_spec() {
        let idl = BACKGROUND_SYNC_WEBIDL;
        for needle in [
            "readonly attribute SyncManager sync;",
            "[Exposed=(Window,Worker), SecureContext]\ninterface SyncManager {",
            "Promise<undefined> register(DOMString tag);",
            "Promise<sequence<DOMString>> getTags();",
            "attribute EventHandler onsync;",
            "[Exposed=ServiceWorker]\ninterface SyncEvent : ExtendableEvent {",
            "constructor(DOMString type, SyncEventInit init);",
            "readonly attribute DOMString tag;",
            "readonly attribute boolean lastChance;",
            "dictionary SyncEventInit : ExtendableEventInit {",
            "required DOMString tag;",
            "boolean lastChance = false;",
        ] {
            assert!(idl.contains(needle), "missing {needle:?}");
        }
        // Every definition is closed.
        assert_eq!(idl.matches('{').count(), idl.matches("};").count());
    }

    #[test]
    fn sync_event_init_requires_tag_and_defaults_last_chance() {
        let init = SyncEventInit::from_members(Some(Tag::from("")), None).unwrap();
        assert_eq!(init.tag, Tag::from(""));
        assert!(!init.last_chance);
        let err = SyncEventInit::from_members(None, None).unwrap_err();
        assert!(err.to_string().starts_with("TypeError:"), "{err}");
    }

    #[test]
    fn the_dispatched_event_carries_tag_and_last_chance() {
        let e = SyncEvent::for_dispatch(&SyncEventDispatch {
            id: DispatchId(1),
            sw: SwRegistrationId(1),
            origin: Origin::parse("https://a.example").unwrap(),
            tag: Tag::from_utf16(vec![0xD800]),
            last_chance: true,
            kind: bgsync_types::SyncKind::OneShot,
        });
        assert_eq!(e.event_type, "sync");
        assert_eq!(e.tag, Tag::from_utf16(vec![0xD800]));
        assert!(e.last_chance);
    }
}
