//! `homeward-sim conform`: an external writer (any language) as a child
//! process speaking JSON lines, mixed with the Rust writer in the
//! checker's random histories.
//!
//! The protocol (documented for other teams in `conformance/README.md`,
//! "conform: testing a writer of your own"): the simulator writes one
//! request per line on the child's stdin and waits for its answer, one line
//! on the child's stdout, before it sends the next. A `configure` request
//! comes first and again before every history (a new table, new clocks);
//! then `insert`, `update`, `increment`, `delete` and `get`, each naming
//! its Region, endpoint and table. An answer is `{"id", "ok": {"version",
//! "dot"}}` (the whole item written, stamp included) or `{"id", "error":
//! {"kind", "message"}}` with the kinds the conformance vectors use.
//!
//! [`ExternalWriter`] speaks it and gives the checker what the Rust
//! [`homeward::Writer`] gives: the written [`Version`] (the answer's item,
//! decoded strictly with [`Schema::decode`]) or a [`WriteError`]. Whatever
//! a conforming writer cannot do is a *fault*, kept for the checker to
//! report as a violation: no answer within the timeout, a line that is not
//! JSON or answers another request, a version that does not decode, names
//! another dot or Region, or does not show the operation's effect, an error
//! kind the protocol does not know, or `config`/`protocol`/`internal`.
//! After a fault that may leave the line stream out of step (a timeout, a
//! wrong id, the child gone), the writer is stopped and every later
//! operation is a fault too.
//!
//! [`Route`] is what the checker calls for each write: per operation, a
//! coin (seeded by the history's seed, so replays and minimized prefixes
//! make the same choices) sends it through the external writer or the Rust
//! one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeward::edit::EditError;
use homeward::error::StampError;
use homeward::store::{Store, StoreError};
use homeward::{Region, Schema, Version, WriteError, Writer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The protocol's version, sent in every `configure`.
pub const PROTOCOL: u64 = 1;

/// How long an operation's answer may take by default (a writer retries a
/// failed condition or throttling for a few seconds at most).
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first answer (to `configure`) may take: an interpreter
/// starting and loading its SDK.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the child has to exit once its stdin is closed.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The error kinds an answer may carry that are a refusal or a failure of
/// the write (nothing written, or for `unavailable` perhaps written), as
/// the Rust writer has them too. Any other kind is a fault.
pub const WRITE_ERROR_KINDS: [&str; 14] = [
    "not_found",
    "already_exists",
    "reserved",
    "not_a_counter",
    "counter_value",
    "counter_removed",
    "overflow",
    "home",
    "stamp",
    "bad_key",
    "too_large",
    "contended",
    "unavailable",
    "rejected",
];

/// Why the external writer could not be started or configured.
#[derive(Debug, thiserror::Error)]
#[error("external writer `{command}`: {reason}")]
pub struct ConformError {
    pub command: String,
    pub reason: String,
}

/// What `configure` tells the writer: everything it needs besides the
/// operations. `table` has the conformance vectors' `setup.table` shape.
#[derive(Debug, Clone)]
pub struct Setup {
    pub schema: Schema,
    pub ttl_attribute: String,
    pub retention_seconds: u64,
    /// The attribute mirroring the home (`attribute:<name>`) that the
    /// writer keeps in step with the stamp's home; `None` for the checker,
    /// whose Rust writer has none.
    pub home_attribute: Option<String>,
    /// `MERGE_RULES`, JSON text.
    pub rules: String,
    pub dot_window: usize,
    /// The resolvers' `HOME_STRATEGY` (for writers that route; the
    /// operations name their Region).
    pub home_strategy: String,
    /// Each Region's clock skew in ms: the stamps' `t` is the writer's
    /// clock plus this.
    pub clock_skew_ms: BTreeMap<String, i64>,
}

impl Setup {
    /// The `configure` request.
    pub fn request(&self, id: u64) -> Value {
        json!({
            "id": id,
            "op": "configure",
            "protocol": PROTOCOL,
            "table": {
                "partition_key": self.schema.partition_key,
                "sort_key": self.schema.sort_key,
                "stamp_attribute": self.schema.stamp_attribute,
                "ttl_attribute": self.ttl_attribute,
                "retention_seconds": self.retention_seconds,
                "home_attribute": self.home_attribute,
            },
            "rules": serde_json::from_str::<Value>(&self.rules).unwrap_or_else(|_| json!({})),
            "dot_window": self.dot_window,
            "home_strategy": self.home_strategy,
            "clock_skew_ms": self.clock_skew_ms,
        })
    }
}

/// Where an operation goes: a Region of a table on an endpoint.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    pub table: String,
    pub schema: Schema,
    pub ttl_attribute: String,
}

/// One write, as data: what the checker asks of either writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new item (its key included), or the revival of a soft-deleted one.
    Insert(Item),
    /// One read-modify-write: `set`, then `remove`, then `add` (elements
    /// added to the set the item holds when the write reads it).
    Update {
        set: BTreeMap<String, AttributeValue>,
        remove: Vec<String>,
        add: BTreeMap<String, AttributeValue>,
    },
    Increment {
        attribute: String,
        by: i64,
    },
    /// A soft delete.
    Delete,
}

impl Write {
    pub fn set(attribute: &str, value: AttributeValue) -> Self {
        Write::Update {
            set: BTreeMap::from([(attribute.to_owned(), value)]),
            remove: Vec::new(),
            add: BTreeMap::new(),
        }
    }

