//! The rehome function: an operator's planned moves of item homes.
//!
//! Requests (JSON, one `op` each; keys in DynamoDB JSON):
//! - `{"op": "move", "key": {"pk": {"S": "user-42"}}, "to": "eu-west-1"}`
//! - `{"op": "move-prefix", "prefix": "user-", "to": "eu-west-1"}`
//! - `{"op": "evacuate", "region": "us-east-1", "to": "us-west-2"}`
//! - `{"op": "restore", "region": "us-east-1"}`
//! - `{"op": "report"}`
//!
//! Scans read this Region's copy, a page at a time, until the time left
//! runs short or `max_pages` is reached; the response's `next` is passed
//! back as `start` to resume. Every request is idempotent: moves skip items
//! already homed where they are going. A malformed request is refused
//! before anything is read or written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use homeward::control::{self, key_text};
use homeward::routing::Router;
use homeward::{Region, Store};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};

/// A request as it arrives; [`Request::parse`] checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    op: String,
    key: Option<HashMap<String, AttributeValue>>,
    prefix: Option<String>,
    region: Option<String>,
    to: Option<String>,
    start: Option<HashMap<String, AttributeValue>>,
    page_size: Option<usize>,
    max_pages: Option<usize>,
}

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Move { key: Item, to: Region },
    MovePrefix { prefix: String, to: Region },
    Evacuate { region: Region, to: Region },
    Restore { region: Region },
    Report,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub op: Op,
    pub start: Option<Item>,
    pub page_size: usize,
    pub max_pages: usize,
}

/// A request that cannot be carried out; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("bad request: {0}")]
    Bad(String),
    #[error("{0}")]
    Store(#[from] homeward::StoreError),
    #[error("{0}")]
    Write(#[from] homeward::WriteError),
}

impl Request {
    /// Checks a request.
    ///
    /// # Errors
    /// [`RequestError::Bad`] naming the field that is wrong or missing.
    pub fn parse(json: serde_json::Value) -> Result<Self, RequestError> {
        let bad = |m: String| RequestError::Bad(m);
        let raw: Raw = serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
        let region = |field: &str, value: Option<String>| -> Result<Region, RequestError> {
            let text = value.ok_or_else(|| bad(format!("`{}` needs `{field}`", raw.op)))?;
            Region::parse(&text).map_err(|e| bad(format!("`{field}`: {e}")))
        };
        let op = match raw.op.as_str() {
            "move" => Op::Move {
                key: Item::from(
                    raw.key
                        .clone()
                        .ok_or_else(|| bad("`move` needs `key`".into()))?,
                ),
                to: region("to", raw.to.clone())?,
            },
            "move-prefix" => {
                let prefix = raw
                    .prefix
                    .clone()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| bad("`move-prefix` needs a non-empty `prefix`".into()))?;
                Op::MovePrefix {
                    prefix,
                    to: region("to", raw.to.clone())?,
                }
            }
            "evacuate" => {
                let (from, to) = (
                    region("region", raw.region.clone())?,
                    region("to", raw.to.clone())?,
                );
                if from == to {
                    return Err(bad(format!("cannot evacuate {from} to itself")));
                }
                Op::Evacuate { region: from, to }
            }
            "restore" => Op::Restore {
                region: region("region", raw.region.clone())?,
            },
            "report" => Op::Report,
            other => {
                return Err(bad(format!(
                    "op `{other}` is not one of move, move-prefix, evacuate, restore, report"
                )))
            }
        };
        let page_size = raw.page_size.unwrap_or(100);
        if !(1..=1000).contains(&page_size) {
            return Err(bad(format!(
                "`page_size` {page_size} is not from 1 to 1000"
            )));
        }
        Ok(Request {
            op,
            start: raw.start.map(Item::from),
            page_size,
            max_pages: raw.max_pages.unwrap_or(usize::MAX),
        })
    }
}

/// What a request did; `next` resumes an unfinished scan.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Progress {
    pub op: String,
    pub scanned: usize,
    pub moved: usize,
    /// Items already homed where they were to go.
    pub already: usize,
    /// Items whose home cannot move (key-prefix or table homes), with why.
    pub fixed: usize,
    /// Items that failed, by key text, with the error (the first
    /// [`MAX_FAILED_LISTED`]); the others went on.
    pub failed: BTreeMap<String, String>,
    /// How many failed in all (the list above is bounded).
    pub failed_total: usize,
    /// Items per home Region (`report`; `none` for items without a home).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub homes: BTreeMap<String, usize>,
    /// The evacuated Regions after the request, per Region whose control
    /// item was written (`evacuate`, `restore`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub evacuated: BTreeMap<String, Vec<String>>,
    pub next: Option<serde_json::Value>,
    pub done: bool,
}

