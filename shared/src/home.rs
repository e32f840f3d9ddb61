//! Where an item's home Region is recorded (seed 004, "write to your
//! Region"). This module reads it; moving it is the re-homing work.

use serde_dynamo::{AttributeValue, Item};

use crate::dot::Region;

/// How to find an item's home Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeStrategy {
    /// An attribute of the item holds the Region name (the seed's
    /// `src_region`; default `home_region`).
    Attribute(String),
    /// A key attribute's value starts with `region#` (`us-east-1#user-42`).
    /// Immutable: such items are reconciled but never re-homed.
    KeyPrefix(String),
    /// The stamp's own home field (`h`).
    Stamp(String),
}

impl Default for HomeStrategy {
    fn default() -> Self {
        HomeStrategy::Attribute("home_region".into())
    }
}

impl HomeStrategy {
    /// Parses `attribute:<name>`, `key-prefix:<key attribute>` or `stamp`
    /// (the stamp attribute name is given separately).
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(spec: &str, stamp_attribute: &str) -> Result<Self, String> {
        match spec.split_once(':') {
            Some(("attribute", name)) if !name.is_empty() => Ok(HomeStrategy::Attribute(name.into())),
            Some(("key-prefix", name)) if !name.is_empty() => Ok(HomeStrategy::KeyPrefix(name.into())),
            None if spec == "stamp" => Ok(HomeStrategy::Stamp(stamp_attribute.into())),
            _ => Err(format!(
                "home strategy `{spec}` is not one of `attribute:<name>`, `key-prefix:<key attribute>`, `stamp`"
            )),
        }
    }

    /// The item's home, `None` when the item does not name one.
    ///
    /// # Errors
    /// A message when the item names a home that is not a Region.
    pub fn home_of(&self, item: &Item) -> Result<Option<Region>, String> {
        let text = match self {
            HomeStrategy::Attribute(name) => match item.get(name) {
                None => return Ok(None),
                Some(AttributeValue::S(s)) => s.as_str(),
                Some(_) => return Err(format!("home attribute `{name}` is not a string")),
            },
            HomeStrategy::KeyPrefix(name) => match item.get(name) {
                Some(AttributeValue::S(s)) => match s.split_once('#') {
                    Some((region, _)) => region,
                    None => return Err(format!("key `{name}` = {s:?} has no `region#` prefix")),
                },
                _ => return Err(format!("key attribute `{name}` is missing or not a string")),
            },
            HomeStrategy::Stamp(stamp) => match item.get(stamp) {
                Some(AttributeValue::M(m)) => match m.get("h") {
                    Some(AttributeValue::S(s)) => s.as_str(),
                    None => return Ok(None),
                    Some(_) => return Err("stamp field `h` is not a string".into()),
                },
                _ => return Ok(None),
            },
        };
        Region::parse(text)
            .map(Some)
            .map_err(|e| format!("home {text:?} is not a Region: {e}"))
    }

    /// The attribute of the item this strategy reads.
    pub fn attribute(&self) -> &str {
        match self {
            HomeStrategy::Attribute(name)
            | HomeStrategy::KeyPrefix(name)
            | HomeStrategy::Stamp(name) => name,
        }
    }

    /// Whether the home can move (a key prefix cannot).
    pub fn can_rehome(&self) -> bool {
        !matches!(self, HomeStrategy::KeyPrefix(_))
    }
}
