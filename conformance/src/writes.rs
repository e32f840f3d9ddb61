//! The write vectors: an item as read, a change, the writer's Region, time
//! and nonce, and the item to write with its condition (or the error).

use std::collections::{BTreeMap, BTreeSet};

use homeward::adopt::{adopt, canonical_text};
use homeward::edit::{restamp, WriteContext};
use homeward::{Home, PendingMove, Region, Tick, Version, WriterKind};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Value};

use crate::{
    condition_json, context, item, item_json, n, s, ss, write, Change, Operation, Setup, Table,
};

/// The seed's Movies example starts here (README: 2025-11-25 01:00 UTC).
pub const T0: u64 = 1_764_032_400_000;

pub const EAST: &str = "us-east-1";
pub const WEST: &str = "us-west-1";
pub const WEST2: &str = "us-west-2";
pub const EU: &str = "eu-west-1";

/// One write vector.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub setup: Setup,
    pub read: Option<Item>,
    pub op: Operation,
    pub ctx: WriteContext,
    pub home: Option<Home>,
}

impl Case {
    pub fn expected(&self) -> Value {
        match write(
            &self.setup,
            self.read.as_ref(),
            &self.op,
            &self.ctx,
            self.home.clone(),
        ) {
            Ok((version, condition)) => json!({
                "item": item_json(&self.setup.table.schema().encode(&version)),
                "condition": condition_json(&condition),
            }),
            Err(failure) => json!({"error": failure.json()}),
        }
    }

    pub fn json(&self) -> Value {
        let mut out = json!({
            "name": self.name,
            "description": self.description,
            "setup": self.setup.json(),
            "read": self.read.as_ref().map(item_json),
            "operation": self.op.json(),
            "home": self.home.as_ref().map(home_json),
            "context": {
                "region": self.ctx.region.as_str(),
                "time_ms": self.ctx.time_ms,
                "nonce": self.ctx.nonce,
                "nonce36": base36(self.ctx.nonce),
            },
            "expect": self.expected(),
        });
        if let Some(adoption) = self.adoption() {
            out["adoption"] = adoption;
        }
        out
    }

    /// What the writer adopts from the item read before its change, when a
    /// plain writer changed it (or it has no stamp; `homeward::adopt`): the
    /// adoption's dot, the attributes taken in, and for the plain
    /// attributes' edit and the counters' slot each its dot and the text its
    /// nonce hashes (informative: `expect` already holds their effect).
    pub fn adoption(&self) -> Option<Value> {
        let read = self.read.as_ref()?;
        let schema = self.setup.table.schema();
        let rules = self.setup.merger().rules;
        let adopted = adopt(&schema, &rules, read, None).ok()?;
        let dot = adopted.dot?;
        let (base, counters) = if read.contains_key(&schema.stamp_attribute) {
            let (version, _) = schema.decode_lenient(read).ok()?;
            (version.header.dot().encode(), version.counters)
        } else {
            (String::new(), BTreeMap::new())
        };
        let is_counter = |name: &str| counters.contains_key(name) || rules.is_counter(name);
        let mut register_text = format!("{base}\n");
        let mut registers = 0;
        for name in adopted.attributes.iter().filter(|n| !is_counter(n)) {
            register_text.push_str(name);
            register_text.push('\n');
            register_text.push_str(&canonical_text(&read[name]));
            register_text.push('\n');
            registers += 1;
        }
        let slot_text = format!("{base}\n");
        let known = &adopted.version.known[&dot.region];
        let tick = |text: &str| {
            let tick = Tick {
                counter: dot.tick.counter,
                nonce: fnv1a32(text.as_bytes()),
            };
            assert!(
                known.contains(&tick),
                "{}: the documented nonce text disagrees with the core's",
                self.name
            );
            format!("{}:{}", dot.region, tick.encode())
        };
        let part = |text: &str| json!({"dot": tick(text), "text": text});
        Some(json!({
            "dot": dot.encode(),
            "attributes": adopted.attributes,
            "register": (registers > 0).then(|| part(&register_text)),
            "slot": adopted
                .attributes
                .iter()
                .any(|n| is_counter(n))
                .then(|| part(&slot_text)),
        }))
    }
}

/// FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193), as the
/// README documents it for the adoption nonce.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

pub fn home_json(home: &Home) -> Value {
    json!({"region": home.region.as_str(), "epoch": home.epoch})
}

pub fn base36(mut v: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if v == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while v > 0 {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("a Region")
}

/// Builds cases and the histories they read.
struct Book {
    cases: Vec<Case>,
}

impl Book {
    fn new() -> Self {
        Book { cases: Vec::new() }
    }

    /// Adds a case; returns the item it writes (`None` for an error case).
    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        name: &str,
        description: &str,
        setup: &Setup,
        read: Option<&Item>,
        op: Operation,
        ctx: WriteContext,
        home: Option<Home>,
    ) -> Option<Item> {
        let case = Case {
            name: name.into(),
            description: description.into(),
            setup: setup.clone(),
            read: read.cloned(),
            op,
            ctx,
            home,
        };
        let out = written(&case);
        self.cases.push(case);
        out
    }

    fn json(&self) -> Vec<Value> {
        self.cases.iter().map(Case::json).collect()
    }
}

