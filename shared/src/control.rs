//! Homeward's control items: the list of evacuated Regions and the
//! negotiated strategy's home assignments. Both live in the journal table
//! (string `pk`/`sk`): their `pk` starts with `homeward:`, which no table
//! name (and so no journal entry) can, since `:` is not allowed in one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_dynamo::{AttributeValue, Item};

use crate::dot::Region;
use crate::store::{PutCondition, Store, StoreError};
use crate::version::Home;

const CONTROL_PK: &str = "homeward:control";
/// Assignments cached at most (a function instance's memory stays bounded).
const CACHE_ENTRIES: usize = 10_000;
const EVACUATED_SK: &str = "evacuated";

/// A key as readable text (`name=value|...`, names sorted), for people:
/// reports and `LOG_KEYS` logs. Two keys whose values hold `|` or `=` can
/// read alike: to name an item in a table, use [`key_id`].
pub fn key_text(key: &Item) -> String {
    let mut parts: Vec<(&String, &AttributeValue)> = key.iter().collect();
    parts.sort_by(|a, b| a.0.cmp(b.0));
    parts
        .iter()
        .map(|(name, value)| match value {
            AttributeValue::S(s) => format!("{name}={s}"),
            AttributeValue::N(n) => format!("{name}={n}"),
            other => format!("{name}={other:?}"),
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// A key as unambiguous text: its attributes as DynamoDB JSON, names
/// sorted (`{"pk":{"S":"a|b"},"sk":{"N":"1"}}`). The journal's and the
/// assignments' way of naming an item: two different keys never share it.
pub fn key_id(key: &Item) -> String {
    let sorted: std::collections::BTreeMap<&String, &AttributeValue> = key.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| key_text(key))
}

fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
    Item::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<_, _>>(),
    )
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// Parses a comma-separated list of Regions (`EVACUATED_REGIONS`).
///
/// # Errors
/// A message naming the entry that is not a Region.
pub fn parse_regions(text: &str) -> Result<BTreeSet<Region>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| Region::parse(r).map_err(|e| format!("`{r}`: {e}")))
        .collect()
}

/// The evacuated Regions: a fixed list (the environment) plus the control
/// item in the local Region's journal table, re-read at most every
/// `refresh`.
#[derive(Debug)]
pub struct Evacuations {
    fixed: BTreeSet<Region>,
    refresh: Duration,
    cached: Mutex<Option<(Instant, BTreeSet<Region>)>>,
}

impl Evacuations {
    pub fn new(fixed: BTreeSet<Region>, refresh: Duration) -> Self {
        Evacuations {
            fixed,
            refresh,
            cached: Mutex::new(None),
        }
    }

    /// The evacuated Regions now. When the control item cannot be read the
    /// last list read stands (or the fixed list alone), and a warning says so.
    pub async fn current<S: Store>(&self, control: &S, local: &Region) -> BTreeSet<Region> {
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let from_item = match cached {
            Some((at, list)) if at.elapsed() < self.refresh => list,
            stale => match read_evacuated(control, local).await {
                Ok(list) => {
                    *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), list.clone()));
                    list
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the evacuated Regions; keeping the last list");
                    stale.map(|(_, l)| l).unwrap_or_default()
                }
            },
        };
        self.fixed.union(&from_item).cloned().collect()
    }
}

/// Reads the control item's list of evacuated Regions in `region`.
///
/// # Errors
/// A store failure, or a malformed control item.
pub async fn read_evacuated<S: Store>(
    control: &S,
    region: &Region,
) -> Result<BTreeSet<Region>, StoreError> {
    let key = item(vec![("pk", s(CONTROL_PK)), ("sk", s(EVACUATED_SK))]);
    let Some(found) = control.get(region, &key).await? else {
        return Ok(BTreeSet::new());
    };
    match found.get("regions") {
        None => Ok(BTreeSet::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(r) => Region::parse(r).map_err(|e| e.to_string()),
                other => Err(format!("{other:?} is not a Region name")),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Rejected(format!("control item `evacuated`: {e}"))),
        Some(_) => Err(StoreError::Rejected(
            "control item `evacuated`: `regions` is not a list".into(),
        )),
    }
}

/// Replaces the list of evacuated Regions in `region`'s control item.
///
/// # Errors
/// A store failure.
pub async fn write_evacuated<S: Store>(
    control: &S,
    region: &Region,
    regions: &BTreeSet<Region>,
) -> Result<(), StoreError> {
    let list = regions.iter().map(|r| s(r.as_str())).collect();
    let control_item = item(vec![
        ("pk", s(CONTROL_PK)),
        ("sk", s(EVACUATED_SK)),
        ("regions", AttributeValue::L(list)),
    ]);
    control
        .put(region, &control_item, &PutCondition::Always)
        .await
}

