//! The resolver against moto: several Regions on one server, replication
//! played by the harness (last writer wins per item, paused and reordered
//! links), each Region's resolver fed from its own stream as Lambda would.
//! Each test checks one guarantee of the conflict model (G1-G7).

use homeward_tests::cluster::{Cluster, Spec};
use homeward_tests::fixtures::{converged, item, key, region, s, text, REGIONS};
use homeward_tests::MotoServer;
use serde_dynamo::{AttributeValue, Item};

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn all_journal(c: &Cluster) -> Vec<(String, Item)> {
    let mut out = Vec::new();
    for r in REGIONS {
        out.extend(c.journal(r).await.into_iter().map(|e| (r.to_string(), e)));
    }
    out
}

/// G3, the seed: foo changed in us-east-1, bar in us-west-2, concurrently;
/// last writer wins would keep one whole version. Returns the cluster.
async fn seed_scenario(test: &str, spec: Spec) -> Cluster {
    let mut c = Cluster::start(MotoServer::shared(), test, spec).await;
    let w = c.writer();
    w.insert(
        &region("us-east-1"),
        item(&[
            ("pk", s("item")),
            ("home_region", s("us-east-1")),
            ("foo", s("0")),
            ("bar", s("0")),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    w.update(&region("us-east-1"), &key("item"), |d| {
        d.set("foo", s("east"));
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.update(&region("us-west-2"), &key("item"), |d| {
        d.set("bar", s("west"));
    })
    .await
    .unwrap();
    c.settle().await;
    c
}

#[tokio::test]
async fn g3_concurrent_edits_in_two_regions_both_survive_and_the_loser_is_journaled() {
    let c = seed_scenario("g3", Spec::new(&REGIONS)).await;
    let items = converged(&c).await;
    let it = &items["pk=item"];
    assert_eq!(text(it, "foo"), "east");
    assert_eq!(text(it, "bar"), "west");
    // us-west-2's later version won last-writer-wins in us-east-1 and
    // overwrote foo there: that clobber is journaled with both versions.
    let journal = all_journal(&c).await;
    let clobber = journal
        .iter()
        .find(|(_, e)| text(e, "kind") == "clobber")
        .unwrap_or_else(|| panic!("no clobber in {journal:?}"));
    assert_eq!(clobber.0, "us-east-1");
    let Some(AttributeValue::M(versions)) = clobber.1.get("versions") else {
        panic!()
    };
    let Some(AttributeValue::M(old)) = versions.get("old") else {
        panic!()
    };
    assert_eq!(
        old.get("foo"),
        Some(&s("east")),
        "the overwritten version is kept"
    );
}

#[tokio::test]
async fn g1_a_foreign_write_is_detected_once_in_its_own_region() {
    let mut c = Cluster::start(MotoServer::shared(), "g1", Spec::new(&REGIONS)).await;
    let w = c.writer();
    w.insert(
        &region("us-east-1"),
        item(&[
            ("pk", s("u1")),
            ("home_region", s("us-east-1")),
            ("name", s("a")),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    // Replication to the home is slow: the resolver gets there first.
    c.pause("eu-west-1", "us-east-1");
    w.update(&region("eu-west-1"), &key("u1"), |d| {
        d.set("name", s("b"));
    })
    .await
    .unwrap();
    c.settle().await;
    let home = c.read("us-east-1", &key("u1")).await.unwrap();
    assert_eq!(
        text(&home, "name"),
        "b",
        "merged into the home copy by the resolver"
    );
    c.resume("eu-west-1", "us-east-1");
    c.settle().await;
    assert_eq!(c.stats.classes.get("foreign"), Some(&1), "{:?}", c.stats);
    let eu_foreign = c.stats.by_region.get(&("eu-west-1".to_string(), "foreign"));
    assert_eq!(eu_foreign, Some(&1), "detected in the Region that made it");
    // A clean merge (no concurrent edit) overwrote nothing: no journal entry.
    assert!(all_journal(&c).await.is_empty());
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=u1"], "name"), "b");
    // Replicated copies were seen, and ignored, everywhere else.
    assert!(
        c.stats.classes.get("replicated").copied().unwrap_or(0) >= 4,
        "{:?}",
        c.stats
    );
}

#[tokio::test]
async fn g4_concurrent_decrements_in_two_regions_all_count() {
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", r#"{"attributes":{"stock":"counter"}}"#);
    let mut c = Cluster::start(MotoServer::shared(), "g4", spec).await;
    let w = c.writer();
    w.insert(
        &region("us-east-1"),
        item(&[
            ("pk", s("sku")),
            ("home_region", s("us-east-1")),
            ("stock", n(10)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    w.increment(&region("us-east-1"), &key("sku"), "stock", -1)
        .await
        .unwrap();
    w.increment(&region("us-west-2"), &key("sku"), "stock", -2)
        .await
        .unwrap();
    c.settle().await;
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=sku"], "stock"), "7");
}

#[tokio::test]
async fn g5_redelivery_changes_nothing_and_journals_once() {
    let mut spec = Spec::new(&REGIONS);
    spec.deliver_twice = true;
    let mut c = seed_scenario("g5", spec).await;
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=item"], "foo"), "east");
    assert_eq!(text(&items["pk=item"], "bar"), "west");
    let journal = all_journal(&c).await.len();
    assert_eq!(
        journal, c.stats.journal_entries,
        "a second delivery wrote no second entry"
    );
    // Every record again, cut into other batches (as a retry from a failed
    // sequence number does): same state, no new entries, no writes.
    let writes = c.stats.resolver_writes;
    for batch in [1, 2] {
        c.replay(batch).await;
        assert_eq!(converged(&c).await, items);
        assert_eq!(all_journal(&c).await.len(), journal);
        assert_eq!(c.stats.resolver_writes, writes);
    }
}

#[tokio::test]
async fn g6_resolver_writes_stop_when_app_writes_stop() {
    let mut c = seed_scenario("g6", Spec::new(&REGIONS)).await;
    let writes = c.stats.resolver_writes;
    // One conflict (the clobber), one foreign write: at most a few merges.
    assert!((1..=4).contains(&writes), "{:?}", c.stats);
    for _ in 0..3 {
        c.settle().await;
    }
    assert_eq!(c.stats.resolver_writes, writes);
    assert!(c.stats.classes.get("echo").copied().unwrap_or(0) >= 1);
}

#[tokio::test]
async fn delayed_and_reordered_replication_still_converges() {
    let spec = Spec::new(&REGIONS).env(
        "MERGE_RULES",
        r#"{"attributes":{"stock":"counter","tags":"union"}}"#,
    );
    let mut c = Cluster::start(MotoServer::shared(), "delays", spec).await;
    let w = c.writer();
    w.insert(
        &region("us-east-1"),
        item(&[
            ("pk", s("hot")),
            ("home_region", s("us-east-1")),
            ("stock", n(100)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    // us-west-2 is cut off from everyone while all three Regions write.
    for other in ["us-east-1", "eu-west-1"] {
        c.pause("us-west-2", other);
        c.pause(other, "us-west-2");
    }
    for (i, r) in REGIONS.iter().enumerate() {
        for j in 0..3 {
            w.update(&region(r), &key("hot"), |d| {
                d.increment("stock", -1);
                d.set(&format!("by_{}", r.replace('-', "_")), n(j));
                d.set("tags", AttributeValue::Ss(vec![format!("t{i}{j}")]));
            })
            .await
            .unwrap();
        }
        c.settle().await;
    }
    assert!(c.queued() > 0);
    for other in ["us-east-1", "eu-west-1"] {
        c.reorder("us-west-2", other);
        c.resume("us-west-2", other);
        c.resume(other, "us-west-2");
    }
    c.settle().await;
    let items = converged(&c).await;
    let hot = &items["pk=hot"];
    assert_eq!(text(hot, "stock"), "91");
    for r in REGIONS {
        assert_eq!(text(hot, &format!("by_{}", r.replace('-', "_"))), "2");
    }
}

/// The seed's sample event, against moto: Jaws (homed in us-west-1) updated
/// in us-east-1 is merged into us-west-1's copy and journaled once.
#[tokio::test]
async fn the_seed_sample_event_reconciles_jaws_into_its_home() {
    use aws_sdk_dynamodb::types::ScalarAttributeType as T;
    let mut spec =
        Spec::new(&["us-east-1", "us-west-1"]).env("HOME_STRATEGY", "attribute:src_region");
    spec.partition_key = ("year", T::N);
    spec.sort_key = Some(("title", T::S));
    let c = Cluster::start(MotoServer::shared(), "seed", spec).await;
    let event_text =
        std::fs::read_to_string(homeward_tests::workspace_root().join("events/foreign-write.json"))
            .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&event_text).unwrap();
    // us-west-1 holds Jaws as it was before the update (the old image).
    let old: Item =
        serde_json::from_value(raw["Records"][0]["dynamodb"]["OldImage"].clone()).unwrap();
    homeward::Store::put(
        c.store(),
        &region("us-west-1"),
        &old,
        &homeward::PutCondition::NotExists,
    )
    .await
    .unwrap();
    let event: resolver::StreamEvent = serde_json::from_str(&event_text).unwrap();
    let resolver = resolver::Resolver::new(
        c.config(&region("us-east-1")),
        c.store().clone(),
        c.journal_store(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for _ in 0..2 {
        let (response, _) = resolver.handle(&event, deadline).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let jaws_key = Item::from(std::collections::HashMap::from([
        ("year".to_string(), n(1975)),
        ("title".to_string(), s("Jaws")),
    ]));
    let home = c.read("us-west-1", &jaws_key).await.unwrap();
    assert_eq!(text(&home, "rating"), "8");
    assert_eq!(text(&home, "src_region"), "us-west-1");
    // Nothing was overwritten (us-west-1 had not changed Jaws): no entry.
    assert!(c.journal("us-east-1").await.is_empty());
}

/// G7: a batch with poison records quarantines exactly those (journaled
/// with their images and reason, acknowledged) and processes the rest.
#[tokio::test]
async fn g7_poison_records_are_quarantined_alone() {
    use aws_sdk_dynamodb::types::ScalarAttributeType as T;
    let mut spec =
        Spec::new(&["us-east-1", "eu-west-1"]).env("HOME_STRATEGY", "attribute:src_region");
    spec.partition_key = ("year", T::N);
    spec.sort_key = Some(("title", T::S));
    let c = Cluster::start(MotoServer::shared(), "g7", spec).await;
    let event_text =
        std::fs::read_to_string(homeward_tests::workspace_root().join("events/malformed.json"))
            .unwrap();
    let event: resolver::StreamEvent = serde_json::from_str(&event_text).unwrap();
    let resolver = resolver::Resolver::new(
        c.config(&region("eu-west-1")),
        c.store().clone(),
        c.journal_store(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (response, summary) = resolver.handle(&event, deadline).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.by_class.get("quarantined"), Some(&2));
    assert_eq!(summary.writes, 2);
    let mut quarantined: Vec<String> = c
        .journal("eu-west-1")
        .await
        .iter()
        .filter(|e| text(e, "kind") == "quarantine")
        .map(|e| text(e, "sk"))
        .collect();
    quarantined.sort();
    assert_eq!(
        quarantined,
        vec![
            "quarantine#seq#4000000000000000010",
            "quarantine#seq#4000000000000000011"
        ]
    );
    for (title, rating) in [("Lifeboat", "9"), ("Titanic", "6")] {
        let k = Item::from(std::collections::HashMap::from([
            (
                "year".to_string(),
                n(if title == "Lifeboat" { 1944 } else { 1997 }),
            ),
            ("title".to_string(), s(title)),
        ]));
        let home = c.read("us-east-1", &k).await.unwrap();
        assert_eq!(text(&home, "rating"), rating, "{title}");
    }
}

/// A foreign write that conflicts with a concurrent edit at home is merged
/// by the rule and journaled with the merge's explanation.
#[tokio::test]
async fn a_conflicting_foreign_write_is_journaled_with_its_explanation() {
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", r#"{"attributes":{"score":"max"}}"#);
    let mut c = Cluster::start(MotoServer::shared(), "conflict", spec).await;
    let w = c.writer();
    w.insert(
        &region("us-east-1"),
        item(&[
            ("pk", s("p")),
            ("home_region", s("us-east-1")),
            ("score", n(1)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    for other in ["us-east-1", "us-west-2"] {
        c.pause("eu-west-1", other);
        c.pause(other, "eu-west-1");
    }
    w.update(&region("us-east-1"), &key("p"), |d| {
        d.set("score", n(5));
    })
    .await
    .unwrap();
    w.update(&region("eu-west-1"), &key("p"), |d| {
        d.set("score", n(3));
    })
    .await
    .unwrap();
    c.settle().await;
    let entries = c.journal("eu-west-1").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(text(&entries[0], "kind"), "foreign");
    let Some(AttributeValue::L(explanation)) = entries[0].get("explanation") else {
        panic!()
    };
    let Some(AttributeValue::M(first)) = explanation.first() else {
        panic!()
    };
    let first = Item::from(first.clone());
    assert!(text(&first, "decision").contains("decided by rule max"));
    // Each decision names the version whose merge made it: the foreign write.
    let new_dot = match entries[0].get("versions") {
        Some(AttributeValue::M(v)) => match v.get("new") {
            Some(AttributeValue::M(new)) => match new.get("_hw") {
                Some(AttributeValue::M(stamp)) => match stamp.get("dot") {
                    Some(AttributeValue::S(dot)) => dot.clone(),
                    other => panic!("no dot in the new version's stamp: {other:?}"),
                },
                other => panic!("no stamp in the new version: {other:?}"),
            },
            other => panic!("no new version: {other:?}"),
        },
        other => panic!("no versions: {other:?}"),
    };
    assert_eq!(text(&first, "with"), new_dot);
    for other in ["us-east-1", "us-west-2"] {
        c.resume("eu-west-1", other);
        c.resume(other, "eu-west-1");
    }
    c.settle().await;
    assert_eq!(text(&converged(&c).await["pk=p"], "score"), "5");
}

/// `reject`: the home's values win everywhere; the foreign write is kept in
/// the journal. `journal-only`: the write stands, and is journaled.
#[tokio::test]
async fn reject_and_journal_only_actions() {
    for (action, expected_name, expected_action) in [
        ("reject", "home", "rejected"),
        ("journal-only", "away", "journaled"),
    ] {
        let spec = Spec::new(&REGIONS).env("ACTION", action);
        let mut c = Cluster::start(MotoServer::shared(), action, spec).await;
        let w = c.writer();
        w.insert(
            &region("us-east-1"),
            item(&[
                ("pk", s("r")),
                ("home_region", s("us-east-1")),
                ("name", s("home")),
            ]),
        )
        .await
        .unwrap();
        c.settle().await;
        c.pause("eu-west-1", "us-east-1");
        w.update(&region("eu-west-1"), &key("r"), |d| {
            d.set("name", s("away"));
            d.set("extra", s("x"));
        })
        .await
        .unwrap();
        c.settle().await;
        c.resume("eu-west-1", "us-east-1");
        c.settle().await;
        let items = converged(&c).await;
        assert_eq!(text(&items["pk=r"], "name"), expected_name, "{action}");
        assert_eq!(
            items["pk=r"].contains_key("extra"),
            action != "reject",
            "{action}"
        );
        let journal = c.journal("eu-west-1").await;
        assert_eq!(journal.len(), 1, "{action}: {journal:?}");
        assert_eq!(text(&journal[0], "action"), expected_action);
        let Some(AttributeValue::M(versions)) = journal[0].get("versions") else {
            panic!()
        };
        let Some(AttributeValue::M(new)) = versions.get("new") else {
            panic!()
        };
        assert_eq!(
            new.get("name"),
            Some(&s("away")),
            "the foreign write is kept in the journal"
        );
    }
}

/// "Has my write reached Region X": the dot a write returned is found in
/// each Region's copy once replication brings it, and not before.
#[tokio::test]
async fn a_writer_can_ask_which_regions_its_write_has_reached() {
    let mut c = Cluster::start(MotoServer::shared(), "replicated", Spec::new(&REGIONS)).await;
    let w = c.writer();
    let regions: Vec<_> = REGIONS.iter().map(|r| region(r)).collect();
    let k = key("r");
    let v = w
        .insert(
            &region("us-east-1"),
            item(&[("pk", s("r")), ("home_region", s("us-east-1"))]),
        )
        .await
        .unwrap();
    let dot = v.header.dot();
    let now = w.replicated(&k, &dot, &regions).await.unwrap();
    assert_eq!(
        now.values().copied().collect::<Vec<_>>(),
        vec![false, true, false],
        "only us-east-1 has it yet (eu-west-1, us-east-1, us-west-2): {now:?}"
    );
    c.partition(&["eu-west-1"]);
    c.settle().await;
    let short = std::time::Duration::from_millis(200);
    let partial = w.wait_replicated(&k, &dot, &regions, short).await.unwrap();
    assert!(partial[&region("us-west-2")]);
    assert!(!partial[&region("eu-west-1")], "cut off: not reached");
    c.heal_all();
    let (answer, ()) = tokio::join!(
        w.wait_replicated(&k, &dot, &regions, std::time::Duration::from_secs(20)),
        c.settle()
    );
    assert!(answer.unwrap().values().all(|r| *r));
    // A later write of another Region does not count as this one.
    let other = w
        .update(&region("us-west-2"), &k, |d| {
            d.set("x", s("1"));
        })
        .await
        .unwrap();
    let later = w
        .replicated(&k, &other.header.dot(), &regions)
        .await
        .unwrap();
    assert!(later[&region("us-west-2")] && !later[&region("us-east-1")]);
}

/// Replication lag per Region pair, measured by each Region's resolver from
/// what replication brought it: the stream's time of arrival (moto's
/// server clock) less the write's time. A link held back 2.5 s shows it.
#[tokio::test]
async fn the_resolvers_measure_replication_lag_per_region_pair() {
    let mut c = Cluster::start(MotoServer::shared(), "lag", Spec::new(&REGIONS)).await;
    let w = c.writer();
    c.pause("us-east-1", "eu-west-1");
    w.insert(
        &region("us-east-1"),
        item(&[("pk", s("l")), ("home_region", s("us-east-1"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    c.resume("us-east-1", "eu-west-1");
    c.settle().await;
    let lag = |from: &str, to: &str| {
        c.stats
            .lag_max
            .get(&(from.to_owned(), to.to_owned()))
            .copied()
    };
    let held = lag("us-east-1", "eu-west-1").expect("eu-west-1 measured us-east-1");
    assert!(
        (2..=4).contains(&held),
        "held back 2.5 s, measured {held} s"
    );
    let direct = lag("us-east-1", "us-west-2").expect("us-west-2 measured us-east-1");
    assert!(direct <= 1, "not held back, measured {direct} s");
    assert_eq!(
        lag("us-east-1", "us-east-1"),
        None,
        "no lag from a Region to itself"
    );
}

/// A cluster whose item `pk` is homed in us-east-1 with `attr` = `value`,
/// replicated everywhere.
async fn homed(test: &str, spec: Spec, pk: &str, attr: &str, value: AttributeValue) -> Cluster {
    let mut c = Cluster::start(MotoServer::shared(), test, spec).await;
    c.writer()
        .insert(
            &region("us-east-1"),
            item(&[
                ("pk", s(pk)),
                ("home_region", s("us-east-1")),
                (attr, value),
            ]),
        )
        .await
        .unwrap();
    c.settle().await;
    c
}

/// Two concurrent edits of `attr` (us-east-1 first, us-west-2 a little
/// later, neither seeing the other), settled everywhere: what every
/// Region shows.
async fn concurrent_edit(
    c: &mut Cluster,
    pk: &str,
    attr: &str,
    east: AttributeValue,
    west: AttributeValue,
) -> Item {
    let w = c.writer();
    c.partition(&["us-west-2"]);
    w.update(&region("us-east-1"), &key(pk), |d| {
        d.set(attr, east.clone());
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.update(&region("us-west-2"), &key(pk), |d| {
        d.set(attr, west.clone());
    })
    .await
    .unwrap();
    c.heal_all();
    c.settle().await;
    converged(c).await[&format!("pk={pk}")].clone()
}

/// `home` decides by the item's home under every strategy, not only when
/// the stamp records one: here the home attribute and the key's prefix
/// (it used to fall back to last-writer-wins, which picks us-west-2's
/// later edit).
#[tokio::test]
async fn the_home_rule_follows_the_items_home_under_every_strategy() {
    let rules = r#"{"attributes":{"note":"home"}}"#;
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", rules);
    let mut c = homed("home-rule", spec, "h", "note", s("0")).await;
    let it = concurrent_edit(&mut c, "h", "note", s("from home"), s("later, elsewhere")).await;
    assert_eq!(
        text(&it, "note"),
        "from home",
        "the home attribute's Region wins"
    );

    let prefixed = Spec::new(&REGIONS)
        .env("MERGE_RULES", rules)
        .env("HOME_STRATEGY", "key-prefix:pk");
    let mut c = Cluster::start(MotoServer::shared(), "home-rule-prefix", prefixed).await;
    let w = c.writer();
    let pk = "us-east-1#u";
    w.insert(
        &region("us-east-1"),
        item(&[("pk", s(pk)), ("note", s("0"))]),
    )
    .await
    .unwrap();
    c.settle().await;
    let it = concurrent_edit(&mut c, pk, "note", s("from home"), s("later, elsewhere")).await;
    assert_eq!(
        text(&it, "note"),
        "from home",
        "the key prefix's Region wins"
    );
}

/// `min` against moto: the smaller of two concurrent edits, everywhere,
/// and the decision is journaled.
#[tokio::test]
async fn the_min_rule_keeps_the_smaller_of_concurrent_edits() {
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", r#"{"attributes":{"price":"min:N"}}"#);
    let mut c = homed("min-rule", spec, "p", "price", n(10)).await;
    let it = concurrent_edit(&mut c, "p", "price", n(3), n(7)).await;
    assert_eq!(text(&it, "price"), "3");
    let explained = all_journal(&c).await.iter().any(|(_, e)| {
        matches!(e.get("explanation"), Some(AttributeValue::L(l)) if format!("{l:?}").contains("decided by rule min"))
    });
    assert!(explained, "the rule's decision is journaled");
}

/// A custom rule from `homeward::custom_rules` (the example `longest`)
/// decides a conflict in the resolvers against moto, as configured by
/// `MERGE_RULES` alone.
#[tokio::test]
async fn a_custom_rule_decides_concurrent_edits() {
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", r#"{"attributes":{"note":"longest"}}"#);
    let mut c = homed("custom-rule", spec, "c", "note", s("0")).await;
    let it = concurrent_edit(&mut c, "c", "note", s("the longer of the two"), s("short")).await;
    assert_eq!(text(&it, "note"), "the longer of the two");
}
