//! The DynamoDB stream event as Lambda delivers it, read in one borrowed
//! pass.
//!
//! Same JSON as `aws_lambda_events::event::dynamodb::Event`, but the images
//! stay slices of the payload, and the pass that splits the event into
//! records also notes in each image where the values classification reads
//! are: the stamp's header fields and the home attribute ([`Pick`]). Triage
//! builds its partial images from those alone ([`Image::picked`]); a
//! foreign write's images are read straight to versions ([`Image::version`]),
//! the other records that need action decode their images whole
//! ([`Image::whole`]), and the rest are never read again.
//!
//! The pass reads the event as DynamoDB Streams and Lambda write it: names
//! without escapes, attribute values in their usual shapes. It never guesses
//! past that: an envelope it does not read is read by serde instead (the
//! same result, slower), and an image it could not pick from is picked from
//! its text ([`partial_image`]), so every event reads exactly as it does
//! through `serde_json` and `serde_dynamo` ([`pass_agrees`] checks that;
//! the tests and the `event` fuzz target run it).
//!
//! The module keeps each concern in one file: this one holds the event's
//! types and their API (and [`pass_agrees`]); `reader` is the one pass's
//! validating JSON reader (strings, numbers, skipping, attribute values),
//! `envelope` the pass over the event itself (records, changes, and where
//! in each image the picked values are), `serde_images` the serde
//! readers of an image's text ([`full_image`], [`partial_image`]) that
//! triage falls back on, and `version` the reader of an image's text
//! straight to a version (checked against the item's decode by
//! [`version_agrees`]).

mod envelope;
mod glimpse;
mod reader;
mod serde_images;
#[cfg(test)]
mod tests;
mod version;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;

use crate::Config;
use reader::Reader;

pub use glimpse::Glimpse;
pub use serde_images::{full_image, partial_image};
pub use version::version_agrees;

/// A batch of stream records; `'a` is the payload the images are slices of
/// (`'static` for an event that owns them).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent<'a> {
    pub records: Vec<StreamRecord<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord<'a> {
    pub event_name: String,
    pub aws_region: String,
    pub user_identity: Option<UserIdentity>,
    pub dynamodb: Change<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "principalId", default)]
    pub principal_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    pub keys: Item,
    pub new_image: Option<Image<'a>>,
    pub old_image: Option<Image<'a>>,
    pub sequence_number: Option<String>,
    /// When the change was applied in this Region, whole seconds since the
    /// epoch (for a replicated write: when it arrived).
    pub approximate_creation_date_time: Option<f64>,
}

/// One image of a record: its JSON text, and where in it the pass over the
/// event found the values triage reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Image<'a> {
    text: Cow<'a, str>,
    picked: Option<(Arc<Pick>, Picks)>,
}

/// What the pass picks from every image: the attributes classification
/// reads (the home attribute, if the strategy has one) and the header
/// fields of the stamp attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    wanted: Vec<String>,
    stamp_attribute: String,
}

impl Pick {
    pub fn new(wanted: &[&str], stamp_attribute: &str) -> Self {
        Pick {
            wanted: wanted.iter().map(|w| (*w).to_owned()).collect(),
            stamp_attribute: stamp_attribute.to_owned(),
        }
    }

    /// What triage reads under `c`.
    pub fn of(c: &Config) -> Self {
        Pick::new(c.homes.attribute().as_slice(), &c.schema.stamp_attribute)
    }

    fn is(&self, wanted: &[&str], stamp_attribute: &str) -> bool {
        self.stamp_attribute == stamp_attribute
            && self.wanted.len() == wanted.len()
            && self.wanted.iter().zip(wanted).all(|(a, b)| a == b)
    }
}

/// The stamp fields classification reads; the per-attribute dots, sibling
/// values and counters (most of a stamp) are skipped.
const STAMP_HEADER_FIELDS: [&str; 7] = ["o", "t", "by", "dot", "k", "h", "e"];

/// Where `name` is in [`STAMP_HEADER_FIELDS`]: a match, not a search, as
/// the pass asks it of every field of every stamp.
fn header_field(name: &str) -> Option<usize> {
    match name {
        "o" => Some(0),
        "t" => Some(1),
        "by" => Some(2),
        "dot" => Some(3),
        "k" => Some(4),
        "h" => Some(5),
        "e" => Some(6),
        _ => None,
    }
}

/// An item of these attributes. (`Item::from` would build the map again.)
fn item_of(attributes: HashMap<String, AttributeValue>) -> Item {
    let mut item = Item::default();
    *item.inner_mut() = attributes;
    item
}

/// The most wanted attributes the pass picks (a strategy has one at most).
const MAX_WANTED: usize = 2;

/// An attribute value the pass found in an image: where a string's or a
/// number's text is, or any other value's (read when its item is built).
/// Offsets in the image's text; small, as every image carries nine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    kind: Kind,
    start: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    S,
    N,
    Value,
}

