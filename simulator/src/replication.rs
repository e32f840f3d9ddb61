//! Replication as global tables play it: every local write is copied to
//! the other Regions over per-pair links, and applied there with item-level
//! last-writer-wins.
//!
//! - [`Cluster::read_streams`] hands every local write to `route`, which
//!   queues a copy on each outgoing link (what the harness applied itself
//!   is recognised and never replicated again).
//! - Each link has a delay and a jitter in ticks, keeps per-item order, and
//!   can be paused (a partition: copies queue up), released, and reordered.
//! - [`Cluster::replicate`] applies the due copies; `apply_copy` decides
//!   last-writer-wins on the service's time of each write in the Region
//!   that accepted it (then the dot as a tiebreak), never on the stamp's
//!   `t`, which comes from the writer's clock and may be off by seconds; a
//!   losing copy is dropped, as DynamoDB drops it. A copy carries its
//!   origin's time. In memory the store keeps that time with each item; on
//!   moto the harness keeps it beside each item (from the stream record's
//!   `ApproximateCreationDateTime`, with its fraction).

use std::collections::{HashSet, VecDeque};

use homeward::{PutCondition, Region, Store, StoreError};
use rand::Rng;
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::{now_ms, region, show, Cluster, Latency, SimStore};
use crate::streams::Record;

/// A copy on its way from one Region to another.
#[derive(Debug, Clone)]
pub(crate) struct Copy {
    pub(crate) key: Item,
    /// `None`: a delete.
    pub(crate) item: Option<Item>,
    /// The service's time of the copied write in the Region that accepted
    /// it: what last-writer-wins compares.
    pub(crate) write_time: u64,
    /// The dot of the copied version, the last-writer-wins tiebreak.
    pub(crate) dot: String,
    /// The tick it may arrive at.
    pub(crate) due: u64,
}

#[derive(Default)]
pub(crate) struct Link {
    pub(crate) paused: bool,
    /// In arrival order: sorted by `due`, per-item order kept.
    pub(crate) queue: VecDeque<Copy>,
    pub(crate) latency: Latency,
}

impl Cluster {
    pub fn pause(&mut self, from: &str, to: &str) {
        self.link(from, to).paused = true;
    }

    pub fn resume(&mut self, from: &str, to: &str) {
        self.link(from, to).paused = false;
    }

    /// Cuts `group` off from every other Region, both ways.
    pub fn partition(&mut self, group: &[&str]) {
        self.set_partition(group, true);
    }

    /// Undoes [`Self::partition`].
    pub fn heal(&mut self, group: &[&str]) {
        self.set_partition(group, false);
    }

    /// Resumes every link.
    pub fn heal_all(&mut self) {
        for link in self.links.values_mut() {
            link.paused = false;
        }
    }

    fn set_partition(&mut self, group: &[&str], paused: bool) {
        let inside: HashSet<Region> = group.iter().map(|g| region(g)).collect();
        for ((from, to), link) in &mut self.links {
            if inside.contains(from) != inside.contains(to) {
                link.paused = paused;
            }
        }
    }

    /// Sets the latency of the link `from` -> `to` for copies queued from now.
    pub fn set_latency(&mut self, from: &str, to: &str, latency: Latency) {
        self.link(from, to).latency = latency;
    }

    /// Reverses the queued copies of a link: a later write arrives first
    /// (even of one item: DynamoDB never does that, a test may).
    pub fn reorder(&mut self, from: &str, to: &str) {
        let tick = self.tick;
        let link = self.link(from, to);
        let queue: Vec<Copy> = link
            .queue
            .drain(..)
            .rev()
            .map(|mut c| {
                c.due = tick;
                c
            })
            .collect();
        link.queue = queue.into();
    }

    fn link(&mut self, from: &str, to: &str) -> &mut Link {
        self.links
            .get_mut(&(region(from), region(to)))
            .expect("a link between two cluster Regions")
    }

    /// Queues copies of a local write; recognises the harness's own copies.
    pub(crate) fn route(&mut self, r: &Region, record: &Record) {
        let applied = self.applied.entry(r.clone()).or_default();
        let own = match &record.new_image {
            Some(image) => applied.iter().position(|a| a == image),
            None => applied
                .iter()
                .position(|a| a == &record.key && record.removed),
        };
        if let Some(i) = own {
            applied.remove(i);
            return;
        }
        let write_time = record.write_time;
        self.date(r, &record.key, record.new_image.as_ref(), write_time);
        let stamp = &self.schema.stamp_attribute;
        let dot = record
            .new_image
            .as_ref()
            .map(|i| stamp_dot(i, stamp))
            .unwrap_or_default();
        let tick = self.tick;
        let keyed = resolver::journal::key_text(&record.key);
        for ((from, _), link) in self.links.range_mut((r.clone(), region("a"))..) {
            if from != r {
                break;
            }
            let jitter = if link.latency.jitter > 0 {
                self.rng.random_range(0..=link.latency.jitter)
            } else {
                0
            };
            // Per-item order: never before the item's previous copy.
            let previous = link
                .queue
                .iter()
                .filter(|c| resolver::journal::key_text(&c.key) == keyed)
                .map(|c| c.due)
                .max()
                .unwrap_or(0);
            let due = (tick + link.latency.delay + jitter).max(previous);
            let at = link.queue.iter().position(|c| c.due > due);
            let copy = Copy {
                key: record.key.clone(),
                item: record.new_image.clone(),
                write_time,
                dot: dot.clone(),
                due,
            };
            match at {
                Some(i) => link.queue.insert(i, copy),
                None => link.queue.push_back(copy),
            }
        }
    }

