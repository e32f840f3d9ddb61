//! The resolver on AWS as it really behaves, against moto: one regression
//! test per defect found by reading it against the platform (issue 10).
//! Each test hands a Region's resolver a Lambda event built from real
//! writes on moto, over stores that fail the way DynamoDB does
//! (`homeward::faults::FaultyStore`), and checks that nothing is lost and
//! the answer comes in time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeward::faults::{FaultKind, Faults, FaultyStore};
use homeward::Store;
use homeward_tests::cluster::{Cluster, Spec};
use homeward_tests::events::{event, foreign_conflict, record};
use homeward_tests::fixtures::{item, key, region, s, text, REGIONS};
use homeward_tests::MotoServer;
use resolver::Resolver;
use serde_dynamo::AttributeValue;
use serde_json::{json, Value};

fn faulty<S: Store>(inner: S, kind: FaultKind) -> FaultyStore<S> {
    FaultyStore::new(
        inner,
        Faults::new(1.0, 7)
            .kinds(&[kind])
            .hang(Duration::from_secs(3_600)),
    )
}

async fn journal_kinds(c: &Cluster, r: &str) -> Vec<String> {
    c.journal(r).await.iter().map(|e| text(e, "kind")).collect()
}

/// Defect: the home put came before the journal put, and a journal put
/// that failed was never retried on redelivery (the home copy already held
/// the merge, so the record looked done). The entry is now written first.
#[tokio::test]
async fn a_conflict_whose_journal_put_failed_is_journaled_on_redelivery() {
    let (c, rec) = foreign_conflict("hostile-journal", "j", "west").await;
    let west = region("us-west-2");
    let down = Resolver::new(
        c.config(&west),
        c.store().clone(),
        faulty(c.journal_store(), FaultKind::Throttling),
    );
    let batch = event(vec![rec]);
    let (response, _) = down
        .handle(&batch, Instant::now() + Duration::from_secs(3))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1, "reported, not lost");
    let healthy = Resolver::new(c.config(&west), c.store().clone(), c.journal_store());
    let (response, _) = healthy
        .handle(&batch, Instant::now() + Duration::from_secs(30))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(journal_kinds(&c, "us-west-2").await, vec!["foreign"]);
    let home = c.read("us-east-1", &key("j")).await.unwrap();
    assert!(matches!(home.get("a"), Some(AttributeValue::S(v)) if v == "east" || v == "west"));
}

/// Defect: a permanent error (an unreadable stamp) was retried like
/// throttling, blocked the shard and then cost the batch's later records.
/// It is now quarantined with both images and the item's later records go on.
#[tokio::test]
async fn a_record_with_an_unreadable_stamp_is_quarantined_and_the_rest_proceed() {
    let (c, good) = foreign_conflict("hostile-quarantine", "q", "west").await;
    let west = region("us-west-2");
    let k = key("q");
    let mut broken = c.read("us-west-2", &k).await.unwrap();
    let Some(AttributeValue::M(stamp)) = broken.get_mut("_hw") else {
        panic!("stamped")
    };
    stamp.insert("dot".into(), s("us-west-2:not-a-dot"));
    let poison = record("us-west-2", 0, &k, Some(&broken), &broken);
    let resolver = Resolver::new(c.config(&west), c.store().clone(), c.journal_store());
    let (response, summary) = resolver
        .handle(
            &event(vec![poison, good]),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.by_class.get("quarantined"), Some(&1));
    assert_eq!(
        summary.by_class.get("foreign"),
        Some(&1),
        "the later record ran"
    );
    let journal = c.journal("us-west-2").await;
    let quarantined = journal
        .iter()
        .find(|e| text(e, "kind") == "quarantine")
        .expect("a quarantine entry");
    assert!(text(quarantined, "reason").contains("bad dot"));
    let Some(AttributeValue::M(versions)) = quarantined.get("versions") else {
        panic!("versions")
    };
    assert!(versions.contains_key("old") && versions.contains_key("new"));
}

