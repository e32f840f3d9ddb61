//! Home Regions against moto with the replication harness: re-homing
//! triggers, failover to an evacuated Region's neighbour, racing re-homes,
//! the writer's routing, negotiated assignments and the rehome function.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use homeward::control::{write_evacuated, Evacuations};
use homeward::home::HomeStrategy;
use homeward::routing::{Mode, Router};
use homeward::{Home, Region};
use homeward_tests::cluster::{Cluster, SimStore, Spec};
use homeward_tests::fixtures::{converged, item, key, region, s, text, REGIONS};
use homeward_tests::MotoServer;
use rehome::{Operator, Request};
use serde_dynamo::{AttributeValue, Item};
use serde_json::json;

/// The home the stamp records (`h`, `e`), if any.
fn stamped_home(item: &Item) -> Option<(String, String)> {
    let Some(AttributeValue::M(stamp)) = item.get("_hw") else {
        return None;
    };
    match (stamp.get("h"), stamp.get("e")) {
        (Some(AttributeValue::S(h)), Some(AttributeValue::N(e))) => Some((h.clone(), e.clone())),
        _ => None,
    }
}

/// The kinds of the journal entries; a re-home that lost a race to another
/// move is journaled too, as `rehome:superseded`.
async fn journal_kinds(c: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for r in REGIONS {
        out.extend(
            c.journal(r)
                .await
                .iter()
                .map(|e| match (text(e, "kind"), text(e, "action")) {
                    (kind, action) if kind == "rehome" && action != "rehomed" => {
                        format!("{kind}:{action}")
                    }
                    (kind, _) => kind,
                }),
        );
    }
    out
}

fn spec() -> Spec {
    Spec::new(&REGIONS).env("CONTROL_REFRESH_SECONDS", "0")
}

fn router(c: &Cluster, local: &str, mode: Mode) -> Router<SimStore, SimStore> {
    Router::new(
        c.writer(),
        region(local),
        mode,
        HomeStrategy::default(),
        c.journal_store(),
        Evacuations::new(BTreeSet::new(), Duration::ZERO),
    )
}

/// The negotiated strategy's assignments table: its own table in every
/// Region, replicated by the harness like a global table (no resolvers).
async fn assignments_table(test: &str) -> Cluster {
    let mut spec = Spec::new(&REGIONS);
    spec.sort_key = Some(("sk", aws_sdk_dynamodb::types::ScalarAttributeType::S));
    spec.resolvers = false;
    Cluster::start(MotoServer::shared(), test, spec).await
}

async fn user(c: &mut Cluster, pk: &str, home: &str) {
    c.writer()
        .insert(
            &region(home),
            item(&[
                ("pk", s(pk)),
                ("home_region", s(home)),
                ("city", s("Boston")),
            ]),
        )
        .await
        .unwrap();
    c.settle().await;
}

