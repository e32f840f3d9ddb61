//! Homeward's conformance kit: test vectors of the stamp protocol,
//! generated from the Rust core, that a writer in any language can run.
//!
//! `cargo run -p homeward-conformance -- generate` writes
//! `conformance/vectors/*.json`; the crate's test fails when the files on
//! disk differ from what the core generates now. The format is described in
//! `conformance/README.md`.
//!
//! The write vectors are made with the core's pure functions
//! ([`homeward::edit::apply`], [`homeward::edit::first_version`],
//! [`homeward::adopt::adopt`]) and a fixed time and nonce, glued
//! together exactly as [`homeward::Writer`] glues them (see [`write`]); a
//! test runs the real `Writer` on every case and checks that it writes the
//! same item. The routing vectors are made by the real
//! [`homeward::routing::Router`] over an in-memory store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use homeward::adopt;
use homeward::edit::{self, Draft, WriteContext};
use homeward::{
    EditError, Home, Merger, PutCondition, Region, Registry, Rules, Schema, StampError, Version,
    WriterKind,
};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Map, Value};

pub mod memory;
pub mod routing;
pub mod writes;

/// The vector format's version (additions keep it; a breaking change bumps it).
pub const FORMAT: u32 = 1;

/// The table a case writes to.
#[derive(Debug, Clone)]
pub struct Table {
    pub partition_key: String,
    pub sort_key: Option<String>,
    pub stamp_attribute: String,
    pub ttl_attribute: String,
    pub retention_seconds: u64,
    /// The attribute that mirrors the home (`attribute:<name>` strategy).
    pub home_attribute: Option<String>,
}

impl Table {
    pub fn new(partition_key: &str, sort_key: Option<&str>) -> Self {
        Table {
            partition_key: partition_key.into(),
            sort_key: sort_key.map(str::to_owned),
            stamp_attribute: "_hw".into(),
            ttl_attribute: "hw_expires".into(),
            retention_seconds: 7 * 24 * 3600,
            home_attribute: None,
        }
    }

    pub fn with_home_attribute(mut self, name: &str) -> Self {
        self.home_attribute = Some(name.into());
        self
    }

    pub fn schema(&self) -> Schema {
        Schema::new(&self.partition_key, self.sort_key.as_deref())
            .with_stamp_attribute(&self.stamp_attribute)
    }

    pub fn json(&self) -> Value {
        json!({
            "partition_key": self.partition_key,
            "sort_key": self.sort_key,
            "stamp_attribute": self.stamp_attribute,
            "ttl_attribute": self.ttl_attribute,
            "retention_seconds": self.retention_seconds,
            "home_attribute": self.home_attribute,
        })
    }
}

/// Table, merge rules (`MERGE_RULES` JSON) and `DOT_WINDOW`.
#[derive(Debug, Clone)]
pub struct Setup {
    pub table: Table,
    pub rules: Value,
    pub window: usize,
}

impl Setup {
    pub fn new(table: Table, rules: Value, window: usize) -> Self {
        Setup {
            table,
            rules,
            window,
        }
    }

    pub fn merger(&self) -> Merger {
        let rules = Rules::from_json(&self.rules.to_string(), &Registry::new())
            .expect("the vectors' rules are valid");
        let mut merger = Merger::new(rules);
        merger.window = self.window;
        merger
    }

    pub fn json(&self) -> Value {
        json!({
            "table": self.table.json(),
            "rules": self.rules,
            "dot_window": self.window,
        })
    }
}

/// What the app changes: one operation per attribute.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub set: BTreeMap<String, AttributeValue>,
    pub remove: BTreeSet<String>,
    pub increment: BTreeMap<String, i64>,
}

impl Change {
    pub fn set(mut self, name: &str, value: AttributeValue) -> Self {
        self.set.insert(name.into(), value);
        self
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove.insert(name.into());
        self
    }

    pub fn increment(mut self, name: &str, by: i64) -> Self {
        self.increment.insert(name.into(), by);
        self
    }

    pub fn apply_to(&self, draft: &mut Draft) {
        for (name, value) in &self.set {
            draft.set(name, value.clone());
        }
        for name in &self.remove {
            draft.remove(name);
        }
        for (name, by) in &self.increment {
            draft.increment(name, *by);
        }
    }
}

/// One write operation.
#[derive(Debug, Clone)]
pub enum Operation {
    /// Create an item (or revive a soft-deleted one).
    Insert(Item),
    /// Read-modify-write of an existing item.
    Update(Change),
    /// Soft delete.
    Delete,
}

