//! The conflict model's named scenarios, step by step, on the pure core.

use std::collections::BTreeMap;

use homeward::edit::{apply, empty_version, restamp, WriteContext};
use homeward::{
    Decision, Draft, Merger, Region, Registry, Rules, Schema, Side, Version, WriterKind,
};
use serde_dynamo::AttributeValue;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

struct World {
    merger: Merger,
    schema: Schema,
    clock: u64,
}

impl World {
    fn new(rules: &str) -> Self {
        World {
            merger: Merger::new(Rules::from_json(rules, &Registry::new()).unwrap()),
            schema: Schema::new("pk", None),
            clock: 1_000,
        }
    }

    fn ctx(&mut self, region: &str, by: WriterKind) -> WriteContext {
        self.clock += 10;
        WriteContext {
            region: Region::parse(region).unwrap(),
            time_ms: self.clock,
            nonce: self.clock as u32 * 7919,
            by,
        }
    }

    fn write(
        &mut self,
        base: Option<&Version>,
        region: &str,
        edit: impl FnOnce(&mut Draft),
    ) -> Version {
        let c = self.ctx(region, WriterKind::App);
        let key: BTreeMap<String, AttributeValue> = [("pk".to_string(), s("item"))].into();
        let base = base.cloned().unwrap_or_else(|| empty_version(key, &c));
        let mut draft = Draft::new(base.values());
        edit(&mut draft);
        apply(&base, &draft, &c, &self.merger, &self.schema, None).unwrap()
    }

    fn resolve(&mut self, home: &Version, foreign: &Version, region: &str) -> Version {
        let merged = self.merger.merge(home, foreign).version;
        let c = self.ctx(region, WriterKind::Resolver);
        restamp(merged, &c, &self.merger)
    }
}

/// The seed: foo changed in us-east-1, bar in us-west-2, concurrently. Last
/// writer wins would keep one; merge keeps both, and says why.
#[test]
fn concurrent_edits_of_different_attributes_both_survive() {
    let mut w = World::new("{}");
    let base = w.write(None, "us-east-1", |d| {
        d.set("foo", s("0")).set("bar", s("0"));
    });
    let east = w.write(Some(&base), "us-east-1", |d| {
        d.set("foo", s("east"));
    });
    let west = w.write(Some(&base), "us-west-2", |d| {
        d.set("bar", s("west"));
    });
    let merged = w.merger.merge(&east, &west);
    assert_eq!(merged.version.value("foo"), Some(s("east")));
    assert_eq!(merged.version.value("bar"), Some(s("west")));
    let decisions: BTreeMap<_, _> = merged.explanation.attributes.iter().cloned().collect();
    assert!(matches!(
        decisions["foo"],
        Decision::Newer {
            winner: Side::Left,
            ..
        }
    ));
    assert!(matches!(
        decisions["bar"],
        Decision::Newer {
            winner: Side::Right,
            ..
        }
    ));
    assert!(!merged.explanation.has_conflict());
}