#[tokio::test]
async fn a_traveller_is_rehomed_by_the_third_write_with_after_3() {
    let mut c = Cluster::start(
        MotoServer::shared(),
        "traveller",
        spec().env("REHOME", "after:3"),
    )
    .await;
    user(&mut c, "user-42", "us-east-1").await;
    let w = c.writer();
    for visit in 1..=3 {
        w.update(&region("eu-west-1"), &key("user-42"), |d| {
            d.set("visits", AttributeValue::N(visit.to_string()));
        })
        .await
        .unwrap();
        c.settle().await;
        let items = converged(&c).await;
        let u = &items["pk=user-42"];
        let expected = if visit < 3 { "us-east-1" } else { "eu-west-1" };
        assert_eq!(
            text(u, "home_region"),
            expected,
            "after write {visit}: {u:?} {:?}",
            c.stats
        );
        assert_eq!(text(u, "visits"), visit.to_string());
        if visit == 2 {
            // Lambda redelivers everything: no write is counted twice.
            c.replay(1).await;
            let u = c.read("us-east-1", &key("user-42")).await.unwrap();
            assert_eq!(text(&u, "home_region"), "us-east-1", "after the replay");
        }
    }
    let u = c.read("us-west-2", &key("user-42")).await.unwrap();
    assert_eq!(stamped_home(&u), Some(("eu-west-1".into(), "1".into())));
    let rehomes = journal_kinds(&c)
        .await
        .iter()
        .filter(|k| *k == "rehome")
        .count();
    assert_eq!(rehomes, 1);
    // From now on eu-west-1 writes are home writes.
    let foreign_before = c.stats.classes.get("foreign").copied();
    let homes_before = c.stats.classes.get("home-write").copied().unwrap_or(0);
    w.update(&region("eu-west-1"), &key("user-42"), |d| {
        d.set("city", s("Dublin"));
    })
    .await
    .unwrap();
    c.settle().await;
    let foreign_after = c.stats.classes.get("foreign").copied();
    assert_eq!(foreign_after, foreign_before, "{:?}", c.stats);
    assert_eq!(
        c.stats.classes.get("home-write").copied().unwrap_or(0),
        homes_before + 1
    );
    assert_eq!(text(&converged(&c).await["pk=user-42"], "city"), "Dublin");
}

#[tokio::test]
async fn one_stray_write_does_not_move_a_user_and_counts_are_per_region() {
    let mut c = Cluster::start(
        MotoServer::shared(),
        "stray",
        spec().env("REHOME", "after:3"),
    )
    .await;
    user(&mut c, "u", "us-east-1").await;
    let w = c.writer();
    // Two from eu-west-1 and a stray one from us-west-2: nobody has three.
    for from in ["eu-west-1", "us-west-2", "eu-west-1"] {
        w.update(&region(from), &key("u"), |d| {
            d.set(&format!("seen_{}", from.replace('-', "_")), s("yes"));
        })
        .await
        .unwrap();
        c.settle().await;
        assert_eq!(
            text(&converged(&c).await["pk=u"], "home_region"),
            "us-east-1"
        );
    }
    assert!(!journal_kinds(&c).await.contains(&"rehome".to_string()));
    // The third from eu-west-1 moves the user there, not to us-west-2.
    w.update(&region("eu-west-1"), &key("u"), |d| {
        d.set("city", s("Dublin"));
    })
    .await
    .unwrap();
    c.settle().await;
    assert_eq!(
        text(&converged(&c).await["pk=u"], "home_region"),
        "eu-west-1"
    );
}

#[tokio::test]
async fn failover_rehomes_to_the_writer_and_the_old_homes_last_write_is_merged_on_return() {
    let mut c = Cluster::start(MotoServer::shared(), "failover", spec()).await;
    user(&mut c, "u", "us-east-1").await;
    user(&mut c, "v", "us-east-1").await;
    let w = c.writer();
    // us-east-1 goes dark right after a write that never left it.
    c.partition(&["us-east-1"]);
    w.update(&region("us-east-1"), &key("u"), |d| {
        d.set("note", s("written in us-east-1 just before the outage"));
    })
    .await
    .unwrap();
    for r in ["us-west-2", "eu-west-1"] {
        let evacuated = BTreeSet::from([region("us-east-1")]);
        write_evacuated(&c.journal_store(), &region(r), &evacuated)
            .await
            .unwrap();
    }
    // A local-mode writer in us-west-2: the resolver re-homes the item there.
    w.update(&region("us-west-2"), &key("u"), |d| {
        d.set("city", s("Seattle"));
    })
    .await
    .unwrap();
    // A route-mode writer in us-west-2 adopts the item at once.
    let routed = router(&c, "us-west-2", Mode::Route)
        .update(&key("v"), |d| {
            d.set("city", s("Portland"));
        })
        .await
        .unwrap();
    assert!(routed.moved);
    assert_eq!(routed.region, region("us-west-2"));
    c.settle().await;
    for pk in ["u", "v"] {
        for r in ["us-west-2", "eu-west-1"] {
            let copy = c.read(r, &key(pk)).await.unwrap();
            assert_eq!(text(&copy, "home_region"), "us-west-2", "{pk} in {r}");
            assert_eq!(stamped_home(&copy), Some(("us-west-2".into(), "1".into())));
        }
    }
    // us-east-1 returns; nothing written during the outage is lost.
    c.heal(&["us-east-1"]);
    for r in ["us-west-2", "eu-west-1"] {
        write_evacuated(&c.journal_store(), &region(r), &BTreeSet::new())
            .await
            .unwrap();
    }
    c.settle().await;
    let items = converged(&c).await;
    let u = &items["pk=u"];
    assert_eq!(
        text(u, "note"),
        "written in us-east-1 just before the outage"
    );
    assert_eq!(text(u, "city"), "Seattle");
    assert_eq!(text(u, "home_region"), "us-west-2");
    assert_eq!(text(&items["pk=v"], "city"), "Portland");
}

