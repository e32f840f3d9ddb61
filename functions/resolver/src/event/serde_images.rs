//! The serde readers of an image's text: the whole image, and the partial
//! image triage reads when the pass did not pick from it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_dynamo::{AttributeValue, Item};

use super::STAMP_HEADER_FIELDS;

/// The whole image.
///
/// # Errors
/// When the image is not a DynamoDB item in JSON form.
pub fn full_image(text: &str) -> Result<Item, serde_json::Error> {
    serde_json::from_str(text)
}

/// Only the named top-level attributes of the image, and of the stamp
/// attribute only its header fields; the rest is skipped without being
/// built: what the pass over the event picks, read from an image's text.
///
/// # Errors
/// When the image is not a JSON object or a named attribute is malformed.
pub fn partial_image(
    text: &str,
    wanted: &[&str],
    stamp_attribute: &str,
) -> Result<Item, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Picker {
        wanted,
        stamp_attribute,
    }
    .deserialize(&mut de)
}

struct Picker<'w> {
    wanted: &'w [&'w str],
    stamp_attribute: &'w str,
}

/// A stamp map (`{"M": {...}}`) with only its header fields.
struct StampHeader;

impl<'de> DeserializeSeed<'de> for StampHeader {
    type Value = AttributeValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AttributeValue, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StampHeader {
    type Value = AttributeValue;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stamp map {\"M\": {...}}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let mut out = AttributeValue::Null(true);
        while let Some(Key(tag)) = map.next_key()? {
            if tag == "M" {
                out = AttributeValue::M(map.next_value_seed(Fields(&STAMP_HEADER_FIELDS))?);
            } else {
                // Not a map: keep it whole, so the stamp check names it.
                let value: serde_json::Value = map.next_value()?;
                let one = serde_json::json!({ tag.as_ref(): value });
                out = serde_json::from_value(one).map_err(serde::de::Error::custom)?;
            }
        }
        Ok(out)
    }
}

/// The named entries of a JSON object of attribute values.
struct Fields<'w>(&'w [&'w str]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = HashMap<String, AttributeValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = HashMap<String, AttributeValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = HashMap::new();
        while let Some(Key(name)) = map.next_key()? {
            if self.0.contains(&name.as_ref()) {
                out.insert(name.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = Item;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = Item;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = Item::from(HashMap::<String, AttributeValue>::new());
        while let Some(Key(name)) = map.next_key()? {
            if name == self.stamp_attribute {
                let value = map.next_value_seed(StampHeader)?;
                item.insert(name.into_owned(), value);
            } else if self.wanted.contains(&name.as_ref()) {
                let value: AttributeValue = map.next_value()?;
                item.insert(name.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(item)
    }
}