impl Operation {
    pub fn json(&self) -> Value {
        match self {
            Operation::Insert(item) => json!({"kind": "insert", "item": item_json(item)}),
            Operation::Update(change) => {
                let set: Map<String, Value> = change
                    .set
                    .iter()
                    .map(|(k, v)| (k.clone(), value_json(v)))
                    .collect();
                let increment: Map<String, Value> = change
                    .increment
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!({
                    "kind": "update",
                    "set": set,
                    "remove": change.remove.iter().collect::<Vec<_>>(),
                    "increment": increment,
                })
            }
            Operation::Delete => json!({"kind": "delete"}),
        }
    }
}

/// Why a write is refused (nothing is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: &'static str,
    pub attribute: Option<String>,
}

impl Failure {
    fn new(kind: &'static str) -> Self {
        Failure {
            kind,
            attribute: None,
        }
    }

    fn on(kind: &'static str, attribute: &str) -> Self {
        Failure {
            kind,
            attribute: Some(attribute.into()),
        }
    }

    pub fn json(&self) -> Value {
        json!({"kind": self.kind, "attribute": self.attribute})
    }
}

impl From<EditError> for Failure {
    fn from(e: EditError) -> Self {
        match e {
            EditError::Reserved(a) => Failure::on("reserved", &a),
            EditError::NotACounter(a) => Failure::on("not_a_counter", &a),
            EditError::CounterValue { attribute, .. } => Failure::on("counter_value", &attribute),
            EditError::CounterRemoved(a) => Failure::on("counter_removed", &a),
            EditError::Overflow(a) => Failure::on("overflow", &a),
            EditError::Stamp(s) => s.into(),
        }
    }
}

impl From<StampError> for Failure {
    fn from(e: StampError) -> Self {
        match e {
            StampError::Overflow { field, .. } => Failure::on("overflow", &field),
            StampError::MissingKey(a) => Failure::on("bad_key", &a),
            _ => Failure::new("stamp"),
        }
    }
}

/// The writer's Region, time and nonce.
pub fn context(region: &str, time_ms: u64, nonce: u32) -> WriteContext {
    WriteContext {
        region: Region::parse(region).expect("a vector Region"),
        time_ms,
        nonce,
        by: WriterKind::App,
    }
}

