//! The routing vectors: which Region a write goes to, whether it moves the
//! item's home, and the home it records, per home strategy. Made by the
//! real [`Router`] over an in-memory store holding the item in every Region.

use std::collections::BTreeSet;
use std::time::Duration;

use homeward::control::Evacuations;
use homeward::home::HomeStrategy;
use homeward::routing::{Mode, Router};
use homeward::writer::{Clock, WriteError};
use homeward::{Region, Writer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{json, Map, Value};

use crate::memory::MemStore;
use crate::writes::{home_json, EAST, EU, T0, WEST, WEST2};
use crate::{item, item_json, n, s, value_json, Change, Setup, Table};

/// The Regions the in-memory table has.
pub const REGIONS: [&str; 5] = [EAST, WEST, WEST2, EU, "ap-south-1"];

#[derive(Debug, Clone)]
pub enum RouteOp {
    Insert(Item),
    Update(Change),
    MoveHome(String),
}

#[derive(Debug, Clone)]
pub struct RouteCase {
    pub name: String,
    pub description: String,
    pub strategy: String,
    pub table_name: String,
    pub partition_key: String,
    pub mode: Mode,
    pub local: String,
    pub evacuated: Vec<String>,
    pub unreachable: Vec<String>,
    /// The item as stored in every Region before the write.
    pub stored: Option<Item>,
    pub op: RouteOp,
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("a Region")
}

impl RouteCase {
    fn homes(&self) -> HomeStrategy {
        HomeStrategy::parse(&self.strategy, "_hw", &self.table_name).expect("a strategy")
    }

    fn table(&self) -> Table {
        let mut table = Table::new(&self.partition_key, None);
        table.home_attribute = self.homes().mirror().map(str::to_owned);
        table
    }

    /// Runs the case through the real router.
    pub fn expected(&self) -> Value {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(self.run())
    }

    async fn run(&self) -> Value {
        let table = self.table();
        let schema = table.schema();
        let setup = Setup::new(table.clone(), json!({}), 32);
        let mut store = MemStore::new(schema.clone());
        store.unreachable = self.unreachable.iter().map(|r| region(r)).collect();
        if let Some(stored) = &self.stored {
            for r in REGIONS {
                store.seed(&region(r), stored.clone());
            }
        }
        let writer = Writer::new(store.clone(), schema.clone(), setup.merger())
            .with_clock(Clock::from_fn(|_| T0 + 60_000));
        let control = MemStore::new(homeward::Schema::new("pk", Some("sk")));
        let evacuated: BTreeSet<Region> = self.evacuated.iter().map(|r| region(r)).collect();
        let router = Router::new(
            writer,
            region(&self.local),
            self.mode,
            self.homes(),
            control,
            Evacuations::new(evacuated, Duration::ZERO),
        );
        let key = Item::from(
            schema
                .key_of(match (&self.op, &self.stored) {
                    (RouteOp::Insert(item), _) => item,
                    (_, Some(stored)) => stored,
                    (_, None) => panic!("{}: an update needs a stored item", self.name),
                })
                .expect("a key")
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
        let routed = match &self.op {
            RouteOp::Insert(item) => router.insert(item.clone()).await,
            RouteOp::Update(change) => router.update(&key, |d| change.apply_to(d)).await,
            RouteOp::MoveHome(to) => router.move_home(&key, &region(to)).await,
        };
        match routed {
            Ok(routed) => {
                let mirror = table
                    .home_attribute
                    .as_ref()
                    .and_then(|name| routed.version.values().remove(name));
                json!({
                    "region": routed.region.as_str(),
                    "moved": routed.moved,
                    "home": routed.version.home.as_ref().map(home_json),
                    "home_attribute": mirror.as_ref().map(value_json),
                })
            }
            Err(e) => json!({"error": {"kind": error_kind(&e)}}),
        }
    }

    pub fn json(&self) -> Value {
        let op = match &self.op {
            RouteOp::Insert(item) => json!({"kind": "insert", "item": item_json(item)}),
            RouteOp::Update(change) => {
                let set: Map<String, Value> = change
                    .set
                    .iter()
                    .map(|(k, v)| (k.clone(), value_json(v)))
                    .collect();
                json!({"kind": "update", "set": set})
            }
            RouteOp::MoveHome(to) => json!({"kind": "move_home", "to": to}),
        };
        json!({
            "name": self.name,
            "description": self.description,
            "strategy": self.strategy,
            "table_name": self.table_name,
            "table": self.table().json(),
            "mode": match self.mode { Mode::Route => "route", Mode::Local => "local" },
            "local": self.local,
            "evacuated": self.evacuated,
            "unreachable": self.unreachable,
            "stored": self.stored.as_ref().map(item_json),
            "operation": op,
            "expect": self.expected(),
        })
    }
}

fn error_kind(e: &WriteError) -> &'static str {
    match e {
        WriteError::Home(_) => "home",
        WriteError::NotFound => "not_found",
        WriteError::AlreadyExists => "already_exists",
        WriteError::BadKey(_) => "bad_key",
        WriteError::Store(_) => "unavailable",
        _ => "other",
    }
}

struct Cases {
    strategy: String,
    table_name: String,
    partition_key: String,
    cases: Vec<RouteCase>,
}

impl Cases {
    fn new(strategy: &str, table_name: &str, partition_key: &str) -> Self {
        Cases {
            strategy: strategy.into(),
            table_name: table_name.into(),
            partition_key: partition_key.into(),
            cases: Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        name: &str,
        description: &str,
        mode: Mode,
        local: &str,
        evacuated: &[&str],
        unreachable: &[&str],
        stored: Option<Item>,
        op: RouteOp,
    ) {
        self.cases.push(RouteCase {
            name: name.into(),
            description: description.into(),
            strategy: self.strategy.clone(),
            table_name: self.table_name.clone(),
            partition_key: self.partition_key.clone(),
            mode,
            local: local.into(),
            evacuated: evacuated.iter().map(|r| (*r).to_owned()).collect(),
            unreachable: unreachable.iter().map(|r| (*r).to_owned()).collect(),
            stored,
            op,
        });
    }
}

fn set(name: &str, value: AttributeValue) -> RouteOp {
    RouteOp::Update(Change::default().set(name, value))
}

/// The routing file: (name, description, cases).
pub fn files() -> Vec<(String, String, Vec<Value>)> {
    let mut all = Vec::new();

    // attribute:home_region
    let mut c = Cases::new("attribute:home_region", "Users", "pk");
    let homed_west = || {
        item(&[
            ("pk", s("user-42")),
            ("name", s("Ada")),
            ("home_region", s(WEST)),
        ])
    };
    c.add(
        "attribute/route-to-home",
        "Route mode: the write goes to the Region the home attribute names.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(homed_west()),
        set("name", s("Ada L.")),
    );
    c.add(
        "attribute/local-mode",
        "Local mode: the write stays in the caller's Region.",
        Mode::Local,
        EAST,
        &[],
        &[],
        Some(homed_west()),
        set("name", s("Ada L.")),
    );
    c.add(
        "attribute/home-is-local",
        "The item is homed in the caller's Region.",
        Mode::Route,
        WEST,
        &[],
        &[],
        Some(homed_west()),
        set("name", s("Ada L.")),
    );
    c.add(
        "attribute/no-home",
        "An item that names no home is written in the caller's Region.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(item(&[("pk", s("user-43")), ("name", s("Bob"))])),
        set("name", s("Rob")),
    );
    c.add("attribute/home-unreachable", "The home does not answer: the write is made in the caller's Region instead (the resolvers reconcile it); the home does not move.",
        Mode::Route, EAST, &[], &[WEST], Some(homed_west()), set("name", s("Ada L.")));
    c.add("attribute/home-evacuated", "The home is evacuated: the write is made here and moves the home here (epoch 1), the home attribute set to match.",
        Mode::Route, EAST, &[WEST], &[], Some(homed_west()), set("name", s("Ada L.")));
    c.add(
        "attribute/home-evacuated-local-mode",
        "Local mode honours evacuations too.",
        Mode::Local,
        EAST,
        &[WEST],
        &[],
        Some(homed_west()),
        set("name", s("Ada L.")),
    );
    c.add(
        "attribute/other-region-evacuated",
        "An evacuation of a Region that is not the home changes nothing.",
        Mode::Route,
        EAST,
        &[EU],
        &[],
        Some(homed_west()),
        set("name", s("Ada L.")),
    );
    c.add(
        "attribute/insert",
        "An insert goes to the home its attribute names; the stamp records no home.",
        Mode::Route,
        EAST,
        &[],
        &[],
        None,
        RouteOp::Insert(homed_west()),
    );
    c.add("attribute/insert-home-evacuated", "An item born during an evacuation of the home it names is homed here from the start (epoch 1, attribute rewritten).",
        Mode::Route, EAST, &[WEST], &[], None, RouteOp::Insert(homed_west()));
    c.add("attribute/move-home", "A move is written at the current home, one epoch on, with the home attribute set to the target.",
        Mode::Route, EAST, &[], &[], Some(homed_west()), RouteOp::MoveHome(EU.into()));
    c.add(
        "attribute/move-home-evacuated",
        "Moving away from an evacuated home is written at the target.",
        Mode::Route,
        EAST,
        &[WEST],
        &[],
        Some(homed_west()),
        RouteOp::MoveHome(EU.into()),
    );
    c.add("attribute/change-home-attribute", "An update that changes the home attribute of an item whose stamp records no home yet: written at the (old) home, no `h`/`e`.",
        Mode::Route, EAST, &[], &[], Some(homed_west()), set("home_region", s(EU)));
    all.extend(c.cases);

    // key-prefix:pk
    let mut c = Cases::new("key-prefix:pk", "Users", "pk");
    let prefixed = || item(&[("pk", s("us-west-1#user-42")), ("name", s("Ada"))]);
    c.add(
        "key-prefix/route-to-home",
        "The home is the key's `region#` prefix.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(prefixed()),
        set("name", s("Ada L.")),
    );
    c.add(
        "key-prefix/local-mode",
        "Local mode.",
        Mode::Local,
        EAST,
        &[],
        &[],
        Some(prefixed()),
        set("name", s("Ada L.")),
    );
    c.add(
        "key-prefix/home-evacuated",
        "A fixed home cannot move: the write is made here, the home stays.",
        Mode::Route,
        EAST,
        &[WEST],
        &[],
        Some(prefixed()),
        set("name", s("Ada L.")),
    );
    c.add(
        "key-prefix/home-unreachable",
        "The home does not answer: written here.",
        Mode::Route,
        EAST,
        &[],
        &[WEST],
        Some(prefixed()),
        set("name", s("Ada L.")),
    );
    c.add(
        "key-prefix/insert",
        "An insert goes to the prefix's Region.",
        Mode::Route,
        EAST,
        &[],
        &[],
        None,
        RouteOp::Insert(prefixed()),
    );
    c.add(
        "key-prefix/move-home",
        "Moving a fixed home is refused (`home` error).",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(prefixed()),
        RouteOp::MoveHome(EU.into()),
    );
    all.extend(c.cases);

    // stamp
    let mut c = Cases::new("stamp", "Users", "pk");
    let stamped = || {
        let setup = Setup::new(Table::new("pk", None), json!({}), 32);
        let (v, _) = crate::write(
            &setup,
            None,
            &crate::Operation::Insert(item(&[("pk", s("user-42")), ("name", s("Ada"))])),
            &crate::context(WEST, T0, 5),
            Some(homeward::Home::new(region(WEST), 0)),
        )
        .expect("insert");
        setup.table.schema().encode(&v)
    };
    c.add(
        "stamp/insert",
        "An insert is homed in the inserting Region at epoch 0 (`h`, `e` in the stamp).",
        Mode::Route,
        EAST,
        &[],
        &[],
        None,
        RouteOp::Insert(item(&[("pk", s("user-42")), ("name", s("Ada"))])),
    );
    c.add(
        "stamp/route-to-home",
        "The home is the stamp's `h`.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(stamped()),
        set("name", s("Ada L.")),
    );
    c.add(
        "stamp/local-mode",
        "Local mode.",
        Mode::Local,
        EAST,
        &[],
        &[],
        Some(stamped()),
        set("name", s("Ada L.")),
    );
    c.add(
        "stamp/home-evacuated",
        "The home is evacuated: written here, home moved here (epoch 1).",
        Mode::Route,
        EAST,
        &[WEST],
        &[],
        Some(stamped()),
        set("name", s("Ada L.")),
    );
    c.add(
        "stamp/home-unreachable",
        "The home does not answer: written here, the home stays.",
        Mode::Route,
        EAST,
        &[],
        &[WEST],
        Some(stamped()),
        set("name", s("Ada L.")),
    );
    c.add(
        "stamp/move-home",
        "A move: written at the home, epoch 1.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(stamped()),
        RouteOp::MoveHome(EU.into()),
    );
    c.add(
        "stamp/unstamped-item",
        "An item without a stamp names no home: written here and adopted.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(item(&[("pk", s("user-44")), ("name", s("Eve"))])),
        set("name", s("Eve A.")),
    );
    all.extend(c.cases);

    // table:orders-{region}
    let mut c = Cases::new("table:orders-{region}", "orders-eu-west-1", "pk");
    let order = || item(&[("pk", s("order-7")), ("total", n(12))]);
    c.add(
        "table/route-to-home",
        "Every item of `orders-eu-west-1` is homed in eu-west-1.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(order()),
        set("total", n(13)),
    );
    c.add(
        "table/local-mode",
        "Local mode.",
        Mode::Local,
        EAST,
        &[],
        &[],
        Some(order()),
        set("total", n(13)),
    );
    c.add(
        "table/home-evacuated",
        "A fixed home cannot move: written here.",
        Mode::Route,
        EAST,
        &[EU],
        &[],
        Some(order()),
        set("total", n(13)),
    );
    c.add(
        "table/insert",
        "An insert goes to the table's Region; no home in the stamp.",
        Mode::Route,
        EAST,
        &[],
        &[],
        None,
        RouteOp::Insert(order()),
    );
    c.add(
        "table/move-home",
        "Moving is refused.",
        Mode::Route,
        EAST,
        &[],
        &[],
        Some(order()),
        RouteOp::MoveHome(WEST2.into()),
    );
    all.extend(c.cases);

    vec![(
        "routing".into(),
        "Routing: the Region each write goes to, per home strategy and mode, with evacuated and unreachable Regions.".into(),
        all.iter().map(RouteCase::json).collect(),
    )]
}
