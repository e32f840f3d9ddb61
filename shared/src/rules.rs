//! Merge rules: what decides a real concurrent edit of one attribute.
//!
//! Configured per attribute from JSON, e.g.
//! `{"default":"lww","attributes":{"stock":"counter","tags":"union","rating":"max:N"}}`.
//! A rule may name the attribute's type after a colon (`max:N`, `union:SS`);
//! a type the rule does not fit, an unknown rule or an unregistered custom
//! rule is a [`ConfigError`] when the rules are loaded, not at merge time.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde_dynamo::AttributeValue;

use crate::dot::Region;
use crate::error::ConfigError;
use crate::version::Sibling;

/// A user's merge rule for concurrent edits of one attribute.
///
/// `resolve` sees every concurrent edit (sorted by dot) and returns the
/// value to show (`None`: the attribute is absent). It must depend only on
/// the set of edits, not on how many merges led to it; then merge stays
/// commutative, associative and idempotent whatever the rule does.
pub trait MergeRule: Send + Sync {
    fn resolve(&self, siblings: &[Sibling]) -> Option<AttributeValue>;
}

/// A built-in or registered rule.
#[derive(Clone)]
pub enum Rule {
    /// The latest edit by write time (Region, then dot, breaks ties).
    Lww,
    /// The home Region's edit; `lww` among several or none.
    Home,
    Max,
    Min,
    /// Set union of string, number and binary sets; lists as sets.
    Union,
    /// An exact counter (per-Region contributions); changed by increments.
    Counter,
    Custom {
        name: String,
        rule: Arc<dyn MergeRule>,
    },
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Lww => "lww",
            Rule::Home => "home",
            Rule::Max => "max",
            Rule::Min => "min",
            Rule::Union => "union",
            Rule::Counter => "counter",
            Rule::Custom { name, .. } => name,
        }
    }

    /// The attribute types the rule fits (`None`: every type).
    fn fits(&self) -> Option<&'static [&'static str]> {
        match self {
            Rule::Max | Rule::Min => Some(&["N", "S", "B"]),
            Rule::Union => Some(&["SS", "NS", "BS", "L"]),
            Rule::Counter => Some(&["N"]),
            _ => None,
        }
    }

    /// Picks the value shown for concurrent `siblings` (at least two, sorted
    /// by dot). Returns the value and, when the rule could not apply to the
    /// values it met (a type it does not fit), a note saying it fell back to
    /// `lww`.
    pub fn resolve(
        &self,
        siblings: &[Sibling],
        home: Option<&Region>,
    ) -> (Option<AttributeValue>, Option<String>) {
        let lww = || latest(siblings.iter()).and_then(|s| s.value.clone());
        let present: Vec<&AttributeValue> =
            siblings.iter().filter_map(|s| s.value.as_ref()).collect();
        match self {
            Rule::Lww | Rule::Counter => (lww(), None),
            Rule::Home => match home {
                Some(home) => {
                    let from_home = siblings.iter().filter(|s| &s.at.dot.region == home);
                    match latest(from_home) {
                        Some(s) => (s.value.clone(), None),
                        None => (lww(), Some(format!("no edit from home {home}: lww"))),
                    }
                }
                None => (lww(), Some("home unknown: lww".into())),
            },
            Rule::Max | Rule::Min => {
                // A removal concurrent with a set loses: the set is kept.
                if present.is_empty() {
                    return (None, None);
                }
                let ty = type_name(present[0]);
                if !self.fits().unwrap_or(&[]).contains(&ty)
                    || present.iter().any(|v| type_name(v) != ty)
                {
                    return (
                        lww(),
                        Some(format!("{} does not fit these values: lww", self.name())),
                    );
                }
                let pick = present.iter().copied().reduce(|a, b| {
                    let ord = compare_scalar(a, b);
                    let take_b = match self {
                        Rule::Max => ord == Ordering::Less,
                        _ => ord == Ordering::Greater,
                    };
                    if take_b {
                        b
                    } else {
                        a
                    }
                });
                (pick.cloned(), None)
            }
            Rule::Union => match union(&present) {
                Some(v) => (v, None),
                None => (lww(), Some("union does not fit these values: lww".into())),
            },
            Rule::Custom { rule, .. } => (rule.resolve(siblings), None),
        }
    }
}

