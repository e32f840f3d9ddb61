//! The randomized convergence checker: random concurrent histories on a
//! simulated global table, each run to quiescence and checked against
//! ground truth the checker keeps itself.
//!
//! A history writes a few items (one of them hot) from every Region through
//! the stamped writer: plain attributes (`lww`), a set (`tags`, `union`), a
//! counter (`n`), soft deletes; with random link delays and jitter (each
//! link keeps per-item order, items overtake each other), partitions that
//! heal, duplicate deliveries, and first deliveries that fail after the
//! resolver ran (Lambda then redelivers from the lowest failed record).
//! Each Region's writers have their own clock, off by a skew drawn per
//! history in ±[`CheckConfig::clock_skew_ms`] (2 s by default): the stamps'
//! `t` is skewed, replication's last-writer-wins (the service's time) is
//! not. Every Region's event source mapping applies the FilterCriteria
//! `template.yaml` deploys ([`crate::filter::Filters::deployed`]) unless
//! the config says otherwise. The platform is hostile by default
//! ([`CheckConfig::fault_rate`], 20%): the resolvers' store calls are
//! throttled, fail with a 5xx, time out after taking effect or hang until
//! the client's timeout; invocations are killed at a random call (between
//! the home put and the journal put, say); the Regions' resolvers run at
//! once, interleaved at every call; the event source mapping runs with the
//! template's settings (bisection, `MaximumRetryAttempts`, partial batch
//! responses, [`crate::delivery`]). One shape of step has every Region
//! write the hot item at once.
//!
//! Ground truth: every edit the writer made (item, attribute, value, dot
//! from the returned version, and what that version knew) and every
//! counter increment. The checks, after every link heals and the cluster
//! settles:
//! - convergence: every Region holds identical items;
//! - nothing lost: each edit is in the final register of its attribute, or
//!   a causally later edit of that attribute (one whose version knows the
//!   edit's dot) superseded it;
//! - rules: the value shown among concurrent edits is what the attribute's
//!   rule decides (`lww`: the latest by time, Region, dot; `union`: every
//!   element) and a single edit shows its own value;
//! - journaled: every attribute a rule chose among concurrent edits is
//!   explained by a journal entry of its item;
//! - counters exact: the total is the sum of every increment;
//! - no loop: the cluster settles within a bound, and delivering every
//!   record again (cut into other batches) writes nothing and journals
//!   nothing new;
//! - no stall: after settling no record waits in a backlog, and nothing
//!   sits in the on-failure destination unless the journal holds its
//!   images (a quarantine entry): a record Lambda gave up on is a loss.
//!
//! A history is `(seed, steps)`: its operations come from a generator
//! seeded with `seed`, and the first `steps` of them are played, so a
//! failure is minimized by replaying shorter prefixes, and replayed with
//! `homeward-sim check --histories 1 --seed S --steps K`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use homeward::version::Register;
use homeward::{Dot, Region, Registry, Version, WriteError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::{Cluster, Latency, SimStore, Spec};
use crate::conform::Write;
use crate::delivery::{Mapping, SetAside};
use crate::faults::{FaultSpec, Injected, VirtualTime};
use crate::scenario::Backend;

const REGION_NAMES: [&str; 5] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "ap-northeast-1",
    "sa-east-1",
];
const PLAIN: [&str; 3] = ["a", "b", "c"];
const COUNTER: &str = "n";
const SET: &str = "tags";
/// The rules the checker's reference expects.
pub const RULES: &str = r#"{"attributes":{"n":"counter","tags":"union"}}"#;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub histories: usize,
    pub regions: usize,
    /// History `i` uses seed `seed + i`.
    pub seed: u64,
    /// Operations per history.
    pub steps: usize,
    pub items: usize,
    /// `MERGE_RULES` for the writers and resolvers. The checks assume
    /// [`RULES`]: a different rule for a plain attribute shows up as a
    /// violation (how the tests catch a broken merge).
    pub rules: String,
    /// Shorten failing histories to the smallest failing prefix.
    pub minimize: bool,
    /// FilterCriteria of every Region's event source mapping (default: the
    /// ones `template.yaml` deploys, per Region; empty: none).
    pub filters: crate::filter::Filters,
    /// Each history draws each Region's writers' clock skew uniformly in
    /// ±`clock_skew_ms` (the stamps' `t` is off by it; last-writer-wins
    /// uses the service's time); 0 turns skew off.
    pub clock_skew_ms: u64,
    /// `REHOME` for the resolvers (`None`: the default, `evacuated`).
    pub rehome: Option<String>,
    /// Share of the resolvers' store calls faulted (throttling, 5xx,
    /// timeouts after effect, hung calls), and half as many invocations
    /// killed at a call; 0 turns faults off.
    pub fault_rate: f64,
    /// The writers the histories write through: the Rust writer, or
    /// (`conform`) a share of the writes through an external one.
    pub writer: crate::conform::WriterChoice,
}

