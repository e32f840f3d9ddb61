//! `bench-lambda`: the resolver's release bootstrap under a loopback Lambda
//! Runtime API, against moto. Run by `scripts/bench-lambda.sh`, which builds
//! what it needs; by hand:
//!
//! ```sh
//! bench-lambda --bootstrap target/release/resolver --moto .venv/bin/moto_server \
//!     --python .venv/bin/python --out target/bench
//! ```
//!
//! One run measures, and prints as one table:
//! - init: process spawn to the bootstrap's first `GET invocation/next`
//!   (median of several cold starts);
//! - the time and CPU of 1,000-record invocations (the pure_path bench's
//!   batch, 4.71 MB: 10% foreign writes, merged into home copies in moto);
//! - peak RSS (VmHWM) after a 1,260-record event (5.99 MB, under Lambda's
//!   6 MB payload limit);
//! - the bootstrap's size;
//! - the resolver's pure path in process against `bench/python_reference.py`
//!   on the same event file.

mod runtime_api;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeward::classify::Class;
use homeward::fixtures::BATCH_REGIONS;
use resolver::{triage, version_of, Config, StreamEvent};
use runtime_api::{Call, Invocation, RuntimeApi};

/// The bootstrap's allocator (functions/resolver/src/main.rs), for the
/// pure path timed in process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

const TABLE: &str = "bench-items";
const JOURNAL: &str = "bench-journal";
const RECORDS: usize = 1000;
/// Records of the large event: 5.99 MB, under Lambda's 6 MB payload limit.
const LARGE: usize = 1260;
const MERGE_RULES: &str = resolver::config::STREAM_BATCH_RULES;
const WAIT: Duration = Duration::from_secs(120);

