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
//! It is also bounded: a stamp over one of the caps below is a
//! [`StampError::CapExceeded`] naming the cap, and a number that would
//! overflow on the next write or move (a dot counter at
//! [`crate::dot::MAX_COUNTER`], an epoch at [`crate::version::MAX_EPOCH`],
//! counter contributions whose sum leaves `i64`) a
//! [`StampError::Overflow`] naming the field. Errors name fields and
//! attributes, never an item's values.

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

/// Most Regions a stamp names in `k`, in one counter of `c`, or in `m`.
pub const MAX_REGIONS: usize = 64;

/// Most distinct counters in one Region's window of `k` (the largest
/// `DOT_WINDOW` a deployment may configure).
pub const MAX_WINDOW: usize = crate::merge::MAX_WINDOW;

/// Most dots in one Region's window of `k`, or deltas in one Region's
/// contribution of `c`: the window with room for forked dots (equal
/// counters, different nonces).
pub const MAX_WINDOW_TICKS: usize = 2 * MAX_WINDOW;

/// Most concurrent edits (siblings) of one attribute in `s`.
pub const MAX_SIBLINGS: usize = 64;

/// Most foreign writes of one Region in `m` (what a home copy keeps).
pub const MAX_PENDING_WRITES: usize = PendingMove::KEPT;

fn cap(cap: &'static str, field: &str, limit: usize) -> StampError {
    StampError::CapExceeded {
        cap,
        field: field.to_owned(),
        limit,
    }
}

/// What a stamp does not account for in its item: an edit by a writer
/// outside the protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum PlainEdit {
    /// An attribute with a value and no dot.
    Undotted(String),
    /// A counter whose value is not the sum of its contributions.
    CounterOff {
        attribute: String,
        found: AttributeValue,
    },
}

impl PlainEdit {
    pub fn attribute(&self) -> &str {
        match self {
            PlainEdit::Undotted(name)
            | PlainEdit::CounterOff {
                attribute: name, ..
            } => name,
        }
    }
}

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

    /// Decodes a stamped item written by the protocol. An item a plain
    /// writer changed is refused here; [`crate::adopt::adopt`] takes it in.
    ///
    /// # Errors
    /// A [`StampError`] naming what is missing or malformed.
    pub fn decode(&self, item: &Item) -> Result<Version, StampError> {
        let (version, plain) = self.decode_lenient(item)?;
        match plain.into_iter().next() {
            None => Ok(version),
            Some(PlainEdit::Undotted(name)) => Err(StampError::UndottedAttribute(name)),
            Some(PlainEdit::CounterOff { attribute, found }) => {
                let expected = version
                    .counters
                    .get(&attribute)
                    .map_or(Ok(0), counter_total)?;
                Err(StampError::CounterMismatch {
                    attribute,
                    found: describe(&found),
                    expected,
                })
            }
        }
    }

    /// Decodes a stamped item, listing (sorted by attribute) what its stamp
    /// does not account for: attributes without a dot and counters whose
    /// value is not the sum of their contributions (a plain writer's
    /// edits). The version shows those attributes as they were before.
    ///
    /// # Errors
    /// A [`StampError`] naming what is missing or malformed.
    pub fn decode_lenient(&self, item: &Item) -> Result<(Version, Vec<PlainEdit>), StampError> {
        let key = self.key_of(item)?;
        let stamp = match item.get(&self.stamp_attribute) {
            Some(AttributeValue::M(m)) => m,
            Some(_) => return Err(StampError::field(&self.stamp_attribute, "not a map")),
            None => return Err(StampError::Missing(self.stamp_attribute.clone())),
        };
        let header = decode_header(stamp)?;

        let mut known = BTreeMap::new();
        let k = map(stamp, "k")?;
        if k.len() > MAX_REGIONS {
            return Err(cap("MAX_REGIONS", "k", MAX_REGIONS));
        }
        for (region, ticks) in k {
            let AttributeValue::S(text) = ticks else {
                return Err(StampError::field(
                    "k",
                    format!("`{region}` is not a string"),
                ));
            };
            let (region, window) = decode_window(region, text)?;
            known.insert(region, window);
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
                let at = TimedDot::decode(at).map_err(|e| e.in_field("d"))?;
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

        let mut plain = Vec::new();
        for (name, value) in item.iter() {
            if self.is_reserved(name) {
                continue;
            }
            if let Some(counter) = counters.get(name) {
                let expected =
                    counter_total(counter).map_err(|e| e.in_field(&format!("c.{name}")))?;
                if *value != AttributeValue::N(expected.to_string()) {
                    plain.push(PlainEdit::CounterOff {
                        attribute: name.clone(),
                        found: value.clone(),
                    });
                }
            } else if !attrs.contains_key(name) {
                plain.push(PlainEdit::Undotted(name.clone()));
            }
        }
        plain.sort_by(|a, b| a.attribute().cmp(b.attribute()));

        let home = decode_home(stamp)?;

        let version = Version {
            key,
            header,
            known,
            attrs,
            counters,
            home,
        };
        // Every dot counter can take the next write, the epoch the next
        // move, and every counter's total fits the item.
        version.check_arithmetic()?;
        Ok((version, plain))
    }

    /// Encodes a version as a full item: key, shown values, stamp.
    pub fn encode(&self, version: &Version) -> Item {
        let mut item: HashMap<String, AttributeValue> = version.key.clone().into_iter().collect();
        item.extend(version.values());
        item.insert(self.stamp_attribute.clone(), encode_stamp(version));
        Item::from(item)
    }
}

