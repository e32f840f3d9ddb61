//! The conflict journal: one entry per detected conflict, keyed so that a
//! redelivered record writes it once (a conditional put on a key made of the
//! item and the dots involved).
//!
//! Table layout: `pk` (S) = `<table>#<item key>`, `sk` (S) =
//! `<kind>#<dot>[#<dot>]` (or `<kind>#seq#<sequence number>` when no dot
//! exists), plus `expires` (N, epoch seconds) for DynamoDB TTL.
//!
//! An entry always fits DynamoDB's 400 KB item limit: versions beyond
//! 300 KB keep only the attributes that differ, and what still does not
//! fit (a merged stamp full of siblings, a long explanation) is dropped
//! with a flag saying so, so the entry itself can always be written.

use std::collections::{BTreeSet, HashMap};

use homeward::dot::Dot;
use homeward::merge::{Decision, Explanation};
use homeward::size::{item_size, value_size, MAX_ITEM_BYTES};
use serde_dynamo::{AttributeValue, Item};

/// What the journal keeps of the versions involved, at most this big;
/// beyond it only the attributes that differ between them are kept.
const MAX_VERSIONS_BYTES: usize = 300 * 1024;
/// Room kept under the item limit for the entry's own fields.
const ENTRY_LIMIT: usize = MAX_ITEM_BYTES - 1024;

/// One conflict, ready to be written.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub table: &'a str,
    pub item_key: &'a Item,
    pub kind: &'a str,
    /// What identifies the conflict: the dots involved, or the record's
    /// sequence number when there is no dot.
    pub identity: String,
    pub action: &'a str,
    pub detected_in: &'a str,
    pub home: Option<&'a str>,
    pub regions: Vec<String>,
    /// Named versions (`new`, `old`, `home`), stamp included.
    pub versions: Vec<(&'a str, &'a Item)>,
    /// Images that are not DynamoDB items (quarantined records), as the
    /// raw JSON text the stream gave.
    pub raw_images: Vec<(&'a str, &'a str)>,
    pub merged_stamp: Option<AttributeValue>,
    /// Attributes of one kind of entry (a re-home's Regions and epochs).
    pub extra: Vec<(&'static str, AttributeValue)>,
    pub explanation: Option<&'a MergeSteps>,
    pub reason: Option<String>,
    pub now_ms: u64,
    pub ttl_days: u64,
}

/// What a merge into the home copy decided, step by step: the dot of each
/// version merged in, and what merging it decided. A clobber merges two
/// versions, so the journal says which one each decision came with.
#[derive(Debug, Clone, Default)]
pub struct MergeSteps(pub Vec<(Dot, Explanation)>);

impl MergeSteps {
    /// Whether a rule decided concurrent edits, or two windows shared no
    /// dot (a possible deeper fork): what makes a merge worth journaling.
    pub fn has_conflict(&self) -> bool {
        self.0
            .iter()
            .any(|(_, e)| e.has_conflict() || !e.disjoint_windows.is_empty())
    }