struct Args {
    bootstrap: PathBuf,
    moto: PathBuf,
    python: PathBuf,
    reference: PathBuf,
    out: PathBuf,
    cold_starts: usize,
    invocations: usize,
    pure_runs: usize,
    /// Extra variables for the bootstrap (`--env NAME=VALUE`).
    env: Vec<(String, String)>,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        bootstrap: "target/release/resolver".into(),
        moto: ".venv/bin/moto_server".into(),
        python: ".venv/bin/python".into(),
        reference: "bench/python_reference.py".into(),
        out: "target/bench".into(),
        cold_starts: 10,
        invocations: 6,
        pure_runs: 90,
        env: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--bootstrap" => a.bootstrap = value()?.into(),
            "--moto" => a.moto = value()?.into(),
            "--python" => a.python = value()?.into(),
            "--reference" => a.reference = value()?.into(),
            "--out" => a.out = value()?.into(),
            "--cold-starts" => a.cold_starts = value()?.parse()?,
            "--invocations" => a.invocations = value()?.parse()?,
            "--pure-runs" => a.pure_runs = value()?.parse()?,
            "--env" => {
                let pair = value()?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or(format!("--env {pair}: NAME=VALUE"))?;
                a.env.push((k.to_owned(), v.to_owned()));
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if a.cold_starts == 0 || a.invocations < 2 || a.pure_runs == 0 {
        return Err("need at least 1 cold start, 2 invocations and 1 pure run".into());
    }
    Ok(a)
}

fn main() -> Result<(), Error> {
    let args = args()?;
    std::fs::create_dir_all(&args.out)?;

    // The events: batch k holds items k*1000.., so no invocation finds its
    // work already done by an earlier one; the last one is the largest
    // batch under Lambda's 6 MB payload limit.
    let batches: Vec<_> = (0..args.invocations)
        .map(|k| k * RECORDS..(k + 1) * RECORDS)
        .chain(std::iter::once(
            args.invocations * RECORDS..args.invocations * RECORDS + LARGE,
        ))
        .collect();
    let events: Vec<Arc<Vec<u8>>> = batches
        .iter()
        .map(|items| {
            let event = homeward::fixtures::stream_batch(items.clone());
            Arc::new(event.to_string().into_bytes())
        })
        .collect();
    let event_file = args.out.join("event-1000.json");
    std::fs::write(&event_file, events[0].as_slice())?;

    let moto = Moto::start(&args.moto, &args.out)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(seed(&moto.endpoint, &events))?;
    drop(runtime);

    let size = std::fs::metadata(&args.bootstrap)
        .map_err(|e| format!("{}: {e}", args.bootstrap.display()))?
        .len();
    let mut env = function_env(&moto.endpoint);
    env.extend(args.env.iter().cloned());
    let log = args.out.join("resolver.log");

    // Cold starts: spawn, wait for the first poll, stop.
    let mut inits = Vec::new();
    for _ in 0..args.cold_starts {
        let (api, calls) = RuntimeApi::start()?;
        let (mut child, spawned) = spawn(&args.bootstrap, &api, &env, &log)?;
        inits.push(first_poll(&calls, spawned)?);
        child.kill()?;
        child.wait()?;
    }

    // Invocations, in one process.
    let (api, calls) = RuntimeApi::start()?;
    let (mut child, spawned) = spawn(&args.bootstrap, &api, &env, &log)?;
    first_poll(&calls, spawned)?;
    let pid = child.id();
    let mut hwm = vec![vm_hwm_kb(pid)?];
    let mut runs = Vec::new();
    for (k, event) in events.iter().enumerate() {
        let id = format!("bench-{k}");
        let cpu0 = cpu_ns(pid)?;
        let start = Instant::now();
        api.invoke(Invocation {
            id: id.clone(),
            body: event.clone(),
            timeout: Duration::from_secs(60),
        });
        let (at, body) = response(&calls, &id)?;
        let wall = at - start;
        // The bootstrap posts the response, then polls again: wait for the
        // poll so the CPU count holds the whole invocation.
        next_poll(&calls)?;
        let cpu = Duration::from_nanos(cpu_ns(pid)? - cpu0);
        let answer: serde_json::Value = serde_json::from_slice(&body)?;
        if answer != serde_json::json!({"batchItemFailures": []}) {
            return Err(format!("invocation {k} answered {answer}").into());
        }
        runs.push((wall, cpu));
        if k + 2 >= events.len() {
            hwm.push(vm_hwm_kb(pid)?);
        }
    }
    child.kill()?;
    child.wait()?;
    drop(api);
    let merged = check_merged(&moto.endpoint, &batches)?;
    let large = runs.pop().expect("the large event ran");

    // The pure path in process and Python on the same file, one run each
    // in turn, so that both see the machine as it is while they run.
    let bytes = std::fs::read_to_string(&event_file)?;
    let pure = paired_samples(&args, &event_file, &bytes)?;
    drop(moto);

    print_table(Table {
        args: &args,
        event_bytes: events[0].len(),
        large_bytes: events[events.len() - 1].len(),
        inits,
        hwm,
        runs,
        large,
        merged,
        size,
        pure,
    });
    Ok(())
}

/// The environment Lambda gives the function, plus its configuration (as
/// template.yaml sets it) and moto's endpoint.
fn function_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_REGION", BATCH_REGIONS[0]),
        ("AWS_DEFAULT_REGION", BATCH_REGIONS[0]),
        ("AWS_LAMBDA_FUNCTION_NAME", "resolver"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/resolver"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("TZ", ":UTC"),
        ("TABLE_NAME", TABLE),
        ("TABLE_KEY", "pk,sk"),
        ("JOURNAL_TABLE", JOURNAL),
        ("MERGE_RULES", MERGE_RULES),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts the bootstrap with a clean environment (as on Lambda: no HOME,
/// no profile files), its output appended to `log`.
fn spawn(
    bootstrap: &Path,
    api: &RuntimeApi,
    env: &[(String, String)],
    log: &Path,
) -> Result<(Child, Instant), Error> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(bootstrap);
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let spawned = Instant::now();
    Ok((command.spawn()?, spawned))
}

fn first_poll(calls: &Receiver<Call>, spawned: Instant) -> Result<Duration, Error> {
    match calls.recv_timeout(WAIT)? {
        Call::Next(at) => Ok(at - spawned),
        other => Err(format!("the bootstrap did not poll first: {other:?}").into()),
    }
}

fn next_poll(calls: &Receiver<Call>) -> Result<(), Error> {
    match calls.recv_timeout(WAIT)? {
        Call::Next(_) => Ok(()),
        other => Err(format!("expected a poll, got {other:?}").into()),
    }
}

fn response(calls: &Receiver<Call>, id: &str) -> Result<(Instant, Vec<u8>), Error> {
    match calls.recv_timeout(WAIT)? {
        Call::Response { id: got, at, body } if got == id => Ok((at, body)),
        Call::Error(body) | Call::InitError(body) => Err(format!(
            "the bootstrap reported an error: {}",
            String::from_utf8_lossy(&body)
        )
        .into()),
        other => Err(format!("expected the response to {id}, got {other:?}").into()),
    }
}

/// The process's peak resident set, in kB.
fn vm_hwm_kb(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .ok_or("no VmHWM in /proc/<pid>/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// CPU time of all the process's threads, in ns (`schedstat`'s first field).
fn cpu_ns(pid: u32) -> Result<u64, Error> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .ok_or("empty schedstat")?
                .parse::<u64>()?;
        }
    }
    Ok(total)
}

/// moto on a free port, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(moto: &Path, out: &Path) -> Result<Self, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(out.join("moto.log"))?;
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e} (bash scripts/test.sh venv)", moto.display()))?;
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("moto did not start (target/bench/moto.log)".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(endpoint: &str, region: &'static str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .region(Region::new(region))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// The table and the journal in every Region, and the home copies of the
/// foreign writes (each record's old image: replication is caught up).
async fn seed(endpoint: &str, events: &[Arc<Vec<u8>>]) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    for region in BATCH_REGIONS {
        let ddb = client(endpoint, region).await;
        for table in [TABLE, JOURNAL] {
            let mut request = ddb
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (name, key_type) in [("pk", KeyType::Hash), ("sk", KeyType::Range)] {
                request = request
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(name)
                            .key_type(key_type)
                            .build()?,
                    )
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(name)
                            .attribute_type(ScalarAttributeType::S)
                            .build()?,
                    );
            }
            request.send().await?;
        }
    }
    let homes = client(endpoint, BATCH_REGIONS[1]).await;
    for event in events {
        let event: serde_json::Value = serde_json::from_slice(event)?;
        for record in event["Records"].as_array().ok_or("no Records")? {
            let old = &record["dynamodb"]["OldImage"];
            if old["home_region"]["S"] == BATCH_REGIONS[1] {
                let item: serde_dynamo::Item = serde_json::from_value(old.clone())?;
                homes
                    .put_item()
                    .table_name(TABLE)
                    .set_item(Some(item.into()))
                    .send()
                    .await?;
            }
        }
    }
    Ok(())
}

