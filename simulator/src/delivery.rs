//! Lambda's event source mapping, played per Region with the settings the
//! template deploys ([`Mapping::deployed`], read from `template.yaml`):
//!
//! - the backlog of stream records is cut into batches (batch size,
//!   batching window in ticks) and given to the Region's resolver
//!   in-process, with the deadline of a short Lambda timeout
//!   ([`LAMBDA_TIMEOUT`]);
//! - every Region's mapping runs at the same time: the Regions' deliveries
//!   are joined in one step and interleave at each store call (the
//!   resolvers' stores yield before every call, see [`crate::faults`]);
//! - `batchItemFailures` (`ReportBatchItemFailures`): Lambda checkpoints at
//!   the lowest failed sequence number and retries the rest of the batch;
//!   without that response type the answer is ignored, as Lambda does;
//! - a whole-invocation failure (the invocation killed at a random call by
//!   its timeout, a response naming no record, or a moto call past the
//!   timeout): the batch is retried whole, split in two first with
//!   `BisectBatchOnFunctionError` (splits are not retries); a failed
//!   batch is retried at the next tick;
//! - after `MaximumRetryAttempts` the remaining records of the failing batch
//!   go to the on-failure destination ([`SetAside`], kept with their images)
//!   and the shard moves on;
//! - batches can be delivered twice, and the first delivery of a batch can
//!   fail from a random record on after the resolver ran.
//!
//! The counts land in [`crate::cluster::Stats`].

use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use homeward::Region;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use resolver::{Config, Resolver, StreamEvent, Summary};
use serde_dynamo::Item;
use serde_json::{json, Value};

use crate::cluster::{Cluster, SimStore, Spec};
use homeward::faults::{FaultStats, FaultyStore};

use crate::faults::{mix, Injected, ResolverStores};
use crate::streams::Record;

/// The event source mapping's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// `BatchSize`.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`.
    pub batching_window_seconds: u64,
    /// `MaximumRetryAttempts` (`None`: -1, retried until the records
    /// expire).
    pub max_retries: Option<u32>,
    /// `BisectBatchOnFunctionError`.
    pub bisect: bool,
    /// `FunctionResponseTypes` holds `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `MaximumRecordAgeInSeconds`, when set.
    pub max_record_age_seconds: Option<u64>,
    /// The function's `Timeout`.
    pub timeout: Duration,
}

/// The Lambda timeout the harness gives each invocation: shorter than the
/// template's (histories stay fast, and a hung call or a slow retry loop
/// meets it), long enough for the resolver's margins.
pub const LAMBDA_TIMEOUT: Duration = Duration::from_secs(6);

/// The template the deployed stack is built from.
const TEMPLATE: &str = include_str!("../../template.yaml");

/// Why the template's mapping cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("template.yaml: {0}")]
pub struct TemplateError(String);

