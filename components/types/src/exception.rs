use std::fmt;

/// The names of the DOMExceptions this component rejects with.
///
/// See the [WebIDL error names table](https://webidl.spec.whatwg.org/#idl-DOMException-error-names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DomExceptionName {
    /// The object is in an invalid state (e.g. no active service worker).
    InvalidStateError,
    /// The object does not support the operation or argument (no window client, tag too long).
    InvalidAccessError,
    /// The request is not allowed by the user agent or the platform (permission denied).
    NotAllowedError,
    /// The operation is insecure (insecure or opaque origin, another origin's registration).
    SecurityError,
    /// The quota has been exceeded (per-origin registration cap).
    QuotaExceededError,
    /// The operation failed for an unknown transient reason (e.g. storage failure).
    UnknownError,
}

impl DomExceptionName {
    /// The name as script sees it in `exception.name`.
    pub fn as_str(self) -> &'static str {
        match self {
            DomExceptionName::InvalidStateError => "InvalidStateError",
            DomExceptionName::InvalidAccessError => "InvalidAccessError",
            DomExceptionName::NotAllowedError => "NotAllowedError",
            DomExceptionName::SecurityError => "SecurityError",
            DomExceptionName::QuotaExceededError => "QuotaExceededError",
            DomExceptionName::UnknownError => "UnknownError",
        }
    }

    /// The legacy `code` of the name, 0 for names that have none.
    pub fn legacy_code(self) -> u16 {
        match self {
            DomExceptionName::InvalidStateError => 11,
            DomExceptionName::InvalidAccessError => 15,
            DomExceptionName::SecurityError => 18,
            DomExceptionName::QuotaExceededError => 22,
            DomExceptionName::NotAllowedError | DomExceptionName::UnknownError => 0,
        }
    }
}

impl fmt::Display for DomExceptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DOMException as a promise would be rejected with: a name and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DomException {
    /// The exception's name.
    pub name: DomExceptionName,
    /// What went wrong, in words a web developer can act on.
    pub message: String,
}

impl DomException {
    /// An exception with this name and message.
    pub fn new(name: DomExceptionName, message: impl Into<String>) -> Self {
        DomException {
            name,
            message: message.into(),
        }
    }
}

impl fmt::Display for DomException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for DomException {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_codes_match_webidl() {
        assert_eq!(DomExceptionName::InvalidStateError.legacy_code(), 11);
        assert_eq!(DomExceptionName::InvalidAccessError.legacy_code(), 15);
        assert_eq!(DomExceptionName::SecurityError.legacy_code(), 18);
        assert_eq!(DomExceptionName::QuotaExceededError.legacy_code(), 22);
        assert_eq!(DomExceptionName::NotAllowedError.legacy_code(), 0);
    }

    #[test]
    fn display_reads_like_script_sees_it() {
        let e = DomException::new(DomExceptionName::NotAllowedError, "Permission denied.");
        assert_eq!(e.to_string(), "NotAllowedError: Permission denied.");
    }
}
