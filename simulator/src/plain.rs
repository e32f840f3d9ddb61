//! Plain writers: code that ignores Homeward's stamp protocol (boto3's
//! PutItem, UpdateItem and DeleteItem, console edits). Their writes go to
//! one Region's table like any write, show in that Region's stream with both
//! images, and replicate with last-writer-wins on the service's time like
//! every other write.
//!
//! - [`RawWrite::Put`]: a PutItem of the item as given: it replaces the
//!   whole item (no stamp unless the item carries one).
//! - [`RawWrite::Update`]: an UpdateItem with an `UpdateExpression`: `SET`
//!   attributes, `REMOVE` attributes, `ADD` numbers to number attributes
//!   (or elements to sets). Like DynamoDB's it creates a missing item. The
//!   stamp attribute is left exactly as it is (a step that names it is
//!   refused), and so are key attributes.
//! - [`RawWrite::Delete`]: a DeleteItem (a hard delete).
//!
//! On moto each is the real call through the SDK client of the Region's
//! endpoint; in memory the store applies the same change and records the
//! same stream record ([`MemStore::apply_raw`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use homeward::{PutCondition, Region, Schema};
use serde_dynamo::{AttributeValue, Item};

use crate::cluster::{show, show_value, Cluster, SimStore};
use crate::memory::MemStore;
use crate::streams::Streams;

/// One write by a plain writer.
#[derive(Debug, Clone, PartialEq)]
pub enum RawWrite {
    /// PutItem: the whole item, key included.
    Put(Item),
    /// UpdateItem: `SET` each of `set`, `REMOVE` each of `remove`, `ADD`
    /// each of `add`.
    Update {
        key: Item,
        set: BTreeMap<String, AttributeValue>,
        remove: Vec<String>,
        add: BTreeMap<String, AttributeValue>,
    },
    /// DeleteItem.
    Delete(Item),
}

impl RawWrite {
    /// An UpdateItem that only sets `attribute`.
    pub fn set(key: Item, attribute: &str, value: AttributeValue) -> Self {
        RawWrite::Update {
            key,
            set: BTreeMap::from([(attribute.to_owned(), value)]),
            remove: Vec::new(),
            add: BTreeMap::new(),
        }
    }

    /// An UpdateItem that only removes `attribute`.
    pub fn remove(key: Item, attribute: &str) -> Self {
        RawWrite::Update {
            key,
            set: BTreeMap::new(),
            remove: vec![attribute.to_owned()],
            add: BTreeMap::new(),
        }
    }

    /// An UpdateItem that adds `delta` to the number `attribute`.
    pub fn add(key: Item, attribute: &str, delta: i64) -> Self {
        RawWrite::Update {
            key,
            set: BTreeMap::new(),
            remove: Vec::new(),
            add: BTreeMap::from([(attribute.to_owned(), AttributeValue::N(delta.to_string()))]),
        }
    }

    /// The key the write goes to.
    pub fn key(&self, schema: &Schema) -> Item {
        match self {
            RawWrite::Put(item) => {
                let mut key = item.clone();
                key.retain(|k, _| schema.key_attributes().any(|n| n == k));
                key
            }
            RawWrite::Update { key, .. } | RawWrite::Delete(key) => key.clone(),
        }
    }

    /// For timelines and histories: `raw update pk=k0 SET a="x", REMOVE b`.
    pub fn describe(&self, schema: &Schema) -> String {
        let key = resolver::journal::key_text(&self.key(schema));
        match self {
            RawWrite::Put(item) => format!("raw put {key} {} (no stamp)", show(item, schema)),
            RawWrite::Update {
                set, remove, add, ..
            } => {
                let mut parts: Vec<String> = set
                    .iter()
                    .map(|(k, v)| format!("SET {k}={}", show_value(v)))
                    .collect();
                parts.extend(remove.iter().map(|n| format!("REMOVE {n}")));
                parts.extend(
                    add.iter()
                        .map(|(k, v)| format!("ADD {k} {}", show_value(v))),
                );
                format!("raw update {key} {}", parts.join(", "))
            }
            RawWrite::Delete(_) => format!("raw delete {key}"),
        }
    }

