//! Adoption: edits made outside the stamp protocol (a plain `PutItem` or
//! `UpdateItem`, a console edit, a batch job) taken in as the edit of one
//! more origin, the pseudo-Region [`UNATTRIBUTED`], instead of refused.
//!
//! What a plain writer changed is read off the item: attributes without a
//! dot, counters whose value is not the sum of their contributions, and,
//! when the version it overwrote is known and carries the same dot (the
//! plain writer left the stamp as it was), every attribute whose value
//! differs from that version. Those edits get one adoption dot,
//! `unattributed:<counter>:<nonce>`, derived from the item alone: the
//! counter follows the item's chain of adoptions, the nonce hashes the base
//! dot and the adopted values, and the time is the base's. So every Region,
//! and every writer, that adopts the same plain edit gives it the same dot,
//! and merges of their results agree; the next stamped write records the
//! dot, which repairs the stamp.
//!
//! A counter attribute's plain change counts as a contribution of the
//! unattributed origin: value minus the stamp's sum, in one slot per stamp,
//! so it counts once however many Regions and writers see it. Plain changes
//! to one counter under one stamp share that slot: one after another, the
//! larger change (the later one, for changes of one sign) stays; made
//! concurrently in two Regions, as last-writer-wins between them (what
//! DynamoDB does to them anyway), with both in the journal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_dynamo::{AttributeValue, Item};

use crate::dot::{Dot, Region, Tick, TimedDot};
use crate::error::StampError;
use crate::rules::Rules;
use crate::stamp::Schema;
use crate::version::{exact_counter_total, Header, Register, Sibling, Version, WriterKind};

/// The origin of edits made outside the protocol. It is never a stamp's
/// `o`: it appears only in per-attribute dots, windows and counters.
pub const UNATTRIBUTED: &str = "unattributed";

/// The [`UNATTRIBUTED`] pseudo-Region.
pub fn unattributed() -> Region {
    Region::parse(UNATTRIBUTED).expect("a valid Region name")
}

/// A version of an item with its plain edits taken in.
#[derive(Debug, Clone)]
pub struct Adoption {
    pub version: Version,
    /// The adoption's dot, when there was something to take in.
    pub dot: Option<Dot>,
    /// The attributes taken in, sorted.
    pub attributes: Vec<String>,
}

