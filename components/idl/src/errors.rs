//! The exceptions a binding throws, in WebIDL's terms.

use std::fmt;

use bgsync_types::DomException;

/// An exception for script: a `TypeError` (IDL conversion, arguments, brand checks) or a
/// `DOMException` (the engine's refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingError {
    /// Throw (or reject with) a `TypeError` with this message.
    Type(String),
    /// Throw (or reject with) this `DOMException`.
    Dom(DomException),
}

impl BindingError {
    /// The exception's `name`: `TypeError`, or the DOMException's name.
    pub fn name(&self) -> &str {
        match self {
            BindingError::Type(_) => "TypeError",
            BindingError::Dom(e) => e.name.as_str(),
        }
    }

    /// The exception's `message`.
    pub fn message(&self) -> &str {
        match self {
            BindingError::Type(m) => m,
            BindingError::Dom(e) => &e.message,
        }
    }
}

impl fmt::Display for BindingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl std::error::Error for BindingError {}

impl From<DomException> for BindingError {
    fn from(e: DomException) -> Self {
        BindingError::Dom(e)
    }
}

/// [Overload resolution](https://webidl.spec.whatwg.org/#es-overloads) step 3: too few
/// arguments is a `TypeError` (for promise-returning operations, a rejected promise).
pub fn missing_arguments(
    interface: &str,
    operation: &str,
    required: usize,
    given: usize,
) -> BindingError {
    let plural = if required == 1 { "" } else { "s" };
    BindingError::Type(format!(
        "Failed to execute '{operation}' on '{interface}': {required} argument{plural} required, but only {given} present."
    ))
}

/// [Interface object](https://webidl.spec.whatwg.org/#interface-object) behaviour without a
/// constructor operation: `new SyncManager()` throws a `TypeError`.
pub fn illegal_constructor(interface: &str) -> BindingError {
    BindingError::Type(format!(
        "Failed to construct '{interface}': Illegal constructor"
    ))
}

/// A failed brand check ([perform a security check](https://webidl.spec.whatwg.org/#dfn-perform-a-security-check)
/// and "implements" in the operation and attribute steps): a `TypeError`.
pub fn illegal_invocation(interface: &str, member: &str) -> BindingError {
    BindingError::Type(format!(
        "'{member}' called on an object that does not implement interface {interface}."
    ))
}

/// An engine rejection as script sees it: the DOMException with its name and message.
pub fn exception_for_engine_error(e: &DomException) -> BindingError {
    BindingError::Dom(e.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgsync_types::DomExceptionName;

    #[test]
    fn messages_name_the_member() {
        assert_eq!(
            missing_arguments("SyncManager", "register", 1, 0).to_string(),
            "TypeError: Failed to execute 'register' on 'SyncManager': 1 argument required, but only 0 present."
        );
        assert!(illegal_constructor("SyncManager")
            .message()
            .contains("Illegal constructor"));
        assert!(illegal_invocation("SyncManager", "getTags")
            .message()
            .contains("SyncManager"));
    }

    #[test]
    fn engine_errors_keep_name_and_message() {
        let e = DomException::new(DomExceptionName::NotAllowedError, "Permission denied.");
        let b = exception_for_engine_error(&e);
        assert_eq!(b.name(), "NotAllowedError");
        assert_eq!(b.message(), "Permission denied.");
    }
}
