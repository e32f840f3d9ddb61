//! The stamp's wire format: how a [`Version`] is read from and written to a
//! DynamoDB item. One map attribute (default name `_hw`):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `o` | S | Region that wrote this version |
//! | `t` | N | write time at the origin, epoch ms |
//! | `by` | S | `app` or `resolver` |
//! | `dot` | S | this version's own dot, `region:counter:nonce` (nonce base 36) |
//! | `k` | M | Region -> S, the window of known dots, `counter:nonce` separated by spaces |
//! | `d` | M | `region:counter:nonce:time_ms` -> SS, the attributes whose last edit is that dot (absent from the item: removed) |
//! | `s` | M | attribute -> L of M {`at`: S timed dot, `v`: value, absent when the edit removed it}: concurrent edits kept for the rule |
//! | `c` | M | counter attribute -> M Region -> S `base watermark counter:nonce:delta ...` |
//! | `h`, `e` | S, N | home Region and home epoch, when the stamp records the home |
//! | `m` | M | foreign writes counted towards an `after N` re-home: Region -> S `counter:time_ms ...` (its latest 16) |
//!
//! Decoding is strict: a malformed field is a [`StampError`] naming it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_dynamo::{AttributeValue, Item};

use crate::dot::{Region, Tick, TimedDot};
use crate::error::StampError;
use crate::version::{
    counter_total, Contribution, Counter, Header, Home, PendingMove, Register, Sibling, Version,
    WriterKind,
};

/// Default name of the stamp attribute.
pub const DEFAULT_STAMP_ATTRIBUTE: &str = "_hw";

/// What the codec needs to know about the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub stamp_attribute: String,
    pub partition_key: String,
    pub sort_key: Option<String>,
}

impl Schema {
    pub fn new(partition_key: &str, sort_key: Option<&str>) -> Self {
        Schema {
            stamp_attribute: DEFAULT_STAMP_ATTRIBUTE.to_owned(),
            partition_key: partition_key.to_owned(),
            sort_key: sort_key.map(str::to_owned),
        }
    }

    pub fn with_stamp_attribute(mut self, name: &str) -> Self {
        self.stamp_attribute = name.to_owned();
        self
    }

