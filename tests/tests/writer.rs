//! The stamped writer against a real DynamoDB API (moto): conditional
//! writes under contention, the stamp it leaves on items, typed errors that
//! leave the stored item untouched, soft deletes and adopting legacy items.
//! Every test uses its own table.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue as Raw, ScalarAttributeType};
use aws_sdk_dynamodb::Client;
use homeward::dynamo::DynamoStore;
use homeward::{
    Dot, Merger, Region, Registry, Rules, Schema, StampError, Version, WriteError, Writer,
};
use homeward_tests::{unique_table, MotoServer};
use serde_dynamo::{AttributeValue, Item};
use tokio::task::JoinSet;

type RawItem = HashMap<String, Raw>;

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const COUNTER_RULES: &str = r#"{"attributes":{"stock":"counter"}}"#;

/// A Movies-shaped table (`year` N, `title` S) on the shared moto server.
struct Movies {
    name: String,
    config: SdkConfig,
}

impl Movies {
    async fn create(test: &str) -> Self {
        let server = MotoServer::shared();
        let name = unique_table(test);
        Self::create_in(server, EAST, &name).await;
        Movies {
            name,
            config: server.sdk_config().await,
        }
    }

    async fn create_in(server: &MotoServer, region: &str, name: &str) {
        server
            .create_table(
                region,
                name,
                ("year", ScalarAttributeType::N),
                Some(("title", ScalarAttributeType::S)),
            )
            .await
            .expect("create table");
    }

    /// The same table name in another Region: a separate table on moto.
    async fn add_region(&self, region: &str) {
        Self::create_in(MotoServer::shared(), region, &self.name).await;
    }

    fn writer(&self, rules: &str) -> Writer<DynamoStore> {
        let schema = Schema::new("year", Some("title"));
        let rules = Rules::from_json(rules, &Registry::new()).expect("rules");
        let store = DynamoStore::new(self.config.clone(), &self.name, schema.clone());
        Writer::new(store, schema, Merger::new(rules))
    }

    fn client(&self, region: &str) -> Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.config)
            .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
            .build();
        Client::from_conf(config)
    }

    /// The stored item as DynamoDB holds it, bypassing the writer.
    async fn raw(&self, region: &str, key: &Item) -> Option<RawItem> {
        self.client(region)
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key.clone().into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get_item")
            .item
    }

    async fn put_raw(&self, region: &str, item: Item) {
        self.client(region)
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item.into()))
            .send()
            .await
            .expect("put_item");
    }

    async fn count(&self, region: &str) -> i32 {
        self.client(region)
            .scan()
            .table_name(&self.name)
            .send()
            .await
            .expect("scan")
            .count
    }
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("Region")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    Item::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

fn movie_key(year: u32, title: &str) -> Item {
    item(&[("year", n(year)), ("title", s(title))])
}

fn rush() -> Item {
    item(&[
        ("year", n(2013)),
        ("title", s("Rush")),
        ("rating", n("8.1")),
        (
            "plot",
            s("A re-creation of the 1970s rivalry between Hunt and Lauda."),
        ),
        ("genre", s("drama")),
    ])
}

/// The stamp map of a raw item.
fn stamp(raw: &RawItem) -> &HashMap<String, Raw> {
    raw.get("_hw")
        .expect("stamped item")
        .as_m()
        .expect("the stamp is a map")
}

fn field<'a>(stamp: &'a HashMap<String, Raw>, name: &str) -> &'a str {
    stamp
        .get(name)
        .unwrap_or_else(|| panic!("stamp field {name}"))
        .as_s()
        .unwrap_or_else(|_| panic!("stamp field {name} is a string"))
}

