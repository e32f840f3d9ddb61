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
use crate::error::StampError;

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
    /// Base plus deltas, exact: summed in `i128`, which no number of `i64`
    /// terms a stamp can hold overflows.
    pub fn exact_total(&self) -> i128 {
        self.deltas
            .values()
            .fold(i128::from(self.base), |sum, d| sum + i128::from(*d))
    }

    /// Base plus deltas.
    ///
    /// # Errors
    /// [`StampError::Overflow`] (field `c`) when the sum leaves `i64`.
    pub fn total(&self) -> Result<i64, StampError> {
        i64::try_from(self.exact_total())
            .map_err(|_| StampError::overflow("c", "a Region's contributions overflow i64"))
    }
}

/// Per-Region contributions of one counter attribute.
pub type Counter = BTreeMap<Region, Contribution>;

/// The counter's value, exact (never wraps, whatever the contributions).
pub fn exact_counter_total(counter: &Counter) -> i128 {
    counter.values().map(Contribution::exact_total).sum()
}

/// The counter's value as the item stores it.
///
/// # Errors
/// [`StampError::Overflow`] (field `c`) when the sum of every Region's
/// contributions leaves `i64`: such a counter is refused, never wrapped.
pub fn counter_total(counter: &Counter) -> Result<i64, StampError> {
    i64::try_from(exact_counter_total(counter))
        .map_err(|_| StampError::overflow("c", "the counter's contributions overflow i64"))
}

