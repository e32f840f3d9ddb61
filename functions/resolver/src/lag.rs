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
use serde_dynamo::AttributeValue;

use crate::event::{self, StreamEvent};

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

/// Per origin Region, the lag into `local` of the records of `event` that
/// `replicated` says replication brought (the resolver's classification:
/// a plain write under another Region's stale stamp is no sample). Records
/// made here, without a stamp, or without a time are not samples.
pub fn measure(
    event: &StreamEvent,
    local: &Region,
    stamp_attribute: &str,
    replicated: impl Fn(&crate::StreamRecord) -> bool,
) -> BTreeMap<String, Lag> {
    let mut samples: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
    for record in event.records.iter().filter(|r| replicated(r)) {
        let change = &record.dynamodb;
        let (Some(raw), Some(arrived)) = (&change.new_image, change.approximate_creation_date_time)
        else {
            continue;
        };
        let Ok(image) = event::partial_image(raw, &[], stamp_attribute) else {
            continue;
        };
        let Some(AttributeValue::M(stamp)) = image.get(stamp_attribute) else {
            continue;
        };
        let (Some(AttributeValue::S(origin)), Some(AttributeValue::N(t))) =
            (stamp.get("o"), stamp.get("t"))
        else {
            continue;
        };
        let Ok(written_ms) = t.parse::<u64>() else {
            continue;
        };
        if origin == local.as_str() || !arrived.is_finite() || arrived < 0.0 {
            continue;
        }
        let arrived_ms = (arrived.trunc() as u64).saturating_mul(1000);
        let lag_s = (arrived_ms.saturating_sub(written_ms) + 500) / 1000;
        let (lags, frontier) = samples.entry(origin.clone()).or_default();
        lags.push(lag_s);
        *frontier = (*frontier).max(written_ms);
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
    use serde_json::json;

    fn record(origin: &str, t_ms: u64, arrived_s: u64) -> serde_json::Value {
        json!({
            "eventName": "MODIFY",
            "awsRegion": "eu-west-1",
            "dynamodb": {
                "ApproximateCreationDateTime": arrived_s,
                "Keys": {"pk": {"S": "k"}},
                "NewImage": {"pk": {"S": "k"}, "_hw": {"M": {
                    "o": {"S": origin}, "t": {"N": t_ms.to_string()}, "by": {"S": "app"},
                    "dot": {"S": format!("{origin}:1:a")}}}},
                "SequenceNumber": "1",
            }
        })
    }

    #[test]
    fn lag_per_origin_in_whole_seconds_with_percentiles_and_frontier() {
        let local = Region::parse("eu-west-1").unwrap();
        let mut records: Vec<_> = (0..10)
            .map(|i| record("us-east-1", 1_000_000 + i * 1000, 1_000 + i + 1 + i / 9 * 5))
            .collect();
        records.push(record("us-west-2", 1_000_500, 1_003));
        // Written here: not a sample.
        records.push(record("eu-west-1", 1_000_000, 1_100));
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let lags = measure(&event, &local, "_hw", |_| true);
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
        let local = Region::parse("eu-west-1").unwrap();
        let event: StreamEvent =
            serde_json::from_value(json!({ "Records": [record("us-east-1", 2_000_000, 1_000)] }))
                .unwrap();
        assert_eq!(measure(&event, &local, "_hw", |_| true)["us-east-1"].max, 0);
    }
}
