//! `homeward replay --queue <url> --region <R>`: replays the resolver's
//! on-failure queue.
//!
//! Each message is the record Lambda sends for a discarded batch of a
//! DynamoDB stream event source: not the stream records, but where they
//! are (`DDBStreamBatchInfo`: stream ARN, shard, first and last sequence
//! numbers, batch size). For each message the records are read back from
//! the stream (GetShardIterator `AT_SEQUENCE_NUMBER` at the first, then
//! GetRecords until past the last), turned into the Lambda event the
//! resolver takes, and run through [`resolver::Resolver::handle`] with the
//! Region's resolver configuration. A message is deleted only once every
//! record of its batch was processed without failure. Records past the
//! stream's 24-hour retention (TrimmedDataAccessException, a shard that
//! no longer exists, or a stream that starts after the batch's first
//! record) are reported and the message kept: never skipped silently.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue as StreamValue, Record as StreamRecordSdk, ShardIteratorType,
};
use homeward::dynamo::DynamoStore;
use homeward::{Region, Registry, Schema};
use resolver::{Config, Resolver, StreamEvent};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};

use crate::error::CliError;
use crate::settings::Settings;

/// Consecutive empty GetRecords pages after which the records are taken
/// to be absent from the shard.
const EMPTY_PAGES: usize = 10;
/// Pause between two empty pages.
const EMPTY_PAUSE: Duration = Duration::from_millis(100);
/// At most this many GetRecords pages per message.
const MAX_PAGES: usize = 10_000;

/// The record Lambda sends to an on-failure destination when it discards a
/// batch of a DynamoDB stream event source (AWS Lambda Developer Guide,
/// "Retain discarded records for a DynamoDB event source in Lambda",
/// example invocation record).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FailureRecord {
    #[serde(rename = "requestContext", default)]
    pub request_context: Option<Value>,
    #[serde(rename = "responseContext", default)]
    pub response_context: Option<Value>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(rename = "DDBStreamBatchInfo")]
    pub batch: BatchInfo,
}

/// Where the discarded batch is in the stream.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
    #[serde(default)]
    pub approximate_arrival_of_last_record: Option<String>,
    pub batch_size: u64,
    pub stream_arn: String,
}

impl FailureRecord {
    /// Reads a queue message's body.
    ///
    /// # Errors
    /// A message saying what the body lacks (it names fields, never
    /// quotes the body).
    pub fn parse(body: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| {
            format!(
                "the body is not JSON ({})",
                resolver::error::json_error_text(&e)
            )
        })?;
        if value.get("DDBStreamBatchInfo").is_none() {
            return Err(
                "the body has no DDBStreamBatchInfo: not the on-failure record of a DynamoDB stream event source"
                    .into(),
            );
        }
        serde_json::from_value(value).map_err(|e| format!("DDBStreamBatchInfo: {e}"))
    }
}

/// Compares two sequence numbers (decimal strings of up to 40 digits).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The Region and table of a stream ARN
/// (`arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>`).
///
/// # Errors
/// A message naming the ARN.
pub fn stream_arn_parts(arn: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let bad = || format!("streamArn `{arn}` is not a DynamoDB stream ARN");
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "dynamodb" {
        return Err(bad());
    }
    let resource: Vec<&str> = parts[5].split('/').collect();
    match resource.as_slice() {
        ["table", table, "stream", _label] => Ok((parts[3].to_owned(), (*table).to_owned())),
        _ => Err(bad()),
    }
}

/// Why a batch's records could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Past the stream's retention: the records are gone.
    #[error("past the stream's retention: {0}")]
    PastRetention(String),
    /// The stream does not hold the records the message names.
    #[error("records missing: {0}")]
    Missing(String),
    #[error("{0}")]
    Aws(CliError),
}

