//! Where an item's home Region is, and when it moves (seed 004, "write to
//! your Region"). Pure: the negotiated strategy's assignment table and the
//! list of evacuated Regions are read by the shells ([`crate::control`]).

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use crate::dot::Region;
use crate::stamp::decode_home;
use crate::version::{Home, PendingMove, Version};

/// How to find an item's home Region, and the stamp attribute that records
/// re-homes (their epochs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeStrategy {
    pub source: HomeSource,
    pub stamp_attribute: String,
}

/// Where the home Region is written down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeSource {
    /// Intrinsic: an attribute of the item holds the Region name (the seed's
    /// `src_region`; default `home_region`). Once the item has been
    /// re-homed, the stamp's home (with its epoch) is authoritative and the
    /// attribute mirrors it.
    Attribute(String),
    /// Intrinsic: a key attribute's value starts with `region#`
    /// (`us-east-1#user-42`). Such items are reconciled but never re-homed.
    KeyPrefix(String),
    /// Only the stamp's home (`h`, `e`) records it.
    Stamp,
    /// Negotiated: an assignment table (key -> Region, epoch, lease) decides;
    /// writers stamp the assignment they used, and the epoch fences stale
    /// ones.
    Negotiated,
    /// Table-oriented: the home is part of the table name (`orders-{region}`):
    /// every item of this table is homed in `region`. Never re-homed.
    Table { pattern: String, region: Region },
}

impl Default for HomeStrategy {
    fn default() -> Self {
        HomeStrategy {
            source: HomeSource::Attribute("home_region".into()),
            stamp_attribute: crate::stamp::DEFAULT_STAMP_ATTRIBUTE.into(),
        }
    }
}

impl HomeStrategy {
    /// Parses `attribute:<name>`, `key-prefix:<key attribute>`, `stamp`,
    /// `negotiated` or `table:<pattern with {region}>` (the pattern is
    /// matched against `table_name`).
    ///
    /// # Errors
    /// A message naming the accepted forms, or why the table name does not
    /// match the pattern.
    pub fn parse(spec: &str, stamp_attribute: &str, table_name: &str) -> Result<Self, String> {
        let source = match spec.split_once(':') {
            Some(("attribute", name)) if !name.is_empty() => HomeSource::Attribute(name.into()),
            Some(("key-prefix", name)) if !name.is_empty() => HomeSource::KeyPrefix(name.into()),
            Some(("table", pattern)) => HomeSource::Table {
                region: region_in_table_name(pattern, table_name)?,
                pattern: pattern.into(),
            },
            None if spec == "stamp" => HomeSource::Stamp,
            None if spec == "negotiated" => HomeSource::Negotiated,
            _ => {
                return Err(format!(
                    "home strategy `{spec}` is not one of `attribute:<name>`, `key-prefix:<key attribute>`, `stamp`, `negotiated`, `table:<pattern with {{region}}>`"
                ))
            }
        };
        Ok(HomeStrategy {
            source,
            stamp_attribute: stamp_attribute.into(),
        })
    }

    /// The item's home, `None` when the item does not name one (for
    /// `negotiated`, when no writer stamped an assignment).
    ///
    /// # Errors
    /// A message when the item names a home that is not a Region.
    pub fn home_of(&self, item: &Item) -> Result<Option<Home>, String> {
        self.home_from(
            || match item.get(&self.stamp_attribute) {
                Some(AttributeValue::M(m)) => decode_home(m).map_err(|e| e.to_string()),
                _ => Ok(None),
            },
            |name| item.get(name),
        )
    }