#[tokio::test]
async fn two_regions_rehoming_one_item_at_once_exactly_one_wins_and_nothing_is_lost() {
    let mut c = Cluster::start(MotoServer::shared(), "race", spec().env("REHOME", "always")).await;
    user(&mut c, "u", "us-east-1").await;
    let w = c.writer();
    // Both writes are made before either resolver runs or anything replicates.
    c.partition(&["us-west-2"]);
    c.partition(&["eu-west-1"]);
    w.update(&region("us-west-2"), &key("u"), |d| {
        d.set("west", s("w"));
    })
    .await
    .unwrap();
    w.update(&region("eu-west-1"), &key("u"), |d| {
        d.set("eu", s("e"));
    })
    .await
    .unwrap();
    c.heal_all();
    c.settle().await;
    let items = converged(&c).await;
    let u = &items["pk=u"];
    assert_eq!(text(u, "west"), "w");
    assert_eq!(text(u, "eu"), "e");
    let (home, epoch) = stamped_home(u).expect("re-homed");
    assert_eq!(epoch, "1", "one move, one epoch");
    assert_eq!(text(u, "home_region"), home);
    let moves = journal_kinds(&c)
        .await
        .iter()
        .filter(|k| *k == "rehome")
        .count();
    assert_eq!(moves, 1, "exactly one re-home won");
}

#[tokio::test]
async fn routing_sends_writes_home_and_local_mode_writes_here() {
    let mut c = Cluster::start(MotoServer::shared(), "routing", spec()).await;
    user(&mut c, "u", "us-east-1").await;
    let route = router(&c, "eu-west-1", Mode::Route);
    let routed = route
        .update(&key("u"), |d| {
            d.set("city", s("Paris"));
        })
        .await
        .unwrap();
    assert_eq!(routed.region, region("us-east-1"));
    // The owner reads its write back, strongly consistent, at the home.
    let home = c.read("us-east-1", &key("u")).await.unwrap();
    assert_eq!(text(&home, "city"), "Paris");
    let local = router(&c, "eu-west-1", Mode::Local);
    let written = local
        .update(&key("u"), |d| {
            d.set("city", s("Lyon"));
        })
        .await
        .unwrap();
    assert_eq!(written.region, region("eu-west-1"));
    c.settle().await;
    assert_eq!(text(&converged(&c).await["pk=u"], "city"), "Lyon");
    assert_eq!(c.stats.classes.get("foreign"), Some(&1), "{:?}", c.stats);
    // A new item is written where its home attribute says.
    let born = route
        .insert(item(&[("pk", s("n")), ("home_region", s("us-west-2"))]))
        .await
        .unwrap();
    assert_eq!(born.region, region("us-west-2"));
}

