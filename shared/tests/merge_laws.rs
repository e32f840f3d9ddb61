//! Property tests of merge over random multi-Region histories of one item.
//!
//! A history is a random sequence of app writes in three Regions, copies
//! between Regions by last-writer-wins (which is how DynamoDB global tables
//! replicate, and what makes the forks of the conflict model happen), and
//! resolver merges. Every version the history makes is kept; the laws are
//! checked on samples of them, and the final merge of everything is checked
//! against the ground truth the history recorded (which edits were made,
//! which later edits knew them, every counter increment).

use std::collections::BTreeMap;

use homeward::edit::{apply, empty_version, restamp, WriteContext};
use homeward::version::Register;
use homeward::{Dot, Draft, Merger, Region, Registry, Rules, Schema, Version, WriterKind};
use proptest::prelude::*;
use serde_dynamo::AttributeValue;

const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
const PLAIN: [&str; 5] = ["a", "b", "c", "tags", "rating"];

#[derive(Debug, Clone)]
enum Op {
    /// App write in a Region: set or remove plain attributes, add to stock.
    Write {
        region: usize,
        sets: Vec<(usize, u8)>,
        increment: Option<i64>,
    },
    /// Global-table replication: the later version replaces the other.
    Replicate { from: usize, to: usize },
    /// A resolver in `to` writes merge(to, from) with a fresh dot.
    Resolve { from: usize, to: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, prop::collection::vec((0..PLAIN.len(), 0..6u8), 0..3), prop::option::of(-3..4i64))
            .prop_map(|(region, sets, increment)| Op::Write { region, sets, increment }),
        3 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Replicate { from, to }),
        2 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Resolve { from, to }),
    ]
}

fn value(attr: &str, choice: u8) -> Option<AttributeValue> {
    if choice == 0 {
        return None; // remove
    }
    Some(match attr {
        "tags" => AttributeValue::Ss(vec![format!("t{choice}"), format!("t{}", choice / 2)]),
        "rating" => AttributeValue::N(format!("{}", choice * 3 % 7)),
        _ => AttributeValue::S(format!("v{choice}")),
    })
}

struct Edit {
    attr: String,
    dot: Dot,
    /// The version the edit's write made (what it knew).
    made: usize,
}

struct History {
    merger: Merger,
    versions: Vec<Version>,
    edits: Vec<Edit>,
    increments: i64,
}

fn merger(window: usize) -> Merger {
    let rules = Rules::from_json(
        r#"{"attributes":{"stock":"counter","tags":"union","rating":"max"}}"#,
        &Registry::new(),
    )
    .unwrap();
    Merger {
        window,
        ..Merger::new(rules)
    }
}

fn run(ops: &[Op], window: usize) -> History {
    let merger = merger(window);
    let schema = Schema::new("pk", None);
    let regions: Vec<Region> = REGIONS.iter().map(|r| Region::parse(r).unwrap()).collect();
    let key: BTreeMap<String, AttributeValue> =
        [("pk".to_string(), AttributeValue::S("item".into()))].into();
    let mut replicas: Vec<Option<Version>> = vec![None, None, None];
    let mut h = History {
        merger: merger.clone(),
        versions: Vec::new(),
        edits: Vec::new(),
        increments: 0,
    };
    for (clock, op) in ops.iter().enumerate() {
        let ctx = |region: usize, by| WriteContext {
            region: regions[region].clone(),
            time_ms: 1_000 + clock as u64,
            nonce: (clock as u32).wrapping_mul(2_654_435_761),
            by,
        };
        match op {
            Op::Write {
                region,
                sets,
                increment,
            } => {
                let c = ctx(*region, WriterKind::App);
                let base = replicas[*region]
                    .clone()
                    .unwrap_or_else(|| empty_version(key.clone(), &c));
                let mut draft = Draft::new(base.values());
                for (attr, choice) in sets {
                    match value(PLAIN[*attr], *choice) {
                        Some(v) => draft.set(PLAIN[*attr], v),
                        None => draft.remove(PLAIN[*attr]),
                    };
                }
                if let Some(delta) = increment {
                    draft.increment("stock", *delta);
                    h.increments += delta;
                }
                let next = apply(&base, &draft, &c, &merger, &schema, None).unwrap();
                for (attr, reg) in &next.attrs {
                    if let Register::One(s) = reg {
                        if s.at.dot == next.header.dot() {
                            h.edits.push(Edit {
                                attr: attr.clone(),
                                dot: s.at.dot.clone(),
                                made: h.versions.len(),
                            });
                        }
                    }
                }
                replicas[*region] = Some(next.clone());
                h.versions.push(next);
            }
            Op::Replicate { from, to } => {
                if let Some(v) = replicas[*from].clone() {
                    let wins = match &replicas[*to] {
                        None => true,
                        Some(old) => {
                            (v.header.time_ms, &v.header.origin)
                                > (old.header.time_ms, &old.header.origin)
                        }
                    };
                    if wins {
                        replicas[*to] = Some(v);
                    }
                }
            }
            Op::Resolve { from, to } => {
                if let (Some(a), Some(b)) = (replicas[*to].clone(), replicas[*from].clone()) {
                    let merged = merger.merge(&a, &b).version;
                    let next = restamp(merged, &ctx(*to, WriterKind::Resolver), &merger);
                    replicas[*to] = Some(next.clone());
                    h.versions.push(next);
                }
            }
        }
    }
    h
}

