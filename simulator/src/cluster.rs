//! A global table on one machine: the same table in several Regions (of one
//! moto server, or in memory), replication played by this harness the way
//! global tables do it, and each Region's resolver fed from that Region's
//! stream the way Lambda's event source mapping does.
//!
//! Time is logical: one [`Cluster::step`] is a tick. Each step reads every
//! stream, applies the copies that are due, and delivers what each Region's
//! event source mapping would.
//!
//! - Replication tails every Region's stream and copies each local write to
//!   the other Regions with item-level last-writer-wins on the write time
//!   (the stamp's `t`, then the dot as a tiebreak); a losing copy is
//!   dropped, as DynamoDB drops it. What the harness applied itself is never
//!   replicated again. Each link (Region pair) has a delay and a jitter in
//!   ticks, keeps per-item order, and can be paused (a partition: copies
//!   queue up), released, and reordered.
//! - Delivery turns stream records into Lambda events (eventSourceARN,
//!   whole-second timestamps), invokes the resolver in-process in batches
//!   (batch size, batching window in ticks), honours `batchItemFailures`
//!   (redelivers from the lowest failed sequence number, at most
//!   `max_retries` times, then sets the records aside as Lambda's on-failure
//!   destination would), can deliver batches twice, and can fail the first
//!   delivery of a batch after the resolver ran (a timeout after its writes).
//! - With resolvers off the same timeline shows plain last-writer-wins.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ScalarAttributeType;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use homeward::dynamo::DynamoStore;
use homeward::store::Page;
use homeward::{Merger, PutCondition, Region, Registry, Schema, Store, StoreError, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resolver::{Config, Resolver, StreamEvent, Summary};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};

use crate::memory::MemStore;
use crate::{unique_table, MotoServer};

/// Delay of one link, in ticks: `delay` plus up to `jitter` more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub delay: u64,
    pub jitter: u64,
}