/// What a case writes, `None` when it fails.
fn written(case: &Case) -> Option<Item> {
    write(
        &case.setup,
        case.read.as_ref(),
        &case.op,
        &case.ctx,
        case.home.clone(),
    )
    .ok()
    .map(|(v, _)| case.setup.table.schema().encode(&v))
}

/// A write made only to build the next case's input.
fn step(setup: &Setup, read: Option<&Item>, op: Operation, ctx: WriteContext) -> Item {
    step_homed(setup, read, op, ctx, None)
}

fn step_homed(
    setup: &Setup,
    read: Option<&Item>,
    op: Operation,
    ctx: WriteContext,
    home: Option<Home>,
) -> Item {
    let (v, _) = write(setup, read, &op, &ctx, home).expect("a history step is valid");
    setup.table.schema().encode(&v)
}

fn upd() -> Change {
    Change::default()
}

fn movies() -> Setup {
    Setup::new(Table::new("year", Some("title")), json!({}), 32)
}

fn shop(window: usize) -> Setup {
    Setup::new(
        Table::new("pk", None),
        json!({"attributes": {"stock": "counter", "tags": "union", "rating": "max:N"}}),
        window,
    )
}

fn jaws(setup: &Setup) -> Item {
    step(
        setup,
        None,
        Operation::Insert(item(&[
            ("year", n(1975)),
            ("title", s("Jaws")),
            ("director", s("Steven Spielberg")),
            ("src_region", s(WEST)),
        ])),
        context(WEST, T0, 1_592_590_336),
    )
}

fn sku(setup: &Setup) -> Item {
    step(
        setup,
        None,
        Operation::Insert(item(&[
            ("pk", s("sku-42")),
            ("name", s("lamp")),
            ("stock", n(10)),
            ("tags", ss(&["home", "light"])),
            ("rating", n(4)),
        ])),
        context(EAST, T0, 7),
    )
}

/// Every write case, in file order.
pub fn cases() -> Vec<Case> {
    [
        inserts(),
        updates(),
        counters(),
        siblings(),
        unstamped(),
        adoptions(),
        deletes(),
        homes(),
    ]
    .into_iter()
    .flat_map(|b| b.cases)
    .collect()
}

/// Every file of write vectors: (file name, description, cases).
pub fn files() -> Vec<(String, String, Vec<Value>)> {
    vec![
        (
            "insert".into(),
            "Inserts: a first version (condition not_exists), refused inserts.".into(),
            inserts().json(),
        ),
        (
            "update".into(),
            "Updates of plain attributes: sets, removes, dots kept for unchanged attributes, windows of several Regions.".into(),
            updates().json(),
        ),
        (
            "counters".into(),
            "Counter attributes: increments, sets, folding of deltas that leave the dot window.".into(),
            counters().json(),
        ),
        (
            "siblings".into(),
            "Items holding concurrent edits (`s`) as the resolver writes them, then written by an app.".into(),
            siblings().json(),
        ),
        (
            "unstamped".into(),
            "Items without a stamp (legacy or plain writers): every attribute adopted as an edit of the pseudo-Region `unattributed` (time 0), then the write (condition unstamped).".into(),
            unstamped().json(),
        ),
        (
            "adopt".into(),
            "Stamped items changed by plain writers (outside the stamp protocol): attributes without a dot and counters off their contributions are adopted as edits of the pseudo-Region `unattributed` with one adoption dot, then the app's change applies (condition dot_is the stamp's dot).".into(),
            adoptions().json(),
        ),
        (
            "delete".into(),
            "Soft deletes and revivals (an insert over a soft-deleted item).".into(),
            deletes().json(),
        ),
        (
            "home".into(),
            "Homes and epochs in the stamp: kept, moved by the home attribute, moved on request, stale requests.".into(),
            homes().json(),
        ),
    ]
}

