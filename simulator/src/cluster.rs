//! A global table on one machine: the same table in several Regions (of one
//! moto server, or in memory), replication played by this harness the way
//! global tables do it, and each Region's resolver fed from that Region's
//! stream the way Lambda's event source mapping does.
//!
//! Time is logical: one [`Cluster::step`] is a tick. Each step reads every
//! stream, applies the copies that are due, and delivers what each Region's
//! event source mapping would. This module holds the cluster itself: its
//! setup (moto or memory), reads, and settling and replaying; each
//! behaviour lives in its own module:
//!
//! - [`crate::streams`]: polling the streams, turning changes into Lambda
//!   records;
//! - [`crate::replication`]: links, copies and last-writer-wins;
//! - [`crate::delivery`]: the event source mapping (batches,
//!   `batchItemFailures`, retries, set-aside records).
//!
//! With resolvers off the same timeline shows plain last-writer-wins.

use std::collections::{BTreeMap, HashMap, VecDeque};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ScalarAttributeType;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use homeward::dynamo::DynamoStore;
use homeward::store::Page;
use homeward::{
    Merger, PutCondition, PutResult, Region, Registry, Schema, Store, StoreError, Writer,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use resolver::Config;
use serde_dynamo::{AttributeValue, Item};

use crate::memory::MemStore;
use crate::replication::Link;
use crate::streams::{streams_client, Record, Streams};
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
    /// `MaximumRetryAttempts` (`u32::MAX`: no limit).
    pub max_retries: u32,
    /// `BisectBatchOnFunctionError`: a batch that failed whole is split in
    /// two before it is retried.
    pub bisect: bool,
    /// `ReportBatchItemFailures`: the resolver's `batchItemFailures` are
    /// honoured (without it Lambda ignores them).
    pub report_failures: bool,
    /// The Lambda timeout: each invocation's deadline.
    pub timeout: std::time::Duration,
    /// Faults injected into the resolvers' store calls, and invocations
    /// killed at a call ([`crate::faults`]); `None`: none.
    pub faults: Option<crate::faults::FaultSpec>,
    /// Each Region's writers' clock skew in ms (ahead when positive): the
    /// stamps' `t` is off by it; last-writer-wins never sees it.
    pub clocks: BTreeMap<String, i64>,
    /// Every link's latency unless `latencies` names it.
    pub latency: Latency,
    /// Per link (from, to).
    pub latencies: BTreeMap<(String, String), Latency>,
    /// Seeds the harness's own randomness (jitter, injected failures).
    pub seed: u64,
    /// Keep a readable timeline of what happens ([`Cluster::take_timeline`]).
    pub trace: bool,
    /// The table's name on moto (default: unique per test); the journal is
    /// `<name>-journal`.
    pub table_name: Option<String>,
    /// Track which plain writes every image includes (the checker's
    /// ground truth for plain writers, [`crate::lineage`]).
    pub lineage: Option<crate::lineage::Lineage>,
}