impl Mapping {
    /// The mapping `template.yaml` deploys (its parameters' defaults).
    ///
    /// # Panics
    /// When the template has no readable DynamoDB event source: the
    /// simulator would test something else than what is deployed.
    pub fn deployed() -> &'static Mapping {
        static DEPLOYED: OnceLock<Mapping> = OnceLock::new();
        DEPLOYED.get_or_init(|| Mapping::from_template(TEMPLATE).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The mapping of the first function with a `DynamoDB` event in a SAM
    /// template; `!Ref` to a parameter takes the parameter's default.
    ///
    /// # Errors
    /// [`TemplateError`] naming what is missing or not understood.
    pub fn from_template(text: &str) -> Result<Mapping, TemplateError> {
        let doc: Yaml = serde_norway::from_str(text).map_err(|e| TemplateError(e.to_string()))?;
        let parameters = doc.get("Parameters");
        let resources = doc
            .get("Resources")
            .and_then(Yaml::as_mapping)
            .ok_or_else(|| TemplateError("no Resources".into()))?;
        for (_, resource) in resources {
            let Some(properties) = resource.get("Properties") else {
                continue;
            };
            let Some(events) = properties.get("Events").and_then(Yaml::as_mapping) else {
                continue;
            };
            for (name, event) in events {
                if event.get("Type").and_then(Yaml::as_str) != Some("DynamoDB") {
                    continue;
                }
                let Some(p) = event.get("Properties") else {
                    continue;
                };
                let get = |field: &str| -> Result<Option<Yaml>, TemplateError> {
                    p.get(field).map(|v| resolve(v, parameters)).transpose()
                };
                let number = |field: &str| -> Result<Option<i64>, TemplateError> {
                    get(field)?
                        .map(|v| {
                            as_number(&v).ok_or_else(|| {
                                TemplateError(format!(
                                    "event {name:?}: {field} is not a number: {v:?}"
                                ))
                            })
                        })
                        .transpose()
                };
                let bisect = match get("BisectBatchOnFunctionError")? {
                    None => false,
                    Some(Yaml::Bool(b)) => b,
                    Some(other) => {
                        return Err(TemplateError(format!(
                            "BisectBatchOnFunctionError is not a boolean: {other:?}"
                        )))
                    }
                };
                let report = match get("FunctionResponseTypes")? {
                    None => false,
                    Some(Yaml::Sequence(types)) => types
                        .iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
                    Some(other) => {
                        return Err(TemplateError(format!(
                            "FunctionResponseTypes is not a list: {other:?}"
                        )))
                    }
                };
                let timeout = match properties.get("Timeout") {
                    Some(v) => as_number(&resolve(v, parameters)?),
                    None => doc
                        .get("Globals")
                        .and_then(|g| g.get("Function"))
                        .and_then(|f| f.get("Timeout"))
                        .and_then(as_number),
                }
                .unwrap_or(3);
                return Ok(Mapping {
                    // Lambda's defaults for DynamoDB streams: 100 records,
                    // no window, retries until the records expire.
                    batch_size: number("BatchSize")?.unwrap_or(100).max(1) as usize,
                    batching_window_seconds: number("MaximumBatchingWindowInSeconds")?
                        .unwrap_or(0)
                        .max(0) as u64,
                    max_retries: match number("MaximumRetryAttempts")? {
                        None | Some(-1) => None,
                        Some(n) => Some(n.max(0) as u32),
                    },
                    bisect,
                    report_batch_item_failures: report,
                    max_record_age_seconds: number("MaximumRecordAgeInSeconds")?
                        .filter(|n| *n > 0)
                        .map(|n| n as u64),
                    timeout: Duration::from_secs(timeout.max(1) as u64),
                });
            }
        }
        Err(TemplateError("no function with a DynamoDB event".into()))
    }

    /// `MaximumRetryAttempts` as the spec counts it (`u32::MAX`: no limit).
    pub fn retries(&self) -> u32 {
        self.max_retries.unwrap_or(u32::MAX)
    }
}

type Yaml = serde_norway::Value;

/// A value with `!Ref Parameter` replaced by the parameter's default.
fn resolve(v: &Yaml, parameters: Option<&Yaml>) -> Result<Yaml, TemplateError> {
    let reference = match v {
        Yaml::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Yaml::Mapping(m) if m.len() == 1 => m.get("Ref").and_then(Yaml::as_str),
        _ => return Ok(v.clone()),
    };
    let Some(name) = reference else {
        return Err(TemplateError(format!("cannot resolve {v:?}")));
    };
    parameters
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("Default"))
        .cloned()
        .ok_or_else(|| TemplateError(format!("parameter {name} has no default")))
}

