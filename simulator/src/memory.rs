//! An in-memory table in several Regions: [`homeward::Store`] over one map
//! per Region, with exact conditional puts, and a stream per Region that
//! records every change (INSERT, MODIFY, REMOVE with old and new images),
//! as a DynamoDB stream with NEW_AND_OLD_IMAGES does. Thousands of
//! histories run in the time moto takes for a few.
//!
//! Each item keeps the service's time of the write that made it (the
//! last-writer-wins timestamp, never a time the client wrote into the
//! item); a put of an item over 400 KB (by DynamoDB's count,
//! [`homeward::size::item_size`]) is refused as DynamoDB refuses it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use homeward::size::{item_size, MAX_ITEM_BYTES};
use homeward::store::Page;
use homeward::{PutCondition, PutResult, Region, Schema, Store, StoreError};
use serde_dynamo::{AttributeValue, Item};

/// One change, as a stream record carries it.
#[derive(Debug, Clone)]
pub struct MemRecord {
    pub sequence: u64,
    /// The service's time of the write: the item's last-writer-wins
    /// timestamp after this change (a replicated copy keeps its origin's).
    pub time: u64,
    pub event_name: &'static str,
    pub key: Item,
    pub old_image: Option<Item>,
    pub new_image: Option<Item>,
}

#[derive(Default)]
struct RegionTable {
    /// Each item with its last-writer-wins timestamp.
    items: BTreeMap<String, (Item, u64)>,
    stream: Vec<MemRecord>,
}

/// The table in every Region; clones share the data.
#[derive(Clone)]
pub struct MemStore {
    schema: Schema,
    regions: Arc<Mutex<HashMap<Region, RegionTable>>>,
    /// Sequence numbers grow across Regions, so they also order the
    /// simulation's writes: they are the service's time of each write, the
    /// items' last-writer-wins timestamps (the wall clock barely moves
    /// during a simulation, and DynamoDB stamps a write with the time it
    /// was made, whatever the writer's own clock says).
    sequence: Arc<Mutex<u64>>,
}

