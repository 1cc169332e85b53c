use std::fmt;
use std::sync::Arc;

/// A sync registration's tag: a DOMString, held as UTF-16 code units.
///
/// Holding code units rather than a Rust `String` means lone surrogates survive a round trip
/// through the engine, and `"\uD800"` and `"\uDC00"` stay two different tags, as they are to
/// script. Tags order by code units, which is the order `getTags()` returns them in. The units
/// are shared, so the copies the engine keeps in its indexes and log cost no allocation.
#[derive(Clone, Eq, PartialOrd, Ord, Default)]
pub struct Tag(Arc<[u16]>);

impl PartialEq for Tag {
    /// Copies of one tag share their units, and comparing the pointers first spares reading
    /// them (the engine compares a registration's key with its own copy on every completion).
    fn eq(&self, other: &Tag) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0[..] == other.0[..]
    }
}

impl std::hash::Hash for Tag {
    /// The units, as the derived hash of `Arc<[u16]>` would (equal tags hash alike).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0[..].hash(state);
    }
}

impl Tag {
    /// A tag from UTF-16 code units, lone surrogates allowed.
    pub fn from_utf16(units: impl Into<Arc<[u16]>>) -> Self {
        Tag(units.into())
    }

    /// The tag's UTF-16 code units.
    pub fn as_utf16(&self) -> &[u16] {
        &self.0
    }

    /// The length of the tag in bytes of UTF-8, counting each lone surrogate as 3 bytes (what it
    /// takes once replaced by U+FFFD, and what it takes in WTF-8). This is the length the tag cap
    /// is measured in.
    pub fn utf8_len(&self) -> usize {
        // Unit by unit, without decoding: a surrogate pair is one character of 4 bytes; any
        // other unit is one character (a lone surrogate counting 3).
        let units = &self.0[..];
        let (mut bytes, mut i) = (0, 0);
        while let Some(&unit) = units.get(i) {
            bytes += match unit {
                0..0x80 => 1,
                0x80..0x800 => 2,
                0xD800..0xDC00
                    if units
                        .get(i + 1)
                        .is_some_and(|u| (0xDC00..0xE000).contains(u)) =>
                {
                    i += 1;
                    4
                }
                _ => 3,
            };
            i += 1;
        }
        bytes
    }

    /// The tag as a Rust string if it is well-formed UTF-16.
    pub fn to_string_checked(&self) -> Option<String> {
        String::from_utf16(&self.0).ok()
    }

    /// The tag as a Rust string, lone surrogates replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf16_lossy(&self.0)
    }
}

impl From<&str> for Tag {
    /// In one allocation of the exact size when the tag is ASCII (the usual tag: one unit a
    /// byte, and an iterator whose length is known, which the shared slice is built from in
    /// place); otherwise the units are counted first, so the vector they are gathered in never
    /// grows.
    fn from(s: &str) -> Self {
        if s.is_ascii() {
            return Tag(s.bytes().map(u16::from).collect());
        }
        let mut units = Vec::with_capacity(s.encode_utf16().count());
        units.extend(s.encode_utf16());
        Tag(units.into())
    }
}

impl From<String> for Tag {
    fn from(s: String) -> Self {
        Tag::from(s.as_str())
    }
}

impl fmt::Display for Tag {
    /// The tag as text for people and logs: a tag comes from a page, so control characters
    /// (a newline would forge a log line), backslashes and lone surrogates are written as
    /// escapes (`\n`, `\\`, `\u{d800}`); the tag itself is [`as_utf16`](Tag::as_utf16).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in char::decode_utf16(self.0.iter().copied()) {
            match c {
                Ok(c) if c == '\\' || c.is_control() => write!(f, "{}", c.escape_debug())?,
                Ok(c) => write!(f, "{c}")?,
                Err(e) => write!(f, "\\u{{{:x}}}", e.unpaired_surrogate())?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag(\"{self}\")")
    }
}