fn as_number(v: &Yaml) -> Option<i64> {
    match v {
        Yaml::Number(n) => n.as_i64(),
        Yaml::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A record Lambda gave up on: what the on-failure destination describes
/// (Region, sequence number), with the images the checker looks for in the
/// journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub region: String,
    pub sequence: String,
    pub key: Item,
    pub new_image: Option<Item>,
    pub old_image: Option<Item>,
}

/// One Region's event source mapping: the shard's retry state, and the
/// resolver's (faulty) stores.
pub(crate) struct Shard {
    pub(crate) stores: ResolverStores,
    /// Kills, duplicates and injected failures of this Region's deliveries.
    rng: StdRng,
    /// Failed deliveries of the batch at the checkpoint.
    retries: u32,
    /// Exact sizes of the next batches: a retry from the checkpoint, or
    /// the halves of a bisected batch.
    next: VecDeque<usize>,
    /// Batches (first sequence number) delivered once.
    seen: HashSet<String>,
}

impl Shard {
    pub(crate) fn new(spec: &Spec, place: usize, table: SimStore, journal: SimStore) -> Self {
        let faults = spec.faults.as_ref().map(|f| f.faults(place));
        let table = match &spec.lineage {
            Some(lineage) => SimStore::Traced(Box::new(crate::lineage::Traced {
                inner: crate::lineage::Base::of(table),
                reader: crate::cluster::region(spec.regions[place]),
                lineage: lineage.clone(),
                schema: homeward::Schema::new(
                    spec.partition_key.0,
                    spec.sort_key.as_ref().map(|s| s.0),
                ),
            })),
            None => table,
        };
        Shard {
            stores: ResolverStores::new(table, journal, faults),
            rng: StdRng::seed_from_u64(mix(spec.seed, place as u64 + 1_000)),
            retries: 0,
            next: VecDeque::new(),
            seen: HashSet::new(),
        }
    }
}

/// What one invocation came to.
enum Verdict {
    Success,
    /// `batchItemFailures`: the sequence numbers named.
    Partial(Vec<String>),
    /// The invocation failed whole.
    Whole(String),
}

/// What one Region's delivery did in a step, applied to the cluster's
/// stats after every Region's delivery is done.
#[derive(Default)]
struct Report {
    delivered: usize,
    invocations: Vec<(Summary, usize)>,
    injected_failures: usize,
    duplicate_deliveries: usize,
    killed: usize,
    whole_failures: usize,
    bisects: usize,
    set_aside: Vec<SetAside>,
    notes: Vec<String>,
}

/// What every Region's delivery reads.
struct Context<'a> {
    spec: &'a Spec,
    tick: u64,
    force: bool,
    /// Over moto, Lambda's own timeout bounds the invocation too (real
    /// time); in memory, time is virtual and the kill switch plays it.
    hard_timeout: bool,
}

/// One Region's delivery in a step.
struct Lane {
    region: Region,
    config: Config,
    backlog: VecDeque<Record>,
    shard: Shard,
    report: Report,
}

impl Cluster {
    /// Delivers each Region's backlog to its resolver, batch by batch, as
    /// Lambda would. Returns how many records were delivered.
    pub async fn deliver(&mut self) -> usize {
        self.deliver_with(false).await
    }

