//! Writes made outside the stamp protocol (unattributed): journaled with
//! both images, then taken in ([`homeward::adopt`]) and merged into the
//! home copy with the version they overwrote, so the stamp is whole again
//! and a stamped edit the plain write replaced comes back.

use homeward::adopt::adopt;
use homeward::{Store, Version};
use serde_dynamo::Item;

use crate::calls::Budget;
use crate::home_merge::{JournalPlan, Kept, When};
use crate::journal::Entry;
use crate::{Action, Outcome, RecordError, Resolver};

impl<S: Store, J: Store> Resolver<S, J> {
    /// Acts on an unattributed record: `new` and `old` are its whole images.
    pub(crate) async fn unattributed(
        &self,
        key: &Item,
        sequence: &str,
        new: Option<Item>,
        old: Option<Item>,
        reason: String,
        budget: Budget<'_>,
    ) -> Result<Outcome, RecordError> {
        let c = &self.config;
        tracing::warn!(key = %self.log_key(key), %reason, "unattributed write");
        let done = |wrote, journaled| Outcome {
            class: "unattributed",
            wrote,
            journaled,
            ..Outcome::default()
        };
        let new = new.unwrap_or_default();
        let mut versions: Vec<(&'static str, &Item)> = Vec::new();
        if let Some(old) = &old {
            versions.push(("old", old));
        }
        versions.push(("new", &new));
        let identity = format!("seq#{sequence}");
        if c.action == Action::JournalOnly {
            if !c.journal_unattributed {
                return Ok(done(false, false));
            }
            let journaled = self
                .journal_with(
                    Entry {
                        identity,
                        action: "journaled",
                        versions,
                        reason: Some(reason),
                        ..self.entry(key, "unattributed", None)
                    },
                    budget,
                )
                .await?;
            return Ok(done(false, journaled));
        }

        let rules = &c.merger.rules;
        let adopted = adopt(&c.schema, rules, &new, old.as_ref())?;
        // The version this write replaced here, unless it built on it (a
        // plain write under the same stamp): a concurrent edit to merge back.
        let overwritten: Option<Version> = match &old {
            Some(o) if o.contains_key(&c.schema.stamp_attribute) => {
                let v = self.adopted(o)?;
                (!adopted.version.knows(&v.header.dot())).then_some(v)
            }
            _ => None,
        };
        // The item's home: as the new image says, else as the version it
        // replaced said (a plain PutItem may drop the home attribute).
        let mut home = c
            .homes
            .home_of_version(&adopted.version)
            .map_err(RecordError::Home)?;
        if home.is_none() {
            if let Some(o) = &old {
                home = c.homes.home_of(o).map_err(RecordError::Home)?;
            }
        }
        let home = home.map_or_else(|| c.region.clone(), |h| h.region);
        let mut regions: Vec<String> = vec![c.region.to_string()];
        if let Some(v) = &overwritten {
            regions.push(v.header.origin.to_string());
        }
        let plan = JournalPlan {
            kind: "unattributed",
            identity,
            regions,
            versions: Kept::Items(versions),
            home: home.clone(),
            when: if c.journal_unattributed {
                When::Always
            } else {
                When::OnConflict
            },
            actions: ("adopted", "already-adopted"),
            move_identity: None,
            reason: Some(reason),
        };
        let incoming: Vec<&Version> = overwritten
            .iter()
            .chain(std::iter::once(&adopted.version))
            .collect();
        let merged =
            Box::pin(self.merge_into_home(key, &incoming, false, None, None, &plan, budget))
                .await?;
        tracing::info!(
            key = %self.log_key(key),
            home = %home,
            adopted = adopted.attributes.len(),
            merged_back = overwritten.is_some(),
            wrote = merged.wrote,
            "unattributed write adopted"
        );
        Ok(Outcome {
            rules: merged.rules,
            ..done(merged.wrote, merged.journaled)
        })
    }
}
