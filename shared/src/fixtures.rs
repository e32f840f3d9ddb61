//! Realistic versions for benchmarks, examples and tests: a 30-attribute
//! item edited concurrently in three Regions.

use std::collections::BTreeMap;

use serde_dynamo::AttributeValue;

use crate::edit::{apply, empty_version, WriteContext};
use crate::{Draft, Merger, Region, Registry, Rules, Schema, Version, WriterKind};

/// Rules used by the fixtures: a counter, a set union and a max.
pub fn rules() -> Rules {
    Rules::from_json(
        r#"{"attributes":{"stock":"counter","tags":"union","rating":"max"}}"#,
        &Registry::new(),
    )
    .expect("fixture rules are valid")
}

pub fn schema() -> Schema {
    Schema::new("pk", Some("sk"))
}

fn ctx(region: &str, time_ms: u64, nonce: u32) -> WriteContext {
    WriteContext {
        region: Region::parse(region).expect("fixture Region"),
        time_ms,
        nonce,
        by: WriterKind::App,
    }
}

/// Two concurrent versions of a 30-attribute item (27 plain strings and
/// numbers, a string set, a rating, a counter) whose history spans three
/// Regions: created in us-east-1, edited in eu-west-1, then edited
/// concurrently in us-east-1 and us-west-2 (different attributes, one
/// attribute both, the counter both).
pub fn concurrent_pair() -> (Version, Version) {
    let merger = Merger::new(rules());
    let schema = schema();
    let key: BTreeMap<String, AttributeValue> = [
        ("pk".to_string(), AttributeValue::S("customer#48213".into())),
        ("sk".to_string(), AttributeValue::S("profile".into())),
    ]
    .into();
    let c = ctx("us-east-1", 1_764_000_000_000, 11);
    let mut draft = Draft::default();
    for i in 0..27 {
        let value = if i % 3 == 0 {
            AttributeValue::N(format!("{}", 1000 + i * 37))
        } else {
            AttributeValue::S(format!("value of attribute {i} with some text"))
        };
        draft.set(&format!("attr_{i:02}"), value);
    }
    draft.set(
        "tags",
        AttributeValue::Ss(vec!["gold".into(), "newsletter".into()]),
    );
    draft.set("rating", AttributeValue::N("4".into()));
    draft.increment("stock", 10);
    let created =
        apply(&empty_version(key, &c), &draft, &c, &merger, &schema, None).expect("fixture insert");

    let mut edit = Draft::new(created.values());
    edit.set("attr_01", AttributeValue::S("edited in eu-west-1".into()));
    let c = ctx("eu-west-1", 1_764_000_010_000, 22);
    let shared = apply(&created, &edit, &c, &merger, &schema, None).expect("fixture edit");

    let mut east = Draft::new(shared.values());
    east.set("attr_05", AttributeValue::S("east".into()));
    east.set(
        "tags",
        AttributeValue::Ss(vec!["gold".into(), "vip".into()]),
    );
    east.increment("stock", -1);
    let x = apply(
        &shared,
        &east,
        &ctx("us-east-1", 1_764_000_020_000, 33),
        &merger,
        &schema,
        None,
    )
    .expect("fixture");

    let mut west = Draft::new(shared.values());
    west.set("attr_07", AttributeValue::S("west".into()));
    west.set(
        "tags",
        AttributeValue::Ss(vec!["gold".into(), "beta".into()]),
    );
    west.set("rating", AttributeValue::N("5".into()));
    west.increment("stock", -2);
    let y = apply(
        &shared,
        &west,
        &ctx("us-west-2", 1_764_000_020_300, 44),
        &merger,
        &schema,
        None,
    )
    .expect("fixture");
    (x, y)
}

/// The Regions of [`stream_batch`]: the stream is the first one's.
pub const BATCH_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

fn batch_item(i: usize, home: &str, merger: &Merger, schema: &Schema) -> Version {
    let key: BTreeMap<String, AttributeValue> = [
        (
            "pk".to_string(),
            AttributeValue::S(format!("customer#{i:06}")),
        ),
        ("sk".to_string(), AttributeValue::S("profile".into())),
    ]
    .into();
    let c = ctx(home, 1_764_000_000_000 + i as u64, i as u32);
    let mut d = Draft::default();
    d.set("home_region", AttributeValue::S(home.into()));
    for a in 0..27 {
        let value = if a % 3 == 0 {
            AttributeValue::N(format!("{}", 1000 + a * 37 + i))
        } else {
            AttributeValue::S(format!(
                "value of attribute {a} for customer {i}, with text"
            ))
        };
        d.set(&format!("attr_{a:02}"), value);
    }
    d.set(
        "tags",
        AttributeValue::Ss(vec!["gold".into(), "newsletter".into()]),
    );
    d.increment("stock", 10);
    apply(&empty_version(key, &c), &d, &c, merger, schema, None).expect("fixture insert")
}

/// A realistic stream batch of us-east-1's stream (the benchmarks' event),
/// as the Lambda receives it: MODIFY records of the 30-attribute items
/// `customer#<i>` for every `i` in `items`, homed by `home_region` (the
/// default home strategy), [`schema`] keys and [`rules`]. By `i % 10`: 0 is
/// a foreign write (homed in us-west-2, written in us-east-1), 1 to 4 home
/// writes, 5 to 9 replicated writes from us-west-2 and eu-west-1. Each
/// record's old image is the version before the write; for a foreign write
/// it is also the home copy when replication is caught up. Deterministic
/// (fixed times and nonces); 1,000 records make about 5.6 MB.
pub fn stream_batch(items: std::ops::Range<usize>) -> serde_json::Value {
    let merger = Merger::new(rules());
    let schema = schema();
    let records: Vec<_> = items
        .map(|i| {
            let (home, writer) = match i % 10 {
                0 => (BATCH_REGIONS[1], BATCH_REGIONS[0]),
                1..=4 => (BATCH_REGIONS[0], BATCH_REGIONS[0]),
                _ => (BATCH_REGIONS[1 + i % 2], BATCH_REGIONS[1 + i % 2]),
            };
            let old = batch_item(i, home, &merger, &schema);
            let mut d = Draft::new(old.values());
            d.set("attr_01", AttributeValue::S(format!("edited {i}")));
            d.increment("stock", -1);
            let c = ctx(writer, 1_764_000_005_000 + i as u64, 5_000 + i as u32);
            let new = apply(&old, &d, &c, &merger, &schema, None).expect("fixture edit");
            let (new, old) = (schema.encode(&new), schema.encode(&old));
            let mut keys = new.clone();
            keys.retain(|k, _| k == "pk" || k == "sk");
            serde_json::json!({
                "eventID": format!("{i:032x}"),
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": BATCH_REGIONS[0],
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_000_005 + i,
                    "Keys": keys,
                    "NewImage": new,
                    "OldImage": old,
                    "SequenceNumber": format!("{}", 4_000_000_000_000_000_000u64 + i as u64),
                    "SizeBytes": 5_000,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2025-11-25T00:00:00.000",
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}
