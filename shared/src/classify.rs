//! What a Region's resolver makes of one stream record, decided from the
//! stamp's header, the known window and the home alone (the full images are
//! decoded only for records that need action).
//!
//! The order is the conflict model's: unattributed (no stamp, data changed
//! under the same dot, or a stamp naming this Region that does not know the
//! version it replaced), clobber, replicated, echo, foreign write, home
//! write. Whole-item deletes come first: a TTL
//! delete is left alone, a hard delete is journaled.

use serde_dynamo::{AttributeValue, Item};

use crate::dot::{Dot, Region, Tick};
use crate::error::StampError;
use crate::home::HomeStrategy;
use crate::stamp::StampFields;
use crate::version::WriterKind;
use crate::Home;

/// The kind of a stream record, as the resolver acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A delete by DynamoDB's TTL: nothing to do.
    TtlDelete,
    /// A whole-item delete that bypassed the writer: last-writer-wins,
    /// journaled.
    HardDelete,
    /// A write whose origin cannot be known (no stamp, or a stale one).
    Unattributed { reason: String },
    /// A version written here was overwritten by one that does not include
    /// it: merge both back into the home copy.
    Clobber { home: Option<Region> },
    /// A write that arrived by replication: nothing to do here.
    Replicated,
    /// The resolver's own write coming back: nothing to do.
    Echo,
    /// An app write made here for an item homed elsewhere.
    Foreign { home: Region },
    /// An app write made here for an item homed here (or with no home).
    HomeWrite,
    /// A write event that changed nothing (same dot, same data).
    NoOp,
}

impl Class {
    pub fn name(&self) -> &'static str {
        match self {
            Class::TtlDelete => "ttl-delete",
            Class::HardDelete => "hard-delete",
            Class::Unattributed { .. } => "unattributed",
            Class::Clobber { .. } => "clobber",
            Class::Replicated => "replicated",
            Class::Echo => "echo",
            Class::Foreign { .. } => "foreign",
            Class::HomeWrite => "home-write",
            Class::NoOp => "no-op",
        }
    }
}

/// The kind of stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Insert,
    Modify,
    Remove,
}

impl EventKind {
    /// # Errors
    /// [`ClassifyError::EventName`] for anything but INSERT, MODIFY, REMOVE.
    pub fn parse(name: &str) -> Result<Self, ClassifyError> {
        match name {
            "INSERT" => Ok(EventKind::Insert),
            "MODIFY" => Ok(EventKind::Modify),
            "REMOVE" => Ok(EventKind::Remove),
            other => Err(ClassifyError::EventName(other.to_owned())),
        }
    }
}

/// A record that cannot be classified: it fails alone, with this reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ClassifyError {
    #[error("unknown eventName `{0}`")]
    EventName(String),
    #[error("{0} record has no {1} image (the stream must be NEW_AND_OLD_IMAGES)")]
    MissingImage(&'static str, &'static str),
    #[error("{image} image: {source}")]
    Stamp {
        image: &'static str,
        #[source]
        source: StampError,
    },
    #[error("home: {0}")]
    Home(String),
}

/// The parts of a stamp classification reads: who wrote the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampHeader {
    pub origin: Region,
    pub by: WriterKind,
    pub dot: Dot,
}

/// Reads just the header of the stamp in `item`; `Ok(None)` when the item
/// has no stamp attribute.
///
/// # Errors
/// [`StampError`] naming the malformed field.
pub fn peek(item: &Item, stamp_attribute: &str) -> Result<Option<StampHeader>, StampError> {
    let stamp = match item.get(stamp_attribute) {
        None => return Ok(None),
        Some(AttributeValue::M(m)) => m,
        Some(_) => return Err(StampError::field(stamp_attribute, "not a map")),
    };
    header_of(stamp).map(Some)
}

/// The header classification reads, from a stamp's fields however they are
/// read (see [`peek`]).
///
/// # Errors
/// [`StampError`] naming the malformed field.
pub fn header_of(stamp: &impl StampFields) -> Result<StampHeader, StampError> {
    let header = crate::stamp::decode_header_from(stamp)?;
    Ok(StampHeader {
        dot: header.dot(),
        origin: header.origin,
        by: header.by,
    })
}

