//! The generator's pure glue writes what the real `homeward::Writer`
//! writes: every successful write vector is replayed through the writer
//! over an in-memory store (its nonce is random: the glue is re-run with
//! the nonce the writer drew), and every refused one is refused by it too.

use std::collections::HashMap;
use std::time::Duration;

use homeward::writer::{Clock, Tombstones};
use homeward::{Region, Writer};
use homeward_conformance::memory::MemStore;
use homeward_conformance::writes::{cases, Case};
use homeward_conformance::{item_json, write, Operation};
use serde_dynamo::Item;

async fn through_writer(case: &Case) -> Result<Item, String> {
    let table = &case.setup.table;
    let schema = table.schema();
    let store = MemStore::new(schema.clone());
    let region = case.ctx.region.clone();
    if let Some(read) = &case.read {
        store.seed(&region, read.clone());
    }
    let time = case.ctx.time_ms;
    let mut writer = Writer::new(store.clone(), schema.clone(), case.setup.merger())
        .with_clock(Clock::from_fn(move |_: &Region| time));
    writer.home_attribute = table.home_attribute.clone();
    writer.tombstones = Tombstones {
        ttl_attribute: table.ttl_attribute.clone(),
        retention: Duration::from_secs(table.retention_seconds),
    };
    let key_of = |item: &Item| {
        Item::from(
            schema
                .key_of(item)
                .unwrap()
                .into_iter()
                .collect::<HashMap<_, _>>(),
        )
    };
    let version = match &case.op {
        Operation::Insert(item) => {
            writer
                .insert_homed(&region, item.clone(), case.home.clone())
                .await
        }
        Operation::Update(change) => {
            let key = match &case.read {
                Some(read) => key_of(read),
                None => return Err("not_found".into()),
            };
            match &case.home {
                Some(home) => {
                    writer
                        .update_homed(&region, &key, home.clone(), |d| change.apply_to(d))
                        .await
                }
                None => writer.update(&region, &key, |d| change.apply_to(d)).await,
            }
        }
        Operation::Delete => {
            let key = match &case.read {
                Some(read) => key_of(read),
                None => return Err("not_found".into()),
            };
            writer.delete(&region, &key).await
        }
    };
    let version = version.map_err(|e| e.to_string())?;
    Ok(schema.encode(&version))
}

#[test]
fn the_writer_writes_what_the_vectors_expect() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut checked = 0;
    for case in cases() {
        let got = runtime.block_on(through_writer(&case));
        let mut ctx = case.ctx.clone();
        match got {
            Ok(item) => {
                let schema = case.setup.table.schema();
                let version = schema.decode(&item).unwrap();
                ctx.nonce = version.header.tick.nonce;
                let (expected, _) = write(
                    &case.setup,
                    case.read.as_ref(),
                    &case.op,
                    &ctx,
                    case.home.clone(),
                )
                .unwrap_or_else(|f| {
                    panic!("{}: the glue refuses ({f:?}), the writer writes", case.name)
                });
                assert_eq!(
                    item_json(&schema.encode(&expected)),
                    item_json(&item),
                    "{}: the writer and the vector differ",
                    case.name
                );
            }
            Err(e) => {
                let refused = write(
                    &case.setup,
                    case.read.as_ref(),
                    &case.op,
                    &ctx,
                    case.home.clone(),
                );
                assert!(
                    refused.is_err(),
                    "{}: the writer refuses ({e}), the vector writes",
                    case.name
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "{checked}");
}
