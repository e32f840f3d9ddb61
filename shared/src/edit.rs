//! A write, pure: the changes an app makes to an item (a [`Draft`]) and how
//! they become the next stamped version (a new dot for the writer's Region,
//! that dot on every changed attribute, counter deltas on that dot).

use std::collections::BTreeMap;

use serde_dynamo::AttributeValue;
use thiserror::Error;

use crate::dot::{Region, Tick};
use crate::error::StampError;
use crate::merge::Merger;
use crate::stamp::Schema;
use crate::version::{
    counter_total, exact_counter_total, Header, Home, Register, Sibling, Version, WriterKind,
};

/// A change the writer cannot make; nothing is written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EditError {
    #[error("attribute `{0}` is a key or the stamp attribute and cannot be changed")]
    Reserved(String),
    #[error(
        "attribute `{0}` is not configured as a counter; only counter attributes take increments"
    )]
    NotACounter(String),
    #[error("counter attribute `{attribute}` needs a whole number, got {got}")]
    CounterValue { attribute: String, got: String },
    #[error("counter attribute `{0}` cannot be removed (set it to 0, or delete the item)")]
    CounterRemoved(String),
    #[error("counter `{0}` would overflow")]
    Overflow(String),
    /// The base version's stamp cannot take another write (a dot counter
    /// or an epoch at its cap).
    #[error(transparent)]
    Stamp(#[from] StampError),
}

#[derive(Debug, Clone, PartialEq)]
enum Change {
    Set(AttributeValue),
    Remove,
    Add(i64),
}

/// The app's view of an item during `update`: the current values, and the
/// changes it makes to them.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    current: BTreeMap<String, AttributeValue>,
    changes: BTreeMap<String, Change>,
}

impl Draft {
    pub fn new(current: BTreeMap<String, AttributeValue>) -> Self {
        Draft {
            current,
            changes: BTreeMap::new(),
        }
    }

    /// The current value of `attribute`, with this draft's changes applied
    /// (a counter's pending increments included).
    pub fn get(&self, attribute: &str) -> Option<AttributeValue> {
        match self.changes.get(attribute) {
            Some(Change::Set(v)) => Some(v.clone()),
            Some(Change::Remove) => None,
            Some(Change::Add(delta)) => {
                let now = self.current.get(attribute).and_then(as_i64).unwrap_or(0);
                // Exact, never wrapped: `apply` refuses a total past i64.
                Some(AttributeValue::N(
                    (i128::from(now) + i128::from(*delta)).to_string(),
                ))
            }
            None => self.current.get(attribute).cloned(),
        }
    }

    pub fn set(&mut self, attribute: &str, value: AttributeValue) -> &mut Self {
        self.changes
            .insert(attribute.to_owned(), Change::Set(value));
        self
    }

    pub fn remove(&mut self, attribute: &str) -> &mut Self {
        self.changes.insert(attribute.to_owned(), Change::Remove);
        self
    }

    /// Adds `delta` to a counter attribute (negative to decrement).
    pub fn increment(&mut self, attribute: &str, delta: i64) -> &mut Self {
        let change = match self.changes.get(attribute) {
            Some(Change::Add(d)) => Change::Add(d.saturating_add(delta)),
            // Set earlier in this draft (an adopted legacy value, or the
            // app's own set): the increment adds to that value. Exact,
            // never wrapped: `apply` refuses a total past i64.
            Some(Change::Set(v)) => match as_i64(v) {
                Some(n) => Change::Set(AttributeValue::N(
                    (i128::from(n) + i128::from(delta)).to_string(),
                )),
                None => Change::Add(delta),
            },
            _ => Change::Add(delta),
        };
        self.changes.insert(attribute.to_owned(), change);
        self
    }