    pub fn remove(attribute: &str) -> Self {
        Write::Update {
            set: BTreeMap::new(),
            remove: vec![attribute.to_owned()],
            add: BTreeMap::new(),
        }
    }

    /// Adds `element` to the string set `attribute`.
    pub fn add(attribute: &str, element: &str) -> Self {
        Write::Update {
            set: BTreeMap::new(),
            remove: Vec::new(),
            add: BTreeMap::from([(
                attribute.to_owned(),
                AttributeValue::Ss(vec![element.to_owned()]),
            )]),
        }
    }

    fn op(&self) -> &'static str {
        match self {
            Write::Insert(_) => "insert",
            Write::Update { .. } => "update",
            Write::Increment { .. } => "increment",
            Write::Delete => "delete",
        }
    }

    /// The request line's operation fields.
    fn fields(&self, key: &Item) -> Value {
        match self {
            Write::Insert(item) => json!({ "item": item }),
            Write::Update { set, remove, add } => {
                let mut fields = json!({ "key": key });
                if !set.is_empty() {
                    fields["set"] = json!(set);
                }
                if !remove.is_empty() {
                    fields["remove"] = json!(remove);
                }
                if !add.is_empty() {
                    fields["add"] = json!(add);
                }
                fields
            }
            Write::Increment { attribute, by } => {
                json!({ "key": key, "attribute": attribute, "by": by })
            }
            Write::Delete => json!({ "key": key }),
        }
    }

    /// Makes this write with the Rust writer: the same calls the checker
    /// has always made.
    ///
    /// # Errors
    /// What the writer refuses.
    pub async fn with_rust<S: Store>(
        &self,
        w: &Writer<S>,
        region: &Region,
        key: &Item,
    ) -> Result<Version, WriteError> {
        match self {
            Write::Insert(item) => w.insert(region, item.clone()).await,
            Write::Update { set, remove, add } => {
                w.update(region, key, |d| {
                    for (name, value) in set {
                        d.set(name, value.clone());
                    }
                    for name in remove {
                        d.remove(name);
                    }
                    for (name, value) in add {
                        d.set(name, added(d.get(name), value));
                    }
                })
                .await
            }
            Write::Increment { attribute, by } => w.increment(region, key, attribute, *by).await,
            Write::Delete => w.delete(region, key).await,
        }
    }

    /// What the version written must show, or why it does not.
    fn shown_by(&self, v: &Version, ttl_attribute: &str) -> Result<(), String> {
        let values = v.values();
        match self {
            Write::Insert(item) => {
                for (name, value) in item.iter() {
                    if v.key.contains_key(name) {
                        continue;
                    }
                    if values.get(name) != Some(value) {
                        return Err(format!("the inserted `{name}` is not in the version"));
                    }
                }
            }
            Write::Update { set, remove, add } => {
                for (name, value) in set {
                    if values.get(name) != Some(value) {
                        return Err(format!("the version does not show `{name}` as set"));
                    }
                }
                for name in remove {
                    if values.contains_key(name) {
                        return Err(format!("the version still shows the removed `{name}`"));
                    }
                }
                for (name, value) in add {
                    if !contains_all(values.get(name), value) {
                        return Err(format!("the version's `{name}` lacks an added element"));
                    }
                }
            }
            Write::Increment { attribute, .. } => {
                if !matches!(values.get(attribute), Some(AttributeValue::N(_))) {
                    return Err(format!("the version shows no counter `{attribute}`"));
                }
            }
            Write::Delete => {
                if !values.contains_key(ttl_attribute) {
                    return Err(format!("the soft delete did not set `{ttl_attribute}`"));
                }
            }
        }
        Ok(())
    }
}

/// `current` with the elements of the set `add` appended (those it lacks),
/// as `Write::Update`'s `add` makes it: a current value of another type
/// counts as empty.
fn added(current: Option<AttributeValue>, add: &AttributeValue) -> AttributeValue {
    fn union(mut have: Vec<String>, more: &[String]) -> Vec<String> {
        for m in more {
            if !have.contains(m) {
                have.push(m.clone());
            }
        }
        have
    }
    match (current, add) {
        (Some(AttributeValue::Ss(have)), AttributeValue::Ss(more)) => {
            AttributeValue::Ss(union(have, more))
        }
        (Some(AttributeValue::Ns(have)), AttributeValue::Ns(more)) => {
            AttributeValue::Ns(union(have, more))
        }
        (_, AttributeValue::Ss(more)) => AttributeValue::Ss(union(Vec::new(), more)),
        (_, AttributeValue::Ns(more)) => AttributeValue::Ns(union(Vec::new(), more)),
        (_, other) => other.clone(),
    }
}

fn contains_all(shown: Option<&AttributeValue>, add: &AttributeValue) -> bool {
    match (shown, add) {
        (Some(AttributeValue::Ss(have)), AttributeValue::Ss(more))
        | (Some(AttributeValue::Ns(have)), AttributeValue::Ns(more)) => {
            more.iter().all(|m| have.contains(m))
        }
        _ => false,
    }
}

/// Counts over a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExternalStats {
    /// Operations sent (writes and gets, not `configure`).
    pub operations: usize,
    /// Writes the external writer made (an `ok` answer).
    pub written: usize,
    /// Writes it refused or failed with a typed error.
    pub refused: usize,
    /// Gets.
    pub reads: usize,
    /// Faults (each is a violation).
    pub faults: usize,
}

impl fmt::Display for ExternalStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} operations through the external writer: {} writes made, {} refused with a typed error, {} reads, {} faults",
            self.operations, self.written, self.refused, self.reads, self.faults
        )
    }
}

