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
//! Plain writers ([`CheckConfig::plain_writes`], 10% of the writes by
//! default, `--plain-writes`; 0 turns them off and leaves every history as
//! it was): a share of the writes ignore the stamp protocol, as boto3 code
//! and console edits do ([`crate::plain`]): UpdateItem SET of a data
//! attribute (also `p`, which no stamped write ever sets), REMOVE of one,
//! ADD to the counter, now and then a PutItem of a whole item without
//! stamp, rarely a DeleteItem. Their ground truth and checks are in
//! [`crate::truth`]: nothing they wrote is lost (in the final item,
//! superseded by a later write whose base had seen it, or in a journal
//! entry), counters count them as the slots they fill, and no item is
//! stuck: after the history every item takes one more stamped write (it
//! sets `z`), which must succeed, and the cluster settles again before the
//! checks.
//!
//! A history is `(seed, steps)`: its operations come from a generator
//! seeded with `seed`, and the first `steps` of them are played, so a
//! failure is minimized by replaying shorter prefixes, and replayed with
//! `homeward-sim check --histories 1 --seed S --steps K`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use homeward::{Region, Registry, Version, WriteError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::{Cluster, SimStore, Spec};
use crate::conform::Write;
use crate::delivery::Mapping;
use crate::faults::{FaultSpec, Injected, VirtualTime};
use crate::lineage::Ids;
use crate::plan::{describe, key, plan, Op};
use crate::scenario::Backend;
use crate::truth::{Edit, Finals, Truth, COUNTER, SET};
pub use crate::verdicts::unjournaled;
use crate::verdicts::{final_items, forked, journal_count, journaled_decisions};

const REGION_NAMES: [&str; 5] = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "ap-northeast-1",
    "sa-east-1",
];
/// The attribute every item's last stamped write sets (no stuck items).
const LAST: &str = "z";
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
    /// Share of the writes made by plain writers (UpdateItem SET, REMOVE,
    /// ADD; PutItem; DeleteItem, without the stamp protocol); 0 turns them
    /// off. With them on, every item takes one more stamped write after
    /// the history (it must succeed: no stuck items) and what plain writes
    /// wrote must not be lost ([`crate::truth`]).
    pub plain_writes: f64,
}

/// The checker's default share of plain writes.
pub const PLAIN_WRITES: f64 = 0.1;

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
            plain_writes: PLAIN_WRITES,
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
        flags.push_str(&format!(" --plain-writes {}", self.plain_writes));
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
    /// Writes made by plain writers (attempted).
    pub plain_writes: usize,
    /// What the platform did to the resolvers, over every history.
    pub injected: Injected,
    pub failures: Vec<Failure>,
}

