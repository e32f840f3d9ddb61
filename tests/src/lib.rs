//! Test harness for Homeward's integration suites. The harness itself (the
//! moto server and the multi-Region cluster) lives in the simulator crate,
//! `homeward-sim`; this crate re-exports it so the suites keep their paths.

pub use homeward_sim::{unique_table, workspace_root, HarnessError, MotoServer, MOTO_ENV};

pub mod cluster {
    pub use homeward_sim::cluster::*;
}

/// Small helpers the cluster suites share: values, keys, items, Regions,
/// and the convergence check.
pub mod fixtures {
    use std::collections::{BTreeMap, HashMap};

    use homeward::Region;
    use serde_dynamo::{AttributeValue, Item};

    use crate::cluster::Cluster;

    /// The three Regions the cluster suites use.
    pub const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

    pub fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    /// A key of the suites' tables (`pk` S).
    pub fn key(pk: &str) -> Item {
        Item::from(HashMap::from([("pk".to_string(), s(pk))]))
    }

    pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    pub fn region(name: &str) -> Region {
        Region::parse(name).expect("a Region name")
    }

    /// A string or number attribute as text.
    pub fn text(item: &Item, name: &str) -> String {
        match item.get(name) {
            Some(AttributeValue::S(v)) => v.clone(),
            Some(AttributeValue::N(v)) => v.clone(),
            other => panic!("`{name}` is {other:?} in {item:?}"),
        }
    }

    /// Every Region of [`REGIONS`] holds the same items, and they are returned.
    pub async fn converged(c: &Cluster) -> BTreeMap<String, Item> {
        let first = c.items(REGIONS[0]).await;
        for r in &REGIONS[1..] {
            assert_eq!(c.items(r).await, first, "{r} differs from {}", REGIONS[0]);
        }
        first
    }
}

/// Lambda stream events built from real writes, for suites that hand a
/// Region's resolver one batch by hand.
pub mod events {
    use resolver::StreamEvent;
    use serde_dynamo::Item;
    use serde_json::{json, Value};

    use crate::cluster::{Cluster, Spec};
    use crate::fixtures::{item, key, region, s, REGIONS};
    use crate::MotoServer;

    /// A Lambda stream record of `region` for a write that turned `old`
    /// into `new` (a MODIFY; an INSERT without `old`).
    pub fn record(
        region: &str,
        sequence: u64,
        key: &Item,
        old: Option<&Item>,
        new: &Item,
    ) -> Value {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": 1_764_000_000,
            "Keys": serde_json::to_value(key).unwrap(),
            "NewImage": serde_json::to_value(new).unwrap(),
            "SequenceNumber": format!("{sequence:021}"),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = serde_json::to_value(old).unwrap();
        }
        json!({
            "eventID": format!("e{sequence}"),
            "eventName": if old.is_some() { "MODIFY" } else { "INSERT" },
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": region,
            "dynamodb": dynamodb,
            "eventSourceARN": format!("arn:aws:dynamodb:{region}:123456789012:table/T/stream/2026-01-01T00:00:00.000"),
        })
    }

    pub fn event(records: Vec<Value>) -> StreamEvent<'static> {
        StreamEvent::from_value(&json!({ "Records": records })).unwrap()
    }

    /// A cluster whose item `pk` is homed in us-east-1 and replicated
    /// everywhere, with a conflict in the making: us-east-1 changes `a`,
    /// and us-west-2 changes `a` concurrently (a foreign write, not yet
    /// resolved). Returns the cluster and us-west-2's record of its write.
    pub async fn foreign_conflict(test: &str, pk: &str, value: &str) -> (Cluster, Value) {
        foreign_conflict_in(Spec::new(&REGIONS), test, pk, value).await
    }

    /// [`foreign_conflict`] on a cluster of `spec`.
    pub async fn foreign_conflict_in(
        spec: Spec,
        test: &str,
        pk: &str,
        value: &str,
    ) -> (Cluster, Value) {
        let mut c = Cluster::start(MotoServer::shared(), test, spec).await;
        let w = c.writer();
        let k = key(pk);
        w.insert(
            &region("us-east-1"),
            item(&[
                ("pk", s(pk)),
                ("home_region", s("us-east-1")),
                ("a", s("0")),
            ]),
        )
        .await
        .unwrap();
        c.settle().await;
        let before = c.read("us-west-2", &k).await.unwrap();
        w.update(&region("us-east-1"), &k, |d| {
            d.set("a", s("east"));
        })
        .await
        .unwrap();
        w.update(&region("us-west-2"), &k, |d| {
            d.set("a", s(value));
        })
        .await
        .unwrap();
        let after = c.read("us-west-2", &k).await.unwrap();
        (c, record("us-west-2", 1, &k, Some(&before), &after))
    }
}
