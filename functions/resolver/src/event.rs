//! The DynamoDB stream event as Lambda delivers it, read in one borrowed
//! pass.
//!
//! Same JSON as `aws_lambda_events::event::dynamodb::Event`, but the images
//! stay slices of the payload, and the pass that splits the event into
//! records also notes in each image where the values classification reads
//! are: the stamp's header fields and the home attribute ([`Pick`]). Triage
//! builds its partial images from those alone ([`Image::picked`]); a record
//! that needs action decodes its images whole ([`Image::whole`]), and the
//! others are never read again.
//!
//! The pass reads the event as DynamoDB Streams and Lambda write it: names
//! without escapes, attribute values in their usual shapes. It never guesses
//! past that: an envelope it does not read is read by serde instead (the
//! same result, slower), and an image it could not pick from is picked from
//! its text ([`partial_image`]), so every event reads exactly as it does
//! through `serde_json` and `serde_dynamo` ([`pass_agrees`] checks that;
//! the tests and the `event` fuzz target run it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;

use crate::Config;

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

/// The one pass: a validating JSON reader that builds what it reads as it
/// goes. Every read answers `None` for input it does not take (malformed,
/// or not in the shape it reads); the caller then leaves that part to
/// serde.
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The members of the maps being read, innermost last: each map is
    /// built at its end, at its size.
    members: Vec<(String, AttributeValue)>,
}

thread_local! {
    /// The members buffer of the last reader, for the next one: most
    /// images are read on the same thread, and a buffer that has grown to
    /// an item's size saves every later item the growing.
    static SCRATCH: std::cell::Cell<Vec<(String, AttributeValue)>> =
        const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // Not one that an odd, huge map left behind.
        if self.members.capacity() <= 1024 {
            let mut members = std::mem::take(&mut self.members);
            members.clear();
            SCRATCH.with(|s| s.set(members));
        }
    }
}

/// Nesting the reader follows inside a skipped value; deeper is left to
/// serde.
const MAX_DEPTH: u32 = 128;

/// Nesting of a value handed to serde whole (keys, the user identity): far
/// enough under serde's own limit that the value reads the same alone as
/// within the event.
const MAX_DECODED_DEPTH: u32 = 64;

/// Nesting of attribute values (maps and lists) the reader builds; deeper
/// ones are left to serde.
const MAX_VALUE_DEPTH: u32 = 32;

fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    // serde rejects a duplicate field: the pass leaves that to it.
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// The first `"`, `\` or control character at or after `at` (a string's
/// end, an escape or an error), eight bytes at a time.
#[inline]
fn string_stop(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let hits = (control | quote | backslash) & (ONES << 7);
        if hits != 0 {
            // The lowest hit is exact (a borrow only marks higher bytes).
            return at + hits.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    while at < bytes.len() && !matches!(bytes[at], b'"' | b'\\' | 0..=0x1f) {
        at += 1;
    }
    at
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            members: SCRATCH.with(|s| s.take()),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Nothing but whitespace left.
    fn end(&mut self) -> Option<()> {
        self.ws();
        (self.at == self.bytes.len()).then_some(())
    }

    /// After an opening `"`: up to and past the closing one, checking
    /// escapes as serde does where it skips. Whether it had escapes.
    #[inline]
    fn string_body(&mut self) -> Option<bool> {
        let mut escaped = false;
        loop {
            self.at = string_stop(self.bytes, self.at);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *self.bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' => {
                            let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, borrowed.
    fn plain(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        if self.string_body()? {
            return None;
        }
        Some(&self.text[start..self.at - 1])
    }

    /// A string, unescaped by serde when it has escapes.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        self.byte(b'"')?;
        if self.string_body()? {
            serde_json::from_str(&self.text[start..self.at]).ok()
        } else {
            Some(self.text[start + 1..self.at - 1].to_owned())
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.bytes.get(self.at..self.at + word.len())? == word).then(|| self.at += word.len())
    }

    /// A `null` (read), or not.
    fn null(&mut self) -> bool {
        self.literal(b"null").is_some()
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A member's name and the `:` after it; whether the name has escapes.
    fn name(&mut self) -> Option<(&'a str, bool)> {
        self.byte(b'"')?;
        let start = self.at;
        let escaped = self.string_body()?;
        let name = &self.text[start..self.at - 1];
        self.ws();
        self.byte(b':')?;
        self.ws();
        Some((name, escaped))
    }

    /// Past one value of any kind, checked as serde checks what it skips.
    fn skip(&mut self) -> Option<()> {
        self.skip_within(MAX_DEPTH)
    }

    fn skip_within(&mut self, max_depth: u32) -> Option<()> {
        // The open containers, innermost in the lowest bit: 1 an object.
        let mut open: u128 = 0;
        let mut depth = 0;
        loop {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string_body()?;
                }
                b'{' => {
                    if depth == max_depth {
                        return None;
                    }
                    let head = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk::<6>);
                    if let Some([b'{', b'"', b'A'..=b'Z', b'"', b':', b'"']) = head {
                        // Most values of an image, `{"S":"..."}`, read
                        // straight through; the object stays open if more
                        // follows.
                        self.at += 6;
                        self.string_body()?;
                        if self.peek() == Some(b'}') {
                            self.at += 1;
                        } else {
                            (open, depth) = (open << 1 | 1, depth + 1);
                        }
                    } else {
                        self.at += 1;
                        self.ws();
                        if self.peek() == Some(b'}') {
                            self.at += 1;
                        } else {
                            (open, depth) = (open << 1 | 1, depth + 1);
                            self.name()?;
                            continue;
                        }
                    }
                }
                b'[' => {
                    self.at += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        if depth == max_depth {
                            return None;
                        }
                        (open, depth) = (open << 1, depth + 1);
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // A value ended: close the containers it ends.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.ws();
                            self.name()?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.at += 1;
                (open, depth) = (open >> 1, depth - 1);
            }
        }
    }

    /// The members of the object whose `{` is next, each handed to `each`
    /// with its name (and whether the name has escapes) and the reader at
    /// its value.
    fn members(
        &mut self,
        mut each: impl FnMut(&mut Self, &'a str, bool) -> Option<()>,
    ) -> Option<()> {
        self.byte(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            let (name, escaped) = self.name()?;
            each(self, name, escaped)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The elements of the array whose `[` is next, each read by `each`.
    fn elements(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.byte(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(());
        }
        loop {
            each(self)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.ws();
                }
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A value decoded by serde from its own text.
    fn decoded<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let start = self.at;
        self.skip_within(MAX_DECODED_DEPTH)?;
        serde_json::from_str(&self.text[start..self.at]).ok()
    }

    /// `read`, or when it does not take the value: past the value
    /// (checked), and `Some(None)`.
    fn attempt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        let start = self.at;
        match read(self) {
            Some(value) => Some(Some(value)),
            None => {
                self.at = start;
                self.skip()?;
                Some(None)
            }
        }
    }

    /// An attribute value, as `serde_dynamo` reads it: every type but the
    /// binary ones, strings without escapes.
    fn value(&mut self, depth: u32) -> Option<AttributeValue> {
        self.byte(b'{')?;
        self.ws();
        let (tag, escaped) = self.name()?;
        if escaped {
            return None;
        }
        let value = match tag {
            "S" => AttributeValue::S(self.plain()?.to_owned()),
            "N" => AttributeValue::N(self.plain()?.to_owned()),
            "BOOL" => AttributeValue::Bool(self.boolean()?),
            "NULL" => AttributeValue::Null(self.boolean()?),
            "SS" => AttributeValue::Ss(self.strings()?),
            "NS" => AttributeValue::Ns(self.strings()?),
            "M" if depth < MAX_VALUE_DEPTH => AttributeValue::M(self.map(depth + 1)?),
            "L" if depth < MAX_VALUE_DEPTH => {
                let mut list = Vec::new();
                self.elements(|r| {
                    list.push(r.value(depth + 1)?);
                    Some(())
                })?;
                AttributeValue::L(list)
            }
            _ => return None,
        };
        self.ws();
        self.byte(b'}')?;
        Some(value)
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let mut strings = Vec::new();
        self.elements(|r| {
            strings.push(r.plain()?.to_owned());
            Some(())
        })?;
        Some(strings)
    }

    /// An object of attribute values.
    fn map(&mut self, depth: u32) -> Option<HashMap<String, AttributeValue>> {
        let from = self.members.len();
        let read = self.members(|r, name, escaped| {
            if escaped {
                return None;
            }
            let value = r.value(depth)?;
            r.members.push((name.to_owned(), value));
            Some(())
        });
        if read.is_none() {
            self.members.truncate(from);
            return None;
        }
        let mut map = HashMap::with_capacity(self.members.len() - from);
        map.extend(self.members.drain(from..));
        Some(map)
    }

    /// A whole item.
    fn item(&mut self) -> Option<Item> {
        self.map(0).map(item_of)
    }

    fn event(&mut self, pick: &Arc<Pick>) -> Option<StreamEvent<'a>> {
        let mut records = None;
        self.ws();
        self.members(|r, name, escaped| match (name, escaped) {
            ("Records", false) => once(&mut records, r.records(pick)?),
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        self.end()?;
        Some(StreamEvent { records: records? })
    }

    fn records(&mut self, pick: &Arc<Pick>) -> Option<Vec<StreamRecord<'a>>> {
        let mut records = Vec::new();
        self.elements(|r| {
            records.push(r.record(pick)?);
            Some(())
        })?;
        Some(records)
    }

    fn record(&mut self, pick: &Arc<Pick>) -> Option<StreamRecord<'a>> {
        let (mut event_name, mut aws_region, mut user_identity, mut change) =
            (None, None, None, None);
        self.members(|r, name, escaped| match (name, escaped) {
            ("eventName", false) => once(&mut event_name, r.string()?),
            ("awsRegion", false) => once(&mut aws_region, r.string()?),
            ("userIdentity", false) => once(&mut user_identity, r.decoded()?),
            ("dynamodb", false) => once(&mut change, r.change(pick)?),
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        Some(StreamRecord {
            event_name: event_name?,
            aws_region: aws_region.unwrap_or_default(),
            user_identity: user_identity.flatten(),
            dynamodb: change?,
        })
    }

    fn change(&mut self, pick: &Arc<Pick>) -> Option<Change<'a>> {
        let (mut keys, mut new_image, mut old_image) = (None, None, None);
        let (mut sequence_number, mut time) = (None, None);
        self.members(|r, name, escaped| match (name, escaped) {
            ("Keys", false) => {
                let start = r.at;
                let read = match r.item() {
                    Some(item) => item,
                    None => {
                        r.at = start;
                        r.decoded()?
                    }
                };
                once(&mut keys, read)
            }
            ("NewImage", false) => once(&mut new_image, r.image(pick)?),
            ("OldImage", false) => once(&mut old_image, r.image(pick)?),
            ("SequenceNumber", false) => {
                let sequence = if r.null() { None } else { Some(r.string()?) };
                once(&mut sequence_number, sequence)
            }
            ("ApproximateCreationDateTime", false) => once(&mut time, r.decoded()?),
            (_, false) => r.skip(),
            (_, true) => None,
        })?;
        Some(Change {
            keys: keys.unwrap_or_default(),
            new_image: new_image.flatten(),
            old_image: old_image.flatten(),
            sequence_number: sequence_number.flatten(),
            approximate_creation_date_time: time.flatten(),
        })
    }

    fn image(&mut self, pick: &Arc<Pick>) -> Option<Option<Image<'a>>> {
        if self.null() {
            return Some(None);
        }
        let start = self.at;
        let picks = if self.peek() == Some(b'{') && pick.wanted.len() <= MAX_WANTED {
            self.picks(pick, start)?
        } else {
            // Not an item (triage names the error), or more to pick than
            // the pass notes: triage reads the text.
            self.skip()?;
            None
        };
        Some(Some(Image {
            text: Cow::Borrowed(&self.text[start..self.at]),
            picked: picks.map(|p| (Arc::clone(pick), p)),
        }))
    }

    /// Where the stamp's header fields and the wanted attributes are in the
    /// image whose `{` is next; `Some(None)` when the image is not in the
    /// shape this reads (triage then reads its text).
    fn picks(&mut self, pick: &Pick, image: usize) -> Option<Option<Picks>> {
        let mut picks = Picks {
            stamp: None,
            wanted: [None; MAX_WANTED],
        };
        let mut usual = true;
        self.members(|r, name, escaped| {
            if escaped {
                usual = false;
                r.skip()
            } else if name == pick.stamp_attribute {
                match r.attempt(|r| r.stamp(image))? {
                    Some(fields) => picks.stamp = Some(fields),
                    None => usual = false,
                }
                Some(())
            } else if let Some(i) = pick.wanted.iter().position(|w| w == name) {
                match r.found(image)? {
                    Some(found) => picks.wanted[i] = Some(found),
                    None => usual = false,
                }
                Some(())
            } else {
                r.skip()
            }
        })?;
        Some(usual.then_some(picks))
    }

    /// A stamp, `{"M": {...}}`: where its header fields are.
    fn stamp(&mut self, image: usize) -> Option<[Option<Found>; 7]> {
        let mut fields = [None; 7];
        self.byte(b'{')?;
        self.ws();
        if self.name()? != ("M", false) {
            return None;
        }
        self.members(|r, name, escaped| {
            if escaped {
                return None;
            }
            match STAMP_HEADER_FIELDS.iter().position(|f| *f == name) {
                Some(i) => fields[i] = Some(r.found(image)??),
                None => r.skip()?,
            }
            Some(())
        })?;
        self.ws();
        self.byte(b'}')?;
        Some(fields)
    }

    /// An attribute value found in the image that starts at `image`, not
    /// built: where a string's or a number's text is, else the value's.
    /// `Some(None)` past an image too long for the offsets.
    fn found(&mut self, image: usize) -> Option<Option<Found>> {
        let start = self.at;
        let simple = self.attempt(|r| {
            r.byte(b'{')?;
            r.ws();
            let kind = match r.name()? {
                ("S", false) => Kind::S,
                ("N", false) => Kind::N,
                _ => return None,
            };
            let at = r.at + 1;
            let text = r.plain()?;
            r.ws();
            r.byte(b'}')?;
            Some((kind, at, at + text.len()))
        })?;
        let (kind, start, end) = simple.unwrap_or((Kind::Value, start, self.at));
        let offset = |at: usize| u32::try_from(at - image).ok();
        Some(
            offset(start)
                .zip(offset(end))
                .map(|(start, end)| Found { kind, start, end }),
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn pick() -> Arc<Pick> {
        Arc::new(Pick::new(&["src_region"], "_hw"))
    }

    fn sample(name: &str) -> String {
        let path = format!("{}/../../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const SAMPLES: &[&str] = &[
        "clobber",
        "echo",
        "foreign-write",
        "hard-delete",
        "home-write",
        "malformed",
        "replicated",
        "ttl-delete",
        "unattributed",
    ];

    #[test]
    fn partial_images_hold_only_what_is_asked() {
        let text = r#"{"a":{"S":"x"},"b\u0020":{"N":"1"},"_hw":{"M":{"o":{"S":"us-east-1"}}},"c":{"L":[{"S":"y"}]}}"#;
        let item = partial_image(text, &["b "], "_hw").unwrap();
        let image = Image {
            text: Cow::Borrowed(text),
            picked: None,
        };
        assert_eq!(image.picked(&["b "], "_hw").unwrap(), item);
        assert_eq!(item.len(), 2);
        let AttributeValue::M(stamp) = &item["_hw"] else {
            panic!()
        };
        assert_eq!(stamp.get("o"), Some(&AttributeValue::S("us-east-1".into())));
        assert_eq!(item.get("b "), Some(&AttributeValue::N("1".into())));
        assert_eq!(full_image(text).unwrap().len(), 4);
        assert!(partial_image(r#"{"_hw":{"Q":1}}"#, &[], "_hw").is_err());
    }

    #[test]
    fn the_pass_reads_the_samples_in_one_go_as_serde_does() {
        for name in SAMPLES {
            let text = sample(name);
            assert_eq!(pass_agrees(&text, &pick()), Some(true), "{name}");
            let event = Reader::new(&text)
                .event(&pick())
                .unwrap_or_else(|| panic!("{name}: the pass gave up"));
            for r in &event.records {
                for image in [&r.dynamodb.new_image, &r.dynamodb.old_image]
                    .into_iter()
                    .flatten()
                {
                    // Stamps and homes in their usual shapes: found on the
                    // way, and built from what was found.
                    let (by, picks) = image.picked.as_ref().unwrap();
                    let item = picks.item(by, image.text());
                    assert!(item.is_some(), "{name}: {}", image.text());
                    assert_eq!(
                        item,
                        partial_image(image.text(), &["src_region"], "_hw").ok()
                    );
                    let mut whole = Reader::new(image.text());
                    assert!(whole.item().is_some(), "{name}: {}", image.text());
                }
            }
        }
    }

    #[test]
    fn what_the_pass_does_not_read_is_read_as_serde_reads_it() {
        let image = r#"{"_hw":{"M":{"o":{"S":"us-east-1"},"t":{"N":"1"},"d":{"M":{"x":{"SS":["a"]}}}}},"src_region":{"S":"us-west-1"},"a":{"L":[1,2.5e-3,true,false,null,{},[]]}}"#;
        let event = |change: &str| {
            format!(
                r#"{{"Records":[{{"eventName":"MODIFY","awsRegion":"us-east-1","dynamodb":{{{change}}}}}]}}"#
            )
        };
        let with_images = |new: &str| {
            event(&format!(
                r#""Keys":{{"pk":{{"S":"k"}}}},"NewImage":{new},"OldImage":{image},"SequenceNumber":"1","ApproximateCreationDateTime":1764000000.5"#
            ))
        };
        let cases = [
            // Images the pass picks from, or leaves to triage.
            with_images(image),
            with_images("null"),
            with_images(r#""text""#),
            with_images("[1,2]"),
            with_images("{}"),
            with_images(r#"{"_hw":{"S":"x"}}"#),
            with_images(r#"{"_hw":{"M":{}, "S":"x"}}"#),
            with_images(r#"{"_hw":{"M":{"o":{"SS":["a"]}}}}"#),
            with_images(r#"{"_hw":{"M":{"o":{"S":"a","N":"1"}}}}"#),
            with_images(r#"{"_hw":{"M":{"o":{"Q":"a"}}}}"#),
            with_images(r#"{"_hw":{"M":{"o":{"S":"a\"b"}}}}"#),
            with_images(r#"{"_hw":{"M":{"o":{"S":"\u00e9"}}}}"#),
            with_images(r#"{"_h\u0077":{"M":{"o":{"S":"x"}}}}"#),
            with_images(r#"{"src_region":{"S":"a"},"src_region":{"N":"1"}}"#),
            with_images(r#"{"src_region":{"B":"aGk="}}"#),
            with_images(r#"{"src_region":{"M":{"a":{"M":{"b":{"M":{}}}}}}}"#),
            with_images(r#"{"x":"\ud800"}"#),
            with_images(r#"{"\ud800":1}"#),
            with_images(r#" { "_hw" : { "M" : { "o" : { "S" : "é" } } } } "#),
            with_images(&format!("{}1{}", "[".repeat(200), "]".repeat(200))),
            // Whole images of every type.
            with_images(
                r#"{"a":{"BOOL":true},"b":{"NULL":true},"c":{"L":[{"S":"x"},{"N":"1"},{"L":[]}]},"d":{"SS":["x","y"]},"e":{"NS":["1"]},"f":{"M":{}}}"#,
            ),
            with_images(r#"{"a":{"B":"aGk="},"b":{"BS":["aGk="]}}"#),
            with_images(r#"{"a":{"B":"not base64"}}"#),
            with_images(r#"{"a":{"BOOL":"true"}}"#),
            with_images(r#"{"a":{"NULL":null}}"#),
            with_images(r#"{"a":{"SS":["x	y"]}}"#),
            with_images(r#"{"a":{"SS":null}}"#),
            with_images(r#"{"a":{}}"#),
            with_images(r#"{"a":{"S":"x"},"a":{"N":"2"}}"#),
            with_images(&format!(
                r#"{{"src_region":{}{{"S":"x"}}{}}}"#,
                r#"{"L":["#.repeat(40),
                "]}".repeat(40)
            )),
            with_images(&format!(
                r#"{{"a":{}{{"S":"x"}}{}}}"#,
                r#"{"M":{"m":"#.repeat(70),
                "}}".repeat(70)
            )),
            // Envelopes the pass leaves to serde.
            event(r#""Keys":{"pk":{"S":"a"}},"Keys":{}"#),
            event(r#""Keys":{"pk":{"B":"aGk="}}"#),
            event(r#""Keys":null"#),
            event(r#""Keys":{"pk":{"S":"a\u0000"}}"#),
            event(r#""SequenceNumber":null,"ApproximateCreationDateTime":null"#),
            event(r#""SequenceNumber":1"#),
            event(r#""SequenceNumber":"a\nb""#),
            event(r#""ApproximateCreationDateTime":"1""#),
            event(r#""ApproximateCreationDateTime":1e999"#),
            event(r#""ApproximateCreationDateTime":-0.0e+1"#),
            event(r#""NewI\u006dage":{}"#),
            event(r#""NewImage":{},"NewImage":{}"#),
            event(r#""NewImage":nul"#),
            event(r#""NewImage":{"a":01}"#),
            event(r#""NewImage":{"a":1.}"#),
            event(r#""NewImage":{"a":"\x"}"#),
            event(r#""NewImage":{"a":"x	y"}"#),
            event(r#""NewImage":{"a":[1,]}"#),
            event(r#""NewImage":{"a":{,}}"#),
            event(r#""NewImage":{"a":1,}"#),
            event(r#""NewImage":{"a":tru}"#),
            event(r#""NewImage":{"a":[{"S":"x"}{}]}"#),
            event(r#""NewImage":{"a":[{"S":"x"},{"S":"y" , "N":"1"}]}"#),
            event(r#""NewImage":{"a":{"S":"x"]}"#),
            event(r#""NewImage":{"a":{"S":"x"}"#),
            event(r#""NewImage":{"a":{"S":"x\"}}"#),
            r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}]}"#.into(),
            r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":null}]}"#.into(),
            r#"{"Records":[{"eventName":"INSERT","dynamodb":{},"userIdentity":[]}]}"#.into(),
            r#"{"Records":[{"eventName":"INS\u0045RT","dynamodb":{}}]}"#.into(),
            r#"{"Records":[{"eventName":"INSERT","awsRegion":null,"dynamodb":{}}]}"#.into(),
            r#"{"Records":[{"eventName":"INSERT"}]}"#.into(),
            r#"{"Records":[{"dynamodb":{}}]}"#.into(),
            r#"{"Records":[["INSERT","us-east-1",null,{}]]}"#.into(),
            r#"{"Records":[]} "#.into(),
            r#"{"Records":[]} x"#.into(),
            r#"{"Records":[],"Records":[]}"#.into(),
            r#"{"Records":null}"#.into(),
            r#"{"other":1}"#.into(),
            r#"[[]]"#.into(),
            "".into(),
        ];
        for text in &cases {
            assert_ne!(pass_agrees(text, &pick()), Some(false), "{text}");
        }
        // The usual image is picked on the way; an odd one is read from its
        // text as before.
        let picked = |text: &str| {
            let event = StreamEvent::parse_picking(text, &pick()).unwrap();
            let image = event.records[0].dynamodb.new_image.clone().unwrap();
            image.picked.is_some()
        };
        assert!(picked(&cases[0]));
        assert!(!picked(&cases[12]));
    }

    #[test]
    fn mangled_events_read_as_serde_reads_them() {
        // Cheap fuzzing: random edits of the samples, with characters that
        // matter to JSON.
        const ALPHABET: &[u8] = b"{}[]\",:\\ 0123456789.eE+-tfnulrsaSNMu\n\x01";
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut agreed = 0;
        for name in SAMPLES {
            let original = sample(name).into_bytes();
            for _ in 0..300 {
                let mut bytes = original.clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..bytes.len());
                    let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
                    match rng.random_range(0..3) {
                        0 => bytes[at] = c,
                        1 => bytes.insert(at, c),
                        _ => {
                            bytes.remove(at);
                        }
                    }
                }
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                let verdict = pass_agrees(text, &pick());
                assert_ne!(verdict, Some(false), "{text}");
                agreed += usize::from(verdict == Some(true));
            }
        }
        // Many edits leave a readable event (inside strings, mostly).
        assert!(agreed > 300, "{agreed}");
    }

    #[test]
    fn owned_events_keep_what_was_picked() {
        let text = sample("foreign-write");
        let event = StreamEvent::parse_picking(&text, &pick()).unwrap();
        let owned = event.clone().into_owned();
        assert_eq!(
            owned.records[0].dynamodb.keys,
            event.records[0].dynamodb.keys
        );
        let (a, b) = (&owned.records[0].dynamodb, &event.records[0].dynamodb);
        let (a, b) = (a.new_image.as_ref().unwrap(), b.new_image.as_ref().unwrap());
        assert_eq!(a.text(), b.text());
        assert_eq!(
            a.picked(&["src_region"], "_hw").unwrap(),
            b.picked(&["src_region"], "_hw").unwrap()
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let from_value = StreamEvent::from_value(&value).unwrap();
        assert_eq!(from_value.records.len(), 1);
        let lambda: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&text).unwrap();
        assert_eq!(StreamEvent::from_lambda(&lambda).unwrap().records.len(), 1);
    }
}