/// Where an image's picked values are.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Picks {
    /// The stamp's header fields, in the order of `STAMP_HEADER_FIELDS`;
    /// `None` without a stamp attribute.
    stamp: Option<[Option<Found>; 7]>,
    /// The wanted attributes, in the order of `Pick::wanted`.
    wanted: [Option<Found>; MAX_WANTED],
}

impl Found {
    fn build(self, image: &str) -> Option<AttributeValue> {
        let text = image.get(self.start as usize..self.end as usize)?;
        Some(match self.kind {
            Kind::S => AttributeValue::S(text.to_owned()),
            Kind::N => AttributeValue::N(text.to_owned()),
            Kind::Value => {
                let mut reader = Reader::new(text);
                let value = reader.value(0)?;
                reader.end()?;
                value
            }
        })
    }
}

impl Picks {
    /// The partial image of `image`: what [`partial_image`] reads, or
    /// `None` when a value is not in a shape the reader builds.
    fn item(&self, pick: &Pick, image: &str) -> Option<Item> {
        let mut item = HashMap::with_capacity(1 + pick.wanted.len());
        if let Some(fields) = &self.stamp {
            let mut header = HashMap::with_capacity(fields.iter().flatten().count());
            for (name, found) in STAMP_HEADER_FIELDS.iter().zip(fields) {
                if let Some(found) = found {
                    header.insert((*name).to_owned(), found.build(image)?);
                }
            }
            item.insert(pick.stamp_attribute.clone(), AttributeValue::M(header));
        }
        for (name, found) in pick.wanted.iter().zip(&self.wanted) {
            if let Some(found) = found {
                item.insert(name.clone(), found.build(image)?);
            }
        }
        Some(item_of(item))
    }
}

impl Image<'_> {
    /// The image's JSON text, as the event gave it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The whole image.
    ///
    /// # Errors
    /// When the image is not a DynamoDB item in JSON form.
    pub fn whole(&self) -> Result<Item, serde_json::Error> {
        let mut reader = Reader::new(&self.text);
        match reader.item().filter(|_| reader.end().is_some()) {
            Some(item) => Ok(item),
            None => full_image(&self.text),
        }
    }

    /// Only `wanted` and the stamp's header fields, as [`partial_image`]
    /// reads them: built from what the pass over the event found when it
    /// picked the same names, else read from the text.
    ///
    /// # Errors
    /// As [`partial_image`].
    pub fn picked(
        &self,
        wanted: &[&str],
        stamp_attribute: &str,
    ) -> Result<Item, serde_json::Error> {
        match &self.picked {
            Some((pick, picks)) if pick.is(wanted, stamp_attribute) => {
                match picks.item(pick, &self.text) {
                    Some(item) => Ok(item),
                    None => partial_image(&self.text, wanted, stamp_attribute),
                }
            }
            _ => partial_image(&self.text, wanted, stamp_attribute),
        }
    }

    /// The same image, owning its text.
    fn into_owned(self) -> Image<'static> {
        Image {
            text: Cow::Owned(self.text.into_owned()),
            picked: self.picked,
        }
    }
}

impl StreamRecord<'_> {
    /// Whether DynamoDB's TTL made this (a REMOVE by the service).
    pub fn is_ttl_delete(&self) -> bool {
        self.user_identity
            .as_ref()
            .is_some_and(|u| u.kind == "Service" && u.principal_id == "dynamodb.amazonaws.com")
    }
}

impl<'a> StreamEvent<'a> {
    /// Reads `text` in one pass, picking what triage under `c` reads.
    ///
    /// # Errors
    /// When `text` is not a stream event (the error `serde_json` gives).
    pub fn parse(text: &'a str, c: &Config) -> Result<Self, serde_json::Error> {
        Self::parse_picking(text, &Arc::new(Pick::of(c)))
    }

    /// [`StreamEvent::parse`], picking `pick`.
    ///
    /// # Errors
    /// When `text` is not a stream event (the error `serde_json` gives).
    pub fn parse_picking(text: &'a str, pick: &Arc<Pick>) -> Result<Self, serde_json::Error> {
        match Reader::new(text).event(pick) {
            Some(event) => Ok(event),
            // Not as the pass reads it: serde does (or names the error).
            None => serde_json::from_str(text),
        }
    }

    /// The same event, owning its images.
    pub fn into_owned(self) -> StreamEvent<'static> {
        StreamEvent {
            records: self
                .records
                .into_iter()
                .map(|r| StreamRecord {
                    event_name: r.event_name,
                    aws_region: r.aws_region,
                    user_identity: r.user_identity,
                    dynamodb: Change {
                        keys: r.dynamodb.keys,
                        new_image: r.dynamodb.new_image.map(Image::into_owned),
                        old_image: r.dynamodb.old_image.map(Image::into_owned),
                        sequence_number: r.dynamodb.sequence_number,
                        approximate_creation_date_time: r.dynamodb.approximate_creation_date_time,
                    },
                })
                .collect(),
        }
    }
}