    pub fn key_attributes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.partition_key.as_str()).chain(self.sort_key.as_deref())
    }

    pub fn is_reserved(&self, attribute: &str) -> bool {
        attribute == self.stamp_attribute || self.key_attributes().any(|k| k == attribute)
    }

    /// Just the key attributes of `item`.
    ///
    /// # Errors
    /// [`StampError::MissingKey`] naming the first missing key attribute.
    pub fn key_of(&self, item: &Item) -> Result<BTreeMap<String, AttributeValue>, StampError> {
        self.key_attributes()
            .map(|k| {
                item.get(k)
                    .map(|v| (k.to_owned(), v.clone()))
                    .ok_or_else(|| StampError::MissingKey(k.to_owned()))
            })
            .collect()
    }

    /// Decodes a stamped item.
    ///
    /// # Errors
    /// A [`StampError`] naming what is missing or malformed.
    pub fn decode(&self, item: &Item) -> Result<Version, StampError> {
        let key = self.key_of(item)?;
        let stamp = match item.get(&self.stamp_attribute) {
            Some(AttributeValue::M(m)) => m,
            Some(_) => return Err(StampError::field(&self.stamp_attribute, "not a map")),
            None => return Err(StampError::Missing(self.stamp_attribute.clone())),
        };
        let header = decode_header(stamp)?;

        let mut known = BTreeMap::new();
        for (region, ticks) in map(stamp, "k")? {
            let AttributeValue::S(text) = ticks else {
                return Err(StampError::field(
                    "k",
                    format!("`{region}` is not a string"),
                ));
            };
            let window = text
                .split_ascii_whitespace()
                .map(Tick::decode)
                .collect::<Result<BTreeSet<_>, _>>()?;
            known.insert(Region::parse(region)?, window);
        }

        let mut counters = BTreeMap::new();
        if let Some(c) = optional_map(stamp, "c")? {
            for (attribute, per_region) in c {
                counters.insert(attribute.clone(), decode_counter(attribute, per_region)?);
            }
        }

        let mut attrs = BTreeMap::new();
        if let Some(d) = optional_map(stamp, "d")? {
            for (at, names) in d {
                let at = TimedDot::decode(at)?;
                let AttributeValue::Ss(names) = names else {
                    return Err(StampError::field(
                        "d",
                        format!("`{}` is not a string set", at.encode()),
                    ));
                };
                for name in names {
                    let sibling = Sibling {
                        at: at.clone(),
                        value: item.get(name).cloned(),
                    };
                    if attrs.insert(name.clone(), Register::One(sibling)).is_some() {
                        return Err(StampError::field(
                            "d",
                            format!("attribute `{name}` has two dots"),
                        ));
                    }
                }
            }
        }
        if let Some(s) = optional_map(stamp, "s")? {
            for (name, list) in s {
                let register = decode_siblings(name, list, item.get(name).cloned())?;
                if attrs.insert(name.clone(), register).is_some() {
                    return Err(StampError::field(
                        "s",
                        format!("attribute `{name}` is also in `d`"),
                    ));
                }
            }
        }

        for (name, value) in item.iter() {
            if self.is_reserved(name) {
                continue;
            }
            if let Some(counter) = counters.get(name) {
                let expected = counter_total(counter);
                if *value != AttributeValue::N(expected.to_string()) {
                    return Err(StampError::CounterMismatch {
                        attribute: name.clone(),
                        found: describe(value),
                        expected,
                    });
                }
            } else if !attrs.contains_key(name) {
                return Err(StampError::UndottedAttribute(name.clone()));
            }
        }

        let home = decode_home(stamp)?;

        Ok(Version {
            key,
            header,
            known,
            attrs,
            counters,
            home,
        })
    }

    /// Encodes a version as a full item: key, shown values, stamp.
    pub fn encode(&self, version: &Version) -> Item {
        let mut item: HashMap<String, AttributeValue> = version.key.clone().into_iter().collect();
        item.extend(version.values());
        item.insert(self.stamp_attribute.clone(), encode_stamp(version));
        Item::from(item)
    }
}

/// The header of a stamp map: who wrote the version, when, and its dot.
///
/// # Errors
/// [`StampError`] naming the malformed field.
/// The home the stamp records, if any (fields `h`, `e`, `m`).
///
/// # Errors
/// A malformed home field.
pub fn decode_home(stamp: &HashMap<String, AttributeValue>) -> Result<Option<Home>, StampError> {
    let (region, epoch) = match (stamp.get("h"), stamp.get("e")) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => (Region::parse(string(stamp, "h")?)?, number(stamp, "e")?),
        _ => return Err(StampError::field("h", "`h` and `e` come together")),
    };
    let pending = match stamp.get("m") {
        None => None,
        Some(AttributeValue::M(m)) => {
            let mut writes = BTreeMap::new();
            for (region, list) in m {
                let AttributeValue::S(list) = list else {
                    return Err(StampError::field("m", "a Region's writes are not a string"));
                };
                let mut kept = BTreeSet::new();
                for pair in list.split_whitespace() {
                    let parsed = pair
                        .split_once(':')
                        .and_then(|(c, t)| Some((c.parse().ok()?, t.parse().ok()?)));
                    kept.insert(parsed.ok_or_else(|| {
                        StampError::field("m", "writes are `counter:time_ms` pairs")
                    })?);
                }
                writes.insert(Region::parse(region)?, kept);
            }
            Some(PendingMove { writes })
        }
        Some(_) => return Err(StampError::field("m", "not a map")),
    };
    Ok(Some(Home {
        epoch,
        region,
        pending,
    }))
}