/// One item's negotiated home: the Region, its epoch, and until when the
/// holder's lease runs (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub home: Home,
    pub lease_until_ms: u64,
}

/// Why an assignment did not change.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// Someone moved or claimed it first; `current` is what holds now.
    #[error("the assignment is at epoch {} in {}, not the one expected", .current.home.epoch, .current.home.region)]
    Fenced { current: Assignment },
    #[error("no assignment for this item")]
    Missing,
    #[error("malformed assignment: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The negotiated strategy's assignments: their own global table, read and
/// written in one Region's replica (`replica`: the caller's own, reachable
/// whenever the caller is up), every claim and move a conditional write on
/// the epoch there, with a small cache for lookups.
///
/// Replicas are eventually consistent and settle concurrent claims by
/// last-writer-wins; that is safe because the epoch fences writers, not
/// the table: two Regions that both claimed epoch E stamp their writes
/// (E, Region), the higher (epoch, Region) wins wherever versions merge,
/// and the other Region's writes are reconciled into the winner as the
/// foreign writes they are. A stale cache is safe for the same reason,
/// and the resolver re-reads before it trusts an epoch newer than its
/// cache.
pub struct Assignments<S> {
    store: S,
    replica: Region,
    table: String,
    pub lease: Duration,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<Assignment>)>>,
}

impl<S: Store> Assignments<S> {
    pub fn new(store: S, replica: Region, table: &str, cache_ttl: Duration) -> Self {
        Assignments {
            store,
            replica,
            table: table.to_owned(),
            lease: Duration::from_secs(3600),
            cache_ttl,
            cache: Mutex::default(),
        }
    }

    fn key(&self, key: &Item) -> (String, Item) {
        let text = key_id(key);
        let pk = format!("homeward:assign#{}#{text}", self.table);
        (text, item(vec![("pk", s(&pk)), ("sk", s("assignment"))]))
    }

    /// The assignment, from the cache when it is fresh enough.
    ///
    /// # Errors
    /// A store failure or a malformed assignment.
    pub async fn lookup(&self, key: &Item) -> Result<Option<Assignment>, AssignError> {
        let (text, _) = self.key(key);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&text)
            .filter(|(at, _)| at.elapsed() < self.cache_ttl)
            .map(|(_, a)| a.clone());
        match cached {
            Some(found) => Ok(found),
            None => self.fresh(key).await,
        }
    }

    /// The assignment as the control Region holds it now (refreshes the cache).
    ///
    /// # Errors
    /// A store failure or a malformed assignment.
    pub async fn fresh(&self, key: &Item) -> Result<Option<Assignment>, AssignError> {
        let (text, control_key) = self.key(key);
        let found = self
            .store
            .get(&self.replica, &control_key)
            .await?
            .map(|i| decode_assignment(&i))
            .transpose()?;
        self.remember(text, found.clone());
        Ok(found)
    }

    /// Caches an assignment; the cache stays small (stale entries go first).
    fn remember(&self, text: String, found: Option<Assignment>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < self.cache_ttl);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(text, (Instant::now(), found));
    }

    /// Claims the item for `region` when it has no live assignment; renews
    /// the lease when `region` holds it already. Returns what holds after.
    ///
    /// # Errors
    /// A store failure or a malformed assignment.
    pub async fn claim(
        &self,
        key: &Item,
        region: &Region,
        now_ms: u64,
    ) -> Result<Assignment, AssignError> {
        for _ in 0..4 {
            let current = self.fresh(key).await?;
            let (epoch, condition) = match &current {
                None => (1, PutCondition::NotExists),
                Some(a) if &a.home.region == region || a.lease_until_ms < now_ms => (
                    if &a.home.region == region {
                        a.home.epoch
                    } else {
                        crate::version::next_epoch(a.home.epoch)
                            .map_err(|e| AssignError::Malformed(e.to_string()))?
                    },
                    PutCondition::AttributeIs("epoch".into(), n(a.home.epoch)),
                ),
                Some(a) => return Ok(a.clone()),
            };
            match self.write(key, region, epoch, now_ms, &condition).await {
                Err(AssignError::Store(StoreError::ConditionFailed)) => continue,
                other => return other,
            }
        }
        self.fresh(key).await?.ok_or(AssignError::Missing)
    }

    /// Extends the lease of `region`, which must hold the assignment.
    ///
    /// # Errors
    /// [`AssignError::Fenced`] when another Region holds it (or it moved),
    /// [`AssignError::Missing`] when there is none.
    pub async fn renew(
        &self,
        key: &Item,
        region: &Region,
        now_ms: u64,
    ) -> Result<Assignment, AssignError> {
        let current = self.fresh(key).await?.ok_or(AssignError::Missing)?;
        if &current.home.region != region {
            return Err(AssignError::Fenced { current });
        }
        let condition = PutCondition::AttributeIs("epoch".into(), n(current.home.epoch));
        match self
            .write(key, region, current.home.epoch, now_ms, &condition)
            .await
        {
            Err(AssignError::Store(StoreError::ConditionFailed)) => match self.fresh(key).await? {
                Some(current) => Err(AssignError::Fenced { current }),
                None => Err(AssignError::Missing),
            },
            other => other,
        }
    }

    /// Moves the item to `region` if its assignment is still at
    /// `expected_epoch`; the epoch goes up by one.
    ///
    /// # Errors
    /// [`AssignError::Fenced`] when the epoch moved on (nothing written).
    pub async fn move_to(
        &self,
        key: &Item,
        region: &Region,
        expected_epoch: u64,
        now_ms: u64,
    ) -> Result<Assignment, AssignError> {
        let condition = if expected_epoch == 0 {
            PutCondition::NotExists
        } else {
            PutCondition::AttributeIs("epoch".into(), n(expected_epoch))
        };
        match self
            .write(
                key,
                region,
                crate::version::next_epoch(expected_epoch)
                    .map_err(|e| AssignError::Malformed(e.to_string()))?,
                now_ms,
                &condition,
            )
            .await
        {
            Err(AssignError::Store(StoreError::ConditionFailed)) => match self.fresh(key).await? {
                Some(current) => Err(AssignError::Fenced { current }),
                None => Err(AssignError::Missing),
            },
            other => other,
        }
    }

    async fn write(
        &self,
        key: &Item,
        region: &Region,
        epoch: u64,
        now_ms: u64,
        condition: &PutCondition,
    ) -> Result<Assignment, AssignError> {
        let (text, control_key) = self.key(key);
        let assignment = Assignment {
            home: Home::new(region.clone(), epoch),
            lease_until_ms: now_ms + self.lease.as_millis() as u64,
        };
        let mut record = control_key;
        record.insert("home".into(), s(region.as_str()));
        record.insert("epoch".into(), n(epoch));
        record.insert("lease_until".into(), n(assignment.lease_until_ms));
        record.insert("item_key".into(), s(&text));
        self.store.put(&self.replica, &record, condition).await?;
        self.remember(text, Some(assignment.clone()));
        Ok(assignment)
    }
}

