//! A foreign write's image read straight from its text to the [`Version`]
//! the resolver merges, without building its item first: no hash map of
//! the attributes, none of the stamp's fields, and each value moved into
//! the version rather than copied.
//!
//! It reads only images in the usual shape whose stamp accounts for every
//! attribute (no plain writer's edit): exactly the images for which
//! [`Schema::decode`] of the whole item succeeds and `adopt` changes
//! nothing. Any other image, and any error, is `None`: the caller reads
//! the item whole and decodes it, which names the error.
//! [`version_agrees`] checks the two readings against each other (the
//! tests and the `event` fuzz target run it).

use std::collections::{BTreeMap, HashMap};

use homeward::stamp::{
    decode_counter, decode_header_from, decode_home_from, decode_window, MAX_REGIONS,
};
use homeward::version::{counter_total, Register, Sibling};
use homeward::{Schema, TimedDot, Version};
use serde_dynamo::AttributeValue;

use super::envelope::once;
use super::glimpse::{Fields, HeaderText};
use super::reader::Reader;
use super::{header_field, Image, Kind};

impl Image<'_> {
    /// The image as [`Schema::decode`] reads its whole item, read straight
    /// from the text; `None` unless the image is in the usual shape and its
    /// stamp accounts for every attribute.
    pub fn version(&self, schema: &Schema) -> Option<Version> {
        read_version(self.text(), schema)
    }
}

/// Whether [`Image::version`] reads `image` as `Schema::decode` reads its
/// whole item: the same version, when it reads one. For the tests and the
/// fuzz targets: it does not panic.
pub fn version_agrees(image: &Image, schema: &Schema) -> bool {
    match image.version(schema) {
        None => true,
        Some(version) => image
            .whole()
            .ok()
            .and_then(|item| schema.decode(&item).ok())
            .is_some_and(|decoded| decoded == version),
    }
}

/// The stamp's fields, as slices of the image's text (the counters' small
/// maps excepted).
#[derive(Default)]
struct StampText<'a> {
    /// The header fields, in the order of `STAMP_HEADER_FIELDS` (`k` is
    /// read into `known`).
    fields: [Option<(Kind, &'a str)>; 7],
    /// `k`: each Region and its window.
    known: Option<Vec<(&'a str, &'a str)>>,
    /// `d`: each timed dot and the attributes it last edited.
    dots: Option<Vec<(&'a str, Vec<&'a str>)>>,
    /// `c`: each counter attribute and its contributions.
    counters: Option<HashMap<String, AttributeValue>>,
}

impl HeaderText for StampText<'_> {
    fn field(&self, name: &str) -> Option<(Kind, Option<&str>)> {
        let (kind, text) = self.fields[header_field(name)?]?;
        Some((kind, Some(text)))
    }
}

