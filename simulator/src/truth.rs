//! The checker's ground truth and its end-of-history checks on the final
//! items: convergence, nothing lost, rules, exact counters; and, with plain
//! writers mixed in ([`crate::plain`]), what plain writes must keep.
//!
//! # Plain writes
//!
//! A plain write has no dot, so its causality is tracked beside the data
//! ([`crate::lineage`]): its *base* is the item in its Region just before
//! it, and a later write (stamped or plain) *had seen* it when the later
//! write's base image includes it. Its *effects* are the attributes whose
//! value differs between its base and the item it left (a SET to the same
//! value, a REMOVE of an absent attribute change nothing); a PutItem sets
//! what it holds and removes the rest; a DeleteItem removes everything.
//! A DeleteItem is last-writer-wins on the whole item (README: hard
//! deletes are journaled, not merged): its removals are not values to keep
//! (a later write may bring the item back), but the item it removed must
//! be in a journal entry.
//!
//! - nothing lost: each effect `(attribute, value)` of a plain write is
//!   in the final item (the attribute shows the value, as a sibling the
//!   stamp keeps, a superset for sets; a removal: the attribute is absent),
//!   or superseded by a later write of that attribute (a stamped edit, a
//!   plain write, a delete) whose base had seen the plain write, or in a
//!   journal entry (a version image under `versions` holding the value; a
//!   removal: an image that includes the plain write and lacks the
//!   attribute). Counter attributes are checked as counters, below.
//! - a stamped edit is also superseded by a later plain write of its
//!   attribute whose base knew the edit's dot, and (only with plain writes
//!   on) kept when a journal entry holds the version that made it.
//! - counters: stamped increments count exactly. Plain counter changes
//!   cannot all count by design: a plain write changes the data under an
//!   unchanged stamp, and so does the replicated copy of one (last writer
//!   wins, whole item), so no resolver can tell a plain ADD of 1 made here
//!   from a copy of another Region's plain write arriving over its own
//!   (global tables mark neither). The plain changes made on top of one
//!   stamped version therefore fill one *slot* (the core's adoption:
//!   "never counted twice"), last-writer-wins among themselves. Precisely:
//!   a plain write's slot is the stamped version its base carried (the
//!   stamp's dot, with the counter value that version holds), or, when its
//!   base has no stamp (after a plain PutItem), the slot of the plain write
//!   that left that base; each plain write proposes for its slot the
//!   counter value it left minus the slot's stamped value. The final
//!   counter must equal the sum of the stamped increments plus one
//!   proposal per slot (any choice: which one survives is last-writer-wins
//!   on the service's time). Chained plain ADDs in one Region accumulate
//!   in one proposal; an ADD that a concurrent plain write of the same
//!   slot elsewhere overwrote may be lost; a plain PutItem that writes the
//!   counter's own value proposes 0. (The stricter count, every plain
//!   change once, is shown beside a failure.) Not checked: items a plain
//!   PutItem replaced (the counter it writes is a value with no stamp to
//!   take a change from: the core counts it from 0, README), and items a plain
//!   DeleteItem removed. A hard delete is last-writer-wins on the whole
//!   item (README): an increment made elsewhere at the same time may
//!   survive it or not, so no total is defined; such items are not
//!   required to exist either.
//! - no stuck items: after the history every item takes one more stamped
//!   write ([`crate::checker`] does it); a failure is a violation.

use std::collections::{BTreeMap, BTreeSet};

use homeward::version::Register;
use homeward::{Dot, Region, Version};
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::{show_value, Cluster};
use crate::lineage::{Ids, Lineage};
use crate::plain::RawWrite;

/// The counter attribute of the checker's items.
pub const COUNTER: &str = "n";
/// The set attribute (`union`).
pub const SET: &str = "tags";

/// One edit of one attribute, as the stamped writer made it.
pub(crate) struct Edit {
    pub(crate) item: usize,
    pub(crate) attribute: String,
    pub(crate) dot: Dot,
    pub(crate) value: Option<AttributeValue>,
    /// The version that made it: what it knew.
    pub(crate) version: Version,
    /// The order of its write among the history's writes.
    pub(crate) seq: usize,
    /// The plain writes its base included.
    pub(crate) base: Ids,
}

