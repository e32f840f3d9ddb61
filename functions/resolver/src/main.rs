//! Lambda entry point: tracing, configuration, clients; then the handler.

use aws_lambda_events::streams::DynamoDbEventResponse;
use homeward::dynamo::DynamoStore;
use homeward::Schema;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use resolver::{deadline_from_epoch_ms, Config, Resolver, StreamEvent};
use serde_json::value::RawValue;

/// mimalloc rather than glibc's malloc: the pure path allocates and frees
/// many small strings and maps (bench/README.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Error> {
    // Before any thread exists: it may set SSL_CERT_FILE.
    resolver::sdk::prefer_cert_bundle();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> Result<(), Error> {
    // JSON when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT).
    lambda_runtime::tracing::init_default_subscriber();
    // Custom merge rules: homeward::custom_rules, shared by every part.
    let config = Config::from_env(&homeward::custom_rules::registry())?;
    // AWS_ENDPOINT_URL (e.g. moto), the SDK's standard retries, our timeouts.
    let sdk = resolver::sdk::load().await;
    let table = DynamoStore::new(sdk.clone(), &config.table, config.schema.clone());
    let journal = DynamoStore::new(
        sdk.clone(),
        &config.journal_table,
        Schema::new("pk", Some("sk")),
    );
    let metrics = resolver::metrics::install(
        &config.metrics_namespace,
        &config.table,
        config.region.as_str(),
    )?;
    // Negotiated homes: this Region's replica of the assignments table.
    let assignments = DynamoStore::new(
        sdk,
        &config.assignments_table,
        Schema::new("pk", Some("sk")),
    );
    let resolver = Resolver::new(config, table, journal).with_assignments(assignments);
    let resolver = &resolver;
    run(service_fn(
        // The payload stays text: one pass reads the records from it,
        // images as slices of it.
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let deadline = deadline_from_epoch_ms(event.context.deadline);
            let records = StreamEvent::parse(event.payload.get(), &resolver.config)?;
            let (response, summary) = resolver.handle(&records, deadline).await;
            // One EMF line per dimension set, on stdout beside the logs.
            resolver::metrics::record(&summary);
            if let Err(e) = metrics.flush(std::io::stdout().lock()) {
                tracing::warn!(error = %e, "could not write the metrics");
            }
            Ok::<DynamoDbEventResponse, Error>(response)
        },
    ))
    .await
}