struct Io {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    /// Why the writer was stopped: every later operation is a fault.
    stopped: Option<String>,
}

/// An external writer: a child process (`sh -c <command>`) speaking the
/// conform protocol on its stdin and stdout. Its stderr is the
/// simulator's.
pub struct ExternalWriter {
    pub command: String,
    /// What the writer calls itself (its answer to `configure`).
    pub name: Mutex<String>,
    pub timeout: Duration,
    io: tokio::sync::Mutex<Io>,
    faults: Mutex<Vec<String>>,
    operations: AtomicUsize,
    written: AtomicUsize,
    refused: AtomicUsize,
    reads: AtomicUsize,
    fault_count: AtomicUsize,
}

impl fmt::Debug for ExternalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalWriter")
            .field("command", &self.command)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A typed error answer, as the Rust writer's error.
fn write_error(kind: &str, message: &str, error: &Value, region: &Region) -> WriteError {
    let attribute = error
        .get("attribute")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let message = message.to_owned();
    match kind {
        "not_found" => WriteError::NotFound,
        "already_exists" => WriteError::AlreadyExists,
        "reserved" => EditError::Reserved(attribute).into(),
        "not_a_counter" => EditError::NotACounter(attribute).into(),
        "counter_value" => EditError::CounterValue {
            attribute,
            got: "a value that is not a whole number".into(),
        }
        .into(),
        "counter_removed" => EditError::CounterRemoved(attribute).into(),
        "overflow" => EditError::Overflow(attribute).into(),
        "home" => WriteError::Home(message),
        "stamp" => WriteError::Stamp(StampError::Field {
            field: attribute,
            reason: message,
        }),
        "bad_key" => WriteError::BadKey(message),
        "too_large" => WriteError::TooLarge {
            bytes: error
                .get("bytes")
                .and_then(Value::as_u64)
                .map_or(0, |b| usize::try_from(b).unwrap_or(usize::MAX)),
        },
        "contended" => WriteError::Contended {
            attempts: error
                .get("attempts")
                .and_then(Value::as_u64)
                .map_or(0, |a| u32::try_from(a).unwrap_or(u32::MAX)),
        },
        "rejected" => WriteError::Store(StoreError::Rejected(message)),
        _ => WriteError::Store(StoreError::Service {
            region: region.to_string(),
            retryable: true,
            message: format!("external writer: {message}"),
            source: None,
        }),
    }
}

fn fault_error(region: &Region, fault: &str) -> WriteError {
    WriteError::Store(StoreError::Service {
        region: region.to_string(),
        retryable: false,
        message: format!("external writer fault: {fault}"),
        source: None,
    })
}