/// The checker's default bound on each Region's clock skew, in ms.
pub const CLOCK_SKEW_MS: u64 = 2000;

/// The checker's default share of faulted calls.
pub const FAULT_RATE: f64 = 0.2;

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            histories: 200,
            regions: 3,
            seed: 1,
            steps: 24,
            items: 3,
            rules: RULES.into(),
            minimize: true,
            filters: crate::filter::Filters::deployed(&REGION_NAMES),
            clock_skew_ms: CLOCK_SKEW_MS,
            rehome: None,
            fault_rate: FAULT_RATE,
            writer: crate::conform::WriterChoice::Rust,
        }
    }
}

impl CheckConfig {
    /// The flags that replay a history of this check (besides its seed and
    /// steps).
    pub fn replay_flags(&self) -> String {
        let mut flags = format!(" --regions {}", self.regions);
        if let Some(rehome) = &self.rehome {
            flags.push_str(&format!(" --rehome {rehome}"));
        }
        if self.fault_rate != FAULT_RATE {
            flags.push_str(&format!(" --fault-rate {}", self.fault_rate));
        }
        if self.clock_skew_ms != CLOCK_SKEW_MS {
            flags.push_str(&format!(" --clock-skew {}", self.clock_skew_ms));
        }
        if self.filters.is_empty() {
            flags.push_str(" --no-filters");
        }
        flags
    }
}

/// One failing history.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The subcommand (and its writer) that replays it: `check`, or
    /// `conform --writer '...'`.
    pub command: String,
    pub seed: u64,
    pub steps: usize,
    pub memory: bool,
    /// The other flags the replay needs ([`CheckConfig::replay_flags`]).
    pub flags: String,
    pub violations: Vec<String>,
    pub history: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION in history seed {} (minimized to {} steps); replay with:\n  homeward-sim {} --histories 1 --seed {} --steps {}{}{}",
            self.seed,
            self.steps,
            self.command,
            self.seed,
            self.steps,
            self.flags,
            if self.memory { " --memory" } else { "" }
        )?;
        writeln!(f, "history:")?;
        for h in &self.history {
            writeln!(f, "  {h}")?;
        }
        writeln!(f, "violations:")?;
        for v in &self.violations {
            writeln!(f, "  - {v}")?;
        }
        Ok(())
    }
}

/// Totals over a check.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub histories: usize,
    pub writes: usize,
    pub resolver_writes: usize,
    pub injected_failures: usize,
    pub duplicate_deliveries: usize,
    /// Histories where one Region made two writes to an item that do not
    /// know each other (the fork hazard of the conflict model).
    pub histories_with_forks: usize,
    /// Attributes whose final value a rule chose among concurrent edits,
    /// and how many of them some journal entry explains.
    pub rule_decisions: usize,
    pub rule_decisions_journaled: usize,
    /// What the platform did to the resolvers, over every history.
    pub injected: Injected,
    pub failures: Vec<Failure>,
}

