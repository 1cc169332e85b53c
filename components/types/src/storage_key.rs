//! Storage keys: what an engine keys a service worker registration's storage by.

use std::fmt;
use std::sync::Arc;

use crate::Origin;

/// The part of a [storage key](https://storage.spec.whatwg.org/#storage-key) beyond the origin,
/// as the engine serializes it: the top-level site when storage is partitioned (Chromium,
/// WebKit), origin attributes such as a container or a first-party domain (Gecko's
/// `^userContextId=2`), or nothing, the default, when storage is keyed by the origin alone.
///
/// Background Sync never interprets it: two registrations are in the same partition when the
/// strings are equal. An empty string is the default partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Partition(Option<Arc<str>>);

impl Partition {
    /// The partition the engine names `key` (empty: the default partition).
    pub fn new(key: &str) -> Partition {
        if key.is_empty() {
            Partition(None)
        } else {
            Partition(Some(Arc::from(key)))
        }
    }

    /// The engine's serialized partition key, empty for the default partition.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether this is the default partition (storage keyed by the origin alone).
    pub fn is_default(&self) -> bool {
        self.0.is_none()
    }
}

/// Serialized as the engine's partition key string ("" for the default partition).
#[cfg(feature = "serde")]
impl serde::Serialize for Partition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Partition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Partition, D::Error> {
        let key = String::deserialize(d)?;
        Ok(Partition::new(&key))
    }
}

impl From<&str> for Partition {
    fn from(key: &str) -> Partition {
        Partition::new(key)
    }
}

/// What a service worker registration's storage — and with it its sync registrations, their
/// quotas and what clearing site data removes — is keyed by: an origin and a [`Partition`].
///
/// An origin converts into the key of its default partition, so an engine that does not
/// partition storage passes origins wherever a storage key is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StorageKey {
    /// The origin.
    pub origin: Origin,
    /// The partition within it.
    pub partition: Partition,
}

impl StorageKey {
    /// The key of `origin`'s default partition.
    pub fn new(origin: Origin) -> StorageKey {
        StorageKey {
            origin,
            partition: Partition::default(),
        }
    }

    /// The key of `origin` in `partition`.
    pub fn partitioned(origin: Origin, partition: impl Into<Partition>) -> StorageKey {
        StorageKey {
            origin,
            partition: partition.into(),
        }
    }
}

impl From<Origin> for StorageKey {
    fn from(origin: Origin) -> StorageKey {
        StorageKey::new(origin)
    }
}

impl From<&Origin> for StorageKey {
    fn from(origin: &Origin) -> StorageKey {
        StorageKey::new(origin.clone())
    }
}

impl From<&StorageKey> for StorageKey {
    fn from(key: &StorageKey) -> StorageKey {
        key.clone()
    }
}

impl fmt::Display for StorageKey {
    /// The origin, followed by the partition in brackets when it is not the default one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partition.is_default() {
            write!(f, "{}", self.origin)
        } else {
            write!(f, "{} [{}]", self.origin, self.partition.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_the_key_of_its_default_partition() {
        let o = Origin::parse("https://a.example").unwrap();
        assert_eq!(StorageKey::from(&o), StorageKey::partitioned(o.clone(), ""));
        assert_ne!(
            StorageKey::from(&o),
            StorageKey::partitioned(o.clone(), "https://top.example")
        );
        assert_eq!(
            StorageKey::partitioned(o, "https://top.example").to_string(),
            "https://a.example [https://top.example]"
        );
    }
}
