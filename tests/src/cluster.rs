//! A global table on one machine: the same table in several Regions of one
//! moto server, replication played by this harness the way global tables do
//! it, and each Region's resolver fed from that Region's stream the way
//! Lambda's event source mapping does.
//!
//! - Replication tails every Region's stream and copies each local write to
//!   the other Regions with item-level last-writer-wins on the write time
//!   (the stamp's `t`); a losing copy is dropped, as DynamoDB drops it. What
//!   the harness applied itself is never replicated again. Links between
//!   Regions can be paused (copies queue up) and released in any order.
//! - Delivery turns stream records into Lambda events (eventSourceARN,
//!   whole-second timestamps), invokes the resolver in-process, honours
//!   `batchItemFailures` (redelivers from the lowest failed sequence number,
//!   at most `max_retries` times, then sets the records aside as Lambda's
//!   on-failure destination would) and can deliver every batch twice.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ScalarAttributeType;
use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, ShardIteratorType};
use homeward::dynamo::DynamoStore;
use homeward::{Merger, PutCondition, Region, Registry, Schema, Store, Writer};
use resolver::{Config, Resolver, StreamEvent, Summary};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};

use crate::{unique_table, MotoServer};

/// What a cluster is made of.
pub struct Spec {
    pub regions: Vec<&'static str>,
    pub partition_key: (&'static str, ScalarAttributeType),
    pub sort_key: Option<(&'static str, ScalarAttributeType)>,
    /// Extra resolver settings, as the environment would give them
    /// (`HOME_STRATEGY`, `MERGE_RULES`, `ACTION`, ...).
    pub resolver_env: Vec<(&'static str, String)>,
    /// Records per Lambda invocation.
    pub batch_size: usize,
    /// Deliver every batch twice (at-least-once delivery, G5).
    pub deliver_twice: bool,
    pub max_retries: u32,
}

impl Spec {
    pub fn new(regions: &[&'static str]) -> Self {
        Spec {
            regions: regions.to_vec(),
            partition_key: ("pk", ScalarAttributeType::S),
            sort_key: None,
            resolver_env: Vec::new(),
            batch_size: 100,
            deliver_twice: false,
            max_retries: 3,
        }
    }

    pub fn env(mut self, name: &'static str, value: &str) -> Self {
        self.resolver_env.push((name, value.to_owned()));
        self
    }
}

/// One stream record as read from moto, kept both ways.
#[derive(Debug, Clone)]
struct Record {
    lambda: Value,
    sequence: String,
    key: Item,
    new_image: Option<Item>,
    removed: bool,
}

/// A copy on its way from one Region to another.
#[derive(Debug, Clone)]
struct Copy {
    key: Item,
    /// `None`: a delete.
    item: Option<Item>,
    write_time: u64,
}

#[derive(Default)]
struct Link {
    paused: bool,
    queue: VecDeque<Copy>,
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
    /// Records given up on after `max_retries` (the on-failure queue).
    pub set_aside: Vec<String>,
    pub classes: BTreeMap<&'static str, usize>,
    /// The same, per Region: (Region, class) -> records.
    pub by_region: BTreeMap<(String, &'static str), usize>,
}

pub struct Cluster {
    pub table: String,
    pub journal_table: String,
    pub regions: Vec<Region>,
    pub schema: Schema,
    pub merger: Merger,
    pub stats: Stats,
    sdk: SdkConfig,
    spec: Spec,
    store: DynamoStore,
    journal_store: DynamoStore,
    stream_arns: HashMap<Region, String>,
    iterators: HashMap<Region, Vec<String>>,
    backlog: HashMap<Region, VecDeque<Record>>,
    retries: HashMap<Region, u32>,
    links: BTreeMap<(Region, Region), Link>,
    /// Items the harness wrote itself, per Region: not to be replicated.
    applied: HashMap<Region, Vec<Item>>,
    /// Every record each Region's resolver has been given, in order.
    history: HashMap<Region, Vec<Record>>,
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("a Region name")
}

impl Cluster {
    /// Creates the table and a journal table in every Region of `spec`.
    ///
    /// # Panics
    /// When moto refuses the setup: a broken harness, not a test failure.
    pub async fn start(server: &MotoServer, test: &str, spec: Spec) -> Self {
        let table = unique_table(test);
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
        let store = DynamoStore::new(sdk.clone(), &table, schema.clone());
        let journal_store =
            DynamoStore::new(sdk.clone(), &journal_table, Schema::new("pk", Some("sk")));
        let mut links = BTreeMap::new();
        for a in &regions {
            for b in &regions {
                if a != b {
                    links.insert((a.clone(), b.clone()), Link::default());
                }
            }
        }
        let mut cluster = Cluster {
            table,
            journal_table,
            regions,
            schema,
            merger: Merger::new(homeward::Rules::default()),
            stats: Stats::default(),
            sdk,
            spec,
            store,
            journal_store,
            stream_arns,
            iterators,
            backlog: HashMap::new(),
            retries: HashMap::new(),
            links,
            applied: HashMap::new(),
            history: HashMap::new(),
        };
        cluster.merger = cluster.config(&cluster.regions[0].clone()).merger;
        cluster
    }

    /// The resolver configuration of `region`.
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
        Config::from_lookup(|k| vars.get(k).cloned(), &Registry::new()).expect("resolver config")
    }

    /// The stamped writer, with the resolvers' merge rules.
    pub fn writer(&self) -> Writer<DynamoStore> {
        Writer::new(self.store.clone(), self.schema.clone(), self.merger.clone())
    }

    pub fn store(&self) -> &DynamoStore {
        &self.store
    }

    pub fn journal_store(&self) -> DynamoStore {
        self.journal_store.clone()
    }

    /// The raw item in `region`.
    pub async fn read(&self, region: &str, key: &Item) -> Option<Item> {
        self.store
            .get(&self::region(region), key)
            .await
            .expect("get item")
    }

    /// Every journal entry written by `region`'s resolver.
    pub async fn journal(&self, region: &str) -> Vec<Item> {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
                .build(),
        );
        let out = client
            .scan()
            .table_name(&self.journal_table)
            .send()
            .await
            .expect("scan journal");
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(Item::from)
            .collect()
    }

    /// Every item in `region`, by key text.
    pub async fn items(&self, region: &str) -> BTreeMap<String, Item> {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .region(aws_sdk_dynamodb::config::Region::new(region.to_owned()))
                .build(),
        );
        let out = client
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan table");
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(Item::from)
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

    /// Reverses the queued copies of a link: a later write arrives first.
    pub fn reorder(&mut self, from: &str, to: &str) {
        let link = self.link(from, to);
        let queue: Vec<Copy> = link.queue.drain(..).rev().collect();
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
            let streams = streams_client(&self.sdk, &r);
            let mut next = Vec::new();
            for it in self.iterators.remove(&r).unwrap_or_default() {
                let out = streams
                    .get_records()
                    .shard_iterator(&it)
                    .send()
                    .await
                    .expect("get records");
                for rec in out.records.unwrap_or_default() {
                    let record = self.convert(&r, &rec);
                    read += 1;
                    self.route(&r, &record);
                    self.history
                        .entry(r.clone())
                        .or_default()
                        .push(record.clone());
                    self.backlog.entry(r.clone()).or_default().push_back(record);
                }
                next.push(out.next_shard_iterator.unwrap_or(it));
            }
            self.iterators.insert(r, next);
        }
        read
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
        let write_time = record
            .new_image
            .as_ref()
            .and_then(|i| stamp_time(i, &self.schema.stamp_attribute))
            .unwrap_or_else(now_ms);
        for ((from, _), link) in self.links.range_mut((r.clone(), region("a"))..) {
            if from != r {
                break;
            }
            link.queue.push_back(Copy {
                key: record.key.clone(),
                item: record.new_image.clone(),
                write_time,
            });
        }
    }

    /// Applies every queued copy on links that are not paused. Returns how
    /// many copies were processed.
    pub async fn replicate(&mut self) -> usize {
        let mut done = 0;
        let keys: Vec<(Region, Region)> = self.links.keys().cloned().collect();
        for (from, to) in keys {
            loop {
                let link = self
                    .links
                    .get_mut(&(from.clone(), to.clone()))
                    .expect("link");
                if link.paused {
                    break;
                }
                let Some(copy) = link.queue.pop_front() else {
                    break;
                };
                self.apply_copy(&to, copy).await;
                done += 1;
            }
        }
        done
    }

    /// Last writer wins, per item, on the write time.
    async fn apply_copy(&mut self, to: &Region, copy: Copy) {
        loop {
            let current = self
                .store
                .get(to, &copy.key)
                .await
                .expect("get for replication");
            let current_time = current
                .as_ref()
                .map(|c| stamp_time(c, &self.schema.stamp_attribute).unwrap_or(0));
            if current_time.is_some_and(|t| t > copy.write_time) {
                self.stats.copies_dropped += 1;
                return;
            }
            let Some(item) = &copy.item else {
                let client = aws_sdk_dynamodb::Client::from_conf(
                    aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                        .region(aws_sdk_dynamodb::config::Region::new(to.to_string()))
                        .build(),
                );
                if current.is_some() {
                    client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(copy.key.clone().into()))
                        .send()
                        .await
                        .expect("replicate delete");
                    self.applied
                        .entry(to.clone())
                        .or_default()
                        .push(copy.key.clone());
                }
                self.stats.copies_applied += 1;
                return;
            };
            if current.as_ref() == Some(item) {
                self.stats.copies_applied += 1;
                return;
            }
            let condition = match &current {
                None => PutCondition::NotExists,
                Some(c) => match homeward::classify::peek(c, &self.schema.stamp_attribute) {
                    Ok(Some(h)) => PutCondition::DotIs(h.dot.encode()),
                    _ => PutCondition::Unstamped,
                },
            };
            match self.store.put(to, item, &condition).await {
                Ok(()) => {
                    self.applied
                        .entry(to.clone())
                        .or_default()
                        .push(item.clone());
                    self.stats.copies_applied += 1;
                    return;
                }
                Err(homeward::StoreError::ConditionFailed) => continue,
                Err(e) => panic!("replication put failed: {e}"),
            }
        }
    }

    /// Delivers each Region's backlog to its resolver, batch by batch, as
    /// Lambda would. Returns how many records were delivered.
    pub async fn deliver(&mut self) -> usize {
        let mut delivered = 0;
        for r in self.regions.clone() {
            let resolver = Resolver::new(
                self.config(&r),
                self.store.clone(),
                self.journal_store.clone(),
            );
            loop {
                let backlog = self.backlog.entry(r.clone()).or_default();
                if backlog.is_empty() {
                    break;
                }
                let batch: Vec<Record> =
                    backlog.iter().take(self.spec.batch_size).cloned().collect();
                let records: Vec<Value> = batch.iter().map(|b| b.lambda.clone()).collect();
                let event: StreamEvent = serde_json::from_value(json!({ "Records": records }))
                    .expect("a Lambda stream event");
                let times = if self.spec.deliver_twice { 2 } else { 1 };
                let mut failed: Vec<String> = Vec::new();
                for _ in 0..times {
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
    }

    /// Runs replication and the resolvers until nothing moves (paused links
    /// keep their copies). Panics after `max_rounds`: a system that does not
    /// settle is a resolver loop (G6).
    pub async fn settle(&mut self) {
        for _ in 0..50 {
            let read = self.read_streams().await;
            let copied = self.replicate().await;
            let delivered = self.deliver().await;
            if read == 0 && copied == 0 && delivered == 0 {
                return;
            }
        }
        panic!(
            "the cluster did not settle in 50 rounds: a resolver loop? stats: {:?}",
            self.stats
        );
    }

    /// Delivers every record each resolver has ever been given again, cut
    /// into batches of `batch_size` (at-least-once delivery with different
    /// batch boundaries), then settles.
    pub async fn replay(&mut self, batch_size: usize) {
        let old = self.spec.batch_size;
        self.spec.batch_size = batch_size;
        for (r, records) in self.history.clone() {
            self.backlog.entry(r).or_default().extend(records);
        }
        self.deliver().await;
        self.spec.batch_size = old;
        self.settle().await;
    }

    /// Copies queued on paused links.
    pub fn queued(&self) -> usize {
        self.links.values().map(|l| l.queue.len()).sum()
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
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": seconds,
            "Keys": serde_json::to_value(&key).expect("keys"),
            "SequenceNumber": sequence,
            "SizeBytes": change.size_bytes.unwrap_or(0),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(i) = &new_image {
            dynamodb["NewImage"] = serde_json::to_value(i).expect("image");
        }
        if let Some(i) = &old_image {
            dynamodb["OldImage"] = serde_json::to_value(i).expect("image");
        }
        let mut lambda = json!({
            "eventID": rec.event_id.clone().unwrap_or_default(),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": r.as_str(),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arns[r],
        });
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
        }
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