/// How many failures a report lists by key (the answer stays small).
pub const MAX_FAILED_LISTED: usize = 100;

impl Progress {
    /// Records a failure, listing it while the list has room.
    fn fail(&mut self, what: String, error: String) {
        self.failed_total += 1;
        if self.failed.len() < MAX_FAILED_LISTED {
            self.failed.insert(what, error);
        }
    }
}

/// Records what a request did as metrics (EMF, `{Table, Region}`).
pub fn record_metrics(progress: &Progress) {
    use metrics::counter;
    counter!("RehomeScanned").increment(progress.scanned as u64);
    counter!("RehomeMoved").increment(progress.moved as u64);
    counter!("RehomeAlready").increment(progress.already as u64);
    counter!("RehomeFixed").increment(progress.fixed as u64);
    counter!("RehomeFailed").increment(progress.failed_total as u64);
}

/// The rehome function of one Region.
pub struct Operator<S, C> {
    pub router: Router<S, C>,
    /// The control table (journal), where the evacuated Regions are kept.
    pub control: C,
    /// Every Region of the global table (`REGIONS`).
    pub regions: Vec<Region>,
}

/// Time kept back from the deadline to answer.
const MARGIN: Duration = Duration::from_secs(3);

impl<S: Store, C: Store> Operator<S, C> {
    /// Carries out `request` until done or until `deadline` comes near.
    ///
    /// # Errors
    /// A store failure that stops the whole request (one item failing only
    /// lands in [`Progress::failed`]).
    pub async fn run(&self, request: Request, deadline: Instant) -> Result<Progress, RequestError> {
        let mut progress = Progress::default();
        let (scan_for, to) = match &request.op {
            Op::Move { key, to } => {
                progress.op = "move".into();
                // Boxed: a move is a deep future (router, writer, store).
                let moved = Box::pin(self.router.move_home(key, to)).await?;
                progress.scanned = 1;
                if moved.moved {
                    progress.moved = 1;
                } else {
                    progress.already = 1;
                }
                progress.done = true;
                return Ok(progress);
            }
            Op::Restore { region } => {
                progress.op = "restore".into();
                self.set_evacuated(region, false, &mut progress).await?;
                progress.done = true;
                return Ok(progress);
            }
            Op::Evacuate { region, to } => {
                progress.op = "evacuate".into();
                self.set_evacuated(region, true, &mut progress).await?;
                (Some(Select::HomedIn(region.clone())), Some(to.clone()))
            }
            Op::MovePrefix { prefix, to } => {
                progress.op = "move-prefix".into();
                (Some(Select::Prefix(prefix.clone())), Some(to.clone()))
            }
            Op::Report => {
                progress.op = "report".into();
                (None, None)
            }
        };
        let schema = self.router.writer.schema().clone();
        let homes = self.router.homes().clone();
        let mut start = request.start.clone();
        let mut pages = 0;
        loop {
            let page = self
                .router
                .writer
                .store()
                .scan(&self.router.local, start.as_ref(), request.page_size)
                .await?;
            for item in &page.items {
                progress.scanned += 1;
                let key = match schema.key_of(item) {
                    Ok(k) => Item::from(k.into_iter().collect::<HashMap<_, _>>()),
                    Err(e) => {
                        // No key to name it by: its place in the scan.
                        let at = format!("item {} of the scan", progress.scanned);
                        progress.fail(at, e.to_string());
                        continue;
                    }
                };
                let home = match homes.home_of(item) {
                    Ok(h) => h,
                    Err(e) => {
                        progress.fail(key_text(&key), e);
                        continue;
                    }
                };
                let (Some(select), Some(to)) = (&scan_for, &to) else {
                    let name = home.map_or("none".to_string(), |h| h.region.to_string());
                    *progress.homes.entry(name).or_default() += 1;
                    continue;
                };
                let Some(home) = home.filter(|h| select.matches(&key, h, &schema.partition_key))
                else {
                    continue;
                };
                if &home.region == to {
                    progress.already += 1;
                    continue;
                }
                if homes.fixed_reason().is_some() {
                    progress.fixed += 1;
                    continue;
                }
                match Box::pin(self.router.move_item(&key, &home, to)).await {
                    Ok(r) if r.moved => progress.moved += 1,
                    Ok(_) => progress.already += 1,
                    Err(e) => {
                        progress.fail(key_text(&key), e.to_string());
                    }
                }
            }
            pages += 1;
            start = page.next;
            let out_of_time = Instant::now() + MARGIN >= deadline;
            if start.is_none() || pages >= request.max_pages || out_of_time {
                break;
            }
        }
        progress.done = start.is_none();
        progress.next = start
            .map(|k| serde_json::to_value(HashMap::<String, AttributeValue>::from(k)))
            .transpose()
            .map_err(|e| RequestError::Bad(e.to_string()))?;
        Ok(progress)
    }

