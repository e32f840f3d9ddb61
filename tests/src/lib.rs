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
