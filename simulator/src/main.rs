//! `homeward-sim`: the demo, scenario runs and the convergence checker.
//!
//! ```text
//! homeward-sim demo [--memory]
//! homeward-sim run <scenario.json> [--memory]
//! homeward-sim check [--histories N] [--regions R] [--seed S] [--steps K] [--rehome TRIGGER] [--fault-rate F] [--clock-skew MS] [--no-filters] [--plain-writes P] [--memory]
//! homeward-sim conform --writer "<command>" [--share P] [--timeout SECONDS] [the flags of check but --memory]
//! ```
//!
//! Arguments are parsed by hand: three subcommands and a few flags do not
//! justify a CLI crate (and its build time on a shared 2-core machine).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeward_sim::checker::{self, CheckConfig};
use homeward_sim::cluster::show;
use homeward_sim::conform::{self, ExternalWriter, WriterChoice};
use homeward_sim::scenario::{Backend, Outcome, Scenario};
use homeward_sim::MotoServer;

const USAGE: &str = "usage:
  homeward-sim demo [--memory]
      replays the seed scenarios with Homeward on and with plain last-writer-wins
  homeward-sim run <scenario.json> [--memory]
      replays one scenario file the same way
  homeward-sim check [--histories N] [--regions R] [--seed S] [--steps K] [--rehome TRIGGER] [--fault-rate F] [--clock-skew MS] [--no-filters] [--plain-writes P] [--memory]
      random concurrent histories, each checked for convergence, lost
      updates, exact counters and resolver loops (--memory: in-memory
      store and streams instead of moto; --rehome: the resolvers' REHOME,
      e.g. always or after:2; --fault-rate: share of the resolvers' store
      calls that fail, default 0.2, 0 turns faults and killed invocations
      off; --clock-skew: each Region's writers' clock is off by up to MS
      ms either way, default 2000, 0 turns skew off; --no-filters: no
      FilterCriteria, instead of the ones template.yaml deploys;
      --plain-writes: share P of the writes made by plain writers that
      ignore the stamp protocol (UpdateItem SET/REMOVE/ADD, PutItem,
      DeleteItem), default 0.1, 0 turns them off; with them on every item
      takes one more stamped write after the history, which must succeed)
  homeward-sim conform --writer \"<command>\" [--share P] [--timeout SECONDS] [--histories N] [--regions R] [--seed S] [--steps K] [--rehome TRIGGER] [--fault-rate F] [--clock-skew MS] [--no-filters] [--plain-writes P]
      the checker's histories against moto with a share P (default 0.5)
      of the writes made by an external writer: `sh -c \"<command>\"`
      speaking JSON lines on stdin/stdout (conformance/README.md,
      \"conform\"); every answer within SECONDS (default 30); plain writes
      are off unless --plain-writes says otherwise";

/// The seed scenarios, built in so the demo runs from anywhere.
const SEEDS: [(&str, &str); 6] = [
    ("movies", include_str!("../../scenarios/movies.json")),
    ("foo-bar", include_str!("../../scenarios/foo-bar.json")),
    ("inventory", include_str!("../../scenarios/inventory.json")),
    ("traveller", include_str!("../../scenarios/traveller.json")),
    ("failover", include_str!("../../scenarios/failover.json")),
    (
        "plain-writer",
        include_str!("../../scenarios/plain-writer.json"),
    ),
];

struct Args {
    command: String,
    positional: Vec<String>,
    memory: bool,
    histories: Option<usize>,
    regions: Option<usize>,
    seed: Option<u64>,
    steps: Option<usize>,
    rehome: Option<String>,
    fault_rate: Option<f64>,
    clock_skew_ms: Option<u64>,
    no_filters: bool,
    plain_writes: Option<f64>,
    writer: Option<String>,
    share: Option<f64>,
    timeout: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut raw = std::env::args().skip(1);
    let command = raw.next().ok_or("no command")?;
    let mut args = Args {
        command,
        positional: Vec::new(),
        memory: false,
        histories: None,
        regions: None,
        seed: None,
        steps: None,
        rehome: None,
        fault_rate: None,
        clock_skew_ms: None,
        no_filters: false,
        plain_writes: None,
        writer: None,
        share: None,
        timeout: None,
    };
    while let Some(arg) = raw.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let v = raw.next().ok_or(format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name}: `{v}` is not a whole number"))
        };
        match arg.as_str() {
            "--memory" => args.memory = true,
            "--histories" => args.histories = Some(number("--histories")? as usize),
            "--regions" => args.regions = Some(number("--regions")? as usize),
            "--seed" => args.seed = Some(number("--seed")?),
            "--steps" => args.steps = Some(number("--steps")? as usize),
            "--rehome" => args.rehome = Some(raw.next().ok_or("--rehome needs a value")?),
            "--fault-rate" => {
                let v = raw.next().ok_or("--fault-rate needs a value")?;
                let rate: f64 = v
                    .parse()
                    .map_err(|_| format!("--fault-rate: `{v}` is not a number"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("--fault-rate: {rate} is not between 0 and 1"));
                }
                args.fault_rate = Some(rate);
            }
            "--clock-skew" => args.clock_skew_ms = Some(number("--clock-skew")?),
            "--writer" => args.writer = Some(raw.next().ok_or("--writer needs a command")?),
            "--share" => {
                let v = raw.next().ok_or("--share needs a value")?;
                let share: f64 = v
                    .parse()
                    .map_err(|_| format!("--share: `{v}` is not a number"))?;
                if !(0.0..=1.0).contains(&share) {
                    return Err(format!("--share: {share} is not between 0 and 1"));
                }
                args.share = Some(share);
            }
            "--plain-writes" => {
                let v = raw.next().ok_or("--plain-writes needs a value")?;
                let share: f64 = v
                    .parse()
                    .map_err(|_| format!("--plain-writes: `{v}` is not a number"))?;
                if !(0.0..=1.0).contains(&share) {
                    return Err(format!("--plain-writes: {share} is not between 0 and 1"));
                }
                args.plain_writes = Some(share);
            }
            "--timeout" => args.timeout = Some(number("--timeout")?),
            "--no-filters" => args.no_filters = true,
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            other => args.positional.push(other.to_owned()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("homeward-sim: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("homeward-sim: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.command.as_str() {
            "demo" => demo(&args).await,
            "run" => run(&args).await,
            "check" => check(&args).await,
            "conform" => conform(&args).await,
            other => Err(format!("unknown command `{other}`\n{USAGE}")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("homeward-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(memory: bool) -> Result<Option<MotoServer>, String> {
    if memory {
        return Ok(None);
    }
    MotoServer::start().map(Some).map_err(|e| e.to_string())
}

async fn demo(args: &Args) -> Result<bool, String> {
    let server = server(args.memory)?;
    let mut ok = true;
    for (name, text) in SEEDS {
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|e| format!("built-in scenario {name}: {e}"))?;
        ok &= play(&scenario, server.as_ref()).await?;
    }
    println!();
    if ok {
        println!("Every Region converged with Homeward on, and every expectation held.");
    } else {
        println!("FAILED: with Homeward on, a Region diverged or an expectation failed.");
    }
    Ok(ok)
}

async fn run(args: &Args) -> Result<bool, String> {
    let [path] = args.positional.as_slice() else {
        return Err(format!("run needs one scenario file\n{USAGE}"));
    };
    let scenario = Scenario::load(path.as_ref()).map_err(|e| e.to_string())?;
    let server = server(args.memory)?;
    play(&scenario, server.as_ref()).await
}

/// Runs a scenario with resolvers on and off, prints both; true when the
/// Homeward run converged and met the expectations.
async fn play(scenario: &Scenario, server: Option<&MotoServer>) -> Result<bool, String> {
    let backend = server.map_or(Backend::Memory, Backend::Moto);
    let registry = homeward::custom_rules::registry();
    let on = scenario
        .run(backend, true, &registry)
        .await
        .map_err(|e| e.to_string())?;
    let off = scenario
        .run(backend, false, &registry)
        .await
        .map_err(|e| e.to_string())?;
    let rule = "=".repeat(100);
    println!("\n{rule}\nScenario `{}`", scenario.name);
    if !scenario.description.is_empty() {
        println!("{}", scenario.description);
    }
    println!("{rule}\nTimeline with Homeward on (t = logical tick):");
    for line in &on.timeline {
        println!("  {line}");
    }
    print_finals(scenario, &on, &off);
    Ok(on.converged() && on.misses.is_empty())
}

fn print_finals(scenario: &Scenario, on: &Outcome, off: &Outcome) {
    let schema = homeward::Schema::new(
        &scenario.table.partition_key.0,
        scenario.table.sort_key.as_ref().map(|s| s.0.as_str()),
    );
    let rows: Vec<(String, String, String)> = scenario
        .regions
        .iter()
        .flat_map(|r| {
            let a = on.finals.get(r).cloned().unwrap_or_default();
            let b = off.finals.get(r).cloned().unwrap_or_default();
            let keys: std::collections::BTreeSet<String> =
                a.keys().chain(b.keys()).cloned().collect();
            keys.into_iter()
                .map(|k| {
                    let cell = |m: &std::collections::BTreeMap<String, _>| {
                        m.get(&k).map_or("(absent)".into(), |i| show(i, &schema))
                    };
                    (format!("{r} {k}"), cell(&a), cell(&b))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    println!("\nFinal state per Region:");
    println!(
        "  {:w0$} | {:w1$} | plain last-writer-wins",
        "Region", "Homeward"
    );
    println!(
        "  {}-+-{}-+-{}",
        "-".repeat(w0),
        "-".repeat(w1),
        "-".repeat(24)
    );
    for (place, a, b) in &rows {
        let mark = if a == b { " " } else { "*" };
        println!("  {place:w0$} | {a:w1$} |{mark}{b}");
    }
    let verdict = |o: &Outcome| {
        let mut parts = vec![if o.converged() {
            "all Regions identical".to_string()
        } else {
            "REGIONS DIVERGE".to_string()
        }];
        if o.misses.is_empty() {
            parts.push("every expected value present".into());
        } else {
            parts.push(format!("wrong: {}", o.misses.join("; ")));
        }
        parts.join(", ")
    };
    println!("  (* differs from Homeward)");
    println!(
        "  Homeward:               {} ({} journal entries, {} resolver writes)",
        verdict(on),
        on.journal_entries,
        on.stats.resolver_writes
    );
    println!("  last-writer-wins:       {}", verdict(off));
    if on.injected.calls.faulted() + on.injected.killed_invocations > 0 {
        println!("  injected (Homeward on): {}", on.injected);
    }
}

async fn check(args: &Args) -> Result<bool, String> {
    if args.writer.is_some() || args.share.is_some() || args.timeout.is_some() {
        return Err("--writer, --share and --timeout are flags of `conform`".into());
    }
    check_with(args, WriterChoice::Rust).await
}

/// `check` with a share of the writes through an external writer.
async fn conform(args: &Args) -> Result<bool, String> {
    let Some(command) = &args.writer else {
        return Err(format!("conform needs --writer \"<command>\"\n{USAGE}"));
    };
    if args.memory {
        return Err(
            "conform runs against moto: an external writer cannot reach the in-memory store (drop --memory)"
                .into(),
        );
    }
    let share = args.share.unwrap_or(conform::DEFAULT_SHARE);
    let timeout = args
        .timeout
        .map_or(conform::OP_TIMEOUT, Duration::from_secs);
    let writer = Arc::new(ExternalWriter::spawn(command, timeout).map_err(|e| e.to_string())?);
    println!(
        "external writer: sh -c {command:?}, {}% of the writes, answers within {timeout:?}",
        share * 100.0
    );
    let checked = check_with(
        args,
        WriterChoice::Mixed {
            writer: writer.clone(),
            share,
        },
    )
    .await;
    writer.close().await;
    let name = writer.name.lock().map(|n| n.clone()).unwrap_or_default();
    println!("external writer {name}: {}", writer.stats());
    let faults = writer.take_faults();
    for f in &faults {
        println!("FAULT after the last history: {f}");
    }
    Ok(checked? && faults.is_empty())
}

async fn check_with(args: &Args, writer: WriterChoice) -> Result<bool, String> {
    let config = CheckConfig {
        histories: args
            .histories
            .unwrap_or(if args.memory { 1000 } else { 20 }),
        regions: args.regions.unwrap_or(3),
        seed: args.seed.unwrap_or_else(rand::random),
        steps: args.steps.unwrap_or(24),
        rehome: args.rehome.clone(),
        fault_rate: args.fault_rate.unwrap_or(checker::FAULT_RATE),
        clock_skew_ms: args.clock_skew_ms.unwrap_or(checker::CLOCK_SKEW_MS),
        // `conform` tests an external writer: plain writers only on request.
        plain_writes: args.plain_writes.unwrap_or(match writer {
            WriterChoice::Rust => checker::PLAIN_WRITES,
            WriterChoice::Mixed { .. } => 0.0,
        }),
        writer,
        ..CheckConfig::default()
    };
    let config = if args.no_filters {
        CheckConfig {
            filters: homeward_sim::filter::Filters::default(),
            ..config
        }
    } else {
        config
    };
    let server = server(args.memory)?;
    let backend = server.as_ref().map_or(Backend::Memory, Backend::Moto);
    let started = Instant::now();
    println!(
        "checking {} histories, {} Regions, {} steps each, seeds {}.., on {}, {}% of the resolvers' store calls faulted, clocks skewed up to ±{} ms, {}, {}% of the writes by plain writers",
        config.histories,
        config.regions,
        config.steps,
        config.seed,
        if args.memory { "memory" } else { "moto" },
        config.fault_rate * 100.0,
        config.clock_skew_ms,
        if config.filters.is_empty() {
            "no FilterCriteria"
        } else {
            "template.yaml's FilterCriteria"
        },
        config.plain_writes * 100.0
    );
    let report = checker::check(&config, backend, &homeward::custom_rules::registry())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} histories ({} with forked chains), {} writes, {} resolver writes, {} injected batch failures, {} duplicate deliveries, {} violations in {:.1?}",
        report.histories,
        report.histories_with_forks,
        report.writes,
        report.resolver_writes,
        report.injected_failures,
        report.duplicate_deliveries,
        report.failures.len(),
        started.elapsed()
    );
    println!(
        "{} attribute values chosen by a rule among concurrent edits, {} of them explained by a journal entry",
        report.rule_decisions, report.rule_decisions_journaled
    );
    if report.plain_writes > 0 {
        println!(
            "{} plain writes (UpdateItem, PutItem, DeleteItem without the stamp protocol)",
            report.plain_writes
        );
    }
    println!("injected: {}", report.injected);
    for f in &report.failures {
        println!("\n{f}");
    }
    Ok(report.failures.is_empty())
}