/// Why a check could not run at all.
#[derive(Debug, thiserror::Error)]
#[error("checker: {0}")]
pub struct CheckError(String);

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
        report.plain_writes += run.plain_writes;
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
    plain_writes: usize,
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
    let plan = plan(
        seed,
        config.regions,
        config.items,
        config.steps,
        config.plain_writes,
    );
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
    // Ground truth for plain writes: which of them each image includes.
    let mut truth = (config.plain_writes > 0.0).then(Truth::default);
    spec.lineage = truth.as_ref().map(|t| t.lineage.clone());
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
    let mut plain_writes = 0;
    // Every app write's place in the history (stamped and plain).
    let mut seq = 0;
    let mut violations = Vec::new();
    let mut route = route.unwrap_or_else(|e| {
        violations.push(e.to_string());
        crate::conform::Route::rust()
    });

    let record = |edits: &mut Vec<Edit>, item: usize, v: &Version, seq: usize, base: &Ids| {
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
                        seq,
                        base: base.clone(),
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
                seq += 1;
                record(&mut edits, item, &v, seq, &Ids::new());
                history.push(format!("insert k{item} in {r} (its home){}", route.mark()));
            }
            Err(e) => violations.push(format!("setup insert of k{item} failed: {e}")),
        }
    }
    if let Err(e) = c.try_settle().await {
        violations.push(format!("no settle after setup: {e}"));
    }

    for (i, op) in plan.ops.iter().take(steps).enumerate() {
        // With plain writes on: what the write's base included.
        let target = match op {
            Op::Set(r, item, ..)
            | Op::Remove(r, item, _)
            | Op::Increment(r, item, _)
            | Op::Tag(r, item, _)
            | Op::Delete(r, item) => Some((*r, *item)),
            _ => None,
        };
        let base = match (&truth, target) {
            (Some(t), Some((r, item))) => t.base(&c, &regions[r], &key(item)).await,
            _ => Ids::new(),
        };
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
                    let base = match &truth {
                        Some(t) => t.base(&c, region, &key(0)).await,
                        None => Ids::new(),
                    };
                    seq += 1;
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
                            if let Some(t) = &truth {
                                t.after(&c, region, &key(0), &base).await;
                            }
                            record(&mut edits, 0, &v, seq, &base);
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
            Op::Plain(r, item, p) => {
                plain_writes += 1;
                seq += 1;
                let region = &regions[*r];
                // A whole item keeps the home it had.
                let home = match c.read(region.as_str(), &key(*item)).await {
                    Some(i) => match i.get("home_region") {
                        Some(AttributeValue::S(h)) => h.clone(),
                        _ => names[plan.homes[*item]].to_owned(),
                    },
                    None => names[plan.homes[*item]].to_owned(),
                };
                let write = p.write(*item, &home);
                let outcome = match truth.as_mut() {
                    Some(t) => t.plain_write(&mut c, region, *item, &write, seq).await,
                    None => c.raw_write(region, &write).await,
                };
                history.push(format!(
                    "{:>3}. t={} {}: {} (plain writer, write {seq}) -> {}",
                    i + 1,
                    c.tick,
                    names[*r],
                    write.describe(&c.schema),
                    match outcome {
                        Ok(()) => "written".to_owned(),
                        Err(e) => format!("not written: {e}"),
                    }
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
                seq += 1;
                if let Op::Increment(_, _, delta) = op {
                    counters[item] += delta;
                }
                if let (Some(t), Some((r, _))) = (&truth, target) {
                    t.after(&c, &regions[r], &key(item), &base).await;
                }
                record(&mut edits, item, &v, seq, &base);
                history.push(format!(
                    "{line}{} -> dot {}",
                    route.mark(),
                    v.header.dot().encode()
                ));
            }
            Some((_, Err(e))) => {
                seq += 1;
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
            plain_writes,
            rule_decisions: (0, 0),
            writes,
            stats: c.stats.clone(),
            injected: c.injected(),
            history,
            violations,
        };
    }
    // No stuck items: each takes one more stamped write, then all settle.
    let mut stuck = BTreeSet::new();
    if let Some(t) = &truth {
        for item in 0..config.items {
            let region = &regions[(item + seed as usize) % regions.len()];
            let k = key(item);
            let base = t.base(&c, region, &k).await;
            seq += 1;
            let last = AttributeValue::S(format!("{LAST}-k{item}"));
            let written = match w.get(region, &k).await {
                Ok(Some(_)) => {
                    w.update(region, &k, |d| {
                        d.set(LAST, last.clone());
                    })
                    .await
                }
                Ok(None) => {
                    // A revival: the app writes the home the item has now
                    // (a tombstone keeps the stamp's home, which a re-home
                    // may have moved), as an app that reads it would.
                    let tombstone = c.read(region.as_str(), &k).await;
                    let moved = tombstone
                        .as_ref()
                        .and_then(|i| {
                            homeward::adopt::adopt(&c.schema, &c.merger.rules, i, None).ok()
                        })
                        .and_then(|a| a.version.home)
                        .map(|h| h.region.to_string());
                    let mut whole = k.clone();
                    let home = moved.unwrap_or_else(|| names[plan.homes[item]].to_owned());
                    whole.insert("home_region".into(), AttributeValue::S(home));
                    whole.insert(LAST.into(), last.clone());
                    w.insert(region, whole).await
                }
                Err(e) => Err(e),
            };
            let line = format!("after the history: {region}: set k{item}.{LAST} (stamped)");
            match written {
                Ok(v) => {
                    t.after(&c, region, &k, &base).await;
                    record(&mut edits, item, &v, seq, &base);
                    history.push(format!("{line} -> dot {}", v.header.dot().encode()));
                }
                Err(e) => {
                    stuck.insert(item);
                    history.push(format!("{line} -> not written: {e}"));
                    violations.push(format!(
                        "stuck item: k{item}: a stamped write after the history (set {LAST} in {region}) failed: {e} (seed {seed})"
                    ));
                }
            }
        }
        if let Err(e) = c.try_settle().await {
            violations.push(format!("resolver loop after the last stamped writes: {e}"));
            return Run {
                forked: forked(&edits),
                plain_writes,
                rule_decisions: (0, 0),
                writes,
                stats: c.stats.clone(),
                injected: c.injected(),
                history,
                violations,
            };
        }
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
    let journal = match &truth {
        Some(_) => crate::truth::journal_images(&c, &names).await,
        None => BTreeMap::new(),
    };
    Finals {
        c: &c,
        names: &names,
        finals: &finals,
        edits: &edits,
        counters: &counters,
        items: config.items,
        plain: truth.as_ref().map(|t| (t, &journal)),
        stuck: &stuck,
    }
    .check(&mut violations);

    // No loop, idempotence: everything again, cut differently, changes
    // nothing. Not across a plain DeleteItem: a hard delete keeps no
    // tombstone (last writer wins, journaled), so a record merged into the
    // item before the delete merges into the item written after it again.
    let hard_deleted: BTreeSet<String> = truth
        .as_ref()
        .map(|t| {
            (0..config.items)
                .filter(|i| t.deleted(*i))
                .map(crate::truth::key_text)
                .collect()
        })
        .unwrap_or_default();
    let journal_before = journal_count(&c, &names).await;
    if let Err(e) = c.try_replay(3).await {
        violations.push(format!("resolver loop on redelivery: {e}"));
    } else {
        if c.stats.resolver_writes != stats.resolver_writes && hard_deleted.is_empty() {
            violations.push(format!(
                "redelivering every record made {} more resolver writes",
                c.stats.resolver_writes - stats.resolver_writes
            ));
        }
        if journal_count(&c, &names).await != journal_before && hard_deleted.is_empty() {
            violations.push("redelivering every record added journal entries".into());
        }
        let again = final_items(&c, &names).await;
        let differs = finals.iter().zip(&again).any(|(before, after)| {
            before
                .keys()
                .chain(after.keys())
                .any(|k| before.get(k) != after.get(k) && !hard_deleted.contains(k))
        });
        if differs {
            let mut changed = BTreeSet::new();
            for (before, after) in finals.iter().zip(&again) {
                for k in before.keys().chain(after.keys()) {
                    if before.get(k) != after.get(k) && !hard_deleted.contains(k) {
                        changed.insert(format!(
                            "{k}: {} -> {}",
                            before
                                .get(k)
                                .map_or("absent".into(), |i| crate::cluster::show(i, &c.schema)),
                            after
                                .get(k)
                                .map_or("absent".into(), |i| crate::cluster::show(i, &c.schema))
                        ));
                    }
                }
            }
            violations.push(format!(
                "redelivering every record changed items: {}",
                changed.into_iter().collect::<Vec<_>>().join("; ")
            ));
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
        plain_writes,
        rule_decisions,
        writes,
        stats: c.stats.clone(),
        injected: c.injected(),
        history,
        violations,
    }
}

/// The writer type a history uses (for tests that drive a cluster directly).
pub type SimWriter = homeward::Writer<SimStore>;
