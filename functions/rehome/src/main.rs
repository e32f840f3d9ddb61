//! Lambda entry point: configuration (the resolver's variables plus
//! `REGIONS`), clients, then one request per invocation.

// The handler future nests the SDK's deeply; the default limit is too low
// for its layout computation.
#![recursion_limit = "256"]

use std::time::Duration;

use homeward::control::{parse_regions, Evacuations};
use homeward::dynamo::DynamoStore;
use homeward::routing::{Mode, Router};
use homeward::{Schema, Writer};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rehome::{Operator, Progress, Request};
use resolver::{deadline_from_epoch_ms, Config};

fn main() -> Result<(), Error> {
    // Before any thread exists: it may set SSL_CERT_FILE.
    resolver::sdk::prefer_cert_bundle();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env(&homeward::custom_rules::registry())?;
    let regions = parse_regions(&std::env::var("REGIONS").unwrap_or_default())
        .map_err(|e| format!("configuration: REGIONS: {e}"))?;
    if regions.is_empty() {
        return Err("configuration: REGIONS: must list the global table's Regions".into());
    }
    let sdk = resolver::sdk::load().await;
    let table = DynamoStore::new(sdk.clone(), &config.table, config.schema.clone());
    let journal = DynamoStore::new(
        sdk.clone(),
        &config.journal_table,
        Schema::new("pk", Some("sk")),
    );
    let writer = Writer::new(table, config.schema.clone(), config.merger.clone());
    // An operator reads the evacuated Regions fresh every time.
    let evacuations = Evacuations::new(config.evacuated.clone(), Duration::ZERO);
    let mut router = Router::new(
        writer,
        config.region.clone(),
        Mode::Route,
        config.homes.clone(),
        journal.clone(),
        evacuations,
    );
    if config.homes.source == homeward::home::HomeSource::Negotiated {
        let assignments = DynamoStore::new(
            sdk.clone(),
            &config.assignments_table,
            Schema::new("pk", Some("sk")),
        );
        router = router.with_assignments(assignments, &config.table, Duration::ZERO);
    }
    let operator = Operator {
        router,
        control: journal,
        regions: regions.into_iter().collect(),
    };
    let metrics = resolver::metrics::install(
        &config.metrics_namespace,
        &config.table,
        config.region.as_str(),
    )?;
    let operator = &operator;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline);
            let request = Request::parse(event.payload)?;
            let progress: Progress = operator.run(request, deadline).await?;
            rehome::record_metrics(&progress);
            if let Err(e) = metrics.flush(std::io::stdout().lock()) {
                tracing::warn!(error = %e, "could not write the metrics");
            }
            // Counts only: the answer names keys, logs do not.
            tracing::info!(
                scanned = progress.scanned,
                moved = progress.moved,
                already = progress.already,
                fixed = progress.fixed,
                failed = progress.failed_total,
                done = progress.done,
                "request done"
            );
            Ok::<Progress, Error>(progress)
        },
    ))
    .await
}