    /// Adds `region` to (or removes it from) the evacuated list of every
    /// other Region's control item. A Region that cannot be reached (the
    /// evacuated one, likely) is reported, not fatal, unless none can.
    async fn set_evacuated(
        &self,
        region: &Region,
        evacuate: bool,
        progress: &mut Progress,
    ) -> Result<(), RequestError> {
        let mut last_error = None;
        for r in &self.regions {
            if evacuate && r == region {
                continue;
            }
            let result = async {
                let mut list = control::read_evacuated(&self.control, r).await?;
                let changed = if evacuate {
                    list.insert(region.clone())
                } else {
                    list.remove(region)
                };
                if changed {
                    control::write_evacuated(&self.control, r, &list).await?;
                }
                Ok::<BTreeSet<Region>, homeward::StoreError>(list)
            }
            .await;
            match result {
                Ok(list) => {
                    progress.evacuated.insert(
                        r.to_string(),
                        list.iter().map(ToString::to_string).collect(),
                    );
                }
                Err(e) => {
                    progress.fail(format!("control item in {r}"), e.to_string());
                    last_error = Some(e);
                }
            }
        }
        match (progress.evacuated.is_empty(), last_error) {
            (true, Some(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Which scanned items a move applies to.
enum Select {
    HomedIn(Region),
    Prefix(String),
}

impl Select {
    fn matches(&self, key: &Item, home: &homeward::Home, partition_key: &str) -> bool {
        match self {
            Select::HomedIn(region) => &home.region == region,
            Select::Prefix(prefix) => match key.get(partition_key) {
                Some(AttributeValue::S(s)) => s.starts_with(prefix.as_str()),
                Some(AttributeValue::N(n)) => n.starts_with(prefix.as_str()),
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: serde_json::Value) -> String {
        Request::parse(v).unwrap_err().to_string()
    }

    #[test]
    fn requests_parse_and_errors_name_the_field() {
        let r = Request::parse(json!({"op": "evacuate", "region": "us-east-1", "to": "us-west-2"}))
            .unwrap();
        assert!(matches!(r.op, Op::Evacuate { .. }));
        assert_eq!(r.page_size, 100);
        assert!(err(json!({"op": "evacuate", "region": "us-east-1"})).contains("needs `to`"));
        assert!(
            err(json!({"op": "evacuate", "region": "us-east-1", "to": "us-east-1"}))
                .contains("to itself")
        );
        assert!(err(json!({"op": "move", "to": "eu-west-1"})).contains("needs `key`"));
        assert!(
            err(json!({"op": "move", "key": {"pk": {"S": "a"}}, "to": "Mars"})).contains("`to`")
        );
        assert!(err(json!({"op": "teleport"})).contains("`teleport` is not one of"));
        assert!(err(json!({"op": "report", "regoin": "x"})).contains("unknown field `regoin`"));
        assert!(
            err(json!({"op": "move-prefix", "prefix": "", "to": "eu-west-1"}))
                .contains("non-empty")
        );
        assert!(err(json!({"op": "report", "page_size": 0})).contains("page_size"));
        assert!(err(json!([1, 2])).contains("bad request"));
    }

    #[test]
    fn the_sample_requests_parse_and_the_malformed_one_is_refused() {
        let sample = |text: &str| Request::parse(serde_json::from_str(text).unwrap());
        for text in [
            include_str!("../../../events/rehome-move.json"),
            include_str!("../../../events/rehome-move-prefix.json"),
            include_str!("../../../events/rehome-evacuate.json"),
            include_str!("../../../events/rehome-restore.json"),
            include_str!("../../../events/rehome-report.json"),
        ] {
            sample(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let err = sample(include_str!("../../../events/rehome-malformed.json")).unwrap_err();
        assert!(err.to_string().contains("unknown field `too`"), "{err}");
    }
}