/// One plain write, as made.
pub(crate) struct PlainWrite {
    pub(crate) id: usize,
    pub(crate) seq: usize,
    pub(crate) item: usize,
    pub(crate) region: String,
    pub(crate) what: String,
    pub(crate) effects: Vec<(String, Option<AttributeValue>)>,
    pub(crate) counter_delta: i64,
    pub(crate) delete: bool,
    /// A PutItem: the whole item replaced.
    pub(crate) put: bool,
    /// The plain writes its base included.
    pub(crate) base: Ids,
    /// Its base's stamp (values stripped), when it had one.
    pub(crate) base_stamp: Option<Version>,
    /// A delete: the item it removed.
    pub(crate) removed: Option<Item>,
    /// Its counter slot: the stamped version its chain of plain writes
    /// started from (`None`: no stamped version), and the counter value
    /// that version holds.
    pub(crate) slot: (Option<String>, i64),
    /// The counter value it left.
    pub(crate) after_counter: i64,
}

/// Ground truth for plain writes over one history.
#[derive(Default)]
pub struct Truth {
    pub lineage: Lineage,
    pub(crate) plain: Vec<PlainWrite>,
    /// The counter slot of every image a plain write left (by content).
    slots: std::collections::HashMap<String, (Option<String>, i64)>,
}

pub(crate) fn key_text(item: usize) -> String {
    format!("pk=k{item}")
}

impl Truth {
    /// The plain writes the item in `region` includes now.
    pub(crate) async fn base(&self, c: &Cluster, region: &Region, key: &Item) -> Ids {
        let image = c.read(region.as_str(), key).await;
        let text = resolver::journal::key_text(key);
        self.lineage.of_state(region, &text, image.as_ref())
    }

    /// After an app write in `region` whose base included `ids`.
    pub(crate) async fn after(&self, c: &Cluster, region: &Region, key: &Item, ids: &Ids) {
        match c.read(region.as_str(), key).await {
            Some(image) => self.lineage.note(&image, ids),
            None => {
                let text = resolver::journal::key_text(key);
                self.lineage.note_absent(region, &text, ids);
            }
        }
    }

