//! The stamped writer: read-modify-write that reads strongly consistent in
//! the Region it writes to, stamps the change, and writes conditionally on
//! the version it read, retrying with backoff when another write got there
//! first. Two writers in one Region therefore never lose an update.
//!
//! The stamp's time `t` comes from the writer's [`Clock`]: the system clock
//! by default; a skewed one plays a host whose clock is off (containers,
//! VMs after suspend, hosts without time sync).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_dynamo::{AttributeValue, Item};
use thiserror::Error;

use crate::dot::{Dot, Region};
use crate::edit::{self, Draft, EditError, WriteContext};
use crate::error::StampError;
use crate::merge::Merger;
use crate::size::{item_size, MAX_ITEM_BYTES};
use crate::stamp::Schema;
use crate::store::{PutCondition, Store, StoreError};
use crate::version::{Home, Version, WriterKind};

/// Why a write did not happen. In every case nothing was written.
#[derive(Debug, Error)]
pub enum WriteError {
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("the stored item's stamp is unreadable: {0}")]
    Stamp(#[from] StampError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("the item would be {bytes} bytes, over DynamoDB's {MAX_ITEM_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("home: {0}")]
    Home(String),
    #[error("no item with this key")]
    NotFound,
    #[error("an item with this key already exists")]
    AlreadyExists,
    #[error("gave up after {attempts} attempts: the item kept changing under the write")]
    Contended { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often and how patiently to retry a failed condition.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            max_attempts: 10,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(500),
        }
    }
}

