//! The platform as hostile as AWS: faulted store calls, invocations killed
//! at a call, the event source mapping's retries, bisection and on-failure
//! destination, and the checker's accounting of them.

use std::collections::HashMap;

use homeward::{PutCondition, Region, Registry, Store};
use homeward_sim::checker::{check, unjournaled, CheckConfig};
use homeward_sim::cluster::{Cluster, Spec};
use homeward_sim::faults::{FaultSpec, VirtualTime};
use homeward_sim::scenario::{Backend, Scenario};
use homeward_sim::workspace_root;
use serde_dynamo::{AttributeValue, Item};

const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn item(pairs: &[(&str, &str)]) -> Item {
    Item::from(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect::<HashMap<_, _>>(),
    )
}

/// A foreign write whose every delivery is killed at a call, with no
/// retries left: Lambda gives up and the record goes to the on-failure
/// destination, images and all.
async fn killed_every_time(seed: u64) -> Cluster {
    let mut spec = Spec::new(&REGIONS);
    spec.seed = seed;
    spec.max_retries = 0;
    spec.faults = Some(FaultSpec {
        kill_rate: Some(1.0),
        ..FaultSpec::new(0.0, seed)
    });
    let mut c = Cluster::memory(spec);
    let w = c.writer();
    let key = item(&[("pk", "k")]);
    w.insert(
        &region("us-east-1"),
        item(&[("pk", "k"), ("home_region", "us-east-1"), ("a", "1")]),
    )
    .await
    .unwrap();
    c.settle().await;
    w.update(&region("us-west-2"), &key, |d| {
        d.set("a", AttributeValue::S("2".into()));
    })
    .await
    .unwrap();
    c.settle().await;
    c
}

#[tokio::test]
async fn lambda_gives_up_on_a_batch_killed_every_time_and_the_checker_sees_the_loss() {
    let _time = VirtualTime::start();
    let mut lost = None;
    for seed in 0..20 {
        let c = killed_every_time(seed).await;
        assert!(c.stats.killed_invocations > 0, "seed {seed}: {:?}", c.stats);
        assert_eq!(c.stats.whole_failures, c.stats.killed_invocations);
        assert_eq!(c.backlog_len(), 0, "the shard moved on");
        if !c.stats.on_failure.is_empty() {
            lost = Some(c);
            break;
        }
    }
    let c = lost.expect("no seed sent a record to the on-failure destination");
    let aside = &c.stats.on_failure;
    assert_eq!(
        c.stats.set_aside,
        aside.iter().map(|a| a.sequence.clone()).collect::<Vec<_>>()
    );
    let record = &aside[0];
    let new = record.new_image.clone().expect("the record's new image");
    assert_eq!(new.get("a"), Some(&AttributeValue::S("2".into())));
    assert_eq!(c.injected().on_failure, aside.len() as u64);

    // Unless the journal holds its images, a set-aside record is a loss.
    let before = unjournaled(&c, &REGIONS).await;
    let mut entry = HashMap::from([
        ("pk".to_string(), AttributeValue::S("sim#pk=k".into())),
        (
            "sk".to_string(),
            AttributeValue::S("quarantine#test".into()),
        ),
    ]);
    let mut versions = HashMap::new();
    for (name, image) in [("new", &record.new_image), ("old", &record.old_image)] {
        if let Some(image) = image {
            versions.insert(
                name.to_string(),
                AttributeValue::M(image.clone().into_inner()),
            );
        }
    }
    entry.insert("versions".into(), AttributeValue::M(versions));
    c.journal_store()
        .put(
            &region(&record.region),
            &Item::from(entry),
            &PutCondition::Always,
        )
        .await
        .unwrap();
    let after = unjournaled(&c, &REGIONS).await;
    assert!(after.iter().all(|a| a.sequence != record.sequence));
    let was_lost = before.iter().any(|a| a.sequence == record.sequence);
    assert_eq!(after.len() + usize::from(was_lost), before.len());
}

