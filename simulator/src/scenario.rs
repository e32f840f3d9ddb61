//! Scenarios: a JSON file naming the Regions, the table's keys, the home
//! strategy, the merge rules, the links and the event source mapping, and a
//! timeline of writes, waits, partitions, heals and settles. Running one
//! gives each Region's final items, with resolvers on (Homeward) or off
//! (plain last-writer-wins), and a readable timeline.
//!
//! Values are plain JSON: a string is `S`, a number `N`, a boolean `BOOL`,
//! `null` `NULL`, an array of strings `SS`, an array of numbers `NS`, an
//! object `M`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aws_sdk_dynamodb::types::ScalarAttributeType;
use homeward::{Region, Registry, Writer};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;

use crate::cluster::{show, show_value, Cluster, Latency, SimStore, Spec};
use crate::delivery::Mapping;
use crate::faults::VirtualTime;
use crate::plain::RawWrite;
use crate::MotoServer;

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub regions: Vec<String>,
    pub table: TableKeys,
    /// `HOME_STRATEGY`: `attribute:<name>`, `key-prefix:<key>` or `stamp`.
    #[serde(default = "default_home")]
    pub home: String,
    /// `MERGE_RULES`, e.g. `{"attributes":{"stock":"counter"}}`.
    #[serde(default)]
    pub rules: Option<Value>,
    /// `REHOME`: `never`, `evacuated` (the default), `always`, `after:N`.
    #[serde(default)]
    pub rehome: Option<String>,
    /// Every link's latency in ticks.
    #[serde(default)]
    pub latency: LinkLatency,
    /// Per-link latencies.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    #[serde(default)]
    pub event_source: EventSource,
    /// Each Region's writers' clock skew in ms, e.g. `{"us-east-1": -1500}`
    /// (ahead when positive): the stamps' `t` is off by it, last-writer-wins
    /// (the service's time) is not.
    #[serde(default)]
    pub clocks: BTreeMap<String, i64>,
    /// Faults in the resolvers' store calls and killed invocations, e.g.
    /// `{"rate": 0.2, "seed": 1}` (default: none).
    #[serde(default)]
    pub faults: Option<crate::faults::FaultSpec>,
    pub timeline: Vec<Step>,
    /// What every Region must hold at the end, with Homeward on.
    #[serde(default)]
    pub expect: Vec<Expect>,
}

fn default_home() -> String {
    "attribute:home_region".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableKeys {
    /// `[name, "S" | "N" | "B"]`.
    pub partition_key: (String, String),
    #[serde(default)]
    pub sort_key: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkLatency {
    #[serde(default)]
    pub delay: u64,
    #[serde(default)]
    pub jitter: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub delay: u64,
    #[serde(default)]
    pub jitter: u64,
}

/// The event source mapping of every Region; what is not set is what
/// `template.yaml` deploys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSource {
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Ticks (a tick stands for a second).
    #[serde(default = "default_window")]
    pub batching_window: u64,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// `BisectBatchOnFunctionError`.
    #[serde(default = "default_bisect")]
    pub bisect: bool,
    /// Deliver every batch twice.
    #[serde(default)]
    pub deliver_twice: bool,
    /// Probability that a first delivery fails after the resolver ran.
    #[serde(default)]
    pub failure_rate: f64,
    #[serde(default)]
    pub seed: u64,
    /// FilterCriteria patterns: objects, or the JSON strings Lambda's
    /// `Pattern` holds. Absent: the filters `template.yaml` deploys, per
    /// Region; `[]`: none.
    #[serde(default)]
    pub filters: Option<Vec<Value>>,
}

impl Default for EventSource {
    fn default() -> Self {
        EventSource {
            batch_size: default_batch(),
            batching_window: default_window(),
            max_retries: default_retries(),
            bisect: default_bisect(),
            deliver_twice: false,
            failure_rate: 0.0,
            seed: 0,
            filters: None,
        }
    }
}

fn default_batch() -> usize {
    Mapping::deployed().batch_size
}

/// `MaximumBatchingWindowInSeconds`, a tick standing for a second.
fn default_window() -> u64 {
    Mapping::deployed().batching_window_seconds
}

fn default_retries() -> u32 {
    Mapping::deployed().retries()
}

fn default_bisect() -> bool {
    Mapping::deployed().bisect
}

/// One entry of the timeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Creates an item in a Region (through the stamped writer).
    Insert {
        region: String,
        item: serde_json::Map<String, Value>,
    },
    /// Sets and removes attributes of an item in a Region.
    Update {
        region: String,
        key: serde_json::Map<String, Value>,
        #[serde(default)]
        set: serde_json::Map<String, Value>,
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Adds `by` to a counter attribute.
    Increment {
        region: String,
        key: serde_json::Map<String, Value>,
        attribute: String,
        by: i64,
    },
    /// A soft delete through the writer.
    Delete {
        region: String,
        key: serde_json::Map<String, Value>,
    },
    /// A plain writer's PutItem (no stamp): replaces the whole item.
    RawPut {
        region: String,
        item: serde_json::Map<String, Value>,
    },
    /// A plain writer's UpdateItem: SET, REMOVE, ADD (numbers to numbers,
    /// elements to sets); the stamp is left as it is.
    RawUpdate {
        region: String,
        key: serde_json::Map<String, Value>,
        #[serde(default)]
        set: serde_json::Map<String, Value>,
        #[serde(default)]
        remove: Vec<String>,
        #[serde(default)]
        add: serde_json::Map<String, Value>,
    },
    /// A plain writer's DeleteItem (a hard delete).
    RawDelete {
        region: String,
        key: serde_json::Map<String, Value>,
    },
    /// Lets this many ticks pass (replication and delivery go on).
    Wait(u64),
    /// Cuts these Regions off from the others, both ways.
    Partition(Vec<String>),
    /// Undoes a partition of these Regions.
    Heal(Vec<String>),
    Pause {
        from: String,
        to: String,
    },
    Resume {
        from: String,
        to: String,
    },
    /// The link's queued copies arrive in reverse order.
    Reorder {
        from: String,
        to: String,
    },
    /// Marks these Regions evacuated in every other Region's control item
    /// (what the rehome function's `evacuate` request does first).
    Evacuate(Vec<String>),
    /// Takes these Regions off the evacuated lists.
    Restore(Vec<String>),
    /// Heals every link and runs until nothing moves.
    Settle,
}

/// Values an item must show in every Region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub key: serde_json::Map<String, Value>,
    #[serde(default)]
    pub values: serde_json::Map<String, Value>,
    /// The item must be absent in every Region (a hard delete won).
    #[serde(default)]
    pub absent: bool,
}