/// The item to write and its condition, as [`homeward::Writer`] makes them
/// from the item it read (`read`, `None`: no item) for `op`, written in
/// `ctx.region` at `ctx.time_ms` with nonce `ctx.nonce`. `home` is the home
/// the write asks to record (`update_homed`/`insert_homed`; the router's
/// moves and negotiated assignments).
///
/// # Errors
/// The [`Failure`] the writer returns; nothing is written.
pub fn write(
    setup: &Setup,
    read: Option<&Item>,
    op: &Operation,
    ctx: &WriteContext,
    home: Option<Home>,
) -> Result<(Version, PutCondition), Failure> {
    let table = &setup.table;
    let schema = table.schema();
    match op {
        Operation::Insert(item) => {
            let key = schema.key_of(item).map_err(|e| match e {
                StampError::MissingKey(a) => Failure::on("bad_key", &a),
                _ => Failure::new("bad_key"),
            })?;
            let values: BTreeMap<String, AttributeValue> = item
                .iter()
                .filter(|(name, _)| !schema.is_reserved(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if item.contains_key(&schema.stamp_attribute) {
                return Err(Failure::on("reserved", &schema.stamp_attribute));
            }
            match read {
                None => {
                    let v = edit::first_version(key, &values, ctx, &setup.merger(), &schema, home)?;
                    Ok((v, PutCondition::NotExists))
                }
                Some(_) => {
                    let ttl = table.ttl_attribute.clone();
                    modify(setup, read, ctx, home, true, |draft| {
                        draft.remove(&ttl);
                        for (name, value) in &values {
                            draft.set(name, value.clone());
                        }
                    })
                }
            }
        }
        Operation::Update(change) => modify(setup, read, ctx, home, false, |draft| {
            change.apply_to(draft)
        }),
        Operation::Delete => {
            let merger = setup.merger();
            let ttl = table.ttl_attribute.clone();
            let expires = (ctx.time_ms / 1000 + table.retention_seconds).to_string();
            modify(setup, read, ctx, None, false, |draft| {
                let names: Vec<String> = draft
                    .names()
                    .filter(|n| !merger.rules.is_counter(n))
                    .collect();
                for name in names {
                    draft.remove(&name);
                }
                draft.set(&ttl, AttributeValue::N(expires.clone()));
            })
        }
    }
}

/// `Writer::modify`, one attempt, pure.
fn modify(
    setup: &Setup,
    read: Option<&Item>,
    ctx: &WriteContext,
    home: Option<Home>,
    tombstone_ok: bool,
    change: impl FnOnce(&mut Draft),
) -> Result<(Version, PutCondition), Failure> {
    let table = &setup.table;
    let schema = table.schema();
    let merger = setup.merger();
    let Some(item) = read else {
        return Err(Failure::new("not_found"));
    };
    let is_tombstone = item.contains_key(&table.ttl_attribute);
    if is_tombstone && !tombstone_ok {
        return Err(Failure::new("not_found"));
    }
    if !is_tombstone && tombstone_ok {
        return Err(Failure::new("already_exists"));
    }
    // `Writer::adopted`: what plain writers changed is taken in (all of an
    // item without a stamp).
    let base = adopt::adopt(&schema, &merger.rules, item, None)
        .map_err(|e| match e {
            StampError::Overflow { field, .. } => Failure::on("overflow", &field),
            StampError::CounterMismatch { attribute, .. } => Failure::on("stamp", &attribute),
            StampError::MissingKey(a) => Failure::on("bad_key", &a),
            _ => Failure::new("stamp"),
        })?
        .version;
    let mut draft = Draft::new(base.values());
    let condition = if item.contains_key(&schema.stamp_attribute) {
        PutCondition::DotIs(base.header.dot().encode())
    } else {
        PutCondition::Unstamped
    };
    change(&mut draft);
    let mut home = home.filter(|h| base.home.as_ref().is_none_or(|b| h > b));
    if let Some(moved) = moved_home(table, &base, &draft)? {
        home = Some(moved);
    }
    let next = edit::apply(&base, &draft, ctx, &merger, &schema, home)?;
    Ok((next, condition))
}

/// `Writer::moved_home`: a changed home attribute moves a home the stamp
/// records one epoch on.
fn moved_home(table: &Table, base: &Version, draft: &Draft) -> Result<Option<Home>, Failure> {
    let (Some(name), Some(current)) = (&table.home_attribute, &base.home) else {
        return Ok(None);
    };
    let Some(AttributeValue::S(text)) = draft.get(name) else {
        return Ok(None);
    };
    if text == current.region.as_str() {
        return Ok(None);
    }
    let region = Region::parse(&text).map_err(|_| Failure::on("home", name))?;
    Ok(Some(Home::new(region, current.epoch + 1)))
}

/// The condition as the vectors write it.
pub fn condition_json(condition: &PutCondition) -> Value {
    match condition {
        PutCondition::NotExists => json!({"kind": "not_exists"}),
        PutCondition::Unstamped => json!({"kind": "unstamped"}),
        PutCondition::DotIs(dot) => json!({"kind": "dot_is", "dot": dot}),
        PutCondition::Always => json!({"kind": "always"}),
        PutCondition::AttributeIs(name, value) => {
            json!({"kind": "attribute_is", "attribute": name, "value": value_json(value)})
        }
    }
}

/// DynamoDB JSON of a value.
pub fn value_json(value: &AttributeValue) -> Value {
    serde_json::to_value(value).expect("attribute values serialize")
}

/// DynamoDB JSON of an item.
pub fn item_json(item: &Item) -> Value {
    serde_json::to_value(item).expect("items serialize")
}

/// An item from DynamoDB JSON.
pub fn item_from_json(value: &Value) -> Item {
    serde_json::from_value(value.clone()).expect("DynamoDB JSON")
}

/// A key-sorted copy (the files are byte-stable whatever the map type).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(list) => Value::Array(list.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Builds an item from `(name, value)` pairs.
pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    Item::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

pub fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

pub fn n(number: impl ToString) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

pub fn ss(values: &[&str]) -> AttributeValue {
    AttributeValue::Ss(values.iter().map(|v| (*v).to_owned()).collect())
}

/// Every vector file: name and text.
pub fn files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, description, cases) in writes::files().into_iter().chain(routing::files()) {
        let doc = json!({
            "format": FORMAT,
            "generated_by": "cargo run -p homeward-conformance -- generate",
            "description": description,
            "cases": cases,
        });
        let mut text = serde_json::to_string_pretty(&canonical(&doc)).expect("json");
        text.push('\n');
        out.push((format!("{name}.json"), text));
    }
    out
}

/// The vector files in `dir` that differ from what the core generates now
/// (or are missing, or should not be there).
pub fn stale(dir: &std::path::Path) -> Vec<String> {
    let files = files();
    let mut out: Vec<String> = files
        .iter()
        .filter(|(name, text)| std::fs::read_to_string(dir.join(name)).ok().as_ref() != Some(text))
        .map(|(name, _)| name.clone())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !files.iter().any(|(n, _)| *n == name) {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}