/// Checks the records read back (their sequence numbers, from the batch's
/// first on) against the batch: the first must be the batch's first (a
/// stream that starts later has trimmed it), the last must be there, and
/// at least `batch_size` records lie between.
///
/// # Errors
/// [`FetchError::PastRetention`] or [`FetchError::Missing`].
pub fn check_range(batch: &BatchInfo, sequences: &[String]) -> Result<(), FetchError> {
    let (start, end) = (&batch.start_sequence_number, &batch.end_sequence_number);
    let Some(first) = sequences.first() else {
        return Err(FetchError::Missing(format!(
            "the shard has no record from {start} on (a sequence number that is not in this shard?)"
        )));
    };
    match seq_cmp(first, start) {
        Ordering::Greater => {
            return Err(FetchError::PastRetention(format!(
                "the shard now starts at {first}, after the batch's first record {start}: records {start}..{first} were trimmed"
            )))
        }
        Ordering::Less => {
            return Err(FetchError::Missing(format!(
                "the stream answered with {first}, before the batch's first record {start}"
            )))
        }
        Ordering::Equal => {}
    }
    if !sequences.iter().any(|s| seq_cmp(s, end) == Ordering::Equal) {
        return Err(FetchError::Missing(format!(
            "the batch's last record {end} was not found (read {} records from {start})",
            sequences.len()
        )));
    }
    if (sequences.len() as u64) < batch.batch_size {
        return Err(FetchError::Missing(format!(
            "found {} records from {start} to {end}, the batch had {}",
            sequences.len(),
            batch.batch_size
        )));
    }
    Ok(())
}

fn fetch_error<E>(region: &str, call: &'static str, target: &str, err: &E) -> FetchError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    classify_fetch_error(CliError::aws(region, call, target, err))
}

/// Which stream errors mean the records are gone: TrimmedDataAccessException
/// (past the 24-hour retention) and ResourceNotFoundException (the stream
/// or the closed shard was deleted, 24 hours after it closed).
pub fn classify_fetch_error(err: CliError) -> FetchError {
    match err.code() {
        Some("TrimmedDataAccessException") => FetchError::PastRetention(err.to_string()),
        Some("ResourceNotFoundException") => FetchError::PastRetention(format!(
            "{err} (the stream or shard is gone: streams and closed shards are deleted 24 hours on)"
        )),
        _ => FetchError::Aws(err),
    }
}

/// Reads the batch's records back from the stream.
///
/// # Errors
/// [`FetchError`].
pub async fn fetch(
    streams: &aws_sdk_dynamodbstreams::Client,
    region: &str,
    batch: &BatchInfo,
) -> Result<Vec<StreamRecordSdk>, FetchError> {
    let arn = &batch.stream_arn;
    let mut iterator = streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .map_err(|e| fetch_error(region, "GetShardIterator", arn, &e))?
        .shard_iterator;
    let mut records = Vec::new();
    let mut empty = 0;
    let end = &batch.end_sequence_number;
    'pages: for _ in 0..MAX_PAGES {
        let Some(it) = iterator.take() else { break };
        let page = streams
            .get_records()
            .shard_iterator(it)
            .limit(1000)
            .send()
            .await
            .map_err(|e| fetch_error(region, "GetRecords", arn, &e))?;
        let got = page.records.unwrap_or_default();
        if got.is_empty() {
            empty += 1;
            if empty >= EMPTY_PAGES {
                break;
            }
            tokio::time::sleep(EMPTY_PAUSE).await;
        } else {
            empty = 0;
        }
        for record in got {
            let seq = sequence(&record);
            match seq_cmp(&seq, end) {
                Ordering::Greater => break 'pages,
                Ordering::Equal => {
                    records.push(record);
                    break 'pages;
                }
                Ordering::Less => records.push(record),
            }
        }
        iterator = page.next_shard_iterator;
    }
    let sequences: Vec<String> = records.iter().map(sequence).collect();
    check_range(batch, &sequences)?;
    Ok(records)
}

fn sequence(record: &StreamRecordSdk) -> String {
    record
        .dynamodb
        .as_ref()
        .and_then(|d| d.sequence_number.clone())
        .unwrap_or_default()
}

