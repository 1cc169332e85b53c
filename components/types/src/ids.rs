use std::fmt;

/// Identifies a service worker registration, as the embedding engine numbers them.
///
/// Ids are never reused by the embedder: once a registration is unregistered its id stays dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SwRegistrationId(pub u64);

impl fmt::Display for SwRegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sw#{}", self.0)
    }
}

/// Identifies one API call (a `register()` or `getTags()` promise) until it settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Identifies one dispatched `sync` event until its outcome is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DispatchId(pub u64);

/// Identifies one batch of store writes until the store acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);
