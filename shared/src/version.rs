//! One version of an item as Homeward sees it: the key, the header of the
//! write that made it, and the causal state of every attribute.
//!
//! Plain attributes are multi-value registers: normally one sibling (the
//! dot of the write that last set or removed it, and its value); after a real
//! concurrent edit, every concurrent sibling is kept and the attribute's rule
//! picks the value the item shows. Counter attributes keep per-Region
//! contributions instead. This makes `merge` an exact join (commutative,
//! associative, idempotent) for every rule, built-in or custom.

use std::collections::{BTreeMap, BTreeSet};

use serde_dynamo::AttributeValue;

use crate::dot::{Dot, Region, Tick, TimedDot};

/// Who made a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriterKind {
    App,
    Resolver,
}

impl WriterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WriterKind::App => "app",
            WriterKind::Resolver => "resolver",
        }
    }
}

/// The write that made a version: where, when, by whom, and its dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub origin: Region,
    pub time_ms: u64,
    pub by: WriterKind,
    pub tick: Tick,
}

impl Header {
    pub fn dot(&self) -> Dot {
        Dot {
            region: self.origin.clone(),
            tick: self.tick,
        }
    }

    pub fn timed_dot(&self) -> TimedDot {
        TimedDot {
            dot: self.dot(),
            time_ms: self.time_ms,
        }
    }

    /// Total order used to pick a merged version's header (the latest one).
    fn order_key(&self) -> (u64, &Region, Tick, WriterKind) {
        (self.time_ms, &self.origin, self.tick, self.by)
    }
}

/// One edit of an attribute: its dot and the value it wrote (`None`: the
/// edit removed the attribute, a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling {
    pub at: TimedDot,
    pub value: Option<AttributeValue>,
}

/// The edits of one plain attribute that no later edit has superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Register {
    One(Sibling),
    /// Concurrent edits (sorted by dot); `shown` is what the rule picked.
    Many {
        siblings: Vec<Sibling>,
        shown: Option<AttributeValue>,
    },
}

impl Register {
    pub fn siblings(&self) -> &[Sibling] {
        match self {
            Register::One(s) => std::slice::from_ref(s),
            Register::Many { siblings, .. } => siblings,
        }
    }

    /// The value the item shows (`None`: the attribute is absent).
    pub fn value(&self) -> Option<&AttributeValue> {
        match self {
            Register::One(s) => s.value.as_ref(),
            Register::Many { shown, .. } => shown.as_ref(),
        }
    }
}

/// One Region's share of a counter: a folded base (every delta of that
/// Region up to `watermark`) plus the deltas of dots still in the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contribution {
    pub base: i64,
    pub watermark: u64,
    pub deltas: BTreeMap<Tick, i64>,
}

impl Contribution {
    pub fn total(&self) -> i64 {
        self.base + self.deltas.values().sum::<i64>()
    }
}

/// Per-Region contributions of one counter attribute.
pub type Counter = BTreeMap<Region, Contribution>;

pub fn counter_total(counter: &Counter) -> i64 {
    counter.values().map(Contribution::total).sum()
}

/// The item's home as the stamp records it; the epoch fences re-homes.
/// Versions merge by taking the greater home (epoch first), so a re-home
/// is never undone by an older copy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Home {
    pub epoch: u64,
    pub region: Region,
    /// Foreign writes counted towards an `after N` re-home.
    pub pending: Option<PendingMove>,
}

impl Home {
    pub fn new(region: Region, epoch: u64) -> Self {
        Home {
            epoch,
            region,
            pending: None,
        }
    }

    /// The join of two versions' homes: the higher epoch wins (the Region
    /// breaks a tie between two moves made during one evacuation); for the
    /// same home, the counts of foreign writes are joined.
    pub fn join(a: Option<Home>, b: Option<Home>) -> Option<Home> {
        match (a, b) {
            (Some(a), Some(b)) if a.epoch == b.epoch && a.region == b.region => {
                let pending = match (a.pending, &b.pending) {
                    (Some(x), Some(y)) => Some(x.join(y)),
                    (x, y) => x.or_else(|| y.clone()),
                };
                Some(Home { pending, ..a })
            }
            (a, b) => a.max(b),
        }
    }
}

/// The foreign writes the home copy has counted towards an `after N`
/// re-home: per Region, the (counter, write time) of its latest ones. A
/// join-semilattice (union, then the latest [`PendingMove::KEPT`] per
/// Region), so forked copies merge without losing or double-counting one.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingMove {
    pub writes: BTreeMap<Region, BTreeSet<(u64, u64)>>,
}

impl PendingMove {
    /// Writes kept per Region (so `after:N` takes N up to this).
    pub const KEPT: usize = 16;

    /// Counts a write; `false` when it changes nothing (counted already,
    /// or older than every write kept).
    pub fn add(&mut self, region: &Region, counter: u64, time_ms: u64) -> bool {
        let kept = self.writes.entry(region.clone()).or_default();
        let added = kept.insert((counter, time_ms));
        Self::trim(kept);
        added && kept.contains(&(counter, time_ms))
    }