impl ExternalWriter {
    /// Starts `sh -c <command>` (killed when the writer is dropped).
    ///
    /// # Errors
    /// When the shell cannot be started.
    pub fn spawn(command: &str, timeout: Duration) -> Result<Self, ConformError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ConformError {
                command: command.to_owned(),
                reason: format!("cannot start it: {e}"),
            })?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .map(BufReader::new)
            .ok_or(ConformError {
                command: command.to_owned(),
                reason: "no stdout".into(),
            })?;
        Ok(ExternalWriter {
            command: command.to_owned(),
            name: Mutex::new(String::new()),
            timeout,
            io: tokio::sync::Mutex::new(Io {
                child,
                stdin,
                stdout,
                next_id: 1,
                stopped: None,
            }),
            faults: Mutex::new(Vec::new()),
            operations: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            fault_count: AtomicUsize::new(0),
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> ExternalStats {
        ExternalStats {
            operations: self.operations.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            faults: self.fault_count.load(Ordering::Relaxed),
        }
    }

    /// The faults since the last call (each a violation), and forgets them.
    pub fn take_faults(&self) -> Vec<String> {
        std::mem::take(&mut *self.faults.lock().expect("faults lock"))
    }

    fn fault(&self, text: String) -> String {
        self.fault_count.fetch_add(1, Ordering::Relaxed);
        self.faults
            .lock()
            .expect("faults lock")
            .push(format!("external writer: {text}"));
        text
    }

    /// Sends one request (its `id` set here) and reads its answer: the
    /// answer's `ok` body or `error` object.
    async fn call(&self, mut request: Value, timeout: Duration) -> Result<Answer, String> {
        let mut io = self.io.lock().await;
        if let Some(why) = &io.stopped {
            return Err(format!("stopped earlier ({why})"));
        }
        let id = io.next_id;
        io.next_id += 1;
        request["id"] = json!(id);
        let what = request["op"].as_str().unwrap_or("?").to_owned();
        let result = exchange(&mut io, &request, id, timeout).await;
        if let Err(why) = &result {
            // The stream may be out of step: stop the writer.
            io.stopped = Some(format!("request {id} ({what}): {why}"));
            io.stdin = None;
            let _ = io.child.start_kill();
        }
        result
    }

    /// Sends `configure` and waits for its answer (up to [`START_TIMEOUT`]
    /// or the writer's timeout, whichever is longer).
    ///
    /// # Errors
    /// No answer, an error answer, or a writer stopped earlier.
    pub async fn configure(&self, setup: &Setup) -> Result<(), ConformError> {
        let failed = |reason: String| ConformError {
            command: self.command.clone(),
            reason,
        };
        let answer = self
            .call(setup.request(0), self.timeout.max(START_TIMEOUT))
            .await
            .map_err(|e| failed(self.fault(format!("configure: {e}"))))?;
        match answer {
            Answer::Ok(body) => {
                let name = body
                    .get("writer")
                    .and_then(Value::as_str)
                    .unwrap_or("(unnamed)");
                *self.name.lock().expect("name lock") = name.to_owned();
                Ok(())
            }
            Answer::Error { kind, message, .. } => Err(failed(
                self.fault(format!("configure refused ({kind}): {message}")),
            )),
        }
    }

    /// Makes `write` through the external writer, as the Rust writer's
    /// result. A fault is recorded (see [`Self::take_faults`]) and returned
    /// as a store error.
    ///
    /// # Errors
    /// The typed error the writer answered, or a fault.
    pub async fn write(
        &self,
        target: &Target,
        region: &Region,
        key: &Item,
        write: &Write,
    ) -> Result<Version, WriteError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let mut request = write.fields(key);
        request["op"] = json!(write.op());
        let described = format!("{} in {region} of {}", write.op(), key_text(key));
        let answer = self.send(target, region, request).await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                return Err(fault_error(
                    region,
                    &self.fault(format!("{described}: {e}")),
                ))
            }
        };
        match answer {
            Answer::Ok(body) => {
                let checked = version_of(&body, target, region, true).and_then(|v| {
                    let v = v.ok_or_else(|| "an `ok` answer without a version".to_owned())?;
                    write.shown_by(&v, &target.ttl_attribute)?;
                    Ok(v)
                });
                match checked {
                    Ok(v) => {
                        self.written.fetch_add(1, Ordering::Relaxed);
                        Ok(v)
                    }
                    Err(e) => Err(fault_error(
                        region,
                        &self.fault(format!("{described}: {e}")),
                    )),
                }
            }
            Answer::Error {
                kind,
                message,
                error,
            } => {
                if WRITE_ERROR_KINDS.contains(&kind.as_str()) {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    Err(write_error(&kind, &message, &error, region))
                } else {
                    Err(fault_error(
                        region,
                        &self.fault(format!(
                            "{described}: answered error kind `{kind}`: {message}"
                        )),
                    ))
                }
            }
        }
    }

    /// Reads the item through the external writer: the version it reads
    /// (`None`: no item, or a soft-deleted one).
    ///
    /// # Errors
    /// The typed error the writer answered, or a fault.
    pub async fn get(
        &self,
        target: &Target,
        region: &Region,
        key: &Item,
    ) -> Result<Option<Version>, WriteError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        let described = format!("get in {region} of {}", key_text(key));
        let answer = match self
            .send(target, region, json!({ "op": "get", "key": key }))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                return Err(fault_error(
                    region,
                    &self.fault(format!("{described}: {e}")),
                ))
            }
        };
        match answer {
            Answer::Ok(body) => version_of(&body, target, region, false)
                .map_err(|e| fault_error(region, &self.fault(format!("{described}: {e}")))),
            Answer::Error {
                kind,
                message,
                error,
            } if WRITE_ERROR_KINDS.contains(&kind.as_str()) => {
                Err(write_error(&kind, &message, &error, region))
            }
            Answer::Error { kind, message, .. } => Err(fault_error(
                region,
                &self.fault(format!(
                    "{described}: answered error kind `{kind}`: {message}"
                )),
            )),
        }
    }

    async fn send(
        &self,
        target: &Target,
        region: &Region,
        mut request: Value,
    ) -> Result<Answer, String> {
        request["region"] = json!(region.as_str());
        request["endpoint"] = json!(target.endpoint);
        request["table"] = json!(target.table);
        self.call(request, self.timeout).await
    }

    /// Closes the child's stdin and waits for it to exit (killing it after
    /// [`EXIT_TIMEOUT`]); a failed exit is a fault.
    pub async fn close(&self) {
        let mut io = self.io.lock().await;
        io.stdin = None;
        let stopped = io.stopped.is_some();
        match tokio::time::timeout(EXIT_TIMEOUT, io.child.wait()).await {
            Ok(Ok(status)) if status.success() || stopped => {}
            Ok(Ok(status)) => {
                self.fault(format!("exited with {status} after its stdin closed"));
            }
            Ok(Err(e)) => {
                self.fault(format!("cannot wait for it: {e}"));
            }
            Err(_) => {
                let _ = io.child.start_kill();
                self.fault(format!(
                    "did not exit within {EXIT_TIMEOUT:?} of its stdin closing"
                ));
            }
        }
    }
}

/// An answer line, read.
enum Answer {
    Ok(Value),
    Error {
        kind: String,
        message: String,
        error: Value,
    },
}