fn decode_assignment(found: &Item) -> Result<Assignment, AssignError> {
    let get_n = |name: &str| match found.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse::<u64>()
            .map_err(|_| AssignError::Malformed(format!("`{name}` = {v} is not a count"))),
        _ => Err(AssignError::Malformed(format!("`{name}` is missing"))),
    };
    let region = match found.get("home") {
        Some(AttributeValue::S(r)) => {
            Region::parse(r).map_err(|e| AssignError::Malformed(format!("`home`: {e}")))?
        }
        _ => return Err(AssignError::Malformed("`home` is missing".into())),
    };
    let epoch = get_n("epoch")?;
    if epoch > crate::version::MAX_EPOCH {
        return Err(AssignError::Malformed(format!(
            "`epoch` is past the largest epoch ({})",
            crate::version::MAX_EPOCH
        )));
    }
    Ok(Assignment {
        home: Home::new(region, epoch),
        lease_until_ms: get_n("lease_until")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_read_alike_have_their_own_assignment() {
        let key = |pk: &str, sk: &str| item(vec![("pk", s(pk)), ("sk", s(sk))]);
        let (one, two) = (key("a|sk=b", "c"), key("a", "b|sk=c"));
        assert_eq!(
            key_text(&one),
            key_text(&two),
            "the readable text is ambiguous"
        );
        struct Unused;
        impl Store for Unused {
            async fn get(&self, _: &Region, _: &Item) -> Result<Option<Item>, StoreError> {
                unreachable!("naming needs no store")
            }
            async fn put(&self, _: &Region, _: &Item, _: &PutCondition) -> Result<(), StoreError> {
                unreachable!("naming needs no store")
            }
        }
        let assignments = Assignments::new(
            Unused,
            Region::parse("us-east-1").unwrap(),
            "T",
            Duration::ZERO,
        );
        assert_ne!(assignments.key(&one).1, assignments.key(&two).1);
    }

    #[test]
    fn region_lists_parse_and_name_bad_entries() {
        let list = parse_regions(" us-east-1, eu-west-1 ,").unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_regions("us-east-1,Mars")
            .unwrap_err()
            .contains("Mars"));
        assert!(parse_regions("").unwrap().is_empty());
    }
}