/// Whether the stamp in `item` knows `dot`, reading only that Region's
/// window.
///
/// # Errors
/// [`StampError`] when the window is malformed.
pub fn knows(item: &Item, stamp_attribute: &str, dot: &Dot) -> Result<bool, StampError> {
    let Some(AttributeValue::M(stamp)) = item.get(stamp_attribute) else {
        return Ok(false);
    };
    let Some(AttributeValue::M(k)) = stamp.get("k") else {
        return Err(StampError::field("k", "missing or not a map"));
    };
    let Some(window) = k.get(dot.region.as_str()) else {
        return Ok(false);
    };
    let AttributeValue::S(window) = window else {
        return Err(StampError::field("k", "a window is not a string"));
    };
    window_knows(window, dot)
}

/// Whether a known window (`k`'s text for the dot's Region) includes the
/// dot, or has moved past it.
///
/// # Errors
/// [`StampError`] when a tick of the window is malformed.
pub fn window_knows(window: &str, dot: &Dot) -> Result<bool, StampError> {
    let mut lowest = u64::MAX;
    for entry in window.split_ascii_whitespace() {
        let tick = Tick::decode(entry)?;
        if tick == dot.tick {
            return Ok(true);
        }
        lowest = lowest.min(tick.counter);
    }
    Ok(dot.tick.counter < lowest)
}

/// What classification reads of one image: an [`Item`] (whole or
/// partial), or a cheaper view of the same fields (the resolver reads them
/// off the event's text). Every view answers as the item would.
pub trait Glance {
    /// The stamp's header; `None` when the image has no stamp attribute.
    ///
    /// # Errors
    /// As [`peek`].
    fn header(&self, stamp_attribute: &str) -> Result<Option<StampHeader>, StampError>;
    /// Whether the stamp knows `dot`.
    ///
    /// # Errors
    /// As [`knows`].
    fn knows(&self, stamp_attribute: &str, dot: &Dot) -> Result<bool, StampError>;
    /// The image's home under `homes`.
    ///
    /// # Errors
    /// As [`HomeStrategy::home_of`].
    fn home(&self, homes: &HomeStrategy) -> Result<Option<Home>, String>;
    /// Whether two images hold the same data, the stamp aside. A view that
    /// cannot tell answers `true`: the record is then a [`Class::NoOp`]
    /// for now, and the caller classifies its whole images.
    fn same_data(&self, other: &Self, stamp_attribute: &str) -> bool;
}

impl Glance for Item {
    fn header(&self, stamp_attribute: &str) -> Result<Option<StampHeader>, StampError> {
        peek(self, stamp_attribute)
    }

    fn knows(&self, stamp_attribute: &str, dot: &Dot) -> Result<bool, StampError> {
        knows(self, stamp_attribute, dot)
    }

    fn home(&self, homes: &HomeStrategy) -> Result<Option<Home>, String> {
        homes.home_of(self)
    }

    fn same_data(&self, other: &Self, stamp_attribute: &str) -> bool {
        same_data(self, other, stamp_attribute)
    }
}

/// Classifies one stream record seen by the resolver of `local`.
///
/// # Errors
/// [`ClassifyError`] for a record that is malformed: it fails alone.
pub fn classify<G: Glance>(
    local: &Region,
    kind: EventKind,
    ttl_delete: bool,
    new_image: Option<&G>,
    old_image: Option<&G>,
    stamp_attribute: &str,
    homes: &HomeStrategy,
) -> Result<Class, ClassifyError> {
    let stamp_err = |image| move |source| ClassifyError::Stamp { image, source };
    if kind == EventKind::Remove {
        return Ok(if ttl_delete {
            Class::TtlDelete
        } else {
            Class::HardDelete
        });
    }
    let new = new_image.ok_or(ClassifyError::MissingImage(
        if kind == EventKind::Insert {
            "INSERT"
        } else {
            "MODIFY"
        },
        "new",
    ))?;
    let old = match kind {
        EventKind::Modify => Some(old_image.ok_or(ClassifyError::MissingImage("MODIFY", "old"))?),
        _ => None,
    };

    let Some(n) = new.header(stamp_attribute).map_err(stamp_err("new"))? else {
        return Ok(Class::Unattributed {
            reason: "the new image has no stamp".into(),
        });
    };
    let o = match old {
        Some(old) => old.header(stamp_attribute).map_err(stamp_err("old"))?,
        None => None,
    };
    if let (Some(o), Some(old)) = (&o, old) {
        if o.dot == n.dot {
            return Ok(if old.same_data(new, stamp_attribute) {
                Class::NoOp
            } else {
                Class::Unattributed {
                    reason: format!("the data changed but the stamp still carries dot {}", n.dot),
                }
            });
        }
    }
    if let (Some(o), Some(_)) = (&o, old) {
        // A write made here reads the copy it replaces (conditionally on
        // its dot), so it knows it. One that does not is an older stamp
        // copied by a plain writer elsewhere: not a write of this Region.
        if &n.origin == local
            && !new
                .knows(stamp_attribute, &o.dot)
                .map_err(stamp_err("new"))?
        {
            return Ok(Class::Unattributed {
                reason: format!(
                    "the stamp's dot {} does not know the version it replaced here ({}): a stale stamp",
                    n.dot, o.dot
                ),
            });
        }
    }
    let home = || {
        new.home(homes)
            .map(|h| h.map(|h| h.region))
            .map_err(ClassifyError::Home)
    };
    if let (Some(o), Some(_)) = (&o, old) {
        if &o.origin == local
            && &n.origin != local
            && !new
                .knows(stamp_attribute, &o.dot)
                .map_err(stamp_err("new"))?
        {
            return Ok(Class::Clobber { home: home()? });
        }
    }
    if &n.origin != local {
        return Ok(Class::Replicated);
    }
    if n.by == WriterKind::Resolver {
        return Ok(Class::Echo);
    }
    Ok(match home()? {
        Some(home) if &home != local => Class::Foreign { home },
        _ => Class::HomeWrite,
    })
}

