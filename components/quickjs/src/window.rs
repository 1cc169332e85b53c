//! The `Window` global (HTML § 7.2): loading a page's markup into a window realm, its scripts
//! in order, then `DOMContentLoaded` and `load`; opening another top-level window (an
//! auxiliary browsing context) or a frame nested in a window, of any origin the user agent
//! serves. (A host opens a page with [`UserAgent::open`] and [`GlobalKind::Window`]; what the
//! global looks like is in the prelude.)

use bgsync_types::Origin;
use url::Url;

use crate::agent::{frame_partition, Placement};
use crate::realm::UserAgent;
use crate::values::{GlobalKind, Out, RealmId};
use crate::UaError;

/// One element of a page's markup, in markup order, as [`UserAgent::load_page`] loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageElement {
    /// `<meta>` with these attributes (`charset`, or `name` and `content`).
    Meta(Vec<(String, String)>),
    /// `<title>` with this text.
    Title(String),
    /// `<div>` with these attributes (`id=log`).
    Div(Vec<(String, String)>),
    /// `<script src=URL>`: a classic script fetched from the URL.
    Script(Url),
    /// `<script>` with this text.
    InlineScript(String),
}

impl UserAgent {
    /// Loads a page into the window `realm` as a browser loads its markup: each element is
    /// added to the document in order; each script runs when it is reached, as
    /// `document.currentScript`, with a microtask checkpoint after it; a script that cannot be
    /// fetched gets an `error` event (the page goes on), and one that throws is reported at the
    /// window. Then the document is `interactive`, and two queued tasks fire `DOMContentLoaded`
    /// and then, with the document `complete`, `load` at the window. Returns what went wrong,
    /// one line per failed script.
    pub fn load_page(&mut self, realm: RealmId, elements: &[PageElement]) -> Vec<String> {
        let mut failures = Vec::new();
        let page = self.state.borrow().realms.get(realm).map(|r| r.url.clone());
        let Some(page) = page.filter(|_| self.kind(realm) == Some(GlobalKind::Window)) else {
            return vec![format!("realm {realm} is not a window")];
        };
        let attrs = |list: &[(String, String)]| {
            Out::Map(
                list.iter()
                    .map(|(k, v)| (k.clone(), Out::Str(v.clone())))
                    .collect(),
            )
        };
        for element in elements {
            let (tag, attributes, text) = match element {
                PageElement::Meta(a) => ("meta", attrs(a), Out::Null),
                PageElement::Title(t) => ("title", attrs(&[]), Out::Str(t.clone())),
                PageElement::Div(a) => ("div", attrs(a), Out::Null),
                PageElement::Script(url) => (
                    "script",
                    attrs(&[("src".to_owned(), url.to_string())]),
                    Out::Null,
                ),
                PageElement::InlineScript(t) => ("script", attrs(&[]), Out::Str(t.clone())),
            };
            let index = self.hooks_call_value(
                realm,
                "insertElement",
                vec![Out::Str(tag.into()), attributes, text],
            );
            let (source, name) = match element {
                PageElement::Script(url) => match self.state.borrow().load(url) {
                    Ok(source) => (Some(source), url.to_string()),
                    Err(e) => {
                        failures.push(format!("{url}: {e}"));
                        (None, url.to_string())
                    }
                },
                PageElement::InlineScript(t) => (Some(t.clone()), page.to_string()),
                _ => continue,
            };
            let Some(source) = source else {
                self.hooks_call(realm, "scriptFailed", vec![Out::Num(index)]);
                continue;
            };
            self.hooks_call(realm, "setCurrentScript", vec![Out::Num(index)]);
            if let Err(e) = self.eval_reporting(realm, &source, &name) {
                failures.push(format!("{name}: {e}"));
            }
            self.hooks_call(realm, "setCurrentScript", vec![Out::Num(-1.0)]);
        }
        self.hooks_call(realm, "documentParsed", Vec::new());
        let mut st = self.state.borrow_mut();
        st.hook(realm, "domContentLoaded", Vec::new());
        st.hook(realm, "windowLoaded", Vec::new());
        failures
    }

    /// A window at `url`: top-level when `frame_of` is `None` (as `window.open` makes an
    /// auxiliary one), else a frame nested in the window `frame_of`. A frame of another site
    /// than its top-level window's has its storage partitioned under that site (Chromium, since
    /// third-party storage partitioning). The document at `url` must be served (it is fetched,
    /// not parsed: the window starts blank). Then each of `scripts` runs in it, in order.
    pub(crate) fn open_window(
        &mut self,
        url: &Url,
        frame_of: Option<RealmId>,
        scripts: &[Url],
    ) -> Result<RealmId, UaError> {
        let origin = Origin::from_url(url).map_err(|e| UaError::Script(e.to_string()))?;
        self.state.borrow().load(url)?;
        let placement = match frame_of {
            None => Placement {
                top_level: true,
                ..Placement::default()
            },
            Some(parent) => {
                let st = self.state.borrow();
                let top = st.top_of(parent);
                Placement {
                    parent: Some(parent),
                    top_level: false,
                    partition: frame_partition(&origin, &st.realms[top].origin),
                }
            }
        };
        let realm = self.open_realm(GlobalKind::Window, url, None, placement)?;
        for script in scripts {
            if let Err(e) = self.run_script(realm, script) {
                self.close(realm);
                return Err(e);
            }
        }
        Ok(realm)
    }
}