/// Reads `item` (stamped or not), taking in what a plain writer changed.
/// `before` is the version the item overwrote, when known (a stream
/// record's old image): if it carries the same dot, every attribute whose
/// value differs was changed by a plain writer.
///
/// # Errors
/// A malformed stamp, a missing key attribute, or a counter attribute
/// whose new value is not a whole number ([`StampError::CounterMismatch`]).
pub fn adopt(
    schema: &Schema,
    rules: &Rules,
    item: &Item,
    before: Option<&Item>,
) -> Result<Adoption, StampError> {
    let stamped = item.contains_key(&schema.stamp_attribute);
    let (mut version, mut edits) = if stamped {
        let (version, plain) = schema.decode_lenient(item)?;
        let edits: BTreeMap<String, Option<AttributeValue>> = plain
            .into_iter()
            .map(|p| {
                let name = p.attribute().to_owned();
                let value = item.get(&name).cloned();
                (name, value)
            })
            .collect();
        (version, edits)
    } else {
        let edits = item
            .iter()
            .filter(|(name, _)| !schema.is_reserved(name))
            .map(|(name, value)| (name.clone(), Some(value.clone())))
            .collect();
        (unstamped_base(schema.key_of(item)?), edits)
    };
    if let Some(before) = before.filter(|b| stamped && same_stamp(schema, b, item)) {
        for name in before.keys().chain(item.keys()) {
            if schema.is_reserved(name) || edits.contains_key(name) {
                continue;
            }
            // A counter's change is already a CounterOff; its removal is
            // not an edit a counter can take (the next write restores it).
            if version.counters.contains_key(name) {
                continue;
            }
            if before.get(name) != item.get(name) {
                edits.insert(name.clone(), item.get(name).cloned());
            }
        }
    }
    if edits.is_empty() {
        return Ok(Adoption {
            version,
            dot: None,
            attributes: Vec::new(),
        });
    }

    let origin = unattributed();
    let base_dot = stamped.then(|| version.header.dot());
    let counter = version.next_counter(&origin)?;
    let (counters, registers): (Vec<_>, Vec<_>) = edits
        .into_iter()
        .partition(|(name, _)| version.counters.contains_key(name) || rules.is_counter(name));
    let registers: BTreeMap<String, Option<AttributeValue>> = registers.into_iter().collect();
    let mut attributes: Vec<String> = Vec::new();
    let mut dot = None;

    // Plain attributes: one edit, its nonce from the base dot and the values.
    if !registers.is_empty() {
        let tick = Tick {
            counter,
            nonce: nonce(base_dot.as_ref(), &registers),
        };
        let at = TimedDot {
            dot: Dot {
                region: origin.clone(),
                tick,
            },
            time_ms: if stamped { version.header.time_ms } else { 0 },
        };
        for (name, value) in registers {
            version.attrs.insert(
                name.clone(),
                Register::One(Sibling {
                    at: at.clone(),
                    value,
                }),
            );
            attributes.push(name);
        }
        version
            .known
            .entry(origin.clone())
            .or_default()
            .insert(tick);
        dot = Some(at.dot);
    }

    // Counters: whatever plain writers did to a counter under one stamp is
    // one contribution, value minus the stamp's sum, in one slot per stamp
    // (its nonce from the base dot alone). Every reader of any copy under
    // that stamp fills the same slot, so a plain ADD never counts twice; two
    // fillings of a slot keep the larger change (merge::join_counter).
    if counters.iter().any(|(_, v)| v.is_some()) {
        let slot = Tick {
            counter,
            nonce: nonce(base_dot.as_ref(), &BTreeMap::new()),
        };
        for (name, value) in counters {
            // A removed counter is not an edit a counter can take: the
            // next write shows its sum again.
            let Some(value) = value else { continue };
            let now = version.counters.get(&name).map_or(0, exact_counter_total);
            let target = whole_number(&value).ok_or_else(|| StampError::CounterMismatch {
                attribute: name.clone(),
                found: crate::stamp::describe(&value),
                expected: i64::try_from(now).unwrap_or(i64::MAX),
            })?;
            let delta = i64::try_from(i128::from(target) - now)
                .map_err(|_| StampError::overflow(&format!("c.{name}"), "an adopted delta"))?;
            version
                .counters
                .entry(name.clone())
                .or_default()
                .entry(origin.clone())
                .or_default()
                .deltas
                .insert(slot, delta);
            version.attrs.remove(&name);
            attributes.push(name);
        }
        version
            .known
            .entry(origin.clone())
            .or_default()
            .insert(slot);
        dot.get_or_insert(Dot {
            region: origin.clone(),
            tick: slot,
        });
    }
    let Some(dot) = dot else {
        return Ok(Adoption {
            version,
            dot: None,
            attributes,
        });
    };
    if !stamped {
        version.header.tick = dot.tick;
    }
    version.check_arithmetic()?;
    attributes.sort();
    Ok(Adoption {
        version,
        dot: Some(dot),
        attributes,
    })
}

/// The base of an item without a stamp: nothing known, written by the
/// unattributed origin at time 0 (so `lww` prefers any stamped edit it is
/// concurrent with; the adopted values stay as siblings).
fn unstamped_base(key: BTreeMap<String, AttributeValue>) -> Version {
    Version {
        key,
        header: Header {
            origin: unattributed(),
            time_ms: 0,
            by: WriterKind::App,
            tick: Tick {
                counter: 0,
                nonce: 0,
            },
        },
        known: BTreeMap::new(),
        attrs: BTreeMap::new(),
        counters: BTreeMap::new(),
        home: None,
    }
}