impl Spec {
    pub fn new(regions: &[&'static str]) -> Self {
        Spec {
            regions: regions.to_vec(),
            partition_key: ("pk", ScalarAttributeType::S),
            sort_key: None,
            resolver_env: Vec::new(),
            registry: homeward::custom_rules::registry(),
            resolvers: true,
            batch_size: 100,
            batching_window: 0,
            filters: crate::filter::Filters::default(),
            deliver_twice: false,
            duplicate_rate: 0.0,
            failure_rate: 0.0,
            max_retries: 3,
            bisect: true,
            report_failures: true,
            timeout: crate::delivery::LAMBDA_TIMEOUT,
            faults: None,
            clocks: BTreeMap::new(),
            latency: Latency::default(),
            latencies: BTreeMap::new(),
            seed: 0,
            trace: false,
            table_name: None,
            lineage: None,
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
    /// A resolver's store with lineage tracing ([`crate::lineage`]).
    Traced(Box<crate::lineage::Traced>),
}

impl Store for SimStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        match self {
            SimStore::Moto(s) => s.get(region, key).await,
            SimStore::Memory(s) => s.get(region, key).await,
            SimStore::Traced(s) => s.get(region, key).await,
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
            SimStore::Traced(s) => s.put(region, item, condition).await,
        }
    }

    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        match self {
            SimStore::Moto(s) => s.put_returning(region, item, condition).await,
            SimStore::Memory(s) => s.put_returning(region, item, condition).await,
            SimStore::Traced(s) => s.put_returning(region, item, condition).await,
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
            SimStore::Traced(s) => s.scan(region, start, limit).await,
        }
    }
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
    /// The same records with their images.
    pub on_failure: Vec<crate::delivery::SetAside>,
    /// Invocations killed at a call (Lambda's timeout).
    pub killed_invocations: usize,
    /// Invocations that failed whole, and how many were bisected.
    pub whole_failures: usize,
    pub bisects: usize,
    pub classes: BTreeMap<&'static str, usize>,
    /// The same, per Region: (Region, class) -> records.
    pub by_region: BTreeMap<(String, &'static str), usize>,
    /// The largest replication lag (whole seconds) each Region's resolver
    /// measured from each origin Region: (origin, Region) -> seconds.
    pub lag_max: BTreeMap<(String, String), u64>,
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
    pub(crate) spec: Spec,
    pub(crate) store: SimStore,
    pub(crate) journal_store: SimStore,
    pub(crate) streams: Streams,
    pub(crate) stream_arns: HashMap<Region, String>,
    pub(crate) backlog: HashMap<Region, VecDeque<Record>>,
    /// Each Region's event source mapping and resolver stores.
    pub(crate) shards: HashMap<Region, crate::delivery::Shard>,
    pub(crate) links: BTreeMap<(Region, Region), Link>,
    /// Items the harness wrote itself, per Region: not to be replicated.
    pub(crate) applied: HashMap<Region, Vec<Item>>,
    /// On moto, the service's time of each item's current version, kept by
    /// the harness beside the item, per (Region, key text), with the
    /// version it dates (a replicated copy keeps its origin's time).
    pub(crate) server_times: HashMap<(Region, String), (u64, Item)>,
    /// Every record each Region's resolver has been given, in order.
    pub(crate) history: HashMap<Region, Vec<Record>>,
    pub(crate) rng: StdRng,
    pub(crate) timeline: Vec<String>,
}

pub(crate) fn region(name: &str) -> Region {
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
            shards: HashMap::new(),
            links,
            applied: HashMap::new(),
            server_times: HashMap::new(),
            history: HashMap::new(),
            rng,
            timeline: Vec::new(),
        };
        cluster.merger = cluster.config(&cluster.regions[0].clone()).merger;
        for (place, r) in cluster.regions.iter().enumerate() {
            let shard = crate::delivery::Shard::new(
                &cluster.spec,
                place,
                cluster.store.clone(),
                cluster.journal_store.clone(),
            );
            cluster.shards.insert(r.clone(), shard);
        }
        cluster
    }

    /// Negotiated homes: the resolvers read the assignments from `store`
    /// (another cluster's table, replicated like a global table), each in
    /// its own Region's replica, faulted like their other stores.
    pub fn use_assignments(&mut self, store: &SimStore) {
        for shard in self.shards.values_mut() {
            let wrapped = shard.stores.table.wrap(store.clone());
            shard.stores.assignments = Some(wrapped);
        }
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
    ///
    /// Each Region's writes are stamped by that Region's clock, off by the
    /// spec's `clocks` skew.
    pub fn writer(&self) -> Writer<SimStore> {
        let skews = self.spec.clocks.iter().map(|(r, skew)| (region(r), *skew));
        Writer::new(self.store.clone(), self.schema.clone(), self.merger.clone())
            .with_clock(homeward::writer::Clock::per_region(skews))
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

    pub(crate) fn client(sdk: &SdkConfig, region: &str) -> aws_sdk_dynamodb::Client {
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
            (Streams::Memory { .. }, SimStore::Moto(_)) | (_, SimStore::Traced(_)) => {
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

    pub(crate) fn key_of(&self, item: &Item) -> Item {
        let mut key = item.clone();
        key.retain(|k, _| self.schema.key_attributes().any(|n| n == k));
        key
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
            (SimStore::Moto(_), Streams::Memory { .. }) | (SimStore::Traced(_), _) => {
                unreachable!("moto store, memory streams")
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

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