/// Why a check could not run at all.
#[derive(Debug, thiserror::Error)]
#[error("checker: {0}")]
pub struct CheckError(String);

/// What a history does.
#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, &'static str, String),
    Remove(usize, usize, &'static str),
    Increment(usize, usize, i64),
    Tag(usize, usize, String),
    Delete(usize, usize),
    /// Every Region writes the hot item (item 0) at once.
    Hot(String),
    Wait(u64),
    Partition(usize),
    HealAll,
}

/// A history's setup and operations, all from its seed.
struct Plan {
    homes: Vec<usize>,
    latencies: Vec<Latency>,
    batch_size: usize,
    batching_window: u64,
    ops: Vec<Op>,
}

fn plan(seed: u64, regions: usize, items: usize, steps: usize) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
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

/// One edit of one attribute, as the writer made it.
struct Edit {
    item: usize,
    attribute: String,
    dot: Dot,
    value: Option<AttributeValue>,
    /// The version that made it: what it knew.
    version: Version,
}

fn key(item: usize) -> Item {
    Item::from(HashMap::from([(
        "pk".to_string(),
        AttributeValue::S(format!("k{item}")),
    )]))
}

/// Runs `config.histories` histories and checks each.
///
/// # Errors
/// [`CheckError`] when the checker itself cannot run (bad rules).
pub async fn check(
    config: &CheckConfig,
    backend: Backend<'_>,
    registry: &Registry,
) -> Result<Report, CheckError> {
    if !(2..=REGION_NAMES.len()).contains(&config.regions) {
        return Err(CheckError(format!(
            "--regions must be 2 to {}",
            REGION_NAMES.len()
        )));
    }
    homeward::Rules::from_json(&config.rules, registry).map_err(|e| CheckError(e.to_string()))?;
    // In memory, backoffs and hung calls take no wall-clock time.
    let _virtual_time = matches!(backend, Backend::Memory).then(VirtualTime::start);
    let mut report = Report::default();
    for i in 0..config.histories {
        let seed = config.seed.wrapping_add(i as u64);
        let run = run_history(config, backend, registry, seed, config.steps).await;
        report.histories += 1;
        report.writes += run.writes;
        report.resolver_writes += run.stats.resolver_writes;
        report.injected_failures += run.stats.injected_failures;
        report.duplicate_deliveries += run.stats.duplicate_deliveries;
        report.histories_with_forks += usize::from(run.forked);
        report.rule_decisions += run.rule_decisions.0;
        report.rule_decisions_journaled += run.rule_decisions.1;
        report.injected = report.injected.add(&run.injected);
        if run.violations.is_empty() {
            continue;
        }
        let mut failing = run;
        let mut steps = config.steps;
        if config.minimize {
            for k in 0..config.steps {
                let shorter = run_history(config, backend, registry, seed, k).await;
                if !shorter.violations.is_empty() {
                    failing = shorter;
                    steps = k;
                    break;
                }
            }
        }
        report.failures.push(Failure {
            command: config.writer.replay_command(),
            seed,
            steps,
            memory: matches!(backend, Backend::Memory),
            flags: config.replay_flags(),
            violations: failing.violations,
            history: failing.history,
        });
    }
    Ok(report)
}

struct Run {
    forked: bool,
    rule_decisions: (usize, usize),
    writes: usize,
    stats: crate::cluster::Stats,
    injected: Injected,
    history: Vec<String>,
    violations: Vec<String>,
}