async fn exchange(
    io: &mut Io,
    request: &Value,
    id: u64,
    timeout: Duration,
) -> Result<Answer, String> {
    let Some(stdin) = io.stdin.as_mut() else {
        return Err("its stdin is closed".into());
    };
    let mut line = request.to_string();
    line.push('\n');
    let sent = async {
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await
    };
    match tokio::time::timeout(timeout, sent).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("cannot write the request: {e} (has it exited?)")),
        Err(_) => return Err(format!("did not read the request within {timeout:?}")),
    }
    let mut answer = String::new();
    loop {
        answer.clear();
        match tokio::time::timeout(timeout, io.stdout.read_line(&mut answer)).await {
            Err(_) => return Err(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => return Err(format!("cannot read its stdout: {e}")),
            Ok(Ok(0)) => {
                let status = match io.child.try_wait() {
                    Ok(Some(s)) => format!(", exited with {s}"),
                    _ => String::new(),
                };
                return Err(format!("closed its stdout without an answer{status}"));
            }
            Ok(Ok(_)) if answer.trim().is_empty() => continue,
            Ok(Ok(_)) => break,
        }
    }
    let parsed: Value = serde_json::from_str(answer.trim_end())
        .map_err(|e| format!("answered a line that is not JSON ({e})"))?;
    if parsed.get("id") != Some(&json!(id)) {
        return Err(format!(
            "answered id {} to request {id}",
            parsed.get("id").map_or("(none)".into(), Value::to_string)
        ));
    }
    match (parsed.get("ok"), parsed.get("error")) {
        (Some(ok), None) => Ok(Answer::Ok(ok.clone())),
        (None, Some(error)) => {
            let kind = error.get("kind").and_then(Value::as_str);
            let message = error.get("message").and_then(Value::as_str);
            match (kind, message) {
                (Some(kind), Some(message)) => Ok(Answer::Error {
                    kind: kind.to_owned(),
                    message: message.to_owned(),
                    error: error.clone(),
                }),
                _ => Err("answered an `error` without a `kind` and a `message`".into()),
            }
        }
        _ => Err("answered neither `ok` nor `error`".into()),
    }
}

/// The version of an `ok` body, decoded strictly, checked against its
/// `dot` (and for a write, the Region it was asked in).
fn version_of(
    body: &Value,
    target: &Target,
    region: &Region,
    write: bool,
) -> Result<Option<Version>, String> {
    let version = body.get("version").unwrap_or(&Value::Null);
    let dot = body.get("dot").unwrap_or(&Value::Null);
    if version.is_null() {
        return if dot.is_null() {
            Ok(None)
        } else {
            Err("a `dot` without a `version`".into())
        };
    }
    let item: Item = serde_json::from_value(version.clone())
        .map_err(|e| format!("the version is not an item in DynamoDB JSON ({e})"))?;
    let v = target
        .schema
        .decode(&item)
        .map_err(|e| format!("the version's stamp does not decode: {e}"))?;
    let encoded = v.header.dot().encode();
    if dot.as_str() != Some(encoded.as_str()) {
        return Err(format!(
            "answered dot {} but the version's stamp says {encoded}",
            dot.as_str().map_or_else(|| dot.to_string(), str::to_owned)
        ));
    }
    if write && &v.header.origin != region {
        return Err(format!(
            "a write asked of {region} was stamped by {}",
            v.header.origin
        ));
    }
    Ok(Some(v))
}

fn key_text(key: &Item) -> String {
    let mut parts: Vec<String> = key
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::cluster::show_value(v)))
        .collect();
    parts.sort();
    parts.join(",")
}

/// Which writers the checker's histories write through.
#[derive(Debug, Clone, Default)]
pub enum WriterChoice {
    /// The Rust writer only (`homeward-sim check`).
    #[default]
    Rust,
    /// A share of the writes, per write by the history's seed, through an
    /// external writer; the rest through the Rust writer (`conform`).
    Mixed {
        writer: Arc<ExternalWriter>,
        share: f64,
    },
}

impl WriterChoice {
    /// The subcommand and flags that replay a history with these writers.
    pub fn replay_command(&self) -> String {
        match self {
            WriterChoice::Rust => "check".into(),
            WriterChoice::Mixed { writer, share } => {
                let mut command = format!(
                    "conform --writer '{}'",
                    writer.command.replace('\'', r"'\''")
                );
                if (*share - DEFAULT_SHARE).abs() > f64::EPSILON {
                    command.push_str(&format!(" --share {share}"));
                }
                if writer.timeout != OP_TIMEOUT {
                    command.push_str(&format!(" --timeout {}", writer.timeout.as_secs()));
                }
                command
            }
        }
    }
}

/// The share of writes `conform` sends to the external writer by default.
pub const DEFAULT_SHARE: f64 = 0.5;

/// The checker's writers for one history: the Rust writer alone, or mixed
/// with an external one.
pub struct Route {
    external: Option<(Arc<ExternalWriter>, Target, f64)>,
    rng: StdRng,
    /// Writes made through the external writer in this history.
    pub external_writes: usize,
    /// Whether the last write went through the external writer.
    last_external: bool,
}

impl Route {
    /// The Rust writer alone: no random draws.
    pub fn rust() -> Self {
        Route {
            external: None,
            rng: StdRng::seed_from_u64(0),
            external_writes: 0,
            last_external: false,
        }
    }

    /// The route of a history of the checker on cluster `c`: `choice`'s
    /// writers, the external one configured with the cluster's table, the
    /// checker's rules and the Regions' clock skews.
    ///
    /// # Errors
    /// An external writer on the in-memory backend (it cannot reach it),
    /// or one that does not accept `configure`.
    pub async fn for_history(
        choice: &WriterChoice,
        seed: u64,
        backend: crate::scenario::Backend<'_>,
        c: &crate::cluster::Cluster,
        w: &Writer<crate::cluster::SimStore>,
        rules: &str,
    ) -> Result<Self, ConformError> {
        let WriterChoice::Mixed { writer, share } = choice else {
            return Ok(Route::rust());
        };
        let crate::scenario::Backend::Moto(server) = backend else {
            return Err(ConformError {
                command: writer.command.clone(),
                reason: "an external writer needs moto, not --memory".into(),
            });
        };
        let setup = Setup {
            schema: c.schema.clone(),
            ttl_attribute: w.tombstones.ttl_attribute.clone(),
            retention_seconds: w.tombstones.retention.as_secs(),
            home_attribute: w.home_attribute.clone(),
            rules: rules.to_owned(),
            dot_window: w.merger().window,
            home_strategy: c
                .spec
                .resolver_env
                .iter()
                .find(|(k, _)| *k == "HOME_STRATEGY")
                .map_or_else(|| "attribute:home_region".to_owned(), |(_, v)| v.clone()),
            clock_skew_ms: c.spec.clocks.clone(),
        };
        let target = Target {
            endpoint: server.endpoint().to_owned(),
            table: c.table.clone(),
            schema: c.schema.clone(),
            ttl_attribute: w.tombstones.ttl_attribute.clone(),
        };
        Route::mixed(writer.clone(), *share, seed, &setup, target).await
    }

