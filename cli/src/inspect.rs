//! `homeward inspect <key>`: the item in every Region side by side, read
//! strongly consistent in each: its values; per attribute the Region and
//! time of its last write (the stamp's `d` groups); the concurrent edits a
//! rule decided among (`s`); counters per Region (`c`); the home and its
//! epoch; and which Regions lack which Region's latest dot (the `k`
//! windows compared across Regions).

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use homeward::home::HomeSource;
use homeward::version::Register;
use homeward::{Dot, Region, Registry, Tick, TimedDot, Version};
use resolver::Config;
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::error::CliError;
use crate::key::dynamodb;
use crate::render::{show_value, time_ms, Columns};
use crate::settings::Settings;

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub table: String,
    /// The key, as DynamoDB JSON.
    pub key: serde_json::Value,
    /// The key as the journal names it (`pk=user-42`).
    pub key_text: String,
    /// One copy per Region, in the order of `REGIONS`.
    pub copies: Vec<Copy>,
    /// Per Region, the other Regions' latest dots its copy does not include.
    pub lacking: Vec<Lack>,
    /// Every Region answered, holds the item (or none does), with the same
    /// values and the same version, and no copy lacks a dot.
    pub converged: bool,
}

/// One Region's copy.
#[derive(Debug, Clone, Serialize)]
pub struct Copy {
    pub region: String,
    /// `present`, `absent`, or `error` (the Region did not answer).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The attributes besides the key and the stamp, as DynamoDB JSON.
    pub values: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub items: BTreeMap<String, AttributeValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<HomeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampView>,
    /// Why the stamp could not be read (no stamp: a legacy or foreign
    /// writer; a malformed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stamp_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HomeView {
    pub region: String,
    pub epoch: u64,
    /// Where it was read: `stamp` (`h`/`e`), `attribute <name>`,
    /// `key prefix`, `table name`.
    pub source: String,
}

/// The stamp of one copy.
#[derive(Debug, Clone, Serialize)]
pub struct StampView {
    /// The write that made this version.
    pub written: Write,
    pub by: &'static str,
    /// Per plain attribute (including removed ones), its last edit.
    pub attributes: BTreeMap<String, AttributeView>,
    /// Per counter attribute, each Region's contribution.
    pub counters: BTreeMap<String, CounterView>,
    /// Per Region, the dots this version includes (`counter:nonce`,
    /// highest first).
    pub windows: BTreeMap<String, Vec<String>>,
}

/// A write: its dot, Region and time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Write {
    pub dot: String,
    pub region: String,
    pub time_ms: u64,
    pub time: String,
}

