//! The resolver: one Region's DynamoDB stream in, merges into home copies
//! and journal entries out.
//!
//! A batch is split by item; each item's records run in stream order, and
//! different items run concurrently (up to `CONCURRENCY`). A record that
//! fails reports its sequence number (and the item's later records, which
//! must not be applied ahead of it); the rest of the batch goes on.

pub mod config;
pub mod event;
pub mod journal;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures_util::stream::{self, StreamExt};
use homeward::classify::{classify, Class, ClassifyError, EventKind};
use homeward::control::{AssignError, Assignments, Evacuations};
use homeward::edit::{adopt_unstamped, apply, restamp, WriteContext};
use homeward::home::{decide, ForeignWrite, HomeChange, HomeSource, Trigger};
use homeward::merge::Explanation;
use homeward::{
    Draft, Home, PutCondition, Region, StampError, Store, StoreError, Version, WriterKind,
};
use serde_dynamo::{AttributeValue, Item};

pub use config::{Action, Config};
pub use event::{StreamEvent, StreamRecord};
use journal::Entry;

/// Why one record failed. It is reported to Lambda as a batch item failure.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Malformed(#[from] ClassifyError),
    #[error("malformed record: {0} image is not a DynamoDB item: {1}")]
    Image(&'static str, String),
    #[error("malformed stamp: {0}")]
    Stamp(#[from] StampError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the home copy kept changing; gave up after {0} attempts")]
    Contended(u32),
    #[error("an earlier record of the same item failed; this one waits for it")]
    Blocked,
    #[error("the merge produced a change the rules forbid: {0}")]
    Edit(#[from] homeward::EditError),
    #[error("home: {0}")]
    Home(String),
    #[error("home assignment: {0}")]
    Assign(#[from] AssignError),
}

/// A record's sequence number and what became of it.
type RecordResult = (Option<String>, Result<Outcome, RecordError>);

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub class: &'static str,
    /// Whether the resolver wrote to the table.
    pub wrote: bool,
    /// Whether a new journal entry was written (not a redelivered one).
    pub journaled: bool,
}

/// Totals for one batch, logged once per invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub by_class: std::collections::BTreeMap<&'static str, usize>,
    pub writes: usize,
    pub journal_entries: usize,
    pub failures: usize,
}

/// The resolver of one Region, over a table store and a journal store.
pub struct Resolver<S, J> {
    pub config: Config,
    table: S,
    journal: Arc<J>,
    evacuations: Evacuations,
    /// The negotiated strategy's assignments (in the journal table).
    assignments: Option<Assignments<Arc<J>>>,
}

/// How many times a merge follows an item whose home moved on.
const MAX_HOPS: u32 = 3;

/// A foreign write that may move its item's home.
struct MoveAsk {
    /// The home the write was made against (the epoch fences it).
    seen: Option<Home>,
    /// The write's dot counter and time (counted once towards `after N`).
    counter: u64,
    time_ms: u64,
}

/// How many times a conditional write to the home copy is tried.
const MAX_ATTEMPTS: u32 = 8;
/// Time kept back from the Lambda deadline to report the batch.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1_500);

impl<S: Store, J: Store> Resolver<S, J> {
    pub fn new(config: Config, table: S, journal: J) -> Self {
        let journal = Arc::new(journal);
        let evacuations = Evacuations::new(config.evacuated.clone(), config.control_refresh);
        let assignments = match (&config.homes.source, &config.assignment_region) {
            (HomeSource::Negotiated, Some(region)) => Some(Assignments::new(
                journal.clone(),
                region.clone(),
                &config.table,
                config.control_refresh,
            )),
            _ => None,
        };
        Resolver {
            config,
            table,
            journal,
            evacuations,
            assignments,
        }
    }

    /// Whether this resolver moves homes: not for fixed homes (key prefix,
    /// table), nor negotiated ones (moved through their assignment by
    /// writers and the rehome function), nor with `REHOME=never`.
    fn moves_homes(&self) -> bool {
        let c = &self.config;
        c.rehome != Trigger::Never
            && c.homes.can_rehome()
            && self.assignments.is_none()
            && c.action == Action::Reconcile
    }

    /// Negotiated homes: a write stamped with an older epoch than the
    /// item's assignment was routed by a stale view; the assignment decides.
    async fn negotiated(
        &self,
        assignments: &Assignments<Arc<J>>,
        record: &StreamRecord,
        triaged: Triaged,
    ) -> Result<Triaged, RecordError> {
        let c = &self.config;
        // The stamp's home is in the header fields the partial image holds.
        let header = match &triaged.new {
            Some(_) => None,
            None => record
                .dynamodb
                .new_image
                .as_deref()
                .map(|raw| event::partial_image(raw, &[], &c.schema.stamp_attribute))
                .transpose()
                .map_err(|e| RecordError::Image("new", e.to_string()))?,
        };
        let image = triaged.new.as_ref().or(header.as_ref());
        let stamped = match image {
            Some(image) => c.homes.home_of(image).map_err(RecordError::Home)?,
            None => None,
        };
        let key = &record.dynamodb.keys;
        let mut assigned = assignments.lookup(key).await?;
        if let (Some(a), Some(s)) = (&assigned, &stamped) {
            if s.epoch > a.home.epoch {
                // The writer knows a newer assignment than our cache.
                assigned = assignments.fresh(key).await?;
            }
        }
        let home = match (assigned, stamped) {
            (Some(a), Some(s)) if s.epoch > a.home.epoch => Some(s),
            (Some(a), _) => Some(a.home),
            (None, s) => s,
        };
        match home {
            Some(h) if h.region != c.region => {
                // A foreign write needs its images whole.
                let (new, old) = match triaged.new {
                    Some(new) => (new, triaged.old),
                    None => (
                        full(record.dynamodb.new_image.as_deref(), "new")?.unwrap_or_default(),
                        full(record.dynamodb.old_image.as_deref(), "old")?,
                    ),
                };
                Ok(Triaged {
                    class: Class::Foreign { home: h.region },
                    new: Some(new),
                    old,
                })
            }
            _ => Ok(Triaged {
                class: Class::HomeWrite,
                ..triaged
            }),
        }
    }

    /// Processes a batch; the response lists every record that failed.
    pub async fn handle(
        &self,
        event: &StreamEvent,
        deadline: Instant,
    ) -> (DynamoDbEventResponse, Summary) {
        let mut groups: Vec<Vec<&StreamRecord>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for record in &event.records {
            let key = journal::key_text(&record.dynamodb.keys);
            let index = *by_key.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push(record);
        }

        let results: Vec<Vec<RecordResult>> = stream::iter(groups)
            .map(|group| self.process_item(group, deadline))
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;

        let mut summary = Summary::default();
        let mut response = DynamoDbEventResponse::default();
        for (sequence, result) in results.into_iter().flatten() {
            match result {
                Ok(outcome) => {
                    *summary.by_class.entry(outcome.class).or_default() += 1;
                    summary.writes += usize::from(outcome.wrote);
                    summary.journal_entries += usize::from(outcome.journaled);
                }
                Err(_) => {
                    summary.failures += 1;
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = sequence;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        tracing::info!(
            region = %self.config.region,
            records = event.records.len(),
            classes = ?summary.by_class,
            writes = summary.writes,
            journal_entries = summary.journal_entries,
            failures = summary.failures,
            "batch done"
        );
        (response, summary)
    }

    /// One item's records, in order; after a failure the rest are failed
    /// too, so Lambda redelivers them in order.
    async fn process_item(
        &self,
        records: Vec<&StreamRecord>,
        deadline: Instant,
    ) -> Vec<RecordResult> {
        let mut out = Vec::with_capacity(records.len());
        let mut failed = false;
        for record in records {
            let sequence = record.dynamodb.sequence_number.clone();
            if failed {
                out.push((sequence, Err(RecordError::Blocked)));
                continue;
            }
            let result = self.process_record(record, deadline).await;
            if let Err(e) = &result {
                failed = true;
                tracing::error!(
                    sequence = sequence.as_deref().unwrap_or("none"),
                    key = %journal::key_text(&record.dynamodb.keys),
                    event = %record.event_name,
                    error = %e,
                    "record failed"
                );
            }
            out.push((sequence, result));
        }
        out
    }

    /// Classifies one record and acts on it.
    pub async fn process_record(
        &self,
        record: &StreamRecord,
        deadline: Instant,
    ) -> Result<Outcome, RecordError> {
        let c = &self.config;
        let change = &record.dynamodb;
        let mut triaged = triage(c, record)?;
        if let (Some(assignments), Class::HomeWrite | Class::Foreign { .. }) =
            (&self.assignments, &triaged.class)
        {
            triaged = self.negotiated(assignments, record, triaged).await?;
        }
        let Triaged { class, new, old } = triaged;
        let name = class.name();
        let done = |wrote, journaled| Outcome {
            class: name,
            wrote,
            journaled,
        };
        let key = &change.keys;
        let sequence = change.sequence_number.as_deref().unwrap_or("none");
        match class {
            Class::TtlDelete | Class::Replicated | Class::Echo | Class::HomeWrite | Class::NoOp => {
                Ok(done(false, false))
            }
            Class::Unattributed { reason } => {
                tracing::warn!(key = %journal::key_text(key), %reason, "unattributed write");
                if !c.journal_unattributed {
                    return Ok(done(false, false));
                }
                let new = new.unwrap_or_default();
                let journaled = self
                    .journal(Entry {
                        identity: format!("seq#{sequence}"),
                        action: "counted",
                        versions: vec![("new", &new)],
                        reason: Some(reason),
                        ..self.entry(key, "unattributed", None)
                    })
                    .await?;
                Ok(done(false, journaled))
            }
            Class::HardDelete => {
                let old = old.unwrap_or_default();
                let journaled = self
                    .journal(Entry {
                        identity: format!("seq#{sequence}"),
                        action: "journaled",
                        versions: vec![("old", &old)],
                        reason: Some(
                            "whole-item delete outside the writer: last writer wins".into(),
                        ),
                        ..self.entry(key, "hard-delete", None)
                    })
                    .await?;
                Ok(done(false, journaled))
            }
            Class::Clobber { home } => {
                let (old, new) = (old.unwrap_or_default(), new.unwrap_or_default());
                let lost = c.schema.decode(&old)?;
                let winner = c.schema.decode(&new)?;
                let home = home.unwrap_or_else(|| c.region.clone());
                let merged = self
                    .merge_into_home(key, &home, &[&lost, &winner], false, None, None, deadline)
                    .await?;
                let journaled = self
                    .journal(Entry {
                        identity: format!("{}#{}", lost.header.dot(), winner.header.dot()),
                        action: if merged.wrote {
                            "merged"
                        } else {
                            "already-merged"
                        },
                        regions: vec![
                            lost.header.origin.to_string(),
                            winner.header.origin.to_string(),
                        ],
                        versions: vec![("old", &old), ("new", &new)],
                        merged_stamp: merged.stamp,
                        explanation: Some(&merged.explanation),
                        ..self.entry(key, "clobber", Some(&home))
                    })
                    .await?;
                Ok(done(merged.wrote, journaled))
            }
            Class::Foreign { home } => {
                let new = new.unwrap_or_default();
                let version = c.schema.decode(&new)?;
                // What this Region held before: likely the home copy too.
                let presumed = old.as_ref().and_then(|o| c.schema.decode(o).ok());
                let identity = version.header.dot().encode();
                let regions = vec![version.header.origin.to_string(), home.to_string()];
                let (action, merged) = match c.action {
                    Action::JournalOnly => ("journaled", None),
                    Action::Reconcile | Action::Reject => {
                        let reject = c.action == Action::Reject;
                        let ask = self.moves_homes().then(|| MoveAsk {
                            seen: c.homes.home_of_version(&version).ok().flatten(),
                            counter: version.header.tick.counter,
                            time_ms: version.header.time_ms,
                        });
                        let m = self
                            .merge_into_home(
                                key,
                                &home,
                                &[&version],
                                reject,
                                presumed,
                                ask,
                                deadline,
                            )
                            .await?;
                        let action = match (reject, m.wrote) {
                            (false, true) => "reconciled",
                            (false, false) => "already-merged",
                            (true, true) => "rejected",
                            (true, false) => "already-rejected",
                        };
                        (action, Some(m))
                    }
                };
                let wrote = merged.as_ref().is_some_and(|m| m.wrote);
                let mut journaled = false;
                if let Some((from, to, why)) = merged.as_ref().and_then(|m| m.moved.clone()) {
                    tracing::info!(key = %journal::key_text(key), from = %from.region, to = %to.region, epoch = to.epoch, why, "re-homed");
                    journaled |= self
                        .journal(Entry {
                            identity: version.header.dot().encode(),
                            action: "rehomed",
                            regions: vec![from.region.to_string(), to.region.to_string()],
                            versions: vec![("new", &new)],
                            merged_stamp: merged.as_ref().and_then(|m| m.stamp.clone()),
                            reason: Some(format!(
                                "home moved from {} (epoch {}) to {} (epoch {}): {why}",
                                from.region, from.epoch, to.region, to.epoch
                            )),
                            ..self.entry(key, "rehome", Some(&from.region))
                        })
                        .await?;
                }
                // A foreign write merged without a real conflict overwrote
                // nothing: it is counted and logged, not journaled.
                let conflict = merged.as_ref().is_none_or(|m| {
                    c.action != Action::Reconcile
                        || m.explanation.has_conflict()
                        || !m.explanation.disjoint_windows.is_empty()
                });
                tracing::info!(key = %journal::key_text(key), home = %home, action, conflict, "foreign write");
                if !conflict {
                    return Ok(done(wrote, journaled));
                }
                journaled |= self
                    .journal(Entry {
                        identity,
                        action,
                        regions,
                        versions: vec![("new", &new)],
                        merged_stamp: merged.as_ref().and_then(|m| m.stamp.clone()),
                        explanation: merged.as_ref().map(|m| &m.explanation),
                        ..self.entry(key, "foreign", Some(&home))
                    })
                    .await?;
                Ok(done(wrote, journaled))
            }
        }
    }

    fn entry<'a>(&'a self, key: &'a Item, kind: &'a str, home: Option<&'a Region>) -> Entry<'a> {
        Entry {
            table: &self.config.table,
            item_key: key,
            kind,
            identity: String::new(),
            action: "",
            detected_in: self.config.region.as_str(),
            home: home.map(Region::as_str),
            regions: vec![self.config.region.to_string()],
            versions: Vec::new(),
            merged_stamp: None,
            explanation: None,
            reason: None,
            now_ms: now_ms(),
            ttl_days: self.config.journal_ttl_days,
        }
    }

    /// Writes a journal entry once; `false` when it was already there.
    async fn journal(&self, entry: Entry<'_>) -> Result<bool, RecordError> {
        let item = entry.to_item();
        match self
            .journal
            .put(&self.config.region, &item, &PutCondition::NotExists)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Merges `incoming` into the current copy in `home` and writes the
    /// result there conditionally on the version read (retrying when it
    /// changed). With `revert`, the home's values are then written back
    /// over the merge, so the incoming edits are known but lose (`reject`).
    /// A home copy that says the item moved is followed to its new home.
    /// With `ask`, the write may move the item's home here ([`decide`]):
    /// in the same conditional write, at the home copy; or, when the home
    /// is evacuated, at this Region's copy, which takes over.
    #[allow(clippy::too_many_arguments)]
    async fn merge_into_home(
        &self,
        key: &Item,
        home: &Region,
        incoming: &[&Version],
        revert: bool,
        mut presumed: Option<Version>,
        ask: Option<MoveAsk>,
        deadline: Instant,
    ) -> Result<HomeMerge, RecordError> {
        let c = &self.config;
        let mut target = home.clone();
        // The newest home seen on the way (epochs only go up).
        let mut best: Option<Home> = None;
        let mut hops = 0;
        let mut attempt = 0;
        while attempt < MAX_ATTEMPTS {
            attempt += 1;
            let evacuated = if ask.is_some() {
                self.evacuations.current(&self.journal, &c.region).await
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
            let now = now_ms();
            let ctx = WriteContext {
                region: write_region.clone(),
                time_ms: now,
                nonce: rand::random(),
                by: WriterKind::Resolver,
            };
            // First try the version this Region held before the write (the
            // record's old image): when replication is caught up it is the
            // home copy, and the write's condition proves it, saving a
            // cross-Region read. Otherwise read the home copy.
            let guessed = presumed.take();
            let was_guess = guessed.is_some();
            let current = match guessed {
                Some(_) => None,
                None => {
                    self.retrying(deadline, || self.table.get(&write_region, key))
                        .await?
                }
            };
            let (base, condition) = match (guessed, &current) {
                (Some(guess), _) => {
                    let dot = guess.header.dot().encode();
                    (Some(guess), PutCondition::DotIs(dot))
                }
                (None, current) => match current {
                    None => (None, PutCondition::NotExists),
                    Some(item) if item.contains_key(&c.schema.stamp_attribute) => {
                        let base = c.schema.decode(item)?;
                        let dot = base.header.dot().encode();
                        (Some(base), PutCondition::DotIs(dot))
                    }
                    Some(item) => {
                        // A legacy copy without a stamp: adopt it as a write of
                        // the home, concurrent with everything incoming.
                        let (empty, draft) = adopt_unstamped(item, &ctx, &c.schema)?;
                        let adopted = apply(&empty, &draft, &ctx, &c.merger, &c.schema, None)?;
                        (Some(adopted), PutCondition::Unstamped)
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
            let mut explanation = Explanation::default();
            let mut merged: Option<Version> = base.clone();
            for version in incoming {
                merged = Some(match merged {
                    None => (*version).clone(),
                    Some(acc) => {
                        let m = c.merger.merge_into(acc, version);
                        explanation.attributes.extend(m.explanation.attributes);
                        explanation
                            .disjoint_windows
                            .extend(m.explanation.disjoint_windows);
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
                return Ok(HomeMerge {
                    wrote: false,
                    stamp: None,
                    explanation,
                    moved: None,
                });
            }
            let next = match (&base, revert) {
                (Some(base), true) => revert_to(base, &merged, &ctx, c)?,
                _ => with_home(merged, new_home, &ctx, c)?,
            };
            let item = c.schema.encode(&next);
            match self
                .retrying(deadline, || {
                    self.table.put(&write_region, &item, &condition)
                })
                .await
            {
                Ok(()) => {
                    return Ok(HomeMerge {
                        wrote: true,
                        stamp: item.get(&c.schema.stamp_attribute).cloned(),
                        explanation,
                        moved,
                    })
                }
                // A wrong guess is not contention: read the home copy at once.
                Err(RecordError::Store(StoreError::ConditionFailed)) if was_guess => {}
                Err(RecordError::Store(StoreError::ConditionFailed)) => {
                    tracing::debug!(attempt, home = %write_region, "home copy changed under the merge; retrying");
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(RecordError::Contended(MAX_ATTEMPTS))
    }

    /// Runs `call`, retrying retryable store errors (throttling, 5xx left
    /// over after the SDK's own retries) while the deadline allows.
    async fn retrying<T, F, Fut>(&self, deadline: Instant, mut call: F) -> Result<T, RecordError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut delay = Duration::from_millis(50);
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => {
                    if Instant::now() + delay + DEADLINE_MARGIN >= deadline {
                        tracing::warn!(error = %e, "retryable error but out of time");
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A classified record, with its images decoded whole when it needs action.
#[derive(Debug)]
pub struct Triaged {
    pub class: Class,
    pub new: Option<Item>,
    pub old: Option<Item>,
}

/// Classifies a record from its stamps and home attribute alone, and
/// decodes the whole images only when the record needs action. Pure.
///
/// # Errors
/// [`RecordError`] naming what is malformed.
pub fn triage(c: &Config, record: &StreamRecord) -> Result<Triaged, RecordError> {
    let kind = EventKind::parse(&record.event_name)?;
    let ttl = record.is_ttl_delete();
    let change = &record.dynamodb;
    let wanted: Vec<&str> = c.homes.attribute().into_iter().collect();
    let image = |raw: &Option<Box<serde_json::value::RawValue>>, which, whole: bool| {
        raw.as_deref()
            .map(|r| {
                if whole {
                    event::full_image(r)
                } else {
                    event::partial_image(r, &wanted, &c.schema.stamp_attribute)
                }
            })
            .transpose()
            .map_err(|e| RecordError::Image(which, e.to_string()))
    };
    let classify_with = |new: Option<&Item>, old: Option<&Item>| {
        classify(
            &c.region,
            kind,
            ttl,
            new,
            old,
            &c.schema.stamp_attribute,
            &c.homes,
        )
    };
    let (new, old) = (
        image(&change.new_image, "new", false)?,
        image(&change.old_image, "old", false)?,
    );
    let class = classify_with(new.as_ref(), old.as_ref())?;
    if matches!(
        class,
        Class::Replicated | Class::Echo | Class::HomeWrite | Class::TtlDelete
    ) {
        return Ok(Triaged {
            class,
            new: None,
            old: None,
        });
    }
    // This record needs action (or a closer look): decode it whole.
    let (new, old) = (
        image(&change.new_image, "new", true)?,
        image(&change.old_image, "old", true)?,
    );
    let class = if class == Class::NoOp {
        // Equal stamps: only the whole images tell a no-op from a write
        // that left a stale stamp.
        classify_with(new.as_ref(), old.as_ref())?
    } else {
        class
    };
    Ok(Triaged { class, new, old })
}

/// The result of a merge into the home copy.
struct HomeMerge {
    wrote: bool,
    stamp: Option<AttributeValue>,
    explanation: Explanation,
    /// The home it had, the home it has now, and why it moved.
    moved: Option<(Home, Home, String)>,
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
        return Ok(restamp(merged, ctx, &c.merger));
    }
    let mut draft = Draft::new(merged.values());
    if let Some((name, region)) = stale_mirror {
        draft.set(name, AttributeValue::S(region.to_string()));
    }
    Ok(apply(&merged, &draft, ctx, &c.merger, &c.schema, new_home)?)
}

/// A whole image of a record, decoded.
fn full(
    raw: Option<&serde_json::value::RawValue>,
    which: &'static str,
) -> Result<Option<Item>, RecordError> {
    raw.map(event::full_image)
        .transpose()
        .map_err(|e| RecordError::Image(which, e.to_string()))
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

/// A Lambda deadline (epoch ms) as an `Instant`.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let left = deadline_ms.saturating_sub(now_ms());
    Instant::now() + Duration::from_millis(left)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
