//! The CLI against moto (DynamoDB, DynamoDB Streams and SQS on one port):
//! `inspect` and `journal` on a cluster where a conflict happened and
//! settled, and on one where a Region lags; `replay` end to end from an
//! on-failure message; the built binary once.

use std::collections::HashMap;
use std::process::Command;

use aws_config::SdkConfig;
use homeward::{Region, Registry};
use homeward_cli::replay::{replay, ReplayOptions};
use homeward_cli::settings::KeyType;
use homeward_cli::{inspect, journal, Settings};
use homeward_sim::cluster::{Cluster, Spec};
use homeward_sim::MotoServer;
use serde_dynamo::{AttributeValue, Item};
use serde_json::json;

const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
const RULES: &str = r#"{"attributes":{"rating":"max:N","stock":"counter"}}"#;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: &str) -> Item {
    Item::from(HashMap::from([("pk".to_string(), s(pk))]))
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    Item::from(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

fn region(name: &str) -> Region {
    Region::parse(name).unwrap()
}

fn settings(c: &Cluster) -> Settings {
    let regions: Vec<Region> = REGIONS.iter().map(|r| region(r)).collect();
    Settings::new(&c.table, "pk", &regions)
        .var("MERGE_RULES", RULES)
        .with_key_types(vec![KeyType::S])
}

async fn sdk() -> SdkConfig {
    MotoServer::shared().sdk_config().await
}

/// A movie homed in us-east-1; then, concurrently, us-east-1 sets foo and
/// rating 4 and takes 1 from stock while us-west-2 sets bar and rating 5
/// and takes 2: last writer wins clobbers one side, the resolvers merge
/// both (rating by `max`, stock exact) and journal the conflict.
async fn conflict(test: &str) -> Cluster {
    let spec = Spec::new(&REGIONS).env("MERGE_RULES", RULES);
    let mut c = Cluster::start(MotoServer::shared(), test, spec).await;
    let w = c.writer();
    let (east, west) = (region("us-east-1"), region("us-west-2"));
    w.insert(
        &east,
        item(&[
            ("pk", s("jaws")),
            ("home_region", s("us-east-1")),
            ("foo", s("0")),
            ("rating", n(3)),
            ("stock", n(10)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    w.update(&east, &key("jaws"), |d| {
        d.set("foo", s("east"));
        d.set("rating", n(4));
    })
    .await
    .unwrap();
    w.increment(&east, &key("jaws"), "stock", -1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.update(&west, &key("jaws"), |d| {
        d.set("bar", s("west"));
        d.set("rating", n(5));
    })
    .await
    .unwrap();
    w.increment(&west, &key("jaws"), "stock", -2).await.unwrap();
    c.settle().await;
    c
}

#[tokio::test]
async fn inspect_and_journal_show_a_settled_conflict() {
    let c = conflict("cli-inspect").await;
    let sdk = sdk().await;
    let settings = settings(&c);
    let report = inspect::inspect(&sdk, &settings, &Registry::new(), &key("jaws"))
        .await
        .unwrap();
    let text = report.to_text();
    println!("{text}");
    assert!(report.converged, "{text}");
    assert!(report.lacking.is_empty());
    assert_eq!(report.copies.len(), 3);
    for copy in &report.copies {
        assert_eq!(copy.state, "present", "{text}");
        assert_eq!(copy.values["rating"], json!({"N": "5"}), "rule max");
        assert_eq!(copy.values["stock"], json!({"N": "7"}), "exact counter");
        let stamp = copy.stamp.as_ref().unwrap();
        // Last writes: foo in us-east-1, bar in us-west-2.
        assert_eq!(stamp.attributes["foo"].last_write.region, "us-east-1");
        assert_eq!(stamp.attributes["bar"].last_write.region, "us-west-2");
        // The concurrent ratings are kept as siblings for the rule.
        let rating = &stamp.attributes["rating"];
        assert_eq!(rating.rule.as_deref(), Some("max"));
        let sibling_regions: Vec<&str> = rating
            .siblings
            .iter()
            .map(|s| s.write.region.as_str())
            .collect();
        assert_eq!(sibling_regions.len(), 2, "{text}");
        assert!(sibling_regions.contains(&"us-east-1") && sibling_regions.contains(&"us-west-2"));
        // Each Region's share of the counter.
        let stock = &stamp.counters["stock"];
        assert_eq!(stock.total, "7");
        assert_eq!(stock.regions["us-west-2"].total, "-2");
        let home = copy.home.as_ref().unwrap();
        assert_eq!((home.region.as_str(), home.epoch), ("us-east-1", 0));
    }
    assert!(text.contains("rating: rule max shows 5"), "{text}");
    assert!(text.contains("stock = 7 = "), "{text}");
    assert!(text.contains("every copy includes every Region's latest dot"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["copies"][0]["region"], "us-east-1");

    let journal = journal::journal(&sdk, &settings, &key("jaws"), false)
        .await
        .unwrap();
    let text = journal.to_text();
    println!("{text}");
    assert!(journal.complete());
    assert!(!journal.entries.is_empty(), "{text}");
    let rated = journal
        .entries
        .iter()
        .find(|e| {
            e.explanation
                .iter()
                .any(|x| x.attribute == "rating" && x.decision.contains("decided by rule max"))
        })
        .unwrap_or_else(|| panic!("no entry explains rating: {text}"));
    assert!(
        ["clobber", "foreign"].contains(&rated.kind.as_str()),
        "{text}"
    );
    assert!(rated.regions.contains(&"us-west-2".to_string()));
    assert!(!rated.versions.is_empty());
    assert!(text.contains("decided by rule max"));
    // Entries are the journal tables' own: as many as the cluster saw.
    let mut stored = 0;
    for r in REGIONS {
        stored += c.journal(r).await.len();
    }
    assert_eq!(journal.entries.len(), stored);
}

#[tokio::test]
async fn inspect_shows_the_region_that_lacks_a_write() {
    let mut c = conflict("cli-lag").await;
    c.pause("us-east-1", "eu-west-1");
    let w = c.writer();
    let written = w
        .update(&region("us-east-1"), &key("jaws"), |d| {
            d.set("foo", s("later"));
        })
        .await
        .unwrap();
    c.settle().await;
    let sdk = sdk().await;
    let report = inspect::inspect(&sdk, &settings(&c), &Registry::new(), &key("jaws"))
        .await
        .unwrap();
    let text = report.to_text();
    println!("{text}");
    assert!(!report.converged);
    let dot = written.header.dot().encode();
    assert_eq!(report.lacking.len(), 1, "{text}");
    let lack = &report.lacking[0];
    assert_eq!(
        (
            lack.region.as_str(),
            lack.origin.as_str(),
            lack.dot.as_str()
        ),
        ("eu-west-1", "us-east-1", dot.as_str())
    );
    assert!(text.contains(&format!("eu-west-1 lacks {dot}")), "{text}");
    assert!(text.contains("* differs"), "{text}");

    // A Region that does not exist in moto has no table: reported in its
    // column, the others still shown.
    let mut more = settings(&c);
    more.regions.push(region("ap-south-1"));
    let report = inspect::inspect(&sdk, &more, &Registry::new(), &key("jaws"))
        .await
        .unwrap();
    assert!(!report.complete());
    let err = report.copies[3].error.as_deref().unwrap();
    assert!(err.contains("ap-south-1: GetItem"), "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");

    c.resume("us-east-1", "eu-west-1");
    c.settle().await;
    let report = inspect::inspect(&sdk, &settings(&c), &Registry::new(), &key("jaws"))
        .await
        .unwrap();
    assert!(report.converged, "{}", report.to_text());
}

fn homeward(c: &Cluster, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_homeward"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", MotoServer::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("TABLE_NAME", &c.table)
        .env("TABLE_KEY", "pk")
        .env("MERGE_RULES", RULES)
        .env("REGIONS", REGIONS.join(","))
        .output()
        .expect("run homeward");
    out
}

#[tokio::test]
async fn the_binary_inspects_and_reads_the_journal() {
    let c = conflict("cli-bin").await;
    // The key's type comes from the table's description.
    let out = homeward(&c, &["inspect", "pk=jaws"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("in 3 Regions: converged"), "{stdout}");
    assert!(stdout.contains("rating: rule max shows 5"), "{stdout}");

    let out = homeward(&c, &["journal", r#"{"pk":{"S":"jaws"}}"#, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["pk"],
        resolver::journal::partition_key(&c.table, &key("jaws"))
    );
    assert!(!report["entries"].as_array().unwrap().is_empty());

    // Errors name what is wrong, and exit 2.
    let out = homeward(&c, &["inspect", "title=jaws"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("neither DynamoDB JSON nor `pk=value`"),
        "{stderr}"
    );
    let out = homeward(
        &c,
        &[
            "--merge-rules",
            "{\"default\":\"often\"}",
            "inspect",
            "pk=x",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MERGE_RULES"), "{stderr}");
}

/// The eu-west-1 stream's records: (sequence number, event name).
async fn stream_records(sdk: &SdkConfig, c: &Cluster, r: &str) -> (String, String, Vec<String>) {
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .region(aws_sdk_dynamodb::config::Region::new(r.to_owned()))
            .build(),
    );
    let arn = ddb
        .describe_table()
        .table_name(&c.table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap();
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .region(aws_sdk_dynamodbstreams::config::Region::new(r.to_owned()))
            .build(),
    );
    let shard = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap()
        .remove(0)
        .shard_id
        .unwrap();
    let it = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = streams
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap()
        .records
        .unwrap_or_default();
    let sequences = records
        .iter()
        .map(|r| {
            r.dynamodb
                .as_ref()
                .unwrap()
                .sequence_number
                .clone()
                .unwrap()
        })
        .collect();
    (arn, shard, sequences)
}

/// The on-failure record Lambda would send for the batch.
fn failure_message(arn: &str, shard: &str, start: &str, end: &str, size: usize) -> String {
    json!({
        "requestContext": {
            "requestId": "316aa6d0-8154-4f2b-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:homeward-resolver",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-01T15:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2026-12-01T14:59:00Z",
            "approximateArrivalOfLastRecord": "2026-12-01T14:59:00Z",
            "batchSize": size,
            "streamArn": arn
        }
    })
    .to_string()
}

async fn queue(sdk: &SdkConfig, r: &str, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .region(aws_sdk_sqs::config::Region::new(r.to_owned()))
            .build(),
    );
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}-{:08x}", rand_suffix()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (sqs, url)
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id()
}

async fn queued(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    out.attributes
        .unwrap_or_default()
        .values()
        .map(|v| v.parse::<usize>().unwrap())
        .sum()
}

/// A foreign write that no resolver ran for (its batch "failed"), partitioned
/// from a concurrent home write: its on-failure message, replayed, merges
/// it into the home copy and journals the rule's decision; the message is
/// deleted. A dry run before changes nothing.
#[tokio::test]
async fn replay_merges_a_failed_batch_and_deletes_its_message() {
    let mut spec = Spec::new(&REGIONS).env("MERGE_RULES", RULES);
    spec.resolvers = false;
    let mut c = Cluster::start(MotoServer::shared(), "cli-replay", spec).await;
    let w = c.writer();
    let (east, eu) = (region("us-east-1"), region("eu-west-1"));
    w.insert(
        &east,
        item(&[
            ("pk", s("jaws")),
            ("home_region", s("us-east-1")),
            ("rating", n(3)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    c.pause("eu-west-1", "us-east-1");
    c.pause("us-east-1", "eu-west-1");
    w.update(&east, &key("jaws"), |d| {
        d.set("rating", n(4));
    })
    .await
    .unwrap();
    w.update(&eu, &key("jaws"), |d| {
        d.set("rating", n(5));
        d.set("seen_in", s("eu"));
    })
    .await
    .unwrap();
    c.settle().await;
    assert!(c.journal("eu-west-1").await.is_empty());

    let sdk = sdk().await;
    let (arn, shard, sequences) = stream_records(&sdk, &c, "eu-west-1").await;
    // The replicated insert, then the foreign write.
    assert_eq!(sequences.len(), 2);
    let (sqs, url) = queue(&sdk, "eu-west-1", "cli-replay").await;
    let body = failure_message(&arn, &shard, &sequences[0], &sequences[1], 2);
    sqs.send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .unwrap();

    let settings = settings(&c);
    let options = ReplayOptions {
        dry_run: true,
        wait_seconds: 0,
        ..ReplayOptions::new(&url, eu.clone())
    };
    let dry = replay(&sdk, &settings, &Registry::new(), &options)
        .await
        .unwrap();
    let text = dry.to_text();
    println!("{text}");
    assert_eq!(dry.messages.len(), 1, "{text}");
    assert_eq!(dry.messages[0].status, "would-replay", "{text}");
    let classes: Vec<&str> = dry.messages[0]
        .detail
        .iter()
        .map(|d| d.class.as_str())
        .collect();
    assert_eq!(classes, ["replicated", "foreign"], "{text}");
    assert!(!text.contains("jaws"), "keys are hashed: {text}");
    assert_eq!(queued(&sqs, &url).await, 1, "a dry run keeps the message");
    let home = c.read("us-east-1", &key("jaws")).await.unwrap();
    assert_eq!(home.get("rating"), Some(&n(4)), "a dry run writes nothing");

    let options = ReplayOptions {
        wait_seconds: 0,
        ..ReplayOptions::new(&url, eu.clone())
    };
    let report = replay(&sdk, &settings, &Registry::new(), &options)
        .await
        .unwrap();
    let text = report.to_text();
    println!("{text}");
    assert!(report.complete(), "{text}");
    assert_eq!((report.replayed, report.kept), (1, 0), "{text}");
    let m = &report.messages[0];
    assert_eq!(m.records, 2);
    assert_eq!(m.classes.get("foreign"), Some(&1), "{text}");
    assert_eq!(m.writes, 1);
    assert_eq!(m.journal_entries, 1);
    assert_eq!(queued(&sqs, &url).await, 0, "the message is deleted");

    // The foreign write is merged into the home copy, by rule.
    let home = c.read("us-east-1", &key("jaws")).await.unwrap();
    assert_eq!(home.get("rating"), Some(&n(5)), "max of 4 and 5");
    assert_eq!(home.get("seen_in"), Some(&s("eu")));
    // And journaled by the Region that detected it.
    let entries = c.journal("eu-west-1").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let journal = journal::journal(&sdk, &settings, &key("jaws"), false)
        .await
        .unwrap();
    let e = &journal.entries[0];
    assert_eq!(
        (e.kind.as_str(), e.detected_in.as_str()),
        ("foreign", "eu-west-1")
    );
    assert!(e
        .explanation
        .iter()
        .any(|x| x.attribute == "rating" && x.decision.contains("rule max")));

    // Replaying the same batch again is harmless: nothing new is written.
    sqs.send_message()
        .queue_url(&url)
        .message_body(failure_message(
            &arn,
            &shard,
            &sequences[0],
            &sequences[1],
            2,
        ))
        .send()
        .await
        .unwrap();
    let again = replay(&sdk, &settings, &Registry::new(), &options)
        .await
        .unwrap();
    assert_eq!((again.replayed, again.messages[0].writes), (1, 0));
    assert_eq!(again.messages[0].journal_entries, 0);
}

/// Messages whose records cannot be read back (a sequence number the shard
/// does not hold, the stream of another Region) or that are not on-failure
/// records at all are reported and kept, and the run fails.
#[tokio::test]
async fn replay_reports_and_keeps_what_it_cannot_replay() {
    let mut spec = Spec::new(&REGIONS);
    spec.resolvers = false;
    let c = Cluster::start(MotoServer::shared(), "cli-keep", spec).await;
    let w = c.writer();
    w.insert(
        &region("eu-west-1"),
        item(&[("pk", s("a")), ("home_region", s("eu-west-1"))]),
    )
    .await
    .unwrap();
    let sdk = sdk().await;
    let (arn, shard, sequences) = stream_records(&sdk, &c, "eu-west-1").await;
    let last: u128 = sequences.last().unwrap().parse().unwrap();
    let (beyond, beyond_end) = ((last + 1000).to_string(), (last + 1001).to_string());
    let (sqs, url) = queue(&sdk, "eu-west-1", "cli-keep").await;
    let bodies = [
        failure_message(&arn, &shard, &beyond, &beyond_end, 2),
        failure_message(
            &arn.replace("eu-west-1", "us-west-2"),
            &shard,
            &sequences[0],
            &sequences[0],
            1,
        ),
        r#"{"Records":[{"eventName":"INSERT"}]}"#.to_owned(),
    ];
    for body in bodies {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let options = ReplayOptions {
        wait_seconds: 0,
        ..ReplayOptions::new(&url, region("eu-west-1"))
    };
    let report = replay(&sdk, &settings(&c), &Registry::new(), &options)
        .await
        .unwrap();
    let text = report.to_text();
    println!("{text}");
    assert!(!report.complete());
    assert_eq!((report.replayed, report.kept), (0, 3), "{text}");
    let problems: Vec<&str> = report
        .messages
        .iter()
        .map(|m| m.problem.as_deref().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("records missing") && p.contains(&beyond)),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("the stream is in us-west-2, not eu-west-1")),
        "{text}"
    );
    assert!(
        problems.iter().any(|p| p.contains("no DDBStreamBatchInfo")),
        "{text}"
    );
    // Kept, and visible again for the next run.
    assert_eq!(queued(&sqs, &url).await, 3);
    let again = replay(&sdk, &settings(&c), &Registry::new(), &options)
        .await
        .unwrap();
    assert_eq!(again.kept, 3);
    // The binary exits 1 and says so.
    let out = homeward(
        &c,
        &[
            "replay",
            "--queue",
            &url,
            "--region",
            "eu-west-1",
            "--wait-seconds",
            "0",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("3 messages kept on the queue"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kept"], 3);
}

/// The issue's case: a batch fails for real. Every store call of the
/// resolvers fails (throttling, 5xx, hung calls), Lambda gives up on the
/// foreign write after its retries and sets it aside, as the on-failure
/// destination would; once the cause is gone, `replay` runs it through the
/// resolver, which merges it into the home copy and journals it, and the
/// message is deleted.
#[tokio::test]
async fn a_batch_that_failed_is_replayed_once_the_cause_is_gone() {
    let mut spec = Spec::new(&REGIONS).env("MERGE_RULES", RULES);
    spec.faults = Some(homeward_sim::faults::FaultSpec {
        rate: 1.0,
        seed: 7,
        kill_rate: Some(0.0),
        hang_ms: 5,
    });
    spec.max_retries = 0;
    spec.bisect = false;
    spec.timeout = std::time::Duration::from_millis(2500);
    let mut c = Cluster::start(MotoServer::shared(), "cli-failed", spec).await;
    let w = c.writer();
    let (east, eu) = (region("us-east-1"), region("eu-west-1"));
    w.insert(
        &east,
        item(&[
            ("pk", s("jaws")),
            ("home_region", s("us-east-1")),
            ("rating", n(3)),
        ]),
    )
    .await
    .unwrap();
    c.settle().await;
    c.partition(&["eu-west-1"]);
    w.update(&east, &key("jaws"), |d| {
        d.set("rating", n(4));
    })
    .await
    .unwrap();
    w.update(&eu, &key("jaws"), |d| {
        d.set("rating", n(5));
    })
    .await
    .unwrap();
    c.settle().await;
    let failed: Vec<String> = c
        .stats
        .on_failure
        .iter()
        .filter(|f| f.region == "eu-west-1")
        .map(|f| f.sequence.clone())
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", c.stats);
    // Nothing of it reached the home copy or the journal.
    let home = c.read("us-east-1", &key("jaws")).await.unwrap();
    assert_eq!(home.get("rating"), Some(&n(4)));
    assert!(c.journal("eu-west-1").await.is_empty());

    let sdk = sdk().await;
    let (arn, shard, _) = stream_records(&sdk, &c, "eu-west-1").await;
    let (sqs, url) = queue(&sdk, "eu-west-1", "cli-failed").await;
    sqs.send_message()
        .queue_url(&url)
        .message_body(failure_message(&arn, &shard, &failed[0], &failed[0], 1))
        .send()
        .await
        .unwrap();
    let options = ReplayOptions {
        wait_seconds: 0,
        ..ReplayOptions::new(&url, eu)
    };
    let report = replay(&sdk, &settings(&c), &Registry::new(), &options)
        .await
        .unwrap();
    let text = report.to_text();
    println!("{text}");
    assert_eq!((report.replayed, report.kept), (1, 0), "{text}");
    assert_eq!(report.messages[0].classes.get("foreign"), Some(&1));
    assert_eq!(queued(&sqs, &url).await, 0);
    let home = c.read("us-east-1", &key("jaws")).await.unwrap();
    assert_eq!(home.get("rating"), Some(&n(5)), "merged by rule max");
    let entries = c.journal("eu-west-1").await;
    assert_eq!(entries.len(), 1, "journaled: {entries:?}");
}