    /// `force`: ignore the batching window (settling, replays). Every
    /// Region's delivery runs at once.
    pub(crate) async fn deliver_with(&mut self, force: bool) -> usize {
        if !self.spec.resolvers {
            self.backlog.clear();
            return 0;
        }
        let mut lanes = Vec::new();
        for r in self.regions.clone() {
            let Some(shard) = self.shards.remove(&r) else {
                continue;
            };
            lanes.push(Lane {
                config: self.config(&r),
                backlog: self.backlog.remove(&r).unwrap_or_default(),
                shard,
                report: Report::default(),
                region: r,
            });
        }
        let ctx = Context {
            spec: &self.spec,
            tick: self.tick,
            force,
            hard_timeout: matches!(self.store, SimStore::Moto(_)),
        };
        // Boxed: a resolver invocation is a large future, and test threads
        // have small stacks.
        futures_util::future::join_all(lanes.iter_mut().map(|lane| Box::pin(lane.run(&ctx)))).await;
        let mut delivered = 0;
        for lane in lanes {
            let Lane {
                region,
                backlog,
                shard,
                report,
                ..
            } = lane;
            self.backlog.insert(region.clone(), backlog);
            self.shards.insert(region.clone(), shard);
            delivered += report.delivered;
            for (summary, records) in &report.invocations {
                self.count(&region, summary, *records);
            }
            let s = &mut self.stats;
            s.injected_failures += report.injected_failures;
            s.duplicate_deliveries += report.duplicate_deliveries;
            s.killed_invocations += report.killed;
            s.whole_failures += report.whole_failures;
            s.bisects += report.bisects;
            for lost in report.set_aside {
                s.set_aside.push(lost.sequence.clone());
                s.on_failure.push(lost);
            }
            for line in report.notes {
                self.note(|| line);
            }
        }
        delivered
    }

    /// What the platform did to the resolvers so far.
    pub fn injected(&self) -> Injected {
        let calls = self
            .shards
            .values()
            .fold(FaultStats::default(), |sum, s| sum.add(&s.stores.stats()));
        Injected {
            calls,
            killed_invocations: self.stats.killed_invocations as u64,
            whole_failures: self.stats.whole_failures as u64,
            bisects: self.stats.bisects as u64,
            on_failure: self.stats.on_failure.len() as u64,
            quarantined: self.stats.classes.get("quarantined").copied().unwrap_or(0) as u64,
        }
    }

    /// Records waiting in a backlog (a stalled shard, after settling).
    pub fn backlog_len(&self) -> usize {
        self.backlog.values().map(VecDeque::len).sum()
    }

    fn count(&mut self, region: &Region, summary: &Summary, records: usize) {
        self.stats.invocations += 1;
        self.stats.records_delivered += records;
        self.stats.resolver_writes += summary.writes;
        self.stats.journal_entries += summary.journal_entries;
        self.stats.failures += summary.failures;
        for (origin, lag) in &summary.lag {
            let worst = self
                .stats
                .lag_max
                .entry((origin.clone(), region.to_string()))
                .or_default();
            *worst = (*worst).max(lag.max);
        }
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
}

impl Lane {
    /// Delivers batches while the mapping would.
    async fn run(&mut self, ctx: &Context<'_>) {
        let spec = ctx.spec;
        let resolver = Resolver::new(
            self.config.clone(),
            self.shard.stores.table.clone(),
            self.shard.stores.journal.clone(),
        );
        let resolver = match &self.shard.stores.assignments {
            Some(store) => resolver.with_assignments(store.clone()),
            None => resolver,
        };
        while let Some(oldest) = self.backlog.front() {
            let size = match self.shard.next.front() {
                // A retry or a bisected half goes at once.
                Some(n) => (*n).min(self.backlog.len()),
                None => {
                    let full = self.backlog.len() >= spec.batch_size;
                    if !ctx.force && !full && oldest.read_at + spec.batching_window > ctx.tick {
                        break;
                    }
                    spec.batch_size.min(self.backlog.len())
                }
            };
            let batch: Vec<Record> = self.backlog.iter().take(size).cloned().collect();
            if let Some(lineage) = &spec.lineage {
                for b in &batch {
                    let key = resolver::journal::key_text(&b.key);
                    for image in [&b.new_image, &b.old_image].into_iter().flatten() {
                        lineage.read_by(&self.region, &key, image);
                    }
                }
            }
            let records: Vec<Value> = batch.iter().map(|b| b.lambda.clone()).collect();
            // Read as the function reads its payload.
            let event = StreamEvent::read_value(&json!({ "Records": records }), &resolver.config)
                .expect("a Lambda stream event");
            let first_time = self.shard.seen.insert(batch[0].sequence.clone());
            let twice = spec.deliver_twice
                || (spec.duplicate_rate > 0.0 && self.shard.rng.random_bool(spec.duplicate_rate));
            if twice && !spec.deliver_twice {
                self.report.duplicate_deliveries += 1;
            }
            let mut verdict = Verdict::Success;
            for _ in 0..if twice { 2 } else { 1 } {
                verdict = self.invoke(&resolver, &event, &batch, ctx).await;
                if matches!(verdict, Verdict::Whole(_)) {
                    break;
                }
            }
            if first_time
                && !matches!(verdict, Verdict::Whole(_))
                && spec.failure_rate > 0.0
                && self.shard.rng.random_bool(spec.failure_rate)
            {
                // The function failed after its writes: Lambda retries
                // from the record it had not acknowledged.
                let from = self.shard.rng.random_range(0..batch.len());
                let mut failed = match verdict {
                    Verdict::Partial(f) => f,
                    _ => Vec::new(),
                };
                failed.extend(batch[from..].iter().map(|b| b.sequence.clone()));
                verdict = Verdict::Partial(failed);
                self.report.injected_failures += 1;
            }
            self.report.delivered += batch.len();
            let failed = !matches!(verdict, Verdict::Success);
            self.checkpoint(&batch, verdict, spec);
            if failed {
                // Lambda retries after a pause: the next tick. (A record
                // that never passes then shows as a shard that never
                // settles, not as a harness that spins.)
                break;
            }
        }
    }