/// A stream record as Lambda's event carries it: `eventSourceARN` (which
/// GetRecords does not return) from the message, `awsRegion` the
/// stream's Region, `ApproximateCreationDateTime` in whole seconds.
pub fn lambda_record(record: &StreamRecordSdk, region: &str, stream_arn: &str) -> Value {
    let image = |m: &Option<HashMap<String, StreamValue>>| {
        m.as_ref().map(|m| {
            let item: HashMap<String, AttributeValue> = m
                .iter()
                .map(|(k, v)| (k.clone(), resolver::event::from_stream_value(v)))
                .collect();
            serde_json::to_value(Item::from(item)).unwrap_or_default()
        })
    };
    let change = record.dynamodb.as_ref();
    let mut dynamodb = json!({
        "Keys": change.and_then(|c| image(&c.keys)).unwrap_or_else(|| json!({})),
        "SequenceNumber": sequence(record),
        "SizeBytes": change.and_then(|c| c.size_bytes).unwrap_or(0),
        "StreamViewType": change
            .and_then(|c| c.stream_view_type.as_ref())
            .map_or("NEW_AND_OLD_IMAGES", |v| v.as_str()),
    });
    if let Some(t) = change.and_then(|c| c.approximate_creation_date_time) {
        dynamodb["ApproximateCreationDateTime"] = json!(t.secs());
    }
    if let Some(i) = change.and_then(|c| image(&c.new_image)) {
        dynamodb["NewImage"] = i;
    }
    if let Some(i) = change.and_then(|c| image(&c.old_image)) {
        dynamodb["OldImage"] = i;
    }
    let mut out = json!({
        "eventID": record.event_id.clone().unwrap_or_default(),
        "eventName": record.event_name.as_ref().map_or("", |e| e.as_str()),
        "eventVersion": record.event_version.clone().unwrap_or_else(|| "1.1".into()),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    if let Some(u) = &record.user_identity {
        out["userIdentity"] = json!({
            "type": u.r#type.clone().unwrap_or_default(),
            "principalId": u.principal_id.clone().unwrap_or_default(),
        });
    }
    out
}

/// What `replay` does.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub queue_url: String,
    /// The Region of the queue, the stream and the resolver.
    pub region: Region,
    /// Read and report; replay nothing, delete nothing.
    pub dry_run: bool,
    /// At most this many messages.
    pub max_messages: usize,
    /// How long received messages stay hidden from other consumers.
    pub visibility_timeout: i32,
    /// ReceiveMessage long-poll wait (0 to 20 s).
    pub wait_seconds: i32,
    /// The time given to the resolver per message (Lambda's timeout).
    pub timeout: Duration,
}

impl ReplayOptions {
    pub fn new(queue_url: &str, region: Region) -> Self {
        ReplayOptions {
            queue_url: queue_url.to_owned(),
            region,
            dry_run: false,
            max_messages: 100,
            visibility_timeout: 300,
            wait_seconds: 1,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What became of the queue's messages.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub queue: String,
    pub region: String,
    pub dry_run: bool,
    pub messages: Vec<MessageOutcome>,
    /// Messages replayed and deleted.
    pub replayed: usize,
    /// Messages kept on the queue (each says why).
    pub kept: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageOutcome {
    pub message_id: String,
    /// `replayed` (and deleted), `kept`, or `would-replay` (dry run).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchInfo>,
    /// Records read back from the stream.
    pub records: usize,
    /// Per record: sequence number, event, key (as the resolver's logs
    /// name it) and class.
    pub detail: Vec<RecordLine>,
    /// What the resolver did, by record class.
    pub classes: BTreeMap<String, usize>,
    pub writes: usize,
    pub journal_entries: usize,
    /// Sequence numbers that failed again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordLine {
    pub sequence: String,
    pub event: String,
    pub key: String,
    pub class: String,
}

impl MessageOutcome {
    fn new(message_id: &str) -> Self {
        MessageOutcome {
            message_id: message_id.to_owned(),
            status: "kept",
            batch: None,
            records: 0,
            detail: Vec::new(),
            classes: BTreeMap::new(),
            writes: 0,
            journal_entries: 0,
            failed: Vec::new(),
            problem: None,
        }
    }

    fn kept(mut self, problem: String) -> Self {
        self.status = "kept";
        self.problem = Some(problem);
        self
    }
}

type TableResolver = Resolver<DynamoStore, DynamoStore>;

/// Replays the queue's messages through the resolver of `options.region`.
///
/// # Errors
/// [`CliError::Config`] for a bad configuration, [`CliError::Aws`] when the
/// queue cannot be read. A message that cannot be replayed is reported in
/// its outcome and kept, not an error.
pub async fn replay(
    sdk: &SdkConfig,
    settings: &Settings,
    registry: &Registry,
    options: &ReplayOptions,
) -> Result<ReplayReport, CliError> {
    let region = &options.region;
    let config = settings.config(region, registry)?;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .region(aws_sdk_sqs::config::Region::new(region.to_string()))
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .region(aws_sdk_dynamodbstreams::config::Region::new(
                region.to_string(),
            ))
            .build(),
    );
    let table = DynamoStore::new(sdk.clone(), &config.table, config.schema.clone());
    let journal = DynamoStore::new(
        sdk.clone(),
        &config.journal_table,
        Schema::new("pk", Some("sk")),
    );
    let resolver = Resolver::new(config.clone(), table, journal);

    let queue = &options.queue_url;
    let mut outcomes = Vec::new();
    let mut seen = HashSet::new();
    let mut visible_again = Vec::new();
    'receive: while outcomes.len() < options.max_messages {
        let want = (options.max_messages - outcomes.len()).min(10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(want)
            .visibility_timeout(options.visibility_timeout)
            .wait_time_seconds(options.wait_seconds)
            .send()
            .await
            .map_err(|e| CliError::aws(region.as_str(), "ReceiveMessage", queue, &e))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let id = m.message_id.clone().unwrap_or_default();
            let handle = m.receipt_handle.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                // Received twice: its visibility ran out during this run.
                break 'receive;
            }
            let body = m.body.as_deref().unwrap_or_default();
            let mut outcome = one_message(&resolver, &config, &streams, &id, body, options).await;
            if outcome.status == "replayed" {
                if let Err(e) = sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(&handle)
                    .send()
                    .await
                {
                    let err = CliError::aws(region.as_str(), "DeleteMessage", queue, &e);
                    outcome = outcome.kept(format!(
                        "replayed, but the message could not be deleted ({err}); replaying it again is harmless"
                    ));
                }
            }
            if outcome.status != "replayed" {
                visible_again.push(handle);
            }
            outcomes.push(outcome);
        }
    }
    // Kept (and dry-run) messages are made visible again at once, as they
    // were before this run.
    for handle in visible_again {
        if let Err(e) = sqs
            .change_message_visibility()
            .queue_url(queue)
            .receipt_handle(&handle)
            .visibility_timeout(0)
            .send()
            .await
        {
            let err = CliError::aws(region.as_str(), "ChangeMessageVisibility", queue, &e);
            eprintln!(
                "warning: a kept message stays hidden for up to {} s: {err}",
                options.visibility_timeout
            );
        }
    }
    let replayed = outcomes.iter().filter(|o| o.status == "replayed").count();
    let kept = outcomes.iter().filter(|o| o.status == "kept").count();
    Ok(ReplayReport {
        queue: queue.clone(),
        region: region.to_string(),
        dry_run: options.dry_run,
        messages: outcomes,
        replayed,
        kept,
    })
}

async fn one_message(
    resolver: &TableResolver,
    config: &Config,
    streams: &aws_sdk_dynamodbstreams::Client,
    id: &str,
    body: &str,
    options: &ReplayOptions,
) -> MessageOutcome {
    let outcome = MessageOutcome::new(id);
    let record = match FailureRecord::parse(body) {
        Ok(r) => r,
        Err(e) => return outcome.kept(e),
    };
    let batch = record.batch;
    let mut outcome = MessageOutcome {
        batch: Some(batch.clone()),
        ..outcome
    };
    let region = options.region.as_str();
    match stream_arn_parts(&batch.stream_arn) {
        Err(e) => return outcome.kept(e),
        Ok((arn_region, _)) if arn_region != region => {
            return outcome.kept(format!(
                "the stream is in {arn_region}, not {region}: replay it with --region {arn_region}"
            ))
        }
        Ok((_, table)) if table != config.table => {
            return outcome.kept(format!(
                "the stream is table {table}'s, not TABLE_NAME {}'s",
                config.table
            ))
        }
        Ok(_) => {}
    }
    let records = match fetch(streams, region, &batch).await {
        Ok(r) => r,
        Err(e) => return outcome.kept(e.to_string()),
    };
    outcome.records = records.len();
    let lambda: Vec<Value> = records
        .iter()
        .map(|r| lambda_record(r, region, &batch.stream_arn))
        .collect();
    // Read as the function reads its payload.
    let event = match StreamEvent::read_value(&json!({ "Records": lambda }), config) {
        Ok(e) => e,
        Err(e) => {
            return outcome.kept(format!(
                "the records do not make a stream event ({})",
                resolver::error::json_error_text(&e)
            ))
        }
    };
    for r in &event.records {
        let class = match resolver::triage(config, r) {
            Ok(t) => t.class.name().to_owned(),
            Err(e) => format!("unreadable: {e}"),
        };
        outcome.detail.push(RecordLine {
            sequence: r.dynamodb.sequence_number.clone().unwrap_or_default(),
            event: r.event_name.clone(),
            key: resolver::error::key_for_log(&r.dynamodb.keys, config.log_keys),
            class,
        });
    }
    if options.dry_run {
        outcome.status = "would-replay";
        return outcome;
    }
    let (response, summary) = resolver
        .handle(&event, Instant::now() + options.timeout)
        .await;
    outcome.classes = summary
        .by_class
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    outcome.writes = summary.writes;
    outcome.journal_entries = summary.journal_entries;
    outcome.failed = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect();
    if outcome.failed.is_empty() {
        outcome.status = "replayed";
        outcome
    } else {
        let n = outcome.failed.len();
        outcome.kept(format!(
            "{n} record{} failed again (the resolver's log lines above say why); fix the cause and replay again",
            if n == 1 { "" } else { "s" }
        ))
    }
}

impl ReplayReport {
    pub fn complete(&self) -> bool {
        self.kept == 0
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}replay of {} in {}: {} message{}\n",
            if self.dry_run { "dry run: " } else { "" },
            self.queue,
            self.region,
            self.messages.len(),
            if self.messages.len() == 1 { "" } else { "s" }
        );
        for m in &self.messages {
            out.push_str(&format!("\nmessage {}: {}\n", m.message_id, m.status));
            if let Some(b) = &m.batch {
                out.push_str(&format!(
                    "  stream {} shard {}\n  records {}..{} (batch of {}, first arrived {})\n",
                    b.stream_arn,
                    b.shard_id,
                    b.start_sequence_number,
                    b.end_sequence_number,
                    b.batch_size,
                    b.approximate_arrival_of_first_record
                        .as_deref()
                        .unwrap_or("?")
                ));
            }
            for r in &m.detail {
                out.push_str(&format!(
                    "    {}  {:6}  {}  {}\n",
                    r.sequence, r.event, r.key, r.class
                ));
            }
            if m.status == "replayed" || !m.classes.is_empty() {
                let classes: Vec<String> =
                    m.classes.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out.push_str(&format!(
                    "  resolver: {}; {} write{}, {} new journal entr{}\n",
                    classes.join(", "),
                    m.writes,
                    if m.writes == 1 { "" } else { "s" },
                    m.journal_entries,
                    if m.journal_entries == 1 { "y" } else { "ies" }
                ));
            }
            if m.status == "replayed" {
                out.push_str("  deleted from the queue\n");
            }
            if !m.failed.is_empty() {
                out.push_str(&format!("  failed again: {}\n", m.failed.join(", ")));
            }
            if let Some(p) = &m.problem {
                out.push_str(&format!("  KEPT: {p}\n"));
            }
        }
        out.push_str(&format!(
            "\n{} replayed and deleted, {} kept{}\n",
            self.replayed,
            self.kept,
            if self.dry_run {
                ", nothing replayed (dry run)"
            } else {
                ""
            }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example invocation record of the Lambda Developer Guide.
    const DOCS_EXAMPLE: &str = r#"{
      "requestContext": {
        "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 1
      },
      "responseContext": {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled"
      },
      "version": "1.0",
      "timestamp": "2019-11-14T00:13:49.717Z",
      "DDBStreamBatchInfo": {
        "shardId": "shardId-00000001573689847184-864758bb",
        "startSequenceNumber": "800000000003126276362",
        "endSequenceNumber": "800000000003126276362",
        "approximateArrivalOfFirstRecord": "2019-11-14T00:13:19Z",
        "approximateArrivalOfLastRecord": "2019-11-14T00:13:19Z",
        "batchSize": 1,
        "streamArn": "arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388"
      }
    }"#;

    fn batch(start: &str, end: &str, size: u64) -> BatchInfo {
        BatchInfo {
            shard_id: "shardId-1".into(),
            start_sequence_number: start.into(),
            end_sequence_number: end.into(),
            approximate_arrival_of_first_record: None,
            approximate_arrival_of_last_record: None,
            batch_size: size,
            stream_arn: "arn:aws:dynamodb:us-east-2:1:table/t/stream/x".into(),
        }
    }

    #[test]
    fn the_docs_example_parses() {
        let r = FailureRecord::parse(DOCS_EXAMPLE).unwrap();
        assert_eq!(r.batch.shard_id, "shardId-00000001573689847184-864758bb");
        assert_eq!(r.batch.batch_size, 1);
        assert_eq!(
            stream_arn_parts(&r.batch.stream_arn).unwrap(),
            ("us-east-2".to_owned(), "mytable".to_owned())
        );
        let err = FailureRecord::parse(r#"{"Records":[]}"#).unwrap_err();
        assert!(err.contains("no DDBStreamBatchInfo"), "{err}");
        let err = FailureRecord::parse("secret value").unwrap_err();
        assert!(err.contains("not JSON") && !err.contains("secret"), "{err}");
        let err = FailureRecord::parse(r#"{"DDBStreamBatchInfo":{"shardId":"s"}}"#).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
        assert!(stream_arn_parts("arn:aws:sqs:us-east-1:1:q").is_err());
    }

    #[test]
    fn trimmed_and_deleted_streams_are_past_retention() {
        let aws = |code: &str| CliError::Aws {
            region: "eu-west-1".into(),
            call: "GetShardIterator",
            target: "arn".into(),
            code: Some(code.into()),
            message: format!("{code}: ..."),
        };
        let trimmed = classify_fetch_error(aws("TrimmedDataAccessException"));
        assert!(matches!(trimmed, FetchError::PastRetention(_)), "{trimmed}");
        assert!(trimmed
            .to_string()
            .starts_with("past the stream's retention: eu-west-1: GetShardIterator"));
        let gone = classify_fetch_error(aws("ResourceNotFoundException"));
        assert!(matches!(gone, FetchError::PastRetention(_)), "{gone}");
        let throttled = classify_fetch_error(aws("LimitExceededException"));
        assert!(matches!(throttled, FetchError::Aws(_)), "{throttled}");
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(seq_cmp("9", "10"), Ordering::Less);
        assert_eq!(seq_cmp("0010", "10"), Ordering::Equal);
        assert_eq!(
            seq_cmp("800000000003126276362", "800000000003126276361"),
            Ordering::Greater
        );
    }

    #[test]
    fn a_stream_that_starts_after_the_batch_was_trimmed() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(check_range(&batch("10", "12", 3), &s(&["10", "11", "12"])).is_ok());
        // Filtered records in between are fine.
        assert!(check_range(&batch("10", "14", 2), &s(&["10", "11", "12", "13", "14"])).is_ok());
        let trimmed = check_range(&batch("10", "12", 3), &s(&["11", "12"])).unwrap_err();
        assert!(matches!(trimmed, FetchError::PastRetention(_)), "{trimmed}");
        assert!(trimmed.to_string().contains("retention"));
        let none = check_range(&batch("10", "12", 3), &[]).unwrap_err();
        assert!(matches!(none, FetchError::Missing(_)));
        let short = check_range(&batch("10", "12", 3), &s(&["10", "12"])).unwrap_err();
        assert!(short.to_string().contains("found 2"), "{short}");
        let no_end = check_range(&batch("10", "12", 1), &s(&["10", "11"])).unwrap_err();
        assert!(no_end.to_string().contains("last record 12"), "{no_end}");
    }
}
