//! Replication lag per Region pair, from the records that replication
//! brought here: the stream's `ApproximateCreationDateTime` (when the copy
//! was applied in this Region, truncated to the second) less the stamp's
//! `t` (when the write was made, by the writer's clock in its Region).
//!
//! Lag is reported in whole seconds. The stream's time is truncated to the
//! second, so a copy's true arrival lies somewhere in that second: each
//! sample is read at the middle of it (±0.5 s). A writer's clock that runs
//! ahead makes the lag read lower (never below 0). Pure: no I/O.

use std::collections::BTreeMap;

use homeward::Region;
use serde_dynamo::{AttributeValue, Item};

/// One origin Region's lag into this Region, over one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lag {
    pub samples: usize,
    /// Seconds; nearest-rank percentiles.
    pub p50: u64,
    pub p90: u64,
    pub max: u64,
    /// The replication frontier: the newest origin write time (ms) seen
    /// here. Everything that Region wrote before it has arrived or is
    /// about to (copies of one item arrive in order; items independently).
    pub frontier_ms: u64,
}

/// Where and when a record that replication brought here was written: the
/// stamp's `o` and `t`, read by triage from the header it reads anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub origin: String,
    pub time_ms: u64,
}

impl Written {
    /// From a (partial) image's stamp; `None` without an origin and a time.
    pub fn of(image: &Item, stamp_attribute: &str) -> Option<Self> {
        let Some(AttributeValue::M(stamp)) = image.get(stamp_attribute) else {
            return None;
        };
        match (stamp.get("o"), stamp.get("t")) {
            (Some(AttributeValue::S(origin)), Some(AttributeValue::N(t))) => {
                Self::from_text(origin, t)
            }
            _ => None,
        }
    }

    /// From the stamp's `o` (a string) and `t` (a number's text).
    pub fn from_text(origin: &str, time_ms: &str) -> Option<Self> {
        Some(Written {
            origin: origin.to_owned(),
            time_ms: time_ms.parse().ok()?,
        })
    }
}

/// The stream's time of arrival, whole seconds (`None`: unusable).
pub fn arrival(approximate_creation_date_time: Option<f64>) -> Option<u64> {
    approximate_creation_date_time
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| t.trunc() as u64)
}

/// Per origin Region, the lag into `local` of copies written at `.0` and
/// arrived here at `.1` (the stream's time, whole seconds). Copies made
/// here are not samples.
pub fn measure<'a>(
    copies: impl IntoIterator<Item = (&'a Written, u64)>,
    local: &Region,
) -> BTreeMap<String, Lag> {
    let mut samples: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
    for (written, arrived) in copies {
        if written.origin == local.as_str() {
            continue;
        }
        let arrived_ms = arrived.saturating_mul(1000);
        let lag_s = (arrived_ms.saturating_sub(written.time_ms) + 500) / 1000;
        let (lags, frontier) = samples.entry(written.origin.clone()).or_default();
        lags.push(lag_s);
        *frontier = (*frontier).max(written.time_ms);
    }
    samples
        .into_iter()
        .map(|(origin, (mut lags, frontier_ms))| {
            lags.sort_unstable();
            let rank =
                |q: f64| lags[((q * lags.len() as f64).ceil() as usize).clamp(1, lags.len()) - 1];
            let lag = Lag {
                samples: lags.len(),
                p50: rank(0.5),
                p90: rank(0.9),
                max: *lags.last().unwrap_or(&0),
                frontier_ms,
            };
            (origin, lag)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(origin: &str, time_ms: u64) -> Written {
        Written {
            origin: origin.into(),
            time_ms,
        }
    }

    #[test]
    fn lag_per_origin_in_whole_seconds_with_percentiles_and_frontier() {
        let local = Region::parse("eu-west-1").expect("a Region");
        let mut copies: Vec<(Written, u64)> = (0..10u64)
            .map(|i| {
                let arrived = 1_000 + i + 1 + i / 9 * 5;
                (written("us-east-1", 1_000_000 + i * 1000), arrived)
            })
            .collect();
        copies.push((written("us-west-2", 1_000_500), 1_003));
        // Written here: not a sample.
        copies.push((written("eu-west-1", 1_000_000), 1_100));
        let lags = measure(copies.iter().map(|(w, a)| (w, *a)), &local);
        assert_eq!(lags.len(), 2);
        let east = &lags["us-east-1"];
        // Nine copies 1 s behind their write, the last one 6 s.
        assert_eq!((east.samples, east.p50, east.p90, east.max), (10, 1, 1, 6));
        assert_eq!(east.frontier_ms, 1_009_000);
        // Arrived in the second from 1,003,000 ms, written at 1,000,500:
        // between 2.5 and 3.5 s, read as 3.
        assert_eq!(lags["us-west-2"].p90, 3);
    }

    #[test]
    fn a_writer_clock_ahead_reads_zero_not_negative() {
        let local = Region::parse("eu-west-1").expect("a Region");
        let ahead = written("us-east-1", 2_000_000);
        assert_eq!(measure([(&ahead, 1_000)], &local)["us-east-1"].max, 0);
    }

    #[test]
    fn the_header_gives_origin_and_time() {
        let image: Item = serde_json::from_value(serde_json::json!({
            "pk": {"S": "k"},
            "_hw": {"M": {"o": {"S": "us-east-1"}, "t": {"N": "1764000000123"}}}
        }))
        .expect("an item");
        assert_eq!(
            Written::of(&image, "_hw"),
            Some(written("us-east-1", 1_764_000_000_123))
        );
        assert_eq!(Written::of(&image, "other"), None);
        assert_eq!(arrival(Some(1_764_000_000.9)), Some(1_764_000_000));
        assert_eq!(arrival(Some(f64::NAN)), None);
    }
}
