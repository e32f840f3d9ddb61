//! The resolver's pure path on a realistic batch, next to the floor no
//! decoder beats: 1,000 records (~5.6 MB) of 30-attribute items, 10% of them
//! foreign writes. The pure path decodes the event, classifies every
//! record, and merges the foreign ones into the home copy (the old image
//! stands in for it). The floor is one validating pass over the same bytes
//! (`serde_json` into `IgnoredAny`).

use aws_lambda_events::event::dynamodb::Event;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use homeward::classify::{classify, Class, EventKind};
use homeward::home::HomeStrategy;
use homeward::{Merger, Region, Schema};
use resolver::{triage, Config, StreamEvent};

/// The resolver's own pure path: decode the event lazily, triage every
/// record (classify from stamps; whole images only for records that need
/// action), merge the foreign writes (the old image stands in for the home
/// copy the real resolver reads from DynamoDB). Returns how many merged.
fn pure_path(bytes: &str, config: &Config) -> usize {
    let event: StreamEvent = serde_json::from_str(bytes).unwrap();
    let mut merged = 0;
    for record in &event.records {
        let t = triage(config, record).unwrap();
        if let Class::Foreign { .. } = t.class {
            let n = config.schema.decode(t.new.as_ref().unwrap()).unwrap();
            let home_copy = config.schema.decode(t.old.as_ref().unwrap()).unwrap();
            black_box(config.merger.merge_into(home_copy, &n));
            merged += 1;
        }
    }
    merged
}

/// The same work on the fully decoded `aws_lambda_events` event, for
/// comparison: every image is built whether it is needed or not.
fn eager_path(
    bytes: &str,
    merger: &Merger,
    schema: &Schema,
    homes: &HomeStrategy,
    local: &Region,
) -> usize {
    let event: Event = serde_json::from_str(bytes).unwrap();
    let mut merged = 0;
    for r in &event.records {
        let (new, old) = (&r.change.new_image, &r.change.old_image);
        let kind = EventKind::parse(&r.event_name).unwrap();
        if let Class::Foreign { .. } =
            classify(local, kind, false, Some(new), Some(old), "_hw", homes).unwrap()
        {
            black_box(merger.merge_into(schema.decode(old).unwrap(), &schema.decode(new).unwrap()));
            merged += 1;
        }
    }
    merged
}

fn bench(c: &mut Criterion) {
    let merger = Merger::new(homeward::fixtures::rules());
    let schema = Schema::new("pk", Some("sk"));
    let homes = HomeStrategy::default();
    let local = Region::parse("us-east-1").unwrap();
    let bytes = homeward::fixtures::stream_batch(0..1000).to_string();
    let vars = [
        ("TABLE_NAME", "T"),
        ("TABLE_KEY", "pk,sk"),
        ("AWS_REGION", "us-east-1"),
        ("JOURNAL_TABLE", "J"),
        (
            "MERGE_RULES",
            r#"{"attributes":{"stock":"counter","tags":"union","rating":"max"}}"#,
        ),
    ];
    let config = Config::from_lookup(
        |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        },
        &homeward::Registry::new(),
    )
    .unwrap();
    assert_eq!(pure_path(&bytes, &config), 100);
    assert_eq!(eager_path(&bytes, &merger, &schema, &homes, &local), 100);
    println!("batch: 1000 records, {:.2} MB", bytes.len() as f64 / 1e6);

    let mut g = c.benchmark_group("1000-record batch");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("floor: serde_json into IgnoredAny", |b| {
        b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(black_box(&bytes)).unwrap())
    });
    g.bench_function("pure path: lazy decode, triage, merge foreign", |b| {
        b.iter(|| pure_path(black_box(&bytes), &config))
    });
    g.bench_function(
        "eager: aws_lambda_events decode, classify, merge foreign",
        |b| b.iter(|| eager_path(black_box(&bytes), &merger, &schema, &homes, &local)),
    );
    if std::env::var("PROBE").is_ok() {
        g.bench_function("probe: StreamEvent only", |b| {
            b.iter(|| {
                serde_json::from_str::<StreamEvent>(black_box(&bytes))
                    .unwrap()
                    .records
                    .len()
            })
        });
        let ev: StreamEvent = serde_json::from_str(&bytes).unwrap();
        g.bench_function("probe: partial images", |b| {
            b.iter(|| {
                for r in &ev.records {
                    black_box(
                        resolver::event::partial_image(
                            r.dynamodb.new_image.as_deref().unwrap(),
                            &["home_region"],
                            "_hw",
                        )
                        .unwrap(),
                    );
                    black_box(
                        resolver::event::partial_image(
                            r.dynamodb.old_image.as_deref().unwrap(),
                            &["home_region"],
                            "_hw",
                        )
                        .unwrap(),
                    );
                }
            })
        });
        g.bench_function("probe: triage", |b| {
            b.iter(|| {
                for r in &ev.records {
                    black_box(triage(&config, r).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