    /// The rules that decided concurrent edits, in the order they did.
    pub fn rules(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(_, e)| &e.attributes)
            .filter_map(|(_, d)| match d {
                Decision::Rule { rule, .. } => Some(rule.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The readable text of an item key (`name=value` pairs sorted by name),
/// and its unambiguous form, which names it in the journal.
pub use homeward::control::{key_id, key_text};

/// The key of an item's journal entry of `kind` for `identity` (the dots
/// involved, or `seq#<sequence number>`).
pub fn entry_key(table: &str, item_key: &Item, kind: &str, identity: &str) -> Item {
    Item::from(HashMap::from([
        (
            "pk".to_owned(),
            AttributeValue::S(partition_key(table, item_key)),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S(format!("{kind}#{identity}")),
        ),
    ]))
}

/// The journal partition of an item: `<table>#<key_id>` (the key's
/// attributes as DynamoDB JSON, names sorted: two keys never share it).
pub fn partition_key(table: &str, key: &Item) -> String {
    format!("{table}#{}", key_id(key))
}

impl Entry<'_> {
    /// The journal item, within DynamoDB's item limit.
    pub fn to_item(&self) -> Item {
        let mut item = self.whole_item();
        let mut dropped = Vec::new();
        // First the siblings' values in the merged stamp (the versions
        // hold them too), then whole fields, least useful last.
        if item_size(&item) > ENTRY_LIMIT && strip_sibling_values(&mut item) {
            dropped.push(AttributeValue::S("merged_stamp.s values".to_owned()));
        }
        for field in ["merged_stamp", "explanation", "raw_images"] {
            if item_size(&item) <= ENTRY_LIMIT {
                break;
            }
            if item.remove(field).is_some() {
                dropped.push(AttributeValue::S(field.to_owned()));
            }
        }
        if !dropped.is_empty() {
            item.insert("dropped_for_size".into(), AttributeValue::L(dropped));
        }
        item
    }

    fn whole_item(&self) -> Item {
        let mut m: HashMap<String, AttributeValue> =
            entry_key(self.table, self.item_key, self.kind, &self.identity).into_inner();
        let s = |v: &str| AttributeValue::S(v.to_owned());
        m.insert(
            "item_key".into(),
            AttributeValue::M(self.item_key.clone().into_inner()),
        );
        m.insert("kind".into(), s(self.kind));
        m.insert("action".into(), s(self.action));
        m.insert("detected_in".into(), s(self.detected_in));
        if let Some(home) = self.home {
            m.insert("home".into(), s(home));
        }
        let mut regions = self.regions.clone();
        regions.sort();
        regions.dedup();
        if !regions.is_empty() {
            m.insert("regions".into(), AttributeValue::Ss(regions));
        }
        m.insert("versions".into(), self.versions_value());
        if !self.raw_images.is_empty() {
            let mut budget = MAX_VERSIONS_BYTES;
            let raw = self
                .raw_images
                .iter()
                .map(|(name, text)| {
                    let kept = truncate(text, budget);
                    budget -= kept.len();
                    (name.to_string(), s(kept))
                })
                .collect();
            m.insert("raw_images".into(), AttributeValue::M(raw));
        }
        if let Some(stamp) = &self.merged_stamp {
            m.insert("merged_stamp".into(), stamp.clone());
        }
        if let Some(steps) = self.explanation {
            let list = steps
                .0
                .iter()
                .flat_map(|(with, e)| {
                    let with = with.encode();
                    e.attributes.iter().map(move |(name, decision)| {
                        AttributeValue::M(HashMap::from([
                            ("attribute".to_string(), s(name)),
                            ("decision".to_string(), s(&decision.to_string())),
                            ("with".to_string(), s(&with)),
                        ]))
                    })
                })
                .collect();
            m.insert("explanation".into(), AttributeValue::L(list));
            // A string set: each Region once, however many steps saw it.
            let regions: BTreeSet<String> = steps
                .0
                .iter()
                .flat_map(|(_, e)| &e.disjoint_windows)
                .map(|r| r.to_string())
                .collect();
            if !regions.is_empty() {
                m.insert(
                    "disjoint_windows".into(),
                    AttributeValue::Ss(regions.into_iter().collect()),
                );
            }
        }
        for (name, value) in &self.extra {
            m.insert((*name).to_owned(), value.clone());
        }
        if let Some(reason) = &self.reason {
            m.insert("reason".into(), s(reason));
        }
        m.insert("at".into(), AttributeValue::N(self.now_ms.to_string()));
        let expires = self.now_ms / 1000 + self.ttl_days * 86_400;
        m.insert("expires".into(), AttributeValue::N(expires.to_string()));
        Item::from(m)
    }

    /// The versions, whole when they fit, else only what differs.
    fn versions_value(&self) -> AttributeValue {
        let total: usize = self.versions.iter().map(|(_, item)| item_size(item)).sum();
        if total <= MAX_VERSIONS_BYTES {
            let m = self
                .versions
                .iter()
                .map(|(name, item)| {
                    (
                        name.to_string(),
                        AttributeValue::M((*item).clone().into_inner()),
                    )
                })
                .collect();
            return AttributeValue::M(m);
        }
        // Only the attributes on which the versions disagree.
        let mut names: Vec<&String> = self.versions.iter().flat_map(|(_, i)| i.keys()).collect();
        names.sort();
        names.dedup();
        let differing: Vec<&String> = names
            .into_iter()
            .filter(|n| {
                let first = self.versions[0].1.get(*n);
                self.versions.iter().any(|(_, i)| i.get(*n) != first)
            })
            .collect();
        let mut budget = MAX_VERSIONS_BYTES;
        let m = self
            .versions
            .iter()
            .map(|(name, item)| {
                let attrs = differing
                    .iter()
                    .filter_map(|n| item.get(*n).map(|v| ((*n).clone(), v.clone())))
                    .filter(|(n, v)| {
                        let size = n.len() + value_size(v);
                        let fits = size <= budget;
                        budget = budget.saturating_sub(size);
                        fits
                    })
                    .collect();
                (name.to_string(), AttributeValue::M(attrs))
            })
            .collect();
        let mut out: HashMap<String, AttributeValue> = m;
        out.insert(
            "only_differing_attributes".into(),
            AttributeValue::Bool(true),
        );
        AttributeValue::M(out)
    }
}

/// Removes the values of the siblings in the merged stamp (`s`: attribute
/// -> list of `{at, v}`), keeping which edits they were. Returns whether
/// any was removed.
fn strip_sibling_values(item: &mut Item) -> bool {
    let Some(AttributeValue::M(stamp)) = item.get_mut("merged_stamp") else {
        return false;
    };
    let Some(AttributeValue::M(siblings)) = stamp.get_mut("s") else {
        return false;
    };
    let mut any = false;
    for list in siblings.values_mut() {
        if let AttributeValue::L(edits) = list {
            for edit in edits {
                if let AttributeValue::M(edit) = edit {
                    any |= edit.remove("v").is_some();
                }
            }
        }
    }
    any
}

/// The longest prefix of `text` of at most `max` bytes, cut at a character.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeward::merge::Decision;
    use homeward::Region;

    fn dot(text: &str) -> Dot {
        Dot::decode(text).unwrap()
    }

    #[test]
    fn each_decision_names_the_version_merged_in_and_regions_appear_once() {
        let key = Item::from(HashMap::from([(
            "pk".to_string(),
            AttributeValue::S("k".into()),
        )]));
        let step = |attribute: &str, rule: &str| Explanation {
            attributes: vec![(
                attribute.to_string(),
                Decision::Rule {
                    rule: rule.into(),
                    edits: Vec::new(),
                    note: None,
                },
            )],
            disjoint_windows: vec![Region::parse("eu-west-1").unwrap()],
        };
        let steps = MergeSteps(vec![
            (dot("us-east-1:3:a"), step("x", "max")),
            (dot("us-west-2:1:b"), step("y", "min")),
        ]);
        assert!(steps.has_conflict());
        assert_eq!(steps.rules(), ["max", "min"]);
        let entry = Entry {
            table: "T",
            item_key: &key,
            kind: "clobber",
            identity: "us-east-1:3:a#us-west-2:1:b".into(),
            action: "merged",
            detected_in: "us-east-1",
            home: None,
            regions: Vec::new(),
            versions: Vec::new(),
            raw_images: Vec::new(),
            merged_stamp: None,
            extra: Vec::new(),
            explanation: Some(&steps),
            reason: None,
            now_ms: 0,
            ttl_days: 1,
        };
        let item = entry.to_item();
        let Some(AttributeValue::L(list)) = item.get("explanation") else {
            panic!("no explanation: {item:?}");
        };
        let with: Vec<_> = list
            .iter()
            .map(|e| match e {
                AttributeValue::M(m) => m.get("with").cloned(),
                _ => None,
            })
            .collect();
        assert_eq!(
            with,
            [
                Some(AttributeValue::S("us-east-1:3:a".into())),
                Some(AttributeValue::S("us-west-2:1:b".into()))
            ]
        );
        // A string set holds each value once (DynamoDB refuses duplicates).
        assert_eq!(
            item.get("disjoint_windows"),
            Some(&AttributeValue::Ss(vec!["eu-west-1".into()]))
        );
    }
}