pub fn decode_header(stamp: &HashMap<String, AttributeValue>) -> Result<Header, StampError> {
    let origin = Region::parse(string(stamp, "o")?)?;
    let time_ms = number(stamp, "t")?;
    let by = match string(stamp, "by")? {
        "app" => WriterKind::App,
        "resolver" => WriterKind::Resolver,
        other => {
            return Err(StampError::field(
                "by",
                format!("`{other}` is neither app nor resolver"),
            ))
        }
    };
    let dot = crate::dot::Dot::decode(string(stamp, "dot")?)?;
    if dot.region != origin {
        return Err(StampError::field("dot", "its Region differs from `o`"));
    }
    Ok(Header {
        origin,
        time_ms,
        by,
        tick: dot.tick,
    })
}

/// The stamp map alone.
pub fn encode_stamp(version: &Version) -> AttributeValue {
    let h = &version.header;
    let mut stamp = HashMap::new();
    stamp.insert("o".into(), AttributeValue::S(h.origin.to_string()));
    stamp.insert("t".into(), AttributeValue::N(h.time_ms.to_string()));
    stamp.insert("by".into(), AttributeValue::S(h.by.as_str().into()));
    stamp.insert("dot".into(), AttributeValue::S(h.dot().encode()));

    let known = version
        .known
        .iter()
        .map(|(region, window)| {
            // Highest first: a reader sees the latest dots at a glance.
            let text: Vec<String> = window.iter().rev().map(Tick::encode).collect();
            (region.to_string(), AttributeValue::S(text.join(" ")))
        })
        .collect();
    stamp.insert("k".into(), AttributeValue::M(known));

    let mut by_dot: BTreeMap<&TimedDot, Vec<String>> = BTreeMap::new();
    let mut multi = HashMap::new();
    for (name, register) in &version.attrs {
        match register {
            Register::One(s) => by_dot.entry(&s.at).or_default().push(name.clone()),
            Register::Many { siblings, .. } => {
                let list = siblings
                    .iter()
                    .map(|s| {
                        let mut m = HashMap::new();
                        m.insert("at".to_owned(), AttributeValue::S(s.at.encode()));
                        if let Some(v) = &s.value {
                            m.insert("v".to_owned(), v.clone());
                        }
                        AttributeValue::M(m)
                    })
                    .collect();
                multi.insert(name.clone(), AttributeValue::L(list));
            }
        }
    }
    if !by_dot.is_empty() {
        let d = by_dot
            .into_iter()
            .map(|(at, names)| (at.encode(), AttributeValue::Ss(names)))
            .collect();
        stamp.insert("d".into(), AttributeValue::M(d));
    }
    if !multi.is_empty() {
        stamp.insert("s".into(), AttributeValue::M(multi));
    }
    if !version.counters.is_empty() {
        let c = version
            .counters
            .iter()
            .map(|(name, counter)| (name.clone(), AttributeValue::M(encode_counter(counter))))
            .collect();
        stamp.insert("c".into(), AttributeValue::M(c));
    }
    if let Some(home) = &version.home {
        stamp.insert("h".into(), AttributeValue::S(home.region.to_string()));
        stamp.insert("e".into(), AttributeValue::N(home.epoch.to_string()));
        if let Some(p) = &home.pending {
            let m = p
                .writes
                .iter()
                .map(|(region, kept)| {
                    let list: Vec<String> = kept.iter().map(|(c, t)| format!("{c}:{t}")).collect();
                    (region.to_string(), AttributeValue::S(list.join(" ")))
                })
                .collect();
            stamp.insert("m".into(), AttributeValue::M(m));
        }
    }
    AttributeValue::M(stamp)
}