    /// Makes plain write `write` of item `item` in `region`, the `seq`-th
    /// write of the history, and records what it did.
    ///
    /// # Errors
    /// What DynamoDB refused (nothing was written).
    pub(crate) async fn plain_write(
        &mut self,
        c: &mut Cluster,
        region: &Region,
        item: usize,
        write: &RawWrite,
        seq: usize,
    ) -> Result<(), String> {
        let key = write.key(&c.schema);
        let text = resolver::journal::key_text(&key);
        let before = c.read(region.as_str(), &key).await;
        let base = self.lineage.of_state(region, &text, before.as_ref());
        c.raw_write(region, write).await?;
        let after = c.read(region.as_str(), &key).await;
        let id = self.plain.len();
        let mut ids = base.clone();
        ids.insert(id);
        match &after {
            Some(image) => self.lineage.note(image, &ids),
            None => self.lineage.note_absent(region, &text, &ids),
        }
        let stamp = &c.schema.stamp_attribute;
        let data = |i: &Option<Item>| -> BTreeMap<String, AttributeValue> {
            i.as_ref()
                .map(|i| {
                    i.iter()
                        .filter(|(k, _)| !c.schema.is_reserved(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (old, new) = (data(&before), data(&after));
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let effects = names
            .into_iter()
            .filter(|n| old.get(*n) != new.get(*n))
            .map(|n| (n.clone(), new.get(n).cloned()))
            .collect();
        let number = |m: &BTreeMap<String, AttributeValue>| match m.get(COUNTER) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap_or(0),
            _ => 0,
        };
        // Only the stamp's knowledge: values a plain write changed may not
        // decode under it.
        let base_stamp = before.as_ref().and_then(|b| {
            let mut bare = b.clone();
            bare.retain(|k, _| c.schema.is_reserved(k));
            bare.contains_key(stamp)
                .then(|| c.schema.decode(&bare).ok())
                .flatten()
        });
        let slot = match (&before, &base_stamp) {
            (_, Some(v)) => (
                Some(v.header.dot().encode()),
                v.counters
                    .get(COUNTER)
                    .and_then(|c| homeward::version::counter_total(c).ok())
                    .unwrap_or(0),
            ),
            (Some(b), None) => self
                .slots
                .get(&crate::lineage::fingerprint(b))
                .cloned()
                .unwrap_or((None, 0)),
            (None, None) => (None, 0),
        };
        if let Some(a) = &after {
            self.slots
                .insert(crate::lineage::fingerprint(a), slot.clone());
        }
        self.plain.push(PlainWrite {
            id,
            seq,
            item,
            region: region.to_string(),
            what: write.describe(&c.schema),
            effects,
            counter_delta: number(&new) - number(&old),
            delete: matches!(write, RawWrite::Delete(_)),
            put: matches!(write, RawWrite::Put(_)),
            base,
            base_stamp,
            removed: before.filter(|_| matches!(write, RawWrite::Delete(_))),
            slot,
            after_counter: number(&new),
        });
        Ok(())
    }

    /// Items a plain DeleteItem removed somewhere.
    pub(crate) fn deleted(&self, item: usize) -> bool {
        self.plain.iter().any(|p| p.item == item && p.delete)
    }

    /// Items a plain PutItem replaced somewhere: the counter it wrote is a
    /// value, not a change, and carries no stamp to take a change from, so
    /// its total is not defined (README, plain writers): not checked.
    fn replaced(&self, item: usize) -> bool {
        self.plain.iter().any(|p| p.item == item && p.put)
    }

    fn counter_deltas(&self, item: usize) -> i64 {
        self.plain
            .iter()
            .filter(|p| p.item == item)
            .map(|p| p.counter_delta)
            .sum()
    }

    /// What the plain writes of `item` may add to its counter: one
    /// proposal per slot, each the counter value a plain write of that
    /// slot left minus the slot's stamped value; every choice, summed.
    fn counter_sums(&self, item: usize) -> BTreeSet<i64> {
        let mut slots: BTreeMap<&Option<String>, BTreeSet<i64>> = BTreeMap::new();
        for p in self.plain.iter().filter(|p| p.item == item && !p.delete) {
            slots
                .entry(&p.slot.0)
                .or_default()
                .insert(p.after_counter - p.slot.1);
        }
        let mut sums = BTreeSet::from([0]);
        for proposals in slots.values() {
            sums = sums
                .iter()
                .flat_map(|s| proposals.iter().map(move |p| s + p))
                .take(4096)
                .collect();
        }
        sums
    }

    /// Whether a plain write after the edit, of its attribute, knew it.
    fn supersedes_edit(&self, e: &Edit) -> bool {
        self.plain.iter().any(|p| {
            p.item == e.item
                && p.seq > e.seq
                && (p.delete || p.effects.iter().any(|(a, _)| *a == e.attribute))
                && p.base_stamp.as_ref().is_some_and(|s| s.knows(&e.dot))
        })
    }
}

/// Every version image the journals hold, per item key text.
pub(crate) async fn journal_images(c: &Cluster, names: &[&str]) -> BTreeMap<String, Vec<Item>> {
    let mut out: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for r in names {
        for entry in c.journal(r).await {
            let Some(AttributeValue::M(key)) = entry.get("item_key") else {
                continue;
            };
            let text = resolver::journal::key_text(&Item::from(key.clone()));
            if let Some(AttributeValue::M(versions)) = entry.get("versions") {
                for v in versions.values() {
                    if let AttributeValue::M(m) = v {
                        out.entry(text.clone())
                            .or_default()
                            .push(Item::from(m.clone()));
                    }
                }
            }
        }
    }
    out
}

/// What the final checks look at.
pub(crate) struct Finals<'a> {
    pub(crate) c: &'a Cluster,
    pub(crate) names: &'a [&'a str],
    pub(crate) finals: &'a [BTreeMap<String, Item>],
    pub(crate) edits: &'a [Edit],
    /// Each item's stamped increments.
    pub(crate) counters: &'a [i64],
    pub(crate) items: usize,
    /// With plain writes: their truth, the journals' images, and the items
    /// found stuck (checked on raw values only).
    pub(crate) plain: Option<(&'a Truth, &'a BTreeMap<String, Vec<Item>>)>,
    pub(crate) stuck: &'a BTreeSet<usize>,
}

impl Finals<'_> {
    pub(crate) fn check(&self, violations: &mut Vec<String>) {
        let (c, names, finals) = (self.c, self.names, self.finals);
        for (r, f) in names.iter().zip(finals).skip(1) {
            if f != &finals[0] {
                for (k, item) in f {
                    if finals[0].get(k) != Some(item) {
                        violations.push(format!(
                            "divergence: {k} in {r} is {} but in {} is {}",
                            crate::cluster::show(item, &c.schema),
                            names[0],
                            finals[0]
                                .get(k)
                                .map_or("absent".into(), |i| crate::cluster::show(i, &c.schema))
                        ));
                    }
                }
            }
        }
        if let Some((truth, journal)) = self.plain {
            self.check_plain(truth, journal, violations);
        }
        for item in 0..self.items {
            if !self.stuck.contains(&item) {
                self.check_item(item, violations);
            }
        }
    }

    fn check_item(&self, item: usize, violations: &mut Vec<String>) {
        let (c, names, edits) = (self.c, self.names, self.edits);
        let rules = &c.merger.rules;
        let truth = self.plain.map(|(t, _)| t);
        let deleted = truth.is_some_and(|t| t.deleted(item));
        let text = key_text(item);
        let Some(raw) = self.finals[0].get(&text) else {
            if edits.iter().any(|e| e.item == item) && !deleted {
                violations.push(format!("k{item} is missing in {}", names[0]));
            }
            return;
        };
        let v = match c.schema.decode(raw) {
            Ok(v) => v,
            Err(e) => {
                violations.push(format!("k{item}: unreadable stamp: {e}"));
                return;
            }
        };
        // Nothing lost.
        for e in edits.iter().filter(|e| e.item == item) {
            if rules.is_counter(&e.attribute) {
                continue;
            }
            let present = v.attrs.get(&e.attribute).is_some_and(|reg| {
                reg.siblings()
                    .iter()
                    .any(|s| s.at.dot == e.dot && s.value == e.value)
            });
            let superseded = edits.iter().any(|later| {
                later.item == item
                    && later.attribute == e.attribute
                    && later.dot != e.dot
                    && later.version.knows(&e.dot)
            }) || truth.is_some_and(|t| t.supersedes_edit(e));
            // A re-home (a resolver's move, fenced by the epoch) supersedes
            // every home value the final version knows.
            let moved = e.attribute == "home_region"
                && v.home.as_ref().is_some_and(|h| h.epoch > 0)
                && v.knows(&e.dot);
            let journaled = self.plain.is_some_and(|(_, journal)| {
                journal.get(&text).is_some_and(|images| {
                    images.iter().any(|i| {
                        // A version that holds the edit: made by it, or
                        // keeping it in the attribute's register.
                        homeward::classify::peek(i, &c.schema.stamp_attribute)
                            .ok()
                            .flatten()
                            .is_some_and(|h| h.dot == e.dot)
                            || c.schema.decode(i).is_ok_and(|j| {
                                j.attrs.get(&e.attribute).is_some_and(|reg| {
                                    reg.siblings()
                                        .iter()
                                        .any(|s| s.at.dot == e.dot && s.value == e.value)
                                })
                            })
                    })
                })
            });
            if !present && !superseded && !moved && !journaled {
                violations.push(format!(
                    "lost update: k{item}.{} = {} (dot {}) is neither in the final item nor superseded by a later edit",
                    e.attribute,
                    e.value.as_ref().map_or("(removed)".into(), show_value),
                    e.dot.encode()
                ));
            }
        }
        // The home attribute agrees with the home the stamp records.
        if let (Some(home), Some(AttributeValue::S(shown))) =
            (&v.home, v.values().get("home_region"))
        {
            if shown != home.region.as_str() {
                violations.push(format!(
                    "k{item}: home_region = {shown:?} but the stamp's home is {} (epoch {})",
                    home.region, home.epoch
                ));
            }
        }
        check_rules(item, &v, violations);
        // Counters exact.
        if deleted || truth.is_some_and(|t| t.replaced(item)) {
            return;
        }
        let expected = self.counters[item] + truth.map_or(0, |t| t.counter_deltas(item));
        let total = match v.value(COUNTER) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
            _ => None,
        };
        if let Some(t) = truth {
            let sums = t.counter_sums(item);
            let fits = total.is_some_and(|n| sums.contains(&(n - self.counters[item])));
            if !fits {
                let allowed: Vec<String> = sums
                    .iter()
                    .take(12)
                    .map(|s| (self.counters[item] + s).to_string())
                    .collect();
                violations.push(format!(
                    "counter k{item}.{COUNTER} is {}: the stamped increments add up to {}, and with the plain writes' counter slots it may be {} (every plain change counted once: {expected})",
                    total.map_or("absent".into(), |n| n.to_string()),
                    self.counters[item],
                    allowed.join(" or ")
                ));
            }
            return;
        }
        if total != Some(expected) {
            let plain = match truth.map(|t| t.counter_deltas(item)) {
                Some(d) if d != 0 => format!(
                    " ({} from stamped increments, {d:+} from plain writes)",
                    self.counters[item]
                ),
                _ => String::new(),
            };
            violations.push(format!(
                "counter k{item}.{COUNTER} is {total:?}, the increments add up to {expected}{plain}"
            ));
        }
    }

