//! Merging into the home copy: read (or guess) the home copy, merge the
//! incoming versions, decide whether the home moves, journal the conflict,
//! then write conditionally on the version read, retrying with jittered
//! backoff while the invocation's time allows.
//!
//! The journal entry is written BEFORE the home put: once the home copy
//! holds the merge, a redelivered record finds nothing left to do and would
//! never journal the conflict. The entry is keyed by the dots involved, so
//! writing it again (a retry, a redelivery) is harmless.

use homeward::adopt::adopt;
use homeward::classify::ClassifyError;
use homeward::edit::{apply, try_restamp, WriteContext};
use homeward::home::{decide, ForeignWrite, HomeChange};
use homeward::size::{item_size, MAX_ITEM_BYTES};
use homeward::{
    Draft, Home, PutCondition, PutResult, Region, Store, StoreError, Version, WriterKind,
};
use serde_dynamo::{AttributeValue, Item};
use std::sync::OnceLock;

use crate::calls::Budget;
use crate::event::Image;
use crate::journal::{Entry, MergeSteps};
use crate::{now_ms, Config, RecordError, Resolver};

/// How many times a merge follows an item whose home moved on.
const MAX_HOPS: u32 = 3;

/// A foreign write that may move its item's home.
pub(crate) struct MoveAsk {
    /// The home the write was made against (the epoch fences it).
    pub seen: Option<Home>,
    /// The write's dot counter and time (counted once towards `after N`).
    pub counter: u64,
    pub time_ms: u64,
}

/// When a merge is journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Every time (clobbers, rejected writes): also when nothing is left
    /// to write, with the second action name.
    Always,
    /// Only when a rule decided among concurrent edits (or windows were
    /// disjoint), before the write that settles it.
    OnConflict,
}

/// The journal entry a merge owes.
pub(crate) struct JournalPlan<'a> {
    pub kind: &'static str,
    pub identity: String,
    pub regions: Vec<String>,
    pub versions: Kept<'a>,
    pub home: Region,
    pub when: When,
    /// The action when the merge is written, and when it was already there.
    pub actions: (&'static str, &'static str),
    /// A re-home is journaled under this write's dot.
    pub move_identity: Option<String>,
    /// Why the record was journaled, when the kind does not say it all.
    pub reason: Option<String>,
}