fn encode_counter(counter: &Counter) -> HashMap<String, AttributeValue> {
    counter
        .iter()
        .map(|(region, c)| {
            let mut text = format!("{} {}", c.base, c.watermark);
            for (tick, delta) in &c.deltas {
                text.push_str(&format!(" {}:{}", tick.encode(), delta));
            }
            (region.to_string(), AttributeValue::S(text))
        })
        .collect()
}

fn decode_counter(attribute: &str, value: &AttributeValue) -> Result<Counter, StampError> {
    let field = format!("c.{attribute}");
    let AttributeValue::M(per_region) = value else {
        return Err(StampError::field(&field, "not a map"));
    };
    let mut counter = Counter::new();
    for (region, text) in per_region {
        let AttributeValue::S(text) = text else {
            return Err(StampError::field(
                &field,
                format!("`{region}` is not a string"),
            ));
        };
        let bad = || {
            StampError::field(
                &field,
                format!("`{text}` is not `base watermark counter:nonce:delta ...`"),
            )
        };
        let mut parts = text.split_ascii_whitespace();
        let base = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let watermark = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let mut deltas = BTreeMap::new();
        for part in parts {
            let (tick, delta) = part.rsplit_once(':').ok_or_else(bad)?;
            deltas.insert(
                Tick::decode(tick).map_err(|_| bad())?,
                delta.parse().map_err(|_| bad())?,
            );
        }
        counter.insert(
            Region::parse(region)?,
            Contribution {
                base,
                watermark,
                deltas,
            },
        );
    }
    Ok(counter)
}

fn decode_siblings(
    name: &str,
    list: &AttributeValue,
    shown: Option<AttributeValue>,
) -> Result<Register, StampError> {
    let field = format!("s.{name}");
    let AttributeValue::L(list) = list else {
        return Err(StampError::field(&field, "not a list"));
    };
    let mut siblings = Vec::with_capacity(list.len());
    for entry in list {
        let AttributeValue::M(m) = entry else {
            return Err(StampError::field(&field, "an entry is not a map"));
        };
        siblings.push(Sibling {
            at: TimedDot::decode(
                string(m, "at").map_err(|_| StampError::field(&field, "an entry lacks `at`"))?,
            )?,
            value: m.get("v").cloned(),
        });
    }
    if siblings.len() < 2 {
        return Err(StampError::field(&field, "fewer than two concurrent edits"));
    }
    siblings.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(Register::Many { siblings, shown })
}

fn string<'a>(m: &'a HashMap<String, AttributeValue>, field: &str) -> Result<&'a str, StampError> {
    match m.get(field) {
        Some(AttributeValue::S(s)) => Ok(s),
        Some(_) => Err(StampError::field(field, "not a string")),
        None => Err(StampError::field(field, "missing")),
    }
}

fn number(m: &HashMap<String, AttributeValue>, field: &str) -> Result<u64, StampError> {
    match m.get(field) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| StampError::field(field, format!("`{n}` is not a whole number"))),
        Some(_) => Err(StampError::field(field, "not a number")),
        None => Err(StampError::field(field, "missing")),
    }
}

fn map<'a>(
    m: &'a HashMap<String, AttributeValue>,
    field: &str,
) -> Result<&'a HashMap<String, AttributeValue>, StampError> {
    optional_map(m, field)?.ok_or_else(|| StampError::field(field, "missing"))
}

fn optional_map<'a>(
    m: &'a HashMap<String, AttributeValue>,
    field: &str,
) -> Result<Option<&'a HashMap<String, AttributeValue>>, StampError> {
    match m.get(field) {
        Some(AttributeValue::M(inner)) => Ok(Some(inner)),
        Some(_) => Err(StampError::field(field, "not a map")),
        None => Ok(None),
    }
}

/// A short description of a value for error messages.
pub(crate) fn describe(value: &AttributeValue) -> String {
    match value {
        AttributeValue::N(n) => n.clone(),
        AttributeValue::S(s) => format!("{s:?}"),
        other => format!("a {} value", crate::rules::type_name(other)),
    }
}
