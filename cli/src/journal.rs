//! `homeward journal <key>`: the conflict journal entries of one item in
//! every Region's journal table (`pk` = `<table>#<key>`, as the resolver
//! writes it), oldest first, with each entry's kind, action, Regions,
//! reason and per-attribute explanation.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue as SdkValue;
use homeward::stamp::decode_header;
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::error::CliError;
use crate::key::dynamodb;
use crate::render::{show_value, time_ms};
use crate::settings::Settings;

/// Fields every entry may have; anything else is shown under `other`.
const KNOWN: &[&str] = &[
    "pk",
    "sk",
    "item_key",
    "kind",
    "action",
    "detected_in",
    "home",
    "regions",
    "versions",
    "raw_images",
    "merged_stamp",
    "explanation",
    "disjoint_windows",
    "dropped_for_size",
    "reason",
    "at",
    "expires",
];

/// What `journal` found.
#[derive(Debug, Clone, Serialize)]
pub struct JournalReport {
    pub table: String,
    pub journal_table: String,
    /// The key as people read it (`pk=user-42`).
    pub key_text: String,
    /// The journal's partition key for the item.
    pub pk: String,
    /// Per Region: how many entries, or why it could not be read.
    pub regions: Vec<RegionRead>,
    /// Every Region's entries, oldest first.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionRead {
    pub region: String,
    pub entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The Region whose journal table holds it.
    pub region: String,
    pub sk: String,
    pub kind: String,
    pub action: String,
    pub detected_in: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    pub regions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at_ms: u64,
    pub at: String,
    /// Per attribute: the decision and why.
    pub explanation: Vec<Explained>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disjoint_windows: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_for_size: Vec<String>,
    /// The versions involved (`old`, `new`, `home`, ...): the write that
    /// made each.
    pub versions: BTreeMap<String, VersionRef>,
    /// Fields of one kind of entry (a re-home's Regions and epochs), as
    /// DynamoDB JSON.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
    /// The whole entry as stored (`--full`): versions with their values,
    /// the merged stamp, raw images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    pub attribute: String,
    pub decision: String,
    /// The dot of the version whose merge made this decision (entries
    /// written before the resolver recorded it have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
}