    /// Applies every due copy on links that are not paused. Returns how
    /// many copies were processed.
    pub async fn replicate(&mut self) -> usize {
        let mut done = 0;
        let keys: Vec<(Region, Region)> = self.links.keys().cloned().collect();
        for (from, to) in keys {
            loop {
                let tick = self.tick;
                let link = self
                    .links
                    .get_mut(&(from.clone(), to.clone()))
                    .expect("link");
                if link.paused || link.queue.front().is_none_or(|c| c.due > tick) {
                    break;
                }
                let Some(copy) = link.queue.pop_front() else {
                    break;
                };
                self.apply_copy(&from, &to, copy).await;
                done += 1;
            }
        }
        done
    }

    /// Last writer wins, per item, on the service's time of each write (the
    /// dot breaks ties); the stamp's `t` plays no part.
    async fn apply_copy(&mut self, from: &Region, to: &Region, copy: Copy) {
        let stamp = self.schema.stamp_attribute.clone();
        let what = resolver::journal::key_text(&copy.key);
        loop {
            let current = self
                .store
                .get(to, &copy.key)
                .await
                .expect("get for replication");
            let current_order = current
                .as_ref()
                .map(|c| (self.server_time(to, &copy.key, c), stamp_dot(c, &stamp)));
            if current_order.is_some_and(|o| o > (copy.write_time, copy.dot.clone())) {
                self.stats.copies_dropped += 1;
                self.note(|| {
                    format!("replicate {from} -> {to}: {what} dropped (an earlier write loses last-writer-wins)")
                });
                return;
            }
            let Some(item) = &copy.item else {
                if current.is_some() {
                    self.hard_delete(to, &copy.key).await;
                    self.date(to, &copy.key, None, copy.write_time);
                    self.applied
                        .entry(to.clone())
                        .or_default()
                        .push(copy.key.clone());
                }
                self.stats.copies_applied += 1;
                self.note(|| format!("replicate {from} -> {to}: {what} deleted"));
                return;
            };
            if current.as_ref() == Some(item) {
                self.stats.copies_applied += 1;
                return;
            }
            let condition = match &current {
                None => PutCondition::NotExists,
                Some(c) => match homeward::classify::peek(c, &stamp) {
                    Ok(Some(h)) => PutCondition::DotIs(h.dot.encode()),
                    _ => PutCondition::Unstamped,
                },
            };
            let put = match &self.store {
                SimStore::Memory(m) => m.put_at(to, item, &condition, Some(copy.write_time)),
                SimStore::Moto(_) | SimStore::Traced(_) => {
                    self.store.put(to, item, &condition).await
                }
            };
            match put {
                Ok(()) => {
                    self.date(to, &copy.key, Some(item), copy.write_time);
                    self.applied
                        .entry(to.clone())
                        .or_default()
                        .push(item.clone());
                    self.stats.copies_applied += 1;
                    let shown = show(item, &self.schema);
                    self.note(|| format!("replicate {from} -> {to}: {what} {shown}"));
                    return;
                }
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => panic!("replication put failed: {e}"),
            }
        }
    }

    /// The service's time of `current`, the item now in `region`: in
    /// memory, the store's; on moto, what the harness kept beside it (a
    /// version it has not read from the stream yet was written just now).
    fn server_time(&self, region: &Region, key: &Item, current: &Item) -> u64 {
        match &self.store {
            SimStore::Memory(m) => m.timestamp(region, key).unwrap_or(0),
            SimStore::Moto(_) | SimStore::Traced(_) => {
                let text = resolver::journal::key_text(key);
                match self.server_times.get(&(region.clone(), text)) {
                    Some((time, dated)) if dated == current => *time,
                    _ => now_ms() * 1000,
                }
            }
        }
    }

    /// Keeps the service's time of the version `item` (`None`: deleted) of
    /// `key` in `region` (on moto; the memory store keeps its own).
    fn date(&mut self, region: &Region, key: &Item, item: Option<&Item>, time: u64) {
        if !matches!(self.store, SimStore::Moto(_)) {
            return;
        }
        let at = (region.clone(), resolver::journal::key_text(key));
        match item {
            Some(item) => {
                self.server_times.insert(at, (time, item.clone()));
            }
            None => {
                self.server_times.remove(&at);
            }
        }
    }