    /// Nothing lost of what plain writes wrote.
    fn check_plain(
        &self,
        truth: &Truth,
        journal: &BTreeMap<String, Vec<Item>>,
        violations: &mut Vec<String>,
    ) {
        let c = self.c;
        let ttl = "hw_expires";
        for p in &truth.plain {
            let text = key_text(p.item);
            // A hard delete: its removals are not values to keep (it is
            // last-writer-wins on the whole item; later writes may bring
            // the item back), but what it removed must be journaled.
            if p.delete {
                let kept = p.removed.as_ref().is_none_or(|gone| {
                    journal
                        .get(&text)
                        .is_some_and(|images| images.contains(gone))
                });
                if !kept {
                    violations.push(format!(
                        "hard delete not journaled: k{} deleted in {} (write {}) removed {}, and no journal entry holds it",
                        p.item,
                        p.region,
                        p.seq,
                        p.removed
                            .as_ref()
                            .map_or(String::new(), |i| crate::cluster::show(i, &c.schema))
                    ));
                }
                continue;
            }
            let last = self.finals[0].get(&text);
            let decoded = last.and_then(|i| c.schema.decode(i).ok());
            for (attribute, value) in &p.effects {
                if attribute == COUNTER || attribute == ttl {
                    continue;
                }
                let present = match value {
                    Some(v) => {
                        same_or_within(last.and_then(|i| i.get(attribute)), v)
                            || decoded.as_ref().is_some_and(|d| {
                                d.attrs.get(attribute).is_some_and(|reg| {
                                    reg.siblings().iter().any(|s| s.value.as_ref() == Some(v))
                                })
                            })
                    }
                    None => last.is_none_or(|i| !i.contains_key(attribute)),
                };
                let superseded = self.edits.iter().any(|e| {
                    e.item == p.item
                        && e.seq > p.seq
                        && e.attribute == *attribute
                        && e.base.contains(&p.id)
                }) || truth.plain.iter().any(|q| {
                    q.item == p.item
                        && q.seq > p.seq
                        && (q.delete || q.effects.iter().any(|(a, _)| a == attribute))
                        && q.base.contains(&p.id)
                });
                let journaled = journal.get(&text).is_some_and(|images| {
                    images.iter().any(|i| match value {
                        Some(v) => same_or_within(i.get(attribute), v),
                        None => !i.contains_key(attribute) && truth.lineage.of(i).contains(&p.id),
                    })
                });
                if !present && !superseded && !journaled {
                    violations.push(format!(
                        "lost plain write: k{}.{attribute} = {} ({} in {}, write {}) is neither in the final item ({}), nor superseded by a later write that had seen it, nor in a journal entry",
                        p.item,
                        value.as_ref().map_or("(removed)".into(), show_value),
                        p.what,
                        p.region,
                        p.seq,
                        match last.and_then(|i| i.get(attribute)) {
                            Some(v) => format!("it shows {}", show_value(v)),
                            None if last.is_none() => "no item".into(),
                            None => "absent there".into(),
                        }
                    ));
                }
            }
        }
    }
}