/// How many home copies carry the resolver's stamp: every foreign write of
/// every invocation should have been merged.
fn check_merged(endpoint: &str, batches: &[std::ops::Range<usize>]) -> Result<usize, Error> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let homes = client(endpoint, BATCH_REGIONS[1]).await;
        let mut merged = 0;
        let mut pages = homes.scan().table_name(TABLE).into_paginator().send();
        while let Some(page) = pages.next().await {
            for item in page?.items() {
                let stamp = item.get("_hw").and_then(|s| s.as_m().ok());
                let by = stamp.and_then(|s| s.get("by")).and_then(|b| b.as_s().ok());
                merged += usize::from(by.is_some_and(|b| b == "resolver"));
            }
        }
        let expected: usize = batches
            .iter()
            .map(|b| b.clone().filter(|i| i % 10 == 0).count())
            .sum();
        if merged != expected {
            return Err(format!("{merged} home copies merged, expected {expected}").into());
        }
        Ok(merged)
    })
}

/// The resolver's pure path, as `cargo bench -p resolver --bench
/// pure_path` times it (the same function): read the event in one pass,
/// triage every record, read the foreign writes' images as versions and
/// merge each into its old image. How many merged.
fn pure_path_once(bytes: &str, config: &Config) -> Result<usize, Error> {
    // The bootstrap's own read: one borrowed pass (serde only as a fallback).
    let event = StreamEvent::parse(bytes, config)?;
    let mut merged = 0;
    for record in &event.records {
        let t = triage(config, record)?;
        if let Class::Foreign { .. } = t.class {
            let change = &record.dynamodb;
            let n = version_of(config, change.new_image.as_ref(), "new")?.ok_or("no new image")?;
            let home_copy =
                version_of(config, change.old_image.as_ref(), "old")?.ok_or("no old image")?;
            std::hint::black_box(config.merger.merge_into(home_copy, &n));
            merged += 1;
        }
    }
    Ok(merged)
}