/// What a cluster is made of.
pub struct Spec {
    pub regions: Vec<&'static str>,
    pub partition_key: (&'static str, ScalarAttributeType),
    pub sort_key: Option<(&'static str, ScalarAttributeType)>,
    /// Extra resolver settings, as the environment would give them
    /// (`HOME_STRATEGY`, `MERGE_RULES`, `ACTION`, ...).
    pub resolver_env: Vec<(&'static str, String)>,
    /// Custom merge rules the `MERGE_RULES` setting may name.
    pub registry: Registry,
    /// Resolvers on (Homeward) or off (plain last-writer-wins).
    pub resolvers: bool,
    /// Records per Lambda invocation.
    pub batch_size: usize,
    /// Ticks a partial batch waits for more records (MaximumBatchingWindow).
    pub batching_window: u64,
    /// FilterCriteria: records that match no pattern never reach the
    /// resolver.
    pub filters: crate::filter::Filters,
    /// Deliver every batch twice (at-least-once delivery, G5).
    pub deliver_twice: bool,
    /// Probability that a batch is delivered twice.
    pub duplicate_rate: f64,
    /// Probability that the first delivery of a batch fails from a random
    /// record on, after the resolver ran.
    pub failure_rate: f64,
    pub max_retries: u32,
    /// Every link's latency unless `latencies` names it.
    pub latency: Latency,
    /// Per link (from, to).
    pub latencies: BTreeMap<(String, String), Latency>,
    /// Seeds the harness's own randomness (jitter, injected failures).
    pub seed: u64,
    /// Keep a readable timeline of what happens ([`Cluster::timeline`]).
    pub trace: bool,
    /// The table's name on moto (default: unique per test); the journal is
    /// `<name>-journal`.
    pub table_name: Option<String>,
}

impl Spec {
    pub fn new(regions: &[&'static str]) -> Self {
        Spec {
            regions: regions.to_vec(),
            partition_key: ("pk", ScalarAttributeType::S),
            sort_key: None,
            resolver_env: Vec::new(),
            registry: Registry::new(),
            resolvers: true,
            batch_size: 100,
            batching_window: 0,
            filters: crate::filter::Filters::default(),
            deliver_twice: false,
            duplicate_rate: 0.0,
            failure_rate: 0.0,
            max_retries: 3,
            latency: Latency::default(),
            latencies: BTreeMap::new(),
            seed: 0,
            trace: false,
            table_name: None,
        }
    }

    pub fn env(mut self, name: &'static str, value: &str) -> Self {
        self.resolver_env.push((name, value.to_owned()));
        self
    }
}

/// The table store of a cluster: DynamoDB on moto, or in memory.
#[derive(Clone)]
pub enum SimStore {
    Moto(Box<DynamoStore>),
    Memory(MemStore),
}

impl Store for SimStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        match self {
            SimStore::Moto(s) => s.get(region, key).await,
            SimStore::Memory(s) => s.get(region, key).await,
        }
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        match self {
            SimStore::Moto(s) => s.put(region, item, condition).await,
            SimStore::Memory(s) => s.put(region, item, condition).await,
        }
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        match self {
            SimStore::Moto(s) => s.scan(region, start, limit).await,
            SimStore::Memory(s) => s.scan(region, start, limit).await,
        }
    }
}

/// Where stream records come from.
enum Streams {
    Moto {
        sdk: Box<SdkConfig>,
        iterators: HashMap<Region, Vec<String>>,
    },
    Memory {
        cursors: HashMap<Region, usize>,
    },
}

/// One stream record, kept both ways.
#[derive(Debug, Clone)]
struct Record {
    lambda: Value,
    sequence: String,
    key: Item,
    new_image: Option<Item>,
    removed: bool,
    /// The tick it was read at (for the batching window).
    read_at: u64,
    /// In memory, the write's last-writer-wins timestamp (on moto, the
    /// stamp's `t` stands in for it).
    write_time: Option<u64>,
}

/// A copy on its way from one Region to another.
#[derive(Debug, Clone)]
struct Copy {
    key: Item,
    /// `None`: a delete.
    item: Option<Item>,
    write_time: u64,
    /// The dot of the copied version, the last-writer-wins tiebreak.
    dot: String,
    /// The tick it may arrive at.
    due: u64,
}

#[derive(Default)]
struct Link {
    paused: bool,
    /// In arrival order: sorted by `due`, per-item order kept.
    queue: VecDeque<Copy>,
    latency: Latency,
}

/// Counts over the cluster's life.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub invocations: usize,
    pub records_delivered: usize,
    pub resolver_writes: usize,
    pub journal_entries: usize,
    pub failures: usize,
    pub copies_applied: usize,
    pub copies_dropped: usize,
    /// Batches whose first delivery was failed on purpose.
    pub injected_failures: usize,
    /// Batches delivered twice on purpose.
    pub duplicate_deliveries: usize,
    /// Records dropped by the FilterCriteria.
    pub filtered_out: usize,
    /// Records given up on after `max_retries` (the on-failure queue).
    pub set_aside: Vec<String>,
    pub classes: BTreeMap<&'static str, usize>,
    /// The same, per Region: (Region, class) -> records.
    pub by_region: BTreeMap<(String, &'static str), usize>,
}

/// Why the cluster did not settle.
#[derive(Debug, thiserror::Error)]
#[error("the cluster did not settle in {rounds} rounds: a resolver loop? stats: {stats:?}")]
pub struct NotSettled {
    pub rounds: usize,
    pub stats: Stats,
}

pub struct Cluster {
    pub table: String,
    pub journal_table: String,
    pub regions: Vec<Region>,
    pub schema: Schema,
    pub merger: Merger,
    pub stats: Stats,
    /// The logical clock, in ticks.
    pub tick: u64,
    spec: Spec,
    store: SimStore,
    journal_store: SimStore,
    streams: Streams,
    stream_arns: HashMap<Region, String>,
    backlog: HashMap<Region, VecDeque<Record>>,
    retries: HashMap<Region, u32>,
    links: BTreeMap<(Region, Region), Link>,
    /// Items the harness wrote itself, per Region: not to be replicated.
    applied: HashMap<Region, Vec<Item>>,
    /// Every record each Region's resolver has been given, in order.
    history: HashMap<Region, Vec<Record>>,
    /// Batches (Region, first sequence number) already delivered once.
    seen_batches: HashSet<(Region, String)>,
    rng: StdRng,
    timeline: Vec<String>,
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("a Region name")
}

impl Cluster {
    /// Creates the table and a journal table in every Region of `spec` on
    /// `server`.
    ///
    /// # Panics
    /// When moto refuses the setup: a broken harness, not a test failure.
    pub async fn start(server: &MotoServer, test: &str, spec: Spec) -> Self {
        let table = spec
            .table_name
            .clone()
            .unwrap_or_else(|| unique_table(test));
        let journal_table = format!("{table}-journal");
        let sdk = server.sdk_config().await;
        let regions: Vec<Region> = spec.regions.iter().map(|r| region(r)).collect();
        let (pk, sk) = (spec.partition_key.clone(), spec.sort_key.clone());
        let mut stream_arns = HashMap::new();
        let mut iterators = HashMap::new();
        for r in &regions {
            server
                .create_table(r.as_str(), &table, pk.clone(), sk.clone())
                .await
                .expect("create table");
            server
                .create_table(
                    r.as_str(),
                    &journal_table,
                    ("pk", ScalarAttributeType::S),
                    Some(("sk", ScalarAttributeType::S)),
                )
                .await
                .expect("create journal");
            let described = server
                .client(r.as_str())
                .await
                .describe_table()
                .table_name(&table)
                .send()
                .await
                .expect("describe table");
            let arn = described
                .table
                .and_then(|t| t.latest_stream_arn)
                .expect("the table has a stream");
            let streams = streams_client(&sdk, r);
            let shards = streams
                .describe_stream()
                .stream_arn(&arn)
                .send()
                .await
                .expect("describe stream")
                .stream_description
                .and_then(|d| d.shards)
                .unwrap_or_default();
            let mut its = Vec::new();
            for shard in shards {
                let it = streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(shard.shard_id.unwrap_or_default())
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .expect("shard iterator")
                    .shard_iterator
                    .expect("an iterator");
                its.push(it);
            }
            stream_arns.insert(r.clone(), arn);
            iterators.insert(r.clone(), its);
        }
        let schema = Schema::new(pk.0, sk.as_ref().map(|s| s.0));
        let store = SimStore::Moto(Box::new(DynamoStore::new(
            sdk.clone(),
            &table,
            schema.clone(),
        )));
        let journal_store = SimStore::Moto(Box::new(DynamoStore::new(
            sdk.clone(),
            &journal_table,
            Schema::new("pk", Some("sk")),
        )));
        let streams = Streams::Moto {
            sdk: Box::new(sdk),
            iterators,
        };
        Self::assemble(
            table,
            journal_table,
            schema,
            spec,
            (store, journal_store),
            streams,
            stream_arns,
        )
    }

    /// The same cluster in memory: no moto, thousands of runs a minute.
    pub fn memory(spec: Spec) -> Self {
        let table = "sim".to_owned();
        let journal_table = "sim-journal".to_owned();
        let schema = Schema::new(spec.partition_key.0, spec.sort_key.as_ref().map(|s| s.0));
        let stream_arns = spec
            .regions
            .iter()
            .map(|r| {
                (
                    region(r),
                    format!(
                        "arn:aws:dynamodb:{r}:123456789012:table/{table}/stream/1970-01-01T00:00:00.000"
                    ),
                )
            })
            .collect();
        let store = SimStore::Memory(MemStore::new(schema.clone()));
        let journal_store = SimStore::Memory(MemStore::new(Schema::new("pk", Some("sk"))));
        let streams = Streams::Memory {
            cursors: HashMap::new(),
        };
        Self::assemble(
            table,
            journal_table,
            schema,
            spec,
            (store, journal_store),
            streams,
            stream_arns,
        )
    }

    fn assemble(
        table: String,
        journal_table: String,
        schema: Schema,
        spec: Spec,
        (store, journal_store): (SimStore, SimStore),
        streams: Streams,
        stream_arns: HashMap<Region, String>,
    ) -> Self {
        let regions: Vec<Region> = spec.regions.iter().map(|r| region(r)).collect();
        let mut links = BTreeMap::new();
        for a in &regions {
            for b in &regions {
                if a != b {
                    let latency = spec
                        .latencies
                        .get(&(a.to_string(), b.to_string()))
                        .copied()
                        .unwrap_or(spec.latency);
                    links.insert(
                        (a.clone(), b.clone()),
                        Link {
                            latency,
                            ..Link::default()
                        },
                    );
                }
            }
        }
        let rng = StdRng::seed_from_u64(spec.seed);
        let mut cluster = Cluster {
            table,
            journal_table,
            regions,
            schema,
            merger: Merger::new(homeward::Rules::default()),
            stats: Stats::default(),
            tick: 0,
            spec,
            store,
            journal_store,
            streams,
            stream_arns,
            backlog: HashMap::new(),
            retries: HashMap::new(),
            links,
            applied: HashMap::new(),
            history: HashMap::new(),
            seen_batches: HashSet::new(),
            rng,
            timeline: Vec::new(),
        };
        cluster.merger = cluster.config(&cluster.regions[0].clone()).merger;
        cluster
    }

    /// The resolver configuration of `region`.
    ///
    /// # Panics
    /// When the spec's resolver settings are invalid.
    pub fn config(&self, region: &Region) -> Config {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("TABLE_NAME", self.table.clone()),
            ("JOURNAL_TABLE", self.journal_table.clone()),
            ("AWS_REGION", region.to_string()),
            (
                "TABLE_KEY",
                match &self.schema.sort_key {
                    Some(sk) => format!("{},{sk}", self.schema.partition_key),
                    None => self.schema.partition_key.clone(),
                },
            ),
        ]);
        for (k, v) in &self.spec.resolver_env {
            vars.insert(k, v.clone());
        }
        Config::from_lookup(|k| vars.get(k).cloned(), &self.spec.registry)
            .unwrap_or_else(|e| panic!("resolver config: {e}"))
    }