fn read_version(text: &str, schema: &Schema) -> Option<Version> {
    let mut r = Reader::new(text);
    // Every attribute but the stamp, sorted by name: each value is taken
    // (moved) by the version as it is found.
    let mut attributes: Vec<(&str, Option<AttributeValue>)> = Vec::with_capacity(32);
    let mut stamp = None;
    r.ws();
    r.members(|r, name, escaped| {
        if escaped {
            return None;
        }
        if name == schema.stamp_attribute {
            if stamp.is_some() {
                return None;
            }
            stamp = Some(r.stamp_text()?);
        } else {
            attributes.push((name, Some(r.value(0)?)));
        }
        Some(())
    })?;
    r.end()?;
    let stamp = stamp?;
    attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if attributes.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let find = |attributes: &[(&str, Option<AttributeValue>)], name: &str| {
        attributes.binary_search_by(|(n, _)| (*n).cmp(name)).ok()
    };

    let mut key = BTreeMap::new();
    for k in schema.key_attributes() {
        let value = attributes[find(&attributes, k)?].1.clone()?;
        key.insert(k.to_owned(), value);
    }
    let header = decode_header_from(&Fields(&stamp)).ok()?;

    let known_text = stamp.known.as_ref()?;
    if known_text.len() > MAX_REGIONS {
        return None;
    }
    let mut known = BTreeMap::new();
    for (region, window) in known_text {
        let (region, window) = decode_window(region, window).ok()?;
        if known.insert(region, window).is_some() {
            return None;
        }
    }

    let mut counters = BTreeMap::new();
    for (attribute, per_region) in stamp.counters.iter().flatten() {
        counters.insert(
            attribute.clone(),
            decode_counter(attribute, per_region).ok()?,
        );
    }

    // The dotted attributes, sorted by name like `attributes`: one walk
    // down both finds each value, and the map is built from sorted pairs.
    let dots = stamp.dots.as_deref().unwrap_or_default();
    // A dot twice in `d`: the item keeps the last (serde decides).
    let mut dot_texts: Vec<&str> = dots.iter().map(|(at, _)| *at).collect();
    dot_texts.sort_unstable();
    if dot_texts.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let mut dotted: Vec<(&str, usize)> = Vec::with_capacity(attributes.len());
    for (i, (_, names)) in dots.iter().enumerate() {
        dotted.extend(names.iter().map(|name| (*name, i)));
    }
    dotted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if dotted.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let at: Vec<TimedDot> = dots
        .iter()
        .map(|(at, _)| TimedDot::decode(at).ok())
        .collect::<Option<_>>()?;
    let mut registers = Vec::with_capacity(dotted.len());
    let mut next = 0;
    for (name, dot) in dotted {
        if name == schema.stamp_attribute {
            return None;
        }
        while attributes.get(next).is_some_and(|(n, _)| *n < name) {
            next += 1;
        }
        let value = match attributes.get_mut(next) {
            Some((n, value)) if *n == name => {
                // A counter's value is checked against its contributions
                // below; every other value moves into the version.
                if counters.contains_key(name) {
                    value.clone()
                } else {
                    value.take()
                }
            }
            _ => None,
        };
        let sibling = Sibling {
            at: at[dot].clone(),
            value,
        };
        registers.push((name.to_owned(), Register::One(sibling)));
    }
    let attrs: BTreeMap<String, Register> = registers.into_iter().collect();

    // Every attribute is accounted for: a counter holds the sum of its
    // contributions, any other attribute has a dot (its value was taken).
    for (name, value) in &attributes {
        if schema.is_reserved(name) {
            continue;
        }
        match counters.get(*name) {
            Some(counter) => {
                let total = counter_total(counter).ok()?.to_string();
                if !matches!(value, Some(AttributeValue::N(n)) if *n == total) {
                    return None;
                }
            }
            None if value.is_some() => return None,
            None => {}
        }
    }

    let home = decode_home_from(&Fields(&stamp)).ok()?;
    let version = Version {
        key,
        header,
        known,
        attrs,
        counters,
        home,
    };
    version.check_arithmetic().ok()?;
    Some(version)
}