/// The highest home epoch a stamp may hold: 2^53 - 1, so that an epoch
/// survives a JSON number round trip and `epoch + 1` never wraps (a wrapped
/// epoch would pin the home and defeat the fencing). Larger epochs are a
/// [`StampError::Overflow`] at decode; a home at this epoch cannot move.
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

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

    /// The epoch of the next move, `epoch + 1`, checked. Every move of a
    /// home (re-home, evacuation, assignment move) takes its epoch here.
    ///
    /// # Errors
    /// [`StampError::Overflow`] naming `e` when the epoch is at
    /// [`MAX_EPOCH`] (or above): the home cannot move.
    pub fn next_epoch(&self) -> Result<u64, StampError> {
        next_epoch(self.epoch)
    }

    /// This home moved to `region`, one epoch on.
    ///
    /// # Errors
    /// As [`Self::next_epoch`].
    pub fn moved_to(&self, region: Region) -> Result<Home, StampError> {
        Ok(Home::new(region, self.next_epoch()?))
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

/// `epoch + 1`, checked: never above [`MAX_EPOCH`]. For epochs read from
/// elsewhere than a stamp (an assignment record).
///
/// # Errors
/// [`StampError::Overflow`] naming `e`.
pub fn next_epoch(epoch: u64) -> Result<u64, StampError> {
    epoch
        .checked_add(1)
        .filter(|next| *next <= MAX_EPOCH)
        .ok_or_else(|| StampError::overflow("e", "the next home epoch would pass 2^53 - 1"))
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
    ///
    /// # Errors
    /// [`StampError::Overflow`] naming `k.<region>` when the highest known
    /// counter is at [`crate::dot::MAX_COUNTER`]: no write can follow it.
    pub fn next_counter(&self, region: &Region) -> Result<u64, StampError> {
        match self.known.get(region).and_then(|w| w.last()) {
            None => Ok(1),
            Some(t) => t
                .next_counter()
                .map_err(|e| e.in_field(&format!("k.{region}"))),
        }
    }

    /// Every number of this version a write or a move adds to: its
    /// Regions' counters (the next dot), its home epoch (the next move) and
    /// its counter totals (which the item stores as `i64`).
    ///
    /// # Errors
    /// The first [`StampError::Overflow`] found, naming its field.
    pub fn check_arithmetic(&self) -> Result<(), StampError> {
        for region in self.known.keys() {
            self.next_counter(region)?;
        }
        crate::dot::check_counter(self.header.tick.counter).map_err(|e| e.in_field("dot"))?;
        if let Some(home) = &self.home {
            home.next_epoch()?;
        }
        for (name, counter) in &self.counters {
            counter_total(counter).map_err(|e| e.in_field(&format!("c.{name}")))?;
        }
        Ok(())
    }

    /// The value the item shows for `attribute` (counters as their total).
    pub fn value(&self, attribute: &str) -> Option<AttributeValue> {
        if let Some(counter) = self.counters.get(attribute) {
            return Some(AttributeValue::N(exact_counter_total(counter).to_string()));
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
            // Exact: a total past i64 shows as it is (and is refused as an
            // overflow when read back), never wrapped.
            out.insert(
                name.clone(),
                AttributeValue::N(exact_counter_total(counter).to_string()),
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
                *ticks = match cut.checked_add(1) {
                    Some(above) => ticks.split_off(&Tick {
                        counter: above,
                        nonce: 0,
                    }),
                    None => BTreeSet::new(),
                };
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

/// Folds every delta at or below `cut` into the base. All or nothing: when
/// the folded base would leave `i64`, nothing is folded (the contribution
/// stays exact, its deltas kept), never wrapped.
pub(crate) fn fold(c: &mut Contribution, cut: u64) {
    if cut <= c.watermark {
        return;
    }
    let keep = match cut.checked_add(1) {
        Some(above) => c.deltas.split_off(&Tick {
            counter: above,
            nonce: 0,
        }),
        None => BTreeMap::new(),
    };
    let folded = c
        .deltas
        .values()
        .fold(i128::from(c.base), |sum, d| sum + i128::from(*d));
    let Ok(base) = i64::try_from(folded) else {
        c.deltas.extend(keep);
        return;
    };
    c.base = base;
    c.deltas = keep;
    c.watermark = c.watermark.max(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn east() -> Region {
        Region::parse("us-east-1").unwrap()
    }

    fn tick(counter: u64) -> Tick {
        Tick { counter, nonce: 1 }
    }

    fn version(known: &[u64]) -> Version {
        Version {
            key: BTreeMap::new(),
            header: Header {
                origin: east(),
                time_ms: 0,
                by: WriterKind::App,
                tick: tick(1),
            },
            known: BTreeMap::from([(east(), known.iter().copied().map(tick).collect())]),
            attrs: BTreeMap::new(),
            counters: BTreeMap::new(),
            home: None,
        }
    }

    #[test]
    fn a_counter_at_the_cap_cannot_take_another_write() {
        for at in [u64::MAX, crate::dot::MAX_COUNTER] {
            let v = version(&[1, at]);
            let err = v.next_counter(&east()).unwrap_err();
            assert!(
                matches!(&err, StampError::Overflow { field, .. } if field == "k.us-east-1"),
                "{err:?}"
            );
            assert!(v.check_arithmetic().is_err());
        }
        let v = version(&[crate::dot::MAX_COUNTER - 1]);
        assert_eq!(v.next_counter(&east()), Ok(crate::dot::MAX_COUNTER));
        assert_eq!(version(&[]).next_counter(&east()), Ok(1));
    }

    #[test]
    fn trimming_a_window_at_the_last_counter_does_not_wrap() {
        let mut v = version(&[u64::MAX - 1, u64::MAX]);
        v.trim(1);
        assert_eq!(v.known[&east()], BTreeSet::from([tick(u64::MAX)]));
        // The cut at the last counter itself: everything leaves the window
        // (`cut + 1` would wrap to 0 and keep everything).
        v.trim(0);
        assert!(v.known[&east()].is_empty());
    }

    #[test]
    fn counter_sums_are_exact_or_refused_never_wrapped() {
        let c = Contribution {
            base: i64::MAX,
            watermark: 0,
            deltas: BTreeMap::from([(tick(1), 1), (tick(2), -1)]),
        };
        assert_eq!(c.total(), Ok(i64::MAX));
        let mut counter = Counter::from([(east(), c.clone())]);
        assert_eq!(counter_total(&counter), Ok(i64::MAX));
        counter.insert(Region::parse("eu-west-1").unwrap(), c.clone());
        assert!(matches!(
            counter_total(&counter),
            Err(StampError::Overflow { .. })
        ));
        assert_eq!(exact_counter_total(&counter), 2 * i128::from(i64::MAX));

        // Folding the +1 alone would overflow the base: nothing is folded,
        // and the contribution keeps its exact total.
        let mut folded = c.clone();
        fold(&mut folded, 1);
        assert_eq!(folded, c);
        // A fold that fits goes through.
        let mut ok = c;
        fold(&mut ok, 2);
        assert_eq!((ok.base, ok.watermark, ok.deltas.len()), (i64::MAX, 2, 0));
        // Folding at the last counter does not wrap either.
        let mut last = Contribution {
            base: 1,
            watermark: 0,
            deltas: BTreeMap::from([(tick(u64::MAX), 2)]),
        };
        fold(&mut last, u64::MAX);
        assert_eq!((last.base, last.watermark), (3, u64::MAX));
    }
}
