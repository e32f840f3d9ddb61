//! The resolver: one Region's DynamoDB stream in, merges into home copies
//! and journal entries out.
//!
//! A batch is split by item; each item's records run in stream order, and
//! different items run concurrently (up to `CONCURRENCY`). A record that
//! fails reports its sequence number (and the item's later records, which
//! must not be applied ahead of it); the rest of the batch goes on.

pub mod calls;
pub mod config;
pub mod error;
pub mod event;
pub mod fuzzing;
mod home_merge;
pub mod journal;
pub mod lag;
pub mod metrics;
mod plain;
pub mod sdk;
mod triage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures_util::stream::{self, StreamExt};
use homeward::classify::Class;
use homeward::control::{Assignments, Evacuations};
use homeward::home::{HomeSource, Trigger};
use homeward::{PutCondition, Region, Store, StoreError};
use serde_dynamo::Item;

use calls::{Budget, CallStats};
pub use config::{Action, Config};
pub use error::RecordError;
pub use event::{StreamEvent, StreamRecord};
use home_merge::{JournalPlan, Kept, MoveAsk, When};
use journal::Entry;
use triage::{full, picked};
pub use triage::{triage, triage_agrees, version_of, Triaged};

/// A record's sequence number and what became of it.
type RecordResult = (Option<String>, Result<Outcome, RecordError>);

/// What happened to one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub class: &'static str,
    /// Whether the resolver wrote to the table.
    pub wrote: bool,
    /// Whether a new journal entry was written (not a redelivered one).
    pub journaled: bool,
    /// The Region a foreign write was made in.
    pub origin: Option<Region>,
    /// The rules that decided concurrent edits in the merge written.
    pub rules: Vec<String>,
    /// Whether the merge written moved the item's home.
    pub rehomed: bool,
    /// A copy replication brought here, and when it arrived (the stream's
    /// whole seconds): a replication lag sample.
    pub copy: Option<(lag::Written, u64)>,
}

/// Totals for one batch: logged once per invocation, and the functions'
/// metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub by_class: BTreeMap<&'static str, usize>,
    /// Foreign writes by the Region that made them.
    pub foreign_by_origin: BTreeMap<String, usize>,
    /// Concurrent edits decided, by rule (one per attribute and merge).
    pub conflicts_by_rule: BTreeMap<String, usize>,
    pub writes: usize,
    pub rehomes: usize,
    pub journal_entries: usize,
    pub failures: usize,
    /// Store calls retried after a transient error; of those, throttled
    /// and timed out.
    pub retries: u64,
    pub throttles: u64,
    pub timeouts: u64,
    pub duration: Duration,
    /// Replication lag into this Region, per origin Region, from the
    /// replicated records of the batch.
    pub lag: BTreeMap<String, lag::Lag>,
}

/// The resolver of one Region, over a table store and a journal store.
pub struct Resolver<S, J> {
    pub config: Config,
    table: S,
    journal: Arc<J>,
    evacuations: Evacuations,
    /// The negotiated strategy's assignments (this Region's replica of
    /// their global table).
    assignments: Option<Assignments<Arc<J>>>,
}

impl<S: Store, J: Store> Resolver<S, J> {
    pub fn new(config: Config, table: S, journal: J) -> Self {
        let journal = Arc::new(journal);
        let evacuations = Evacuations::new(config.evacuated.clone(), config.control_refresh);
        Resolver {
            config,
            table,
            journal,
            evacuations,
            assignments: None,
        }
    }

    /// Negotiated homes: reads the assignments from `store`, the
    /// assignments' global table (`ASSIGNMENTS_TABLE`), in this Region's
    /// replica. Other strategies ignore it.
    pub fn with_assignments(mut self, store: J) -> Self {
        if self.config.homes.source == HomeSource::Negotiated {
            self.assignments = Some(Assignments::new(
                Arc::new(store),
                self.config.region.clone(),
                &self.config.table,
                self.config.control_refresh,
            ));
        }
        self
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
        record: &StreamRecord<'_>,
        triaged: Triaged,
        budget: Budget<'_>,
    ) -> Result<Triaged, RecordError> {
        let c = &self.config;
        // The stamp's home is in the header fields the pass picked.
        let header = match &triaged.new {
            Some(_) => None,
            None => picked(c, record.dynamodb.new_image.as_ref(), "new")?,
        };
        let image = triaged.new.as_ref().or(header.as_ref());
        let stamped = match image {
            Some(image) => c.homes.home_of(image).map_err(RecordError::Home)?,
            None => None,
        };
        let key = &record.dynamodb.keys;
        let at = &c.region;
        let mut assigned = budget.bounded(at, assignments.lookup(key)).await?;
        if let (Some(a), Some(s)) = (&assigned, &stamped) {
            if s.epoch > a.home.epoch {
                // The writer knows a newer assignment than our cache.
                assigned = budget.bounded(at, assignments.fresh(key)).await?;
            }
        }
        let home = match (assigned, stamped) {
            (Some(a), Some(s)) if s.epoch > a.home.epoch => Some(s),
            (Some(a), _) => Some(a.home),
            (None, s) => s,
        };
        match home {
            // A foreign write's versions are read from its images.
            Some(h) if h.region != c.region => Ok(Triaged {
                class: Class::Foreign { home: h.region },
                new: None,
                old: None,
                copy: None,
            }),
            _ => Ok(Triaged {
                class: Class::HomeWrite,
                ..triaged
            }),
        }
    }