async fn run_history(
    config: &CheckConfig,
    backend: Backend<'_>,
    registry: &Registry,
    seed: u64,
    steps: usize,
) -> Run {
    let plan = plan(seed, config.regions, config.items, config.steps);
    let names: Vec<&'static str> = REGION_NAMES[..config.regions].to_vec();
    let regions: Vec<Region> = names
        .iter()
        .map(|r| Region::parse(r).expect("a Region"))
        .collect();
    let mut spec = Spec::new(&names).env("MERGE_RULES", &config.rules);
    if let Some(rehome) = &config.rehome {
        spec = spec.env("REHOME", rehome);
    }
    spec.registry = registry.clone();
    spec.seed = seed;
    spec.batch_size = plan.batch_size;
    spec.batching_window = plan.batching_window;
    spec.failure_rate = 0.25;
    spec.duplicate_rate = 0.1;
    // The event source mapping as deployed.
    let mapping = Mapping::deployed();
    spec.max_retries = mapping.retries();
    spec.bisect = mapping.bisect;
    spec.report_failures = mapping.report_batch_item_failures;
    spec.faults = (config.fault_rate > 0.0).then(|| FaultSpec::new(config.fault_rate, seed));
    spec.filters = config.filters.clone();
    // Each Region's clock skew, from the history's seed (its own generator:
    // the plan's operations stay what they were).
    let mut clock_rng = StdRng::seed_from_u64(seed ^ 0xC10C_5EED);
    let bound = i64::try_from(config.clock_skew_ms).unwrap_or(i64::MAX);
    for r in &names {
        let skew = if bound > 0 {
            clock_rng.random_range(-bound..=bound)
        } else {
            0
        };
        spec.clocks.insert((*r).to_owned(), skew);
    }
    let clocks = spec.clocks.clone();
    for (i, from) in names.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            spec.latencies.insert(
                (from.to_string(), to.to_string()),
                plan.latencies[i * names.len() + j],
            );
        }
    }
    let mut c = match backend {
        Backend::Memory => Cluster::memory(spec),
        Backend::Moto(server) => Cluster::start(server, "check", spec).await,
    };
    let w = c.writer();
    let route =
        crate::conform::Route::for_history(&config.writer, seed, backend, &c, &w, &config.rules)
            .await;
    let mut history = vec![format!(
        "setup: batch size {}, batching window {}, clock skews (ms) {:?}, links {:?}",
        plan.batch_size,
        plan.batching_window,
        clocks,
        plan.latencies
            .iter()
            .map(|l| (l.delay, l.jitter))
            .collect::<Vec<_>>()
    )];
    let mut edits: Vec<Edit> = Vec::new();
    let mut counters: Vec<i64> = vec![0; config.items];
    let mut writes = 0;
    let mut violations = Vec::new();
    let mut route = route.unwrap_or_else(|e| {
        violations.push(e.to_string());
        crate::conform::Route::rust()
    });

    let record = |edits: &mut Vec<Edit>, item: usize, v: &Version| {
        let dot = v.header.dot();
        for (name, register) in &v.attrs {
            for s in register.siblings() {
                if s.at.dot == dot {
                    edits.push(Edit {
                        item,
                        attribute: name.clone(),
                        dot: dot.clone(),
                        value: s.value.clone(),
                        version: v.clone(),
                    });
                }
            }
        }
    };

    for (item, home) in plan.homes.iter().enumerate() {
        let r = &regions[*home];
        let start = Item::from(HashMap::from([
            ("pk".to_string(), AttributeValue::S(format!("k{item}"))),
            ("home_region".to_string(), AttributeValue::S(r.to_string())),
            ("a".to_string(), AttributeValue::S("init".into())),
            (SET.to_string(), AttributeValue::Ss(vec!["t-init".into()])),
            (COUNTER.to_string(), AttributeValue::N("0".into())),
        ]));
        match route.write(&w, r, &key(item), Write::Insert(start)).await {
            Ok(v) => {
                writes += 1;
                record(&mut edits, item, &v);
                history.push(format!("insert k{item} in {r} (its home){}", route.mark()));
            }
            Err(e) => violations.push(format!("setup insert of k{item} failed: {e}")),
        }
    }
    if let Err(e) = c.try_settle().await {
        violations.push(format!("no settle after setup: {e}"));
    }

    for (i, op) in plan.ops.iter().take(steps).enumerate() {
        let result: Option<(usize, Result<Version, WriteError>)> = match op {
            // Each write through the Rust writer as it always was, or
            // (conform) through the external writer ([`Write::with_rust`]).
            Op::Set(r, item, attr, value) => Some((
                *item,
                route
                    .write(
                        &w,
                        &regions[*r],
                        &key(*item),
                        Write::set(attr, AttributeValue::S(value.clone())),
                    )
                    .await,
            )),
            Op::Remove(r, item, attr) => Some((
                *item,
                route
                    .write(&w, &regions[*r], &key(*item), Write::remove(attr))
                    .await,
            )),
            Op::Increment(r, item, delta) => Some((
                *item,
                route
                    .write(
                        &w,
                        &regions[*r],
                        &key(*item),
                        Write::Increment {
                            attribute: COUNTER.into(),
                            by: *delta,
                        },
                    )
                    .await,
            )),
            Op::Tag(r, item, tag) => Some((
                *item,
                route
                    .write(&w, &regions[*r], &key(*item), Write::add(SET, tag))
                    .await,
            )),
            Op::Delete(r, item) => Some((
                *item,
                route
                    .write(&w, &regions[*r], &key(*item), Write::Delete)
                    .await,
            )),
            Op::Hot(value) => {
                // Every Region writes item 0 before anything replicates:
                // the resolvers then merge into one home copy at once.
                let mut lines = Vec::new();
                for (r, region) in regions.iter().enumerate() {
                    let written = route
                        .write(
                            &w,
                            region,
                            &key(0),
                            Write::set("a", AttributeValue::S(format!("{value}-{r}"))),
                        )
                        .await;
                    match written {
                        Ok(v) => {
                            writes += 1;
                            record(&mut edits, 0, &v);
                            lines.push(format!(
                                "{} dot {}{}",
                                names[r],
                                v.header.dot().encode(),
                                route.mark()
                            ));
                        }
                        Err(e) => {
                            lines.push(format!("{} not written{}: {e}", names[r], route.mark()));
                        }
                    }
                }
                history.push(format!(
                    "{:>3}. t={} {} -> {}",
                    i + 1,
                    c.tick,
                    describe(op, &names),
                    lines.join(", ")
                ));
                continue;
            }
            Op::Wait(ticks) => {
                for _ in 0..*ticks {
                    c.step().await;
                }
                None
            }
            Op::Partition(r) => {
                c.partition(&[names[*r]]);
                None
            }
            Op::HealAll => {
                c.heal_all();
                None
            }
        };
        let line = format!("{:>3}. t={} {}", i + 1, c.tick, describe(op, &names));
        match result {
            None => history.push(line),
            Some((item, Ok(v))) => {
                writes += 1;
                if let Op::Increment(_, _, delta) = op {
                    counters[item] += delta;
                }
                record(&mut edits, item, &v);
                history.push(format!(
                    "{line}{} -> dot {}",
                    route.mark(),
                    v.header.dot().encode()
                ));
            }
            Some((_, Err(e))) => {
                history.push(format!("{line}{} -> not written: {e}", route.mark()));
            }
        }
    }

    c.heal_all();
    let settled = c.try_settle().await;
    if let Err(e) = settled {
        violations.push(format!("resolver loop: {e}"));
        violations.extend(route.finish(&w, &[], &[]).await);
        return Run {
            forked: forked(&edits),
            rule_decisions: (0, 0),
            writes,
            stats: c.stats.clone(),
            injected: c.injected(),
            history,
            violations,
        };
    }
    // No stall: every record was processed (or set aside, checked below).
    if c.backlog_len() > 0 {
        violations.push(format!(
            "stall: {} records still wait in a backlog after settling",
            c.backlog_len()
        ));
    }
    let stats = c.stats.clone();
    let finals = final_items(&c, &names).await;
    check_finals(
        &c,
        &names,
        &finals,
        &edits,
        &counters,
        config.items,
        &mut violations,
    );

    // No loop, idempotence: everything again, cut differently, changes nothing.
    let journal_before = journal_count(&c, &names).await;
    if let Err(e) = c.try_replay(3).await {
        violations.push(format!("resolver loop on redelivery: {e}"));
    } else {
        if c.stats.resolver_writes != stats.resolver_writes {
            violations.push(format!(
                "redelivering every record made {} more resolver writes",
                c.stats.resolver_writes - stats.resolver_writes
            ));
        }
        if journal_count(&c, &names).await != journal_before {
            violations.push("redelivering every record added journal entries".into());
        }
        if final_items(&c, &names).await != finals {
            violations.push("redelivering every record changed items".into());
        }
    }
    // A record in the on-failure destination is lost unless the journal
    // holds its images (a quarantine entry, say).
    for lost in unjournaled(&c, &names).await {
        violations.push(format!(
            "lost to the on-failure destination: record {} of {} in {} ({}) was set aside after {} retries and no journal entry holds its {}",
            lost.sequence,
            resolver::journal::key_text(&lost.key),
            lost.region,
            match (&lost.old_image, &lost.new_image) {
                (_, Some(new)) => format!("new image {}", crate::cluster::show(new, &c.schema)),
                (Some(old), None) => format!("old image {}", crate::cluster::show(old, &c.schema)),
                (None, None) => "no image".into(),
            },
            mapping.retries(),
            match (&lost.old_image, &lost.new_image) {
                (Some(_), Some(_)) => "old and new images",
                (None, Some(_)) => "new image",
                (Some(_), None) => "old image",
                (None, None) => "images",
            }
        ));
    }
    let (rule_decisions, unexplained) = journaled_decisions(&c, &names, &finals[0]).await;
    for (item, attribute) in &unexplained {
        violations.push(format!(
            "{item}.{attribute}: a rule chose among concurrent edits, and no journal entry explains it"
        ));
    }
    // An external writer reads what the Rust writer reads; its faults.
    let keys: Vec<Item> = (0..config.items).map(key).collect();
    violations.extend(route.finish(&w, &regions, &keys).await);
    Run {
        forked: forked(&edits),
        rule_decisions,
        writes,
        stats: c.stats.clone(),
        injected: c.injected(),
        history,
        violations,
    }
}