/// Rules decide concurrent edits; a lone edit shows its value.
fn check_rules(item: usize, v: &Version, violations: &mut Vec<String>) {
    for (name, register) in &v.attrs {
        let shown = register.value();
        let expected = match register {
            Register::One(s) => s.value.clone(),
            Register::Many { siblings, .. } if name == SET => {
                let all: BTreeSet<String> = siblings
                    .iter()
                    .filter_map(|s| match &s.value {
                        Some(AttributeValue::Ss(v)) => Some(v.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                (!all.is_empty()).then(|| AttributeValue::Ss(all.into_iter().collect()))
            }
            Register::Many { siblings, .. } => siblings
                .iter()
                .max_by(|a, b| a.at.lww_key().cmp(&b.at.lww_key()))
                .and_then(|s| s.value.clone()),
        };
        if !same_value(shown, expected.as_ref()) {
            violations.push(format!(
                "k{item}.{name} shows {} but its edits ({}) give {}",
                shown.map_or("(absent)".into(), show_value),
                register
                    .siblings()
                    .iter()
                    .map(|s| format!(
                        "{}={}",
                        s.at.dot.encode(),
                        s.value.as_ref().map_or("(removed)".into(), show_value)
                    ))
                    .collect::<Vec<_>>()
                    .join(" | "),
                expected.as_ref().map_or("(absent)".into(), show_value)
            ));
        }
    }
}

/// Sets compare as sets.
pub(crate) fn same_value(a: Option<&AttributeValue>, b: Option<&AttributeValue>) -> bool {
    match (a, b) {
        (Some(AttributeValue::Ss(x)), Some(AttributeValue::Ss(y))) => {
            x.iter().collect::<BTreeSet<_>>() == y.iter().collect::<BTreeSet<_>>()
        }
        _ => a == b,
    }
}

/// `have` shows `want`: equal, or for sets every element of `want` (a set
/// merged by union keeps a plain writer's elements among others').
fn same_or_within(have: Option<&AttributeValue>, want: &AttributeValue) -> bool {
    match (have, want) {
        (Some(AttributeValue::Ss(h)), AttributeValue::Ss(w)) => w.iter().all(|e| h.contains(e)),
        _ => have == Some(want),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::cluster::Spec;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    /// Effects, counter deltas and lineage of plain writes, through
    /// replication (plain last-writer-wins: no resolvers).
    #[tokio::test]
    async fn plain_writes_are_recorded_with_their_effects_and_lineage() {
        let mut spec = Spec::new(&["us-east-1", "us-west-2"]);
        spec.resolvers = false;
        let mut truth = Truth::default();
        spec.lineage = Some(truth.lineage.clone());
        let mut c = Cluster::memory(spec);
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        let key = item(&[("pk", s("k0"))]);
        let n = |v: i64| AttributeValue::N(v.to_string());
        c.writer()
            .insert(&east, item(&[("pk", s("k0")), ("a", s("x")), ("n", n(1))]))
            .await
            .unwrap();
        c.settle().await;
        let set = RawWrite::set(key.clone(), "p", s("q"));
        truth.plain_write(&mut c, &east, 0, &set, 1).await.unwrap();
        let put = RawWrite::Put(item(&[("pk", s("k0")), ("a", s("r")), ("n", n(5))]));
        truth.plain_write(&mut c, &east, 0, &put, 2).await.unwrap();
        let (first, second) = (&truth.plain[0], &truth.plain[1]);
        assert_eq!(first.effects, vec![("p".to_string(), Some(s("q")))]);
        assert!(first.base.is_empty() && first.base_stamp.is_some());
        assert_eq!(
            second.effects,
            vec![
                ("a".to_string(), Some(s("r"))),
                ("n".to_string(), Some(n(5))),
                ("p".to_string(), None)
            ]
        );
        assert_eq!(second.counter_delta, 4, "5 over the 1 its base held");
        assert_eq!(second.base, Ids::from([0]));
        assert!(
            second.base_stamp.is_some(),
            "the put replaced a stamped item"
        );
        // us-west-2 has seen neither until replication brings them.
        assert!(truth.base(&c, &west, &key).await.is_empty());
        c.settle().await;
        assert_eq!(truth.base(&c, &west, &key).await, Ids::from([0, 1]));
        let delete = RawWrite::Delete(key.clone());
        truth
            .plain_write(&mut c, &west, 0, &delete, 3)
            .await
            .unwrap();
        assert!(truth.deleted(0));
        assert_eq!(truth.base(&c, &west, &key).await, Ids::from([0, 1, 2]));
    }
}