/// stock 10, -1 in one Region and -2 in another, concurrently: 7.
#[test]
fn concurrent_decrements_all_count() {
    let mut w = World::new(r#"{"attributes":{"stock":"counter"}}"#);
    let base = w.write(None, "us-east-1", |d| {
        d.set("stock", AttributeValue::N("10".into()));
    });
    let east = w.write(Some(&base), "us-east-1", |d| {
        d.increment("stock", -1);
    });
    let west = w.write(Some(&base), "us-west-2", |d| {
        d.increment("stock", -2);
    });
    assert_eq!(
        w.merger.merge(&east, &west).version.value("stock"),
        Some(AttributeValue::N("7".into()))
    );
}

/// The fork hazard: L writes O; R's concurrent N replaces O in L by
/// last-writer-wins before anything merged O back; L then writes V on top of
/// N. O and V are both L writes with the same counter; a version vector
/// would call O included in V. Dots with nonces keep them apart.
#[test]
fn the_fork_hazard_loses_nothing() {
    let mut w = World::new(r#"{"attributes":{"stock":"counter"}}"#);
    let base = w.write(None, "eu-west-1", |d| {
        d.set("a", s("0"))
            .set("stock", AttributeValue::N("10".into()));
    });
    let o = w.write(Some(&base), "us-east-1", |d| {
        d.set("a", s("from O"));
        d.increment("stock", -1);
    });
    let n = w.write(Some(&base), "us-west-2", |d| {
        d.set("b", s("from N"));
        d.increment("stock", -2);
    });
    // N wins last-writer-wins in us-east-1; V is written on N.
    let v = w.write(Some(&n), "us-east-1", |d| {
        d.set("c", s("from V"));
        d.increment("stock", -3);
    });
    assert_eq!(o.header.tick.counter, v.header.tick.counter, "a real fork");
    assert!(!v.includes(&o));
    // The resolver merges the clobbered O back into the latest version.
    let home = w.resolve(&v, &o, "eu-west-1");
    assert_eq!(home.value("a"), Some(s("from O")));
    assert_eq!(home.value("b"), Some(s("from N")));
    assert_eq!(home.value("c"), Some(s("from V")));
    assert_eq!(home.value("stock"), Some(AttributeValue::N("4".into())));
}

/// The same attribute edited concurrently: the rule decides, the edits are
/// kept, and a later write that has seen both replaces them.
#[test]
fn rules_decide_real_conflicts_and_later_writes_settle_them() {
    let mut w = World::new(r#"{"attributes":{"rating":"max"}}"#);
    let base = w.write(None, "us-east-1", |d| {
        d.set("rating", AttributeValue::N("3".into()));
    });
    let east = w.write(Some(&base), "us-east-1", |d| {
        d.set("rating", AttributeValue::N("5".into()));
    });
    let west = w.write(Some(&base), "us-west-2", |d| {
        d.set("rating", AttributeValue::N("4".into()));
    });
    let merged = w.merger.merge(&west, &east);
    assert_eq!(
        merged.version.value("rating"),
        Some(AttributeValue::N("5".into()))
    );
    let (_, decision) = &merged.explanation.attributes[0];
    assert!(
        decision.to_string().contains("decided by rule max"),
        "{decision}"
    );
    let settled = w.write(Some(&merged.version), "eu-west-1", |d| {
        d.set("rating", AttributeValue::N("1".into()));
    });
    let again = w.merger.merge(&settled, &east);
    assert_eq!(
        again.version.value("rating"),
        Some(AttributeValue::N("1".into()))
    );
    assert!(!again.explanation.has_conflict());
}

/// A removal concurrent with an update: lww by write time decides.
#[test]
fn removals_are_tombstones() {
    let mut w = World::new("{}");
    let base = w.write(None, "us-east-1", |d| {
        d.set("a", s("x"));
    });
    let removed = w.write(Some(&base), "us-east-1", |d| {
        d.remove("a");
    });
    assert_eq!(removed.value("a"), None);
    assert_eq!(w.merger.merge(&base, &removed).version.value("a"), None);
    let updated = w.write(Some(&base), "us-west-2", |d| {
        d.set("a", s("later"));
    });
    assert_eq!(
        w.merger.merge(&removed, &updated).version.value("a"),
        Some(s("later"))
    );
}

#[test]
fn stamp_size_of_a_30_attribute_item_in_3_regions() {
    let (x, y) = homeward::fixtures::concurrent_pair();
    let merger = Merger::new(homeward::fixtures::rules());
    let merged = merger.merge(&x, &y).version;
    let schema = homeward::fixtures::schema();
    let stamp = homeward::stamp::encode_stamp(&merged);
    let bytes = homeward::size::value_size(&stamp);
    let item = homeward::size::item_size(&schema.encode(&merged));
    println!("stamp: {bytes} bytes of a {item}-byte item");
    // A regression guard, not a benchmark: the README reports the figure.
    assert!(bytes < 1024, "stamp grew to {bytes} bytes");
}
