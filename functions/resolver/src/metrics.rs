//! The functions' metrics, in CloudWatch Embedded Metric Format: log lines
//! that CloudWatch turns into metrics, so there is no PutMetricData call
//! to pay for or to fail. Recorded through the `metrics` facade from a
//! batch's [`Summary`]; `main` flushes them after every invocation.
//!
//! Dimensions are `{Table, Region}`, plus `Class`, `OriginRegion` or
//! `Rule` where a metric is broken down by them: never keys (each distinct
//! dimension set is a billed metric).

use metrics::{counter, histogram, Unit};
use metrics_cloudwatch_embedded::Collector;

use crate::Summary;

/// The default namespace (`METRICS_NAMESPACE` changes it).
pub const DEFAULT_NAMESPACE: &str = "Homeward";

/// Installs the process-wide EMF collector with `{Table, Region}`.
///
/// # Errors
/// When a recorder is installed already.
pub fn install(namespace: &str, table: &str, region: &str) -> Result<&'static Collector, String> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .with_dimension("Table", table.to_owned())
        .with_dimension("Region", region.to_owned())
        .init()
        .map_err(|e| format!("metrics: {e}"))?;
    metrics::describe_histogram!(
        "BatchDuration",
        Unit::Milliseconds,
        "time to process a batch"
    );
    metrics::describe_histogram!("BatchSize", Unit::Count, "records per batch");
    for name in [
        "ReplicationLagP50",
        "ReplicationLagP90",
        "ReplicationLagMax",
    ] {
        metrics::describe_histogram!(name, Unit::Seconds, "replication lag into this Region");
    }
    Ok(collector)
}

/// Records what one batch did.
pub fn record(summary: &Summary) {
    for (class, n) in &summary.by_class {
        counter!("Records", "Class" => *class).increment(*n as u64);
    }
    for (origin, n) in &summary.foreign_by_origin {
        counter!("ForeignWrites", "OriginRegion" => origin.clone()).increment(*n as u64);
    }
    for (rule, n) in &summary.conflicts_by_rule {
        counter!("Conflicts", "Rule" => rule.clone()).increment(*n as u64);
    }
    let class = |name: &str| summary.by_class.get(name).copied().unwrap_or(0) as u64;
    counter!("Clobbers").increment(class("clobber"));
    counter!("UnattributedWrites").increment(class("unattributed"));
    counter!("Quarantined").increment(class("quarantined"));
    counter!("MergesWritten").increment(summary.writes as u64);
    counter!("Rehomes").increment(summary.rehomes as u64);
    counter!("JournalEntries").increment(summary.journal_entries as u64);
    counter!("FailedRecords").increment(summary.failures as u64);
    counter!("Retries").increment(summary.retries);
    counter!("Throttles").increment(summary.throttles);
    counter!("Timeouts").increment(summary.timeouts);
    histogram!("BatchDuration").record(summary.duration.as_secs_f64() * 1000.0);
    // Lag: one value per batch and origin; the frontier as epoch seconds.
    for (origin, lag) in &summary.lag {
        let origin = origin.clone();
        histogram!("ReplicationLagP50", "OriginRegion" => origin.clone()).record(lag.p50 as f64);
        histogram!("ReplicationLagP90", "OriginRegion" => origin.clone()).record(lag.p90 as f64);
        histogram!("ReplicationLagMax", "OriginRegion" => origin.clone()).record(lag.max as f64);
        histogram!("ReplicationFrontier", "OriginRegion" => origin)
            .record((lag.frontier_ms / 1000) as f64);
    }
    // The worst origin's p90, for one alarm per Region.
    if let Some(worst) = summary.lag.values().map(|l| l.p90).max() {
        histogram!("ReplicationLagP90").record(worst as f64);
    }
    histogram!("BatchSize").record(summary.records as f64);
}