/// Whether two images hold the same data, the stamp aside.
fn same_data(a: &Item, b: &Item, stamp_attribute: &str) -> bool {
    let len = |i: &Item| i.len() - usize::from(i.contains_key(stamp_attribute));
    len(a) == len(b)
        && a.iter()
            .all(|(k, v)| k == stamp_attribute || b.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{apply, empty_version, WriteContext};
    use crate::{Draft, Merger, Rules, Schema, Version};
    use std::collections::BTreeMap;

    fn r(name: &str) -> Region {
        Region::parse(name).unwrap()
    }

    fn write(
        base: Option<&Version>,
        region: &str,
        by: WriterKind,
        t: u64,
        edit: impl FnOnce(&mut Draft),
    ) -> Version {
        let ctx = WriteContext {
            region: r(region),
            time_ms: t,
            nonce: t as u32,
            by,
        };
        let key: BTreeMap<_, _> = [("pk".to_string(), AttributeValue::S("k".into()))].into();
        let base = base.cloned().unwrap_or_else(|| empty_version(key, &ctx));
        let mut d = Draft::new(base.values());
        edit(&mut d);
        apply(
            &base,
            &d,
            &ctx,
            &Merger::new(Rules::default()),
            &Schema::new("pk", None),
            None,
        )
        .unwrap()
    }

    fn item(v: &Version) -> Item {
        Schema::new("pk", None).encode(v)
    }

    fn class(
        local: &str,
        kind: EventKind,
        new: Option<&Item>,
        old: Option<&Item>,
    ) -> Result<Class, ClassifyError> {
        classify(
            &r(local),
            kind,
            false,
            new,
            old,
            "_hw",
            &HomeStrategy::default(),
        )
    }

    fn homed(region: &str) -> impl FnOnce(&mut Draft) + '_ {
        move |d: &mut Draft| {
            d.set("home_region", AttributeValue::S(region.into()));
            d.set("x", AttributeValue::S(format!("from {region}")));
        }
    }

    #[test]
    fn every_class() {
        let home = write(None, "us-east-1", WriterKind::App, 10, homed("us-east-1"));
        let h = item(&home);
        // Written in us-east-1, its home: a home write there, replicated elsewhere.
        assert_eq!(
            class("us-east-1", EventKind::Insert, Some(&h), None),
            Ok(Class::HomeWrite)
        );
        assert_eq!(
            class("eu-west-1", EventKind::Insert, Some(&h), None),
            Ok(Class::Replicated)
        );
        // Written in eu-west-1 for a us-east-1 item: foreign, only there.
        let away = write(Some(&home), "eu-west-1", WriterKind::App, 20, |d| {
            d.set("x", AttributeValue::S("away".into()));
        });
        let a = item(&away);
        assert_eq!(
            class("eu-west-1", EventKind::Modify, Some(&a), Some(&h)),
            Ok(Class::Foreign {
                home: r("us-east-1")
            })
        );
        assert_eq!(
            class("us-east-1", EventKind::Modify, Some(&a), Some(&h)),
            Ok(Class::Replicated)
        );
        // The resolver's write coming back in its own Region.
        let fixed = write(Some(&away), "us-east-1", WriterKind::Resolver, 30, |_| {});
        assert_eq!(
            class(
                "us-east-1",
                EventKind::Modify,
                Some(&item(&fixed)),
                Some(&h)
            ),
            Ok(Class::Echo)
        );
        // A concurrent us-west-2 version replaced eu-west-1's without knowing it.
        let rival = write(Some(&home), "us-west-2", WriterKind::App, 25, |d| {
            d.set("y", AttributeValue::S("west".into()));
        });
        assert_eq!(
            class(
                "eu-west-1",
                EventKind::Modify,
                Some(&item(&rival)),
                Some(&a)
            ),
            Ok(Class::Clobber {
                home: Some(r("us-east-1"))
            })
        );
        // ...but a version that includes it is plain replication.
        assert_eq!(
            class(
                "eu-west-1",
                EventKind::Modify,
                Some(&item(&fixed)),
                Some(&a)
            ),
            Ok(Class::Replicated)
        );
        // No stamp, or a stale one on changed data.
        let mut bare = h.clone();
        bare.remove("_hw");
        assert!(matches!(
            class("us-east-1", EventKind::Modify, Some(&bare), Some(&h)),
            Ok(Class::Unattributed { .. })
        ));
        let mut stale = h.clone();
        stale.insert("x".into(), AttributeValue::S("sneaky".into()));
        assert!(matches!(
            class("us-east-1", EventKind::Modify, Some(&stale), Some(&h)),
            Ok(Class::Unattributed { .. })
        ));
        assert_eq!(
            class("us-east-1", EventKind::Modify, Some(&h), Some(&h)),
            Ok(Class::NoOp)
        );
        // us-east-1 wrote again; a plain writer elsewhere changed the copy
        // that still had the older us-east-1 stamp, and it came back here:
        // not a home write, whatever its stamp says.
        let newer = write(Some(&home), "us-east-1", WriterKind::App, 40, |d| {
            d.set("x", AttributeValue::S("newer".into()));
        });
        assert!(matches!(
            class(
                "us-east-1",
                EventKind::Modify,
                Some(&stale),
                Some(&item(&newer))
            ),
            Ok(Class::Unattributed { .. })
        ));
        // The same record in another Region is that Region's business only
        // if the version it replaced was written there (not here).
        assert_eq!(
            class(
                "eu-west-1",
                EventKind::Modify,
                Some(&stale),
                Some(&item(&newer))
            ),
            Ok(Class::Replicated)
        );
        // Deletes.
        assert_eq!(
            class("us-east-1", EventKind::Remove, None, Some(&h)),
            Ok(Class::HardDelete)
        );
        let ttl = classify(
            &r("us-east-1"),
            EventKind::Remove,
            true,
            None,
            Some(&h),
            "_hw",
            &HomeStrategy::default(),
        );
        assert_eq!(ttl, Ok(Class::TtlDelete));
    }

    #[test]
    fn malformed_records_say_why() {
        let home = item(&write(
            None,
            "us-east-1",
            WriterKind::App,
            10,
            homed("us-east-1"),
        ));
        let err = class("us-east-1", EventKind::Modify, Some(&home), None).unwrap_err();
        assert!(err.to_string().contains("no old image"), "{err}");
        let mut broken = home.clone();
        let Some(AttributeValue::M(stamp)) = broken.get_mut("_hw") else {
            panic!()
        };
        stamp.insert("dot".into(), AttributeValue::S("garbage".into()));
        let err = class("us-east-1", EventKind::Insert, Some(&broken), None).unwrap_err();
        assert!(
            err.to_string().contains("new image: bad dot `garbage`"),
            "{err}"
        );
        let mut bad_home = home.clone();
        bad_home.insert("home_region".into(), AttributeValue::S("Mars".into()));
        let err = class("us-east-1", EventKind::Insert, Some(&bad_home), None).unwrap_err();
        assert!(
            err.to_string().contains("\"Mars\" is not a Region"),
            "{err}"
        );
    }

    #[test]
    fn seed_src_region_and_key_prefix_homes() {
        let mut item = Item::from(std::collections::HashMap::<String, AttributeValue>::new());
        item.insert("src_region".into(), AttributeValue::S("us-west-1".into()));
        let s = HomeStrategy::parse("attribute:src_region", "_hw", "Movies").unwrap();
        assert_eq!(s.home_of(&item).unwrap().unwrap().region, r("us-west-1"));
        item.insert("pk".into(), AttributeValue::S("eu-west-1#user-42".into()));
        let p = HomeStrategy::parse("key-prefix:pk", "_hw", "Movies").unwrap();
        assert_eq!(p.home_of(&item).unwrap().unwrap().region, r("eu-west-1"));
        assert!(!p.can_rehome());
        assert!(HomeStrategy::parse("nearest", "_hw", "Movies")
            .unwrap_err()
            .contains("attribute:<name>"));
    }
}