impl Entry {
    /// The explanation, a line per attribute; decisions that came with
    /// merging a version in are grouped under it (named as in `versions`
    /// when it is one of them).
    fn explanation_text(&self) -> String {
        let width = self
            .explanation
            .iter()
            .map(|x| x.attribute.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let mut group: Option<&Option<String>> = None;
        for x in &self.explanation {
            if group != Some(&x.with) {
                group = Some(&x.with);
                if let Some(dot) = &x.with {
                    let name = self
                        .versions
                        .iter()
                        .find(|(_, v)| v.dot.as_ref() == Some(dot))
                        .map_or(String::new(), |(name, _)| format!("{name} "));
                    out.push_str(&format!("    merging in {name}{dot}:\n"));
                }
            }
            let indent = if x.with.is_some() { "      " } else { "    " };
            out.push_str(&format!("{indent}{:width$}  {}\n", x.attribute, x.decision));
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionRef {
    /// `region:counter:nonce`, when the version is stamped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// How many attributes the journal kept of it.
    pub attributes: usize,
}

/// The journal's partition key of `key` in `table`: the resolver's own
/// ([`resolver::journal::partition_key`]), so the two never drift apart.
pub fn journal_pk(table: &str, key: &Item) -> String {
    resolver::journal::partition_key(table, key)
}

/// Queries every Region's journal table for `key`. A Region that does not
/// answer is reported in `regions`, not as an error.
///
/// # Errors
/// [`CliError::Config`] when no Region is given.
pub async fn journal(
    sdk: &SdkConfig,
    settings: &Settings,
    key: &Item,
    full: bool,
) -> Result<JournalReport, CliError> {
    if settings.regions.is_empty() {
        return Err(CliError::Config(
            "REGIONS: must be set (or pass --regions us-east-1,us-west-2,...)".into(),
        ));
    }
    let journal_table = settings.journal_table();
    let stamp = settings
        .get("STAMP_ATTRIBUTE")
        .unwrap_or(homeward::stamp::DEFAULT_STAMP_ATTRIBUTE)
        .to_owned();
    let pk = journal_pk(settings.table(), key);
    let mut regions = Vec::new();
    let mut entries = Vec::new();
    for region in &settings.regions {
        let client = dynamodb(sdk, region);
        let mut start: Option<HashMap<String, SdkValue>> = None;
        let mut found = Vec::new();
        let mut error = None;
        loop {
            let page = client
                .query()
                .table_name(&journal_table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(":pk", SdkValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await;
            match page {
                Err(e) => {
                    error = Some(
                        CliError::aws(region.as_str(), "Query", &journal_table, &e).to_string(),
                    );
                    break;
                }
                Ok(out) => {
                    for item in out.items.unwrap_or_default() {
                        found.push(entry(region.as_str(), &Item::from(item), full, &stamp));
                    }
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        break;
                    }
                }
            }
        }
        regions.push(RegionRead {
            region: region.to_string(),
            entries: found.len(),
            error,
        });
        entries.extend(found);
    }
    entries.sort_by(|a, b| (a.at_ms, &a.region, &a.sk).cmp(&(b.at_ms, &b.region, &b.sk)));
    Ok(JournalReport {
        table: settings.table().to_owned(),
        journal_table,
        key_text: homeward::control::key_text(key),
        pk,
        regions,
        entries,
    })
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => Some(s.clone()),
        _ => None,
    }
}

fn strings(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        Some(AttributeValue::L(l)) => l
            .iter()
            .filter_map(|v| match v {
                AttributeValue::S(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One journal item, read leniently: an entry written by another version
/// of the resolver still shows what it has.
pub fn entry(region: &str, item: &Item, full: bool, stamp_attribute: &str) -> Entry {
    let at_ms = text(item, "at").and_then(|t| t.parse().ok()).unwrap_or(0);
    let explanation = match item.get("explanation") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .filter_map(|e| match e {
                AttributeValue::M(m) => {
                    let get = |k: &str| match m.get(k) {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => String::new(),
                    };
                    Some(Explained {
                        attribute: get("attribute"),
                        decision: get("decision"),
                        with: Some(get("with")).filter(|w| !w.is_empty()),
                    })
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let versions = match item.get("versions") {
        Some(AttributeValue::M(m)) => m
            .iter()
            .filter_map(|(name, v)| match v {
                AttributeValue::M(version) => {
                    let header = version.get(stamp_attribute).and_then(|s| match s {
                        AttributeValue::M(stamp) => decode_header(stamp).ok(),
                        _ => None,
                    });
                    Some((
                        name.clone(),
                        VersionRef {
                            dot: header.as_ref().map(|h| h.dot().encode()),
                            written: header
                                .as_ref()
                                .map(|h| format!("{} {}", h.origin, time_ms(h.time_ms))),
                            attributes: version.len(),
                        },
                    ))
                }
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let other = item
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
        .collect();
    Entry {
        region: region.to_owned(),
        sk: text(item, "sk").unwrap_or_default(),
        kind: text(item, "kind").unwrap_or_default(),
        action: text(item, "action").unwrap_or_default(),
        detected_in: text(item, "detected_in").unwrap_or_default(),
        home: text(item, "home"),
        regions: strings(item, "regions"),
        reason: text(item, "reason"),
        at_ms,
        at: time_ms(at_ms),
        explanation,
        disjoint_windows: strings(item, "disjoint_windows"),
        dropped_for_size: strings(item, "dropped_for_size"),
        versions,
        other,
        stored: full.then(|| serde_json::to_value(item).unwrap_or_default()),
    }
}

impl JournalReport {
    pub fn complete(&self) -> bool {
        self.regions.iter().all(|r| r.error.is_none())
    }

    pub fn to_text(&self) -> String {
        let counts: Vec<String> = self
            .regions
            .iter()
            .map(|r| match &r.error {
                None => format!("{} {}", r.region, r.entries),
                Some(_) => format!("{} ERROR", r.region),
            })
            .collect();
        let mut out = format!(
            "journal of {} {} in {}: {} entr{} [{}]\n",
            self.table,
            self.key_text,
            self.journal_table,
            self.entries.len(),
            if self.entries.len() == 1 { "y" } else { "ies" },
            counts.join(", ")
        );
        for r in &self.regions {
            if let Some(e) = &r.error {
                out.push_str(&format!("  {}: {e}\n", r.region));
            }
        }
        for e in &self.entries {
            out.push_str(&format!(
                "\n{}  {}  {}  {}\n",
                e.at, e.region, e.kind, e.action
            ));
            let mut facts = vec![format!("detected in {}", e.detected_in)];
            if let Some(h) = &e.home {
                facts.push(format!("home {h}"));
            }
            if !e.regions.is_empty() {
                facts.push(format!("Regions {}", e.regions.join(", ")));
            }
            out.push_str(&format!("  {}\n", facts.join("; ")));
            out.push_str(&format!("  key {}\n", e.sk));
            if !e.versions.is_empty() {
                let parts: Vec<String> = e
                    .versions
                    .iter()
                    .map(|(name, v)| match (&v.dot, &v.written) {
                        (Some(d), Some(w)) => format!("{name} {d} ({w})"),
                        _ => format!("{name} (unstamped, {} attributes)", v.attributes),
                    })
                    .collect();
                out.push_str(&format!("  versions: {}\n", parts.join("; ")));
            }
            if let Some(r) = &e.reason {
                out.push_str(&format!("  reason: {r}\n"));
            }
            for (k, v) in &e.other {
                let shown = serde_json::from_value::<AttributeValue>(v.clone())
                    .map_or_else(|_| v.to_string(), |a| show_value(&a));
                out.push_str(&format!("  {k}: {shown}\n"));
            }
            if !e.disjoint_windows.is_empty() {
                out.push_str(&format!(
                    "  disjoint windows: {}\n",
                    e.disjoint_windows.join(", ")
                ));
            }
            if !e.dropped_for_size.is_empty() {
                out.push_str(&format!(
                    "  dropped for size: {}\n",
                    e.dropped_for_size.join(", ")
                ));
            }
            if !e.explanation.is_empty() {
                out.push_str("  explanation:\n");
                out.push_str(&e.explanation_text());
            }
            if let Some(stored) = &e.stored {
                out.push_str(&format!("  stored: {stored}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(attribute: &str, decision: &str, with: Option<&str>) -> Explained {
        Explained {
            attribute: attribute.into(),
            decision: decision.into(),
            with: with.map(Into::into),
        }
    }

    fn entry(explanation: Vec<Explained>) -> Entry {
        let version = |dot: &str| VersionRef {
            dot: Some(dot.into()),
            written: None,
            attributes: 3,
        };
        Entry {
            region: "us-east-1".into(),
            sk: "clobber#a#b".into(),
            kind: "clobber".into(),
            action: "merged".into(),
            detected_in: "us-east-1".into(),
            home: None,
            regions: Vec::new(),
            reason: None,
            at_ms: 0,
            at: String::new(),
            explanation,
            disjoint_windows: Vec::new(),
            dropped_for_size: Vec::new(),
            versions: BTreeMap::from([
                ("old".to_string(), version("us-east-1:3:a")),
                ("new".to_string(), version("us-west-2:1:b")),
            ]),
            other: BTreeMap::new(),
            stored: None,
        }
    }

    #[test]
    fn decisions_are_grouped_under_the_version_merged_in() {
        let e = entry(vec![
            explained("foo", "right wins", Some("us-east-1:3:a")),
            explained("rating", "decided by rule max", Some("us-west-2:1:b")),
            explained("stock", "counter", Some("us-west-2:1:b")),
            explained("bar", "left wins", Some("eu-west-1:2:c")),
        ]);
        assert_eq!(
            e.explanation_text(),
            "    merging in old us-east-1:3:a:\n      foo     right wins\n\
             \x20   merging in new us-west-2:1:b:\n      rating  decided by rule max\n      stock   counter\n\
             \x20   merging in eu-west-1:2:c:\n      bar     left wins\n"
        );
    }

    #[test]
    fn an_entry_without_steps_reads_as_before() {
        let e = entry(vec![
            explained("foo", "right wins", None),
            explained("rating", "decided by rule max", None),
        ]);
        assert_eq!(
            e.explanation_text(),
            "    foo     right wins\n    rating  decided by rule max\n"
        );
    }
}