fn inserts() -> Book {
    let mut b = Book::new();
    let m = movies();
    b.case(
        "insert/movies-jaws",
        "The README's example, first write: Jaws created in us-west-1. Every attribute in one `d` group; `k` = {us-west-1: 1:nonce}.",
        &m,
        None,
        Operation::Insert(item(&[
            ("year", n(1975)),
            ("title", s("Jaws")),
            ("director", s("Steven Spielberg")),
            ("src_region", s(WEST)),
        ])),
        context(WEST, T0, 1_592_590_336),
        None,
    );
    let shop = shop(32);
    b.case(
        "insert/counter-set-and-max",
        "A counter starts as a contribution of the writer's Region (`0 0 1:nonce:10`); other attributes are plain.",
        &shop,
        None,
        Operation::Insert(item(&[
            ("pk", s("sku-42")),
            ("name", s("lamp")),
            ("stock", n(10)),
            ("tags", ss(&["light", "home"])),
            ("rating", n(4)),
        ])),
        context(EAST, T0, 7),
        None,
    );
    b.case(
        "insert/every-type",
        "Values of every DynamoDB type pass through unchanged (B and BS are base64 in DynamoDB JSON).",
        &shop,
        None,
        Operation::Insert(item(&[
            ("pk", s("kinds")),
            ("text", s("héllo \"quoted\"")),
            ("number", n("-12.50")),
            ("binary", AttributeValue::B(vec![0, 1, 2, 255])),
            ("flag", AttributeValue::Bool(true)),
            ("nothing", AttributeValue::Null(true)),
            (
                "list",
                AttributeValue::L(vec![s("a"), n(1), AttributeValue::Bool(false)]),
            ),
            (
                "map",
                AttributeValue::M(
                    [("x".to_owned(), n(1)), ("y".to_owned(), ss(&["p", "q"]))]
                        .into_iter()
                        .collect(),
                ),
            ),
            (
                "numbers",
                AttributeValue::Ns(vec!["3".into(), "1".into(), "2".into()]),
            ),
            (
                "blobs",
                AttributeValue::Bs(vec![vec![1], vec![2, 3]]),
            ),
        ])),
        context(EU, T0 + 5, 0),
        None,
    );
    b.case(
        "insert/with-home",
        "An insert that records the item's home (the `stamp` strategy's router: the inserting Region, epoch 0): `h` and `e` in the stamp.",
        &shop,
        None,
        Operation::Insert(item(&[("pk", s("user-1")), ("name", s("Ada"))])),
        context(EAST, T0, 4_294_967_295),
        Some(Home::new(region(EAST), 0)),
    );
    let live = sku(&shop);
    b.case(
        "insert/already-exists",
        "A live item holds the key: the insert is refused.",
        &shop,
        Some(&live),
        Operation::Insert(item(&[("pk", s("sku-42")), ("name", s("other"))])),
        context(EAST, T0 + 1000, 8),
        None,
    );
    b.case(
        "insert/counter-not-a-number",
        "A counter attribute needs a whole number.",
        &shop,
        None,
        Operation::Insert(item(&[("pk", s("sku-43")), ("stock", s("ten"))])),
        context(EAST, T0, 9),
        None,
    );
    b.case(
        "insert/stamp-attribute-given",
        "The app may not write the stamp attribute.",
        &shop,
        None,
        Operation::Insert(item(&[
            ("pk", s("sku-44")),
            ("_hw", AttributeValue::M(Default::default())),
        ])),
        context(EAST, T0, 9),
        None,
    );
    b
}

fn updates() -> Book {
    let mut b = Book::new();
    let m = movies();
    let jaws = jaws(&m);
    let rated = b
        .case(
            "update/movies-rating",
            "The README's example: Jaws (created in us-west-1) gets a rating in us-east-1. The rating gets the new dot's group in `d`; `k` gains us-east-1.",
            &m,
            Some(&jaws),
            Operation::Update(upd().set("rating", n(5))),
            context(EAST, T0 + 1000, 1_592_591_336),
            None,
        )
        .unwrap();
    b.case(
        "update/same-region-again",
        "A second write of us-east-1: counter 2, `k` lists both dots highest first; the earlier group of us-east-1 loses `rating` and is dropped when empty.",
        &m,
        Some(&rated),
        Operation::Update(upd().set("rating", n(4))),
        context(EAST, T0 + 2000, 77),
        None,
    );
    b.case(
        "update/unchanged-value-keeps-its-dot",
        "Setting an attribute to the value it has changes nothing for it (it keeps its dot); the other attribute moves to the new group.",
        &m,
        Some(&rated),
        Operation::Update(upd().set("rating", n(5)).set("director", s("S. Spielberg"))),
        context(WEST, T0 + 2000, 5),
        None,
    );
    b.case(
        "update/remove",
        "A removal: the attribute leaves the item and stays in the new dot's group in `d` (a tombstone).",
        &m,
        Some(&rated),
        Operation::Update(upd().remove("director")),
        context(EU, T0 + 2000, 123_456),
        None,
    );
    b.case(
        "update/remove-absent",
        "Removing an attribute the item does not have changes nothing but the stamp (a new dot, in `k` only).",
        &m,
        Some(&rated),
        Operation::Update(upd().remove("plot")),
        context(EU, T0 + 2000, 123_457),
        None,
    );
    b.case(
        "update/empty-change",
        "An update that changes nothing still writes a new dot.",
        &m,
        Some(&rated),
        Operation::Update(upd()),
        context(WEST, T0 + 2000, 1),
        None,
    );
    let removed = step(
        &m,
        Some(&rated),
        Operation::Update(upd().remove("director")),
        context(EU, T0 + 2000, 123_456),
    );
    b.case(
        "update/set-after-remove",
        "Setting an attribute that has a tombstone: its tombstone's group loses it (and is dropped, being empty).",
        &m,
        Some(&removed),
        Operation::Update(upd().set("director", s("Spielberg"))),
        context(WEST, T0 + 3000, 2),
        None,
    );
    b.case(
        "update/remove-tombstone-again",
        "Removing an attribute that is already a tombstone: unchanged, it keeps its dot.",
        &m,
        Some(&removed),
        Operation::Update(upd().remove("director")),
        context(WEST, T0 + 3000, 3),
        None,
    );
    // A longer history over three Regions.
    let mut it = removed.clone();
    let plan = [
        (WEST, "plot", "shark"),
        (EAST, "plot", "a shark"),
        (WEST, "budget", "9M"),
        (EU, "plot", "a big shark"),
        (EAST, "budget", "9.0M"),
    ];
    for (i, (r, attr, value)) in plan.iter().enumerate() {
        it = step(
            &m,
            Some(&it),
            Operation::Update(upd().set(attr, s(value))),
            context(r, T0 + 4000 + i as u64 * 1000, 1000 + i as u32),
        );
    }
    b.case(
        "update/three-regions",
        "After writes from three Regions: several `d` groups, three windows in `k`.",
        &m,
        Some(&it),
        Operation::Update(upd().set("plot", s("the shark")).set("year_seen", n(1976))),
        context(WEST, T0 + 10_000, 99),
        None,
    );
    b.case(
        "update/key-attribute",
        "Key attributes cannot be changed.",
        &m,
        Some(&jaws),
        Operation::Update(upd().set("title", s("Jaws 2"))),
        context(EAST, T0 + 1000, 1),
        None,
    );
    b.case(
        "update/stamp-attribute",
        "The stamp attribute cannot be changed.",
        &m,
        Some(&jaws),
        Operation::Update(upd().remove("_hw")),
        context(EAST, T0 + 1000, 1),
        None,
    );
    b.case(
        "update/not-found",
        "No item with this key: nothing is written.",
        &m,
        None,
        Operation::Update(upd().set("rating", n(5))),
        context(EAST, T0 + 1000, 1),
        None,
    );
    b.case(
        "update/not-a-counter",
        "Increments are only for counter attributes.",
        &m,
        Some(&jaws),
        Operation::Update(upd().increment("rating", 1)),
        context(EAST, T0 + 1000, 1),
        None,
    );
    b
}