    /// One invocation of the resolver with `batch`; maybe killed at a
    /// random call, as Lambda's timeout kills a function between two
    /// awaits.
    async fn invoke(
        &mut self,
        resolver: &Resolver<FaultyStore<SimStore>, FaultyStore<SimStore>>,
        event: &StreamEvent<'_>,
        batch: &[Record],
        ctx: &Context<'_>,
    ) -> Verdict {
        let spec = ctx.spec;
        let switch = self.shard.stores.table.kill_switch();
        let kill_rate = spec.faults.as_ref().map_or(0.0, |f| f.kill_rate());
        let kill_at = (kill_rate > 0.0 && self.shard.rng.random_bool(kill_rate))
            .then(|| self.shard.rng.random_range(0..=3 * batch.len() as u64));
        if let Some(n) = kill_at {
            switch.arm(n);
        }
        let deadline = Instant::now() + spec.timeout;
        let invocation = Box::pin(resolver.handle(event, deadline));
        let handled = async {
            tokio::select! {
                biased;
                () = switch.tripped() => None,
                answer = invocation => Some(answer),
            }
        };
        let answer = if ctx.hard_timeout {
            // Lambda's own timeout, a little after the deadline it gave.
            tokio::time::timeout(spec.timeout + Duration::from_millis(100), handled)
                .await
                .unwrap_or(None)
        } else {
            handled.await
        };
        let fired = switch.fired();
        switch.disarm();
        let Some((response, summary)) = answer else {
            self.report.killed += 1;
            let at = match (fired, kill_at) {
                (true, Some(n)) => format!("after {n} store calls"),
                _ => "at its timeout".into(),
            };
            return Verdict::Whole(format!("killed {at}"));
        };
        self.report.invocations.push((summary, batch.len()));
        if !spec.report_failures {
            // Without ReportBatchItemFailures Lambda ignores the answer:
            // the batch counts as done.
            return Verdict::Success;
        }
        let mut failed = Vec::new();
        for f in response.batch_item_failures {
            match f.item_identifier {
                Some(id) if batch.iter().any(|b| b.sequence == id) => failed.push(id),
                // Lambda fails the whole batch on an empty, null or unknown
                // identifier.
                other => {
                    return Verdict::Whole(format!(
                        "invalid batchItemFailures identifier {other:?}"
                    ))
                }
            }
        }
        if failed.is_empty() {
            Verdict::Success
        } else {
            Verdict::Partial(failed)
        }
    }