impl<'a> Reader<'a> {
    /// A stamp, `{"M": {...}}`, as text; `None` when it is not in the
    /// usual shape, or has siblings (`s`) or pending moves (`m`).
    fn stamp_text(&mut self) -> Option<StampText<'a>> {
        let mut stamp = StampText::default();
        self.tagged_map(|r, name| {
            match name {
                "k" => {
                    let mut windows = Vec::new();
                    r.tagged_map(|r, region| {
                        windows.push((region, r.tagged("S")?));
                        Some(())
                    })?;
                    once(&mut stamp.known, windows)
                }
                "d" => {
                    let mut dots = Vec::new();
                    r.tagged_map(|r, at| {
                        dots.push((at, r.string_set()?));
                        Some(())
                    })?;
                    once(&mut stamp.dots, dots)
                }
                "c" => match r.value(1)? {
                    AttributeValue::M(counters) => once(&mut stamp.counters, counters),
                    _ => None,
                },
                "s" | "m" => None,
                _ => match header_field(name) {
                    Some(i) => {
                        let found = match r.tagged("S") {
                            Some(text) => (Kind::S, text),
                            None => (Kind::N, r.tagged("N")?),
                        };
                        once(&mut stamp.fields[i], found)
                    }
                    // Read as the whole item reads it (it must read).
                    None => r.value(1).map(drop),
                },
            }
        })?;
        Some(stamp)
    }

    /// `{"<tag>": "<text>"}` with a plain text, else `None` and the reader
    /// unmoved.
    fn tagged(&mut self, tag: &str) -> Option<&'a str> {
        let start = self.at;
        let read = (|| {
            self.byte(b'{')?;
            self.ws();
            if self.name()? != (tag, false) {
                return None;
            }
            let text = self.plain()?;
            self.ws();
            self.byte(b'}')?;
            Some(text)
        })();
        if read.is_none() {
            self.at = start;
        }
        read
    }

    /// `{"M": {"<name>": <value>, ...}}`, each member read by `each`
    /// (names without escapes).
    fn tagged_map(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.byte(b'{')?;
        self.ws();
        if self.name()? != ("M", false) {
            return None;
        }
        self.members(|r, name, escaped| if escaped { None } else { each(r, name) })?;
        self.ws();
        self.byte(b'}')
    }

    /// `{"SS": ["<text>", ...]}` with plain texts.
    fn string_set(&mut self) -> Option<Vec<&'a str>> {
        self.byte(b'{')?;
        self.ws();
        if self.name()? != ("SS", false) {
            return None;
        }
        let mut names = Vec::new();
        self.elements(|r| {
            names.push(r.plain()?);
            Some(())
        })?;
        self.ws();
        self.byte(b'}')?;
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::event::Pick;
    use crate::StreamEvent;
    use std::sync::Arc;

    fn schema() -> Schema {
        Schema::new("pk", Some("sk"))
    }

    /// Every image of `event` read both ways; how many read from text.
    fn read_both_ways(event: &Value) -> usize {
        let text = event.to_string();
        let pick = Arc::new(Pick::new(&["home_region"], "_hw"));
        let event = StreamEvent::parse_picking(&text, &pick).unwrap();
        let mut read = 0;
        for r in &event.records {
            for image in [&r.dynamodb.new_image, &r.dynamodb.old_image]
                .into_iter()
                .flatten()
            {
                assert!(version_agrees(image, &schema()), "{}", image.text());
                read += usize::from(image.version(&schema()).is_some());
            }
        }
        read
    }

    #[test]
    fn a_batch_reads_from_text_as_from_items() {
        let batch = homeward::fixtures::stream_batch(0..40);
        assert_eq!(read_both_ways(&batch), 80);
    }

    /// A foreign write's new image, changed by `edit`: whether it was read
    /// from its text (it agrees with its item either way).
    fn edited(edit: impl Fn(&mut serde_json::Map<String, Value>)) -> bool {
        let mut batch = homeward::fixtures::stream_batch(0..1);
        let image = batch["Records"][0]["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap();
        edit(image);
        let mut event = batch.clone();
        event["Records"][0]["dynamodb"]
            .as_object_mut()
            .unwrap()
            .remove("OldImage");
        read_both_ways(&event) == 1
    }

    fn stamp(image: &mut serde_json::Map<String, Value>) -> &mut serde_json::Map<String, Value> {
        image["_hw"]["M"].as_object_mut().unwrap()
    }

    /// The first dot's attribute list in `d`.
    fn first_dot(image: &mut serde_json::Map<String, Value>) -> &mut Vec<Value> {
        let d = stamp(image)["d"]["M"].as_object_mut().unwrap();
        let first = d.keys().next().unwrap().clone();
        d[&first]["SS"].as_array_mut().unwrap()
    }

    #[test]
    fn usual_images_read_from_text() {
        // Unchanged.
        assert!(edited(|_| {}));
        // An attribute the stamp dots but the item no longer holds.
        assert!(edited(|i| {
            i.remove("attr_02");
        }));
        // Values of every type the reader builds, dotted.
        assert!(edited(|i| {
            for (name, value) in [
                ("flag", json!({"BOOL": true})),
                ("none", json!({"NULL": true})),
                ("list", json!({"L": [{"S": "x"}, {"N": "1"}]})),
                ("map", json!({"M": {"a": {"SS": ["x"]}}})),
                ("numbers", json!({"NS": ["1", "2"]})),
            ] {
                i.insert(name.into(), value);
                first_dot(i).push(json!(name));
            }
        }));
        // A key attribute and a counter with a dot as well.
        assert!(edited(|i| first_dot(i).push(json!("pk"))));
        assert!(edited(|i| first_dot(i).push(json!("stock"))));
        // A stamp field the decoder does not read.
        assert!(edited(|i| {
            stamp(i).insert("zz".into(), json!({"S": "q"}));
        }));
    }

    #[test]
    fn other_images_are_left_to_their_items() {
        type Edit = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;
        let cases: Vec<Edit> = vec![
            // A plain writer's edits: adopted from the item.
            Box::new(|i| {
                i.insert("extra".into(), json!({"S": "x"}));
            }),
            Box::new(|i| {
                i.insert("stock".into(), json!({"N": "10"}));
            }),
            // Stamps in other shapes, or malformed.
            Box::new(|i| {
                stamp(i).insert("s".into(), json!({"M": {}}));
            }),
            Box::new(|i| {
                stamp(i).insert("m".into(), json!({"M": {}}));
            }),
            Box::new(|i| {
                stamp(i).remove("k");
            }),
            Box::new(|i| {
                stamp(i).insert("k".into(), json!({"M": {"nowhere!": {"S": "1:0"}}}));
            }),
            Box::new(|i| {
                stamp(i).insert("t".into(), json!({"S": "1"}));
            }),
            Box::new(|i| {
                stamp(i).insert("zz".into(), json!({"B": "aGk="}));
            }),
            Box::new(|i| first_dot(i).push(json!("_hw"))),
            Box::new(|i| first_dot(i).push(json!("attr_01"))),
            Box::new(|i| {
                i.insert("blob".into(), json!({"B": "aGk="}));
                first_dot(i).push(json!("blob"));
            }),
            // No key.
            Box::new(|i| {
                i.remove("sk");
            }),
        ];
        for (n, edit) in cases.iter().enumerate() {
            assert!(!edited(edit), "case {n} was read from its text");
        }
    }

    #[test]
    fn escapes_and_repeated_names_are_left_to_items() {
        let batch = homeward::fixtures::stream_batch(0..1);
        let text = batch.to_string();
        for (from, to) in [
            (r#""attr_02":"#, r#""attr_0\u0032":"#),
            (r#""attr_02":"#, r#""attr_03":{"N":"1"},"attr_02":"#),
            (r#""dot":"#, r#""o":{"S":"us-east-1"},"dot":"#),
            // A key attribute twice: the item keeps the second value.
            (
                r#""pk":{"S":"customer#000000"},"sk":{"S":"profile"},"stock""#,
                r#""pk":{"S":"other"},"pk":{"S":"customer#000000"},"sk":{"S":"profile"},"stock""#,
            ),
            // A dot twice in `d`: the item keeps the second list.
            (
                r#""us-east-1:1:3uw:1764000005000":{"SS":["attr_01"]}"#,
                r#""us-east-1:1:3uw:1764000005000":{"SS":["attr_01"]},"us-east-1:1:3uw:1764000005000":{"SS":["attr_99"]}"#,
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let changed = text.replacen(from, to, 1);
            let pick = Arc::new(Pick::new(&["home_region"], "_hw"));
            let event = StreamEvent::parse_picking(&changed, &pick).unwrap();
            let image = event.records[0].dynamodb.new_image.as_ref().unwrap();
            assert!(version_agrees(image, &schema()), "{to}");
            assert!(image.version(&schema()).is_none(), "{to}");
        }
    }
}