    fn trim(kept: &mut BTreeSet<(u64, u64)>) {
        while kept.len() > Self::KEPT {
            kept.pop_first();
        }
    }

    /// The join of two counts.
    pub fn join(mut self, other: &PendingMove) -> PendingMove {
        for (region, theirs) in &other.writes {
            let kept = self.writes.entry(region.clone()).or_default();
            kept.extend(theirs.iter().copied());
            Self::trim(kept);
        }
        self
    }
}

/// A decoded item version.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The item's key attributes (never merged: both sides share them).
    pub key: BTreeMap<String, AttributeValue>,
    pub header: Header,
    /// Per Region, the window of that Region's most recent dots this version
    /// includes. A dot below the lowest counter of the window counts as known.
    pub known: BTreeMap<Region, BTreeSet<Tick>>,
    pub attrs: BTreeMap<String, Register>,
    pub counters: BTreeMap<String, Counter>,
    pub home: Option<Home>,
}

impl Version {
    /// Whether this version includes the write `dot`.
    pub fn knows(&self, dot: &Dot) -> bool {
        match self.known.get(&dot.region) {
            None => false,
            Some(window) => {
                window.contains(&dot.tick)
                    || window
                        .first()
                        .is_some_and(|lowest| dot.tick.counter < lowest.counter)
            }
        }
    }

    /// Whether this version includes `other` (knows the write that made it).
    pub fn includes(&self, other: &Version) -> bool {
        self.knows(&other.header.dot())
    }

    /// The counter the next write of `region` takes on this item's chain.
    pub fn next_counter(&self, region: &Region) -> u64 {
        self.known
            .get(region)
            .and_then(|w| w.last())
            .map_or(1, |t| t.counter + 1)
    }

    /// The value the item shows for `attribute` (counters as their total).
    pub fn value(&self, attribute: &str) -> Option<AttributeValue> {
        if let Some(counter) = self.counters.get(attribute) {
            return Some(AttributeValue::N(counter_total(counter).to_string()));
        }
        self.attrs.get(attribute).and_then(|r| r.value().cloned())
    }

    /// Every value the item shows, without key and stamp.
    pub fn values(&self) -> BTreeMap<String, AttributeValue> {
        let mut out: BTreeMap<String, AttributeValue> = self
            .attrs
            .iter()
            .filter_map(|(name, r)| r.value().map(|v| (name.clone(), v.clone())))
            .collect();
        for (name, counter) in &self.counters {
            out.insert(
                name.clone(),
                AttributeValue::N(counter_total(counter).to_string()),
            );
        }
        out
    }

    /// Whether `self` already holds everything `merged` holds: the same
    /// values and every dot. A resolver skips its write only then, which is
    /// what makes a redelivered record harmless.
    pub fn covers(&self, merged: &Version) -> bool {
        self.values() == merged.values()
            && merged.known.iter().all(|(region, window)| {
                window.iter().all(|tick| {
                    self.knows(&Dot {
                        region: region.clone(),
                        tick: *tick,
                    })
                })
            })
            && self.attrs == merged.attrs
            && self.counters == merged.counters
            && self.home == merged.home
    }

    /// Keeps the `window` highest distinct counters of each Region (forked
    /// dots with equal counters are all kept) and folds every counter delta
    /// below a Region's window into that Region's base, so that equal
    /// knowledge always gives equal contributions.
    pub fn trim(&mut self, window: usize) {
        for ticks in self.known.values_mut() {
            let mut distinct = 0;
            let mut last = None;
            let cut = ticks.iter().rev().find(|tick| {
                if last != Some(tick.counter) {
                    distinct += 1;
                    last = Some(tick.counter);
                }
                distinct > window
            });
            if let Some(cut) = cut.map(|t| t.counter) {
                // Everything at or below `cut` leaves the window.
                *ticks = ticks.split_off(&Tick {
                    counter: cut + 1,
                    nonce: 0,
                });
            }
        }
        for counter in self.counters.values_mut() {
            for (region, c) in counter.iter_mut() {
                let lowest = self
                    .known
                    .get(region)
                    .and_then(|w| w.first())
                    .map_or(0, |t| t.counter);
                fold(c, lowest.saturating_sub(1));
            }
        }
    }

    /// Latest of two headers: the merged version's header until it is
    /// written with a fresh one.
    pub(crate) fn later_header<'a>(a: &'a Header, b: &'a Header) -> &'a Header {
        if a.order_key() >= b.order_key() {
            a
        } else {
            b
        }
    }
}

/// Folds every delta at or below `cut` into the base.
pub(crate) fn fold(c: &mut Contribution, cut: u64) {
    if cut <= c.watermark {
        return;
    }
    let keep = c.deltas.split_off(&Tick {
        counter: cut + 1,
        nonce: 0,
    });
    c.base += c.deltas.values().sum::<i64>();
    c.deltas = keep;
    c.watermark = c.watermark.max(cut);
}