/// Whether two items carry the same stamp dot.
fn same_stamp(schema: &Schema, a: &Item, b: &Item) -> bool {
    let dot = |i: &Item| match i.get(&schema.stamp_attribute) {
        Some(AttributeValue::M(m)) => m.get("dot").cloned(),
        _ => None,
    };
    dot(a).is_some() && dot(a) == dot(b)
}

fn whole_number(value: &AttributeValue) -> Option<i64> {
    match value {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// FNV-1a (32 bits) of the base dot and the adopted values, in the
/// canonical text of [`canonical`]: the same plain edit gets the same
/// nonce wherever it is adopted.
fn nonce(base: Option<&Dot>, edits: &BTreeMap<String, Option<AttributeValue>>) -> u32 {
    let mut text = String::new();
    if let Some(dot) = base {
        text.push_str(&dot.encode());
    }
    text.push('\n');
    for (name, value) in edits {
        text.push_str(name);
        text.push('\n');
        match value {
            Some(v) => canonical(v, &mut text),
            None => text.push('-'),
        }
        text.push('\n');
    }
    fnv1a32(text.as_bytes())
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// A value as text that is the same for equal values whatever the order of
/// their map keys and set members: the type tag, then the value; strings
/// as JSON strings, binary as hex, sets and map keys sorted.
pub fn canonical(value: &AttributeValue, out: &mut String) {
    let json = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let hex = |b: &[u8]| {
        b.iter().fold(String::new(), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
    };
    let sorted = |mut items: Vec<String>| {
        items.sort();
        items.join(",")
    };
    match value {
        AttributeValue::S(s) => {
            out.push('S');
            out.push_str(&json(s));
        }
        AttributeValue::N(n) => {
            out.push('N');
            out.push_str(n);
        }
        AttributeValue::B(b) => {
            out.push('B');
            out.push_str(&hex(b));
        }
        AttributeValue::Bool(b) => out.push_str(if *b { "BOOLtrue" } else { "BOOLfalse" }),
        AttributeValue::Null(_) => out.push_str("NULL"),
        AttributeValue::Ss(v) => {
            let _ = write!(out, "SS[{}]", sorted(v.iter().map(|s| json(s)).collect()));
        }
        AttributeValue::Ns(v) => {
            let _ = write!(out, "NS[{}]", sorted(v.clone()));
        }
        AttributeValue::Bs(v) => {
            let _ = write!(out, "BS[{}]", sorted(v.iter().map(|b| hex(b)).collect()));
        }
        AttributeValue::L(items) => {
            out.push_str("L[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        AttributeValue::M(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("M{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json(key));
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// [`canonical`] as a new string.
pub fn canonical_text(value: &AttributeValue) -> String {
    let mut out = String::new();
    canonical(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{apply, WriteContext};
    use crate::{fixtures, Draft, Merger};

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    /// The fixture's us-east-1 version as an item, and the tools around it.
    fn stamped() -> (Schema, Merger, Item) {
        let (x, _) = fixtures::concurrent_pair();
        let schema = fixtures::schema();
        let item = schema.encode(&x);
        (schema, Merger::new(fixtures::rules()), item)
    }

    fn next_write(schema: &Schema, merger: &Merger, base: &Version) -> Item {
        let ctx = WriteContext {
            region: Region::parse("eu-west-1").unwrap(),
            time_ms: 1_764_000_900_000,
            nonce: 5,
            by: WriterKind::App,
        };
        let mut draft = Draft::new(base.values());
        draft.set("attr_02", s("stamped"));
        let next = apply(base, &draft, &ctx, merger, schema, None).unwrap();
        schema.encode(&next)
    }

    #[test]
    fn an_undotted_attribute_is_adopted_and_the_next_write_repairs_the_stamp() {
        let (schema, merger, mut item) = stamped();
        item.insert("added_by_console".into(), s("hello"));
        assert!(matches!(
            schema.decode(&item),
            Err(StampError::UndottedAttribute(a)) if a == "added_by_console"
        ));
        let adopted = adopt(&schema, &merger.rules, &item, None).unwrap();
        let dot = adopted.dot.clone().unwrap();
        assert_eq!(dot.region.as_str(), UNATTRIBUTED);
        assert_eq!(adopted.attributes, ["added_by_console"]);
        // Derived from the item alone: every Region adopts the same dot.
        let again = adopt(&schema, &merger.rules, &item, None).unwrap();
        assert_eq!(again.dot, adopted.dot);
        assert_eq!(again.version, adopted.version);

        let written = next_write(&schema, &merger, &adopted.version);
        let read = schema.decode(&written).expect("the stamp is whole again");
        assert_eq!(read.value("added_by_console"), Some(s("hello")));
        assert!(read.knows(&dot));
        assert!(adopt(&schema, &merger.rules, &written, None)
            .unwrap()
            .dot
            .is_none());
    }

    #[test]
    fn different_plain_edits_get_different_dots() {
        let (schema, merger, item) = stamped();
        let mut a = item.clone();
        a.insert("note".into(), s("one"));
        let mut b = item;
        b.insert("note".into(), s("two"));
        let da = adopt(&schema, &merger.rules, &a, None)
            .unwrap()
            .dot
            .unwrap();
        let db = adopt(&schema, &merger.rules, &b, None)
            .unwrap()
            .dot
            .unwrap();
        assert_eq!(da.tick.counter, db.tick.counter);
        assert_ne!(da, db);
    }

    #[test]
    fn a_change_under_the_same_stamp_is_found_against_the_version_before() {
        let (schema, merger, before) = stamped();
        let mut after = before.clone();
        after.insert("attr_01".into(), s("changed by a batch job"));
        after.remove("attr_04");
        // The item alone cannot tell: the stamp still accounts for it.
        let blind = adopt(&schema, &merger.rules, &after, None).unwrap();
        assert!(blind.dot.is_none());

        let adopted = adopt(&schema, &merger.rules, &after, Some(&before)).unwrap();
        assert_eq!(adopted.attributes, ["attr_01", "attr_04"]);
        let old = schema.decode(&before).unwrap();
        // The adoption is newer than the version it overwrote.
        let merged = merger.merge(&old, &adopted.version).version;
        assert_eq!(merged.value("attr_01"), Some(s("changed by a batch job")));
        assert_eq!(merged.value("attr_04"), None);
        let merged = merger.merge(&adopted.version, &old).version;
        assert_eq!(merged.value("attr_01"), Some(s("changed by a batch job")));
    }

    #[test]
    fn a_plain_add_on_a_counter_counts_once() {
        let (schema, merger, mut item) = stamped();
        let total = |v: &Version| exact_counter_total(&v.counters["stock"]);
        let before = total(&schema.decode(&item).unwrap());
        item.insert("stock".into(), AttributeValue::N((before + 5).to_string()));
        let a = adopt(&schema, &merger.rules, &item, None).unwrap();
        assert_eq!(total(&a.version), before + 5);
        // Seen in two Regions and merged: still counted once.
        let b = adopt(&schema, &merger.rules, &item, None).unwrap();
        let merged = merger.merge(&a.version, &b.version).version;
        assert_eq!(total(&merged), before + 5);
        // Concurrent with a stamped decrement: both count.
        let old = schema.decode(&stamped().2).unwrap();
        let mut draft = Draft::new(old.values());
        draft.increment("stock", -2);
        let ctx = WriteContext {
            region: Region::parse("us-west-2").unwrap(),
            time_ms: 1_764_000_900_000,
            nonce: 7,
            by: WriterKind::App,
        };
        let stamped_edit = apply(&old, &draft, &ctx, &merger, &schema, None).unwrap();
        let merged = merger.merge(&stamped_edit, &a.version).version;
        assert_eq!(total(&merged), before + 5 - 2);

        item.insert("stock".into(), s("many"));
        assert!(matches!(
            adopt(&schema, &merger.rules, &item, None),
            Err(StampError::CounterMismatch { .. })
        ));
    }

    #[test]
    fn plain_adds_under_one_stamp_share_one_slot() {
        let (schema, merger, item) = stamped();
        let total = |v: &Version| exact_counter_total(&v.counters["stock"]);
        let sum = total(&schema.decode(&item).unwrap());
        let at = |plus: i128| {
            let mut i = item.clone();
            i.insert("stock".into(), AttributeValue::N((sum + plus).to_string()));
            adopt(&schema, &merger.rules, &i, None).unwrap().version
        };
        // ADD 1, then ADD 2 on top: one copy adopted the first state, another
        // the second; merged, the plain writer's +3 counts once.
        let merged = merger.merge(&at(1), &at(3)).version;
        assert_eq!(total(&merged), sum + 3);
        assert_eq!(total(&merger.merge(&at(3), &at(1)).version), sum + 3);
        // Decrements too: the larger change stays.
        assert_eq!(total(&merger.merge(&at(-1), &at(-3)).version), sum - 3);
    }

    #[test]
    fn an_unstamped_item_is_adopted_alike_everywhere() {
        let (schema, merger, _) = stamped();
        let mut item = Item::from(std::collections::HashMap::from([
            ("pk".to_string(), s("p")),
            ("sk".to_string(), s("s")),
            ("name".to_string(), s("legacy")),
            ("stock".to_string(), AttributeValue::N("4".into())),
        ]));
        let a = adopt(&schema, &merger.rules, &item, None).unwrap();
        assert_eq!(a.attributes, ["name", "stock"]);
        assert_eq!(
            a.version.value("stock"),
            Some(AttributeValue::N("4".into()))
        );
        assert!(a.version.counters.contains_key("stock"));
        let b = adopt(&schema, &merger.rules, &item, None).unwrap();
        assert_eq!(a.version, b.version);
        item.insert("name".into(), s("other"));
        let c = adopt(&schema, &merger.rules, &item, None).unwrap();
        assert_ne!(a.dot, c.dot);
        // Written by the next stamped write, it reads back strictly.
        let written = next_write(&schema, &merger, &a.version);
        assert_eq!(
            schema.decode(&written).unwrap().value("name"),
            Some(s("legacy"))
        );
    }

    #[test]
    fn one_edit_with_two_values_merges_the_same_both_ways() {
        let (schema, merger, before) = stamped();
        let mut after = before.clone();
        after.insert("attr_01".into(), s("changed under the stamp"));
        // Decoded without the version before, the change hides under the
        // old dot; a copy that still holds the old value meets it.
        let blind = schema.decode(&after).unwrap();
        let old = schema.decode(&before).unwrap();
        let ab = merger.merge(&blind, &old).version;
        let ba = merger.merge(&old, &blind).version;
        assert_eq!(ab.values(), ba.values());
        assert!(ab.value("attr_01").is_some(), "neither value is dropped");
    }

    #[test]
    fn canonical_text_ignores_map_and_set_order() {
        let m1 = AttributeValue::M(std::collections::HashMap::from([
            (
                "a".to_string(),
                AttributeValue::Ss(vec!["x".into(), "y".into()]),
            ),
            ("b".to_string(), AttributeValue::N("1".into())),
        ]));
        let m2 = AttributeValue::M(std::collections::HashMap::from([
            ("b".to_string(), AttributeValue::N("1".into())),
            (
                "a".to_string(),
                AttributeValue::Ss(vec!["y".into(), "x".into()]),
            ),
        ]));
        assert_eq!(canonical_text(&m1), canonical_text(&m2));
        assert_eq!(canonical_text(&m1), r#"M{"a":SS["x","y"],"b":N1}"#);
        assert_ne!(
            canonical_text(&s("1")),
            canonical_text(&AttributeValue::N("1".into()))
        );
    }
}