    /// Moves the shard's checkpoint after an invocation of `batch`.
    fn checkpoint(&mut self, batch: &[Record], verdict: Verdict, spec: &Spec) {
        let n = batch.len();
        let r = &self.region;
        let shard = &mut self.shard;
        shard.next.pop_front();
        match verdict {
            Verdict::Success => {
                self.backlog.drain(..n);
                shard.retries = 0;
            }
            Verdict::Partial(failed) => {
                // Lambda checkpoints at the lowest failed sequence number
                // and retries the rest of the batch.
                let i = batch
                    .iter()
                    .position(|b| failed.contains(&b.sequence))
                    .unwrap_or(n);
                self.backlog.drain(..i);
                shard.retries += 1;
                if shard.retries > spec.max_retries {
                    self.report
                        .set_aside
                        .extend(batch[i..].iter().map(|b| set_aside(r, b)));
                    self.backlog.drain(..n - i);
                    shard.retries = 0;
                    self.report.notes.push(format!(
                        "lost    {r} event source: {} record(s) sent to the on-failure destination after {} retries",
                        n - i,
                        spec.max_retries
                    ));
                } else if i < n {
                    shard.next.push_front(n - i);
                }
            }
            Verdict::Whole(why) => {
                self.report.whole_failures += 1;
                if spec.bisect && n > 1 {
                    // Split in two; splitting is not a retry.
                    let first = n.div_ceil(2);
                    shard.next.push_front(n - first);
                    shard.next.push_front(first);
                    self.report.bisects += 1;
                    self.report.notes.push(format!(
                        "fail    {r} resolver invocation {why}: the batch of {n} is split in {first} + {}",
                        n - first
                    ));
                    return;
                }
                shard.retries += 1;
                if shard.retries > spec.max_retries {
                    self.report
                        .set_aside
                        .extend(batch.iter().map(|b| set_aside(r, b)));
                    self.backlog.drain(..n);
                    shard.retries = 0;
                    self.report.notes.push(format!(
                        "lost    {r} event source: {n} record(s) sent to the on-failure destination after {} retries",
                        spec.max_retries
                    ));
                } else {
                    shard.next.push_front(n);
                    self.report.notes.push(format!(
                        "fail    {r} resolver invocation {why}: the batch of {n} is retried"
                    ));
                }
            }
        }
    }
}

fn set_aside(region: &Region, record: &Record) -> SetAside {
    let image = |name: &str| {
        record.lambda["dynamodb"]
            .get(name)
            .and_then(|v| serde_json::from_value::<Item>(v.clone()).ok())
    };
    SetAside {
        region: region.to_string(),
        sequence: record.sequence.clone(),
        key: record.key.clone(),
        new_image: image("NewImage"),
        old_image: image("OldImage"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_mapping_is_read_from_the_template() {
        let m = Mapping::deployed();
        assert_eq!(m.batch_size, 100);
        assert_eq!(m.batching_window_seconds, 1);
        assert_eq!(m.max_retries, Some(10));
        assert!(m.bisect && m.report_batch_item_failures);
        assert_eq!(m.max_record_age_seconds, Some(21_600));
        assert_eq!(m.timeout, Duration::from_secs(60));
    }

    #[test]
    fn lambda_defaults_fill_what_the_template_leaves_out() {
        let text = r#"
Parameters:
  Size: {Type: Number, Default: 7}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: arn
            BatchSize: !Ref Size
            MaximumRetryAttempts: -1
"#;
        let m = Mapping::from_template(text).unwrap();
        assert_eq!(m.batch_size, 7);
        assert_eq!(m.max_retries, None);
        assert_eq!(m.retries(), u32::MAX);
        assert!(!m.bisect && !m.report_batch_item_failures);
        assert_eq!(m.timeout, Duration::from_secs(3));
        assert!(Mapping::from_template("Resources: {}").is_err());
    }
}
