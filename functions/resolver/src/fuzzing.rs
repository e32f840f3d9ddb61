//! One fuzz input through the resolver's pure path. Shared by the cargo-fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay run by `cargo
//! test` (`tests/fuzz_regressions.rs`), so the two cannot drift.
//!
//! Neither function may panic, whatever the bytes: every malformed input is
//! an error value the resolver reports (and quarantines), never a crash.
//! The exceptions are deliberate: `event` panics when the resolver's one
//! pass over an event reads it differently from serde, or when triage
//! reads a record differently through its glimpses than through its
//! partial items (findings).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use homeward::classify::Class;
use homeward::edit::WriteContext;
use homeward::home::{decide, ForeignWrite, Trigger};
use homeward::{Registry, Schema, Version, WriterKind};
use serde_dynamo::Item;

use crate::event::{pass_agrees, version_agrees, Pick};
use crate::{triage, triage_agrees, version_of, Config, StreamEvent};

/// The fixed configuration the fuzz targets run under: the seed's Movies
/// table, homes by the `src_region` attribute, resolver of us-east-1.
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let vars = HashMap::from([
            ("TABLE_NAME", "Movies"),
            ("TABLE_KEY", "year,title"),
            ("AWS_REGION", "us-east-1"),
            ("JOURNAL_TABLE", "J"),
            ("HOME_STRATEGY", "attribute:src_region"),
            ("REHOME", "after:3"),
            (
                "MERGE_RULES",
                r#"{"default":"lww","attributes":{"rating":"max","tags":"union","stock":"counter"}}"#,
            ),
        ]);
        Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()), &Registry::new())
            .expect("the fuzzing configuration is valid")
    })
}

/// Target `event`: the bytes as a DynamoDB stream event (JSON, as the Lambda
/// runtime hands it over: UTF-8 text), read by the one pass, which must read
/// it as serde does ([`pass_agrees`]); every image read as a version from
/// its text as from its item ([`version_agrees`]); every record through
/// [`triage`]; the versions a record needs are then read as the resolver
/// reads them and worked on as it would (`version_one`).
pub fn event_one(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let c = config();
    assert_ne!(
        pass_agrees(text, &Arc::new(Pick::of(c))),
        Some(false),
        "the one pass reads this event differently from serde"
    );
    let Ok(event) = StreamEvent::parse(text, c) else {
        return;
    };
    for record in &event.records {
        assert!(
            triage_agrees(c, record),
            "triage reads this record differently through its glimpses"
        );
        let change = &record.dynamodb;
        for image in [&change.new_image, &change.old_image].into_iter().flatten() {
            assert!(
                version_agrees(image, &c.schema),
                "an image reads as another version from its text than from its item"
            );
        }
        let Ok(triaged) = triage(c, record) else {
            continue;
        };
        let (new, old) = if let Class::Foreign { .. } = triaged.class {
            // A foreign write's versions, as the resolver reads them.
            let read = |image, which| version_of(c, image, which).ok().flatten();
            (
                read(change.new_image.as_ref(), "new"),
                read(change.old_image.as_ref(), "old"),
            )
        } else {
            let decode = |item: &Option<Item>| item.as_ref().and_then(|i| c.schema.decode(i).ok());
            (decode(&triaged.new), decode(&triaged.old))
        };
        if let Some(v) = &new {
            version_one(v, old.as_ref());
        }
        if let Some(v) = &old {
            version_one(v, None);
        }
    }
}

/// Target `stamp`: the bytes as one item in DynamoDB JSON, through
/// [`Schema::decode`]; a version that decodes is then merged, restamped and
/// encoded (`version_one`).
pub fn stamp_one(bytes: &[u8]) {
    let Ok(item) = serde_json::from_slice::<Item>(bytes) else {
        return;
    };
    let c = config();
    let Ok(version) = c.schema.decode(&item) else {
        // The stamp header and home alone, as `classify` reads them.
        let _ = c.homes.home_of(&item);
        return;
    };
    let _ = c.homes.home_of(&item);
    version_one(&version, None);
}

/// What the resolver does with a decoded version: merges it (with itself,
/// and with `other`), restamps the merge as its own write, takes the next
/// counter and epoch, encodes it and decodes the encoding again.
fn version_one(version: &Version, other: Option<&Version>) {
    let c = config();
    let merged = match other {
        Some(o) => c.merger.merge(version, o),
        None => c.merger.merge(version, version),
    };
    let _ = merged.explanation.to_owned();
    let ctx = WriteContext {
        region: c.region.clone(),
        time_ms: version.header.time_ms,
        nonce: 7,
        by: WriterKind::Resolver,
    };
    let _ = version.next_counter(&c.region);
    if let Some(home) = &version.home {
        let _ = home.next_epoch();
        // The home copy deciding about this version as a foreign write.
        let write = ForeignWrite {
            region: &version.header.origin,
            counter: version.header.tick.counter,
            time_ms: version.header.time_ms,
            seen: other.and_then(|o| o.home.as_ref()),
        };
        for evacuated in [false, true] {
            let _ = decide(c.rehome, home, write, evacuated);
            let _ = decide(Trigger::Always, home, write, evacuated);
        }
    }
    if let Ok(restamped) = homeward::edit::try_restamp(merged.version, &ctx, &c.merger) {
        let encoded = c.schema.encode(&restamped);
        let _ = c.schema.decode(&encoded);
    }
    round_trip(&c.schema, version);
}

fn round_trip(schema: &Schema, version: &Version) {
    let _ = schema.decode(&schema.encode(version));
}