fn counters() -> Book {
    let mut b = Book::new();
    let shop32 = shop(32);
    let start = sku(&shop32);
    let once = b
        .case(
            "counters/increment",
            "An increment: `counter:nonce:delta` appended to the writer's Region's contribution, the attribute set to the new total; `stock` is in no `d` group.",
            &shop32,
            Some(&start),
            Operation::Update(upd().increment("stock", -1)),
            context(WEST2, T0 + 1000, 11),
            None,
        )
        .unwrap();
    let twice = b
        .case(
            "counters/increment-same-region",
            "A second increment of a Region whose contribution exists: deltas in ascending counter order.",
            &shop32,
            Some(&once),
            Operation::Update(upd().increment("stock", -2)),
            context(WEST2, T0 + 2000, 12),
            None,
        )
        .unwrap();
    b.case(
        "counters/increment-and-set",
        "An increment together with plain sets in one write.",
        &shop32,
        Some(&twice),
        Operation::Update(upd().increment("stock", 5).set("name", s("desk lamp"))),
        context(EAST, T0 + 3000, 13),
        None,
    );
    b.case(
        "counters/set-counter",
        "Setting a counter to a value writes the difference from the current total as this write's delta.",
        &shop32,
        Some(&twice),
        Operation::Update(upd().set("stock", n(100))),
        context(EU, T0 + 3000, 14),
        None,
    );
    b.case(
        "counters/remove-counter",
        "A counter cannot be removed.",
        &shop32,
        Some(&twice),
        Operation::Update(upd().remove("stock")),
        context(EU, T0 + 3000, 14),
        None,
    );
    b.case(
        "counters/set-not-a-number",
        "A counter can only be set to a whole number.",
        &shop32,
        Some(&twice),
        Operation::Update(upd().set("stock", n("1.5"))),
        context(EU, T0 + 3000, 14),
        None,
    );
    let big = step(
        &shop32,
        Some(&twice),
        Operation::Update(upd().set("stock", n(i64::MAX))),
        context(EAST, T0 + 4000, 15),
    );
    b.case(
        "counters/overflow",
        "A total that would leave i64 is refused.",
        &shop32,
        Some(&big),
        Operation::Update(upd().increment("stock", 1)),
        context(EAST, T0 + 5000, 16),
        None,
    );

    // Folding with a small window: the 5th write of a Region drops its
    // lowest counter; that dot's delta moves into the base.
    let shop4 = shop(4);
    let mut it = sku(&shop4);
    for i in 0..3u32 {
        it = step(
            &shop4,
            Some(&it),
            Operation::Update(upd().increment("stock", i64::from(i) + 1)),
            context(EAST, T0 + 1000 * u64::from(i + 1), 20 + i),
        );
    }
    let folded = b
        .case(
            "counters/fold-small-window",
            "DOT_WINDOW 4: us-east-1's 5th write keeps counters 2..5 in `k`; the delta of counter 1 is folded into the base (`10 1 ...`).",
            &shop4,
            Some(&it),
            Operation::Update(upd().increment("stock", 100)),
            context(EAST, T0 + 5000, 30),
            None,
        )
        .unwrap();
    b.case(
        "counters/fold-without-increment",
        "A plain write also trims the window and folds the counter's deltas that leave it.",
        &shop4,
        Some(&folded),
        Operation::Update(upd().set("name", s("lamp 2"))),
        context(EAST, T0 + 6000, 31),
        None,
    );
    // Another Region's longer history read under a smaller window.
    let mut west = sku(&shop32);
    for i in 0..6u32 {
        west = step(
            &shop32,
            Some(&west),
            Operation::Update(upd().increment("stock", -1)),
            context(WEST2, T0 + 1000 * u64::from(i + 1), 40 + i),
        );
    }
    b.case(
        "counters/fold-other-region",
        "Trimming applies to every Region's window: read under DOT_WINDOW 4, us-west-2's six dots keep the four highest and its contribution folds the rest, although us-east-1 writes.",
        &shop4,
        Some(&west),
        Operation::Update(upd().increment("stock", 1)),
        context(EAST, T0 + 9000, 50),
        None,
    );
    // The default window: the 33rd write of one Region.
    let mut long = sku(&shop32);
    for i in 0..31u32 {
        long = step(
            &shop32,
            Some(&long),
            Operation::Update(upd().increment("stock", 1)),
            context(EAST, T0 + 1000 * u64::from(i + 1), 100 + i),
        );
    }
    b.case(
        "counters/fold-default-window",
        "DOT_WINDOW 32: the 33rd write of us-east-1 drops counter 1 from `k` and folds its delta into the base.",
        &shop32,
        Some(&long),
        Operation::Update(upd().increment("stock", 1)),
        context(EAST, T0 + 40_000, 200),
        None,
    );
    b
}