/// Six foreign writes in one batch, with invocations killed at a call
/// often (and records retried until they pass).
async fn six_foreign_writes(seed: u64) -> Cluster {
    let mut spec = Spec::new(&REGIONS);
    spec.seed = seed;
    spec.max_retries = u32::MAX;
    spec.faults = Some(FaultSpec {
        kill_rate: Some(0.7),
        ..FaultSpec::new(0.0, seed)
    });
    let mut c = Cluster::memory(spec);
    let w = c.writer();
    for i in 0..6 {
        let pk = format!("k{i}");
        w.insert(
            &region("us-east-1"),
            item(&[("pk", &pk), ("home_region", "us-east-1"), ("a", "1")]),
        )
        .await
        .unwrap();
    }
    c.settle().await;
    // Cut us-west-2 off so its writes reach the home copy only through
    // its resolver.
    c.partition(&["us-west-2"]);
    for i in 0..6 {
        let key = item(&[("pk", &format!("k{i}"))]);
        w.update(&region("us-west-2"), &key, |d| {
            d.set("a", AttributeValue::S("2".into()));
        })
        .await
        .unwrap();
    }
    for _ in 0..5 {
        c.step().await;
    }
    c.heal_all();
    c.settle().await;
    c
}

#[tokio::test]
async fn a_batch_that_fails_whole_is_bisected_before_it_is_retried() {
    let _time = VirtualTime::start();
    let mut bisected = 0;
    for seed in 0..10 {
        let c = six_foreign_writes(seed).await;
        assert!(c.stats.on_failure.is_empty(), "{:?}", c.stats.on_failure);
        assert!(c.stats.whole_failures >= c.stats.bisects);
        bisected += c.stats.bisects;
        // Every foreign write reached the home copy.
        let home = c.items("us-east-1").await;
        for i in 0..6 {
            let shown = home[&format!("pk=k{i}")].get("a");
            assert_eq!(
                shown,
                Some(&AttributeValue::S("2".into())),
                "seed {seed}, k{i}"
            );
        }
    }
    assert!(bisected > 0, "no batch was bisected");
}

#[tokio::test]
async fn a_scenario_takes_faults_and_still_converges() {
    let path = workspace_root().join("scenarios/foo-bar.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["faults"] = serde_json::json!({"rate": 0.3, "seed": 1});
    let scenario: Scenario = serde_json::from_value(json).unwrap();
    let on = scenario
        .run(Backend::Memory, true, &Registry::new())
        .await
        .unwrap();
    assert!(on.converged(), "{:?}", on.finals);
    assert!(on.misses.is_empty(), "{:?}", on.misses);
    assert!(on.injected.calls.calls > 0);
    assert!(on.injected.calls.faulted() > 0, "{}", on.injected);
}

#[tokio::test]
async fn the_checker_injects_faults_by_default_and_counts_them() {
    let config = CheckConfig {
        histories: 30,
        seed: 808,
        // Plain writers (issue 11) are checked on their own until the core
        // adopts their writes.
        plain_writes: 0.0,
        ..CheckConfig::default()
    };
    let report = check(&config, Backend::Memory, &Registry::new())
        .await
        .unwrap();
    let i = report.injected;
    eprintln!("{i}");
    let c = i.calls;
    assert!(c.throttled > 0 && c.server_errors > 0, "{i}");
    assert!(c.timed_out_after_effect > 0 && c.hung > 0, "{i}");
    // 20% of calls, give or take.
    let share = c.faulted() as f64 / c.calls as f64;
    assert!((0.15..0.25).contains(&share), "{i}");
    assert!(i.killed_invocations > 0 && i.whole_failures >= i.killed_invocations);
    let shown: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(report.failures.is_empty(), "{}", shown.join("\n"));

    let quiet = CheckConfig {
        histories: 5,
        fault_rate: 0.0,
        ..config
    };
    let report = check(&quiet, Backend::Memory, &Registry::new())
        .await
        .unwrap();
    assert_eq!(report.injected.calls.faulted(), 0);
    assert_eq!(report.injected.killed_invocations, 0);
    assert!(report.injected.calls.calls > 0);
}
