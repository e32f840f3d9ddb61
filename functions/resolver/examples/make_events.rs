//! Writes the sample stream events in `events/` (run from the repository
//! root: `cargo run -p resolver --example make_events`). The stamps are made
//! by the real core library, with fixed times and nonces so the files are
//! reproducible. The seed's Movies table: `year` (N) and `title` (S) keys,
//! `src_region` as the home attribute.

use std::collections::BTreeMap;

use homeward::edit::{apply, empty_version, restamp, WriteContext};
use homeward::{Draft, Merger, Region, Rules, Schema, Version, WriterKind};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};

const T0: u64 = 1_764_032_400_000; // 2025-11-25T01:00:00Z

fn schema() -> Schema {
    Schema::new("year", Some("title"))
}

fn merger() -> Merger {
    Merger::new(Rules::default())
}

fn ctx(region: &str, by: WriterKind, offset_ms: u64) -> WriteContext {
    WriteContext {
        region: Region::parse(region).expect("Region"),
        time_ms: T0 + offset_ms,
        nonce: 0x5eed_0000 + offset_ms as u32,
        by,
    }
}

fn movie(year: u32, title: &str, director: &str, home: &str) -> Version {
    let key: BTreeMap<String, AttributeValue> = [
        ("year".to_string(), AttributeValue::N(year.to_string())),
        ("title".to_string(), AttributeValue::S(title.into())),
    ]
    .into();
    let c = ctx(home, WriterKind::App, 0);
    let mut d = Draft::default();
    d.set("director", AttributeValue::S(director.into()))
        .set("rating", AttributeValue::N("7".into()))
        .set("src_region", AttributeValue::S(home.into()));
    apply(&empty_version(key, &c), &d, &c, &merger(), &schema(), None).expect("movie")
}

fn write(base: &Version, region: &str, offset_ms: u64, edit: impl FnOnce(&mut Draft)) -> Version {
    let c = ctx(region, WriterKind::App, offset_ms);
    let mut d = Draft::new(base.values());
    edit(&mut d);
    apply(base, &d, &c, &merger(), &schema(), None).expect("write")
}

fn item(v: &Version) -> Item {
    schema().encode(v)
}

fn keys_of(item: &Item) -> Item {
    let mut keys = item.clone();
    keys.retain(|k, _| k == "year" || k == "title");
    keys
}

struct Rec<'a> {
    name: &'a str,
    region: &'a str,
    new: Option<Item>,
    old: Option<Item>,
    sequence: u64,
    ttl: bool,
}