/// The records set aside (the on-failure destination) whose images no
/// journal entry of any Region holds: each is a loss.
pub async fn unjournaled(c: &Cluster, names: &[&str]) -> Vec<SetAside> {
    if c.stats.on_failure.is_empty() {
        return Vec::new();
    }
    let mut kept: Vec<Item> = Vec::new();
    for r in names {
        for entry in c.journal(r).await {
            if let Some(AttributeValue::M(versions)) = entry.get("versions") {
                for v in versions.values() {
                    if let AttributeValue::M(m) = v {
                        kept.push(Item::from(m.clone()));
                    }
                }
            }
        }
    }
    c.stats
        .on_failure
        .iter()
        .filter(|lost| {
            [&lost.old_image, &lost.new_image]
                .into_iter()
                .flatten()
                .any(|image| !kept.contains(image))
        })
        .cloned()
        .collect()
}

/// (attributes a rule decided among concurrent edits, how many of them a
/// journal entry of their item explains), and the ones none explains.
async fn journaled_decisions(
    c: &Cluster,
    names: &[&str],
    finals: &BTreeMap<String, Item>,
) -> ((usize, usize), Vec<(String, String)>) {
    let mut explained: BTreeSet<(String, String)> = BTreeSet::new();
    for r in names {
        for entry in c.journal(r).await {
            let Some(AttributeValue::M(key)) = entry.get("item_key") else {
                continue;
            };
            let item = resolver::journal::key_text(&Item::from(key.clone()));
            let item = item.as_str();
            if let Some(AttributeValue::L(list)) = entry.get("explanation") {
                for e in list {
                    if let AttributeValue::M(m) = e {
                        if let Some(AttributeValue::S(a)) = m.get("attribute") {
                            explained.insert((item.to_owned(), a.clone()));
                        }
                    }
                }
            }
        }
    }
    let mut decided = 0;
    let mut unexplained = Vec::new();
    for (text, raw) in finals {
        let Ok(v) = c.schema.decode(raw) else {
            continue;
        };
        for (name, register) in &v.attrs {
            if matches!(register, Register::Many { .. }) {
                decided += 1;
                if !explained.contains(&(text.clone(), name.clone())) {
                    unexplained.push((text.clone(), name.clone()));
                }
            }
        }
    }
    ((decided, decided - unexplained.len()), unexplained)
}