impl Backoff {
    /// Full-jitter exponential delay before attempt `attempt` (1-based).
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// Soft deletes: a stamped tombstone that DynamoDB's TTL removes later.
#[derive(Debug, Clone)]
pub struct Tombstones {
    /// The table's TTL attribute (epoch seconds).
    pub ttl_attribute: String,
    pub retention: Duration,
}

impl Default for Tombstones {
    fn default() -> Self {
        Tombstones {
            ttl_attribute: "hw_expires".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Where a writer's time comes from, in milliseconds since the epoch, per
/// Region written to: the stamp's `t` and soft deletes' expiry. The default
/// is the system clock; a writer's clock may be off by seconds, and nothing
/// DynamoDB decides (last-writer-wins uses the service's own time of each
/// write) depends on it.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn(&Region) -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(|_: &Region| now_ms()))
    }

    /// The system clock off by `skew_ms` (ahead when positive) in every
    /// Region.
    pub fn skewed(skew_ms: i64) -> Self {
        Clock(Arc::new(move |_: &Region| skew(now_ms(), skew_ms)))
    }

    /// The system clock off by a skew per Region (ahead when positive); a
    /// Region not named has none.
    pub fn per_region(skews: impl IntoIterator<Item = (Region, i64)>) -> Self {
        let skews: BTreeMap<Region, i64> = skews.into_iter().collect();
        Clock(Arc::new(move |r: &Region| {
            skew(now_ms(), skews.get(r).copied().unwrap_or(0))
        }))
    }

    /// Any clock: `f` gives the time of a write to a Region, in ms.
    pub fn from_fn(f: impl Fn(&Region) -> u64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// The time of a write to `region`, in ms since the epoch.
    pub fn now_ms(&self, region: &Region) -> u64 {
        (self.0)(region)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

fn skew(ms: u64, skew_ms: i64) -> u64 {
    ms.saturating_add_signed(skew_ms)
}

/// The stamped writer over a [`Store`].
pub struct Writer<S> {
    store: S,
    schema: Schema,
    merger: Merger,
    pub backoff: Backoff,
    pub tombstones: Tombstones,
    /// The attribute that mirrors the item's home (the `attribute:<name>`
    /// strategy). A write that changes it moves the home one epoch on, so
    /// the stamp's home never contradicts it.
    pub home_attribute: Option<String>,
    /// The stamp's time `t` (and soft deletes' expiry) comes from here.
    pub clock: Clock,
}

impl<S: Store> Writer<S> {
    pub fn new(store: S, schema: Schema, merger: Merger) -> Self {
        Writer {
            store,
            schema,
            merger,
            backoff: Backoff::default(),
            tombstones: Tombstones::default(),
            home_attribute: None,
            clock: Clock::system(),
        }
    }

    /// The same writer with `clock` for its stamps' time.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same writer with its clock off by `skew_ms` (ahead when
    /// positive) in every Region.
    #[must_use]
    pub fn with_clock_skew(self, skew_ms: i64) -> Self {
        self.with_clock(Clock::skewed(skew_ms))
    }

    pub fn merger(&self) -> &Merger {
        &self.merger
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Reads the current version in `region`; `None` when there is no item
    /// or it is a soft-delete tombstone. A legacy item without a stamp reads
    /// as the version its first stamped write would make (nothing is written).
    ///
    /// # Errors
    /// A bad key, an unreadable stamp, or a store failure.
    pub async fn get(&self, region: &Region, key: &Item) -> Result<Option<Version>, WriteError> {
        self.check_key(key)?;
        match self.store.get(region, key).await? {
            None => Ok(None),
            Some(item) if item.contains_key(&self.tombstones.ttl_attribute) => Ok(None),
            Some(item) => Ok(Some(self.adopted(&item)?)),
        }
    }

    /// Creates an item (`attribute_not_exists`), or revives a soft-deleted
    /// one on top of its tombstone.
    ///
    /// # Errors
    /// [`WriteError::AlreadyExists`] when a live item has this key; a bad
    /// key, a value the rules forbid, an item over 400 KB.
    pub async fn insert(&self, region: &Region, item: Item) -> Result<Version, WriteError> {
        self.insert_homed(region, item, None).await
    }

    /// [`Self::insert`], recording `home` in the stamp.
    ///
    /// # Errors
    /// As [`Self::insert`].
    pub async fn insert_homed(
        &self,
        region: &Region,
        item: Item,
        home: Option<Home>,
    ) -> Result<Version, WriteError> {
        let key = self.key_from_item(&item)?;
        let values: BTreeMap<String, AttributeValue> = item
            .iter()
            .filter(|(name, _)| !self.schema.is_reserved(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if item.contains_key(&self.schema.stamp_attribute) {
            return Err(EditError::Reserved(self.schema.stamp_attribute.clone()).into());
        }
        let ctx = self.context(region);
        let version = edit::first_version(
            key.clone(),
            &values,
            &ctx,
            &self.merger,
            &self.schema,
            home.clone(),
        )?;
        let key_item = Item::from(key.into_iter().collect::<std::collections::HashMap<_, _>>());
        let ttl = self.tombstones.ttl_attribute.clone();
        // Twice at most: TTL may remove a tombstone between the two tries.
        for _ in 0..2 {
            match self.put(region, &version, PutCondition::NotExists).await {
                Err(WriteError::Store(StoreError::ConditionFailed)) => {}
                other => return other.map(|()| version),
            }
            // Something holds the key: a tombstone can be written over.
            let revived = self
                .modify(region, &key_item, home.clone(), true, |draft| {
                    draft.remove(&ttl);
                    for (name, value) in &values {
                        draft.set(name, value.clone());
                    }
                })
                .await;
            match revived {
                Err(WriteError::NotFound) => continue,
                other => return other,
            }
        }
        Err(WriteError::Contended { attempts: 2 })
    }

    /// Read-modify-write of an existing item in `region`: `change` edits a
    /// [`Draft`] of the current values; it may run more than once when the
    /// item changes under the write, so it should only edit the draft.
    ///
    /// # Errors
    /// [`WriteError::NotFound`], a bad key, an unreadable stamp on the
    /// stored item, a change the rules forbid, an item over 400 KB, or
    /// [`WriteError::Contended`] once the retries are spent.
    pub async fn update<F>(
        &self,
        region: &Region,
        key: &Item,
        change: F,
    ) -> Result<Version, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        self.modify(region, key, None, false, change).await
    }

    /// [`Self::update`] that also records the item's home in the stamp.
    ///
    /// # Errors
    /// As [`Self::update`].
    pub async fn update_homed<F>(
        &self,
        region: &Region,
        key: &Item,
        home: Home,
        change: F,
    ) -> Result<Version, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        self.modify(region, key, Some(home), false, change).await
    }

    /// Adds `delta` to counter attribute `attribute`.
    ///
    /// # Errors
    /// As [`Self::update`]; [`EditError::NotACounter`] when the rules do not
    /// make `attribute` a counter.
    pub async fn increment(
        &self,
        region: &Region,
        key: &Item,
        attribute: &str,
        delta: i64,
    ) -> Result<Version, WriteError> {
        self.update(region, key, |d| {
            d.increment(attribute, delta);
        })
        .await
    }

    /// Soft delete: removes every plain attribute (each gets a stamped
    /// tombstone) and sets the TTL attribute, so the deletion replicates and
    /// merges like any write, and DynamoDB's TTL removes the item later.
    /// Counter attributes keep their contributions until then.
    ///
    /// # Errors
    /// As [`Self::update`].
    pub async fn delete(&self, region: &Region, key: &Item) -> Result<Version, WriteError> {
        let ttl = self.tombstones.ttl_attribute.clone();
        let expires =
            (self.clock.now_ms(region) / 1000 + self.tombstones.retention.as_secs()).to_string();
        self.modify(region, key, None, false, |draft| {
            let names: Vec<String> = draft
                .names()
                .filter(|n| !self.merger.rules.is_counter(n))
                .collect();
            for name in names {
                draft.remove(&name);
            }
            draft.set(&ttl, AttributeValue::N(expires.clone()));
        })
        .await
    }

    async fn modify<F>(
        &self,
        region: &Region,
        key: &Item,
        home: Option<Home>,
        tombstone_ok: bool,
        mut change: F,
    ) -> Result<Version, WriteError>
    where
        F: FnMut(&mut Draft),
    {
        self.check_key(key)?;
        for attempt in 1..=self.backoff.max_attempts {
            let ctx = self.context(region);
            let Some(item) = self.store.get(region, key).await? else {
                return Err(WriteError::NotFound);
            };
            let is_tombstone = item.contains_key(&self.tombstones.ttl_attribute);
            if is_tombstone && !tombstone_ok {
                return Err(WriteError::NotFound);
            }
            if !is_tombstone && tombstone_ok {
                return Err(WriteError::AlreadyExists);
            }
            // An item without a stamp (a legacy or plain writer's) is taken
            // in whole as an edit of the unattributed origin, the same way
            // every Region's resolver takes it in.
            let base = self.adopted(&item)?;
            let mut draft = Draft::new(base.values());
            let condition = if item.contains_key(&self.schema.stamp_attribute) {
                PutCondition::DotIs(base.header.dot().encode())
            } else {
                PutCondition::Unstamped
            };
            change(&mut draft);
            // A home never goes back to an older epoch: a writer routed by a
            // stale view keeps the newer home the item already records.
            let mut home = home
                .clone()
                .filter(|h| base.home.as_ref().is_none_or(|b| h > b));
            if let Some(moved) = self.moved_home(&base, &draft)? {
                home = Some(moved);
            }
            let next = edit::apply(&base, &draft, &ctx, &self.merger, &self.schema, home)?;
            match self.put(region, &next, condition).await {
                Ok(()) => return Ok(next),
                Err(WriteError::Store(StoreError::ConditionFailed)) => {
                    tracing::debug!(attempt, "item changed under the write; retrying");
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(WriteError::Contended {
            attempts: self.backoff.max_attempts,
        })
    }

    /// An item as a version, with what plain writers changed in it (all of
    /// it, for an item without a stamp) taken in ([`crate::adopt`]): the
    /// write that follows records it.
    fn adopted(&self, item: &Item) -> Result<Version, WriteError> {
        Ok(crate::adopt::adopt(&self.schema, &self.merger.rules, item, None)?.version)
    }

    /// The home a draft moves the item to by changing its home attribute,
    /// once the stamp records the home (before that the attribute alone is
    /// the home).
    fn moved_home(&self, base: &Version, draft: &Draft) -> Result<Option<Home>, WriteError> {
        let (Some(name), Some(current)) = (&self.home_attribute, &base.home) else {
            return Ok(None);
        };
        let Some(AttributeValue::S(text)) = draft.get(name) else {
            return Ok(None);
        };
        if text == current.region.as_str() {
            return Ok(None);
        }
        let region = Region::parse(&text)
            .map_err(|e| WriteError::Home(format!("`{name}` = {text:?}: {e}")))?;
        Ok(Some(current.moved_to(region)?))
    }

    async fn put(
        &self,
        region: &Region,
        version: &Version,
        condition: PutCondition,
    ) -> Result<(), WriteError> {
        let item = self.schema.encode(version);
        let bytes = item_size(&item);
        if bytes > MAX_ITEM_BYTES {
            return Err(WriteError::TooLarge { bytes });
        }
        self.store.put(region, &item, &condition).await?;
        Ok(())
    }

    fn context(&self, region: &Region) -> WriteContext {
        WriteContext {
            region: region.clone(),
            time_ms: self.clock.now_ms(region),
            nonce: rand::random(),
            by: WriterKind::App,
        }
    }

    /// A key must hold exactly the table's key attributes, each a string,
    /// number or binary.
    fn check_key(&self, key: &Item) -> Result<(), WriteError> {
        for name in self.schema.key_attributes() {
            match key.get(name) {
                None => {
                    return Err(WriteError::BadKey(format!(
                        "missing key attribute `{name}`"
                    )))
                }
                Some(AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)) => {}
                Some(other) => {
                    return Err(WriteError::BadKey(format!(
                        "key attribute `{name}` is of type {}, expected S, N or B",
                        crate::rules::type_name(other)
                    )))
                }
            }
        }
        if let Some(extra) = key
            .keys()
            .find(|k| !self.schema.key_attributes().any(|n| n == k.as_str()))
        {
            return Err(WriteError::BadKey(format!(
                "`{extra}` is not a key attribute of the table"
            )));
        }
        Ok(())
    }

    fn key_from_item(&self, item: &Item) -> Result<BTreeMap<String, AttributeValue>, WriteError> {
        let key = self
            .schema
            .key_of(item)
            .map_err(|e| WriteError::BadKey(e.to_string()))?;
        self.check_key(&Item::from(
            key.clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        ))?;
        Ok(key)
    }
}

/// "Has my write reached Region X": answered from each Region's copy.
impl<S: Store> Writer<S> {
    /// Whether the write `dot` (the one a write call returned, e.g.
    /// `version.header.dot()`) has reached each of `regions`: that Region's
    /// copy of the item, read strongly consistent, includes it (its stamp's
    /// window knows the dot, or a later write of that Region). Only the
    /// window is read, not the values.
    ///
    /// # Errors
    /// A Region that cannot be read, or whose stamp is malformed.
    pub async fn replicated(
        &self,
        key: &Item,
        dot: &Dot,
        regions: &[Region],
    ) -> Result<BTreeMap<Region, bool>, WriteError> {
        self.check_key(key)?;
        let mut out = BTreeMap::new();
        for region in regions {
            let reached = match self.store.get(region, key).await? {
                None => false,
                Some(item) => crate::classify::knows(&item, &self.schema.stamp_attribute, dot)?,
            };
            out.insert(region.clone(), reached);
        }
        Ok(out)
    }

    /// [`Self::replicated`], asked again (every 50 ms, backing off to 1 s)
    /// until every Region has the write or `timeout` passes. Returns the
    /// last answer: the Regions still `false` are the ones it has not
    /// reached.
    ///
    /// # Errors
    /// As [`Self::replicated`].
    pub async fn wait_replicated(
        &self,
        key: &Item,
        dot: &Dot,
        regions: &[Region],
        timeout: Duration,
    ) -> Result<BTreeMap<Region, bool>, WriteError> {
        let until = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let answer = self.replicated(key, dot, regions).await?;
            let now = tokio::time::Instant::now();
            if answer.values().all(|reached| *reached) || now >= until {
                return Ok(answer);
            }
            tokio::time::sleep(pause.min(until - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_skewed_per_region() {
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        let clock = Clock::per_region([(east.clone(), 2000), (west.clone(), -2000)]);
        let before = now_ms();
        let (e, w) = (clock.now_ms(&east), clock.now_ms(&west));
        let after = now_ms();
        assert!(e >= before + 2000 && e <= after + 2000);
        assert!(w + 2000 >= before && w + 2000 <= after);
        let other = Region::parse("eu-west-1").unwrap();
        assert!(clock.now_ms(&other) >= before);
        assert_eq!(Clock::from_fn(|_| 7).now_ms(&east), 7);
        assert_eq!(skew(1000, -5000), 0, "saturates at the epoch");
    }
}