/// The versions a journal entry keeps, as items: at hand, or a record's
/// images, read whole when an entry first needs them (a foreign write
/// merged without a conflict is never read whole).
pub(crate) enum Kept<'a> {
    Items(Vec<(&'static str, &'a Item)>),
    Images(
        Vec<(&'static str, &'a Image<'a>)>,
        OnceLock<Vec<(&'static str, Item)>>,
    ),
}

impl<'a> Kept<'a> {
    pub fn images(images: impl IntoIterator<Item = (&'static str, &'a Image<'a>)>) -> Self {
        Kept::Images(images.into_iter().collect(), OnceLock::new())
    }

    /// The versions as items.
    fn items(&self) -> Result<Vec<(&'static str, &Item)>, RecordError> {
        match self {
            Kept::Items(items) => Ok(items.clone()),
            Kept::Images(images, read) => {
                let items = match read.get() {
                    Some(items) => items,
                    None => {
                        let items = images
                            .iter()
                            .map(|(name, image)| {
                                let item =
                                    image.whole().map_err(|e| RecordError::image(name, &e))?;
                                Ok((*name, item))
                            })
                            .collect::<Result<Vec<_>, RecordError>>()?;
                        read.get_or_init(|| items)
                    }
                };
                Ok(items.iter().map(|(name, item)| (*name, item)).collect())
            }
        }
    }
}

/// The result of a merge into the home copy.
pub(crate) struct HomeMerge {
    pub wrote: bool,
    /// Whether a new journal entry was written.
    pub journaled: bool,
    /// The rules that decided concurrent edits in the merge written.
    pub rules: Vec<String>,
    /// Whether the write moved the item's home.
    pub rehomed: bool,
}

impl<S: Store, J: Store> Resolver<S, J> {
    /// Merges `incoming` into the current copy in `home` and writes the
    /// result there conditionally on the version read (retrying when it
    /// changed). With `revert`, the home's values are then written back
    /// over the merge, so the incoming edits are known but lose (`reject`).
    /// A home copy that says the item moved is followed to its new home.
    /// With `ask`, the write may move the item's home here ([`decide`]):
    /// in the same conditional write, at the home copy; or, when the home
    /// is evacuated, at this Region's copy, which takes over. The entries
    /// `plan` asks for are journaled before the write.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn merge_into_home(
        &self,
        key: &Item,
        incoming: &[&Version],
        revert: bool,
        mut presumed: Option<Version>,
        ask: Option<MoveAsk>,
        plan: &JournalPlan<'_>,
        budget: Budget<'_>,
    ) -> Result<HomeMerge, RecordError> {
        let c = &self.config;
        let mut target = plan.home.clone();
        // The newest home seen on the way (epochs only go up).
        let mut best: Option<Home> = None;
        let mut hops = 0;
        let mut attempt = 0;
        let mut journaled = false;
        // Whether an attempt journaled a pending move.
        let mut tried_move = false;
        // What the last failed put found in its way (when the store says),
        // the next attempt's base.
        let mut found: Option<(Region, Option<Item>)> = None;
        loop {
            attempt += 1;
            let evacuated = if ask.is_some() {
                tokio::time::timeout(
                    budget.left(),
                    self.evacuations.current(&self.journal, &c.region),
                )
                .await
                .map_err(|_| StoreError::TimedOut {
                    region: c.region.to_string(),
                })?
            } else {
                Default::default()
            };
            // Failover: the home is evacuated, so this Region adopts the
            // item; its own copy (which holds the write) is the base.
            let failover = ask.is_some() && evacuated.contains(&target);
            let write_region = if failover {
                presumed = None;
                c.region.clone()
            } else {
                target.clone()
            };
            let ctx = WriteContext {
                region: write_region.clone(),
                time_ms: now_ms(),
                nonce: rand::random(),
                by: WriterKind::Resolver,
            };
            // First try the version this Region held before the write (the
            // record's old image): when replication is caught up it is the
            // home copy, and the write's condition proves it, saving a
            // cross-Region read. Otherwise read the home copy.
            let guessed = presumed.take();
            let was_guess = guessed.is_some();
            let found_here = found.take().filter(|(at, _)| at == &write_region);
            let current = match (guessed.is_some(), found_here) {
                (true, _) => None,
                // The item a failed put found in its way: no read needed.
                (false, Some((_, found))) => found,
                (false, None) => {
                    budget
                        .retrying(&write_region, || self.table.get(&write_region, key))
                        .await?
                }
            };
            // Whether the home copy holds plain edits its stamp does not
            // record: they are written into the stamp whatever the merge
            // adds, or a write that does not know them (replication's
            // last writer wins) would drop them unseen.
            let mut unrecorded = false;
            let (base, condition) = match (guessed, &current) {
                (Some(guess), _) => {
                    let dot = guess.header.dot().encode();
                    (Some(guess), PutCondition::DotIs(dot))
                }
                (None, current) => match current {
                    None => (None, PutCondition::NotExists),
                    // What plain writers changed in the home copy is taken
                    // in (the same adoption every Region derives). A copy
                    // without a stamp is adopted whole, concurrent with
                    // everything incoming.
                    Some(item) => {
                        let adopted = adopt(&c.schema, &c.merger.rules, item, None)?;
                        unrecorded = adopted.dot.is_some();
                        let base = adopted.version;
                        let condition = if item.contains_key(&c.schema.stamp_attribute) {
                            PutCondition::DotIs(base.header.dot().encode())
                        } else {
                            PutCondition::Unstamped
                        };
                        (Some(base), condition)
                    }
                },
            };
            // The home copy says the item moved on (a newer home than any
            // seen so far): merge there instead. An older one is a copy
            // that replication has not caught up yet: the newest home seen
            // still holds.
            if let (Some(b), false, false) = (&base, was_guess, failover) {
                let says = c.homes.home_of_version(b).map_err(RecordError::Home)?;
                if let Some(h) = says.filter(|h| h.region != target) {
                    let newer = best
                        .as_ref()
                        .is_none_or(|b| (h.epoch, &h.region) > (b.epoch, &b.region));
                    if hops < MAX_HOPS && newer {
                        tracing::debug!(from = %target, to = %h.region, "the home moved; following it");
                        hops += 1;
                        attempt -= 1;
                        target = h.region.clone();
                        best = Some(h);
                        continue;
                    }
                }
            }
            let mut explanation = MergeSteps::default();
            let mut merged: Option<Version> = base.clone();
            for version in incoming {
                merged = Some(match merged {
                    None => (*version).clone(),
                    Some(acc) => {
                        let m = c.merger.merge_into(acc, version);
                        explanation.0.push((version.header.dot(), m.explanation));
                        m.version
                    }
                });
            }
            let Some(merged) = merged else {
                return Err(RecordError::Malformed(ClassifyError::MissingImage(
                    "merge", "any",
                )));
            };
            let covered = condition != PutCondition::Unstamped
                && !unrecorded
                && base.as_ref().is_some_and(|b| b.covers(&merged));
            // Where the item's home goes with this write.
            let mut new_home: Option<Home> = None;
            let mut moved = None;
            let merged_home = c
                .homes
                .home_of_version(&merged)
                .map_err(RecordError::Home)?;
            // A copy behind the move learns the newest home now.
            let known = Home::join(merged_home.clone(), best.clone());
            if c.homes.can_rehome() && known != merged_home {
                new_home = known.clone();
            }
            if let Some(ask) = &ask {
                let current = known.unwrap_or_else(|| Home::new(target.clone(), 0));
                let gone = evacuated.contains(&current.region);
                let write = ForeignWrite {
                    region: &c.region,
                    counter: ask.counter,
                    time_ms: ask.time_ms,
                    seen: ask.seen.as_ref(),
                };
                match decide(c.rehome, &current, write, gone) {
                    HomeChange::Move(to) => {
                        let why = if gone {
                            format!("{} is evacuated", current.region)
                        } else {
                            format!("REHOME={}", c.rehome)
                        };
                        moved = Some((current, to.clone(), why));
                        new_home = Some(to);
                    }
                    // Counting towards `after N` (even when replication
                    // brought the write here first; once per write).
                    HomeChange::Stay(h) if h.pending != current.pending => {
                        new_home = Some(h);
                    }
                    HomeChange::Stay(_) => {}
                }
            }
            if covered && new_home.is_none() {
                if was_guess {
                    // Nothing to add to the guess; only the home copy itself
                    // can tell whether nothing is owed.
                    continue;
                }
                if plan.when == When::Always {
                    let versions = (plan.actions.1, plan.versions.items()?);
                    journaled |= self
                        .journal_with(
                            self.plan_entry(key, plan, versions, None, &explanation),
                            budget,
                        )
                        .await?;
                }
                // A move journaled as pending (by an earlier attempt, or a
                // delivery that died) is settled by what the home holds.
                let moved_ever = merged_home.as_ref().is_some_and(|h| h.epoch > 0);
                if let (Some(identity), true) = (&plan.move_identity, ask.is_some() && moved_ever) {
                    self.settle_move(key, identity, merged_home.as_ref(), budget)
                        .await?;
                }
                return Ok(HomeMerge {
                    wrote: false,
                    journaled,
                    rules: Vec::new(),
                    rehomed: false,
                });
            }
            let next = match (&base, revert) {
                (Some(base), true) => revert_to(base, &merged, &ctx, c)?,
                _ => with_home(merged, new_home, &ctx, c)?,
            };
            let item = c.schema.encode(&next);
            let bytes = item_size(&item);
            if bytes > MAX_ITEM_BYTES {
                return Err(RecordError::TooLarge { bytes });
            }
            // Journal first: once the home copy holds the merge, nothing
            // would tell a redelivery that the conflict is unjournaled.
            let stamp = item.get(&c.schema.stamp_attribute).cloned();
            // A move is journaled as pending ("rehoming") before the write
            // and settled ("rehomed" or "superseded") once the write's
            // outcome is known: racing Regions may both try to move.
            if let (Some(m), Some(identity)) = (&moved, &plan.move_identity) {
                let versions = plan.versions.items()?;
                let entry = self.move_entry(key, identity, m, "rehoming", &versions, &stamp);
                journaled |= self.journal_with(entry, budget).await?;
            }
            let conflict = explanation.has_conflict();
            if plan.when == When::Always || conflict {
                let versions = plan.versions.items()?;
                let entry = || {
                    self.plan_entry(
                        key,
                        plan,
                        (plan.actions.0, versions.clone()),
                        stamp.clone(),
                        &explanation,
                    )
                };
                let fresh = self.journal_with(entry(), budget).await?;
                journaled |= fresh;
                // An entry an earlier attempt (or delivery) wrote before the
                // home copy changed under it explains another merge: this
                // one decides a concurrent edit, so its entry says how.
                if !fresh && conflict && plan.when == When::Always {
                    self.journal_replace(entry(), budget).await?;
                }
            }
            tried_move |= moved.is_some();
            let put = budget
                .retrying(&write_region, || {
                    self.table.put_returning(&write_region, &item, &condition)
                })
                .await;
            let put = match put {
                Ok(PutResult::Conflict(current)) => {
                    found = Some((write_region.clone(), current));
                    Err(StoreError::ConditionFailed)
                }
                other => other.map(|_| ()),
            };
            match put {
                Ok(()) => {
                    if let (Some(m), Some(identity)) = (&moved, &plan.move_identity) {
                        let versions = plan.versions.items()?;
                        let entry = self.move_entry(key, identity, m, "rehomed", &versions, &stamp);
                        self.journal_replace(entry, budget).await?;
                        let (from, to, why) = m;
                        tracing::info!(key = %self.log_key(key), from = %from.region, to = %to.region, epoch = to.epoch, why, "re-homed");
                    } else if let (true, Some(identity)) = (tried_move, &plan.move_identity) {
                        // An earlier attempt's move lost to another one.
                        let now = c.homes.home_of_version(&next).map_err(RecordError::Home)?;
                        self.settle_move(key, identity, now.as_ref(), budget)
                            .await?;
                    }
                    let rules = explanation.rules();
                    return Ok(HomeMerge {
                        wrote: true,
                        journaled,
                        rules,
                        rehomed: moved.is_some(),
                    });
                }
                // A wrong guess is not contention: read the home copy at once.
                Err(StoreError::ConditionFailed) if was_guess => {}
                Err(StoreError::ConditionFailed) => {
                    tracing::debug!(attempt, home = %write_region, "home copy changed under the merge; retrying");
                    if !budget.backoff(attempt).await {
                        return Err(RecordError::Contended(attempt));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A re-home's journal entry, in the state `action`.
    fn move_entry<'a>(
        &'a self,
        key: &'a Item,
        identity: &str,
        (from, to, why): &(Home, Home, String),
        action: &'static str,
        versions: &[(&'static str, &'a Item)],
        stamp: &Option<AttributeValue>,
    ) -> Entry<'a> {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let s = |r: &Region| AttributeValue::S(r.to_string());
        Entry {
            identity: identity.to_owned(),
            action,
            regions: vec![from.region.to_string(), to.region.to_string()],
            versions: versions.to_vec(),
            merged_stamp: stamp.clone(),
            extra: vec![
                ("from_region", s(&from.region)),
                ("from_epoch", n(from.epoch)),
                ("to_region", s(&to.region)),
                ("to_epoch", n(to.epoch)),
            ],
            reason: Some(format!(
                "home moved from {} (epoch {}) to {} (epoch {}): {why}",
                from.region, from.epoch, to.region, to.epoch
            )),
            ..self.entry(key, "rehome", None)
        }
    }

    /// Settles a pending re-home entry by the home the item holds now:
    /// `rehomed` when it is the move's, `superseded` otherwise.
    async fn settle_move(
        &self,
        key: &Item,
        identity: &str,
        now: Option<&Home>,
        budget: Budget<'_>,
    ) -> Result<(), RecordError> {
        let region = &self.config.region;
        let entry_key = crate::journal::entry_key(&self.config.table, key, "rehome", identity);
        let Some(mut stored) = budget
            .retrying(region, || self.journal.get(region, &entry_key))
            .await?
        else {
            return Ok(());
        };
        if stored.get("action") != Some(&AttributeValue::S("rehoming".into())) {
            return Ok(());
        }
        let text = |name: &str| match stored.get(name) {
            Some(AttributeValue::S(v) | AttributeValue::N(v)) => Some(v.clone()),
            _ => None,
        };
        let won = now.is_some_and(|h| {
            text("to_region").as_deref() == Some(h.region.as_str())
                && text("to_epoch") == Some(h.epoch.to_string())
        });
        let action = if won { "rehomed" } else { "superseded" };
        stored.insert("action".into(), AttributeValue::S(action.into()));
        budget
            .retrying(region, || {
                self.journal.put(region, &stored, &PutCondition::Always)
            })
            .await?;
        Ok(())
    }

    fn plan_entry<'a>(
        &'a self,
        key: &'a Item,
        plan: &'a JournalPlan<'a>,
        (action, versions): (&'static str, Vec<(&'static str, &'a Item)>),
        merged_stamp: Option<AttributeValue>,
        explanation: &'a MergeSteps,
    ) -> Entry<'a> {
        Entry {
            identity: plan.identity.clone(),
            action,
            regions: plan.regions.clone(),
            versions,
            merged_stamp,
            explanation: Some(explanation),
            reason: plan.reason.clone(),
            ..self.entry(key, plan.kind, Some(&plan.home))
        }
    }
}

/// The merge, restamped as the resolver's write; with a new home record
/// (a move, or a foreign write counted), and the application's home
/// attribute set to match the home.
fn with_home(
    merged: Version,
    new_home: Option<Home>,
    ctx: &WriteContext,
    c: &Config,
) -> Result<Version, RecordError> {
    let home = new_home.as_ref().or(merged.home.as_ref());
    let stale_mirror = match (home, c.homes.mirror()) {
        // Only a shown value is corrected: an attribute the app removed (a
        // soft delete) stays removed; the stamp still records the home.
        (Some(h), Some(name)) => match merged.values().remove(name) {
            Some(shown) if shown != AttributeValue::S(h.region.to_string()) => {
                Some((name, h.region.clone()))
            }
            _ => None,
        },
        _ => None,
    };
    if new_home.is_none() && stale_mirror.is_none() {
        return Ok(try_restamp(merged, ctx, &c.merger)?);
    }
    let mut draft = Draft::new(merged.values());
    if let Some((name, region)) = stale_mirror {
        draft.set(name, AttributeValue::S(region.to_string()));
    }
    Ok(apply(&merged, &draft, ctx, &c.merger, &c.schema, new_home)?)
}

/// `reject`: a write on top of `merged` (which knows the incoming edits)
/// that puts every value back to what `base` showed.
fn revert_to(
    base: &Version,
    merged: &Version,
    ctx: &WriteContext,
    c: &Config,
) -> Result<Version, RecordError> {
    let mut draft = Draft::new(merged.values());
    let wanted = base.values();
    for name in merged.values().keys() {
        if !wanted.contains_key(name) && !c.merger.rules.is_counter(name) {
            draft.remove(name);
        }
    }
    for (name, value) in wanted {
        draft.set(&name, value);
    }
    Ok(apply(merged, &draft, ctx, &c.merger, &c.schema, None)?)
}