/// The pure path in process and `bench/python_reference.py`'s three
/// variants on the same file, in `--pure-runs` turns (Python serves runs
/// over a pipe: `--serve`). Each turn: one run of each Python variant, then
/// the Rust pure path back to back for as long as Python's lean run took.
/// Both sides so sample the machine over the same stretch of time (its
/// speed moves within seconds on this shared machine), each warm as it is
/// in a loop of its own. The first Rust run of each turn, after Python's
/// runs have filled the caches with their own data, is kept apart: the
/// pure path cold.
fn paired_samples(args: &Args, event: &Path, bytes: &str) -> Result<PureSamples, Error> {
    let config = Config::for_stream_batch(TABLE, JOURNAL);
    if pure_path_once(bytes, &config)? != RECORDS / 10 {
        return Err("the pure path did not find the foreign writes".into());
    }
    let mut python = Command::new(&args.python)
        .arg(&args.reference)
        .arg(event)
        .args(["--local", BATCH_REGIONS[0], "--serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.python.display()))?;
    let mut to = python.stdin.take().ok_or("no pipe to Python")?;
    let mut from = BufReader::new(python.stdout.take().ok_or("no pipe from Python")?).lines();
    let mut answer = move || -> Result<serde_json::Value, Error> {
        let line = from.next().ok_or("the Python reference stopped")??;
        Ok(serde_json::from_str(&line)?)
    };
    let about = answer()?;
    if about["classes"]["foreign"].as_u64() != Some((RECORDS / 10) as u64) {
        return Err(format!("the Python reference classified {about}").into());
    }
    let text = |k: &str| about[k].as_str().unwrap_or("?").to_owned();
    let mut out = PureSamples {
        warm: Samples::default(),
        cold: Samples::default(),
        python: PythonResult {
            lean: Samples::default(),
            whole: Samples::default(),
            raw: Samples::default(),
            version: text("python"),
            boto3: text("boto3"),
        },
    };
    let py = &mut out.python;
    for _ in 0..args.pure_runs {
        for (variant, samples) in [
            ("lean", &mut py.lean),
            ("whole", &mut py.whole),
            ("raw", &mut py.raw),
        ] {
            writeln!(to, "{variant}")?;
            to.flush()?;
            let run = answer()?;
            let ms = |k: &str| run[k].as_f64().ok_or_else(|| format!("no {k} in {run}"));
            samples.cpu.push(ms("cpu_ms")?);
            samples.wall.push(ms("wall_ms")?);
        }
        let lean_ms = py.lean.wall.last().copied().unwrap_or_default();
        let turn = Instant::now();
        let mut first = true;
        while first || turn.elapsed().as_secs_f64() * 1e3 < lean_ms {
            let (start, cpu0) = (Instant::now(), thread_cpu_ns()?);
            std::hint::black_box(pure_path_once(bytes, &config))?;
            let cpu_ms = (thread_cpu_ns()? - cpu0) as f64 / 1e6;
            let samples = if first { &mut out.cold } else { &mut out.warm };
            samples.push(cpu_ms, start);
            first = false;
        }
    }
    drop(to);
    python.wait()?;
    Ok(out)
}

/// What [`paired_samples`] measured.
struct PureSamples {
    /// The Rust pure path back to back (all but each turn's first run).
    warm: Samples,
    /// Each turn's first Rust run, right after Python's.
    cold: Samples,
    python: PythonResult,
}

/// Every run's ms of a piece of work: wall clock and the thread's CPU.
#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Samples {
    /// A run that took `cpu_ms` of CPU and started at `start`.
    fn push(&mut self, cpu_ms: f64, start: Instant) {
        self.cpu.push(cpu_ms);
        self.wall.push(start.elapsed().as_secs_f64() * 1e3);
    }

    fn timing(&self) -> Timing {
        Timing {
            wall: median(&mut self.wall.clone()),
            cpu: median(&mut self.cpu.clone()),
        }
    }
}

/// Median ms of a piece of work: wall clock, and CPU time of the thread
/// doing it (what matters on a shared machine, where the wall clock also
/// counts waiting for a core).
struct Timing {
    wall: f64,
    cpu: f64,
}

/// CPU time of the calling thread, in ns: `CLOCK_THREAD_CPUTIME_ID`, the
/// clock Python's `time.thread_time()` reads. (The thread's own
/// `schedstat` is not: for a running thread it lags until the scheduler
/// next accounts it, up to a tick, and read that way a 7 ms pure path
/// showed more CPU than wall time.)
fn thread_cpu_ns() -> Result<u64, Error> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(u64::try_from(now.tv_sec)? * 1_000_000_000 + u64::try_from(now.tv_nsec)?)
}