fn latest<'a>(siblings: impl Iterator<Item = &'a Sibling>) -> Option<&'a Sibling> {
    siblings.max_by(|a, b| a.at.lww_key().cmp(&b.at.lww_key()))
}

/// Orders two values of one scalar type: numbers by value (ties by text,
/// so the order is total), strings and binaries bytewise.
fn compare_scalar(a: &AttributeValue, b: &AttributeValue) -> Ordering {
    match (a, b) {
        (AttributeValue::N(x), AttributeValue::N(y)) => {
            let (fx, fy) = (
                x.parse::<f64>().unwrap_or(f64::NAN),
                y.parse::<f64>().unwrap_or(f64::NAN),
            );
            fx.total_cmp(&fy).then_with(|| x.cmp(y))
        }
        (AttributeValue::S(x), AttributeValue::S(y)) => x.cmp(y),
        (AttributeValue::B(x), AttributeValue::B(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Union of values of one set type (or lists as sets). `None` when the
/// values are not all of one such type. All absent: absent.
fn union(present: &[&AttributeValue]) -> Option<Option<AttributeValue>> {
    fn merge_sorted<T: Ord + Clone>(parts: impl Iterator<Item = Vec<T>>) -> Vec<T> {
        let mut all: Vec<T> = parts.flatten().collect();
        all.sort();
        all.dedup();
        all
    }
    let Some(first) = present.first() else {
        return Some(None);
    };
    let out = match first {
        AttributeValue::Ss(_) => AttributeValue::Ss(merge_sorted(
            present
                .iter()
                .map(|v| match v {
                    AttributeValue::Ss(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?
                .into_iter(),
        )),
        AttributeValue::Ns(_) => {
            let mut all: Vec<String> = Vec::new();
            for v in present {
                let AttributeValue::Ns(s) = v else {
                    return None;
                };
                all.extend(s.iter().cloned());
            }
            all.sort_by(|a, b| {
                compare_scalar(&AttributeValue::N(a.clone()), &AttributeValue::N(b.clone()))
            });
            all.dedup_by(|a, b| a.parse::<f64>().ok() == b.parse::<f64>().ok() && a == b);
            AttributeValue::Ns(all)
        }
        AttributeValue::Bs(_) => AttributeValue::Bs(merge_sorted(
            present
                .iter()
                .map(|v| match v {
                    AttributeValue::Bs(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?
                .into_iter(),
        )),
        AttributeValue::L(_) => {
            // Lists as sets: elements in the order first met (siblings come
            // sorted by dot, so the order is the same everywhere).
            let mut out: Vec<AttributeValue> = Vec::new();
            for v in present {
                let AttributeValue::L(items) = v else {
                    return None;
                };
                for item in items {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
            }
            AttributeValue::L(out)
        }
        _ => return None,
    };
    Some(Some(out))
}

/// The DynamoDB type name of a value.
pub fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

const TYPES: &[&str] = &["S", "N", "B", "SS", "NS", "BS", "L", "M", "BOOL", "NULL"];

/// The rules of one table: a default and per-attribute rules.
#[derive(Clone, Debug)]
pub struct Rules {
    default: Rule,
    attributes: HashMap<String, Rule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            default: Rule::Lww,
            attributes: HashMap::new(),
        }
    }
}

/// Custom rules by the name the JSON config uses for them.
pub type Registry = HashMap<String, Arc<dyn MergeRule>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesJson {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl Rules {
    /// Whether any attribute (or the default) is decided by `home`.
    pub fn uses_home(&self) -> bool {
        matches!(self.default, Rule::Home)
            || self.attributes.values().any(|r| matches!(r, Rule::Home))
    }

    /// Loads rules from their JSON form.
    ///
    /// # Errors
    /// [`ConfigError`] naming the attribute and what is wrong with its rule.
    pub fn from_json(json: &str, custom: &Registry) -> Result<Self, ConfigError> {
        let parsed: RulesJson =
            serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;
        let default = match parsed.default {
            None => Rule::Lww,
            Some(spec) => {
                let rule = parse_spec(&spec, "the default", custom)?.0;
                if rule.fits().is_some() {
                    return Err(ConfigError::BadDefault(spec));
                }
                rule
            }
        };
        let mut attributes = HashMap::new();
        for (attribute, spec) in parsed.attributes {
            let (rule, ty) = parse_spec(&spec, &format!("attribute `{attribute}`"), custom)?;
            if let (Some(ty), Some(fits)) = (ty, rule.fits()) {
                if !fits.contains(&ty) {
                    return Err(ConfigError::TypeMismatch {
                        rule: rule.name().into(),
                        ty: ty.into(),
                        attribute,
                        fits: fits.join(", "),
                    });
                }
            }
            attributes.insert(attribute, rule);
        }
        Ok(Rules {
            default,
            attributes,
        })
    }

    /// Checks that no rule names a key or the stamp attribute.
    ///
    /// # Errors
    /// [`ConfigError::ReservedAttribute`].
    pub fn check_schema(&self, schema: &crate::stamp::Schema) -> Result<(), ConfigError> {
        match self.attributes.keys().find(|a| schema.is_reserved(a)) {
            Some(a) => Err(ConfigError::ReservedAttribute(a.clone())),
            None => Ok(()),
        }
    }

    pub fn with(mut self, attribute: &str, rule: Rule) -> Self {
        self.attributes.insert(attribute.to_owned(), rule);
        self
    }

    pub fn rule(&self, attribute: &str) -> &Rule {
        self.attributes.get(attribute).unwrap_or(&self.default)
    }

    pub fn is_counter(&self, attribute: &str) -> bool {
        matches!(self.attributes.get(attribute), Some(Rule::Counter))
    }
}

fn parse_spec(
    spec: &str,
    target: &str,
    custom: &Registry,
) -> Result<(Rule, Option<&'static str>), ConfigError> {
    let (name, ty) = match spec.split_once(':') {
        Some((name, ty)) => {
            let ty = TYPES.iter().copied().find(|t| *t == ty).ok_or_else(|| {
                ConfigError::UnknownType {
                    ty: ty.into(),
                    spec: spec.into(),
                }
            })?;
            (name, Some(ty))
        }
        None => (spec, None),
    };
    let rule = match name {
        "lww" => Rule::Lww,
        "home" => Rule::Home,
        "max" => Rule::Max,
        "min" => Rule::Min,
        "union" => Rule::Union,
        "counter" => Rule::Counter,
        other => match custom.get(other) {
            Some(rule) => Rule::Custom {
                name: other.to_owned(),
                rule: rule.clone(),
            },
            None => {
                let mut names: Vec<&str> = custom.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(ConfigError::UnknownRule {
                    rule: other.into(),
                    target: target.into(),
                    custom: names.iter().map(|n| format!(", {n}")).collect(),
                });
            }
        },
    };
    Ok((rule, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dot::{Dot, TimedDot};

    fn sib(region: &str, counter: u64, time: u64, value: Option<AttributeValue>) -> Sibling {
        Sibling {
            at: TimedDot {
                dot: Dot::new(Region::parse(region).unwrap(), counter, 7),
                time_ms: time,
            },
            value,
        }
    }

    fn n(v: &str) -> Option<AttributeValue> {
        Some(AttributeValue::N(v.into()))
    }

    #[test]
    fn the_issue_example_loads() {
        let rules = Rules::from_json(
            r#"{"default":"lww","attributes":{"stock":"counter","tags":"union","rating":"max"}}"#,
            &Registry::new(),
        )
        .unwrap();
        assert!(rules.is_counter("stock"));
        assert_eq!(rules.rule("tags").name(), "union");
        assert_eq!(rules.rule("other").name(), "lww");
    }

    #[test]
    fn config_errors_name_the_problem() {
        let reg = Registry::new();
        let err = |json: &str| Rules::from_json(json, &reg).unwrap_err().to_string();
        assert!(err(r#"{"attributes":{"a":"maxx"}}"#)
            .contains("unknown merge rule `maxx` for attribute `a`"));
        assert!(err(r#"{"attributes":{"a":"max:BOOL"}}"#)
            .contains("rule `max` does not fit type BOOL (attribute `a`)"));
        assert!(err(r#"{"attributes":{"a":"counter:S"}}"#).contains("does not fit type S"));
        assert!(err(r#"{"attributes":{"a":"union:N"}}"#).contains("does not fit type N"));
        assert!(err(r#"{"attributes":{"a":"max:INT"}}"#).contains("unknown attribute type `INT`"));
        assert!(err(r#"{"default":"counter"}"#).contains("cannot be the default"));
        assert!(err(r#"{"rules":{}}"#).contains("not valid JSON"));
    }

    struct Longest;
    impl MergeRule for Longest {
        fn resolve(&self, siblings: &[Sibling]) -> Option<AttributeValue> {
            siblings
                .iter()
                .filter_map(|s| s.value.clone())
                .max_by_key(|v| match v {
                    AttributeValue::S(s) => s.len(),
                    _ => 0,
                })
        }
    }

    #[test]
    fn custom_rules_register_by_name() {
        let mut reg = Registry::new();
        reg.insert("longest".into(), Arc::new(Longest));
        let rules = Rules::from_json(r#"{"attributes":{"bio":"longest"}}"#, &reg).unwrap();
        let sibs = [
            sib(
                "us-east-1",
                1,
                9,
                Some(AttributeValue::S("long text".into())),
            ),
            sib("us-west-2", 1, 10, Some(AttributeValue::S("short".into()))),
        ];
        assert_eq!(
            rules.rule("bio").resolve(&sibs, None).0,
            Some(AttributeValue::S("long text".into()))
        );
        let err = Rules::from_json(r#"{"attributes":{"bio":"shortest"}}"#, &reg).unwrap_err();
        assert!(err.to_string().contains("counter, longest"), "{err}");
    }

    #[test]
    fn builtin_rules_pick() {
        let sibs = [
            sib("us-east-1", 1, 20, n("5")),
            sib("us-west-2", 1, 10, n("12.5")),
        ];
        assert_eq!(Rule::Lww.resolve(&sibs, None).0, n("5"));
        assert_eq!(Rule::Max.resolve(&sibs, None).0, n("12.5"));
        assert_eq!(Rule::Min.resolve(&sibs, None).0, n("5"));
        let west = Region::parse("us-west-2").unwrap();
        assert_eq!(Rule::Home.resolve(&sibs, Some(&west)).0, n("12.5"));
        // lww ties on time break by Region name.
        let tie = [
            sib("us-east-1", 1, 10, n("1")),
            sib("us-west-2", 1, 10, n("2")),
        ];
        assert_eq!(Rule::Lww.resolve(&tie, None).0, n("2"));
        // A removal concurrent with a set: max keeps the set value.
        let removed = [
            sib("us-east-1", 1, 30, None),
            sib("us-west-2", 1, 10, n("3")),
        ];
        assert_eq!(Rule::Max.resolve(&removed, None).0, n("3"));
        assert_eq!(Rule::Lww.resolve(&removed, None).0, None);
    }

    #[test]
    fn union_of_sets_and_lists() {
        let ss = |v: &[&str]| {
            Some(AttributeValue::Ss(
                v.iter().map(|s| s.to_string()).collect(),
            ))
        };
        let sibs = [
            sib("us-east-1", 1, 1, ss(&["a", "b"])),
            sib("us-west-2", 1, 2, ss(&["c", "a"])),
        ];
        assert_eq!(Rule::Union.resolve(&sibs, None).0, ss(&["a", "b", "c"]));
        let l = |v: &[&str]| {
            Some(AttributeValue::L(
                v.iter().map(|s| AttributeValue::S(s.to_string())).collect(),
            ))
        };
        let sibs = [
            sib("us-east-1", 1, 1, l(&["x", "y"])),
            sib("us-west-2", 1, 2, l(&["y", "z"])),
        ];
        assert_eq!(Rule::Union.resolve(&sibs, None).0, l(&["x", "y", "z"]));
        // Mixed types fall back to lww, and say so.
        let mixed = [
            sib("us-east-1", 1, 1, ss(&["a"])),
            sib("us-west-2", 1, 2, n("1")),
        ];
        let (v, note) = Rule::Union.resolve(&mixed, None);
        assert_eq!(v, n("1"));
        assert!(note.unwrap().contains("lww"));
    }
}