#[tokio::test]
async fn negotiated_assignments_claim_renew_move_and_fence_stale_writers() {
    let spec = spec().env("HOME_STRATEGY", "negotiated");
    let mut c = Cluster::start(MotoServer::shared(), "negotiated", spec).await;
    let mut replicas = assignments_table("negotiated-assign").await;
    c.use_assignments(replicas.store());
    let homes = HomeStrategy::parse("negotiated", "_hw", "t").unwrap();
    let writer_in = |r: &str| {
        Router::new(
            c.writer(),
            region(r),
            Mode::Route,
            homes.clone(),
            c.journal_store(),
            Evacuations::new(BTreeSet::new(), Duration::ZERO),
        )
        .with_assignments(replicas.store().clone(), "homes", Duration::from_secs(60))
    };
    let (east, west) = (writer_in("us-east-1"), writer_in("eu-west-1"));
    let born = west
        .insert(item(&[("pk", s("cart-7")), ("n", s("1"))]))
        .await
        .unwrap();
    assert_eq!(
        born.region,
        region("eu-west-1"),
        "claimed by its first writer"
    );
    // The claim replicates to every Region's replica of the assignments.
    replicas.settle().await;
    // Another Region's claim finds the live lease and defers to it.
    let a = east.assignments().unwrap();
    let held = a
        .claim(&key("cart-7"), &region("us-east-1"), 0)
        .await
        .unwrap();
    assert_eq!(held.home, Home::new(region("eu-west-1"), 1));
    // Renewal by the holder keeps the epoch and extends the lease; a
    // Region that does not hold it cannot renew it.
    let holder = west.assignments().unwrap();
    let later = held.lease_until_ms - 1;
    let renewed = holder
        .renew(&key("cart-7"), &region("eu-west-1"), later)
        .await
        .unwrap();
    assert_eq!(renewed.home.epoch, 1);
    assert!(renewed.lease_until_ms > held.lease_until_ms);
    let not_holder = a.renew(&key("cart-7"), &region("us-east-1"), 10).await;
    assert!(
        matches!(
            not_holder,
            Err(homeward::control::AssignError::Fenced { .. })
        ),
        "{not_holder:?}"
    );
    c.settle().await;
    // East caches the assignment, then west moves the item to us-east-1:
    // a move fenced on the epoch; a second mover with the old epoch loses.
    assert_eq!(
        east.home_of(&key("cart-7")).await.unwrap().unwrap().region,
        region("eu-west-1")
    );
    let moved = west
        .move_home(&key("cart-7"), &region("us-east-1"))
        .await
        .unwrap();
    assert!(moved.moved);
    let late = west
        .assignments()
        .unwrap()
        .move_to(&key("cart-7"), &region("us-west-2"), 1, 20)
        .await;
    assert!(
        matches!(late, Err(homeward::control::AssignError::Fenced { .. })),
        "{late:?}"
    );
    replicas.settle().await;
    c.settle().await;
    // East's cache still says eu-west-1 (60 s): its write goes there, but
    // carries the newer home the item records (epoch 2), so the resolver
    // merges it into us-east-1 as the foreign write it is.
    let w = east
        .update(&key("cart-7"), |d| {
            d.set("n", s("2"));
        })
        .await
        .unwrap();
    c.settle().await;
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=cart-7"], "n"), "2");
    assert_eq!(
        stamped_home(&items["pk=cart-7"]),
        Some(("us-east-1".into(), "2".into()))
    );
    assert_eq!(w.region, region("eu-west-1"), "routed by the stale cache");
    assert!(
        c.stats.classes.get("foreign").copied().unwrap_or(0) >= 1,
        "{:?}",
        c.stats
    );
}