impl Write {
    fn of(at: &TimedDot) -> Self {
        Write {
            dot: at.dot.encode(),
            region: at.dot.region.to_string(),
            time_ms: at.time_ms,
            time: time_ms(at.time_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributeView {
    /// The latest edit (by write time) that no other edit superseded.
    pub last_write: Write,
    /// The attribute was removed by that edit (a tombstone).
    pub removed: bool,
    /// Concurrent edits kept for the rule (two or more), with their values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub siblings: Vec<SiblingView>,
    /// The rule that picks among the siblings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiblingView {
    pub write: Write,
    /// DynamoDB JSON; absent: the edit removed the attribute.
    pub value: Option<serde_json::Value>,
    #[serde(skip)]
    pub shown: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterView {
    pub total: String,
    /// Region -> its contribution.
    pub regions: BTreeMap<String, Contribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    pub total: String,
    pub base: i64,
    /// Deltas still in the window, `counter:nonce:delta`.
    pub deltas: Vec<String>,
}

/// A Region's copy lacks another Region's latest dot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lack {
    pub region: String,
    /// The Region that made the dot.
    pub origin: String,
    pub dot: String,
    /// The latest dot of `origin` this copy does include.
    pub has: Option<String>,
}

/// Reads `key` in every Region of `settings`. Regions that do not answer are
/// reported in their copy (`state: error`), not as an error.
///
/// # Errors
/// [`CliError::Config`] when the settings do not make a resolver
/// configuration.
pub async fn inspect(
    sdk: &SdkConfig,
    settings: &Settings,
    registry: &Registry,
    key: &Item,
) -> Result<Inspection, CliError> {
    let config = settings.first_config(registry)?;
    let mut copies = Vec::new();
    let mut versions: Vec<(String, Version)> = Vec::new();
    for region in &settings.regions {
        let read = dynamodb(sdk, region)
            .get_item()
            .table_name(&config.table)
            .set_key(Some(key.clone().into()))
            .consistent_read(true)
            .send()
            .await;
        let copy = match read {
            Err(e) => Copy {
                error: Some(
                    CliError::aws(region.as_str(), "GetItem", &config.table, &e).to_string(),
                ),
                ..empty(region, "error")
            },
            Ok(out) => match out.item {
                None => empty(region, "absent"),
                Some(item) => {
                    let item = Item::from(item);
                    let (copy, version) = present(region, &item, &config);
                    if let Some(v) = version {
                        versions.push((region.to_string(), v));
                    }
                    copy
                }
            },
        };
        copies.push(copy);
    }
    let lacking = lacking(&versions);
    let first = copies.first();
    let same_everywhere = copies.iter().all(|c| {
        c.state != "error"
            && first.is_some_and(|f| {
                f.state == c.state
                    && f.values == c.values
                    && f.stamp.as_ref().map(|s| &s.written) == c.stamp.as_ref().map(|s| &s.written)
            })
    });
    Ok(Inspection {
        table: config.table.clone(),
        key: serde_json::to_value(key).unwrap_or_default(),
        key_text: homeward::control::key_text(key),
        converged: same_everywhere && lacking.is_empty(),
        copies,
        lacking,
    })
}

fn empty(region: &Region, state: &'static str) -> Copy {
    Copy {
        region: region.to_string(),
        state,
        error: None,
        values: BTreeMap::new(),
        items: BTreeMap::new(),
        home: None,
        stamp: None,
        stamp_error: None,
    }
}

fn present(region: &Region, item: &Item, config: &Config) -> (Copy, Option<Version>) {
    let schema = &config.schema;
    let items: BTreeMap<String, AttributeValue> = item
        .iter()
        .filter(|(k, _)| !schema.is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let values = items
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
        .collect();
    let (version, stamp_error) = match schema.decode(item) {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let home = config.homes.home_of(item).ok().flatten().map(|h| {
        let stamped = version.as_ref().is_some_and(|v| v.home.is_some());
        let source = match &config.homes.source {
            _ if stamped => "stamp".to_owned(),
            HomeSource::Attribute(name) => format!("attribute {name}"),
            HomeSource::KeyPrefix(_) => "key prefix".to_owned(),
            HomeSource::Table { .. } => "table name".to_owned(),
            HomeSource::Stamp | HomeSource::Negotiated => "stamp".to_owned(),
        };
        HomeView {
            region: h.region.to_string(),
            epoch: h.epoch,
            source,
        }
    });
    let stamp = version.as_ref().map(|v| stamp_view(v, config));
    let copy = Copy {
        region: region.to_string(),
        state: "present",
        error: None,
        values,
        items,
        home,
        stamp,
        stamp_error,
    };
    (copy, version)
}

fn stamp_view(v: &Version, config: &Config) -> StampView {
    let attributes = v
        .attrs
        .iter()
        .map(|(name, register)| {
            let siblings = register.siblings();
            let last = siblings
                .iter()
                .max_by(|a, b| a.at.lww_key().cmp(&b.at.lww_key()))
                .expect("a register holds at least one edit");
            let many = matches!(register, Register::Many { .. });
            let view = AttributeView {
                last_write: Write::of(&last.at),
                removed: register.value().is_none(),
                siblings: if many {
                    siblings
                        .iter()
                        .map(|s| SiblingView {
                            write: Write::of(&s.at),
                            value: s
                                .value
                                .as_ref()
                                .map(|v| serde_json::to_value(v).unwrap_or_default()),
                            shown: s.value.as_ref().map_or("(removed)".into(), show_value),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                rule: many.then(|| config.merger.rules.rule(name).name().to_owned()),
            };
            (name.clone(), view)
        })
        .collect();
    let counters = v
        .counters
        .iter()
        .map(|(name, counter)| {
            let regions = counter
                .iter()
                .map(|(r, c)| {
                    let deltas = c
                        .deltas
                        .iter()
                        .map(|(t, d)| format!("{}:{d}", t.encode()))
                        .collect();
                    let contribution = Contribution {
                        total: c.exact_total().to_string(),
                        base: c.base,
                        deltas,
                    };
                    (r.to_string(), contribution)
                })
                .collect();
            let total = homeward::version::exact_counter_total(counter).to_string();
            (name.clone(), CounterView { total, regions })
        })
        .collect();
    let windows = v
        .known
        .iter()
        .map(|(r, ticks)| {
            (
                r.to_string(),
                ticks.iter().rev().map(Tick::encode).collect(),
            )
        })
        .collect();
    StampView {
        written: Write::of(&v.header.timed_dot()),
        by: v.header.by.as_str(),
        attributes,
        counters,
        windows,
    }
}

/// For every origin Region, its latest dots (the highest counter any copy
/// knows; several on a forked chain), and the copies that do not include
/// them.
pub fn lacking(versions: &[(String, Version)]) -> Vec<Lack> {
    let mut origins: BTreeMap<&Region, BTreeSet<Tick>> = BTreeMap::new();
    for (_, v) in versions {
        for (r, ticks) in &v.known {
            origins.entry(r).or_default().extend(ticks.iter().copied());
        }
    }
    let mut out = Vec::new();
    for (origin, ticks) in origins {
        let Some(top) = ticks.iter().map(|t| t.counter).max() else {
            continue;
        };
        let latest: Vec<&Tick> = ticks.iter().filter(|t| t.counter == top).collect();
        for (region, v) in versions {
            let known = v.known.get(origin);
            for tick in &latest {
                if !known.is_some_and(|k| k.contains(tick)) {
                    out.push(Lack {
                        region: region.clone(),
                        origin: origin.to_string(),
                        dot: Dot {
                            region: origin.clone(),
                            tick: **tick,
                        }
                        .encode(),
                        has: known.and_then(|k| k.iter().next_back()).map(|t| {
                            Dot {
                                region: origin.clone(),
                                tick: *t,
                            }
                            .encode()
                        }),
                    });
                }
            }
        }
    }
    out
}

impl Inspection {
    /// Whether every Region answered.
    pub fn complete(&self) -> bool {
        self.copies.iter().all(|c| c.state != "error")
    }

    /// The plain-text report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let regions: Vec<&str> = self.copies.iter().map(|c| c.region.as_str()).collect();
        out.push_str(&format!(
            "{} {} in {} Regions: {}\n",
            self.table,
            self.key_text,
            regions.len(),
            if self.converged {
                "converged"
            } else {
                "NOT converged"
            }
        ));
        let header = || {
            let mut h = vec![String::new()];
            h.extend(regions.iter().map(|r| (*r).to_owned()));
            h
        };
        let present: Vec<&Copy> = self
            .copies
            .iter()
            .filter(|c| c.state == "present")
            .collect();

        // Values.
        let mut names: BTreeSet<&String> = BTreeSet::new();
        for c in &present {
            names.extend(c.items.keys());
            if let Some(s) = &c.stamp {
                names.extend(s.attributes.keys());
            }
        }
        let mut cols = Columns::new();
        cols.row(header(), "");
        let mut state_row = vec!["(copy)".to_owned()];
        let mut any_missing = false;
        for c in &self.copies {
            state_row.push(match c.state {
                "present" => "present".to_owned(),
                "absent" => {
                    any_missing = true;
                    "ABSENT".to_owned()
                }
                _ => {
                    any_missing = true;
                    "ERROR (below)".to_owned()
                }
            });
        }
        if any_missing {
            cols.row(state_row, "");
        }
        for name in &names {
            let cells: Vec<String> = self
                .copies
                .iter()
                .map(|c| match c.items.get(*name) {
                    Some(v) => show_value(v),
                    None if c.state == "present" => "-".to_owned(),
                    None => String::new(),
                })
                .collect();
            let differs = cells.iter().collect::<BTreeSet<_>>().len() > 1;
            let mut row = vec![(*name).clone()];
            row.extend(cells);
            cols.row(row, if differs { "* differs" } else { "" });
        }
        out.push_str("\nvalues\n");
        out.push_str(&cols.render("  "));

        // Last writes: one line when every copy agrees, else side by side.
        let mut same = Columns::new();
        let mut differing = Columns::new();
        differing.row(header(), "");
        let mut any_differing = false;
        for name in &names {
            let cells: Vec<String> = self
                .copies
                .iter()
                .map(|c| {
                    let Some(s) = &c.stamp else {
                        return String::new();
                    };
                    if let Some(a) = s.attributes.get(*name) {
                        let removed = if a.removed { " (removed)" } else { "" };
                        format!("{} {}{removed}", a.last_write.region, a.last_write.time)
                    } else if s.counters.contains_key(*name) {
                        "counter (below)".to_owned()
                    } else {
                        "-".to_owned()
                    }
                })
                .collect();
            if cells.iter().all(String::is_empty) {
                continue;
            }
            if cells.iter().all(|c| *c == cells[0]) {
                same.row(vec![(*name).clone(), cells[0].clone()], "");
            } else {
                any_differing = true;
                let mut row = vec![(*name).clone()];
                row.extend(cells);
                differing.row(row, "");
            }
        }
        out.push_str("\nlast write (Region, time at the origin)\n");
        out.push_str(&same.render("  "));
        if any_differing {
            out.push_str("  not the same in every Region:\n");
            out.push_str(&differing.render("  "));
        }

        // The version: its write, home, windows.
        let mut cols = Columns::new();
        cols.row(header(), "");
        let row = |label: &str, f: &dyn Fn(&Copy) -> String| {
            let mut r = vec![label.to_owned()];
            r.extend(self.copies.iter().map(f));
            r
        };
        cols.row(
            row("dot", &|c| {
                c.stamp
                    .as_ref()
                    .map_or(String::new(), |s| s.written.dot.clone())
            }),
            "",
        );
        cols.row(
            row("written", &|c| {
                c.stamp.as_ref().map_or(String::new(), |s| {
                    format!("{} {} by {}", s.written.region, s.written.time, s.by)
                })
            }),
            "",
        );
        cols.row(
            row("home", &|c| {
                c.home.as_ref().map_or(String::new(), |h| {
                    format!("{} epoch {} ({})", h.region, h.epoch, h.source)
                })
            }),
            "",
        );
        cols.row(
            row("knows", &|c| {
                c.stamp.as_ref().map_or(String::new(), |s| {
                    s.windows
                        .iter()
                        .filter_map(|(r, w)| w.first().map(|t| format!("{r}:{t}")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            }),
            "",
        );
        out.push_str("\nversion\n");
        out.push_str(&cols.render("  "));
        for c in &self.copies {
            if let Some(e) = &c.error {
                out.push_str(&format!("  {}: {e}\n", c.region));
            }
            if let Some(e) = &c.stamp_error {
                out.push_str(&format!("  {}: no usable stamp: {e}\n", c.region));
            }
        }

        // Siblings, grouped by Regions holding the same set.
        let mut groups: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for c in &present {
            let Some(s) = &c.stamp else { continue };
            for (name, a) in &s.attributes {
                if a.siblings.is_empty() {
                    continue;
                }
                let shown = c.items.get(name).map_or("(absent)".into(), show_value);
                let mut text = format!(
                    "  {name}: rule {} shows {shown}\n",
                    a.rule.as_deref().unwrap_or("?")
                );
                let mut edits = Columns::new();
                for sib in &a.siblings {
                    edits.row(
                        vec![
                            sib.write.dot.clone(),
                            sib.write.time.clone(),
                            sib.shown.clone(),
                        ],
                        "",
                    );
                }
                text.push_str(&edits.render("      "));
                groups
                    .entry((name.clone(), text))
                    .or_default()
                    .push(&c.region);
            }
        }
        if !groups.is_empty() {
            out.push_str("\nsiblings (concurrent edits a rule decided among)\n");
            for ((_, text), regions) in &groups {
                out.push_str(&format!("  in {}:\n", regions.join(", ")));
                out.push_str(text);
            }
        }

        // Counters.
        let mut counters: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for c in &present {
            let Some(s) = &c.stamp else { continue };
            for (name, counter) in &s.counters {
                let parts: Vec<String> = counter
                    .regions
                    .iter()
                    .map(|(r, c)| format!("{r} {}", signed(&c.total)))
                    .collect();
                let text = format!("{name} = {} = {}", counter.total, parts.join(", "));
                counters
                    .entry((name.clone(), text))
                    .or_default()
                    .push(&c.region);
            }
        }
        if !counters.is_empty() {
            out.push_str("\ncounters (each Region's contribution)\n");
            for ((_, text), regions) in &counters {
                out.push_str(&format!("  {text}   [in {}]\n", regions.join(", ")));
            }
        }

        // Dots.
        out.push_str("\nlatest dots\n");
        if self.lacking.is_empty() {
            out.push_str("  every copy includes every Region's latest dot\n");
        } else {
            for l in &self.lacking {
                let has = l
                    .has
                    .as_ref()
                    .map_or("none of its dots".to_owned(), |h| format!("up to {h}"));
                out.push_str(&format!(
                    "  {} lacks {} (the latest write made in {}; it has {has})\n",
                    l.region, l.dot, l.origin
                ));
            }
        }
        out
    }
}

fn signed(total: &str) -> String {
    if total.starts_with('-') {
        total.to_owned()
    } else {
        format!("+{total}")
    }
}