    /// ` [external]` when the last write went through the external writer
    /// (for the history's lines).
    pub fn mark(&self) -> &'static str {
        if self.last_external {
            " [external writer]"
        } else {
            ""
        }
    }

    /// A share `share` of the writes through `external` (configured with
    /// `setup` for this history), chosen per write by a generator seeded
    /// with the history's `seed`.
    ///
    /// # Errors
    /// When the writer does not accept `configure`.
    pub async fn mixed(
        external: Arc<ExternalWriter>,
        share: f64,
        seed: u64,
        setup: &Setup,
        target: Target,
    ) -> Result<Self, ConformError> {
        external.configure(setup).await?;
        Ok(Route {
            external: Some((external, target, share)),
            rng: StdRng::seed_from_u64(seed ^ 0xE87E_12A1),
            external_writes: 0,
            last_external: false,
        })
    }

    /// Makes `write` through the writer the coin picks.
    ///
    /// # Errors
    /// What the writer refuses, or (external) a fault.
    pub async fn write<S: Store>(
        &mut self,
        w: &Writer<S>,
        region: &Region,
        key: &Item,
        write: Write,
    ) -> Result<Version, WriteError> {
        self.last_external = false;
        if let Some((external, target, share)) = &self.external {
            if self.rng.random_bool(*share) {
                self.external_writes += 1;
                self.last_external = true;
                return external.write(target, region, key, &write).await;
            }
        }
        write.with_rust(w, region, key).await
    }

    /// After a history: every item read through the external writer in
    /// every Region must be what the Rust writer reads (values and dot);
    /// then the history's faults. Each returned line is a violation.
    pub async fn finish<S: Store>(
        &mut self,
        w: &Writer<S>,
        regions: &[Region],
        keys: &[Item],
    ) -> Vec<String> {
        let Some((external, target, _)) = &self.external else {
            return Vec::new();
        };
        let mut violations = Vec::new();
        for region in regions {
            for key in keys {
                let theirs = external.get(target, region, key).await;
                let ours = w.get(region, key).await;
                let same = match (&theirs, &ours) {
                    (Ok(None), Ok(None)) => true,
                    (Ok(Some(a)), Ok(Some(b))) => {
                        a.values() == b.values() && a.header.dot() == b.header.dot()
                    }
                    (Err(_), Err(_)) => true,
                    _ => false,
                };
                if !same {
                    let show = |r: &Result<Option<Version>, WriteError>| match r {
                        Ok(None) => "no item".to_owned(),
                        Ok(Some(v)) => format!(
                            "dot {} {}",
                            v.header.dot().encode(),
                            show_values(&v.values())
                        ),
                        Err(e) => format!("error: {e}"),
                    };
                    violations.push(format!(
                        "external writer: get of {} in {region} read {}, the Rust writer reads {}",
                        key_text(key),
                        show(&theirs),
                        show(&ours)
                    ));
                }
            }
        }
        violations.extend(external.take_faults());
        violations
    }
}