impl StreamEvent<'static> {
    /// Re-reads a fully decoded event (the simulator and tests build those).
    ///
    /// # Errors
    /// When the event does not serialize to the stream event format.
    pub fn from_lambda(
        event: &aws_lambda_events::event::dynamodb::Event,
    ) -> Result<Self, serde_json::Error> {
        Ok(serde_json::from_str::<StreamEvent>(&serde_json::to_string(event)?)?.into_owned())
    }

    /// An event from its JSON value.
    ///
    /// # Errors
    /// When the value is not a stream event.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(serde_json::from_str::<StreamEvent>(&value.to_string())?.into_owned())
    }

    /// An event from its JSON value, read as the function reads its
    /// payload: the one pass, picking what triage under `c` reads (so
    /// triage reads glimpses, as it does on Lambda).
    ///
    /// # Errors
    /// When the value is not a stream event.
    pub fn read_value(value: &serde_json::Value, c: &Config) -> Result<Self, serde_json::Error> {
        Ok(StreamEvent::parse(&value.to_string(), c)?.into_owned())
    }
}

/// Read by serde, the images borrowed from the input and nothing picked:
/// triage picks from their text.
impl<'de: 'a, 'a> Deserialize<'de> for StreamEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = wire::Event::deserialize(d)?;
        Ok(StreamEvent {
            records: wire
                .records
                .into_iter()
                .map(wire::Record::into_record)
                .collect(),
        })
    }
}

/// The event's JSON as serde reads it: the definition of the format, which
/// the one pass follows.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Event<'a> {
        #[serde(rename = "Records", borrow)]
        pub(super) records: Vec<Record<'a>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Record<'a> {
        #[serde(rename = "eventName")]
        event_name: String,
        #[serde(rename = "awsRegion", default)]
        aws_region: String,
        #[serde(rename = "userIdentity", default)]
        user_identity: Option<UserIdentity>,
        #[serde(borrow)]
        dynamodb: Change<'a>,
    }

    #[derive(Deserialize)]
    struct Change<'a> {
        #[serde(rename = "Keys", default)]
        keys: Item,
        #[serde(rename = "NewImage", default, borrow)]
        new_image: Option<&'a RawValue>,
        #[serde(rename = "OldImage", default, borrow)]
        old_image: Option<&'a RawValue>,
        #[serde(rename = "SequenceNumber", default)]
        sequence_number: Option<String>,
        #[serde(rename = "ApproximateCreationDateTime", default)]
        approximate_creation_date_time: Option<f64>,
    }

    impl<'a> Record<'a> {
        pub(super) fn into_record(self) -> StreamRecord<'a> {
            let image = |raw: Option<&'a RawValue>| {
                raw.map(|r| Image {
                    text: Cow::Borrowed(r.get()),
                    picked: None,
                })
            };
            let c = self.dynamodb;
            StreamRecord {
                event_name: self.event_name,
                aws_region: self.aws_region,
                user_identity: self.user_identity,
                dynamodb: super::Change {
                    keys: c.keys,
                    new_image: image(c.new_image),
                    old_image: image(c.old_image),
                    sequence_number: c.sequence_number,
                    approximate_creation_date_time: c.approximate_creation_date_time,
                },
            }
        }
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

/// Whether the one pass reads `text` as serde does: the same records, and
/// every image whole and picked under `pick` the same (the same error
/// message where there is one). `None` when neither reads the event. For
/// the tests and the fuzz targets: it does not panic.
pub fn pass_agrees(text: &str, pick: &Arc<Pick>) -> Option<bool> {
    let one = StreamEvent::parse_picking(text, pick);
    let serde = serde_json::from_str::<StreamEvent>(text);
    let (one, serde) = match (one, serde) {
        (Ok(one), Ok(serde)) => (one, serde),
        // The pass gave up and serde named the error.
        (Err(_), Err(_)) => return None,
        _ => return Some(false),
    };
    let wanted: Vec<&str> = pick.wanted.iter().map(String::as_str).collect();
    let same_image = |a: &Option<Image>, b: &Option<Image>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let picked = |i: &Image| {
                i.picked(&wanted, &pick.stamp_attribute)
                    .map_err(|e| e.to_string())
            };
            let err = |e: serde_json::Error| e.to_string();
            a.text() == b.text()
                && picked(a) == picked(b)
                && a.whole().map_err(err) == full_image(b.text()).map_err(err)
        }
        _ => false,
    };
    let same = one.records.len() == serde.records.len()
        && one.records.iter().zip(&serde.records).all(|(a, b)| {
            let (ca, cb) = (&a.dynamodb, &b.dynamodb);
            a.event_name == b.event_name
                && a.aws_region == b.aws_region
                && a.user_identity == b.user_identity
                && ca.keys == cb.keys
                && ca.sequence_number == cb.sequence_number
                && ca.approximate_creation_date_time.map(f64::to_bits)
                    == cb.approximate_creation_date_time.map(f64::to_bits)
                && same_image(&ca.new_image, &cb.new_image)
                && same_image(&ca.old_image, &cb.old_image)
        });
    Some(same)
}
