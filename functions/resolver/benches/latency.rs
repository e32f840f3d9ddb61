//! A batch of 1,000 foreign writes (1,000 different items) against a store
//! that answers every call after 50 ms, as a cross-Region DynamoDB call
//! might: shows that items run concurrently (bounded by CONCURRENCY) while
//! each item's records keep their order. Target: under 3 s.
//!
//! The store is in memory only to inject the latency; conditional puts are
//! exact, as in DynamoDB. `cargo bench -p resolver --bench latency`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use homeward::edit::{apply, empty_version, WriteContext};
use homeward::{
    Draft, Merger, PutCondition, PutResult, Region, Registry, Schema, Store, StoreError, WriterKind,
};
use resolver::{Config, Resolver, StreamEvent};
use serde_dynamo::{AttributeValue, Item};
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(50);

struct SlowStore {
    schema: Schema,
    items: Mutex<HashMap<(Region, String), Item>>,
}

impl SlowStore {
    fn new(schema: Schema) -> Self {
        SlowStore {
            schema,
            items: Mutex::default(),
        }
    }

    fn id(&self, key: &Item) -> String {
        resolver::journal::key_text(key)
    }
}

impl Store for SlowStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        tokio::time::sleep(LATENCY).await;
        let items = self.items.lock().unwrap();
        Ok(items.get(&(region.clone(), self.id(key))).cloned())
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        tokio::time::sleep(LATENCY).await;
        let mut key = item.clone();
        key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
        let id = (region.clone(), self.id(&key));
        let mut items = self.items.lock().unwrap();
        let current = items.get(&id);
        let holds = condition.holds(current, &self.schema.stamp_attribute);
        if !holds {
            return Err(StoreError::ConditionFailed);
        }
        items.insert(id, item.clone());
        Ok(())
    }

    /// As DynamoDB with `ALL_OLD`: one call, the item in the way returned.
    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        match self.put(region, item, condition).await {
            Ok(()) => Ok(PutResult::Written),
            Err(StoreError::ConditionFailed) => {
                let mut key = item.clone();
                key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
                let items = self.items.lock().unwrap();
                let current = items.get(&(region.clone(), self.id(&key))).cloned();
                Ok(PutResult::Conflict(current))
            }
            Err(e) => Err(e),
        }
    }
}

fn config(concurrency: usize) -> Config {
    let vars = [
        ("TABLE_NAME", "T".to_string()),
        ("TABLE_KEY", "pk".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("JOURNAL_TABLE", "J".to_string()),
        ("CONCURRENCY", concurrency.to_string()),
    ];
    Config::from_lookup(
        |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
        &Registry::new(),
    )
    .unwrap()
}

/// 1,000 items homed in us-west-2 (stored there), each written once in
/// us-east-1: the event us-east-1's resolver receives. With `home_moved`,
/// the home copy has changed since us-east-1 last saw it (another
/// attribute edited at home), so the resolver must read it.
fn setup(store: &SlowStore, home_moved: bool) -> StreamEvent<'static> {
    let schema = Schema::new("pk", None);
    let merger = Merger::new(homeward::Rules::default());
    let west = Region::parse("us-west-2").unwrap();
    let records: Vec<_> = (0..1000u64)
        .map(|i| {
            let key: BTreeMap<String, AttributeValue> =
                [("pk".to_string(), AttributeValue::S(format!("item-{i}")))].into();
            let ctx = |region: &str, t: u64| WriteContext {
                region: Region::parse(region).unwrap(),
                time_ms: 1_764_000_000_000 + t,
                nonce: i as u32,
                by: WriterKind::App,
            };
            let mut d = Draft::default();
            d.set("home_region", AttributeValue::S("us-west-2".into()));
            d.set("name", AttributeValue::S(format!("name {i}")));
            let c = ctx("us-west-2", 0);
            let home = apply(&empty_version(key, &c), &d, &c, &merger, &schema, None).unwrap();
            let mut d = Draft::new(home.values());
            d.set("name", AttributeValue::S(format!("renamed {i}")));
            let foreign = apply(&home, &d, &ctx("us-east-1", 10), &merger, &schema, None).unwrap();
            let stored = if home_moved {
                let mut d = Draft::new(home.values());
                d.set("note", AttributeValue::S("edited at home".into()));
                apply(&home, &d, &ctx("us-west-2", 5), &merger, &schema, None).unwrap()
            } else {
                home.clone()
            };
            let (home, foreign) = (schema.encode(&home), schema.encode(&foreign));
            let mut keys = home.clone();
            keys.retain(|k, _| k == "pk");
            store.items.lock().unwrap().insert(
                (west.clone(), resolver::journal::key_text(&keys)),
                schema.encode(&stored),
            );
            json!({
                "eventName": "MODIFY",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": keys,
                    "NewImage": foreign,
                    "OldImage": home,
                    "SequenceNumber": format!("{}", 1_000_000 + i),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            })
        })
        .collect();
    StreamEvent::from_value(&json!({ "Records": records })).unwrap()
}

#[tokio::main]
async fn main() {
    for (home_moved, case) in [
        (false, "home copy as last seen"),
        (true, "home copy changed since"),
    ] {
        for concurrency in [32, 64] {
            for run in 1..=2 {
                let table = SlowStore::new(Schema::new("pk", None));
                let journal = SlowStore::new(Schema::new("pk", Some("sk")));
                let event = setup(&table, home_moved);
                let resolver = Resolver::new(config(concurrency), table, journal);
                let start = Instant::now();
                let (response, summary) = resolver
                    .handle(&event, start + Duration::from_secs(900))
                    .await;
                let took = start.elapsed();
                assert!(response.batch_item_failures.is_empty());
                assert_eq!(summary.writes, 1000);
                println!(
                "1000 foreign writes, {case}, {} ms per store call, CONCURRENCY={concurrency} (run {run}): {:.2} s ({} writes, {} journal entries)",
                LATENCY.as_millis(),
                took.as_secs_f64(),
                summary.writes,
                summary.journal_entries
            );
            }
        }
    }
}