/// Why a scenario could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a scenario: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("scenario `{0}`: {1}")]
    Invalid(String, String),
    #[error("scenario `{scenario}`, step {step}: {message}")]
    Step {
        scenario: String,
        step: usize,
        message: String,
    },
    #[error(transparent)]
    NotSettled(#[from] Box<crate::cluster::NotSettled>),
}

/// Where a scenario runs.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    Memory,
    Moto(&'a MotoServer),
}

/// What a run left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub resolvers: bool,
    pub timeline: Vec<String>,
    /// Region -> key text -> item.
    pub finals: BTreeMap<String, BTreeMap<String, Item>>,
    pub journal_entries: usize,
    pub stats: crate::cluster::Stats,
    /// What the platform did to the resolvers (faults, killed invocations).
    pub injected: crate::faults::Injected,
    /// Failed expectations, per Region.
    pub misses: Vec<String>,
}

impl Outcome {
    /// Whether every Region holds the same items.
    pub fn converged(&self) -> bool {
        let mut all = self.finals.values();
        let first = all.next();
        all.all(|f| Some(f) == first)
    }
}

impl Scenario {
    /// Loads a scenario file.
    ///
    /// # Errors
    /// [`ScenarioError`] naming the file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: shown,
            source,
        })
    }

    fn invalid(&self, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid(self.name.clone(), message.into())
    }

    /// The cluster spec this scenario asks for.
    ///
    /// # Errors
    /// An unknown key type or Region.
    pub fn spec(&self, resolvers: bool, registry: &Registry) -> Result<Spec, ScenarioError> {
        let key_type = |(name, ty): &(String, String)| {
            let ty = match ty.as_str() {
                "S" => ScalarAttributeType::S,
                "N" => ScalarAttributeType::N,
                "B" => ScalarAttributeType::B,
                other => return Err(self.invalid(format!("key type `{other}` is not S, N or B"))),
            };
            Ok((leak(name), ty))
        };
        for r in &self.regions {
            Region::parse(r).map_err(|e| self.invalid(e.to_string()))?;
        }
        if self.regions.len() < 2 {
            return Err(self.invalid("a global table needs two Regions or more"));
        }
        let regions: Vec<&'static str> = self.regions.iter().map(|r| leak(r)).collect();
        let mut spec = Spec::new(&regions)
            .env("HOME_STRATEGY", &self.home)
            .env("CONTROL_REFRESH_SECONDS", "0");
        if let Some(rules) = &self.rules {
            spec = spec.env("MERGE_RULES", &rules.to_string());
        }
        if let Some(rehome) = &self.rehome {
            spec = spec.env("REHOME", rehome);
        }
        spec.partition_key = key_type(&self.table.partition_key)?;
        spec.sort_key = self.table.sort_key.as_ref().map(key_type).transpose()?;
        spec.registry = registry.clone();
        spec.resolvers = resolvers;
        spec.batch_size = self.event_source.batch_size.max(1);
        spec.batching_window = self.event_source.batching_window;
        spec.max_retries = self.event_source.max_retries;
        spec.bisect = self.event_source.bisect;
        spec.report_failures = Mapping::deployed().report_batch_item_failures;
        spec.faults = self.faults;
        spec.deliver_twice = self.event_source.deliver_twice;
        spec.failure_rate = self.event_source.failure_rate;
        spec.seed = self.event_source.seed;
        spec.filters = match &self.event_source.filters {
            None => crate::filter::Filters::deployed(&regions),
            Some(filters) => {
                let mut patterns = Vec::new();
                for f in filters {
                    patterns.push(match f {
                        Value::String(text) => serde_json::from_str(text)
                            .map_err(|e| self.invalid(format!("filter pattern {text}: {e}")))?,
                        other => other.clone(),
                    });
                }
                crate::filter::Filters::new(patterns).map_err(|e| self.invalid(e.to_string()))?
            }
        };
        for r in self.clocks.keys() {
            if !self.regions.contains(r) {
                return Err(self.invalid(format!("clocks: {r} is not one of the Regions")));
            }
        }
        spec.clocks = self.clocks.clone();
        spec.latency = Latency {
            delay: self.latency.delay,
            jitter: self.latency.jitter,
        };
        for l in &self.links {
            spec.latencies.insert(
                (l.from.clone(), l.to.clone()),
                Latency {
                    delay: l.delay,
                    jitter: l.jitter,
                },
            );
        }
        spec.trace = true;
        Ok(spec)
    }

    /// Plays the timeline, settles, and reads every Region.
    ///
    /// # Errors
    /// A step that fails (a write the writer refuses) or a cluster that
    /// does not settle.
    pub async fn run(
        &self,
        backend: Backend<'_>,
        resolvers: bool,
        registry: &Registry,
    ) -> Result<Outcome, ScenarioError> {
        let spec = self.spec(resolvers, registry)?;
        // In memory, backoffs and hung calls take no wall-clock time.
        let _virtual_time = matches!(backend, Backend::Memory).then(VirtualTime::start);
        let mut c = match backend {
            Backend::Memory => Cluster::memory(spec),
            Backend::Moto(server) => Cluster::start(server, &self.name, spec).await,
        };
        let w = c.writer();
        for (i, step) in self.timeline.iter().enumerate() {
            self.play(&mut c, &w, step)
                .await
                .map_err(|message| ScenarioError::Step {
                    scenario: self.name.clone(),
                    step: i + 1,
                    message,
                })?;
        }
        c.heal_all();
        c.try_settle().await.map_err(Box::new)?;
        let mut finals = BTreeMap::new();
        let mut journal_entries = 0;
        for r in &self.regions {
            finals.insert(r.clone(), c.items(r).await);
            journal_entries += c.journal(r).await.len();
        }
        let mut misses = Vec::new();
        for e in &self.expect {
            let key = to_item(&e.key);
            let text = resolver::journal::key_text(&key);
            for (r, items) in &finals {
                let got = items.get(&text);
                if e.absent && got.is_some() {
                    misses.push(format!("{r}: {text} is present (expected absent)"));
                }
                for (name, want) in &e.values {
                    let want = to_value(want);
                    let have = got.and_then(|i| i.get(name));
                    if !same(have, &want) {
                        misses.push(format!(
                            "{r}: {text} {name} = {} (expected {})",
                            have.map_or("absent".into(), show_value),
                            show_value(&want)
                        ));
                    }
                }
            }
        }
        Ok(Outcome {
            resolvers,
            timeline: c.take_timeline(),
            finals,
            journal_entries,
            stats: c.stats.clone(),
            injected: c.injected(),
            misses,
        })
    }

    async fn play(&self, c: &mut Cluster, w: &Writer<SimStore>, step: &Step) -> Result<(), String> {
        let region = |r: &str| Region::parse(r).map_err(|e| e.to_string());
        match step {
            Step::Insert { region: r, item } => {
                let item = to_item(item);
                let shown = show(&item, &c.schema);
                let key = key_text(c, &item);
                w.insert(&region(r)?, item)
                    .await
                    .map_err(|e| e.to_string())?;
                c.note(|| format!("write   {r}: insert {key} {shown}"));
            }
            Step::Update {
                region: r,
                key,
                set,
                remove,
            } => {
                let key = to_item(key);
                let set: Vec<(String, AttributeValue)> =
                    set.iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
                w.update(&region(r)?, &key, |d| {
                    for (name, value) in &set {
                        d.set(name, value.clone());
                    }
                    for name in remove {
                        d.remove(name);
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
                let mut what: Vec<String> = set
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show_value(v)))
                    .collect();
                what.extend(remove.iter().map(|n| format!("remove {n}")));
                let text = resolver::journal::key_text(&key);
                c.note(|| format!("write   {r}: update {text} {}", what.join(", ")));
            }
            Step::Increment {
                region: r,
                key,
                attribute,
                by,
            } => {
                let key = to_item(key);
                w.increment(&region(r)?, &key, attribute, *by)
                    .await
                    .map_err(|e| e.to_string())?;
                let text = resolver::journal::key_text(&key);
                c.note(|| format!("write   {r}: {text} {attribute} {by:+}"));
            }
            Step::Delete { region: r, key } => {
                let key = to_item(key);
                w.delete(&region(r)?, &key)
                    .await
                    .map_err(|e| e.to_string())?;
                let text = resolver::journal::key_text(&key);
                c.note(|| format!("write   {r}: delete {text} (soft)"));
            }
            Step::RawPut { region: r, item } => {
                c.raw_write(&region(r)?, &RawWrite::Put(to_item(item)))
                    .await?;
            }
            Step::RawUpdate {
                region: r,
                key,
                set,
                remove,
                add,
            } => {
                let values = |m: &serde_json::Map<String, Value>| {
                    m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()
                };
                let write = RawWrite::Update {
                    key: to_item(key),
                    set: values(set),
                    remove: remove.clone(),
                    add: values(add),
                };
                c.raw_write(&region(r)?, &write).await?;
            }
            Step::RawDelete { region: r, key } => {
                c.raw_write(&region(r)?, &RawWrite::Delete(to_item(key)))
                    .await?;
            }
            Step::Wait(ticks) => {
                for _ in 0..*ticks {
                    c.step().await;
                }
            }
            Step::Evacuate(group) | Step::Restore(group) => {
                let evacuate = matches!(step, Step::Evacuate(_));
                let named = group
                    .iter()
                    .map(|g| region(g))
                    .collect::<Result<Vec<_>, _>>()?;
                let control = c.journal_store();
                for r in &self.regions {
                    let r = region(r)?;
                    if evacuate && named.contains(&r) {
                        continue;
                    }
                    let mut list = homeward::control::read_evacuated(&control, &r)
                        .await
                        .map_err(|e| e.to_string())?;
                    for g in &named {
                        if evacuate {
                            list.insert(g.clone());
                        } else {
                            list.remove(g);
                        }
                    }
                    homeward::control::write_evacuated(&control, &r, &list)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let verb = if evacuate { "evacuated" } else { "restored" };
                c.note(|| format!("control {verb}: {}", group.join(", ")));
            }
            Step::Partition(group) => {
                let group: Vec<&str> = group.iter().map(String::as_str).collect();
                c.partition(&group);
                c.note(|| format!("network partition: {} cut off", group.join(", ")));
            }
            Step::Heal(group) => {
                let group: Vec<&str> = group.iter().map(String::as_str).collect();
                c.heal(&group);
                c.note(|| format!("network healed: {}", group.join(", ")));
            }
            Step::Pause { from, to } => {
                c.pause(from, to);
                c.note(|| format!("network link {from} -> {to} paused"));
            }
            Step::Resume { from, to } => {
                c.resume(from, to);
                c.note(|| format!("network link {from} -> {to} resumed"));
            }
            Step::Reorder { from, to } => {
                c.reorder(from, to);
                c.note(|| format!("network link {from} -> {to} reordered"));
            }
            Step::Settle => {
                c.heal_all();
                c.try_settle().await.map_err(|e| e.to_string())?;
                c.note(|| "settled".into());
            }
        }
        Ok(())
    }
}

/// Sets compare as sets.
fn same(have: Option<&AttributeValue>, want: &AttributeValue) -> bool {
    use std::collections::BTreeSet;
    match (have, want) {
        (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b))
        | (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => {
            a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
        }
        _ => have == Some(want),
    }
}

fn key_text(c: &Cluster, item: &Item) -> String {
    let mut key = item.clone();
    key.retain(|k, _| c.schema.key_attributes().any(|n| n == k));
    resolver::journal::key_text(&key)
}

/// Scenario strings become `&'static str` for [`Spec`]: a handful per run.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// A JSON object as a DynamoDB item.
pub fn to_item(map: &serde_json::Map<String, Value>) -> Item {
    Item::from(
        map.iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect::<HashMap<_, _>>(),
    )
}

/// A JSON value as a DynamoDB value (see the module docs).
pub fn to_value(v: &Value) -> AttributeValue {
    match v {
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null(true),
        Value::Array(a) if a.iter().all(Value::is_number) && !a.is_empty() => {
            AttributeValue::Ns(a.iter().map(|n| n.to_string()).collect())
        }
        Value::Array(a) => AttributeValue::Ss(
            a.iter()
                .map(|s| s.as_str().map_or_else(|| s.to_string(), str::to_owned))
                .collect(),
        ),
        Value::Object(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}
