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
