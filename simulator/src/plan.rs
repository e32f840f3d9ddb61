//! The checker's histories: each one's setup and operations, drawn from
//! its seed ([`plan`]), and how they read in a failure's history.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_dynamo::{AttributeValue, Item};
use std::collections::HashMap;

use crate::cluster::Latency;
use crate::delivery::Mapping;
use crate::plain::RawWrite;
use crate::truth::{COUNTER, SET};

pub(crate) const PLAIN: [&str; 3] = ["a", "b", "c"];
/// What plain writers SET and REMOVE: the stamped writer's attributes and
/// one only they write (new to every stamp).
const PLAIN_WRITER_ATTRIBUTES: [&str; 4] = ["a", "b", "c", "p"];

/// What a history does.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(usize, usize, &'static str, String),
    Remove(usize, usize, &'static str),
    Increment(usize, usize, i64),
    Tag(usize, usize, String),
    Delete(usize, usize),
    /// A plain writer's write (Region, item).
    Plain(usize, usize, PlainOp),
    /// Every Region writes the hot item (item 0) at once.
    Hot(String),
    Wait(u64),
    Partition(usize),
    HealAll,
}

/// What a plain writer does.
#[derive(Debug, Clone)]
pub(crate) enum PlainOp {
    Set(&'static str, String),
    Remove(&'static str),
    Add(i64),
    /// A whole item without stamp: `a` and the counter set, `tags` one tag.
    Put(String, i64),
    Delete,
}

impl PlainOp {
    pub(crate) fn write(&self, item: usize, home: &str) -> RawWrite {
        match self {
            PlainOp::Set(a, v) => RawWrite::set(key(item), a, AttributeValue::S(v.clone())),
            PlainOp::Remove(a) => RawWrite::remove(key(item), a),
            PlainOp::Add(d) => RawWrite::add(key(item), COUNTER, *d),
            PlainOp::Put(v, n) => {
                let mut whole = key(item);
                whole.insert("home_region".into(), AttributeValue::S(home.to_owned()));
                whole.insert("a".into(), AttributeValue::S(v.clone()));
                whole.insert(SET.into(), AttributeValue::Ss(vec![v.clone()]));
                whole.insert(COUNTER.into(), AttributeValue::N(n.to_string()));
                RawWrite::Put(whole)
            }
            PlainOp::Delete => RawWrite::Delete(key(item)),
        }
    }
}

/// A history's setup and operations, all from its seed.
pub(crate) struct Plan {
    pub(crate) homes: Vec<usize>,
    pub(crate) latencies: Vec<Latency>,
    pub(crate) batch_size: usize,
    pub(crate) batching_window: u64,
    pub(crate) ops: Vec<Op>,
}

pub(crate) fn plan(seed: u64, regions: usize, items: usize, steps: usize, plain: f64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    // Its own generator: with plain writes off the history is what it was.
    let mut plain_rng = StdRng::seed_from_u64(seed ^ 0x91A1_3E17);
    let homes = (0..items).map(|_| rng.random_range(0..regions)).collect();
    let latencies = (0..regions * regions)
        .map(|_| Latency {
            delay: rng.random_range(0..=2),
            jitter: rng.random_range(0..=3),
        })
        .collect();
    let batch_size = rng.random_range(1..=8).min(Mapping::deployed().batch_size);
    // Up to the deployed MaximumBatchingWindowInSeconds (a tick a second).
    let batching_window = rng.random_range(0..=Mapping::deployed().batching_window_seconds);
    let mut ops = Vec::new();
    let mut partitioned = false;
    for i in 0..steps {
        // Half the writes go to item 0: a hot item written from everywhere.
        let item = if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(0..items)
        };
        let r = rng.random_range(0..regions);
        let op = match rng.random_range(0..100) {
            0..=34 => Op::Set(
                r,
                item,
                PLAIN[rng.random_range(0..PLAIN.len())],
                format!("v{i}"),
            ),
            35..=39 => Op::Remove(r, item, PLAIN[rng.random_range(0..PLAIN.len())]),
            40..=57 => Op::Increment(r, item, rng.random_range(-3..=3)),
            58..=69 => Op::Tag(r, item, format!("t{i}")),
            70..=72 => Op::Delete(r, item),
            73..=86 => Op::Wait(rng.random_range(1..=3)),
            87..=89 => Op::Hot(format!("h{i}")),
            90..=94 if !partitioned => {
                partitioned = true;
                Op::Partition(r)
            }
            _ => {
                partitioned = false;
                Op::HealAll
            }
        };
        let op = match op {
            Op::Set(r, item, ..)
            | Op::Remove(r, item, _)
            | Op::Increment(r, item, _)
            | Op::Tag(r, item, _)
            | Op::Delete(r, item)
                if plain > 0.0 && plain_rng.random_bool(plain.min(1.0)) =>
            {
                let attribute = PLAIN_WRITER_ATTRIBUTES
                    [plain_rng.random_range(0..PLAIN_WRITER_ATTRIBUTES.len())];
                let kind = match plain_rng.random_range(0..100) {
                    0..=44 => PlainOp::Set(attribute, format!("q{i}")),
                    45..=61 => PlainOp::Remove(attribute),
                    62..=89 => PlainOp::Add(plain_rng.random_range(1..=4)),
                    90..=97 => PlainOp::Put(format!("r{i}"), plain_rng.random_range(0..=20)),
                    _ => PlainOp::Delete,
                };
                Op::Plain(r, item, kind)
            }
            op => op,
        };
        ops.push(op);
    }
    Plan {
        homes,
        latencies,
        batch_size,
        batching_window,
        ops,
    }
}

pub(crate) fn key(item: usize) -> Item {
    Item::from(HashMap::from([(
        "pk".to_string(),
        AttributeValue::S(format!("k{item}")),
    )]))
}

pub(crate) fn describe(op: &Op, names: &[&str]) -> String {
    match op {
        Op::Set(r, i, a, v) => format!("{}: set k{i}.{a} = {v:?}", names[*r]),
        Op::Remove(r, i, a) => format!("{}: remove k{i}.{a}", names[*r]),
        Op::Increment(r, i, d) => format!("{}: k{i}.{COUNTER} {d:+}", names[*r]),
        Op::Tag(r, i, t) => format!("{}: add {t:?} to k{i}.{SET}", names[*r]),
        Op::Delete(r, i) => format!("{}: soft delete k{i}", names[*r]),
        Op::Plain(r, i, p) => format!("{}: plain writer on k{i}: {p:?}", names[*r]),
        Op::Hot(v) => format!("every Region: set k0.a = {v:?}-<Region>"),
        Op::Wait(t) => format!("wait {t} ticks"),
        Op::Partition(r) => format!("partition: {} cut off", names[*r]),
        Op::HealAll => "heal every link".into(),
    }
}
