//! The resolver's metrics against moto: the EMF lines a batch produces
//! count what the batch did. One test per binary: the `metrics` recorder
//! is process-wide.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use homeward_tests::events::{event, foreign_conflict};
use homeward_tests::fixtures::region;
use resolver::Resolver;
use serde_json::Value;

/// One EMF document: its dimensions beyond Table and Region, its values.
type Document = (BTreeMap<String, String>, BTreeMap<String, Value>);

/// Each EMF document of `lines`.
fn documents(lines: &str) -> Vec<Document> {
    lines
        .lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).expect("one JSON document a line");
            let spec = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(spec["Namespace"], "Homeward");
            let dims: Vec<String> = spec["Dimensions"][0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(&dims[..2], ["Table", "Region"], "{line}");
            let extra = dims[2..]
                .iter()
                .map(|d| (d.clone(), doc[d].as_str().unwrap().to_owned()))
                .collect();
            let values = spec["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let name = m["Name"].as_str().unwrap().to_owned();
                    (name.clone(), doc[&name].clone())
                })
                .collect();
            (extra, values)
        })
        .collect()
}

fn value(docs: &[Document], dimension: Option<(&str, &str)>, name: &str) -> Option<Value> {
    docs.iter()
        .find(|(dims, values)| {
            values.contains_key(name)
                && match dimension {
                    None => dims.is_empty(),
                    Some((k, v)) => dims.get(k).map(String::as_str) == Some(v),
                }
        })
        .map(|(_, values)| values[name].clone())
}

#[tokio::test]
async fn a_batch_emits_emf_lines_that_count_what_it_did() {
    let collector = resolver::metrics::install("Homeward", "T", "us-west-2").unwrap();
    let (c, rec) = foreign_conflict("metrics", "m", "west").await;
    let west = region("us-west-2");
    let resolver = Resolver::new(c.config(&west), c.store().clone(), c.journal_store());
    let (_, summary) = resolver
        .handle(&event(vec![rec]), Instant::now() + Duration::from_secs(30))
        .await;
    resolver::metrics::record(&summary);
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let lines = String::from_utf8(out).unwrap();
    println!("{lines}"); // what CloudWatch would read (cargo test -- --nocapture)
    let docs = documents(&lines);
    let count = |dim, name| value(&docs, dim, name).and_then(|v| v.as_u64());
    assert_eq!(count(Some(("Class", "foreign")), "Records"), Some(1));
    assert_eq!(
        count(Some(("OriginRegion", "us-west-2")), "ForeignWrites"),
        Some(1)
    );
    assert_eq!(count(Some(("Rule", "lww")), "Conflicts"), Some(1));
    assert_eq!(count(None, "MergesWritten"), Some(1));
    assert_eq!(count(None, "JournalEntries"), Some(1));
    // Nothing happened that would count as these: counters at zero are left out.
    assert_eq!(count(None, "Quarantined"), None);
    assert_eq!(count(None, "FailedRecords"), None);
    let sizes = value(&docs, None, "BatchSize").expect("a batch size");
    assert_eq!(sizes, serde_json::json!([1.0]));
    assert!(value(&docs, None, "BatchDuration").is_some());
    // Replication lag: p50/p90/max per origin, and the worst p90 alone.
    let lagged = resolver::Summary {
        lag: BTreeMap::from([(
            "us-east-1".to_owned(),
            resolver::lag::Lag {
                samples: 10,
                p50: 1,
                p90: 2,
                max: 6,
                frontier_ms: 1_764_000_000_500,
            },
        )]),
        ..resolver::Summary::default()
    };
    resolver::metrics::record(&lagged);
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let docs = documents(&String::from_utf8(out).unwrap());
    let east = Some(("OriginRegion", "us-east-1"));
    assert_eq!(
        value(&docs, east, "ReplicationLagP90"),
        Some(serde_json::json!([2.0]))
    );
    assert_eq!(
        value(&docs, east, "ReplicationLagMax"),
        Some(serde_json::json!([6.0]))
    );
    assert_eq!(
        value(&docs, east, "ReplicationFrontier"),
        Some(serde_json::json!([1_764_000_000.0]))
    );
    assert_eq!(
        value(&docs, None, "ReplicationLagP90"),
        Some(serde_json::json!([2.0]))
    );
    // A second flush has nothing new: counters are per invocation.
    let mut again = Vec::new();
    collector.flush(&mut again).unwrap();
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
}