    /// The stamped writer, with the resolvers' merge rules.
    pub fn writer(&self) -> Writer<SimStore> {
        Writer::new(self.store.clone(), self.schema.clone(), self.merger.clone())
    }

    pub fn store(&self) -> &SimStore {
        &self.store
    }

    pub fn journal_store(&self) -> SimStore {
        self.journal_store.clone()
    }

    /// Whether the resolvers run.
    pub fn resolvers_on(&self) -> bool {
        self.spec.resolvers
    }

    /// Adds a line to the timeline (when the spec traces).
    pub fn note(&mut self, line: impl FnOnce() -> String) {
        if self.spec.trace {
            let text = line();
            self.timeline.push(format!("t={:<3} {text}", self.tick));
        }
    }

    /// The timeline so far, and empties it.
    pub fn take_timeline(&mut self) -> Vec<String> {
        std::mem::take(&mut self.timeline)
    }

    /// The raw item in `region`.
    pub async fn read(&self, region: &str, key: &Item) -> Option<Item> {
        self.store
            .get(&self::region(region), key)
            .await
            .expect("get item")
    }

    fn client(sdk: &SdkConfig, region: &str) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
                .build(),
        )
    }

    async fn scan(&self, region: &str, table: &str, store: &SimStore) -> Vec<Item> {
        match (&self.streams, store) {
            (_, SimStore::Memory(m)) => m.items(&self::region(region)).into_values().collect(),
            (Streams::Moto { sdk, .. }, SimStore::Moto(_)) => {
                let mut items = Vec::new();
                let mut start = None;
                loop {
                    let out = Self::client(sdk, region)
                        .scan()
                        .table_name(table)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan");
                    items.extend(out.items.unwrap_or_default().into_iter().map(Item::from));
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        return items;
                    }
                }
            }
            (Streams::Memory { .. }, SimStore::Moto(_)) => {
                unreachable!("memory streams, moto store")
            }
        }
    }

    /// Every journal entry written by `region`'s resolver.
    pub async fn journal(&self, region: &str) -> Vec<Item> {
        let mut entries = self
            .scan(region, &self.journal_table, &self.journal_store)
            .await;
        // Control items (evacuated Regions, assignments) share the table.
        entries.retain(|e| {
            !matches!(e.get("pk"), Some(serde_dynamo::AttributeValue::S(pk)) if pk.starts_with("homeward:"))
        });
        entries
    }

    /// Every item in `region`, by key text.
    pub async fn items(&self, region: &str) -> BTreeMap<String, Item> {
        self.scan(region, &self.table, &self.store)
            .await
            .into_iter()
            .map(|i| (resolver::journal::key_text(&self.key_of(&i)), i))
            .collect()
    }

    fn key_of(&self, item: &Item) -> Item {
        let mut key = item.clone();
        key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
        key
    }

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

    /// Reads every stream: queues copies of local writes on the links and
    /// adds every record to its Region's backlog for the resolver. Returns
    /// how many records were read.
    pub async fn read_streams(&mut self) -> usize {
        let mut read = 0;
        for r in self.regions.clone() {
            let records = self.poll(&r).await;
            for record in records {
                read += 1;
                self.route(&r, &record);
                if !self.spec.filters.pass(&record.lambda) {
                    self.stats.filtered_out += 1;
                    continue;
                }
                self.history
                    .entry(r.clone())
                    .or_default()
                    .push(record.clone());
                self.backlog.entry(r.clone()).or_default().push_back(record);
            }
        }
        read
    }

    async fn poll(&mut self, r: &Region) -> Vec<Record> {
        let mut out = Vec::new();
        match &mut self.streams {
            Streams::Moto { sdk, iterators } => {
                let streams = streams_client(sdk, r);
                let mut next = Vec::new();
                let mut raw = Vec::new();
                for it in iterators.remove(r).unwrap_or_default() {
                    let got = streams
                        .get_records()
                        .shard_iterator(&it)
                        .send()
                        .await
                        .expect("get records");
                    raw.extend(got.records.unwrap_or_default());
                    next.push(got.next_shard_iterator.unwrap_or(it));
                }
                iterators.insert(r.clone(), next);
                for rec in &raw {
                    out.push(self.convert(r, rec));
                }
            }
            Streams::Memory { cursors } => {
                let SimStore::Memory(store) = &self.store else {
                    unreachable!("memory streams over a memory store")
                };
                let cursor = cursors.entry(r.clone()).or_default();
                let records = store.stream_from(r, *cursor);
                *cursor += records.len();
                for rec in records {
                    out.push(self.convert_memory(r, rec));
                }
            }
        }
        out
    }

    /// Queues copies of a local write; recognises the harness's own copies.
    fn route(&mut self, r: &Region, record: &Record) {
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
        let stamp = &self.schema.stamp_attribute;
        let write_time = match record.write_time {
            Some(t) => t,
            None => record
                .new_image
                .as_ref()
                .and_then(|i| stamp_time(i, stamp))
                .unwrap_or_else(now_ms),
        };
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

    /// Last writer wins, per item, on the write time (the dot breaks ties).
    async fn apply_copy(&mut self, from: &Region, to: &Region, copy: Copy) {
        let stamp = self.schema.stamp_attribute.clone();
        let what = resolver::journal::key_text(&copy.key);
        loop {
            let current = self
                .store
                .get(to, &copy.key)
                .await
                .expect("get for replication");
            let current_time = |c: &Item| match &self.store {
                SimStore::Memory(m) => m.timestamp(to, &copy.key).unwrap_or(0),
                SimStore::Moto(_) => stamp_time(c, &stamp).unwrap_or(0),
            };
            let current_order = current
                .as_ref()
                .map(|c| (current_time(c), stamp_dot(c, &stamp)));
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
                SimStore::Moto(_) => self.store.put(to, item, &condition).await,
            };
            match put {
                Ok(()) => {
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

    /// Removes an item in `region` (a hard delete, unstamped).
    pub async fn hard_delete(&self, region: &Region, key: &Item) {
        match (&self.store, &self.streams) {
            (SimStore::Memory(m), _) => m.delete(region, key),
            (SimStore::Moto(_), Streams::Moto { sdk, .. }) => {
                Self::client(sdk, region.as_str())
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key.clone().into()))
                    .send()
                    .await
                    .expect("delete item");
            }
            (SimStore::Moto(_), Streams::Memory { .. }) => {
                unreachable!("moto store, memory streams")
            }
        }
    }

    /// Delivers each Region's backlog to its resolver, batch by batch, as
    /// Lambda would. Returns how many records were delivered.
    pub async fn deliver(&mut self) -> usize {
        self.deliver_with(false).await
    }

    /// `force`: ignore the batching window (settling, replays).
    async fn deliver_with(&mut self, force: bool) -> usize {
        if !self.spec.resolvers {
            self.backlog.clear();
            return 0;
        }
        let mut delivered = 0;
        for r in self.regions.clone() {
            let resolver = Resolver::new(
                self.config(&r),
                self.store.clone(),
                self.journal_store.clone(),
            );
            loop {
                let backlog = self.backlog.entry(r.clone()).or_default();
                let Some(oldest) = backlog.front() else {
                    break;
                };
                let full = backlog.len() >= self.spec.batch_size;
                if !force && !full && oldest.read_at + self.spec.batching_window > self.tick {
                    break;
                }
                let batch: Vec<Record> =
                    backlog.iter().take(self.spec.batch_size).cloned().collect();
                let records: Vec<Value> = batch.iter().map(|b| b.lambda.clone()).collect();
                let event: StreamEvent = serde_json::from_value(json!({ "Records": records }))
                    .expect("a Lambda stream event");
                let first_time = self
                    .seen_batches
                    .insert((r.clone(), batch[0].sequence.clone()));
                let twice = self.spec.deliver_twice
                    || (self.spec.duplicate_rate > 0.0
                        && self.rng.random_bool(self.spec.duplicate_rate));
                if twice && !self.spec.deliver_twice {
                    self.stats.duplicate_deliveries += 1;
                }
                let mut failed: Vec<String> = Vec::new();
                for _ in 0..if twice { 2 } else { 1 } {
                    let (response, summary) = resolver
                        .handle(&event, Instant::now() + Duration::from_secs(60))
                        .await;
                    self.count(&r, &summary, batch.len());
                    failed = response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| {
                            f.item_identifier
                                .expect("the resolver names every failed record")
                        })
                        .collect();
                }
                if first_time
                    && self.spec.failure_rate > 0.0
                    && self.rng.random_bool(self.spec.failure_rate)
                {
                    // The function timed out after its writes: Lambda
                    // retries from the record it had not acknowledged.
                    let from = self.rng.random_range(0..batch.len());
                    failed.extend(batch[from..].iter().map(|b| b.sequence.clone()));
                    self.stats.injected_failures += 1;
                }
                delivered += batch.len();
                let backlog = self.backlog.entry(r.clone()).or_default();
                // Lambda checkpoints at the lowest failed sequence number.
                let first_failed = batch.iter().position(|b| failed.contains(&b.sequence));
                match first_failed {
                    None => {
                        backlog.drain(..batch.len());
                        self.retries.remove(&r);
                    }
                    Some(i) => {
                        backlog.drain(..i);
                        let tries = self.retries.entry(r.clone()).or_default();
                        *tries += 1;
                        if *tries > self.spec.max_retries {
                            let lost = backlog.pop_front().expect("the failed record");
                            self.stats.set_aside.push(lost.sequence);
                            self.retries.remove(&r);
                        }
                    }
                }
            }
        }
        delivered
    }

    fn count(&mut self, region: &Region, summary: &Summary, records: usize) {
        self.stats.invocations += 1;
        self.stats.records_delivered += records;
        self.stats.resolver_writes += summary.writes;
        self.stats.journal_entries += summary.journal_entries;
        self.stats.failures += summary.failures;
        for (class, n) in &summary.by_class {
            *self.stats.classes.entry(class).or_default() += n;
            *self
                .stats
                .by_region
                .entry((region.to_string(), class))
                .or_default() += n;
        }
        if self.spec.trace {
            let detected: Vec<String> = summary
                .by_class
                .iter()
                .filter(|(c, _)| !matches!(**c, "replicated" | "echo" | "home" | "home-write"))
                .map(|(c, n)| format!("{c} x{n}"))
                .collect();
            if !detected.is_empty() {
                self.note(|| format!("detect  {region} resolver: {}", detected.join(", ")));
            }
            if summary.writes > 0 {
                self.note(|| {
                    format!(
                        "merge   {region} resolver wrote {} merged version(s) to the home Region",
                        summary.writes
                    )
                });
            }
            if summary.journal_entries > 0 {
                self.note(|| {
                    format!(
                        "journal {region} resolver recorded {} conflict(s)",
                        summary.journal_entries
                    )
                });
            }
        }
    }

    /// One tick: reads the streams, applies due copies, delivers batches.
    /// Returns whether anything moved.
    pub async fn step(&mut self) -> bool {
        self.tick += 1;
        let read = self.read_streams().await;
        let copied = self.replicate().await;
        let delivered = self.deliver().await;
        read + copied + delivered > 0
    }

    /// Whether copies wait on links that are not paused, or records in a
    /// backlog.
    fn pending(&self) -> bool {
        self.links
            .values()
            .any(|l| !l.paused && !l.queue.is_empty())
            || (self.spec.resolvers && self.backlog.values().any(|b| !b.is_empty()))
    }

    /// Runs replication and the resolvers until nothing moves (paused links
    /// keep their copies), advancing the clock over delays.
    ///
    /// # Errors
    /// [`NotSettled`] after a bound that depends on the links' delays: a
    /// system that does not settle is a resolver loop (G6).
    pub async fn try_settle(&mut self) -> Result<(), NotSettled> {
        let slowest = self
            .links
            .values()
            .map(|l| l.latency.delay + l.latency.jitter)
            .max()
            .unwrap_or(0)
            .max(self.spec.batching_window);
        let rounds = 50 + 8 * slowest as usize;
        for _ in 0..rounds {
            self.tick += 1;
            let read = self.read_streams().await;
            let copied = self.replicate().await;
            let delivered = self.deliver_with(true).await;
            if read == 0 && copied == 0 && delivered == 0 && !self.pending() {
                return Ok(());
            }
        }
        Err(NotSettled {
            rounds,
            stats: self.stats.clone(),
        })
    }

    /// [`Self::try_settle`].
    ///
    /// # Panics
    /// When the cluster does not settle.
    pub async fn settle(&mut self) {
        if let Err(e) = self.try_settle().await {
            panic!("{e}");
        }
    }

    /// Delivers every record each resolver has ever been given again, cut
    /// into batches of `batch_size` (at-least-once delivery with different
    /// batch boundaries), then settles.
    pub async fn replay(&mut self, batch_size: usize) {
        if let Err(e) = self.try_replay(batch_size).await {
            panic!("{e}");
        }
    }

    /// [`Self::replay`], reporting a cluster that does not settle.
    ///
    /// # Errors
    /// [`NotSettled`].
    pub async fn try_replay(&mut self, batch_size: usize) -> Result<(), NotSettled> {
        let old = self.spec.batch_size;
        self.spec.batch_size = batch_size;
        for (r, records) in self.history.clone() {
            self.backlog.entry(r).or_default().extend(records);
        }
        self.deliver_with(true).await;
        self.spec.batch_size = old;
        self.try_settle().await
    }

    /// Copies queued on links.
    pub fn queued(&self) -> usize {
        self.links.values().map(|l| l.queue.len()).sum()
    }

    fn lambda_record(
        &self,
        r: &Region,
        (event_id, event_name, seconds): (String, &str, i64),
        images: (&Item, Option<&Item>, Option<&Item>),
        sequence: &str,
        size: i64,
    ) -> Value {
        let (key, new_image, old_image) = images;
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": seconds,
            "Keys": serde_json::to_value(key).expect("keys"),
            "SequenceNumber": sequence,
            "SizeBytes": size,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(i) = new_image {
            dynamodb["NewImage"] = serde_json::to_value(i).expect("image");
        }
        if let Some(i) = old_image {
            dynamodb["OldImage"] = serde_json::to_value(i).expect("image");
        }
        json!({
            "eventID": event_id,
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": r.as_str(),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arns[r],
        })
    }

    fn convert_memory(&self, r: &Region, rec: crate::memory::MemRecord) -> Record {
        let sequence = format!("{:021}", rec.sequence);
        let size = rec
            .new_image
            .as_ref()
            .or(rec.old_image.as_ref())
            .map_or(0, homeward::size::item_size) as i64;
        let lambda = self.lambda_record(
            r,
            (
                format!("ev-{}", rec.sequence),
                rec.event_name,
                (now_ms() / 1000) as i64,
            ),
            (&rec.key, rec.new_image.as_ref(), rec.old_image.as_ref()),
            &sequence,
            size,
        );
        Record {
            lambda,
            sequence,
            key: rec.key,
            new_image: rec.new_image,
            removed: rec.event_name == "REMOVE",
            read_at: self.tick,
            write_time: Some(rec.sequence),
        }
    }

    fn convert(&self, r: &Region, rec: &aws_sdk_dynamodbstreams::types::Record) -> Record {
        let change = rec.dynamodb.as_ref().expect("a stream record");
        let image = |m: &Option<HashMap<String, StreamValue>>| {
            m.as_ref().map(|m| {
                Item::from(
                    m.iter()
                        .map(|(k, v)| (k.clone(), from_stream(v)))
                        .collect::<HashMap<_, _>>(),
                )
            })
        };
        let key = image(&change.keys).unwrap_or_default();
        let new_image = image(&change.new_image);
        let old_image = image(&change.old_image);
        let sequence = change.sequence_number.clone().unwrap_or_default();
        let event_name = rec
            .event_name
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default();
        // Lambda gives whole seconds; moto gives fractions.
        let seconds = change
            .approximate_creation_date_time
            .map(|t| t.secs())
            .unwrap_or(0);
        let mut lambda = self.lambda_record(
            r,
            (
                rec.event_id.clone().unwrap_or_default(),
                &event_name,
                seconds,
            ),
            (&key, new_image.as_ref(), old_image.as_ref()),
            &sequence,
            change.size_bytes.unwrap_or(0),
        );
        if let Some(u) = &rec.user_identity {
            lambda["userIdentity"] = json!({
                "type": u.r#type.clone().unwrap_or_default(),
                "principalId": u.principal_id.clone().unwrap_or_default(),
            });
        }
        Record {
            lambda,
            sequence,
            key,
            new_image,
            removed: event_name == "REMOVE",
            read_at: self.tick,
            write_time: None,
        }
    }
}