/// Whether one Region wrote an item twice without the second write knowing
/// the first (its chain forked: a concurrent version replaced the first
/// before it was merged back).
fn forked(edits: &[Edit]) -> bool {
    edits.iter().any(|a| {
        edits.iter().any(|b| {
            a.item == b.item
                && a.dot.region == b.dot.region
                && a.dot != b.dot
                && !a.version.knows(&b.dot)
                && !b.version.knows(&a.dot)
        })
    })
}

async fn final_items(c: &Cluster, names: &[&str]) -> Vec<BTreeMap<String, Item>> {
    let mut out = Vec::new();
    for r in names {
        out.push(c.items(r).await);
    }
    out
}

async fn journal_count(c: &Cluster, names: &[&str]) -> usize {
    let mut n = 0;
    for r in names {
        n += c.journal(r).await.len();
    }
    n
}

fn check_finals(
    c: &Cluster,
    names: &[&str],
    finals: &[BTreeMap<String, Item>],
    edits: &[Edit],
    counters: &[i64],
    items: usize,
    violations: &mut Vec<String>,
) {
    for (r, f) in names.iter().zip(finals).skip(1) {
        if f != &finals[0] {
            for (k, item) in f {
                if finals[0].get(k) != Some(item) {
                    violations.push(format!(
                        "divergence: {k} in {r} is {} but in {} is {}",
                        crate::cluster::show(item, &c.schema),
                        names[0],
                        finals[0]
                            .get(k)
                            .map_or("absent".into(), |i| crate::cluster::show(i, &c.schema))
                    ));
                }
            }
        }
    }
    let rules = &c.merger.rules;
    for (item, expected_total) in counters.iter().enumerate().take(items) {
        let text = format!("pk=k{item}");
        let Some(raw) = finals[0].get(&text) else {
            if edits.iter().any(|e| e.item == item) {
                violations.push(format!("k{item} is missing in {}", names[0]));
            }
            continue;
        };
        let v = match c.schema.decode(raw) {
            Ok(v) => v,
            Err(e) => {
                violations.push(format!("k{item}: unreadable stamp: {e}"));
                continue;
            }
        };
        // Nothing lost.
        for e in edits.iter().filter(|e| e.item == item) {
            if rules.is_counter(&e.attribute) {
                continue;
            }
            let present = v.attrs.get(&e.attribute).is_some_and(|reg| {
                reg.siblings()
                    .iter()
                    .any(|s| s.at.dot == e.dot && s.value == e.value)
            });
            let superseded = edits.iter().any(|later| {
                later.item == item
                    && later.attribute == e.attribute
                    && later.dot != e.dot
                    && later.version.knows(&e.dot)
            });
            // A re-home (a resolver's move, fenced by the epoch) supersedes
            // every home value the final version knows.
            let moved = e.attribute == "home_region"
                && v.home.as_ref().is_some_and(|h| h.epoch > 0)
                && v.knows(&e.dot);
            if !present && !superseded && !moved {
                violations.push(format!(
                    "lost update: k{item}.{} = {} (dot {}) is neither in the final item nor superseded by a later edit",
                    e.attribute,
                    e.value.as_ref().map_or("(removed)".into(), crate::cluster::show_value),
                    e.dot.encode()
                ));
            }
        }
        // The home attribute agrees with the home the stamp records.
        if let (Some(home), Some(AttributeValue::S(shown))) =
            (&v.home, v.values().get("home_region"))
        {
            if shown != home.region.as_str() {
                violations.push(format!(
                    "k{item}: home_region = {shown:?} but the stamp's home is {} (epoch {})",
                    home.region, home.epoch
                ));
            }
        }
        // Rules decide concurrent edits; a lone edit shows its value.
        for (name, register) in &v.attrs {
            let shown = register.value();
            let expected = match register {
                Register::One(s) => s.value.clone(),
                Register::Many { siblings, .. } if name == SET => {
                    let all: BTreeSet<String> = siblings
                        .iter()
                        .filter_map(|s| match &s.value {
                            Some(AttributeValue::Ss(v)) => Some(v.clone()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    (!all.is_empty()).then(|| AttributeValue::Ss(all.into_iter().collect()))
                }
                Register::Many { siblings, .. } => siblings
                    .iter()
                    .max_by(|a, b| a.at.lww_key().cmp(&b.at.lww_key()))
                    .and_then(|s| s.value.clone()),
            };
            if !same_value(shown, expected.as_ref()) {
                violations.push(format!(
                    "k{item}.{name} shows {} but its edits ({}) give {}",
                    shown.map_or("(absent)".into(), crate::cluster::show_value),
                    register
                        .siblings()
                        .iter()
                        .map(|s| format!(
                            "{}={}",
                            s.at.dot.encode(),
                            s.value
                                .as_ref()
                                .map_or("(removed)".into(), crate::cluster::show_value)
                        ))
                        .collect::<Vec<_>>()
                        .join(" | "),
                    expected
                        .as_ref()
                        .map_or("(absent)".into(), crate::cluster::show_value)
                ));
            }
        }
        // Counters exact.
        let total = match v.value(COUNTER) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
            _ => None,
        };
        if total != Some(*expected_total) {
            violations.push(format!(
                "counter k{item}.{COUNTER} is {total:?}, the increments add up to {expected_total}"
            ));
        }
    }
}

/// Sets compare as sets.
fn same_value(a: Option<&AttributeValue>, b: Option<&AttributeValue>) -> bool {
    match (a, b) {
        (Some(AttributeValue::Ss(x)), Some(AttributeValue::Ss(y))) => {
            x.iter().collect::<BTreeSet<_>>() == y.iter().collect::<BTreeSet<_>>()
        }
        _ => a == b,
    }
}

fn describe(op: &Op, names: &[&str]) -> String {
    match op {
        Op::Set(r, i, a, v) => format!("{}: set k{i}.{a} = {v:?}", names[*r]),
        Op::Remove(r, i, a) => format!("{}: remove k{i}.{a}", names[*r]),
        Op::Increment(r, i, d) => format!("{}: k{i}.{COUNTER} {d:+}", names[*r]),
        Op::Tag(r, i, t) => format!("{}: add {t:?} to k{i}.{SET}", names[*r]),
        Op::Delete(r, i) => format!("{}: soft delete k{i}", names[*r]),
        Op::Hot(v) => format!("every Region: set k0.a = {v:?}-<Region>"),
        Op::Wait(t) => format!("wait {t} ticks"),
        Op::Partition(r) => format!("partition: {} cut off", names[*r]),
        Op::HealAll => "heal every link".into(),
    }
}

/// The writer type a history uses (for tests that drive a cluster directly).
pub type SimWriter = homeward::Writer<SimStore>;
