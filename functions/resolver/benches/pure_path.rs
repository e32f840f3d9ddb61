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
use resolver::{triage, version_of, Config, StreamEvent};

/// The bootstrap's allocator (functions/resolver/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The resolver's own pure path: read the event in one pass (images stay
/// slices of it; the stamp headers and homes are picked on the way), triage
/// every record (classify from what was picked), read the foreign writes'
/// images as versions (`version_of`, as the resolver does) and merge them
/// (the old image stands in for the home copy the real resolver reads from
/// DynamoDB, or guesses from that same image). Returns how many merged.
fn pure_path(bytes: &str, config: &Config) -> usize {
    let event = StreamEvent::parse(bytes, config).unwrap();
    let mut merged = 0;
    for record in &event.records {
        let t = triage(config, record).unwrap();
        if let Class::Foreign { .. } = t.class {
            let change = &record.dynamodb;
            let n = version_of(config, change.new_image.as_ref(), "new")
                .unwrap()
                .unwrap();
            let home_copy = version_of(config, change.old_image.as_ref(), "old")
                .unwrap()
                .unwrap();
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

/// `RATIO=n`: the pure path against the floor, alternating, `n` rounds.
/// On a busy machine the two see the same load, and the fastest rounds are
/// the least disturbed.
fn ratio(bytes: &str, config: &Config, rounds: usize) {
    let time = |f: &dyn Fn()| {
        let start = std::time::Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e3
    };
    let (mut floor, mut pure) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        floor.push(time(&|| {
            serde_json::from_str::<serde::de::IgnoredAny>(black_box(bytes)).unwrap();
        }));
        pure.push(time(&|| {
            black_box(pure_path(black_box(bytes), config));
        }));
    }
    for v in [&mut floor, &mut pure] {
        v.sort_by(f64::total_cmp);
    }
    let (f, p) = (floor[rounds / 2], pure[rounds / 2]);
    let (fmin, pmin) = (floor[0], pure[0]);
    println!(
        "ratio over {rounds} rounds: median floor {f:.2} ms, pure path {p:.2} ms: {:.2}x; fastest {fmin:.2} ms, {pmin:.2} ms: {:.2}x",
        p / f,
        pmin / fmin
    );
}

fn bench(c: &mut Criterion) {
    let merger = Merger::new(homeward::fixtures::rules());
    let schema = Schema::new("pk", Some("sk"));
    let homes = HomeStrategy::default();
    let local = Region::parse("us-east-1").unwrap();
    let bytes = homeward::fixtures::stream_batch(0..1000).to_string();
    let config = Config::for_stream_batch("T", "J");
    assert_eq!(pure_path(&bytes, &config), 100);
    assert_eq!(eager_path(&bytes, &merger, &schema, &homes, &local), 100);
    println!("batch: 1000 records, {:.2} MB", bytes.len() as f64 / 1e6);
    if let Some(rounds) = std::env::var("RATIO").ok().and_then(|r| r.parse().ok()) {
        ratio(&bytes, &config, rounds);
    }

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
        // Where the pure path's time goes.
        g.bench_function("probe: the one pass alone", |b| {
            b.iter(|| {
                StreamEvent::parse(black_box(&bytes), &config)
                    .unwrap()
                    .records
                    .len()
            })
        });
        g.bench_function("probe: serde's read (images raw, nothing picked)", |b| {
            b.iter(|| {
                serde_json::from_str::<StreamEvent>(black_box(&bytes))
                    .unwrap()
                    .records
                    .len()
            })
        });
        let ev = StreamEvent::parse(&bytes, &config).unwrap();
        g.bench_function("probe: picking from the images' text again", |b| {
            b.iter(|| {
                for r in &ev.records {
                    for image in [&r.dynamodb.new_image, &r.dynamodb.old_image] {
                        let text = image.as_ref().unwrap().text();
                        black_box(
                            resolver::event::partial_image(text, &["home_region"], "_hw").unwrap(),
                        );
                    }
                }
            })
        });
        g.bench_function("probe: partial images from what the pass found", |b| {
            b.iter(|| {
                for r in &ev.records {
                    for image in [&r.dynamodb.new_image, &r.dynamodb.old_image] {
                        let image = image.as_ref().unwrap();
                        black_box(image.picked(&["home_region"], "_hw").unwrap());
                    }
                }
            })
        });
        let action: Vec<_> = ev
            .records
            .iter()
            .filter(|r| matches!(triage(&config, r).unwrap().class, Class::Foreign { .. }))
            .flat_map(|r| [&r.dynamodb.new_image, &r.dynamodb.old_image])
            .map(|i| i.as_ref().unwrap())
            .collect();
        g.bench_function("probe: whole images of the records that need action", |b| {
            b.iter(|| {
                for image in &action {
                    black_box(image.whole().unwrap());
                }
            })
        });
        g.bench_function("probe: the same through serde_dynamo", |b| {
            b.iter(|| {
                for image in &action {
                    black_box(resolver::event::full_image(image.text()).unwrap());
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
        g.bench_function("probe: the same as versions, from their text", |b| {
            b.iter(|| {
                for image in &action {
                    black_box(image.version(&config.schema).unwrap());
                }
            })
        });
        let items: Vec<_> = action.iter().map(|i| i.whole().unwrap()).collect();
        g.bench_function("probe: the same decoded from their items", |b| {
            b.iter(|| {
                for item in &items {
                    black_box(config.schema.decode(item).unwrap());
                }
            })
        });
        let versions: Vec<_> = action
            .iter()
            .map(|i| i.version(&config.schema).unwrap())
            .collect();
        g.bench_function("probe: merging the foreign writes", |b| {
            b.iter(|| {
                for pair in versions.chunks(2) {
                    black_box(config.merger.merge_into(pair[1].clone(), &pair[0]));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