fn show_values(values: &BTreeMap<String, AttributeValue>) -> String {
    let parts: BTreeSet<String> = values
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::cluster::show_value(v)))
        .collect();
    format!("{{{}}}", parts.into_iter().collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use homeward::Merger;

    use super::*;
    use crate::memory::MemStore;

    const EAST: &str = "us-east-1";

    fn east() -> Region {
        Region::parse(EAST).expect("a Region")
    }

    fn key() -> Item {
        Item::from(HashMap::from([(
            "pk".to_owned(),
            AttributeValue::S("k0".into()),
        )]))
    }

    fn target() -> Target {
        Target {
            endpoint: "http://127.0.0.1:1".into(),
            table: "t".into(),
            schema: Schema::new("pk", None),
            ttl_attribute: "hw_expires".into(),
        }
    }

    fn setup() -> Setup {
        Setup {
            schema: Schema::new("pk", None),
            ttl_attribute: "hw_expires".into(),
            retention_seconds: 604_800,
            home_attribute: None,
            rules: crate::checker::RULES.into(),
            dot_window: 32,
            home_strategy: "attribute:home_region".into(),
            clock_skew_ms: BTreeMap::from([(EAST.to_owned(), -250)]),
        }
    }

    /// A version the Rust writer makes: `{a = "x"}` inserted in us-east-1.
    async fn inserted() -> (Item, Version) {
        let schema = Schema::new("pk", None);
        let w = Writer::new(
            MemStore::new(schema.clone()),
            schema.clone(),
            Merger::new(homeward::Rules::default()),
        );
        let mut item = key();
        item.insert("a".into(), AttributeValue::S("x".into()));
        let v = w.insert(&east(), item).await.expect("insert");
        (schema.encode(&v), v)
    }

    /// A writer that prints `answers` (one JSON value per line) and then
    /// reads its stdin to the end.
    fn canned(answers: &[Value], timeout: Duration) -> ExternalWriter {
        let text: String = answers.iter().map(|a| format!("{a}\n")).collect();
        let path = std::env::temp_dir().join(format!(
            "homeward-conform-{}-{}.jsonl",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, text).expect("write the answers");
        ExternalWriter::spawn(
            &format!("cat '{}'; cat >/dev/null", path.display()),
            timeout,
        )
        .expect("spawn")
    }

    fn configured(id: u64) -> Value {
        json!({"id": id, "ok": {"writer": "canned 1"}})
    }

    #[test]
    fn configure_carries_the_table_the_rules_and_the_clocks() {
        let r = setup().request(7);
        assert_eq!(r["op"], "configure");
        assert_eq!(r["protocol"], 1);
        assert_eq!(r["table"]["partition_key"], "pk");
        assert_eq!(r["table"]["sort_key"], Value::Null);
        assert_eq!(r["table"]["stamp_attribute"], "_hw");
        assert_eq!(r["rules"]["attributes"]["n"], "counter");
        assert_eq!(r["clock_skew_ms"][EAST], -250);
    }

    #[test]
    fn write_lines_carry_the_operation() {
        let k = key();
        let set = Write::set("a", AttributeValue::S("v".into())).fields(&k);
        assert_eq!(
            set,
            json!({"key": {"pk": {"S": "k0"}}, "set": {"a": {"S": "v"}}})
        );
        let add = Write::add("tags", "t1").fields(&k);
        assert_eq!(add["add"], json!({"tags": {"SS": ["t1"]}}));
        let inc = Write::Increment {
            attribute: "n".into(),
            by: -2,
        };
        assert_eq!(inc.fields(&k)["by"], -2);
        assert_eq!(inc.op(), "increment");
        assert_eq!(
            Write::Delete.fields(&k),
            json!({"key": {"pk": {"S": "k0"}}})
        );
    }

    #[test]
    fn add_appends_what_the_set_lacks() {
        let have = AttributeValue::Ss(vec!["b".into(), "a".into()]);
        let add = AttributeValue::Ss(vec!["a".into(), "c".into()]);
        assert_eq!(
            added(Some(have), &add),
            AttributeValue::Ss(vec!["b".into(), "a".into(), "c".into()])
        );
        assert_eq!(
            added(Some(AttributeValue::S("x".into())), &add),
            AttributeValue::Ss(vec!["a".into(), "c".into()])
        );
    }

    #[tokio::test]
    async fn answers_become_versions_and_typed_errors() {
        let (item, v) = inserted().await;
        let dot = v.header.dot().encode();
        let ext = Arc::new(canned(
            &[
                configured(1),
                json!({"id": 2, "ok": {"version": item, "dot": dot}}),
                json!({"id": 3, "error": {"kind": "not_found", "message": "no item"}}),
                json!({"id": 4, "error": {"kind": "not_a_counter", "message": "no", "attribute": "a"}}),
                json!({"id": 5, "ok": {"version": null, "dot": null}}),
            ],
            Duration::from_secs(10),
        ));
        let mut route = Route::mixed(ext.clone(), 1.0, 1, &setup(), target())
            .await
            .expect("configure");
        assert_eq!(*ext.name.lock().expect("name"), "canned 1");
        let schema = Schema::new("pk", None);
        let w = Writer::new(
            MemStore::new(schema.clone()),
            schema,
            Merger::new(homeward::Rules::default()),
        );
        let mut insert = key();
        insert.insert("a".into(), AttributeValue::S("x".into()));
        let got = route
            .write(&w, &east(), &key(), Write::Insert(insert))
            .await
            .expect("written");
        assert_eq!(got, v);
        let err = route
            .write(
                &w,
                &east(),
                &key(),
                Write::set("a", AttributeValue::S("y".into())),
            )
            .await
            .expect_err("refused");
        assert!(matches!(err, WriteError::NotFound), "{err}");
        let err = route
            .write(
                &w,
                &east(),
                &key(),
                Write::Increment {
                    attribute: "a".into(),
                    by: 1,
                },
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, WriteError::Edit(EditError::NotACounter(a)) if a == "a"),
            "{err}"
        );
        assert_eq!(
            ext.get(&target(), &east(), &key()).await.expect("read"),
            None
        );
        assert_eq!(route.external_writes, 3);
        assert!(ext.take_faults().is_empty());
        ext.close().await;
        assert_eq!(
            ext.stats(),
            ExternalStats {
                operations: 4,
                written: 1,
                refused: 2,
                reads: 1,
                faults: 0
            }
        );
    }

    #[tokio::test]
    async fn a_version_that_lies_is_a_fault() {
        let (item, v) = inserted().await;
        let dot = v.header.dot().encode();
        let ext = canned(
            &[
                // Another dot than the stamp's.
                json!({"id": 1, "ok": {"version": item, "dot": "us-east-1:9:zz"}}),
                // A set the version does not show.
                json!({"id": 2, "ok": {"version": item, "dot": dot}}),
                // A write asked of another Region.
                json!({"id": 3, "ok": {"version": item, "dot": dot}}),
                // An unknown error kind; a fault kind.
                json!({"id": 4, "error": {"kind": "teapot", "message": "short and stout"}}),
                json!({"id": 5, "error": {"kind": "internal", "message": "KeyError"}}),
                // Not a stamped item.
                json!({"id": 6, "ok": {"version": {"pk": {"S": "k0"}}, "dot": dot}}),
            ],
            Duration::from_secs(10),
        );
        let t = target();
        let west = Region::parse("us-west-2").expect("a Region");
        let set_b = Write::set("b", AttributeValue::S("y".into()));
        assert!(ext
            .write(&t, &east(), &key(), &Write::Delete)
            .await
            .is_err());
        assert!(ext.write(&t, &east(), &key(), &set_b).await.is_err());
        assert!(ext
            .write(&t, &west, &key(), &Write::remove("b"))
            .await
            .is_err());
        assert!(ext.write(&t, &east(), &key(), &set_b).await.is_err());
        assert!(ext.write(&t, &east(), &key(), &set_b).await.is_err());
        assert!(ext.get(&t, &east(), &key()).await.is_err());
        let faults = ext.take_faults();
        assert_eq!(faults.len(), 6, "{faults:#?}");
        assert!(
            faults[0].contains("answered dot us-east-1:9:zz"),
            "{}",
            faults[0]
        );
        assert!(
            faults[1].contains("does not show `b` as set"),
            "{}",
            faults[1]
        );
        assert!(faults[2].contains("stamped by us-east-1"), "{}", faults[2]);
        assert!(faults[3].contains("`teapot`"), "{}", faults[3]);
        assert!(faults[4].contains("`internal`"), "{}", faults[4]);
        assert!(faults[5].contains("does not decode"), "{}", faults[5]);
        assert_eq!(ext.stats().faults, 6);
    }

    #[tokio::test]
    async fn silence_a_wrong_id_or_an_exit_stops_the_writer() {
        // Never answers.
        let silent =
            ExternalWriter::spawn("cat >/dev/null", Duration::from_millis(200)).expect("spawn");
        let set = Write::set("a", AttributeValue::S("v".into()));
        let err = silent
            .write(&target(), &east(), &key(), &set)
            .await
            .expect_err("no answer");
        assert!(err.to_string().contains("no answer within"), "{err}");
        let err = silent
            .write(&target(), &east(), &key(), &set)
            .await
            .expect_err("stopped");
        assert!(err.to_string().contains("stopped earlier"), "{err}");
        assert_eq!(silent.take_faults().len(), 2);
        silent.close().await;
        assert!(
            silent.take_faults().is_empty(),
            "a stopped writer may exit as it likes"
        );

        let wrong = canned(&[configured(41)], Duration::from_secs(10));
        let err = wrong.configure(&setup()).await.expect_err("wrong id");
        assert!(
            err.to_string().contains("answered id 41 to request 1"),
            "{err}"
        );

        let garbage = ExternalWriter::spawn("echo hello; cat >/dev/null", Duration::from_secs(10))
            .expect("spawn");
        let err = garbage.configure(&setup()).await.expect_err("not JSON");
        assert!(err.to_string().contains("not JSON"), "{err}");

        let gone = ExternalWriter::spawn("exit 3", Duration::from_secs(10)).expect("spawn");
        let err = gone
            .write(&target(), &east(), &key(), &set)
            .await
            .expect_err("gone");
        assert!(
            err.to_string().contains("closed its stdout")
                || err.to_string().contains("cannot write"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn replays_name_the_writer() {
        assert_eq!(WriterChoice::Rust.replay_command(), "check");
        let writer = Arc::new(
            ExternalWriter::spawn("cat >/dev/null # it's", Duration::from_secs(3)).expect("spawn"),
        );
        let mixed = WriterChoice::Mixed {
            writer: writer.clone(),
            share: 0.25,
        };
        assert_eq!(
            mixed.replay_command(),
            r"conform --writer 'cat >/dev/null # it'\''s' --share 0.25 --timeout 3"
        );
        writer.close().await;
    }

    #[tokio::test]
    async fn a_writer_that_fails_its_exit_is_a_fault() {
        let ext = ExternalWriter::spawn("cat >/dev/null; exit 2", Duration::from_secs(10))
            .expect("spawn");
        ext.close().await;
        let faults = ext.take_faults();
        assert_eq!(faults.len(), 1);
        assert!(faults[0].contains("exited with"), "{}", faults[0]);
    }

    #[tokio::test]
    async fn the_rust_route_makes_the_checkers_calls() {
        let schema = Schema::new("pk", None);
        let rules = homeward::Rules::from_json(crate::checker::RULES, &homeward::Registry::new())
            .expect("rules");
        let w = Writer::new(MemStore::new(schema.clone()), schema, Merger::new(rules));
        let mut route = Route::rust();
        let mut item = key();
        item.insert("tags".into(), AttributeValue::Ss(vec!["t0".into()]));
        item.insert("n".into(), AttributeValue::N("0".into()));
        route
            .write(&w, &east(), &key(), Write::Insert(item))
            .await
            .expect("insert");
        route
            .write(&w, &east(), &key(), Write::add("tags", "t1"))
            .await
            .expect("tag");
        let v = route
            .write(&w, &east(), &key(), Write::add("tags", "t1"))
            .await
            .expect("tag again");
        assert_eq!(
            v.value("tags"),
            Some(AttributeValue::Ss(vec!["t0".into(), "t1".into()]))
        );
        let v = route
            .write(
                &w,
                &east(),
                &key(),
                Write::Increment {
                    attribute: "n".into(),
                    by: 4,
                },
            )
            .await
            .expect("increment");
        assert_eq!(v.value("n"), Some(AttributeValue::N("4".into())));
        let v = route
            .write(&w, &east(), &key(), Write::Delete)
            .await
            .expect("delete");
        assert!(v.value("hw_expires").is_some());
        assert_eq!(route.external_writes, 0);
        assert!(route.finish(&w, &[east()], &[key()]).await.is_empty());
    }
}