/// Defect: a merge could grow past 400 KB (siblings keep both values);
/// DynamoDB then refused the put forever. It is now checked before the put
/// and quarantined, with every version kept.
#[tokio::test]
async fn a_merge_over_400_kb_is_quarantined_not_retried_forever() {
    let big = |c: char| c.to_string().repeat(220 * 1024);
    let mut c = Cluster::start(MotoServer::shared(), "hostile-size", Spec::new(&REGIONS)).await;
    let w = c.writer();
    let k = key("big");
    w.insert(
        &region("us-east-1"),
        item(&[("pk", s("big")), ("home_region", s("us-east-1"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    let before = c.read("us-west-2", &k).await.unwrap();
    w.update(&region("us-east-1"), &k, |d| {
        d.set("blob", s(&big('e')));
    })
    .await
    .unwrap();
    w.update(&region("us-west-2"), &k, |d| {
        d.set("blob", s(&big('w')));
    })
    .await
    .unwrap();
    let after = c.read("us-west-2", &k).await.unwrap();
    let west = region("us-west-2");
    let resolver = Resolver::new(c.config(&west), c.store().clone(), c.journal_store());
    let (response, summary) = resolver
        .handle(
            &event(vec![record("us-west-2", 1, &k, Some(&before), &after)]),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.by_class.get("quarantined"), Some(&1));
    let journal = c.journal("us-west-2").await;
    let entry = journal
        .iter()
        .find(|e| text(e, "kind") == "quarantine")
        .unwrap();
    assert!(
        text(entry, "reason").contains("400 KB"),
        "{}",
        text(entry, "reason")
    );
    assert!(homeward::size::item_size(entry) <= homeward::size::MAX_ITEM_BYTES);
}

/// Defect: no call had a timeout; a hung call waited for Lambda's timeout,
/// which failed the whole batch. Every call is now bounded by the time
/// left, and the batch is answered before the deadline.
#[tokio::test]
async fn a_hung_home_copy_is_answered_before_the_deadline() {
    let (c, rec) = foreign_conflict("hostile-hang", "h", "west").await;
    let west = region("us-west-2");
    let resolver = Resolver::new(
        c.config(&west),
        faulty(c.store().clone(), FaultKind::Hang),
        c.journal_store(),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(4);
    let (response, _) = tokio::time::timeout(
        Duration::from_secs(10),
        resolver.handle(&event(vec![rec]), deadline),
    )
    .await
    .expect("the handler answers even when every call hangs");
    assert!(
        Instant::now() < deadline,
        "answered before Lambda's timeout"
    );
    assert_eq!(response.batch_item_failures.len(), 1);
}

/// Log output, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Defect: log lines named keys at info and error texts quoted values. No
/// line may carry an item value, and keys appear only as hashes.
#[tokio::test]
async fn logs_carry_no_item_values_and_no_keys() {
    let secret = "alice@example.com";
    let (c, rec) = foreign_conflict("hostile-logs", secret, secret).await;
    let west = region("us-west-2");
    let mut broken = rec.clone();
    broken["dynamodb"]["SequenceNumber"] = json!("000000000000000000009");
    // serde's own message for this would quote the value.
    broken["dynamodb"]["NewImage"]["a"] = json!({ "BOOL": secret });
    // tracing caches each callsite's interest process-wide, computed on
    // the thread that reaches it first: a sibling test's thread, which has
    // no subscriber, would cache "never" for a line this test then cannot
    // see (tokio-rs/tracing#3611). With a global default registered as
    // well, interest is computed from every registered subscriber.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let resolver = Resolver::new(
        c.config(&west),
        faulty(c.store().clone(), FaultKind::Throttling),
        c.journal_store(),
    );
    resolver
        .handle(
            &event(vec![rec.clone()]),
            Instant::now() + Duration::from_secs(3),
        )
        .await;
    let resolver = Resolver::new(c.config(&west), c.store().clone(), c.journal_store());
    resolver
        .handle(
            &event(vec![broken, rec]),
            Instant::now() + Duration::from_secs(30),
        )
        .await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("key#"), "keys are named by hash: {logs}");
    assert!(logs.contains("quarantined"), "no quarantine logged: {logs}");
    assert!(
        logs.contains("record failed"),
        "no failed record logged: {logs}"
    );
    assert!(!logs.contains("alice"), "a value or key leaked: {logs}");
}

/// Defect: hot items gave up after 8 attempts with a fixed backoff. Three
/// Regions' resolvers now merge into one item written 20 times a second
/// at its home, each retrying with jitter until its deadline.
#[tokio::test]
async fn three_regions_merge_into_a_hot_item_written_twenty_times_a_second() {
    const FOREIGN: [&str; 3] = ["us-west-2", "eu-west-1", "ap-northeast-1"];
    let regions = ["us-east-1", FOREIGN[0], FOREIGN[1], FOREIGN[2]];
    let mut c = Cluster::start(MotoServer::shared(), "hostile-hot", Spec::new(&regions)).await;
    let w = c.writer();
    let k = key("hot");
    w.insert(
        &region("us-east-1"),
        item(&[("pk", s("hot")), ("home_region", s("us-east-1"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    // Foreign writes in the three other Regions, each on its own attribute.
    let mut events: HashMap<&str, Vec<Value>> = HashMap::new();
    for (i, r) in FOREIGN.iter().enumerate() {
        let mut old = c.read(r, &k).await.unwrap();
        for n in 0..10u64 {
            let attr = format!("{}{n}", &r[..2]);
            let new = w
                .update(&region(r), &k, |d| {
                    d.set(&attr, s("x"));
                })
                .await
                .unwrap();
            let new = c.schema.encode(&new);
            let seq = (i as u64) * 100 + n;
            events
                .entry(r)
                .or_default()
                .push(record(r, seq, &k, Some(&old), &new));
            old = new;
        }
    }
    // The home writes 20 times a second while the resolvers run.
    let hammer = {
        let w = c.writer();
        let k = k.clone();
        tokio::spawn(async move {
            for n in 0..40 {
                w.update(&region("us-east-1"), &k, |d| {
                    d.set("home", s(&n.to_string()));
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = events.into_iter().map(|(r, records)| {
        let resolver = Resolver::new(c.config(&region(r)), c.store().clone(), c.journal_store());
        // One record per invocation: every foreign write races the home.
        async move {
            let mut failures = 0;
            for rec in records {
                let (response, _) = resolver.handle(&event(vec![rec]), deadline).await;
                failures += response.batch_item_failures.len();
            }
            failures
        }
    });
    let failures: usize = futures_util::future::join_all(runs).await.into_iter().sum();
    hammer.await.unwrap();
    assert_eq!(failures, 0, "every merge got through");
    let home = c.read("us-east-1", &k).await.unwrap();
    for prefix in ["us", "eu", "ap"] {
        for n in 0..10 {
            assert!(
                home.contains_key(&format!("{prefix}{n}")),
                "{prefix}{n} lost"
            );
        }
    }
}

/// Counts the calls made to the table.
#[derive(Clone)]
struct Counting<S> {
    inner: S,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl<S: Store> Store for Counting<S> {
    async fn get(
        &self,
        region: &homeward::Region,
        key: &serde_dynamo::Item,
    ) -> Result<Option<serde_dynamo::Item>, homeward::StoreError> {
        self.calls.lock().unwrap().push("get");
        self.inner.get(region, key).await
    }

    async fn put(
        &self,
        region: &homeward::Region,
        item: &serde_dynamo::Item,
        condition: &homeward::PutCondition,
    ) -> Result<(), homeward::StoreError> {
        self.calls.lock().unwrap().push("put");
        self.inner.put(region, item, condition).await
    }

    async fn put_returning(
        &self,
        region: &homeward::Region,
        item: &serde_dynamo::Item,
        condition: &homeward::PutCondition,
    ) -> Result<homeward::PutResult, homeward::StoreError> {
        self.calls.lock().unwrap().push("put");
        self.inner.put_returning(region, item, condition).await
    }
}

/// A missed guess (the home copy changed since the writing Region saw it)
/// costs two calls, not three: the failed conditional put hands back the
/// home copy (ALL_OLD, which moto honours), so no read follows.
#[tokio::test]
async fn a_missed_guess_costs_two_calls() {
    let (c, rec) = foreign_conflict("hostile-guess", "g", "west").await;
    let west = region("us-west-2");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let table = Counting {
        inner: c.store().clone(),
        calls: calls.clone(),
    };
    let resolver = Resolver::new(c.config(&west), table, c.journal_store());
    let (response, summary) = resolver
        .handle(&event(vec![rec]), Instant::now() + Duration::from_secs(30))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.writes, 1);
    assert_eq!(
        *calls.lock().unwrap(),
        vec!["put", "put"],
        "the guess, then the merge"
    );
}
