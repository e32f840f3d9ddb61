//! Throttling and 5xx errors are retried inside the time budget, then the
//! record is reported; a journal entry for huge versions keeps only what
//! differs. The store here is a fake that fails on purpose: this is a unit
//! test of the retry policy, not evidence about DynamoDB (see tests/).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use homeward::{PutCondition, Region, Registry, Store, StoreError};
use resolver::journal::Entry;
use resolver::{Config, Resolver, StreamEvent};
use serde_dynamo::{AttributeValue, Item};

/// Fails the first `failures` calls with a retryable error, then behaves.
struct Flaky {
    failures: usize,
    calls: AtomicUsize,
    items: Mutex<HashMap<String, Item>>,
}

impl Flaky {
    fn new(failures: usize) -> Self {
        Flaky {
            failures,
            calls: AtomicUsize::new(0),
            items: Mutex::default(),
        }
    }

    fn fail(&self) -> Result<(), StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            return Err(StoreError::Service {
                region: "us-west-1".into(),
                retryable: true,
                message: "ProvisionedThroughputExceededException".into(),
                source: None,
            });
        }
        Ok(())
    }
}

impl Store for Flaky {
    async fn get(&self, _: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        self.fail()?;
        Ok(self
            .items
            .lock()
            .unwrap()
            .get(&resolver::journal::key_text(key))
            .cloned())
    }

    async fn put(&self, _: &Region, item: &Item, _: &PutCondition) -> Result<(), StoreError> {
        self.fail()?;
        let mut key = item.clone();
        key.retain(|k, _| k == "year" || k == "title" || k == "pk" || k == "sk");
        self.items
            .lock()
            .unwrap()
            .insert(resolver::journal::key_text(&key), item.clone());
        Ok(())
    }
}

fn config() -> Config {
    let vars = HashMap::from([
        ("TABLE_NAME", "Movies"),
        ("TABLE_KEY", "year,title"),
        ("AWS_REGION", "us-east-1"),
        ("JOURNAL_TABLE", "J"),
        ("HOME_STRATEGY", "attribute:src_region"),
    ]);
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string()), &Registry::new()).unwrap()
}

fn seed_event() -> StreamEvent<'static> {
    let path = format!(
        "{}/../../events/foreign-write.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str::<StreamEvent>(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn throttling_is_retried_within_the_deadline() {
    let resolver = Resolver::new(config(), Flaky::new(3), Flaky::new(0));
    let (response, summary) = resolver
        .handle(&seed_event(), Instant::now() + Duration::from_secs(30))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.writes, 1);
}

#[tokio::test]
async fn out_of_time_the_record_is_reported() {
    let resolver = Resolver::new(config(), Flaky::new(usize::MAX), Flaky::new(0));
    let started = Instant::now();
    let (response, summary) = resolver
        .handle(&seed_event(), started + Duration::from_secs(3))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up before the deadline"
    );
    assert_eq!(summary.failures, 1);
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, vec![Some("4000000000000000001".to_string())]);
}

#[test]
fn huge_versions_keep_only_what_differs() {
    let big = "x".repeat(200 * 1024);
    let mut a: HashMap<String, AttributeValue> = HashMap::new();
    a.insert("pk".into(), AttributeValue::S("k".into()));
    a.insert("blob".into(), AttributeValue::S(big.clone()));
    a.insert("n".into(), AttributeValue::N("1".into()));
    let mut b = a.clone();
    b.insert("n".into(), AttributeValue::N("2".into()));
    let (a, b) = (Item::from(a), Item::from(b));
    let key = Item::from(HashMap::from([(
        "pk".to_string(),
        AttributeValue::S("k".into()),
    )]));
    let entry = Entry {
        table: "T",
        item_key: &key,
        kind: "clobber",
        identity: "us-east-1:1:a#us-west-2:1:b".into(),
        action: "merged",
        detected_in: "us-east-1",
        home: None,
        regions: vec![],
        versions: vec![("old", &a), ("new", &b)],
        raw_images: vec![],
        merged_stamp: None,
        extra: vec![],
        explanation: None,
        reason: None,
        now_ms: 0,
        ttl_days: 1,
    };
    let item = entry.to_item();
    assert!(homeward::size::item_size(&item) < 400 * 1024);
    let Some(AttributeValue::M(versions)) = item.get("versions") else {
        panic!()
    };
    assert_eq!(
        versions.get("only_differing_attributes"),
        Some(&AttributeValue::Bool(true))
    );
    let Some(AttributeValue::M(old)) = versions.get("old") else {
        panic!()
    };
    assert_eq!(old.len(), 1);
    assert_eq!(old.get("n"), Some(&AttributeValue::N("1".into())));
}

