//! What crosses between Rust and script, and the ids that name realms: the values a native
//! function or a hook hands to script ([`Out`], [`ErrOut`]), the kinds of global, and the small
//! helpers every module that runs script uses (evaluation options, describing an exception).
//! Web IDL's conversions live in `bgsync-idl`; this is the QuickJS side of them.

use bgsync_types::DomException;
use rquickjs::{Array, CaughtError, Ctx, Object, Value};

use crate::UaError;

/// Identifies a realm (one global) of a [`UserAgent`](crate::UserAgent).
pub type RealmId = usize;

/// The kind of global a realm has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalKind {
    /// A `Window` (a page; no DOM).
    Window,
    /// A `DedicatedWorkerGlobalScope`.
    DedicatedWorker,
    /// A `ServiceWorkerGlobalScope`.
    ServiceWorker,
}

impl GlobalKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GlobalKind::Window => "window",
            GlobalKind::DedicatedWorker => "worker",
            GlobalKind::ServiceWorker => "serviceworker",
        }
    }
}

/// A value handed to script.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Units(Vec<u16>),
    List(Vec<Out>),
    Obj(Vec<(&'static str, Out)>),
    Map(Vec<(String, Out)>),
}

#[derive(Debug, Clone)]
pub(crate) struct ErrOut {
    pub(crate) name: String,
    pub(crate) message: String,
}

impl From<DomException> for ErrOut {
    fn from(e: DomException) -> Self {
        ErrOut {
            name: e.name.as_str().to_owned(),
            message: e.message,
        }
    }
}

impl ErrOut {
    pub(crate) fn new(name: &str, message: impl Into<String>) -> Self {
        ErrOut {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

pub(crate) fn type_error(message: impl Into<String>) -> ErrOut {
    ErrOut {
        name: "TypeError".into(),
        message: message.into(),
    }
}

pub(crate) fn options(name: &str) -> rquickjs::context::EvalOptions {
    let mut o = rquickjs::context::EvalOptions::default();
    o.strict = false;
    o.filename = Some(name.to_owned());
    o
}

/// `Name: message` (and the stack, when there is one) of a caught exception.
pub(crate) fn describe(e: &CaughtError<'_>) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let name: String = ex
                .as_object()
                .get::<_, Option<String>>("name")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Error".into());
            let msg = ex.message().unwrap_or_default();
            match ex.stack() {
                Some(stack) if !stack.is_empty() => format!("{name}: {msg}\n{stack}"),
                _ => format!("{name}: {msg}"),
            }
        }
        CaughtError::Value(v) => format!("{v:?}"),
        CaughtError::Error(e) => e.to_string(),
    }
}

pub(crate) fn js_error(ctx: &Ctx<'_>, e: rquickjs::Error) -> UaError {
    UaError::Script(describe(&CaughtError::from_error(ctx, e)))
}

pub(crate) fn to_js<'js>(ctx: &Ctx<'js>, out: Out) -> rquickjs::Result<Value<'js>> {
    Ok(match out {
        Out::Undefined => Value::new_undefined(ctx.clone()),
        Out::Null => Value::new_null(ctx.clone()),
        Out::Bool(b) => Value::new_bool(ctx.clone(), b),
        Out::Num(n) => Value::new_float(ctx.clone(), n),
        Out::Str(s) => rquickjs::String::from_str(ctx.clone(), &s)?.into_value(),
        Out::Units(u) => {
            let a = Array::new(ctx.clone())?;
            for (i, unit) in u.into_iter().enumerate() {
                a.set(i, i32::from(unit))?;
            }
            a.into_value()
        }
        Out::List(items) => {
            let a = Array::new(ctx.clone())?;
            for (i, item) in items.into_iter().enumerate() {
                a.set(i, to_js(ctx, item)?)?;
            }
            a.into_value()
        }
        Out::Obj(fields) => {
            let o = Object::new(ctx.clone())?;
            for (k, v) in fields {
                o.set(k, to_js(ctx, v)?)?;
            }
            o.into_value()
        }
        Out::Map(fields) => {
            let o = Object::new(ctx.clone())?;
            for (k, v) in fields {
                o.set(k, to_js(ctx, v)?)?;
            }
            o.into_value()
        }
    })
}