/// The home the stamp records, if any (fields `h`, `e`, `m`).
///
/// # Errors
/// A malformed home field.
pub fn decode_home(stamp: &HashMap<String, AttributeValue>) -> Result<Option<Home>, StampError> {
    decode_home_from(stamp)
}

/// [`decode_home`] from a stamp's fields however they are read.
///
/// # Errors
/// A malformed home field.
pub fn decode_home_from(stamp: &impl StampFields) -> Result<Option<Home>, StampError> {
    let (region, epoch) = match (stamp.has("h"), stamp.has("e")) {
        (false, false) => return Ok(None),
        (true, true) => (Region::parse(stamp.string("h")?)?, stamp.number("e")?),
        _ => return Err(StampError::field("h", "`h` and `e` come together")),
    };
    // The next move takes `e + 1`: an epoch at the cap is refused here, so
    // that it can neither wrap nor pin the home.
    crate::version::next_epoch(epoch)?;
    let pending = match stamp.value("m") {
        None => None,
        Some(AttributeValue::M(m)) => {
            if m.len() > MAX_REGIONS {
                return Err(cap("MAX_REGIONS", "m", MAX_REGIONS));
            }
            let mut writes = BTreeMap::new();
            for (region, list) in m {
                let AttributeValue::S(list) = list else {
                    return Err(StampError::field("m", "a Region's writes are not a string"));
                };
                let mut kept = BTreeSet::new();
                for (i, pair) in list.split_whitespace().enumerate() {
                    if i >= MAX_PENDING_WRITES {
                        return Err(cap("MAX_PENDING_WRITES", "m", MAX_PENDING_WRITES));
                    }
                    let parsed = pair
                        .split_once(':')
                        .and_then(|(c, t)| Some((c.parse().ok()?, t.parse().ok()?)));
                    let (counter, time) = parsed.ok_or_else(|| {
                        StampError::field("m", "writes are `counter:time_ms` pairs")
                    })?;
                    crate::dot::check_counter(counter).map_err(|e| e.in_field("m"))?;
                    kept.insert((counter, time));
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

/// The header of a stamp map: who wrote the version, when, and its dot.
///
/// # Errors
/// [`StampError`] naming the malformed field.
pub fn decode_header(stamp: &HashMap<String, AttributeValue>) -> Result<Header, StampError> {
    decode_header_from(stamp)
}

/// [`decode_header`] from a stamp's fields however they are read.
///
/// # Errors
/// [`StampError`] naming the malformed field.
pub fn decode_header_from(stamp: &impl StampFields) -> Result<Header, StampError> {
    let origin = Region::parse(stamp.string("o")?)?;
    let time_ms = stamp.number("t")?;
    let by = match stamp.string("by")? {
        "app" => WriterKind::App,
        "resolver" => WriterKind::Resolver,
        other => {
            return Err(StampError::field(
                "by",
                format!("`{other}` is neither app nor resolver"),
            ))
        }
    };
    let dot = crate::dot::Dot::decode(stamp.string("dot")?).map_err(|e| e.in_field("dot"))?;
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

/// One Region's window of `k`: the Region and its known dots.
///
/// # Errors
/// A malformed tick or Region, or a window over its caps.
pub fn decode_window(region: &str, text: &str) -> Result<(Region, BTreeSet<Tick>), StampError> {
    let field = || format!("k.{region}");
    let mut window = BTreeSet::new();
    for (i, tick) in text.split_ascii_whitespace().enumerate() {
        if i >= MAX_WINDOW_TICKS {
            return Err(cap("MAX_WINDOW_TICKS", &field(), MAX_WINDOW_TICKS));
        }
        window.insert(Tick::decode(tick).map_err(|e| e.in_field(&field()))?);
    }
    let mut distinct: Vec<u64> = window.iter().map(|t| t.counter).collect();
    distinct.dedup();
    if distinct.len() > MAX_WINDOW {
        return Err(cap("MAX_WINDOW", &field(), MAX_WINDOW));
    }
    Ok((Region::parse(region)?, window))
}

/// One counter attribute's contributions (its entry in `c`).
///
/// # Errors
/// A malformed contribution, or one over its caps.
pub fn decode_counter(attribute: &str, value: &AttributeValue) -> Result<Counter, StampError> {
    let field = format!("c.{attribute}");
    let AttributeValue::M(per_region) = value else {
        return Err(StampError::field(&field, "not a map"));
    };
    if per_region.len() > MAX_REGIONS {
        return Err(cap("MAX_REGIONS", &field, MAX_REGIONS));
    }
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
        crate::dot::check_counter(watermark).map_err(|e| e.in_field(&field))?;
        let mut deltas = BTreeMap::new();
        for (i, part) in parts.enumerate() {
            if i >= MAX_WINDOW_TICKS {
                return Err(cap("MAX_WINDOW_TICKS", &field, MAX_WINDOW_TICKS));
            }
            let (tick, delta) = part.rsplit_once(':').ok_or_else(bad)?;
            let tick = Tick::decode(tick).map_err(|e| match e {
                StampError::Overflow { .. } => e.in_field(&field),
                _ => bad(),
            })?;
            deltas.insert(tick, delta.parse().map_err(|_| bad())?);
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
    if list.len() > MAX_SIBLINGS {
        return Err(cap("MAX_SIBLINGS", &field, MAX_SIBLINGS));
    }
    let mut siblings = Vec::with_capacity(list.len());
    for entry in list {
        let AttributeValue::M(m) = entry else {
            return Err(StampError::field(&field, "an entry is not a map"));
        };
        siblings.push(Sibling {
            at: TimedDot::decode(
                string(m, "at").map_err(|_| StampError::field(&field, "an entry lacks `at`"))?,
            )
            .map_err(|e| e.in_field(&field))?,
            value: m.get("v").cloned(),
        });
    }
    if siblings.len() < 2 {
        return Err(StampError::field(&field, "fewer than two concurrent edits"));
    }
    siblings.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(Register::Many { siblings, shown })
}

/// The fields of a stamp map, read where they are: the decoded map, or a
/// reader's view of the same fields in the JSON text.
pub trait StampFields {
    /// Whether the field is there.
    fn has(&self, field: &str) -> bool;
    /// A string field.
    ///
    /// # Errors
    /// When it is missing or not a string.
    fn string(&self, field: &str) -> Result<&str, StampError>;
    /// The text of a number field.
    ///
    /// # Errors
    /// When it is missing or not a number.
    fn number_text(&self, field: &str) -> Result<&str, StampError>;
    /// A field whose value is read whole (`None` when missing).
    fn value(&self, field: &str) -> Option<&AttributeValue>;

    /// A whole-number field.
    ///
    /// # Errors
    /// When it is missing, not a number, or not whole.
    fn number(&self, field: &str) -> Result<u64, StampError> {
        let n = self.number_text(field)?;
        n.parse()
            .map_err(|_| StampError::field(field, format!("`{n}` is not a whole number")))
    }
}

impl StampFields for HashMap<String, AttributeValue> {
    fn has(&self, field: &str) -> bool {
        self.contains_key(field)
    }

    fn string(&self, field: &str) -> Result<&str, StampError> {
        string(self, field)
    }

    fn number_text(&self, field: &str) -> Result<&str, StampError> {
        match self.get(field) {
            Some(AttributeValue::N(n)) => Ok(n),
            Some(_) => Err(StampError::field(field, "not a number")),
            None => Err(StampError::field(field, "missing")),
        }
    }

    fn value(&self, field: &str) -> Option<&AttributeValue> {
        self.get(field)
    }
}

fn string<'a>(m: &'a HashMap<String, AttributeValue>, field: &str) -> Result<&'a str, StampError> {
    match m.get(field) {
        Some(AttributeValue::S(s)) => Ok(s),
        Some(_) => Err(StampError::field(field, "not a string")),
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

/// A short description of a value for error messages: its type and size,
/// never the value itself (error texts reach logs; items hold personal data).
pub(crate) fn describe(value: &AttributeValue) -> String {
    format!(
        "a {} value of {} bytes",
        crate::rules::type_name(value),
        crate::size::value_size(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// A valid stamped item (three Regions, a counter, siblings-free).
    fn item() -> Item {
        let (x, _) = fixtures::concurrent_pair();
        fixtures::schema().encode(&x)
    }

    fn stamp(item: &mut Item) -> &mut HashMap<String, AttributeValue> {
        match item.get_mut(DEFAULT_STAMP_ATTRIBUTE) {
            Some(AttributeValue::M(m)) => m,
            _ => panic!("no stamp"),
        }
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    fn decode(item: &Item) -> Result<Version, StampError> {
        fixtures::schema().decode(item)
    }

    /// Overflow and cap errors name fields and caps, never a number read.
    fn assert_no_values(err: &StampError, values: &[&str]) {
        let text = err.to_string();
        for v in values {
            assert!(!text.contains(v), "{text} shows {v}");
        }
    }

    #[test]
    fn the_fixture_decodes() {
        decode(&item()).unwrap();
    }

    #[test]
    fn an_epoch_that_cannot_go_one_up_is_refused() {
        let mut it = item();
        stamp(&mut it).insert("h".into(), s("eu-west-1"));
        for (e, ok) in [
            (u64::MAX, false),
            (crate::version::MAX_EPOCH, false),
            (crate::version::MAX_EPOCH - 1, true),
        ] {
            stamp(&mut it).insert("e".into(), AttributeValue::N(e.to_string()));
            let got = decode(&it);
            assert_eq!(got.is_ok(), ok, "e = {e}: {got:?}");
            // The classifier reads the home alone: refused there too.
            assert_eq!(decode_home(stamp(&mut it)).is_ok(), ok, "e = {e}");
            if let Err(err) = got {
                assert!(
                    matches!(&err, StampError::Overflow { field, .. } if field == "e"),
                    "{err:?}"
                );
                assert_no_values(&err, &[&e.to_string()]);
            }
        }
    }

    #[test]
    fn a_dot_counter_that_cannot_go_one_up_is_refused() {
        let max = crate::dot::MAX_COUNTER;
        for counter in [u64::MAX, max + 1, max] {
            let mut it = item();
            let AttributeValue::M(mut k) = stamp(&mut it)["k"].clone() else {
                panic!()
            };
            k.insert("us-east-1".into(), s(&format!("{counter}:b 1:b")));
            stamp(&mut it).insert("k".into(), AttributeValue::M(k));
            let err = decode(&it).unwrap_err();
            assert!(
                matches!(&err, StampError::Overflow { field, .. } if field == "k.us-east-1"),
                "{err:?}"
            );
            assert_no_values(&err, &[&counter.to_string()]);
        }
        // The version's own dot, too.
        let mut it = item();
        let dot = match stamp(&mut it).get("dot") {
            Some(AttributeValue::S(d)) => d.clone(),
            _ => panic!(),
        };
        let region = dot.split(':').next().unwrap().to_owned();
        stamp(&mut it).insert("dot".into(), s(&format!("{region}:{}:b", u64::MAX)));
        let err = decode(&it).unwrap_err();
        assert!(
            matches!(&err, StampError::Overflow { field, .. } if field == "dot"),
            "{err:?}"
        );
    }

    #[test]
    fn counter_contributions_that_overflow_are_refused() {
        let mut it = item();
        let c = HashMap::from([(
            "stock".to_owned(),
            AttributeValue::M(HashMap::from([
                ("us-east-1".to_owned(), s("9223372036854775807 0 1:b:1")),
                ("eu-west-1".to_owned(), s("9223372036854775807 0")),
            ])),
        )]);
        stamp(&mut it).insert("c".into(), AttributeValue::M(c));
        it.insert("stock".into(), AttributeValue::N("1".into()));
        let err = decode(&it).unwrap_err();
        assert!(
            matches!(&err, StampError::Overflow { field, .. } if field == "c.stock"),
            "{err:?}"
        );
        assert_no_values(&err, &["9223372036854775807", "\"1\""]);
    }

    fn k_with(regions: usize, window: &str) -> AttributeValue {
        AttributeValue::M(
            (0..regions)
                .map(|i| (format!("r-{i}"), s(window)))
                .collect(),
        )
    }

    fn cap_of(err: &StampError) -> &'static str {
        match err {
            StampError::CapExceeded { cap, .. } => cap,
            other => panic!("not a cap: {other:?}"),
        }
    }

    #[test]
    fn caps_are_enforced_at_decode_and_named() {
        // Regions in `k`.
        let mut it = item();
        let mut k = match stamp(&mut it).get("k") {
            Some(AttributeValue::M(k)) => k.clone(),
            _ => panic!(),
        };
        let AttributeValue::M(many) = k_with(MAX_REGIONS, "1:a") else {
            panic!()
        };
        k.extend(many);
        stamp(&mut it).insert("k".into(), AttributeValue::M(k));
        let err = decode(&it).unwrap_err();
        assert_eq!(cap_of(&err), "MAX_REGIONS");
        assert!(err.to_string().contains("MAX_REGIONS"), "{err}");

        // Distinct counters, and dots, in one Region's window.
        let window = |n: u64, forks: u32| {
            let ticks: Vec<String> = (1..=n)
                .flat_map(|c| (0..forks).map(move |f| format!("{c}:{f}")))
                .collect();
            ticks.join(" ")
        };
        for (text, cap) in [
            (window(MAX_WINDOW as u64 + 1, 1), "MAX_WINDOW"),
            (window(MAX_WINDOW as u64, 3), "MAX_WINDOW_TICKS"),
        ] {
            let mut it = item();
            let AttributeValue::M(mut k) = stamp(&mut it)["k"].clone() else {
                panic!()
            };
            k.insert("us-east-1".into(), s(&text));
            stamp(&mut it).insert("k".into(), AttributeValue::M(k));
            let err = decode(&it).unwrap_err();
            assert_eq!(cap_of(&err), cap);
            assert!(
                matches!(&err, StampError::CapExceeded { field, .. } if field == "k.us-east-1")
            );
        }
        // The window a deployment may configure decodes.
        let mut it = item();
        let AttributeValue::M(mut k) = stamp(&mut it)["k"].clone() else {
            panic!()
        };
        let AttributeValue::S(east) = &k["us-east-1"] else {
            panic!()
        };
        let full = format!("{east} {}", window(MAX_WINDOW as u64 - 8, 1));
        k.insert("us-east-1".into(), s(&full));
        stamp(&mut it).insert("k".into(), AttributeValue::M(k));
        decode(&it).unwrap();

        // Siblings of one attribute.
        let mut it = item();
        let sibling = |i: usize| {
            AttributeValue::M(HashMap::from([
                ("at".to_owned(), s(&format!("us-east-1:{}:a:5", i + 1))),
                ("v".to_owned(), s("x")),
            ]))
        };
        let list = AttributeValue::L((0..=MAX_SIBLINGS).map(sibling).collect());
        stamp(&mut it).insert(
            "s".into(),
            AttributeValue::M(HashMap::from([("note".to_owned(), list)])),
        );
        it.insert("note".into(), s("x"));
        let err = decode(&it).unwrap_err();
        assert_eq!(cap_of(&err), "MAX_SIBLINGS");
        assert!(err.to_string().contains("s.note"), "{err}");

        // Deltas of one Region's counter contribution.
        let mut it = item();
        let deltas: Vec<String> = (1..=MAX_WINDOW_TICKS + 1)
            .map(|c| format!("{c}:a:0"))
            .collect();
        let c = HashMap::from([(
            "stock".to_owned(),
            AttributeValue::M(HashMap::from([(
                "us-east-1".to_owned(),
                s(&format!("0 0 {}", deltas.join(" "))),
            )])),
        )]);
        stamp(&mut it).insert("c".into(), AttributeValue::M(c));
        it.insert("stock".into(), AttributeValue::N("0".into()));
        assert_eq!(cap_of(&decode(&it).unwrap_err()), "MAX_WINDOW_TICKS");

        // Regions of one counter.
        let mut it = item();
        let per_region: HashMap<String, AttributeValue> = (0..=MAX_REGIONS)
            .map(|i| (format!("r-{i}"), s("0 0")))
            .collect();
        stamp(&mut it).insert(
            "c".into(),
            AttributeValue::M(HashMap::from([(
                "stock".to_owned(),
                AttributeValue::M(per_region),
            )])),
        );
        it.insert("stock".into(), AttributeValue::N("0".into()));
        assert_eq!(cap_of(&decode(&it).unwrap_err()), "MAX_REGIONS");

        // Foreign writes in `m`: per Region, and Regions.
        let mut it = item();
        stamp(&mut it).insert("h".into(), s("us-east-1"));
        stamp(&mut it).insert("e".into(), AttributeValue::N("1".into()));
        let writes: Vec<String> = (1..=MAX_PENDING_WRITES + 1)
            .map(|c| format!("{c}:{c}"))
            .collect();
        stamp(&mut it).insert(
            "m".into(),
            AttributeValue::M(HashMap::from([(
                "eu-west-1".to_owned(),
                s(&writes.join(" ")),
            )])),
        );
        let err = decode(&it).unwrap_err();
        assert_eq!(cap_of(&err), "MAX_PENDING_WRITES");
        stamp(&mut it).insert("m".into(), k_with(MAX_REGIONS + 1, "1:1"));
        assert_eq!(cap_of(&decode(&it).unwrap_err()), "MAX_REGIONS");
        stamp(&mut it).insert("m".into(), k_with(MAX_REGIONS, "1:1"));
        decode(&it).unwrap();
    }
}