/// The item's plain values, without key and stamp, as `{a=1, b="x"}`.
pub fn show(item: &Item, schema: &Schema) -> String {
    let mut parts: Vec<(String, String)> = item
        .iter()
        .filter(|(k, _)| !schema.is_reserved(k) && !schema.key_attributes().any(|n| n == *k))
        .map(|(k, v)| (k.clone(), show_value(v)))
        .collect();
    parts.sort();
    let inner: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// One value, briefly.
pub fn show_value(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".into(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => {
            let mut v = v.clone();
            v.sort();
            format!("<{}>", v.join(","))
        }
        other => format!("{other:?}"),
    }
}

fn streams_client(sdk: &SdkConfig, r: &Region) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .region(aws_sdk_dynamodbstreams::config::Region::new(r.to_string()))
            .build(),
    )
}

fn stamp_time(item: &Item, stamp_attribute: &str) -> Option<u64> {
    match item.get(stamp_attribute) {
        Some(AttributeValue::M(m)) => match m.get("t") {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        },
        _ => None,
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

fn from_stream(v: &StreamValue) -> AttributeValue {
    match v {
        StreamValue::S(s) => AttributeValue::S(s.clone()),
        StreamValue::N(n) => AttributeValue::N(n.clone()),
        StreamValue::B(b) => AttributeValue::B(b.as_ref().to_vec()),
        StreamValue::Bool(b) => AttributeValue::Bool(*b),
        StreamValue::Null(b) => AttributeValue::Null(*b),
        StreamValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), from_stream(v))).collect())
        }
        StreamValue::L(l) => AttributeValue::L(l.iter().map(from_stream).collect()),
        StreamValue::Ss(v) => AttributeValue::Ss(v.clone()),
        StreamValue::Ns(v) => AttributeValue::Ns(v.clone()),
        StreamValue::Bs(v) => AttributeValue::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
        other => panic!("unknown attribute value from the stream: {other:?}"),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