struct PythonResult {
    lean: Samples,
    whole: Samples,
    raw: Samples,
    version: String,
    boto3: String,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

struct Table<'a> {
    args: &'a Args,
    event_bytes: usize,
    large_bytes: usize,
    inits: Vec<Duration>,
    /// VmHWM in kB: at the first poll, after the 1,000-record events, after
    /// the large one.
    hwm: Vec<u64>,
    /// (wall, CPU) of each 1,000-record invocation.
    runs: Vec<(Duration, Duration)>,
    large: (Duration, Duration),
    merged: usize,
    size: u64,
    pure: PureSamples,
}

fn print_table(t: Table) {
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let mb = |bytes: usize| bytes as f64 / 1e6;
    let mib = |kb: u64| kb as f64 / 1024.0;
    let mut inits: Vec<f64> = t.inits.iter().map(ms).collect();
    let init = median(&mut inits);
    let (first, rest) = t.runs.split_first().expect("at least two invocations");
    let mut walls: Vec<f64> = rest.iter().map(|(w, _)| ms(w)).collect();
    let mut cpus: Vec<f64> = rest.iter().map(|(_, c)| ms(c)).collect();
    let (wall, cpu) = (median(&mut walls), median(&mut cpus));
    println!(
        "\nbootstrap: {}; events: {RECORDS} records ({} bytes, 10% foreign writes) x {}, then {LARGE} records ({} bytes)",
        t.args.bootstrap.display(),
        t.event_bytes,
        t.runs.len(),
        t.large_bytes,
    );
    println!("| what | result |");
    println!("|---|---|");
    println!(
        "| init: spawn to first poll (median of {}; min {:.1}, max {:.1}) | {init:.1} ms |",
        inits.len(),
        inits[0],
        inits[inits.len() - 1]
    );
    println!(
        "| peak RSS (VmHWM) after the {:.2} MB event (at the first poll {:.1} MiB; after the {:.2} MB events {:.1} MiB) | {:.1} MiB |",
        mb(t.large_bytes),
        mib(t.hwm[0]),
        mb(t.event_bytes),
        mib(t.hwm[1]),
        mib(t.hwm[2])
    );
    println!(
        "| 1,000-record invocation against moto, wall (median of {}; the first {:.0} ms) | {wall:.0} ms |",
        rest.len(),
        ms(&first.0)
    );
    println!(
        "| the same, the bootstrap's CPU (median; the first {:.1} ms) | {cpu:.1} ms ({:.1} µs per record) |",
        ms(&first.1),
        cpu * 1e3 / RECORDS as f64
    );
    println!(
        "| the {LARGE}-record event: wall, CPU | {:.0} ms, {:.1} ms |",
        ms(&t.large.0),
        ms(&t.large.1)
    );
    println!(
        "| foreign writes merged into their home copy in moto (all of them) | {} |",
        t.merged
    );
    println!(
        "| bootstrap size | {} bytes ({:.2} MB) |",
        t.size,
        mb(t.size as usize)
    );
    let row = |what: &str, t: &Timing| {
        println!("| {what} | {:.1} ms CPU ({:.1} ms wall) |", t.cpu, t.wall);
    };
    let (rust, cold) = (t.pure.warm.timing(), t.pure.cold.timing());
    row(
        &format!(
            "pure path of the 1,000-record event, Rust, in process, back to back (median of {} runs in {} turns; each turn after one run of each Python variant, as long as its lean run)",
            t.pure.warm.cpu.len(),
            t.args.pure_runs
        ),
        &rust,
    );
    let py = &t.pure.python;
    let (lean, whole, raw) = (py.lean.timing(), py.whole.timing(), py.raw.timing());
    row(
        &format!(
            "the same in Python {} + boto3 {}: TypeDeserializer on `_hw` and the home attribute, whole images for foreign writes (median of {})",
            py.version,
            py.boto3,
            py.lean.cpu.len()
        ),
        &lean,
    );
    row("Python, TypeDeserializer on every image whole", &whole);
    row(
        "Python, header read from the raw dicts (no TypeDeserializer), whole images for foreign writes",
        &raw,
    );
    println!(
        "| Rust vs Python, CPU: header with TypeDeserializer / whole images / raw header | {:.1}x / {:.1}x / {:.1}x faster |",
        lean.cpu / rust.cpu,
        whole.cpu / rust.cpu,
        raw.cpu / rust.cpu
    );
    row(
        "the pure path cold: each turn's first Rust run, right after Python's runs",
        &cold,
    );
    println!(
        "| Python's lean run against the cold Rust run, CPU | {:.1}x faster |",
        lean.cpu / cold.cpu
    );
}
