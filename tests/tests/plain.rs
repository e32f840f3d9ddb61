//! Plain writers beside Homeward's (a boto3 `PutItem` or `UpdateItem`, a
//! console edit): on moto, through the simulator's cluster with the
//! template's filters. Each test names the defect it guards; each failed
//! before plain writes were adopted.

use homeward::Schema;
use homeward_sim::filter::Filters;
use homeward_sim::plain::RawWrite;
use homeward_tests::cluster::{Cluster, Spec};
use homeward_tests::events::foreign_conflict_in;
use homeward_tests::fixtures::{converged, item, key, region, s, text, REGIONS};
use homeward_tests::MotoServer;
use serde_dynamo::{AttributeValue, Item};

/// Three Regions behind the filters template.yaml deploys.
fn spec() -> Spec {
    let mut spec = Spec::new(&REGIONS);
    spec.filters = Filters::deployed(&REGIONS);
    spec
}

async fn homed(c: &Cluster, pk: &str, home: &str) {
    c.writer()
        .insert(
            &region(home),
            item(&[
                ("pk", s(pk)),
                ("home_region", s(home)),
                ("a", s("a0")),
                ("b", s("b0")),
            ]),
        )
        .await
        .unwrap();
}

/// Every copy's stamp accounts for every attribute (strict decode).
fn whole(schema: &Schema, items: &std::collections::BTreeMap<String, Item>) {
    for (k, item) in items {
        schema
            .decode(item)
            .unwrap_or_else(|e| panic!("{k}: the stamp is not whole: {e}"));
    }
}

/// The journal entries of `kind` in every Region, as (old, new) images.
async fn entries(c: &Cluster, kind: &str) -> Vec<(Option<Item>, Option<Item>)> {
    let mut out = Vec::new();
    for r in REGIONS {
        for e in c.journal(r).await {
            if text(&e, "kind") != kind {
                continue;
            }
            let Some(AttributeValue::M(versions)) = e.get("versions") else {
                panic!("an entry without versions");
            };
            let image = |name: &str| match versions.get(name) {
                Some(AttributeValue::M(m)) => Some(Item::from(m.clone())),
                _ => None,
            };
            out.push((image("old"), image("new")));
        }
    }
    out
}

/// Defect: one `SET new_attr` by a plain UpdateItem made every later
/// stamped write of the item fail (`UndottedAttribute`), and the resolver's
/// merges into that home copy failed too: the item was stuck.
#[tokio::test]
async fn a_plain_set_never_gets_an_item_stuck() {
    let mut c = Cluster::start(MotoServer::shared(), "plain-stuck", spec()).await;
    homed(&c, "p", "us-east-1").await;
    c.settle().await;
    let east = region("us-east-1");
    c.raw_write(
        &east,
        &RawWrite::set(key("p"), "added", s("by the console")),
    )
    .await
    .unwrap();
    c.settle().await;
    let w = c.writer();
    // A foreign write (the resolver merges it into the home copy) and a
    // home write: both read the item with the plain attribute.
    w.update(&region("us-west-2"), &key("p"), |d| {
        d.set("a", s("west"));
    })
    .await
    .expect("a stamped write after a plain one");
    w.update(&east, &key("p"), |d| {
        d.set("b", s("east"));
    })
    .await
    .expect("a stamped write after a plain one");
    c.settle().await;
    let items = converged(&c).await;
    let p = &items["pk=p"];
    assert_eq!(text(p, "added"), "by the console");
    assert_eq!(text(p, "a"), "west");
    assert_eq!(text(p, "b"), "east");
    whole(&c.schema, &items);
}

/// Defect: an unattributed overwrite was journaled with its new image
/// only: the version it overwrote was gone.
#[tokio::test]
async fn an_unattributed_overwrite_is_journaled_with_both_images() {
    let mut c = Cluster::start(MotoServer::shared(), "plain-images", spec()).await;
    homed(&c, "p", "us-east-1").await;
    c.settle().await;
    c.raw_write(
        &region("us-west-2"),
        &RawWrite::set(key("p"), "a", s("plain")),
    )
    .await
    .unwrap();
    c.settle().await;
    let found = entries(&c, "unattributed").await;
    assert!(!found.is_empty(), "the plain write was journaled");
    for (old, new) in &found {
        let (old, new) = (old.as_ref().expect("the old image"), new.as_ref().unwrap());
        assert_eq!(text(old, "a"), "a0");
        assert_eq!(text(new, "a"), "plain");
    }
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=p"], "a"), "plain");
}