    /// Processes a batch; the response lists every record that failed.
    /// It answers before `deadline` (less a margin) whatever the store does.
    pub async fn handle(
        &self,
        event: &StreamEvent<'_>,
        deadline: Instant,
    ) -> (DynamoDbEventResponse, Summary) {
        let started = Instant::now();
        let calls = CallStats::default();
        let budget = Budget::new(deadline, &calls);
        let mut groups: Vec<Vec<&StreamRecord>> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for record in &event.records {
            let key = journal::key_id(&record.dynamodb.keys);
            let index = *by_key.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push(record);
        }

        let results: Vec<Vec<RecordResult>> = stream::iter(groups)
            .map(|group| self.process_item(group, budget))
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;

        let mut summary = Summary {
            records: event.records.len(),
            ..Summary::default()
        };
        // What replication brought here: the lag's samples.
        let copies = results.iter().flatten().filter_map(|(_, r)| match r {
            Ok(Outcome {
                copy: Some((written, arrived)),
                ..
            }) => Some((written, *arrived)),
            _ => None,
        });
        summary.lag = lag::measure(copies, &self.config.region);
        let mut response = DynamoDbEventResponse::default();
        for (sequence, result) in results.into_iter().flatten() {
            match result {
                Ok(outcome) => {
                    *summary.by_class.entry(outcome.class).or_default() += 1;
                    summary.writes += usize::from(outcome.wrote);
                    summary.journal_entries += usize::from(outcome.journaled);
                    summary.rehomes += usize::from(outcome.rehomed);
                    if let Some(origin) = outcome.origin {
                        *summary
                            .foreign_by_origin
                            .entry(origin.to_string())
                            .or_default() += 1;
                    }
                    for rule in outcome.rules {
                        *summary.conflicts_by_rule.entry(rule).or_default() += 1;
                    }
                }
                Err(_) => {
                    summary.failures += 1;
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = sequence;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        (summary.retries, summary.throttles, summary.timeouts) = calls.snapshot();
        summary.duration = started.elapsed();
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

    /// One item's records, in order. A record that fails transiently is
    /// reported with the item's later records (Lambda redelivers them in
    /// order); one that fails permanently is quarantined and the item's
    /// later records go on.
    async fn process_item(
        &self,
        records: Vec<&StreamRecord<'_>>,
        budget: Budget<'_>,
    ) -> Vec<RecordResult> {
        let mut out = Vec::with_capacity(records.len());
        let mut failed = false;
        for record in records {
            let sequence = record.dynamodb.sequence_number.clone();
            if failed {
                out.push((sequence, Err(RecordError::Blocked)));
                continue;
            }
            let result = if budget.can_start() {
                Box::pin(self.process_record(record, budget)).await
            } else {
                Err(RecordError::OutOfTime)
            };
            let result = match result {
                Err(e) if e.is_permanent() => self.quarantine(record, &e, budget).await,
                other => other,
            };
            if let Err(e) = &result {
                failed = true;
                tracing::error!(
                    sequence = sequence.as_deref().unwrap_or("none"),
                    key = %self.log_key(&record.dynamodb.keys),
                    event = %record.event_name,
                    error = %e,
                    "record failed; Lambda will deliver it again"
                );
            }
            out.push((sequence, result));
        }
        out
    }

    /// A record that can never succeed: journaled with both images (as
    /// items, or as the raw text the stream gave) and the reason, then
    /// acknowledged, so it neither blocks the shard nor is lost.
    async fn quarantine(
        &self,
        record: &StreamRecord<'_>,
        error: &RecordError,
        budget: Budget<'_>,
    ) -> Result<Outcome, RecordError> {
        let change = &record.dynamodb;
        let sequence = change.sequence_number.as_deref().unwrap_or("none");
        fn decoded<'i>(image: Option<&'i event::Image>) -> Option<Result<Item, &'i str>> {
            image.map(|i| i.whole().map_err(|_| i.text()))
        }
        let (new, old) = (
            decoded(change.new_image.as_ref()),
            decoded(change.old_image.as_ref()),
        );
        let mut versions = Vec::new();
        let mut raw_images = Vec::new();
        for (name, image) in [("old", &old), ("new", &new)] {
            match image {
                Some(Ok(item)) => versions.push((name, item)),
                Some(Err(text)) => raw_images.push((name, *text)),
                None => {}
            }
        }
        let entry = Entry {
            identity: format!("seq#{sequence}"),
            action: "quarantined",
            versions,
            raw_images,
            reason: Some(error.to_string()),
            ..self.entry(&change.keys, "quarantine", None)
        };
        self.journal_with(entry, budget).await?;
        tracing::warn!(
            sequence,
            key = %self.log_key(&change.keys),
            error = %error,
            "record quarantined in the journal"
        );
        Ok(Outcome {
            class: "quarantined",
            journaled: true,
            ..Outcome::default()
        })
    }

    /// Classifies one record and acts on it.
    ///
    /// # Errors
    /// [`RecordError`]; [`RecordError::is_permanent`] says whether another
    /// delivery could succeed.
    async fn process_record(
        &self,
        record: &StreamRecord<'_>,
        budget: Budget<'_>,
    ) -> Result<Outcome, RecordError> {
        let c = &self.config;
        let change = &record.dynamodb;
        let mut triaged = triage(c, record)?;
        if let (Some(assignments), Class::HomeWrite | Class::Foreign { .. }) =
            (&self.assignments, &triaged.class)
        {
            triaged = self
                .negotiated(assignments, record, triaged, budget)
                .await?;
        }
        let Triaged {
            class,
            new,
            old,
            copy,
        } = triaged;
        let name = class.name();
        let done = |wrote, journaled| Outcome {
            class: name,
            wrote,
            journaled,
            ..Outcome::default()
        };
        let key = &change.keys;
        let sequence = change.sequence_number.as_deref().unwrap_or("none");
        match class {
            Class::Replicated | Class::Echo => Ok(Outcome {
                copy: copy.zip(lag::arrival(change.approximate_creation_date_time)),
                ..done(false, false)
            }),
            Class::TtlDelete | Class::HomeWrite | Class::NoOp => Ok(done(false, false)),
            Class::Unattributed { reason } => {
                self.unattributed(key, sequence, new, old, reason, budget)
                    .await
            }
            Class::HardDelete => {
                let old = old.unwrap_or_default();
                let journaled = self
                    .journal_with(
                        Entry {
                            identity: format!("seq#{sequence}"),
                            action: "journaled",
                            versions: vec![("old", &old)],
                            reason: Some(
                                "whole-item delete outside the writer: last writer wins".into(),
                            ),
                            ..self.entry(key, "hard-delete", None)
                        },
                        budget,
                    )
                    .await?;
                Ok(done(false, journaled))
            }
            Class::Clobber { home } => {
                let (old, new) = (old.unwrap_or_default(), new.unwrap_or_default());
                // Either image may hold a plain writer's edits: taken in.
                let lost = self.adopted(&old)?;
                let winner = self.adopted(&new)?;
                let plan = JournalPlan {
                    kind: "clobber",
                    identity: format!("{}#{}", lost.header.dot(), winner.header.dot()),
                    regions: vec![
                        lost.header.origin.to_string(),
                        winner.header.origin.to_string(),
                    ],
                    versions: Kept::Items(vec![("old", &old), ("new", &new)]),
                    home: home.unwrap_or_else(|| c.region.clone()),
                    when: When::Always,
                    actions: ("merged", "already-merged"),
                    move_identity: None,
                    reason: None,
                };
                // Boxed: the merge's future is large, and deep in a batch.
                let merged = Box::pin(self.merge_into_home(
                    key,
                    &[&lost, &winner],
                    false,
                    None,
                    None,
                    &plan,
                    budget,
                ))
                .await?;
                Ok(Outcome {
                    rules: merged.rules,
                    ..done(merged.wrote, merged.journaled)
                })
            }
            Class::Foreign { home } => {
                // Its images are read as versions, and whole (as items)
                // only when a journal entry keeps them.
                let (new_image, old_image) = (change.new_image.as_ref(), change.old_image.as_ref());
                let version = match version_of(c, new_image, "new")? {
                    Some(version) => version,
                    None => self.adopted(&Item::default())?,
                };
                let identity = version.header.dot().encode();
                let regions = vec![version.header.origin.to_string(), home.to_string()];
                if c.action == Action::JournalOnly {
                    let new = full(new_image, "new")?.unwrap_or_default();
                    let journaled = self
                        .journal_with(
                            Entry {
                                identity,
                                action: "journaled",
                                regions,
                                versions: vec![("new", &new)],
                                ..self.entry(key, "foreign", Some(&home))
                            },
                            budget,
                        )
                        .await?;
                    tracing::info!(key = %self.log_key(key), home = %home, action = "journaled", "foreign write");
                    return Ok(Outcome {
                        origin: Some(version.header.origin.clone()),
                        ..done(false, journaled)
                    });
                }
                // What this Region held before: likely the home copy too.
                let presumed = version_of(c, old_image, "old").ok().flatten();
                let reject = c.action == Action::Reject;
                let ask = self.moves_homes().then(|| MoveAsk {
                    seen: c.homes.home_of_version(&version).ok().flatten(),
                    counter: version.header.tick.counter,
                    time_ms: version.header.time_ms,
                });
                // A foreign write merged without a real conflict overwrote
                // nothing: it is counted and logged, not journaled.
                let plan = JournalPlan {
                    kind: "foreign",
                    move_identity: Some(identity.clone()),
                    reason: None,
                    identity,
                    regions,
                    versions: Kept::images(new_image.map(|image| ("new", image))),
                    home: home.clone(),
                    when: if reject {
                        When::Always
                    } else {
                        When::OnConflict
                    },
                    actions: if reject {
                        ("rejected", "already-rejected")
                    } else {
                        ("reconciled", "already-merged")
                    },
                };
                let merged = Box::pin(self.merge_into_home(
                    key,
                    &[&version],
                    reject,
                    presumed,
                    ask,
                    &plan,
                    budget,
                ))
                .await?;
                tracing::info!(key = %self.log_key(key), home = %home, wrote = merged.wrote, journaled = merged.journaled, "foreign write");
                Ok(Outcome {
                    origin: Some(version.header.origin.clone()),
                    rules: merged.rules,
                    rehomed: merged.rehomed,
                    ..done(merged.wrote, merged.journaled)
                })
            }
        }
    }

    /// An image as a version, with what plain writers changed in it taken
    /// in ([`homeward::adopt`]).
    fn adopted(&self, item: &Item) -> Result<homeward::Version, RecordError> {
        let c = &self.config;
        Ok(homeward::adopt::adopt(&c.schema, &c.merger.rules, item, None)?.version)
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
            raw_images: Vec::new(),
            merged_stamp: None,
            extra: Vec::new(),
            explanation: None,
            reason: None,
            now_ms: now_ms(),
            ttl_days: self.config.journal_ttl_days,
        }
    }

    /// Writes a journal entry once, retrying transient errors within the
    /// budget; `false` when it was already there (a redelivery, or a put
    /// that timed out after it took effect).
    async fn journal_with(
        &self,
        entry: Entry<'_>,
        budget: Budget<'_>,
    ) -> Result<bool, RecordError> {
        let item = entry.to_item();
        let region = &self.config.region;
        match budget
            .retrying(region, || {
                self.journal.put(region, &item, &PutCondition::NotExists)
            })
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a journal entry (a re-home's outcome, once known).
    async fn journal_replace(
        &self,
        entry: Entry<'_>,
        budget: Budget<'_>,
    ) -> Result<(), RecordError> {
        let item = entry.to_item();
        let region = &self.config.region;
        budget
            .retrying(region, || {
                self.journal.put(region, &item, &PutCondition::Always)
            })
            .await?;
        Ok(())
    }

    /// How a log line names an item: a short hash of its key, or the key
    /// itself with `LOG_KEYS=true`.
    fn log_key(&self, key: &Item) -> String {
        error::key_for_log(key, self.config.log_keys)
    }
}

/// A Lambda deadline (epoch ms) as an `Instant`. A value too small to be
/// a date (before 2001) is read as the time left, in ms: local runtime
/// emulators (cargo-lambda's sends its timeout, 600,000) do that.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    const YEAR_2001_MS: u64 = 978_307_200_000;
    let left = if deadline_ms < YEAR_2001_MS {
        deadline_ms
    } else {
        deadline_ms.saturating_sub(now_ms())
    };
    Instant::now() + Duration::from_millis(left)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