/// The resolver's merge of two concurrent writes, restamped as it writes it.
fn merged(setup: &Setup, left: &Item, right: &Item, ctx: &WriteContext) -> Item {
    let schema = setup.table.schema();
    let merger = setup.merger();
    let l = schema.decode(left).expect("left");
    let r = schema.decode(right).expect("right");
    let m = merger.merge(&l, &r).version;
    let v: Version = restamp(m, ctx, &merger);
    schema.encode(&v)
}

fn siblings() -> Book {
    let mut b = Book::new();
    let setup = Setup::new(
        Table::new("pk", None),
        json!({"attributes": {"stock": "counter", "rating": "max:N"}}),
        32,
    );
    let base = step(
        &setup,
        None,
        Operation::Insert(item(&[
            ("pk", s("film-7")),
            ("rating", n(3)),
            ("note", s("first")),
            ("title", s("Alien")),
            ("stock", n(5)),
        ])),
        context(EAST, T0, 1),
    );
    let east = step(
        &setup,
        Some(&base),
        Operation::Update(
            upd()
                .set("rating", n(4))
                .set("note", s("east"))
                .increment("stock", -1),
        ),
        context(EAST, T0 + 1000, 2),
    );
    let west = step(
        &setup,
        Some(&base),
        Operation::Update(
            upd()
                .set("rating", n(5))
                .remove("note")
                .increment("stock", -2),
        ),
        context(WEST2, T0 + 1500, 3),
    );
    let mut resolver = context(WEST2, T0 + 2000, 4);
    resolver.by = WriterKind::Resolver;
    let both = merged(&setup, &west, &east, &resolver);
    b.case(
        "siblings/replaced-by-a-set",
        "`rating` holds two concurrent edits in `s` (max shows 5); the app sets it: the `s` entry is dropped and `rating` joins the new dot's group. `note` keeps its siblings.",
        &setup,
        Some(&both),
        Operation::Update(upd().set("rating", n(2))),
        context(EAST, T0 + 3000, 5),
        None,
    );
    b.case(
        "siblings/replaced-by-the-shown-value",
        "Setting an attribute with siblings to the value it shows still replaces the siblings (a new edit, not an unchanged one).",
        &setup,
        Some(&both),
        Operation::Update(upd().set("rating", n(5))),
        context(EAST, T0 + 3000, 6),
        None,
    );
    b.case(
        "siblings/replaced-by-a-remove",
        "Removing an attribute with siblings: the `s` entry becomes a tombstone in the new group.",
        &setup,
        Some(&both),
        Operation::Update(upd().remove("note")),
        context(WEST2, T0 + 3000, 7),
        None,
    );
    b.case(
        "siblings/untouched",
        "Editing other attributes keeps `s` as it is; the counter's contributions of both Regions stay.",
        &setup,
        Some(&both),
        Operation::Update(upd().set("title", s("Aliens")).increment("stock", 10)),
        context(EU, T0 + 3000, 8),
        None,
    );
    b.case(
        "siblings/soft-delete",
        "A soft delete removes what every attribute shows, siblings included.",
        &setup,
        Some(&both),
        Operation::Delete,
        context(EAST, T0 + 3000, 9),
        None,
    );
    b
}