fn record(r: Rec) -> Value {
    let keys = keys_of(r.new.as_ref().or(r.old.as_ref()).expect("an image"));
    let mut change = json!({
        "ApproximateCreationDateTime": (T0 / 1000) + r.sequence,
        "Keys": keys,
        "SequenceNumber": format!("{}", 4_000_000_000_000_000_000u64 + r.sequence),
        "SizeBytes": 0,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    let size =
        serde_json::to_string(&r.new).unwrap().len() + serde_json::to_string(&r.old).unwrap().len();
    change["SizeBytes"] = json!(size);
    if let Some(new) = &r.new {
        change["NewImage"] = serde_json::to_value(new).unwrap();
    }
    if let Some(old) = &r.old {
        change["OldImage"] = serde_json::to_value(old).unwrap();
    }
    let mut rec = json!({
        "eventID": format!("{:032x}", r.sequence * 7919),
        "eventName": r.name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": r.region,
        "dynamodb": change,
        "eventSourceARN": format!("arn:aws:dynamodb:{}:123456789012:table/Movies/stream/2025-11-25T00:00:00.000", r.region),
    });
    if r.ttl {
        rec["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    rec
}

fn save(name: &str, records: Vec<Value>) {
    let path = format!("events/{name}.json");
    let text = serde_json::to_string_pretty(&json!({ "Records": records })).unwrap() + "\n";
    std::fs::write(&path, text)
        .unwrap_or_else(|e| panic!("writing {path}: {e} (run from the repository root)"));
    println!("wrote {path}");
}

fn main() {
    // The seed: Jaws is homed in us-west-1; an app in us-east-1 updates it.
    let jaws = movie(1975, "Jaws", "Steven Spielberg", "us-west-1");
    let foreign = write(&jaws, "us-east-1", 1_000, |d| {
        d.set("rating", AttributeValue::N("8".into()));
    });
    let rec = |name, region, new: Option<&Version>, old: Option<&Version>, sequence| Rec {
        name,
        region,
        new: new.map(item),
        old: old.map(item),
        sequence,
        ttl: false,
    };
    save(
        "foreign-write",
        vec![record(rec(
            "MODIFY",
            "us-east-1",
            Some(&foreign),
            Some(&jaws),
            1,
        ))],
    );
    save(
        "replicated",
        vec![record(rec(
            "MODIFY",
            "us-west-1",
            Some(&foreign),
            Some(&jaws),
            2,
        ))],
    );
    let home = write(&jaws, "us-west-1", 1_200, |d| {
        d.set("director", AttributeValue::S("S. Spielberg".into()));
    });
    save(
        "home-write",
        vec![record(rec(
            "MODIFY",
            "us-west-1",
            Some(&home),
            Some(&jaws),
            3,
        ))],
    );

    // The us-west-1 edit (made without seeing us-east-1's) wins
    // last-writer-wins in us-east-1 and overwrites the rating change there.
    save(
        "clobber",
        vec![record(rec(
            "MODIFY",
            "us-east-1",
            Some(&home),
            Some(&foreign),
            4,
        ))],
    );

    // The resolver's merge, written in the home Region, seen there.
    let merged = merger().merge(&home, &foreign).version;
    let fixed = restamp(
        merged,
        &ctx("us-west-1", WriterKind::Resolver, 2_000),
        &merger(),
    );
    save(
        "echo",
        vec![record(rec(
            "MODIFY",
            "us-west-1",
            Some(&fixed),
            Some(&home),
            5,
        ))],
    );

    // A legacy writer that ignores the stamp protocol.
    let mut legacy = item(&movie(1944, "Lifeboat", "Alfred Hitchcock", "us-east-1"));
    legacy.remove("_hw");
    save(
        "unattributed",
        vec![record(Rec {
            name: "INSERT",
            region: "us-east-1",
            new: Some(legacy),
            old: None,
            sequence: 6,
            ttl: false,
        })],
    );

    let titanic = movie(1997, "Titanic", "James Cameron", "us-east-1");
    let delete = |sequence, ttl| Rec {
        name: "REMOVE",
        region: "us-east-1",
        new: None,
        old: Some(item(&titanic)),
        sequence,
        ttl,
    };
    save("ttl-delete", vec![record(delete(7, true))]);
    save("hard-delete", vec![record(delete(8, false))]);

    // One batch: a good foreign write, a MODIFY without its old image, a
    // stamp with an unreadable dot, and another good foreign write.
    let lifeboat = movie(1944, "Lifeboat", "Alfred Hitchcock", "us-east-1");
    let lifeboat_away = write(&lifeboat, "eu-west-1", 3_000, |d| {
        d.set("rating", AttributeValue::N("9".into()));
    });
    let titanic_away = write(&titanic, "eu-west-1", 3_100, |d| {
        d.set("rating", AttributeValue::N("6".into()));
    });
    let mut no_old = record(rec("MODIFY", "eu-west-1", Some(&titanic_away), None, 10));
    no_old["dynamodb"]["Keys"]["title"] = json!({"S": "The Abyss"});
    no_old["dynamodb"]["NewImage"]["title"] = json!({"S": "The Abyss"});
    let mut bad_stamp = record(rec(
        "MODIFY",
        "eu-west-1",
        Some(&titanic_away),
        Some(&titanic),
        11,
    ));
    bad_stamp["dynamodb"]["Keys"]["title"] = json!({"S": "Aliens"});
    bad_stamp["dynamodb"]["NewImage"]["title"] = json!({"S": "Aliens"});
    bad_stamp["dynamodb"]["OldImage"]["title"] = json!({"S": "Aliens"});
    bad_stamp["dynamodb"]["NewImage"]["_hw"]["M"]["dot"] = json!({"S": "eu-west-1:garbage"});
    save(
        "malformed",
        vec![
            record(rec(
                "MODIFY",
                "eu-west-1",
                Some(&lifeboat_away),
                Some(&lifeboat),
                9,
            )),
            no_old,
            bad_stamp,
            record(rec(
                "MODIFY",
                "eu-west-1",
                Some(&titanic_away),
                Some(&titanic),
                12,
            )),
        ],
    );
}