/// Defect: the template's filters dropped a plain UpdateItem on an item the
/// resolver wrote last (its stamp names the home and `by = resolver`) in
/// every Region: nothing saw it.
#[tokio::test]
async fn a_plain_update_of_an_item_the_resolver_wrote_last_is_seen() {
    let (mut c, _) = foreign_conflict_in(spec(), "plain-echo", "p", "west").await;
    c.settle().await;
    let east = region("us-east-1");
    let before = c.read("us-east-1", &key("p")).await.unwrap();
    let stamp = c.schema.decode(&before).unwrap();
    assert_eq!(
        stamp.header.by.as_str(),
        "resolver",
        "the resolver wrote last"
    );
    assert!(entries(&c, "unattributed").await.is_empty());
    c.raw_write(&east, &RawWrite::set(key("p"), "a", s("plain")))
        .await
        .unwrap();
    c.settle().await;
    let found = entries(&c, "unattributed").await;
    assert!(
        !found.is_empty(),
        "some Region's resolver saw the plain write"
    );
    // The change hid under the old dot: the resolver's adoption gives it
    // its own, so every copy's stamp accounts for it again.
    let items = converged(&c).await;
    assert_eq!(text(&items["pk=p"], "a"), "plain");
    whole(&c.schema, &items);
    let now = c.schema.decode(&items["pk=p"]).unwrap();
    assert!(now.known.keys().any(|r| r.as_str() == "unattributed"));
}

/// Defect: a stale stamp naming us-east-1 (copied by a plain write in
/// us-west-2 before us-east-1's newer version got there) was classified in
/// us-east-1 as a home write, and us-east-1's newer edit, which the plain
/// write replaced everywhere by last-writer-wins, was lost.
#[tokio::test]
async fn a_stale_stamp_never_passes_for_a_home_write() {
    let mut c = Cluster::start(MotoServer::shared(), "plain-stale", spec()).await;
    homed(&c, "p", "us-east-1").await;
    c.settle().await;
    c.partition(&["us-west-2"]);
    c.writer()
        .update(&region("us-east-1"), &key("p"), |d| {
            d.set("a", s("east, newer"));
        })
        .await
        .unwrap();
    c.raw_write(
        &region("us-west-2"),
        &RawWrite::set(key("p"), "b", s("plain")),
    )
    .await
    .unwrap();
    c.heal(&["us-west-2"]);
    c.settle().await;
    let items = converged(&c).await;
    let p = &items["pk=p"];
    assert_eq!(text(p, "a"), "east, newer", "the home's edit came back");
    assert_eq!(text(p, "b"), "plain");
    assert!(!entries(&c, "unattributed").await.is_empty());
}

/// Defect: an unattributed write that overwrote a concurrent stamped edit
/// was classified unattributed before the clobber check, and the stamped
/// edit was lost.
#[tokio::test]
async fn a_stamped_edit_a_plain_put_clobbered_is_merged_back() {
    let mut c = Cluster::start(MotoServer::shared(), "plain-clobber", spec()).await;
    homed(&c, "p", "us-east-1").await;
    c.settle().await;
    c.partition(&["us-east-1"]);
    c.writer()
        .update(&region("us-east-1"), &key("p"), |d| {
            d.set("a", s("east"));
        })
        .await
        .unwrap();
    // A batch job in us-west-2 puts the whole item, without a stamp.
    c.raw_write(
        &region("us-west-2"),
        &RawWrite::Put(item(&[("pk", s("p")), ("c", s("plain"))])),
    )
    .await
    .unwrap();
    c.heal(&["us-east-1"]);
    c.settle().await;
    let items = converged(&c).await;
    let p = &items["pk=p"];
    assert_eq!(text(p, "a"), "east", "the stamped edit came back");
    assert_eq!(text(p, "c"), "plain");
    let found = entries(&c, "unattributed").await;
    assert!(found
        .iter()
        .any(|(old, _)| old.as_ref().is_some_and(|o| text(o, "a") == "east")));
}
