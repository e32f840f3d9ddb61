//! Checks over a settled cluster that need no ground truth: the journal
//! holds what the on-failure destination got, rule decisions are
//! explained, chains forked; and reads of every Region's items and journal.

use std::collections::{BTreeMap, BTreeSet};

use serde_dynamo::{AttributeValue, Item};

use crate::cluster::Cluster;
use crate::delivery::SetAside;
use crate::truth::Edit;

/// The records set aside (the on-failure destination) whose images no
/// journal entry of any Region holds: each is a loss.
pub async fn unjournaled(c: &Cluster, names: &[&str]) -> Vec<SetAside> {
    if c.stats.on_failure.is_empty() {
        return Vec::new();
    }
    let mut kept: Vec<Item> = Vec::new();
    for r in names {
        for entry in c.journal(r).await {
            if let Some(AttributeValue::M(versions)) = entry.get("versions") {
                for v in versions.values() {
                    if let AttributeValue::M(m) = v {
                        kept.push(Item::from(m.clone()));
                    }
                }
            }
        }
    }
    c.stats
        .on_failure
        .iter()
        .filter(|lost| {
            [&lost.old_image, &lost.new_image]
                .into_iter()
                .flatten()
                .any(|image| !kept.contains(image))
        })
        .cloned()
        .collect()
}

/// (attributes a rule decided among concurrent edits, how many of them a
/// journal entry of their item explains), and the ones none explains.
pub(crate) async fn journaled_decisions(
    c: &Cluster,
    names: &[&str],
    finals: &BTreeMap<String, Item>,
) -> ((usize, usize), Vec<(String, String)>) {
    let mut explained: BTreeSet<(String, String)> = BTreeSet::new();
    for r in names {
        for entry in c.journal(r).await {
            let Some(AttributeValue::M(key)) = entry.get("item_key") else {
                continue;
            };
            let item = resolver::journal::key_text(&Item::from(key.clone()));
            let item = item.as_str();
            if let Some(AttributeValue::L(list)) = entry.get("explanation") {
                for e in list {
                    if let AttributeValue::M(m) = e {
                        if let Some(AttributeValue::S(a)) = m.get("attribute") {
                            explained.insert((item.to_owned(), a.clone()));
                        }
                    }
                }
            }
        }
    }
    let mut decided = 0;
    let mut unexplained = Vec::new();
    for (text, raw) in finals {
        let Ok(v) = c.schema.decode(raw) else {
            continue;
        };
        for (name, register) in &v.attrs {
            if matches!(register, homeward::version::Register::Many { .. }) {
                decided += 1;
                if !explained.contains(&(text.clone(), name.clone())) {
                    unexplained.push((text.clone(), name.clone()));
                }
            }
        }
    }
    ((decided, decided - unexplained.len()), unexplained)
}

/// Whether one Region wrote an item twice without the second write knowing
/// the first (its chain forked: a concurrent version replaced the first
/// before it was merged back).
pub(crate) fn forked(edits: &[Edit]) -> bool {
    edits.iter().any(|a| {
        edits.iter().any(|b| {
            a.item == b.item
                && a.dot.region == b.dot.region
                && a.dot != b.dot
                && !a.version.knows(&b.dot)
                && !b.version.knows(&a.dot)
        })
    })
}

pub(crate) async fn final_items(c: &Cluster, names: &[&str]) -> Vec<BTreeMap<String, Item>> {
    let mut out = Vec::new();
    for r in names {
        out.push(c.items(r).await);
    }
    out
}

pub(crate) async fn journal_count(c: &Cluster, names: &[&str]) -> usize {
    let mut n = 0;
    for r in names {
        n += c.journal(r).await.len();
    }
    n
}