fn unstamped() -> Book {
    let mut b = Book::new();
    let m = movies();
    let legacy = item(&[
        ("year", n(1975)),
        ("title", s("Jaws")),
        ("director", s("Steven Spielberg")),
        ("src_region", s(WEST)),
    ]);
    b.case(
        "unstamped/adopt-on-update",
        "An item without a stamp: every attribute is adopted as one edit of `unattributed` (counter 1, time 0, the nonce over an empty base dot), in its own `d` group; then the write adds its dot (counter 1 of its Region), conditionally on the item still having no stamp.",
        &m,
        Some(&legacy),
        Operation::Update(upd().set("rating", n(5))),
        context(EAST, T0 + 1000, 17),
        None,
    );
    b.case(
        "unstamped/adopt-on-remove",
        "Adopting while removing an attribute: the removed one leaves the adoption's group for the write's (a tombstone).",
        &m,
        Some(&legacy),
        Operation::Update(upd().remove("src_region")),
        context(EAST, T0 + 1000, 18),
        None,
    );
    b.case(
        "unstamped/adopt-on-delete",
        "A soft delete of an unstamped item.",
        &m,
        Some(&legacy),
        Operation::Delete,
        context(EAST, T0 + 1000, 19),
        None,
    );
    let shop = shop(32);
    b.case(
        "unstamped/adopt-counter",
        "A legacy counter value becomes a contribution of `unattributed`, in the slot of the empty base dot (`1:<nonce of \"\\n\">`); `k.unattributed` holds the plain attributes' dot and the slot.",
        &shop,
        Some(&item(&[
            ("pk", s("sku-9")),
            ("stock", n(7)),
            ("name", s("bulb")),
        ])),
        Operation::Update(upd().set("name", s("led bulb"))),
        context(EU, T0 + 1000, 20),
        None,
    );
    b.case(
        "unstamped/adopt-increment",
        "An increment of an adopted legacy counter: the legacy value is `unattributed`'s contribution, the increment the writer's (7 + 2 = 9).",
        &shop,
        Some(&item(&[
            ("pk", s("sku-9")),
            ("stock", n(7)),
            ("name", s("bulb")),
        ])),
        Operation::Update(upd().increment("stock", 2)),
        context(EU, T0 + 1000, 21),
        None,
    );
    b
}

/// A stamped item with a plain writer's changes: `set` put as they are
/// (boto3 `UpdateItem` SET/ADD), the stamp left as it was.
fn plainly(item: &Item, set: &[(&str, AttributeValue)]) -> Item {
    let mut out = item.clone();
    for (name, value) in set {
        out.insert((*name).to_owned(), value.clone());
    }
    out
}