    /// [`Self::home_of`], from the home the stamp records (`stamped`) and
    /// the item's attributes by name, however they are read.
    ///
    /// # Errors
    /// As [`Self::home_of`].
    pub fn home_from<'v>(
        &self,
        stamped: impl FnOnce() -> Result<Option<Home>, String>,
        attribute: impl FnOnce(&str) -> Option<&'v AttributeValue>,
    ) -> Result<Option<Home>, String> {
        let region = |text: &str| {
            Region::parse(text)
                .map(|r| Some(Home::new(r, 0)))
                .map_err(|e| format!("home {text:?} is not a Region: {e}"))
        };
        match &self.source {
            HomeSource::Attribute(name) => {
                if let Some(home) = stamped()? {
                    return Ok(Some(home));
                }
                match attribute(name) {
                    None => Ok(None),
                    Some(AttributeValue::S(s)) => region(s),
                    Some(_) => Err(format!("home attribute `{name}` is not a string")),
                }
            }
            HomeSource::KeyPrefix(name) => match attribute(name) {
                Some(AttributeValue::S(s)) => match s.split_once('#') {
                    Some((prefix, _)) => region(prefix),
                    None => Err(format!("key `{name}` = {s:?} has no `region#` prefix")),
                },
                _ => Err(format!("key attribute `{name}` is missing or not a string")),
            },
            HomeSource::Stamp | HomeSource::Negotiated => stamped(),
            HomeSource::Table { region, .. } => Ok(Some(Home::new(region.clone(), 0))),
        }
    }

    /// [`Self::home_of`] for a decoded version.
    ///
    /// # Errors
    /// As [`Self::home_of`].
    pub fn home_of_version(&self, version: &Version) -> Result<Option<Home>, String> {
        match &self.source {
            HomeSource::Stamp | HomeSource::Negotiated => return Ok(version.home.clone()),
            HomeSource::Attribute(_) if version.home.is_some() => return Ok(version.home.clone()),
            _ => {}
        }
        let mut item: HashMap<String, AttributeValue> = version.key.clone().into_iter().collect();
        if let Some(name) = self.mirror() {
            if let Some(value) = version.values().remove(name) {
                item.insert(name.to_owned(), value);
            }
        }
        self.home_of(&Item::from(item))
    }

    /// The item attributes this strategy reads, besides the stamp.
    pub fn attribute(&self) -> Option<&str> {
        match &self.source {
            HomeSource::Attribute(name) | HomeSource::KeyPrefix(name) => Some(name),
            _ => None,
        }
    }

    /// The attribute that mirrors the home for the application, kept in
    /// step with the stamp's home by every re-home.
    pub fn mirror(&self) -> Option<&str> {
        match &self.source {
            HomeSource::Attribute(name) => Some(name),
            _ => None,
        }
    }

    /// Why this strategy's homes cannot move, if they cannot.
    pub fn fixed_reason(&self) -> Option<&'static str> {
        match self.source {
            HomeSource::KeyPrefix(_) => {
                Some("the home is part of the item's key (key-prefix strategy); such items are reconciled, never re-homed")
            }
            HomeSource::Table { .. } => {
                Some("the home is part of the table name (table strategy); such items are reconciled, never re-homed")
            }
            _ => None,
        }
    }

    /// Whether the home can move.
    pub fn can_rehome(&self) -> bool {
        self.fixed_reason().is_none()
    }
}

/// The Region named by `table_name` under `pattern` (`orders-{region}`).
fn region_in_table_name(pattern: &str, table_name: &str) -> Result<Region, String> {
    let Some((before, after)) = pattern.split_once("{region}") else {
        return Err(format!("table pattern `{pattern}` has no `{{region}}`"));
    };
    let text = table_name
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
        .ok_or_else(|| format!("table name `{table_name}` does not match pattern `{pattern}`"))?;
    Region::parse(text).map_err(|e| {
        format!("table name `{table_name}` under pattern `{pattern}` names `{text}`: {e}")
    })
}

/// When a foreign write moves its item's home to the writer's Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Never: foreign writes are only reconciled into the home copy (a
    /// write to an evacuated home then waits for the home to return).
    Never,
    /// Only when the home Region is evacuated (failover). The default.
    Evacuated,
    /// Every foreign write: the home follows the writer.
    Always,
    /// After `writes` foreign writes from the same Region within
    /// `window_ms` (hysteresis: one stray write does not move an item).
    After { writes: u32, window_ms: u64 },
}