/// Negotiated homes hold under failure: the holder's Region goes dark (cut
/// off and not answering), its lease runs out, and a writer elsewhere
/// takes the item over from its own replica of the assignments (nothing
/// depends on one Region); when the old home returns, its writer, whose
/// lease has run out too, routes to the new home instead of writing as if
/// it still held it, and nothing written on either side is lost.
#[tokio::test]
async fn a_negotiated_home_fails_over_when_its_holders_lease_runs_out() {
    let spec = spec().env("HOME_STRATEGY", "negotiated");
    let mut c = Cluster::start(MotoServer::shared(), "lease", spec).await;
    let mut a = assignments_table("lease-assign").await;
    c.use_assignments(a.store());
    let homes = HomeStrategy::parse("negotiated", "_hw", "t").unwrap();
    let evacuations = || Evacuations::new(BTreeSet::new(), Duration::ZERO);
    let east = Router::new(
        c.writer(),
        region("us-east-1"),
        Mode::Route,
        homes.clone(),
        c.journal_store(),
        evacuations(),
    )
    .with_assignments(a.store().clone(), "carts", Duration::ZERO)
    .with_lease(Duration::from_millis(1_500));
    // us-west-2's writer cannot reach us-east-1 (down, after the SDK's retries).
    let mut cut_off = homeward::Writer::new(
        OneRegionDown {
            inner: c.store().clone(),
            down: region("us-east-1"),
        },
        c.schema.clone(),
        c.merger.clone(),
    );
    cut_off.clock = c.writer().clock.clone();
    let west = Router::new(
        cut_off,
        region("us-west-2"),
        Mode::Route,
        homes,
        c.journal_store(),
        evacuations(),
    )
    .with_assignments(a.store().clone(), "carts", Duration::ZERO)
    .with_lease(Duration::from_secs(60));

    let born = east
        .insert(item(&[("pk", s("cart-9")), ("n", s("1"))]))
        .await
        .unwrap();
    assert_eq!(born.version.home, Some(Home::new(region("us-east-1"), 1)));
    a.settle().await;
    c.settle().await;

    // us-east-1 goes dark: cut off from replication, and not answering.
    c.partition(&["us-east-1"]);
    a.partition(&["us-east-1"]);
    let early = west
        .update(&key("cart-9"), |d| {
            d.set("early", s("while the lease held"));
        })
        .await
        .unwrap();
    assert_eq!(early.region, region("us-west-2"), "the home did not answer");
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let took = west
        .update(&key("cart-9"), |d| {
            d.set("n", s("2"));
        })
        .await
        .unwrap();
    assert_eq!(took.region, region("us-west-2"));
    assert_eq!(
        took.version.home,
        Some(Home::new(region("us-west-2"), 2)),
        "the lease ran out: us-west-2 claimed the item, one epoch on"
    );
    a.settle().await;
    c.settle().await;

    // us-east-1 returns. Its writer's lease ran out and its replica now
    // says us-west-2 holds the item: it routes there.
    c.heal_all();
    a.heal_all();
    a.settle().await;
    c.settle().await;
    let back = east
        .update(&key("cart-9"), |d| {
            d.set("late", s("after the return"));
        })
        .await
        .unwrap();
    assert_eq!(back.region, region("us-west-2"), "routed to the new home");
    c.settle().await;
    let items = converged(&c).await;
    let cart = &items["pk=cart-9"];
    assert_eq!(text(cart, "n"), "2");
    assert_eq!(text(cart, "early"), "while the lease held");
    assert_eq!(text(cart, "late"), "after the return");
    assert_eq!(stamped_home(cart), Some(("us-west-2".into(), "2".into())));
}

#[tokio::test]
async fn the_seeds_src_region_movies_work_by_configuration_alone() {
    let mut spec = Spec::new(&REGIONS).env("HOME_STRATEGY", "attribute:src_region");
    spec.partition_key = ("year", aws_sdk_dynamodb::types::ScalarAttributeType::N);
    spec.sort_key = Some(("title", aws_sdk_dynamodb::types::ScalarAttributeType::S));
    let mut c = Cluster::start(MotoServer::shared(), "movies", spec).await;
    let w = c.writer();
    let jaws = Item::from(std::collections::HashMap::from([
        ("year".to_string(), AttributeValue::N("1975".into())),
        ("title".to_string(), s("Jaws")),
    ]));
    let mut movie = jaws.clone();
    movie.insert("src_region".into(), s("us-west-2"));
    movie.insert("rating".into(), s("PG"));
    w.insert(&region("us-west-2"), movie).await.unwrap();
    c.settle().await;
    w.update(&region("eu-west-1"), &jaws, |d| {
        d.set("rating", s("PG-13"));
    })
    .await
    .unwrap();
    c.settle().await;
    let home = c.read("us-west-2", &jaws).await.unwrap();
    assert_eq!(text(&home, "rating"), "PG-13");
    assert_eq!(
        c.stats.by_region.get(&("eu-west-1".to_string(), "foreign")),
        Some(&1)
    );
}

