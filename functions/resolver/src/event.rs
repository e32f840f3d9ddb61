//! The DynamoDB stream event as Lambda delivers it, decoded lazily.
//!
//! Same JSON as `aws_lambda_events::event::dynamodb::Event`, but the images
//! stay raw JSON: most records are classified from their stamp and home
//! attribute alone, and only records that need action decode whole items.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records")]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName")]
    pub event_name: String,
    #[serde(rename = "awsRegion", default)]
    pub aws_region: String,
    #[serde(rename = "userIdentity", default)]
    pub user_identity: Option<UserIdentity>,
    pub dynamodb: Change,
}

#[derive(Debug, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "principalId", default)]
    pub principal_id: String,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(rename = "Keys", default)]
    pub keys: Item,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<Box<RawValue>>,
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<Box<RawValue>>,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
    /// When the change was applied in this Region, whole seconds since the
    /// epoch (for a replicated write: when it arrived).
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<f64>,
}

impl StreamRecord {
    /// Whether DynamoDB's TTL made this (a REMOVE by the service).
    pub fn is_ttl_delete(&self) -> bool {
        self.user_identity
            .as_ref()
            .is_some_and(|u| u.kind == "Service" && u.principal_id == "dynamodb.amazonaws.com")
    }
}

impl StreamEvent {
    /// Re-reads a fully decoded event (the simulator and tests build those).
    ///
    /// # Errors
    /// When the event does not serialize to the stream event format.
    pub fn from_lambda(
        event: &aws_lambda_events::event::dynamodb::Event,
    ) -> Result<Self, serde_json::Error> {
        serde_json::from_str(&serde_json::to_string(event)?)
    }
}

/// The whole image.
///
/// # Errors
/// When the image is not a DynamoDB item in JSON form.
pub fn full_image(raw: &RawValue) -> Result<Item, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// The stamp fields classification reads; the per-attribute dots, sibling
/// values and counters (most of a stamp) are skipped.
const STAMP_HEADER_FIELDS: &[&str] = &["o", "t", "by", "dot", "k", "h", "e"];

/// Only the named top-level attributes of the image, and of the stamp
/// attribute only its header fields; the rest is skipped without being
/// built.
///
/// # Errors
/// When the image is not a JSON object or a named attribute is malformed.
pub fn partial_image(
    raw: &RawValue,
    wanted: &[&str],
    stamp_attribute: &str,
) -> Result<Item, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
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
                out = AttributeValue::M(map.next_value_seed(Fields(STAMP_HEADER_FIELDS))?);
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
    type Value = std::collections::HashMap<String, AttributeValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = std::collections::HashMap<String, AttributeValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = std::collections::HashMap::new();
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
        let mut item = Item::from(std::collections::HashMap::<String, AttributeValue>::new());
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

/// An attribute value as DynamoDB Streams' `GetRecords` gives it, as the
/// event's (and the table's) attribute value type. A type this SDK does
/// not know becomes NULL: the record stays readable and the stamp checks
/// decide what it is.
#[cfg(feature = "streams")]
pub fn from_stream_value(v: &aws_sdk_dynamodbstreams::types::AttributeValue) -> AttributeValue {
    use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
    match v {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => AttributeValue::B(b.as_ref().to_vec()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(b) => AttributeValue::Null(*b),
        StreamValue::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), from_stream_value(v)))
                .collect(),
        ),
        StreamValue::L(l) => AttributeValue::L(l.iter().map(from_stream_value).collect()),
        StreamValue::Ss(v) => AttributeValue::Ss(v.clone()),
        StreamValue::Ns(v) => AttributeValue::Ns(v.clone()),
        StreamValue::Bs(v) => AttributeValue::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
        _ => AttributeValue::Null(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_images_hold_only_what_is_asked() {
        let raw = RawValue::from_string(
            r#"{"a":{"S":"x"},"b\u0020":{"N":"1"},"_hw":{"M":{"o":{"S":"us-east-1"}}},"c":{"L":[{"S":"y"}]}}"#.into(),
        )
        .unwrap();
        let item = partial_image(&raw, &["b "], "_hw").unwrap();
        assert_eq!(item.len(), 2);
        let AttributeValue::M(stamp) = &item["_hw"] else {
            panic!()
        };
        assert_eq!(stamp.get("o"), Some(&AttributeValue::S("us-east-1".into())));
        assert_eq!(item.get("b "), Some(&AttributeValue::N("1".into())));
        assert_eq!(full_image(&raw).unwrap().len(), 4);
        let bad = RawValue::from_string(r#"{"_hw":{"Q":1}}"#.into()).unwrap();
        assert!(partial_image(&bad, &[], "_hw").is_err());
    }
}
