//! A write, pure: the changes an app makes to an item (a [`Draft`]) and how
//! they become the next stamped version (a new dot for the writer's Region,
//! that dot on every changed attribute, counter deltas on that dot).

use std::collections::BTreeMap;

use serde_dynamo::{AttributeValue, Item};
use thiserror::Error;

use crate::dot::{Region, Tick};
use crate::merge::Merger;
use crate::stamp::Schema;
use crate::version::{counter_total, Header, Home, Register, Sibling, Version, WriterKind};

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
                Some(AttributeValue::N((now + delta).to_string()))
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
        let total = match self.changes.get(attribute) {
            Some(Change::Add(d)) => d.saturating_add(delta),
            _ => delta,
        };
        self.changes
            .insert(attribute.to_owned(), Change::Add(total));
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
    pub fn header_after(&self, base: &Version) -> Header {
        Header {
            origin: self.region.clone(),
            time_ms: self.time_ms,
            by: self.by,
            tick: Tick {
                counter: base.next_counter(&self.region),
                nonce: self.nonce,
            },
        }
    }
}

/// Gives `version` a fresh header (a new dot of `ctx.region`) and records
/// that dot as known. What a resolver does to a merge result before writing.
pub fn restamp(mut version: Version, ctx: &WriteContext, merger: &Merger) -> Version {
    version.header = ctx.header_after(&version);
    version
        .known
        .entry(ctx.region.clone())
        .or_default()
        .insert(version.header.tick);
    version.trim(merger.window);
    version
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
    next.header = ctx.header_after(base);
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
                    let now = next.counters.get(name).map_or(0, counter_total);
                    target
                        .checked_sub(now)
                        .ok_or_else(|| EditError::Overflow(name.clone()))?
                }
            };
            let counter = next.counters.entry(name.clone()).or_default();
            counter
                .entry(ctx.region.clone())
                .or_default()
                .deltas
                .insert(tick, delta);
            // Stored totals must stay i64: refuse a write that overflows.
            counter
                .values()
                .try_fold(0i64, |acc, c| {
                    c.deltas
                        .values()
                        .try_fold(acc.checked_add(c.base)?, |a, d| a.checked_add(*d))
                })
                .ok_or_else(|| EditError::Overflow(name.clone()))?;
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

/// Takes over an item written without a stamp (a legacy writer): the next
/// write treats every attribute as set by it.
///
/// # Errors
/// [`crate::StampError::MissingKey`] when the item lacks a key attribute.
pub fn adopt_unstamped(
    item: &Item,
    ctx: &WriteContext,
    schema: &Schema,
) -> Result<(Version, Draft), crate::StampError> {
    let key = schema.key_of(item)?;
    let values: BTreeMap<String, AttributeValue> = item
        .iter()
        .filter(|(k, _)| !schema.is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let empty = empty_version(key, ctx);
    let mut draft = Draft::new(BTreeMap::new());
    for (name, value) in &values {
        draft.set(name, value.clone());
    }
    // The app's draft sees the legacy values as current.
    draft.current = values;
    Ok((empty, draft))
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