fn all_merged(h: &History) -> Option<Version> {
    let mut it = h.versions.iter();
    let first = it.next()?.clone();
    Some(it.fold(first, |acc, v| h.merger.merge(&acc, v).version))
}

fn history() -> impl Strategy<Value = (Vec<Op>, Vec<(usize, usize, usize)>)> {
    (
        prop::collection::vec(op(), 1..40),
        prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
    ))]

    /// merge is commutative, associative and idempotent, and the result
    /// knows both inputs.
    #[test]
    fn merge_is_a_join((ops, picks) in history()) {
        let h = run(&ops, 64);
        prop_assume!(!h.versions.is_empty());
        let n = h.versions.len();
        for (i, j, k) in picks {
            let (x, y, z) = (&h.versions[i % n], &h.versions[j % n], &h.versions[k % n]);
            let m = &h.merger;
            let xy = m.merge(x, y).version;
            prop_assert_eq!(&xy, &m.merge(y, x).version, "commutative");
            prop_assert_eq!(m.merge(&xy, z).version, m.merge(x, &m.merge(y, z).version).version, "associative");
            prop_assert_eq!(&m.merge(x, x).version, x, "idempotent");
            prop_assert_eq!(&m.merge(&xy, y).version, &xy, "idempotent after a merge");
            prop_assert!(xy.includes(x) && xy.includes(y), "merge knows both dots");
        }
    }

    /// A version that includes another wins every attribute against it.
    #[test]
    fn inclusion_wins((ops, picks) in history()) {
        let h = run(&ops, 64);
        prop_assume!(!h.versions.is_empty());
        let n = h.versions.len();
        for (i, j, _) in picks {
            let (x, y) = (&h.versions[i % n], &h.versions[j % n]);
            if y.includes(x) {
                let merged = h.merger.merge(x, y).version;
                prop_assert_eq!(merged.values(), y.values());
                prop_assert_eq!(&merged.attrs, &y.attrs);
            }
        }
    }

    /// The merge of everything keeps every edit that no causally later edit
    /// replaced, and every counter increment of every Region.
    #[test]
    fn nothing_is_lost((ops, _) in history()) {
        let h = run(&ops, 64);
        let Some(all) = all_merged(&h) else { return Ok(()) };
        for e in &h.edits {
            let kept = all
                .attrs
                .get(&e.attr)
                .is_some_and(|r| r.siblings().iter().any(|s| s.at.dot == e.dot));
            let superseded = h.edits.iter().any(|later| {
                later.attr == e.attr && later.dot != e.dot && h.versions[later.made].knows(&e.dot)
            });
            prop_assert!(kept || superseded, "edit of `{}` at {} lost", e.attr, e.dot);
        }
        let stock = all.value("stock").map(|v| match v {
            AttributeValue::N(n) => n.parse::<i64>().unwrap(),
            other => panic!("stock is {other:?}"),
        });
        prop_assert_eq!(stock.unwrap_or(0), h.increments);
    }

    /// With a small window (forks and trimming), merge stays a join and
    /// counters stay exact for histories the window covers.
    #[test]
    fn small_window_is_still_a_join((ops, picks) in history()) {
        let h = run(&ops, 4);
        prop_assume!(!h.versions.is_empty());
        let n = h.versions.len();
        for (i, j, k) in picks {
            let (x, y, z) = (&h.versions[i % n], &h.versions[j % n], &h.versions[k % n]);
            let m = &h.merger;
            let xy = m.merge(x, y).version;
            prop_assert_eq!(&xy, &m.merge(y, x).version, "commutative");
            prop_assert_eq!(m.merge(&xy, z).version, m.merge(x, &m.merge(y, z).version).version, "associative");
            prop_assert_eq!(&m.merge(x, x).version, x, "idempotent");
        }
    }

    /// Stamps survive the trip through a DynamoDB item unchanged.
    #[test]
    fn stamp_round_trips((ops, _) in history()) {
        let h = run(&ops, 64);
        let schema = Schema::new("pk", None);
        for v in &h.versions {
            let item = schema.encode(v);
            prop_assert_eq!(&schema.decode(&item).unwrap(), v);
        }
    }
}
