//! Merge of two realistic 30-attribute versions, and the stamp's decode and
//! encode, on the fixture in `homeward::fixtures`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use homeward::fixtures::{concurrent_pair, rules, schema};
use homeward::Merger;

fn bench(c: &mut Criterion) {
    let (x, y) = concurrent_pair();
    let merger = Merger::new(rules());
    let schema = schema();
    let merged = merger.merge(&x, &y).version;
    let item = schema.encode(&merged);
    println!(
        "stamp size: {} bytes of a {}-byte item (30 attributes, 3 Regions)",
        homeward::size::value_size(&homeward::stamp::encode_stamp(&merged)),
        homeward::size::item_size(&item)
    );

    c.bench_function("merge 30-attribute versions", |b| {
        b.iter(|| merger.merge(black_box(&x), black_box(&y)))
    });
    c.bench_function("merge_into 30-attribute versions (left owned)", |b| {
        b.iter_batched(
            || x.clone(),
            |left| merger.merge_into(left, black_box(&y)),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("decode item + stamp", |b| {
        b.iter(|| schema.decode(black_box(&item)).unwrap())
    });
    c.bench_function("encode item + stamp", |b| {
        b.iter(|| schema.encode(black_box(&merged)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