/// The stamp's `d`: timed dot -> attributes whose last edit it is.
fn dotted(stamp: &HashMap<String, Raw>) -> BTreeMap<String, BTreeSet<String>> {
    stamp
        .get("d")
        .expect("stamp field d")
        .as_m()
        .expect("d is a map")
        .iter()
        .map(|(at, names)| {
            let names = names.as_ss().expect("d holds string sets");
            (at.clone(), names.iter().cloned().collect())
        })
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

/// Checks the header fields of a stored stamp against the version the
/// writer returned, and that the dot is `region`'s `counter`th write.
fn assert_header(raw: &RawItem, version: &Version, region: &str, counter: u64) {
    let stamp = stamp(raw);
    assert_eq!(field(stamp, "o"), region);
    assert_eq!(field(stamp, "by"), "app");
    let dot = Dot::decode(field(stamp, "dot")).expect("dot is region:counter:nonce");
    assert_eq!(dot.region.as_str(), region);
    assert_eq!(dot.tick.counter, counter);
    assert_eq!(dot, version.header.dot());
    assert_eq!(
        stamp.get("t").and_then(|t| t.as_n().ok()),
        Some(&version.header.time_ms.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_in_one_region_lose_no_update() {
    let table = Movies::create("concurrent").await;
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    let mut first = rush();
    first.insert("stock".into(), n(0));
    table
        .writer(COUNTER_RULES)
        .insert(&east, first)
        .await
        .expect("insert");

    let mut tasks = JoinSet::new();
    for _ in 0..2 {
        let (writer, key, east) = (table.writer(COUNTER_RULES), key.clone(), east.clone());
        tasks.spawn(async move {
            for _ in 0..20 {
                writer.increment(&east, &key, "stock", 1).await?;
            }
            Ok::<_, WriteError>(())
        });
    }
    for prefix in ["a", "b"] {
        let (writer, key, east) = (table.writer(COUNTER_RULES), key.clone(), east.clone());
        tasks.spawn(async move {
            for i in 0..10 {
                writer
                    .update(&east, &key, |d| {
                        d.set(&format!("{prefix}{i}"), n(i));
                    })
                    .await?;
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("every write succeeds");
    }

    let version = table
        .writer(COUNTER_RULES)
        .get(&east, &key)
        .await
        .expect("get")
        .expect("live item");
    assert_eq!(version.value("stock"), Some(n(40)));
    for prefix in ["a", "b"] {
        for i in 0..10 {
            let name = format!("{prefix}{i}");
            assert_eq!(version.value(&name), Some(n(i)), "{name}");
        }
    }
    // Every write took the next dot on one chain: 1 insert + 60 writes.
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &version, EAST, 61);
    assert_eq!(
        raw.get("stock").and_then(|v| v.as_n().ok()),
        Some(&"40".into())
    );
}

#[tokio::test]
async fn stamps_name_origin_dots_and_the_changed_attributes() {
    let table = Movies::create("stamps").await;
    let writer = table.writer("{}");
    let east = region(EAST);
    let key = movie_key(2013, "Rush");

    let v1 = writer.insert(&east, rush()).await.expect("insert");
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &v1, EAST, 1);
    let d1 = v1.header.timed_dot().encode();
    assert_eq!(
        dotted(stamp(&raw)),
        BTreeMap::from([(d1.clone(), names(&["genre", "plot", "rating"]))])
    );
    let k = stamp(&raw).get("k").and_then(|k| k.as_m().ok()).expect("k");
    assert_eq!(k.len(), 1);
    assert_eq!(
        k.get(EAST).and_then(|w| w.as_s().ok()),
        Some(&v1.header.tick.encode())
    );

    let v2 = writer
        .update(&east, &key, |d| {
            d.set("rating", n("8.2"));
            // Same value: not a change, keeps its dot.
            d.set("genre", s("drama"));
        })
        .await
        .expect("update");
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &v2, EAST, 2);
    let d2 = v2.header.timed_dot().encode();
    assert_eq!(
        dotted(stamp(&raw)),
        BTreeMap::from([
            (d2.clone(), names(&["rating"])),
            (d1.clone(), names(&["genre", "plot"])),
        ])
    );
    let window = format!("{} {}", v2.header.tick.encode(), v1.header.tick.encode());
    let k = stamp(&raw).get("k").and_then(|k| k.as_m().ok()).expect("k");
    assert_eq!(k.get(EAST).and_then(|w| w.as_s().ok()), Some(&window));

    // A removal keeps the attribute in `d` (a tombstone) but not in the item.
    let v3 = writer
        .update(&east, &key, |d| {
            d.remove("plot");
        })
        .await
        .expect("remove");
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &v3, EAST, 3);
    assert!(!raw.contains_key("plot"));
    assert_eq!(
        dotted(stamp(&raw)),
        BTreeMap::from([
            (v3.header.timed_dot().encode(), names(&["plot"])),
            (d2, names(&["rating"])),
            (d1, names(&["genre"])),
        ])
    );
    assert_eq!(
        raw.get("genre").and_then(|v| v.as_s().ok()),
        Some(&"drama".into())
    );
}

#[tokio::test]
async fn another_region_starts_its_own_counter() {
    let table = Movies::create("regions").await;
    table.add_region(WEST).await;
    let writer = table.writer("{}");
    let key = movie_key(2013, "Rush");
    writer.insert(&region(EAST), rush()).await.expect("insert");
    writer
        .update(&region(EAST), &key, |d| {
            d.set("rating", n(9));
        })
        .await
        .expect("update");

    // moto does not replicate: eu-west-1 has its own, empty table.
    let west = writer.insert(&region(WEST), rush()).await.expect("insert");
    let raw = table.raw(WEST, &key).await.expect("item");
    assert_header(&raw, &west, WEST, 1);
    let k = stamp(&raw).get("k").and_then(|k| k.as_m().ok()).expect("k");
    assert_eq!(k.keys().collect::<Vec<_>>(), [WEST]);
    let east = table.raw(EAST, &key).await.expect("item");
    assert_eq!(field(stamp(&east), "o"), EAST);
}

#[tokio::test]
async fn a_key_without_its_sort_key_is_a_bad_key() {
    let table = Movies::create("bad-key").await;
    let writer = table.writer("{}");
    let east = region(EAST);
    writer.insert(&east, rush()).await.expect("insert");
    let before = table.raw(EAST, &movie_key(2013, "Rush")).await;

    let no_title = item(&[("year", n(2013)), ("rating", n(1))]);
    let err = writer.insert(&east, no_title).await.unwrap_err();
    assert!(matches!(err, WriteError::BadKey(_)), "{err:?}");
    let year_only = item(&[("year", n(2013))]);
    let err = writer
        .update(&east, &year_only, |d| {
            d.set("rating", n(1));
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::BadKey(_)), "{err:?}");
    let err = writer.delete(&east, &year_only).await.unwrap_err();
    assert!(matches!(err, WriteError::BadKey(_)), "{err:?}");
    let err = writer.get(&east, &year_only).await.unwrap_err();
    assert!(matches!(err, WriteError::BadKey(_)), "{err:?}");

    assert_eq!(table.raw(EAST, &movie_key(2013, "Rush")).await, before);
    assert_eq!(table.count(EAST).await, 1);
}

#[tokio::test]
async fn an_item_over_400_kb_is_too_large() {
    let table = Movies::create("too-large").await;
    let writer = table.writer("{}");
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    writer.insert(&east, rush()).await.expect("insert");
    let before = table.raw(EAST, &key).await;
    let huge = s(&"x".repeat(401 * 1024));

    let err = writer
        .update(&east, &key, |d| {
            d.set("plot", huge.clone());
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, WriteError::TooLarge { bytes } if bytes > 400 * 1024),
        "{err:?}"
    );
    assert_eq!(table.raw(EAST, &key).await, before);

    let mut big = item(&[("year", n(2014)), ("title", s("Interstellar"))]);
    big.insert("plot".into(), huge);
    let err = writer.insert(&east, big).await.unwrap_err();
    assert!(matches!(err, WriteError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        table.raw(EAST, &movie_key(2014, "Interstellar")).await,
        None
    );
}

#[tokio::test]
async fn a_malformed_stamp_is_a_stamp_error() {
    let table = Movies::create("bad-stamp").await;
    let writer = table.writer("{}");
    let east = region(EAST);

    // A stamp with only its origin.
    let key = movie_key(1999, "Matrix");
    let mut partial = item(&[("year", n(1999)), ("title", s("Matrix")), ("rating", n(9))]);
    partial.insert(
        "_hw".into(),
        AttributeValue::M(HashMap::from([("o".to_owned(), s(EAST))])),
    );
    table.put_raw(EAST, partial).await;
    let before = table.raw(EAST, &key).await;
    let err = writer
        .update(&east, &key, |d| {
            d.set("rating", n(1));
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WriteError::Stamp(StampError::Field { field, .. }) if field == "t"),
        "{err:?}"
    );
    assert!(matches!(
        writer.get(&east, &key).await,
        Err(WriteError::Stamp(_))
    ));
    assert!(matches!(
        writer.delete(&east, &key).await,
        Err(WriteError::Stamp(_))
    ));
    assert_eq!(table.raw(EAST, &key).await, before);

    // A stamped item that a plain writer changed.
    let key = movie_key(2013, "Rush");
    writer.insert(&east, rush()).await.expect("insert");
    table
        .client(EAST)
        .update_item()
        .table_name(&table.name)
        .set_key(Some(key.clone().into()))
        .update_expression("SET sneaky = :v")
        .expression_attribute_values(":v", Raw::S("no dot".into()))
        .send()
        .await
        .expect("raw update");
    // Taken in as an edit of the unattributed origin (homeward::adopt):
    // the write goes through and its stamp accounts for the attribute.
    let written = writer
        .update(&east, &key, |d| {
            d.set("rating", n(1));
        })
        .await
        .expect("a plain writer's attribute is adopted, not refused");
    assert_eq!(
        written.value("sneaky"),
        Some(AttributeValue::S("no dot".into()))
    );
    let stored = Item::from(table.raw(EAST, &key).await.unwrap());
    Schema::new("year", Some("title"))
        .decode(&stored)
        .expect("the stamp is whole again");
}

#[tokio::test]
async fn insert_needs_a_new_key_and_update_an_existing_one() {
    let table = Movies::create("exists").await;
    let writer = table.writer("{}");
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    writer.insert(&east, rush()).await.expect("insert");
    let before = table.raw(EAST, &key).await;

    let mut again = rush();
    again.insert("rating".into(), n(1));
    let err = writer.insert(&east, again).await.unwrap_err();
    assert!(matches!(err, WriteError::AlreadyExists), "{err:?}");
    assert_eq!(table.raw(EAST, &key).await, before);

    let missing = movie_key(2014, "Interstellar");
    let err = writer
        .update(&east, &missing, |d| {
            d.set("rating", n(9));
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NotFound), "{err:?}");
    let err = writer.delete(&east, &missing).await.unwrap_err();
    assert!(matches!(err, WriteError::NotFound), "{err:?}");
    assert_eq!(table.raw(EAST, &missing).await, None);
    assert_eq!(table.count(EAST).await, 1);
}

/// Races `count` inserts of one key with distinct ratings; returns the
/// rating that won and checks every other insert saw `AlreadyExists`.
async fn race_inserts(table: &Movies, count: u32) -> AttributeValue {
    let mut tasks = JoinSet::new();
    for rating in 0..count {
        let writer = table.writer("{}");
        tasks.spawn(async move {
            let movie = item(&[
                ("year", n(2013)),
                ("title", s("Rush")),
                ("rating", n(rating)),
            ]);
            (rating, writer.insert(&region(EAST), movie).await)
        });
    }
    let mut winners = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            (rating, Ok(_)) => winners.push(n(rating)),
            (_, Err(WriteError::AlreadyExists)) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins: {winners:?}");
    winners.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_create_or_revive_an_item_once() {
    let table = Movies::create("insert-race").await;
    let writer = table.writer("{}");
    let key = movie_key(2013, "Rush");

    let winner = race_inserts(&table, 4).await;
    let live = writer.get(&region(EAST), &key).await.expect("get");
    assert_eq!(live.and_then(|v| v.value("rating")), Some(winner));

    writer.delete(&region(EAST), &key).await.expect("delete");
    let winner = race_inserts(&table, 4).await;
    let live = writer
        .get(&region(EAST), &key)
        .await
        .expect("get")
        .expect("revived");
    assert_eq!(live.value("rating"), Some(winner));
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &live, EAST, 3);
}

#[tokio::test]
async fn delete_leaves_a_tombstone_that_insert_revives() {
    let table = Movies::create("soft-delete").await;
    let writer = table.writer(COUNTER_RULES);
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    let v1 = writer.insert(&east, rush()).await.expect("insert");

    let gone = writer.delete(&east, &key).await.expect("delete");
    let raw = table.raw(EAST, &key).await.expect("a tombstone stays");
    assert_header(&raw, &gone, EAST, 2);
    let expires: u64 = raw
        .get("hw_expires")
        .and_then(|v| v.as_n().ok())
        .expect("TTL attribute")
        .parse()
        .expect("epoch seconds");
    let now = v1.header.time_ms / 1000;
    assert!(expires > now + 6 * 24 * 3600 && expires < now + 8 * 24 * 3600);
    for attribute in ["rating", "plot", "genre"] {
        assert!(!raw.contains_key(attribute), "{attribute}");
    }
    assert_eq!(
        dotted(stamp(&raw)),
        BTreeMap::from([(
            gone.header.timed_dot().encode(),
            names(&["genre", "hw_expires", "plot", "rating"])
        )])
    );
    assert!(writer.get(&east, &key).await.expect("get").is_none());
    let err = writer
        .update(&east, &key, |d| {
            d.set("rating", n(1));
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::NotFound), "{err:?}");
    let err = writer.delete(&east, &key).await.unwrap_err();
    assert!(matches!(err, WriteError::NotFound), "{err:?}");

    let revived = item(&[("year", n(2013)), ("title", s("Rush")), ("rating", n(7))]);
    let v3 = writer.insert(&east, revived).await.expect("revive");
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &v3, EAST, 3);
    assert!(!raw.contains_key("hw_expires"));
    let live = writer.get(&east, &key).await.expect("get").expect("live");
    assert_eq!(live.values(), BTreeMap::from([("rating".to_owned(), n(7))]));
}

#[tokio::test]
async fn a_legacy_unstamped_item_is_adopted_by_the_first_update() {
    let table = Movies::create("legacy").await;
    let writer = table.writer("{}");
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    table.put_raw(EAST, rush()).await;

    let v1 = writer
        .update(&east, &key, |d| {
            assert_eq!(
                d.get("genre"),
                Some(s("drama")),
                "the draft sees legacy values"
            );
            d.set("rating", n(9));
        })
        .await
        .expect("adopt");
    let raw = table.raw(EAST, &key).await.expect("item");
    assert_header(&raw, &v1, EAST, 1);
    // The legacy values are an edit of the unattributed origin (the same
    // dot every Region's resolver derives from the item); the update's own
    // change carries the update's dot.
    let dots = dotted(stamp(&raw));
    assert_eq!(dots.len(), 2, "{dots:?}");
    assert_eq!(dots[&v1.header.timed_dot().encode()], names(&["rating"]));
    let (adopted, legacy) = dots
        .iter()
        .find(|(dot, _)| dot.starts_with("unattributed:1:"))
        .expect("an adoption dot");
    assert_eq!(legacy, &names(&["genre", "plot"]));
    assert!(
        adopted.ends_with(":0"),
        "a legacy edit's time is 0: {adopted}"
    );
    let live = writer.get(&east, &key).await.expect("get").expect("live");
    assert_eq!(live.value("rating"), Some(n(9)));
    assert_eq!(live.value("genre"), Some(s("drama")));
    assert!(live.value("plot").is_some());
}

/// A counter written by a legacy writer keeps its value when the first
/// stamped write is an increment (it adopts the item and adds to it; it
/// used to replace the legacy value with the increment alone).
#[tokio::test]
async fn an_increment_adopting_a_legacy_counter_adds_to_its_value() {
    let table = Movies::create("legacy-counter").await;
    let writer = table.writer(COUNTER_RULES);
    let east = region(EAST);
    let key = movie_key(2013, "Rush");
    let mut legacy = rush();
    legacy.insert("stock".into(), n(7));
    table.put_raw(EAST, legacy).await;
    writer
        .increment(&east, &key, "stock", 2)
        .await
        .expect("adopt and increment");
    let live = writer.get(&east, &key).await.expect("get").expect("live");
    assert_eq!(live.value("stock"), Some(n(9)));
    assert_eq!(live.value("genre"), Some(s("drama")));
}