/// A tag as a string when it is valid Unicode, else as its UTF-16 code units (a lone
/// surrogate has no string form in most formats); both are read back.
#[cfg(feature = "serde")]
impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_string_checked() {
            Some(text) => s.serialize_str(&text),
            None => s.collect_seq(self.as_utf16()),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Units(Vec<u16>),
        }
        Ok(match Form::deserialize(d)? {
            Form::Text(t) => Tag::from(t.as_str()),
            Form::Units(u) => Tag::from_utf16(u),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_utf8_length_counts_pairs_as_four_bytes_and_lone_surrogates_as_three() {
        let decoded = |units: &[u16]| -> usize {
            char::decode_utf16(units.iter().copied())
                .map(|c| c.map_or(3, char::len_utf8))
                .sum()
        };
        let samples: [&[u16]; 9] = [
            &[],
            &[0x61, 0x7f, 0x80, 0x7ff, 0x800, 0xffff],
            &[0xd83d, 0xdce7],
            &[0xd83d],
            &[0xdce7],
            &[0xdce7, 0xd83d],
            &[0xd83d, 0xd83d, 0xdce7],
            &[0x61, 0xd800, 0x62, 0xdfff, 0xdbff, 0xdc00],
            &[0xd7ff, 0xe000, 0xdbff],
        ];
        for units in samples {
            let tag = Tag::from_utf16(units.to_vec());
            assert_eq!(tag.utf8_len(), decoded(units), "{units:x?}");
        }
    }

    #[test]
    fn a_tag_from_text_holds_its_utf16_units_ascii_or_not() {
        for text in [
            "",
            "send-mail",
            "é",
            "mail-é-ü",
            "📧",
            "a📧b€",
            "\u{0}\u{7f}",
        ] {
            let units: Vec<u16> = text.encode_utf16().collect();
            assert_eq!(Tag::from(text).as_utf16(), &units[..], "{text:?}");
            assert_eq!(
                Tag::from(text.to_string()).as_utf16(),
                &units[..],
                "{text:?}"
            );
        }
    }

    #[test]
    fn tags_are_equal_by_units_whether_or_not_they_share_them() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        let a = Tag::from("send-mail");
        let shared = a.clone();
        let apart = Tag::from("send-mail");
        assert!(Arc::ptr_eq(&a.0, &shared.0) && !Arc::ptr_eq(&a.0, &apart.0));
        assert_eq!(a, shared);
        assert_eq!(a, apart);
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(&apart));
        assert_ne!(a, Tag::from("send-mail2"));
        assert_ne!(Tag::from_utf16(vec![0xD800]), Tag::from_utf16(vec![0xFFFD]));
    }

    #[test]
    fn display_escapes_what_could_forge_a_log_line() {
        assert_eq!(Tag::from("a\nb").to_string(), "a\\nb");
        assert_eq!(Tag::from("a\\nb").to_string(), "a\\\\nb");
        assert_eq!(Tag::from("\u{1b}[31m").to_string(), "\\u{1b}[31m");
        assert_eq!(Tag::from("send-mail 📧").to_string(), "send-mail 📧");
    }

    #[test]
    fn lone_surrogates_are_distinct_tags() {
        let hi = Tag::from_utf16(vec![0xD800]);
        let lo = Tag::from_utf16(vec![0xDC00]);
        assert_ne!(hi, lo);
        assert_eq!(hi.to_string_lossy(), lo.to_string_lossy());
        assert_eq!(hi.to_string_checked(), None);
        assert_eq!(hi.to_string(), "\\u{d800}");
    }

    #[test]
    fn a_surrogate_pair_is_one_astral_character() {
        let pair = Tag::from_utf16(vec![0xD83D, 0xDCE7]);
        assert_eq!(pair, Tag::from("📧"));
        assert_eq!(pair.utf8_len(), 4);
        // The same units reversed are two lone surrogates: 3 bytes each.
        assert_eq!(Tag::from_utf16(vec![0xDCE7, 0xD83D]).utf8_len(), 6);
    }

    #[test]
    fn utf8_len_counts_bytes_not_units() {
        assert_eq!(Tag::from("").utf8_len(), 0);
        assert_eq!(Tag::from("send-mail").utf8_len(), 9);
        assert_eq!(Tag::from("é").utf8_len(), 2);
        assert_eq!(Tag::from("€").utf8_len(), 3);
        assert_eq!(Tag::from("a\0b").utf8_len(), 3);
    }

    #[test]
    fn tags_order_by_code_units() {
        // U+FF5E (one unit, 0xFF5E) sorts after U+1F4E7 (units 0xD83D 0xDCE7) in code-unit order,
        // though not in code-point order.
        let mut tags = [
            Tag::from("～"),
            Tag::from("📧"),
            Tag::from("b"),
            Tag::from("a"),
        ];
        tags.sort();
        let shown: Vec<String> = tags.iter().map(Tag::to_string).collect();
        assert_eq!(shown, ["a", "b", "📧", "～"]);
    }
}