fn m(pairs: &[(&str, AttributeValue)]) -> AttributeValue {
    AttributeValue::M(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn adoptions() -> Book {
    let mut b = Book::new();
    let setup = Setup::new(
        Table::new("pk", None),
        json!({"attributes": {"stock": "counter", "sold": "counter", "tags": "union", "rating": "max:N"}}),
        32,
    );
    let live = sku(&setup);
    let colored = plainly(&live, &[("color", s("red"))]);
    let first = b
        .case(
            "adopt/added-attribute",
            "A plain writer added `color` (no dot in the stamp). It is adopted with the dot `unattributed:1:<nonce>` at the stamp's `t` (its own `d` group), `k` gains `unattributed: 1:<nonce>`; then the app's change gets us-east-1's next dot.",
            &setup,
            Some(&colored),
            Operation::Update(upd().set("name", s("desk lamp"))),
            context(EAST, T0 + 1000, 101),
            None,
        )
        .unwrap();
    b.case(
        "adopt/set-to-the-adopted-value",
        "The app sets an adopted attribute to the value it has: unchanged, it keeps the adoption dot.",
        &setup,
        Some(&colored),
        Operation::Update(upd().set("color", s("red")).set("name", s("desk lamp"))),
        context(EAST, T0 + 1000, 102),
        None,
    );
    let dims = m(&[
        ("width", n(20)),
        ("height", n("35.5")),
        ("unit", s("cm")),
        ("a b", AttributeValue::Bool(true)),
        ("a\nb", AttributeValue::Null(true)),
        ("～", s("fullwidth tilde")),
        ("😀", s("emoji")),
        ("Über", ss(&["y", "x"])),
        (
            "parts",
            AttributeValue::L(vec![
                s("leg"),
                n(4),
                m(&[("z", n(1)), ("a", AttributeValue::Bool(false))]),
            ]),
        ),
    ]);
    let labels = ss(&[
        "zeta",
        "a\"b",
        "a b",
        "a\nb",
        "Ålborg",
        "～",
        "😀",
        "back\\slash",
    ]);
    b.case(
        "adopt/map-and-string-set",
        "Two attributes added by a plain writer, a map and a string set: one adoption dot for both (one `d` group). The nonce hashes their canonical text: map keys sorted by their UTF-8 bytes (raw), set members sorted by their encoded text (JSON strings), so `\"a b\"` sorts before `\"a\\nb\"` in the set and after it among the map's keys; U+FF5E sorts before U+1F600 (UTF-8, not UTF-16, order).",
        &setup,
        Some(&plainly(&live, &[("dims", dims), ("labels", labels)])),
        Operation::Update(upd().increment("stock", -1)),
        context(WEST2, T0 + 1000, 103),
        None,
    );
    b.case(
        "adopt/every-type",
        "Added attributes of every DynamoDB type (canonical text: `S` + JSON string with control characters escaped, `N` + the number's text, `B` + lower-case hex, `BOOLtrue`, `NULL`, `L[...]`, `NS[...]` sorted as text, `BS[...]` sorted hex); the app removes one of them, which leaves the adoption's group for its own (a tombstone).",
        &setup,
        Some(&plainly(
            &live,
            &[
                ("text", s("tab\there \u{1} \u{7f} \u{2028} \"q\" \\ é")),
                ("count", n("-12.50")),
                ("blob", AttributeValue::B(vec![0, 1, 171, 255])),
                ("flag", AttributeValue::Bool(true)),
                ("nothing", AttributeValue::Null(true)),
                (
                    "list",
                    AttributeValue::L(vec![s("a"), n(1), AttributeValue::Bool(false)]),
                ),
                (
                    "numbers",
                    AttributeValue::Ns(vec!["10".into(), "9".into(), "-1".into()]),
                ),
                ("blobs", AttributeValue::Bs(vec![vec![2, 3], vec![1]])),
            ],
        )),
        Operation::Update(upd().remove("flag")),
        context(EU, T0 + 1000, 104),
        None,
    );
    b.case(
        "adopt/counter-plain-add",
        "A plain `ADD stock 5` (10 -> 15): the counter is off its contributions by 5, adopted as a contribution of `unattributed` in the stamp's slot (`0 0 1:<slot nonce>:5`, the nonce hashing the stamp's dot alone); the app's increment adds its own delta (total 14). `stock` is in no `d` group.",
        &setup,
        Some(&plainly(&live, &[("stock", n(15))])),
        Operation::Update(upd().increment("stock", -1)),
        context(EU, T0 + 1000, 105),
        None,
    );
    b.case(
        "adopt/counter-plain-set-new",
        "A plain `SET sold = 3` of an attribute the rules call a counter, new to the item: adopted as `unattributed`'s contribution of 3 in the stamp's slot (a new `c.sold`).",
        &setup,
        Some(&plainly(&live, &[("sold", n(3))])),
        Operation::Update(upd().set("name", s("lamp, sold"))),
        context(EU, T0 + 1000, 106),
        None,
    );
    let again = plainly(&first, &[("stock", n(12)), ("note", s("restocked"))]);
    b.case(
        "adopt/second-adoption",
        "An item whose stamp already knows `unattributed:1:...` (an earlier adoption, written by the app) changed again by a plain writer (`ADD stock 2`, `SET note`): counter 2 for both the plain attribute's dot (`note`, at the stamp's `t`) and the counter's slot (`stock`); `k.unattributed` lists all three ticks, highest first. The app changes the attribute adopted first.",
        &setup,
        Some(&again),
        Operation::Update(upd().set("color", s("blue"))),
        context(WEST2, T0 + 2000, 107),
        None,
    );
    b.case(
        "adopt/soft-delete",
        "A soft delete of an item with a plain writer's attribute: adopted, then removed with the others (the adoption's group, left empty, is dropped; `k` keeps its dot).",
        &setup,
        Some(&colored),
        Operation::Delete,
        context(EAST, T0 + 1000, 108),
        None,
    );
    b.case(
        "adopt/counter-not-a-number",
        "A plain writer set the counter `stock` to a string: it cannot be adopted; the write is refused (`stamp`, naming the attribute) and nothing is written.",
        &setup,
        Some(&plainly(&live, &[("stock", s("many"))])),
        Operation::Update(upd().set("name", s("x"))),
        context(EAST, T0 + 1000, 109),
        None,
    );
    b.case(
        "adopt/new-counter-not-whole",
        "A plain `SET sold = 2.5` of an attribute the rules call a counter: not a whole number, refused like a counter of the stamp (`stamp`, naming the attribute).",
        &setup,
        Some(&plainly(&live, &[("sold", n("2.5"))])),
        Operation::Update(upd().increment("sold", 1)),
        context(EAST, T0 + 1000, 110),
        None,
    );
    b
}

fn deletes() -> Book {
    let mut b = Book::new();
    let shop = shop(32);
    let live = sku(&shop);
    let gone = b
        .case(
            "delete/soft",
            "Every plain attribute is removed (tombstones in the new group), the TTL attribute `hw_expires` = time_ms / 1000 (floor) + retention_seconds gets the new dot; the counter keeps its contributions.",
            &shop,
            Some(&live),
            Operation::Delete,
            context(WEST2, T0 + 1999, 60),
            None,
        )
        .unwrap();
    b.case(
        "delete/already-deleted",
        "A soft-deleted item (it has the TTL attribute) is not found.",
        &shop,
        Some(&gone),
        Operation::Delete,
        context(WEST2, T0 + 3000, 61),
        None,
    );
    b.case(
        "delete/update-deleted",
        "Updates do not see soft-deleted items.",
        &shop,
        Some(&gone),
        Operation::Update(upd().set("name", s("x"))),
        context(WEST2, T0 + 3000, 62),
        None,
    );
    b.case(
        "delete/not-found",
        "Nothing to delete.",
        &shop,
        None,
        Operation::Delete,
        context(WEST2, T0 + 3000, 63),
        None,
    );
    b.case(
        "delete/revive",
        "An insert over a soft-deleted item writes on top of its tombstone, conditionally on its dot: the TTL attribute becomes a tombstone, the counter is set to the new value through a delta.",
        &shop,
        Some(&gone),
        Operation::Insert(item(&[
            ("pk", s("sku-42")),
            ("name", s("lamp")),
            ("stock", n(3)),
        ])),
        context(EAST, T0 + 5000, 64),
        None,
    );
    b
}

fn homes() -> Book {
    let mut b = Book::new();
    let setup = Setup::new(
        Table::new("pk", None).with_home_attribute("home_region"),
        json!({"attributes": {"visits": "counter"}}),
        32,
    );
    let user = |home_region: &str| {
        item(&[
            ("pk", s("user-42")),
            ("name", s("Ada")),
            ("home_region", s(home_region)),
            ("visits", n(1)),
        ])
    };
    // Attribute only: the stamp records no home yet.
    let plain = step(
        &setup,
        None,
        Operation::Insert(user(EAST)),
        context(EAST, T0, 1),
    );
    b.case(
        "home/attribute-without-stamped-home",
        "While the stamp records no home, the home attribute is an ordinary attribute: changing it writes no `h`/`e`.",
        &setup,
        Some(&plain),
        Operation::Update(upd().set("home_region", s(EU))),
        context(EAST, T0 + 1000, 2),
        None,
    );
    b.case(
        "home/first-stamped-home",
        "A write asked to record a home on an item whose stamp has none (a move by the router: epoch 1, the home attribute set to match).",
        &setup,
        Some(&plain),
        Operation::Update(upd().set("home_region", s(EU))),
        context(EAST, T0 + 1000, 3),
        Some(Home::new(region(EU), 1)),
    );
    // A stamped home at epoch 2 with foreign writes counted (`m`).
    let homed = step_homed(
        &setup,
        Some(&plain),
        Operation::Update(upd().set("home_region", s(EAST))),
        context(EAST, T0 + 1000, 4),
        Some(Home::new(region(EAST), 2)),
    );
    let schema = setup.table.schema();
    let mut v = schema.decode(&homed).expect("homed");
    v.home = Some(Home {
        epoch: 2,
        region: region(EAST),
        pending: Some(PendingMove {
            writes: BTreeMap::from([(region(EU), BTreeSet::from([(3, T0 + 500), (4, T0 + 900)]))]),
        }),
    });
    let counted = schema.encode(&v);
    b.case(
        "home/update-keeps-home",
        "A write that does not move the home keeps `h`, `e` and `m` as read.",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("name", s("Ada L.")).increment("visits", 1)),
        context(EU, T0 + 2000, 5),
        None,
    );
    b.case(
        "home/move-by-attribute",
        "Changing the home attribute of an item whose stamp records its home moves it: `h` = the new Region, `e` = e + 1, `m` dropped.",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("home_region", s(EU))),
        context(EU, T0 + 2000, 6),
        None,
    );
    b.case(
        "home/move-on-request",
        "A move asked for by the router (home = the target at e + 1, the home attribute set to it): `h`/`e` as asked, `m` dropped.",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("home_region", s(WEST2))),
        context(EAST, T0 + 2000, 7),
        Some(Home::new(region(WEST2), 3)),
    );
    b.case(
        "home/stale-request-ignored",
        "A requested home not above the recorded one (epoch, then Region name) is ignored: the item keeps its newer home.",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("name", s("Ada B."))),
        context(WEST2, T0 + 2000, 8),
        Some(Home::new(region(WEST2), 1)),
    );
    b.case(
        "home/same-epoch-higher-region",
        "At equal epochs the Region name breaks the tie: `us-west-2` > `us-east-1`, so the request is applied (`m` dropped).",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("name", s("Ada C."))),
        context(WEST2, T0 + 2000, 9),
        Some(Home::new(region(WEST2), 2)),
    );
    b.case(
        "home/same-home-requested",
        "Requesting the home the item already records changes nothing in the home (`m` kept).",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("name", s("Ada D."))),
        context(EAST, T0 + 2000, 10),
        Some(Home::new(region(EAST), 2)),
    );
    b.case(
        "home/bad-home-attribute",
        "A home attribute set to something that is not a Region name, on an item whose stamp records its home.",
        &setup,
        Some(&counted),
        Operation::Update(upd().set("home_region", s("Mars 1"))),
        context(EAST, T0 + 2000, 11),
        None,
    );
    b.case(
        "home/soft-delete-keeps-home",
        "A soft delete removes the home attribute like any other but keeps the stamp's home.",
        &setup,
        Some(&counted),
        Operation::Delete,
        context(EAST, T0 + 2000, 12),
        None,
    );
    b.case(
        "home/insert-with-home",
        "An insert that records a home (an item born during an evacuation of its named home: this Region, epoch 1).",
        &setup,
        None,
        Operation::Insert(user(EU)),
        context(EU, T0, 13),
        Some(Home::new(region(EU), 1)),
    );
    b
}