    /// Names of every attribute the draft currently holds.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        let mut names: Vec<String> = self
            .current
            .keys()
            .chain(self.changes.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names.into_iter().filter(|n| self.get(n).is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn as_i64(value: &AttributeValue) -> Option<i64> {
    match value {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// Who writes, where and when: what the next dot is made of.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub region: Region,
    pub time_ms: u64,
    pub nonce: u32,
    pub by: WriterKind,
}

impl WriteContext {
    /// The header of the write that follows `base` in this Region.
    ///
    /// # Errors
    /// [`StampError::Overflow`] when `base`'s counter for this Region is at
    /// its cap: no write can follow it.
    pub fn header_after(&self, base: &Version) -> Result<Header, StampError> {
        Ok(Header {
            origin: self.region.clone(),
            time_ms: self.time_ms,
            by: self.by,
            tick: Tick {
                counter: base.next_counter(&self.region)?,
                nonce: self.nonce,
            },
        })
    }
}

/// Gives `version` a fresh header (a new dot of `ctx.region`) and records
/// that dot as known. What a resolver does to a merge result before writing.
///
/// Prefer [`try_restamp`]. This one cannot fail for versions read by
/// [`Schema::decode`] and their merges (the decoder refuses a counter that
/// could not take one more write); for any other version at the cap it
/// leaves the header as it is rather than wrap a counter.
pub fn restamp(version: Version, ctx: &WriteContext, merger: &Merger) -> Version {
    let mut version = version;
    if let Ok(header) = ctx.header_after(&version) {
        version.header = header;
        version
            .known
            .entry(ctx.region.clone())
            .or_default()
            .insert(version.header.tick);
    }
    version.trim(merger.window);
    version
}

/// [`restamp`], checked: the result is a version the decoder reads back,
/// whose counters and epoch can take the next write and move and whose
/// counter totals fit the item.
///
/// # Errors
/// [`StampError::Overflow`] naming the field; nothing should be written.
pub fn try_restamp(
    mut version: Version,
    ctx: &WriteContext,
    merger: &Merger,
) -> Result<Version, StampError> {
    version.header = ctx.header_after(&version)?;
    version
        .known
        .entry(ctx.region.clone())
        .or_default()
        .insert(version.header.tick);
    version.trim(merger.window);
    version.check_arithmetic()?;
    Ok(version)
}

/// Applies `draft` to `base`, producing the next version written in
/// `ctx.region`. Attributes whose value does not change keep their dot.
///
/// # Errors
/// [`EditError`] for a change the rules forbid; nothing is produced.
pub fn apply(
    base: &Version,
    draft: &Draft,
    ctx: &WriteContext,
    merger: &Merger,
    schema: &Schema,
    home: Option<Home>,
) -> Result<Version, EditError> {
    let mut next = base.clone();
    next.header = ctx.header_after(base)?;
    let tick = next.header.tick;
    let at = next.header.timed_dot();
    next.known
        .entry(ctx.region.clone())
        .or_default()
        .insert(tick);
    if home.is_some() {
        next.home = home;
    }

    for (name, change) in &draft.changes {
        if schema.is_reserved(name) {
            return Err(EditError::Reserved(name.clone()));
        }
        if merger.rules.is_counter(name) {
            let delta = match change {
                Change::Add(delta) => *delta,
                Change::Remove => return Err(EditError::CounterRemoved(name.clone())),
                Change::Set(value) => {
                    let target = as_i64(value).ok_or_else(|| EditError::CounterValue {
                        attribute: name.clone(),
                        got: crate::stamp::describe(value),
                    })?;
                    let now = next.counters.get(name).map_or(0, exact_counter_total);
                    i64::try_from(i128::from(target) - now)
                        .map_err(|_| EditError::Overflow(name.clone()))?
                }
            };
            let counter = next.counters.entry(name.clone()).or_default();
            counter
                .entry(ctx.region.clone())
                .or_default()
                .deltas
                .insert(tick, delta);
            // Stored totals must stay i64: refuse a write that overflows.
            counter_total(counter).map_err(|_| EditError::Overflow(name.clone()))?;
            // A counter attribute never keeps a plain register.
            next.attrs.remove(name);
            continue;
        }
        let value = match change {
            Change::Set(v) => Some(v.clone()),
            Change::Remove => None,
            Change::Add(_) => return Err(EditError::NotACounter(name.clone())),
        };
        let unchanged = match next.attrs.get(name) {
            Some(Register::One(s)) => s.value == value,
            Some(Register::Many { .. }) => false,
            None => value.is_none(),
        };
        if !unchanged {
            next.attrs.insert(
                name.clone(),
                Register::One(Sibling {
                    at: at.clone(),
                    value,
                }),
            );
        }
    }
    next.trim(merger.window);
    // Never write a stamp the decoder would refuse (a counter or an epoch
    // that could not take the next write or move).
    next.check_arithmetic()?;
    Ok(next)
}

/// The first version of a new item: every attribute carries the insert's dot.
///
/// # Errors
/// [`EditError`] for a value the rules forbid (a counter that is not a
/// whole number, a reserved attribute).
pub fn first_version(
    key: BTreeMap<String, AttributeValue>,
    values: &BTreeMap<String, AttributeValue>,
    ctx: &WriteContext,
    merger: &Merger,
    schema: &Schema,
    home: Option<Home>,
) -> Result<Version, EditError> {
    let empty = empty_version(key, ctx);
    let mut draft = Draft::default();
    for (name, value) in values {
        draft.set(name, value.clone());
    }
    apply(&empty, &draft, ctx, merger, schema, home)
}

/// A version with nothing in it: the base of an insert or an adoption.
pub fn empty_version(key: BTreeMap<String, AttributeValue>, ctx: &WriteContext) -> Version {
    Version {
        key,
        header: Header {
            origin: ctx.region.clone(),
            time_ms: 0,
            by: ctx.by,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn ctx(region: &str) -> WriteContext {
        WriteContext {
            region: Region::parse(region).unwrap(),
            time_ms: 1_764_000_100_000,
            nonce: 9,
            by: WriterKind::App,
        }
    }

    /// The fixture with us-east-1's highest counter set to `counter`.
    fn at_counter(counter: u64) -> Version {
        let (mut x, _) = fixtures::concurrent_pair();
        let east = Region::parse("us-east-1").unwrap();
        x.known
            .get_mut(&east)
            .unwrap()
            .insert(Tick { counter, nonce: 3 });
        x
    }

    #[test]
    fn a_write_after_the_last_counter_is_refused_not_wrapped() {
        let merger = Merger::new(fixtures::rules());
        let schema = fixtures::schema();
        let mut draft = Draft::new(BTreeMap::new());
        draft.set("attr_01", AttributeValue::S("x".into()));
        for counter in [u64::MAX, crate::dot::MAX_COUNTER] {
            let base = at_counter(counter);
            let err = apply(&base, &draft, &ctx("us-east-1"), &merger, &schema, None).unwrap_err();
            assert!(
                matches!(&err, EditError::Stamp(StampError::Overflow { field, .. }) if field == "k.us-east-1"),
                "{err:?}"
            );
            assert!(try_restamp(base.clone(), &ctx("us-east-1"), &merger).is_err());
            // The infallible form leaves the header rather than wrap it.
            let kept = restamp(base.clone(), &ctx("us-east-1"), &merger);
            assert_eq!(kept.header, base.header);
            // Nor does another Region write it on: the stamp it would write
            // is one the decoder refuses.
            assert!(apply(&base, &draft, &ctx("eu-west-1"), &merger, &schema, None).is_err());
        }
        // One below the cap: the write takes the last counter, and the
        // version it makes can take no more (so it is refused too: never
        // write a stamp the decoder would refuse).
        let base = at_counter(crate::dot::MAX_COUNTER - 1);
        assert!(apply(&base, &draft, &ctx("us-east-1"), &merger, &schema, None).is_err());
        let base = at_counter(crate::dot::MAX_COUNTER - 2);
        let next = apply(&base, &draft, &ctx("us-east-1"), &merger, &schema, None).unwrap();
        assert_eq!(next.header.tick.counter, crate::dot::MAX_COUNTER - 1);
        schema.decode(&schema.encode(&next)).unwrap();
    }

    #[test]
    fn counter_increments_never_wrap() {
        let mut draft = Draft::new(BTreeMap::from([(
            "stock".to_owned(),
            AttributeValue::N(i64::MAX.to_string()),
        )]));
        draft.increment("stock", 1);
        assert_eq!(
            draft.get("stock"),
            Some(AttributeValue::N("9223372036854775808".into()))
        );
        let (x, _) = fixtures::concurrent_pair();
        let mut draft = Draft::new(x.values());
        draft.increment("stock", i64::MAX);
        let err = apply(
            &x,
            &draft,
            &ctx("us-east-1"),
            &Merger::new(fixtures::rules()),
            &fixtures::schema(),
            None,
        )
        .unwrap_err();
        assert_eq!(err, EditError::Overflow("stock".into()));
    }
}