    /// Copies queued on links.
    pub fn queued(&self) -> usize {
        self.links.values().map(|l| l.queue.len()).sum()
    }
}

fn stamp_dot(item: &Item, stamp_attribute: &str) -> String {
    match item.get(stamp_attribute) {
        Some(AttributeValue::M(m)) => match m.get("dot") {
            Some(AttributeValue::S(d)) => d.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use homeward::Region;
    use serde_dynamo::{AttributeValue, Item};

    use crate::cluster::{now_ms, Cluster, Spec};
    use crate::MotoServer;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn key() -> Item {
        Item::from(HashMap::from([("pk".to_string(), s("k"))]))
    }

    /// Plain last-writer-wins, us-west-2's clock 2 s ahead and us-east-1's
    /// 2 s behind.
    fn skewed() -> Spec {
        let mut spec = Spec::new(&["us-east-1", "us-west-2"]);
        spec.resolvers = false;
        spec.clocks.insert("us-east-1".into(), -2000);
        spec.clocks.insert("us-west-2".into(), 2000);
        spec
    }

    /// Two Regions edit one item while cut off from each other; us-east-1
    /// writes last by the service's clock, with the smaller stamp time (and
    /// the smaller dot: a tie would go the other way).
    async fn the_later_write_wins_whatever_its_stamp_says(mut c: Cluster) {
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        let w = c.writer();
        let mut item = key();
        item.insert("v".into(), s("init"));
        let before = now_ms();
        let first = w.insert(&west, item).await.unwrap();
        // The stamp's `t` is the Region's skewed clock.
        assert!(
            first.header.time_ms >= before + 2000,
            "us-west-2 runs 2 s ahead"
        );
        c.settle().await;
        c.partition(&["us-east-1"]);
        let a = w
            .update(&west, &key(), |d| {
                d.set("v", s("west"));
            })
            .await
            .unwrap();
        c.step().await;
        let b = w
            .update(&east, &key(), |d| {
                d.set("v", s("east"));
            })
            .await
            .unwrap();
        assert!(b.header.time_ms < a.header.time_ms);
        c.heal_all();
        c.settle().await;
        for r in ["us-east-1", "us-west-2"] {
            let got = c.read(r, &key()).await.unwrap();
            assert_eq!(got.get("v"), Some(&s("east")), "in {r}");
        }
        assert!(c.stats.copies_dropped >= 1, "west's copy lost in us-east-1");
    }

    #[tokio::test]
    async fn last_writer_wins_on_the_service_clock_in_memory() {
        the_later_write_wins_whatever_its_stamp_says(Cluster::memory(skewed())).await;
    }

    /// A scenario's `clocks`: the Region whose clock is behind writes last
    /// and wins plain last-writer-wins everywhere.
    #[tokio::test]
    async fn scenario_clocks_skew_the_stamps_not_last_writer_wins() {
        let scenario: crate::scenario::Scenario = serde_json::from_value(serde_json::json!({
            "name": "skew",
            "regions": ["us-east-1", "us-west-2"],
            "table": {"partition_key": ["pk", "S"]},
            "clocks": {"us-east-1": -1500, "us-west-2": 1500},
            "timeline": [
                {"insert": {"region": "us-west-2", "item": {"pk": "k", "v": "init"}}},
                "settle",
                {"partition": ["us-east-1"]},
                {"update": {"region": "us-west-2", "key": {"pk": "k"}, "set": {"v": "west"}}},
                {"wait": 1},
                {"update": {"region": "us-east-1", "key": {"pk": "k"}, "set": {"v": "east"}}},
                {"heal": ["us-east-1"]},
                "settle"
            ],
            "expect": [{"key": {"pk": "k"}, "values": {"v": "east"}}]
        }))
        .unwrap();
        let registry = homeward::Registry::new();
        let out = scenario
            .run(crate::scenario::Backend::Memory, false, &registry)
            .await
            .unwrap();
        assert!(out.misses.is_empty(), "{:?}", out.misses);
        // The template's filters are on by default.
        assert!(!scenario.spec(false, &registry).unwrap().filters.is_empty());
        let mut bad = scenario.clone();
        bad.clocks.insert("eu-west-1".into(), 1);
        assert!(
            bad.spec(false, &registry).is_err(),
            "a Region not in the scenario"
        );
    }

    #[tokio::test]
    async fn last_writer_wins_on_the_service_clock_on_moto() {
        let c = Cluster::start(MotoServer::shared(), "lww-clock", skewed()).await;
        the_later_write_wins_whatever_its_stamp_says(c).await;
    }
}