    /// What DynamoDB would refuse before looking at the item: a key
    /// attribute or the stamp in the expression, an attribute named twice,
    /// an update that does nothing.
    fn validate(&self, schema: &Schema) -> Result<(), String> {
        let RawWrite::Update {
            set, remove, add, ..
        } = self
        else {
            return Ok(());
        };
        let mut named = BTreeSet::new();
        for name in set.keys().chain(remove).chain(add.keys()) {
            if schema.key_attributes().any(|k| k == name) {
                return Err(format!(
                    "ValidationException: cannot update key attribute `{name}`"
                ));
            }
            if *name == schema.stamp_attribute {
                return Err(format!(
                    "a raw update leaves the stamp `{name}` as it is: it cannot name it"
                ));
            }
            if !named.insert(name) {
                return Err(format!(
                    "ValidationException: two document paths overlap: `{name}`"
                ));
            }
        }
        if named.is_empty() {
            return Err("a raw update needs at least one of set, remove, add".into());
        }
        Ok(())
    }
}

/// The item an UpdateItem leaves: `current` (`None`: no item, the update
/// creates it from `key`) with `set`, `remove` and `add` applied.
///
/// # Errors
/// DynamoDB's ValidationException for an `ADD` to a value of another type.
pub fn apply_update(
    current: Option<&Item>,
    key: &Item,
    set: &BTreeMap<String, AttributeValue>,
    remove: &[String],
    add: &BTreeMap<String, AttributeValue>,
) -> Result<Item, String> {
    let mut item = current.cloned().unwrap_or_else(|| key.clone());
    for (name, value) in set {
        item.insert(name.clone(), value.clone());
    }
    for name in remove {
        item.remove(name);
    }
    for (name, operand) in add {
        let sum = match (item.get(name), operand) {
            (None, v @ (AttributeValue::N(_) | AttributeValue::Ss(_) | AttributeValue::Ns(_))) => {
                v.clone()
            }
            (Some(AttributeValue::N(a)), AttributeValue::N(b)) => {
                AttributeValue::N(add_numbers(a, b)?)
            }
            (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => AttributeValue::Ss(union(a, b)),
            (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => AttributeValue::Ns(union(a, b)),
            _ => {
                return Err(format!(
                    "ValidationException: An operand in the update expression has an incorrect data type (ADD {name})"
                ))
            }
        };
        item.insert(name.clone(), sum);
    }
    Ok(item)
}

/// Whole numbers exactly; others as decimals.
fn add_numbers(a: &str, b: &str) -> Result<String, String> {
    if let (Ok(x), Ok(y)) = (a.parse::<i128>(), b.parse::<i128>()) {
        return Ok((x + y).to_string());
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => Ok((x + y).to_string()),
        _ => Err(format!(
            "ValidationException: `{a}` + `{b}` are not numbers"
        )),
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for e in b {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

/// A single value as the SDK's.
fn sdk_value(value: &AttributeValue) -> aws_sdk_dynamodb::types::AttributeValue {
    let mut one: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
        Item::from(HashMap::from([("v".to_string(), value.clone())])).into();
    one.remove("v").expect("the value just put in")
}

impl MemStore {
    /// One plain write, applied atomically in `region` and recorded in its
    /// stream (nothing when the item does not change, as DynamoDB).
    ///
    /// # Errors
    /// What DynamoDB would refuse.
    pub fn apply_raw(&self, region: &Region, write: &RawWrite) -> Result<(), String> {
        match write {
            RawWrite::Put(item) => self
                .put_at(region, item, &PutCondition::Always, None)
                .map_err(|e| e.to_string()),
            RawWrite::Delete(key) => {
                self.delete(region, key);
                Ok(())
            }
            RawWrite::Update {
                key,
                set,
                remove,
                add,
            } => self.update_raw(region, key, |current| {
                apply_update(current, key, set, remove, add)
            }),
        }
    }
}

impl Cluster {
    /// Makes `write` in `region` as a plain writer would: on moto the real
    /// PutItem / UpdateItem / DeleteItem through that Region's client.
    ///
    /// # Errors
    /// What DynamoDB refuses (the SDK's error text), or a step the plain
    /// writer model forbids (touching the stamp).
    pub async fn raw_write(&mut self, region: &Region, write: &RawWrite) -> Result<(), String> {
        write.validate(&self.schema)?;
        let shown = write.describe(&self.schema);
        match (&self.store, &self.streams) {
            (SimStore::Memory(m), _) => m.apply_raw(region, write)?,
            (SimStore::Moto(_), Streams::Moto { sdk, .. }) => {
                let client = Self::client(sdk, region.as_str());
                match write {
                    RawWrite::Put(item) => {
                        client
                            .put_item()
                            .table_name(&self.table)
                            .set_item(Some(item.clone().into()))
                            .send()
                            .await
                            .map_err(|e| format!("PutItem: {}", sdk_error(&e)))?;
                    }
                    RawWrite::Delete(key) => {
                        client
                            .delete_item()
                            .table_name(&self.table)
                            .set_key(Some(key.clone().into()))
                            .send()
                            .await
                            .map_err(|e| format!("DeleteItem: {}", sdk_error(&e)))?;
                    }
                    RawWrite::Update {
                        key,
                        set,
                        remove,
                        add,
                    } => {
                        let (expression, names, values) = update_expression(set, remove, add);
                        client
                            .update_item()
                            .table_name(&self.table)
                            .set_key(Some(key.clone().into()))
                            .update_expression(expression)
                            .set_expression_attribute_names(Some(names))
                            .set_expression_attribute_values((!values.is_empty()).then_some(values))
                            .send()
                            .await
                            .map_err(|e| format!("UpdateItem: {}", sdk_error(&e)))?;
                    }
                }
            }
            _ => unreachable!("a moto store has moto streams"),
        }
        self.note(|| format!("write   {region}: {shown} (plain writer)"));
        Ok(())
    }
}

type Names = HashMap<String, String>;
type Values = HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// `SET #a1 = :v1 REMOVE #a2 ADD #a3 :v3`, with its names and values.
fn update_expression(
    set: &BTreeMap<String, AttributeValue>,
    remove: &[String],
    add: &BTreeMap<String, AttributeValue>,
) -> (String, Names, Values) {
    let mut names = Names::new();
    let mut values = Values::new();
    let mut alias = |attr: &str, value: Option<&AttributeValue>| {
        let n = names.len() + 1;
        names.insert(format!("#a{n}"), attr.to_owned());
        if let Some(v) = value {
            values.insert(format!(":v{n}"), sdk_value(v));
        }
        n
    };
    let mut clauses = Vec::new();
    let sets: Vec<String> = set
        .iter()
        .map(|(a, v)| alias(a, Some(v)))
        .map(|n| format!("#a{n} = :v{n}"))
        .collect();
    let removes: Vec<String> = remove
        .iter()
        .map(|a| format!("#a{}", alias(a, None)))
        .collect();
    let adds: Vec<String> = add
        .iter()
        .map(|(a, v)| alias(a, Some(v)))
        .map(|n| format!("#a{n} :v{n}"))
        .collect();
    for (verb, parts) in [("SET", sets), ("REMOVE", removes), ("ADD", adds)] {
        if !parts.is_empty() {
            clauses.push(format!("{verb} {}", parts.join(", ")));
        }
    }
    (clauses.join(" "), names, values)
}

fn sdk_error<E: std::error::Error + 'static>(e: &aws_sdk_dynamodb::error::SdkError<E>) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Spec;
    use crate::MotoServer;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn key() -> Item {
        item(&[("pk", s("k"))])
    }

    /// Plain last-writer-wins (no resolvers), two Regions.
    fn spec() -> Spec {
        let mut spec = Spec::new(&["us-east-1", "us-west-2"]);
        spec.resolvers = false;
        spec
    }

    /// The last record of `r`'s stream: (old image, new image).
    fn last_record(c: &Cluster, r: &Region) -> (Option<Item>, Option<Item>) {
        let rec = c.history[r].last().expect("a record");
        (rec.old_image.clone(), rec.new_image.clone())
    }

    async fn plain_writes_stream_and_replicate(mut c: Cluster) {
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        let w = c.writer();
        w.insert(&east, item(&[("pk", s("k")), ("a", s("x")), ("n", n(1))]))
            .await
            .unwrap();
        c.settle().await;
        let before = c.read("us-east-1", &key()).await.unwrap();
        // UpdateItem: SET, REMOVE, ADD; the stamp stays as it was.
        let update = RawWrite::Update {
            key: key(),
            set: BTreeMap::from([("b".to_string(), s("plain"))]),
            remove: vec!["a".into()],
            add: BTreeMap::from([("n".to_string(), n(5))]),
        };
        c.raw_write(&east, &update).await.unwrap();
        let after = c.read("us-east-1", &key()).await.unwrap();
        assert_eq!(after.get("b"), Some(&s("plain")));
        assert_eq!(after.get("a"), None);
        assert_eq!(after.get("n"), Some(&n(6)));
        assert_eq!(
            after.get("_hw"),
            before.get("_hw"),
            "the stamp is untouched"
        );
        c.step().await;
        assert_eq!(
            last_record(&c, &east),
            (Some(before), Some(after.clone())),
            "a MODIFY with both images"
        );
        c.settle().await;
        assert_eq!(c.read("us-west-2", &key()).await, Some(after));
        // PutItem replaces the whole item, stamp and all.
        let whole = item(&[("pk", s("k")), ("c", s("whole"))]);
        c.raw_write(&west, &RawWrite::Put(whole.clone()))
            .await
            .unwrap();
        c.settle().await;
        for r in ["us-east-1", "us-west-2"] {
            assert_eq!(c.read(r, &key()).await.as_ref(), Some(&whole), "in {r}");
        }
        // DeleteItem, replicated as a delete; UpdateItem creates an item.
        c.raw_write(&east, &RawWrite::Delete(key())).await.unwrap();
        c.step().await;
        assert_eq!(last_record(&c, &east), (Some(whole), None));
        c.settle().await;
        assert_eq!(c.read("us-west-2", &key()).await, None);
        c.raw_write(&west, &RawWrite::add(key(), "n", 2))
            .await
            .unwrap();
        c.settle().await;
        let created = item(&[("pk", s("k")), ("n", n(2))]);
        assert_eq!(c.read("us-east-1", &key()).await, Some(created));
        // Refused: the stamp in an expression; an ADD to a string.
        let stamp = RawWrite::set(key(), "_hw", s("x"));
        assert!(c.raw_write(&east, &stamp).await.is_err());
        c.raw_write(&east, &RawWrite::set(key(), "t", s("text")))
            .await
            .unwrap();
        let wrong = RawWrite::add(key(), "t", 1);
        let err = c.raw_write(&east, &wrong).await.unwrap_err();
        assert!(err.contains("ValidationException"), "{err}");
    }

    #[tokio::test]
    async fn plain_writes_in_memory() {
        plain_writes_stream_and_replicate(Cluster::memory(spec())).await;
    }

    #[tokio::test]
    async fn plain_writes_on_moto() {
        let c = Cluster::start(MotoServer::shared(), "plain", spec()).await;
        plain_writes_stream_and_replicate(c).await;
    }

    /// A plain write and a stamped one, cut off from each other: the later
    /// by the service's clock wins everywhere, as between any two writes.
    #[tokio::test]
    async fn plain_writes_take_part_in_last_writer_wins() {
        let mut c = Cluster::memory(spec());
        let east = Region::parse("us-east-1").unwrap();
        let west = Region::parse("us-west-2").unwrap();
        let w = c.writer();
        w.insert(&east, item(&[("pk", s("k")), ("a", s("x"))]))
            .await
            .unwrap();
        c.settle().await;
        c.partition(&["us-east-1"]);
        w.update(&west, &key(), |d| {
            d.set("a", s("stamped"));
        })
        .await
        .unwrap();
        c.raw_write(&east, &RawWrite::set(key(), "a", s("plain")))
            .await
            .unwrap();
        c.heal_all();
        c.settle().await;
        for r in ["us-east-1", "us-west-2"] {
            let got = c.read(r, &key()).await.unwrap();
            assert_eq!(got.get("a"), Some(&s("plain")), "in {r}");
        }
    }

    #[test]
    fn update_expressions_name_every_attribute_once() {
        let (text, names, values) = update_expression(
            &BTreeMap::from([("a".to_string(), s("x"))]),
            &["b".to_string()],
            &BTreeMap::from([("n".to_string(), n(1))]),
        );
        assert_eq!(text, "SET #a1 = :v1 REMOVE #a2 ADD #a3 :v3");
        assert_eq!(names.len(), 3);
        assert_eq!(values.len(), 2);
        let twice = RawWrite::Update {
            key: key(),
            set: BTreeMap::from([("a".to_string(), s("x"))]),
            remove: vec!["a".into()],
            add: BTreeMap::new(),
        };
        assert!(twice.validate(&Schema::new("pk", None)).is_err());
    }

    #[tokio::test]
    async fn the_plain_writer_scenario_parses_and_runs() {
        let path = crate::workspace_root().join("scenarios/plain-writer.json");
        let scenario = crate::scenario::Scenario::load(&path).unwrap();
        let registry = homeward::custom_rules::registry();
        // Plain last-writer-wins plays every step.
        let off = scenario
            .run(crate::scenario::Backend::Memory, false, &registry)
            .await
            .unwrap();
        assert!(off.converged());
        let gone = off.finals["us-east-1"].get("pk=gone");
        assert!(gone.is_none(), "the DeleteItem replicated");
    }
}