#[test]
fn an_entry_with_a_huge_merged_stamp_still_fits_and_says_what_it_dropped() {
    let big = |c: char| AttributeValue::S(c.to_string().repeat(150 * 1024));
    let sibling = |at: &str, v: AttributeValue| {
        AttributeValue::M(HashMap::from([
            ("at".to_string(), AttributeValue::S(at.into())),
            ("v".to_string(), v),
        ]))
    };
    // Two concurrent 150 KB edits kept as siblings, plus the versions.
    let stamp = AttributeValue::M(HashMap::from([(
        "s".to_string(),
        AttributeValue::M(HashMap::from([(
            "blob".to_string(),
            AttributeValue::L(vec![
                sibling("us-east-1:2:a:1", big('e')),
                sibling("us-west-2:2:b:2", big('w')),
            ]),
        )])),
    )]));
    let key = Item::from(HashMap::from([(
        "pk".to_string(),
        AttributeValue::S("k".into()),
    )]));
    let mut version = HashMap::from([("pk".to_string(), AttributeValue::S("k".into()))]);
    version.insert("blob".into(), big('w'));
    let version = Item::from(version);
    let explanation = resolver::journal::MergeSteps::default();
    let entry = Entry {
        table: "T",
        item_key: &key,
        kind: "foreign",
        identity: "us-west-2:2:b".into(),
        action: "reconciled",
        detected_in: "us-west-2",
        home: Some("us-east-1"),
        regions: vec![],
        versions: vec![("new", &version)],
        raw_images: vec![],
        merged_stamp: Some(stamp),
        extra: vec![],
        explanation: Some(&explanation),
        reason: None,
        now_ms: 0,
        ttl_days: 1,
    };
    let item = entry.to_item();
    assert!(homeward::size::item_size(&item) <= homeward::size::MAX_ITEM_BYTES);
    assert_eq!(
        item.get("dropped_for_size"),
        Some(&AttributeValue::L(vec![AttributeValue::S(
            "merged_stamp.s values".into()
        )]))
    );
    // The stamp is still there, with which edits were concurrent.
    let Some(AttributeValue::M(stamp)) = item.get("merged_stamp") else {
        panic!("kept")
    };
    assert!(stamp.contains_key("s"));
}

/// Two composite keys whose values hold the separators of the key text
/// (`pk=a|sk=b` + `c` and `a` + `b|sk=c`) read alike as text; the journal
/// names them apart, so one item's entry never takes the other's place.
#[test]
fn keys_that_read_alike_have_their_own_journal_partition() {
    let key = |pk: &str, sk: &str| {
        Item::from(HashMap::from([
            ("pk".to_string(), AttributeValue::S(pk.into())),
            ("sk".to_string(), AttributeValue::S(sk.into())),
        ]))
    };
    let (one, two) = (key("a|sk=b", "c"), key("a", "b|sk=c"));
    assert_eq!(
        resolver::journal::key_text(&one),
        resolver::journal::key_text(&two),
        "the readable text is ambiguous"
    );
    assert_ne!(
        resolver::journal::partition_key("T", &one),
        resolver::journal::partition_key("T", &two)
    );
    assert_eq!(
        resolver::journal::partition_key("T", &one),
        r#"T#{"pk":{"S":"a|sk=b"},"sk":{"S":"c"}}"#
    );
}

/// Lambda gives the deadline as epoch ms; a local emulator may give the
/// time left instead (cargo-lambda's watch sends 600,000): both work.
#[test]
fn deadlines_as_dates_and_as_time_left() {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let from_date = resolver::deadline_from_epoch_ms(now_ms + 30_000);
    let left = from_date.saturating_duration_since(Instant::now());
    assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
    let from_emulator = resolver::deadline_from_epoch_ms(600_000);
    let left = from_emulator.saturating_duration_since(Instant::now());
    assert!(left > Duration::from_secs(599) && left <= Duration::from_secs(600));
}