fn operator(c: &Cluster, local: &str) -> Operator<SimStore, SimStore> {
    Operator {
        router: router(c, local, Mode::Route),
        control: c.journal_store(),
        regions: REGIONS.iter().map(|r| region(r)).collect(),
    }
}

#[tokio::test]
async fn the_rehome_function_evacuates_idempotently_reports_and_refuses_bad_requests() {
    let mut c = Cluster::start(MotoServer::shared(), "operator", spec()).await;
    for i in 0..7 {
        let home = if i < 5 { "us-east-1" } else { "eu-west-1" };
        user(&mut c, &format!("user-{i}"), home).await;
    }
    let op = operator(&c, "us-west-2");
    let far = Instant::now() + Duration::from_secs(60);
    // A malformed request: a clear error, and nothing changed.
    let before = c.items("us-west-2").await;
    let err = Request::parse(json!({"op": "evacuate", "region": "us-east-1", "too": "us-west-2"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `too`"), "{err}");
    let err = Request::parse(json!({"op": "evacuate", "region": "us-east-1", "to": "Mars"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`to`"), "{err}");
    assert_eq!(c.items("us-west-2").await, before);
    assert!(c.journal("us-west-2").await.is_empty());

    // Evacuate in pages of 2, resuming from `next`.
    let evacuate = json!({"op": "evacuate", "region": "us-east-1", "to": "us-west-2", "page_size": 2, "max_pages": 1});
    let mut request = Request::parse(evacuate.clone()).unwrap();
    let mut moved = 0;
    let mut calls = 0;
    loop {
        let progress = op.run(request.clone(), far).await.unwrap();
        calls += 1;
        moved += progress.moved;
        assert_eq!(
            progress.evacuated["eu-west-1"],
            vec!["us-east-1".to_string()]
        );
        if progress.done {
            break;
        }
        let mut next = evacuate.clone();
        next["start"] = progress.next.unwrap();
        request = Request::parse(next).unwrap();
    }
    assert_eq!(moved, 5);
    assert!(calls >= 4, "resumed in pages: {calls} calls");
    c.settle().await;
    let after_first = converged(&c).await;
    // The same request again changes nothing.
    let again = op
        .run(
            Request::parse(json!({"op": "evacuate", "region": "us-east-1", "to": "us-west-2"}))
                .unwrap(),
            far,
        )
        .await
        .unwrap();
    assert_eq!((again.moved, again.already), (0, 0), "{again:?}");
    c.settle().await;
    assert_eq!(converged(&c).await, after_first);
    // The report counts homes.
    let report = op
        .run(Request::parse(json!({"op": "report"})).unwrap(), far)
        .await
        .unwrap();
    assert_eq!(report.homes.get("us-west-2"), Some(&5), "{report:?}");
    assert_eq!(report.homes.get("eu-west-1"), Some(&2), "{report:?}");
    // A planned move of one key, twice: the second changes nothing.
    let one = json!({"op": "move", "key": {"pk": {"S": "user-6"}}, "to": "us-west-2"});
    let first = op
        .run(Request::parse(one.clone()).unwrap(), far)
        .await
        .unwrap();
    assert_eq!(first.moved, 1);
    c.settle().await;
    let second = op.run(Request::parse(one).unwrap(), far).await.unwrap();
    assert_eq!((second.moved, second.already), (0, 1));
    // Restore: the list is empty again everywhere it was written.
    let restored = op
        .run(
            Request::parse(json!({"op": "restore", "region": "us-east-1"})).unwrap(),
            far,
        )
        .await
        .unwrap();
    assert!(
        restored.evacuated.values().all(Vec::is_empty),
        "{restored:?}"
    );
    let store = c.journal_store();
    assert!(
        homeward::control::read_evacuated(&store, &region("eu-west-1"))
            .await
            .unwrap()
            .is_empty()
    );
    // A key prefix, in pages of 3: every user to eu-west-1; twice.
    c.settle().await;
    let prefix = json!({"op": "move-prefix", "prefix": "user-", "to": "eu-west-1", "page_size": 3});
    let moved = op
        .run(Request::parse(prefix.clone()).unwrap(), far)
        .await
        .unwrap();
    assert_eq!(
        (moved.moved, moved.already, moved.done),
        (6, 1, true),
        "{moved:?}"
    );
    c.settle().await;
    let again = op.run(Request::parse(prefix).unwrap(), far).await.unwrap();
    assert_eq!((again.moved, again.already), (0, 7), "{again:?}");
    let items = converged(&c).await;
    assert!(items
        .values()
        .all(|u| text(u, "home_region") == "eu-west-1"));
}

/// The cluster's store with one Region that does not answer (as after the
/// SDK's retries against a Region that is down).
#[derive(Clone)]
struct OneRegionDown {
    inner: SimStore,
    down: Region,
}

impl OneRegionDown {
    fn check(&self, region: &Region) -> Result<(), homeward::StoreError> {
        if region == &self.down {
            return Err(homeward::StoreError::Service {
                region: region.to_string(),
                retryable: true,
                message: "dispatch failure: connection refused".into(),
                source: None,
            });
        }
        Ok(())
    }
}

impl homeward::Store for OneRegionDown {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, homeward::StoreError> {
        self.check(region)?;
        self.inner.get(region, key).await
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &homeward::PutCondition,
    ) -> Result<(), homeward::StoreError> {
        self.check(region)?;
        self.inner.put(region, item, condition).await
    }
}

#[tokio::test]
async fn route_mode_writes_here_when_the_home_does_not_answer_and_the_resolver_reconciles() {
    let mut c = Cluster::start(MotoServer::shared(), "home-down", spec()).await;
    user(&mut c, "u", "us-east-1").await;
    let w = c.writer();
    let down = OneRegionDown {
        inner: c.store().clone(),
        down: region("us-east-1"),
    };
    let writer = homeward::Writer::new(down, w.schema().clone(), w.merger().clone());
    let route = Router::new(
        writer,
        region("eu-west-1"),
        Mode::Route,
        HomeStrategy::default(),
        c.journal_store(),
        Evacuations::new(BTreeSet::new(), Duration::ZERO),
    );
    let routed = route
        .update(&key("u"), |d| {
            d.set("city", s("Cork"));
        })
        .await
        .unwrap();
    assert_eq!(
        routed.region,
        region("eu-west-1"),
        "fell back to this Region"
    );
    assert!(!routed.moved, "not evacuated: the home stays");
    c.settle().await;
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=u"], "city"), "Cork");
    assert_eq!(text(&items["pk=u"], "home_region"), "us-east-1");
}

#[tokio::test]
async fn changing_the_home_attribute_through_the_router_moves_the_home_one_epoch_on() {
    let mut c = Cluster::start(MotoServer::shared(), "attr-move", spec()).await;
    user(&mut c, "u", "us-east-1").await;
    let route = router(&c, "eu-west-1", Mode::Route);
    let moved = route
        .move_home(&key("u"), &region("eu-west-1"))
        .await
        .unwrap();
    assert!(moved.moved);
    c.settle().await;
    let u = c.read("us-west-2", &key("u")).await.unwrap();
    assert_eq!(stamped_home(&u), Some(("eu-west-1".into(), "1".into())));
    // The app sets the attribute itself (the seed's way of moving a user).
    let written = route
        .update(&key("u"), |d| {
            d.set("home_region", s("us-west-2"));
        })
        .await
        .unwrap();
    assert_eq!(
        written.region,
        region("eu-west-1"),
        "written at the home it had"
    );
    c.settle().await;
    let items = converged(&c).await;
    let u = &items["pk=u"];
    assert_eq!(text(u, "home_region"), "us-west-2");
    assert_eq!(stamped_home(u), Some(("us-west-2".into(), "2".into())));
    // A bad Region in the attribute is refused, and nothing is written.
    let err = route
        .update(&key("u"), |d| {
            d.set("home_region", s("Mars"));
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Mars"), "{err}");
    c.settle().await;
    assert_eq!(converged(&c).await, items);
}

#[tokio::test]
async fn key_prefix_homes_are_reconciled_and_never_rehomed() {
    let spec = spec()
        .env("HOME_STRATEGY", "key-prefix:pk")
        .env("REHOME", "evacuated");
    let mut c = Cluster::start(MotoServer::shared(), "key-prefix", spec).await;
    let w = c.writer();
    let pk = "us-east-1#user-42";
    w.insert(
        &region("us-east-1"),
        item(&[("pk", s(pk)), ("city", s("Boston"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    // us-east-1 is evacuated, yet the item cannot move: the write is merged
    // into its home, which keeps it.
    write_evacuated(
        &c.journal_store(),
        &region("eu-west-1"),
        &BTreeSet::from([region("us-east-1")]),
    )
    .await
    .unwrap();
    w.update(&region("eu-west-1"), &key(pk), |d| {
        d.set("city", s("Dublin"));
    })
    .await
    .unwrap();
    c.settle().await;
    let items = converged(&c).await;
    assert_eq!(text(&items[&format!("pk={pk}")], "city"), "Dublin");
    assert_eq!(stamped_home(&items[&format!("pk={pk}")]), None);
    assert_eq!(
        c.stats.by_region.get(&("eu-west-1".to_string(), "foreign")),
        Some(&1)
    );
    // Asking to move one says why it cannot.
    let homes = HomeStrategy::parse("key-prefix:pk", "_hw", "t").unwrap();
    let router = Router::new(
        c.writer(),
        region("eu-west-1"),
        Mode::Route,
        homes,
        c.journal_store(),
        Evacuations::new(BTreeSet::new(), Duration::ZERO),
    );
    let err = router
        .move_home(&key(pk), &region("eu-west-1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never re-homed"), "{err}");
    // The rehome function counts such items as fixed and moves nothing.
    let op = Operator {
        router,
        control: c.journal_store(),
        regions: REGIONS.iter().map(|r| region(r)).collect(),
    };
    let far = Instant::now() + Duration::from_secs(60);
    let evacuate = json!({"op": "evacuate", "region": "us-east-1", "to": "eu-west-1"});
    let progress = op
        .run(Request::parse(evacuate).unwrap(), far)
        .await
        .unwrap();
    assert_eq!((progress.fixed, progress.moved), (1, 0), "{progress:?}");
}

#[tokio::test]
async fn table_oriented_homes_come_from_the_table_name() {
    let prefix = format!("orders{:08x}", rand::random::<u32>());
    let mut spec = spec().env("HOME_STRATEGY", &format!("table:{prefix}-{{region}}"));
    spec.table_name = Some(format!("{prefix}-us-west-2"));
    let mut c = Cluster::start(MotoServer::shared(), "table-homes", spec).await;
    let w = c.writer();
    w.insert(
        &region("us-west-2"),
        item(&[("pk", s("order-1")), ("status", s("placed"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    w.update(&region("eu-west-1"), &key("order-1"), |d| {
        d.set("status", s("paid"));
    })
    .await
    .unwrap();
    c.settle().await;
    assert_eq!(text(&converged(&c).await["pk=order-1"], "status"), "paid");
    assert_eq!(
        c.stats.by_region.get(&("eu-west-1".to_string(), "foreign")),
        Some(&1)
    );
    // The write made in the home Region is a home write.
    assert!(c
        .stats
        .by_region
        .contains_key(&("us-west-2".to_string(), "home-write")));
}