impl Trigger {
    /// Parses `never`, `evacuated`, `always`, `after:<N>` or
    /// `after:<N>:<window>` (window in `s`, `m`, `h` or `d`; default 1 day).
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{text}` is not one of never, evacuated, always, after:<N from 1 to 16>[:<window like 30m, 1h, 7d>]")
        };
        Ok(match text {
            "never" => Trigger::Never,
            "evacuated" => Trigger::Evacuated,
            "always" => Trigger::Always,
            _ => {
                let rest = text.strip_prefix("after:").ok_or_else(bad)?;
                let (n, window) = rest.split_once(':').unwrap_or((rest, "1d"));
                let writes: u32 = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=PendingMove::KEPT as u32).contains(n))
                    .ok_or_else(bad)?;
                let (digits, unit) = window.split_at(window.len().saturating_sub(1));
                let amount: u64 = digits.parse().map_err(|_| bad())?;
                let unit_ms = match unit {
                    "s" => 1_000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return Err(bad()),
                };
                Trigger::After {
                    writes,
                    window_ms: amount.checked_mul(unit_ms).ok_or_else(bad)?,
                }
            }
        })
    }
}

/// As configured (`after:N` with its window in ms).
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Never => f.write_str("never"),
            Trigger::Evacuated => f.write_str("evacuated"),
            Trigger::Always => f.write_str("always"),
            Trigger::After { writes, window_ms } => {
                write!(f, "after:{writes} within {window_ms} ms")
            }
        }
    }
}

/// What the home copy does about one foreign write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeChange {
    /// The home stays; `home` is the home copy's new home record (with the
    /// foreign write counted, for `after N`).
    Stay(Home),
    /// The item moves to the writer's Region, one epoch on.
    Move(Home),
}

/// One foreign write, as [`decide`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct ForeignWrite<'a> {
    /// The Region that made it.
    pub region: &'a Region,
    /// Its dot's counter (that Region's writes of the item count up).
    pub counter: u64,
    /// When it was made (its stamp's `t`).
    pub time_ms: u64,
    /// The home it was made against: a write made before the latest
    /// re-home never moves the item again (the epoch fences it).
    pub seen: Option<&'a Home>,
}

/// Decides, at the home copy, what a foreign write does to the item's
/// `current` home. Pure, and a function of the write and the home copy
/// alone: a redelivered write decides the same and changes nothing.
pub fn decide(
    trigger: Trigger,
    current: &Home,
    write: ForeignWrite<'_>,
    evacuated: bool,
) -> HomeChange {
    let writer = write.region;
    // Fenced: made against an older home (a lower epoch, or the losing one
    // of two moves at one epoch, which the Region breaks as in the join).
    let fenced = write
        .seen
        .is_some_and(|s| (s.epoch, &s.region) < (current.epoch, &current.region));
    // A home whose epoch cannot go one up (a crafted `e` at the cap)
    // cannot move: it stays, fenced as it is, and is never wrapped to a low
    // epoch that older copies would beat.
    let Ok(moved) = current.moved_to(writer.clone()) else {
        return HomeChange::Stay(current.clone());
    };
    if &current.region == writer || fenced {
        return HomeChange::Stay(current.clone());
    }
    match trigger {
        Trigger::Never => HomeChange::Stay(current.clone()),
        _ if evacuated => HomeChange::Move(moved),
        Trigger::Evacuated => HomeChange::Stay(current.clone()),
        Trigger::Always => HomeChange::Move(moved),
        Trigger::After { writes, window_ms } => {
            let mut pending = current.pending.clone().unwrap_or_default();
            if !pending.add(writer, write.counter, write.time_ms) {
                // Counted already (a redelivery): nothing changes.
                return HomeChange::Stay(current.clone());
            }
            let recent = pending.writes[writer]
                .iter()
                .filter(|(_, t)| t.saturating_add(window_ms) >= write.time_ms)
                .count();
            if recent >= writes as usize {
                HomeChange::Move(moved)
            } else {
                HomeChange::Stay(Home {
                    pending: Some(pending),
                    ..current.clone()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw<'a>(region: &'a Region, counter: u64, time_ms: u64, seen: &'a Home) -> ForeignWrite<'a> {
        ForeignWrite {
            region,
            counter,
            time_ms,
            seen: Some(seen),
        }
    }

    fn r(name: &str) -> Region {
        Region::parse(name).unwrap()
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    #[test]
    fn each_strategy_finds_the_home() {
        let movie = item(&[
            ("year", AttributeValue::N("1975".into())),
            ("title", s("Jaws")),
            ("src_region", s("us-west-1")),
        ]);
        let seed = HomeStrategy::parse("attribute:src_region", "_hw", "Movies").unwrap();
        assert_eq!(seed.home_of(&movie), Ok(Some(Home::new(r("us-west-1"), 0))));

        let keyed = item(&[("pk", s("eu-west-1#user-42"))]);
        let prefix = HomeStrategy::parse("key-prefix:pk", "_hw", "t").unwrap();
        assert_eq!(
            prefix.home_of(&keyed),
            Ok(Some(Home::new(r("eu-west-1"), 0)))
        );
        assert!(prefix.fixed_reason().unwrap().contains("never re-homed"));

        let table =
            HomeStrategy::parse("table:orders-{region}", "_hw", "orders-ap-south-1").unwrap();
        assert_eq!(
            table.home_of(&keyed),
            Ok(Some(Home::new(r("ap-south-1"), 0)))
        );
        assert!(!table.can_rehome());

        let stamped = item(&[
            ("pk", s("user-42")),
            ("home_region", s("us-east-1")),
            (
                "_hw",
                AttributeValue::M(HashMap::from([
                    ("h".to_owned(), s("eu-west-1")),
                    ("e".to_owned(), AttributeValue::N("3".into())),
                ])),
            ),
        ]);
        // Once re-homed, the stamp's home (with its epoch) decides.
        let attr = HomeStrategy::default();
        assert_eq!(
            attr.home_of(&stamped),
            Ok(Some(Home::new(r("eu-west-1"), 3)))
        );
        let negotiated = HomeStrategy::parse("negotiated", "_hw", "t").unwrap();
        assert_eq!(
            negotiated.home_of(&stamped),
            Ok(Some(Home::new(r("eu-west-1"), 3)))
        );
        assert_eq!(negotiated.home_of(&keyed), Ok(None));
    }

    #[test]
    fn bad_specs_and_homes_are_named() {
        let err = HomeStrategy::parse("nearest", "_hw", "t").unwrap_err();
        assert!(
            err.contains("nearest") && err.contains("negotiated"),
            "{err}"
        );
        let err = HomeStrategy::parse("table:orders-{region}", "_hw", "Movies").unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = HomeStrategy::parse("table:orders", "_hw", "orders").unwrap_err();
        assert!(err.contains("{region}"), "{err}");
        let err = HomeStrategy::parse("table:orders-{region}", "_hw", "orders-Mars").unwrap_err();
        assert!(err.contains("Mars"), "{err}");
        let bad = item(&[("home_region", s("Mars"))]);
        assert!(HomeStrategy::default().home_of(&bad).is_err());
        let bad = item(&[("pk", s("user-42"))]);
        let prefix = HomeStrategy::parse("key-prefix:pk", "_hw", "t").unwrap();
        assert!(prefix
            .home_of(&bad)
            .unwrap_err()
            .contains("no `region#` prefix"));
    }

    #[test]
    fn triggers_parse() {
        assert_eq!(Trigger::parse("always"), Ok(Trigger::Always));
        assert_eq!(
            Trigger::parse("after:3"),
            Ok(Trigger::After {
                writes: 3,
                window_ms: 86_400_000
            })
        );
        assert_eq!(
            Trigger::parse("after:2:30m"),
            Ok(Trigger::After {
                writes: 2,
                window_ms: 1_800_000
            })
        );
        for bad in [
            "after:0",
            "after:17",
            "after:x",
            "after:3:10y",
            "sometimes",
            "after:3:",
        ] {
            assert!(Trigger::parse(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn after_n_counts_writes_from_one_region_within_the_window() {
        let trigger = Trigger::After {
            writes: 3,
            window_ms: 1_000,
        };
        let (east, west, oregon) = (r("us-east-1"), r("eu-west-1"), r("us-west-2"));
        let mut home = Home::new(east.clone(), 4);
        let step = |home: &mut Home, region: &Region, counter, at| {
            let seen = home.clone();
            match decide(trigger, home, fw(region, counter, at, &seen), false) {
                HomeChange::Stay(h) => {
                    *home = h;
                    false
                }
                HomeChange::Move(to) => {
                    assert_eq!(to, Home::new(region.clone(), 5));
                    true
                }
            }
        };
        assert!(!step(&mut home, &west, 1, 0));
        // Another Region's write counts for that Region only.
        assert!(!step(&mut home, &oregon, 1, 5));
        assert!(!step(&mut home, &west, 2, 10));
        // A redelivered write changes nothing.
        let before = home.clone();
        assert!(!step(&mut home, &west, 2, 10));
        assert_eq!(home, before);
        // A write long after the first two does not make three in the window.
        assert!(!step(&mut home, &west, 3, 5_000));
        assert!(!step(&mut home, &west, 4, 5_500));
        // The third within the window moves the item, one epoch on.
        assert!(step(&mut home, &west, 5, 5_600));
    }

    #[test]
    fn counts_from_forked_copies_join_without_loss_or_double_counting() {
        let (east, west) = (r("us-east-1"), r("eu-west-1"));
        let mut a = PendingMove::default();
        let mut b = PendingMove::default();
        a.add(&west, 1, 10);
        b.add(&west, 2, 20);
        b.add(&east, 1, 15);
        let ab = a.clone().join(&b);
        assert_eq!(ab, b.clone().join(&a));
        assert_eq!(ab.clone().join(&a), ab, "idempotent");
        assert_eq!(ab.writes[&west].len(), 2);
        let homes = |p: &PendingMove| {
            Some(Home {
                pending: Some(p.clone()),
                ..Home::new(east.clone(), 1)
            })
        };
        let joined = Home::join(homes(&a), homes(&b)).unwrap();
        assert_eq!(joined.pending, Some(ab));
        // A newer epoch wins outright.
        let moved = Some(Home::new(west.clone(), 2));
        assert_eq!(Home::join(homes(&a), moved.clone()), moved);
        // Only the latest writes of a Region are kept.
        let mut many = PendingMove::default();
        for c in 1..=40 {
            many.add(&west, c, c * 10);
        }
        assert_eq!(many.writes[&west].len(), PendingMove::KEPT);
        assert!(!many.add(&west, 3, 30), "older than every write kept");
    }

    #[test]
    fn a_home_at_the_last_epoch_cannot_move_and_never_wraps() {
        let (east, west) = (r("us-east-1"), r("eu-west-1"));
        for epoch in [u64::MAX, crate::version::MAX_EPOCH] {
            let pinned = Home::new(east.clone(), epoch);
            let err = pinned.next_epoch().unwrap_err();
            assert!(
                matches!(&err, crate::StampError::Overflow { field, .. } if field == "e"),
                "{err:?}"
            );
            assert!(!err.to_string().contains(&epoch.to_string()), "{err}");
            assert!(pinned.moved_to(west.clone()).is_err());
            // Evacuated, `always`: still it stays (no move to epoch 0 that
            // every older copy would beat).
            for trigger in [Trigger::Always, Trigger::Evacuated] {
                assert_eq!(
                    decide(trigger, &pinned, fw(&west, 1, 0, &pinned), true),
                    HomeChange::Stay(pinned.clone())
                );
            }
        }
        let last = Home::new(east, crate::version::MAX_EPOCH - 1);
        assert_eq!(
            last.next_epoch(),
            Ok(crate::version::MAX_EPOCH),
            "one move left"
        );
    }

    #[test]
    fn a_window_too_long_for_milliseconds_is_refused() {
        let text = "after:3:9999999999999999d";
        assert!(Trigger::parse(text).unwrap_err().contains(text));
    }

    #[test]
    fn epochs_fence_and_evacuation_moves() {
        let (east, west) = (r("us-east-1"), r("eu-west-1"));
        let current = Home::new(west.clone(), 2);
        let stale = Home::new(east.clone(), 1);
        // A write made against epoch 1 never moves an item now at epoch 2.
        assert_eq!(
            decide(Trigger::Always, &current, fw(&east, 1, 0, &stale), false),
            HomeChange::Stay(current.clone())
        );
        let home = Home::new(east.clone(), 0);
        for trigger in [
            Trigger::Evacuated,
            Trigger::Always,
            Trigger::After {
                writes: 9,
                window_ms: 1,
            },
        ] {
            assert_eq!(
                decide(trigger, &home, fw(&west, 1, 0, &home), true),
                HomeChange::Move(Home::new(west.clone(), 1))
            );
        }
        assert_eq!(
            decide(Trigger::Never, &home, fw(&west, 1, 0, &home), true),
            HomeChange::Stay(home.clone())
        );
        assert_eq!(
            decide(Trigger::Evacuated, &home, fw(&west, 1, 0, &home), false),
            HomeChange::Stay(home.clone())
        );
    }
}
