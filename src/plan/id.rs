//! Directory object ids, stored compactly.
//!
//! Entra ID names every user and group by a GUID. Planning compares millions of them, so
//! an id is a `u128`: `Copy`, ordered and hashed without touching the heap. Its text form
//! is the one Graph returns: lower-case, hyphenated, 8-4-4-4-12.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A directory object id (a user's or group's GUID in Entra ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(u128);

impl ObjectId {
    /// The id with these 128 bits.
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The id's 128 bits, e.g. for a compact database column.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

/// Text that is not a directory object id in its hyphenated 8-4-4-4-12 form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a directory object id: expected 32 hex digits in the form \
     xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
)]
pub struct ParseObjectIdError {
    /// The rejected text, cut short if it is long.
    text: String,
}

/// Rejected text is echoed back to operators; a whole mis-pasted row would drown the message.
const ECHO_LIMIT: usize = 64;

impl FromStr for ObjectId {
    type Err = ParseObjectIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // uuid also accepts the simple, braced and urn forms; Graph never sends those, and a
        // source holding one is more likely wrong than clever, so only the hyphenated form
        // (the only one 36 bytes long) gets through.
        let parsed = (text.len() == 36)
            .then(|| uuid::Uuid::try_parse(text).ok())
            .flatten();
        parsed
            .map(|uuid| Self(uuid.as_u128()))
            .ok_or_else(|| ParseObjectIdError {
                text: text.chars().take(ECHO_LIMIT).collect(),
            })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0).hyphenated(), f)
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = uuid::Uuid::encode_buffer();
        serializer.serialize_str(
            uuid::Uuid::from_u128(self.0)
                .hyphenated()
                .encode_lower(&mut buffer),
        )
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ObjectIdVisitor)
    }
}

/// Reads the text form without allocating a `String` per id.
struct ObjectIdVisitor;

impl serde::de::Visitor<'_> for ObjectIdVisitor {
    type Value = ObjectId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a directory object id (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ObjectId, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[test]
    fn display_is_lower_case_hyphenated() {
        let id = ObjectId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(id.to_string(), "01234567-89ab-cdef-0011-223344556677");
    }

    #[rstest]
    #[case::lower("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")]
    #[case::upper("6F1C2A3B-4D5E-4F60-8A9B-0C1D2E3F4A5B")]
    #[case::mixed("6f1C2a3B-4d5E-4f60-8A9b-0c1D2e3F4a5B")]
    fn parse_ignores_case(#[case] text: &str) {
        let id: ObjectId = text.parse().unwrap();
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
    }

    #[rstest]
    #[case::empty("")]
    #[case::simple_form("6f1c2a3b4d5e4f608a9b0c1d2e3f4a5b")]
    #[case::braced("{6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b}")]
    #[case::urn("urn:uuid:6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")]
    #[case::not_hex("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5g")]
    #[case::hyphen_misplaced("6f1c2a3b4-d5e-4f60-8a9b-0c1d2e3f4a5b")]
    #[case::too_short("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5")]
    #[case::surrounding_space(" 6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")]
    #[case::upn("ada.lovelace@example.ac.uk")]
    fn parse_rejects_other_forms(#[case] text: &str) {
        let error = text.parse::<ObjectId>().unwrap_err();
        assert!(error.to_string().contains("is not a directory object id"));
    }

    #[test]
    fn rejected_text_is_echoed_short() {
        let long = "x".repeat(1000);
        let error = long.parse::<ObjectId>().unwrap_err().to_string();
        assert!(error.len() < 200, "{error}");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id: ObjectId = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b\"");
        assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ObjectId>("\"not-an-id\"").is_err());
        assert!(serde_json::from_str::<ObjectId>("42").is_err());
    }

    proptest! {
        #[test]
        fn text_form_round_trips(bits: u128) {
            let id = ObjectId::from_u128(bits);
            prop_assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
            prop_assert_eq!(id.to_string().to_ascii_uppercase().parse::<ObjectId>().unwrap(), id);
        }

        #[test]
        fn order_follows_the_text_form(a: u128, b: u128) {
            // Plans sort members by id; the order an operator sees in text must agree.
            let (a, b) = (ObjectId::from_u128(a), ObjectId::from_u128(b));
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        }
    }
}