impl MemStore {
    pub fn new(schema: Schema) -> Self {
        MemStore {
            schema,
            regions: Arc::default(),
            sequence: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Region, RegionTable>> {
        // A panic while holding the lock leaves consistent data: each call
        // changes one map entry and one stream at most.
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key_text(&self, item: &Item) -> Result<String, StoreError> {
        let mut key = Item::default();
        for name in self.schema.key_attributes() {
            match item.get(name) {
                Some(v @ (AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_))) => {
                    key.insert(name.to_owned(), v.clone());
                }
                _ => {
                    return Err(StoreError::Rejected(format!(
                        "ValidationException: key attribute `{name}` missing or not S, N or B"
                    )))
                }
            }
        }
        Ok(resolver::journal::key_text(&key))
    }

    fn key_of(&self, item: &Item) -> Item {
        let mut key = item.clone();
        key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
        key
    }

    fn record(
        &self,
        table: &mut RegionTable,
        key: Item,
        old_image: Option<Item>,
        new_image: Option<Item>,
        time: u64,
    ) {
        // DynamoDB writes no stream record for a write that changes nothing.
        if old_image == new_image {
            return;
        }
        let event_name = match (&old_image, &new_image) {
            (None, _) => "INSERT",
            (Some(_), Some(_)) => "MODIFY",
            (Some(_), None) => "REMOVE",
        };
        let sequence = self.next_sequence();
        table.stream.push(MemRecord {
            sequence,
            time,
            event_name,
            key,
            old_image,
            new_image,
        });
    }

    fn next_sequence(&self) -> u64 {
        let mut sequence = self.sequence.lock().unwrap_or_else(|e| e.into_inner());
        *sequence += 1;
        *sequence
    }

    /// The last-writer-wins timestamp of the item in `region`.
    pub fn timestamp(&self, region: &Region, key: &Item) -> Option<u64> {
        let text = self.key_text(key).ok()?;
        self.lock()
            .get(region)
            .and_then(|t| t.items.get(&text).map(|(_, time)| *time))
    }

    /// [`Store::put`] of a replicated copy: the item keeps the timestamp of
    /// the write it copies (`None`: a new write, timestamped now).
    ///
    /// # Errors
    /// As [`Store::put`]; [`StoreError::Rejected`] (DynamoDB's
    /// ValidationException) for an item over 400 KB.
    pub fn put_at(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
        time: Option<u64>,
    ) -> Result<(), StoreError> {
        let text = self.key_text(item)?;
        let bytes = item_size(item);
        if bytes > MAX_ITEM_BYTES {
            // As DynamoDB words it: no item values in the message.
            return Err(StoreError::Rejected(format!(
                "ValidationException: Item size has exceeded the maximum allowed size ({bytes} bytes, at most {MAX_ITEM_BYTES})"
            )));
        }
        let time = time.unwrap_or_else(|| self.next_sequence());
        let mut regions = self.lock();
        let table = regions.entry(region.clone()).or_default();
        let current = table.items.get(&text).map(|(i, _)| i);
        if !self.holds(condition, current) {
            return Err(StoreError::ConditionFailed);
        }
        let old = table
            .items
            .insert(text, (item.clone(), time))
            .map(|(i, _)| i);
        let key = self.key_of(item);
        self.record(table, key, old, Some(item.clone()), time);
        Ok(())
    }

    /// Removes the item (a hard delete, as replication of one does).
    pub fn delete(&self, region: &Region, key: &Item) {
        let Ok(text) = self.key_text(key) else { return };
        let mut regions = self.lock();
        let table = regions.entry(region.clone()).or_default();
        if let Some((old, _)) = table.items.remove(&text) {
            let key = self.key_of(&old);
            let time = self.next_sequence();
            self.record(table, key, Some(old), None, time);
        }
    }

    /// A read-modify-write under one lock, as an UpdateItem is: `change`
    /// gets the current item (`None`: none) and returns the new one. The
    /// item gets a new service time only when it changes (DynamoDB writes
    /// no stream record for an update that changes nothing).
    ///
    /// # Errors
    /// What `change` refuses; a bad key; an item over 400 KB.
    pub fn update_raw(
        &self,
        region: &Region,
        key: &Item,
        change: impl FnOnce(Option<&Item>) -> Result<Item, String>,
    ) -> Result<(), String> {
        let text = self.key_text(key).map_err(|e| e.to_string())?;
        let mut regions = self.lock();
        let table = regions.entry(region.clone()).or_default();
        let current = table.items.get(&text).map(|(i, _)| i.clone());
        let next = change(current.as_ref())?;
        if current.as_ref() == Some(&next) {
            return Ok(());
        }
        let bytes = item_size(&next);
        if bytes > MAX_ITEM_BYTES {
            return Err(format!(
                "ValidationException: Item size to update has exceeded the maximum allowed size ({bytes} bytes)"
            ));
        }
        let time = self.next_sequence();
        table.items.insert(text, (next.clone(), time));
        self.record(table, self.key_of(key), current, Some(next), time);
        Ok(())
    }

    /// Stream records of `region` from position `from` on.
    pub fn stream_from(&self, region: &Region, from: usize) -> Vec<MemRecord> {
        self.lock()
            .get(region)
            .map(|t| t.stream.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Every item in `region`, by key text.
    pub fn items(&self, region: &Region) -> BTreeMap<String, Item> {
        self.lock()
            .get(region)
            .map(|t| {
                t.items
                    .iter()
                    .map(|(k, (i, _))| (k.clone(), i.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn holds(&self, condition: &PutCondition, current: Option<&Item>) -> bool {
        condition.holds(current, &self.schema.stamp_attribute)
    }
}

impl Store for MemStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        let text = self.key_text(key)?;
        Ok(self
            .lock()
            .get(region)
            .and_then(|t| t.items.get(&text).map(|(i, _)| i.clone())))
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        self.put_at(region, item, condition, None)
    }

    /// As DynamoDB with `ReturnValuesOnConditionCheckFailure=ALL_OLD`: a
    /// failed condition hands back the item in the way (read under the
    /// same turn, with no await between, so nothing slips in).
    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        match self.put_at(region, item, condition, None) {
            Ok(()) => Ok(PutResult::Written),
            Err(StoreError::ConditionFailed) => {
                let text = self.key_text(item)?;
                let regions = self.lock();
                let current = regions
                    .get(region)
                    .and_then(|t| t.items.get(&text))
                    .map(|(i, _)| i.clone());
                Ok(PutResult::Conflict(current))
            }
            Err(e) => Err(e),
        }
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let after = start.map(|s| self.key_text(s)).transpose()?;
        let regions = self.lock();
        let Some(table) = regions.get(region) else {
            return Ok(Page::default());
        };
        let mut items: Vec<Item> = table
            .items
            .iter()
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .take(limit + 1)
            .map(|(_, (i, _))| i.clone())
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| self.key_of(i))
        } else {
            None
        };
        Ok(Page { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn stamped(pk: &str, dot: &str) -> Item {
        let stamp = AttributeValue::M(HashMap::from([("dot".to_string(), s(dot))]));
        item(&[("pk", s(pk)), ("hw", stamp)])
    }

    #[tokio::test]
    async fn conditional_puts_are_exact_and_streamed() {
        let store = MemStore::new(Schema::new("pk", None).with_stamp_attribute("hw"));
        let r = Region::parse("us-east-1").unwrap();
        let key = item(&[("pk", s("a"))]);
        let nx = PutCondition::NotExists;
        store.put(&r, &key, &nx).await.unwrap();
        assert!(matches!(
            store.put(&r, &key, &nx).await,
            Err(StoreError::ConditionFailed)
        ));
        // Unstamped: exists without a stamp.
        store
            .put(&r, &stamped("a", "r:1:1"), &PutCondition::Unstamped)
            .await
            .unwrap();
        let wrong = PutCondition::DotIs("r:1:2".into());
        assert!(store.put(&r, &stamped("a", "r:2:1"), &wrong).await.is_err());
        let right = PutCondition::DotIs("r:1:1".into());
        store.put(&r, &stamped("a", "r:2:1"), &right).await.unwrap();
        // An unchanged write leaves no record; a delete does.
        let again = PutCondition::DotIs("r:2:1".into());
        store.put(&r, &stamped("a", "r:2:1"), &again).await.unwrap();
        store.delete(&r, &key);
        let names: Vec<_> = store
            .stream_from(&r, 0)
            .iter()
            .map(|r| r.event_name)
            .collect();
        assert_eq!(names, ["INSERT", "MODIFY", "MODIFY", "REMOVE"]);
        assert!(store.get(&r, &key).await.unwrap().is_none());
        // Another Region is another table.
        let other = Region::parse("eu-west-1").unwrap();
        assert!(store.get(&other, &key).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn items_over_400_kb_are_refused_as_dynamodb_refuses_them() {
        let store = MemStore::new(Schema::new("pk", None));
        let r = Region::parse("us-east-1").unwrap();
        // DynamoDB's count: name bytes plus value bytes, the key included.
        let limit = homeward::size::MAX_ITEM_BYTES;
        let secret = "s".repeat(limit - "pk".len() - "a".len() - "big".len());
        let fits = item(&[("pk", s("a")), ("big", s(&secret))]);
        assert_eq!(item_size(&fits), limit);
        store.put(&r, &fits, &PutCondition::Always).await.unwrap();
        let over = item(&[("pk", s("a")), ("big", s(&format!("{secret}x")))]);
        let Err(StoreError::Rejected(message)) = store.put(&r, &over, &PutCondition::Always).await
        else {
            panic!("an item over 400 KB was stored");
        };
        assert!(message.starts_with("ValidationException: Item size has exceeded"));
        assert!(!message.contains("sss"), "no item values in the error");
        // Numbers by significant digits, nested values 1 byte each plus 3.
        let n = item(&[("n", AttributeValue::N("-0012300.0".into()))]);
        assert_eq!(item_size(&n), 1 + 2 + 1);
        let nested = item(&[(
            "m",
            AttributeValue::M(HashMap::from([(
                "k".to_string(),
                AttributeValue::L(vec![s("ab")]),
            )])),
        )]);
        assert_eq!(item_size(&nested), 1 + 3 + (1 + 1 + (3 + 1 + 2)));
        // Nothing was written by the refused put.
        assert_eq!(store.stream_from(&r, 0).len(), 1);
    }
}
