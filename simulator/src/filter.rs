//! Lambda event filtering (FilterCriteria) for the simulated event source
//! mapping: up to 5 patterns, OR-ed; a record that matches none is dropped
//! before the function is invoked. Patterns use the EventBridge syntax
//! Lambda documents for DynamoDB: only keys under `dynamodb` (and the
//! record's top-level fields) are matched; a leaf is a list of literals
//! (exact match) or of `{"prefix": ..}`, `{"anything-but": ..}`,
//! `{"exists": ..}` operators. Numbers in images are strings (`{"N":"101"}`),
//! so numeric operators never match them and are not offered. As in
//! EventBridge, a pattern names leaf paths: a field whose parents are
//! missing is missing (`{"exists": false}` matches it).
//!
//! The deployed filters ([`Filters::deployed`]) are read from the
//! `FilterCriteria` of the resolver's stream event in `template.yaml`, with
//! `${AWS::Region}` and the template's parameters (`${StampAttribute}`: its
//! default) substituted per Region: a change to the template changes what
//! the scenarios and the checker run. The YAML is read with `serde_norway`
//! (CloudFormation's `!Sub`, `!Ref`, `!If`... tags are kept as tagged
//! values; only `!Sub` may build a pattern).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The template the deployed stack is built from.
const TEMPLATE: &str = include_str!("../../template.yaml");

/// Why a filter pattern is refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("FilterCriteria allows at most 5 filters, got {0}")]
    TooMany(usize),
    #[error("filter pattern is not a JSON object: {0}")]
    NotAnObject(String),
    #[error("filter pattern `{0}`: a leaf must be a list of values or operators")]
    BadLeaf(String),
    #[error("filter pattern: unknown operator `{0}` (prefix, anything-but, exists)")]
    UnknownOperator(String),
    #[error("template.yaml FilterCriteria: {0}")]
    Template(String),
}

/// A checked set of patterns: the same for every Region, or (the deployed
/// ones) each Region's own, chosen by the record's `awsRegion`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    patterns: Vec<Value>,
    /// Each Region's patterns, when they differ by Region.
    per_region: BTreeMap<String, Vec<Value>>,
}

impl Filters {
    /// Checks the patterns (each a JSON object, as the `Pattern` strings of
    /// FilterCriteria parse to).
    ///
    /// # Errors
    /// [`FilterError`] naming what is wrong.
    pub fn new(patterns: Vec<Value>) -> Result<Self, FilterError> {
        if patterns.len() > 5 {
            return Err(FilterError::TooMany(patterns.len()));
        }
        for p in &patterns {
            check(p)?;
        }
        Ok(Filters {
            patterns,
            per_region: BTreeMap::new(),
        })
    }

    /// The filters `template.yaml` deploys, for each of `regions`.
    ///
    /// # Panics
    /// When the template's FilterCriteria cannot be read (the template is
    /// part of this build: its tests catch that).
    pub fn deployed(regions: &[&str]) -> Filters {
        static PATTERNS: OnceLock<Vec<String>> = OnceLock::new();
        let texts =
            PATTERNS.get_or_init(|| template_patterns(TEMPLATE).unwrap_or_else(|e| panic!("{e}")));
        Self::from_patterns(texts, regions).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The FilterCriteria of the resolver's stream event in `template`
    /// (a SAM template's text), for each of `regions`: `${AWS::Region}` is
    /// the Region, any other `${Parameter}` the parameter's default.
    ///
    /// # Errors
    /// [`FilterError::Template`] when the template has no such event or a
    /// pattern cannot be built; the others when a pattern is refused.
    pub fn from_template(template: &str, regions: &[&str]) -> Result<Filters, FilterError> {
        Self::from_patterns(&template_patterns(template)?, regions)
    }

    /// `texts`: patterns with only `${AWS::Region}` left to substitute.
    fn from_patterns(texts: &[String], regions: &[&str]) -> Result<Filters, FilterError> {
        let mut per_region = BTreeMap::new();
        for r in regions {
            let mut patterns = Vec::new();
            for text in texts {
                let text = text.replace(REGION_MARK, r);
                patterns.push(serde_json::from_str(&text).map_err(|e| {
                    FilterError::Template(format!("pattern {text} is not JSON: {e}"))
                })?);
            }
            let checked = Filters::new(patterns)?;
            per_region.insert((*r).to_owned(), checked.patterns);
        }
        Ok(Filters {
            patterns: Vec::new(),
            per_region,
        })
    }

    /// The patterns applied to `region`'s records.
    pub fn for_region(&self, region: &str) -> &[Value] {
        self.per_region.get(region).unwrap_or(&self.patterns)
    }

    /// Whether Lambda would pass `record` (no filters: every record).
    pub fn pass(&self, record: &Value) -> bool {
        let region = record
            .get("awsRegion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let patterns = self.for_region(region);
        patterns.is_empty() || patterns.iter().any(|p| matches(p, Some(record)))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.per_region.values().all(Vec::is_empty)
    }
}

/// Stands for `${AWS::Region}` until a Region is chosen.
const REGION_MARK: &str = "\u{0}AWS::Region\u{0}";

type Yaml = serde_norway::Value;

/// The resolver's stream event's filter patterns in a SAM template, every
/// `${...}` but `${AWS::Region}` substituted.
fn template_patterns(template: &str) -> Result<Vec<String>, FilterError> {
    let bad = |m: String| FilterError::Template(m);
    let doc: Yaml = serde_norway::from_str(template).map_err(|e| bad(e.to_string()))?;
    let mut parameters = BTreeMap::new();
    if let Some(Yaml::Mapping(ps)) = doc.get("Parameters") {
        for (name, p) in ps {
            if let (Some(name), Some(default)) = (name.as_str(), p.get("Default")) {
                let text = match default {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => continue,
                };
                parameters.insert(name.to_owned(), text);
            }
        }
    }
    let Some(Yaml::Mapping(resources)) = doc.get("Resources") else {
        return Err(bad("no Resources".into()));
    };
    // The resolver's stream event: `ResolverFunction`'s `Stream`, or the
    // only function's DynamoDB event.
    let mut found: Vec<(String, &Yaml)> = Vec::new();
    for (name, resource) in resources {
        let Some(Yaml::Mapping(events)) = resource.get("Properties").and_then(|p| p.get("Events"))
        else {
            continue;
        };
        for (event_name, event) in events {
            if event.get("Type").and_then(Yaml::as_str) == Some("DynamoDB") {
                let name = name.as_str().unwrap_or_default();
                let event_name = event_name.as_str().unwrap_or_default();
                found.push((format!("{name}.{event_name}"), event));
            }
        }
    }
    let function = match found
        .iter()
        .find(|(name, _)| name == "ResolverFunction.Stream")
    {
        Some((name, _)) => name.clone(),
        None if found.len() == 1 => found[0].0.clone(),
        None => {
            return Err(bad(format!(
                "{} DynamoDB stream events and no ResolverFunction.Stream",
                found.len()
            )))
        }
    };
    let mut out = Vec::new();
    for (_, event) in found.iter().filter(|(name, _)| *name == function) {
        let Some(criteria) = event
            .get("Properties")
            .and_then(|p| p.get("FilterCriteria"))
        else {
            // An unfiltered event source delivers everything.
            return Ok(Vec::new());
        };
        let Some(Yaml::Sequence(filters)) = criteria.get("Filters") else {
            return Err(bad("FilterCriteria without a Filters list".into()));
        };
        for f in filters {
            let pattern = f
                .get("Pattern")
                .ok_or_else(|| bad("a filter without a Pattern".into()))?;
            out.push(pattern_text(pattern, &parameters)?);
        }
    }
    Ok(out)
}

/// A `Pattern`'s text: a plain string, or `!Sub` of one (with or without
/// a variable map); other intrinsic functions are refused.
fn pattern_text(
    pattern: &Yaml,
    parameters: &BTreeMap<String, String>,
) -> Result<String, FilterError> {
    let bad = |m: String| FilterError::Template(m);
    match pattern {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Tagged(tagged) if tagged.tag == "Sub" => match &tagged.value {
            Yaml::String(s) => substitute(s, parameters, &BTreeMap::new()),
            Yaml::Sequence(parts) => match parts.as_slice() {
                [Yaml::String(s), Yaml::Mapping(vars)] => {
                    let mut local = BTreeMap::new();
                    for (k, v) in vars {
                        match (k.as_str(), v.as_str()) {
                            (Some(k), Some(v)) => {
                                local.insert(k.to_owned(), v.to_owned());
                            }
                            _ => return Err(bad(format!("!Sub variable {k:?} is not a string"))),
                        }
                    }
                    substitute(s, parameters, &local)
                }
                _ => Err(bad("!Sub takes a string, or [string, variables]".into())),
            },
            other => Err(bad(format!("!Sub of {other:?}"))),
        },
        Yaml::Tagged(tagged) => Err(bad(format!(
            "a Pattern built with {} cannot be read (only !Sub)",
            tagged.tag
        ))),
        other => Err(bad(format!("a Pattern that is not a string: {other:?}"))),
    }
}

/// CloudFormation's `${Name}` substitution; `${!Literal}` stays literal.
fn substitute(
    text: &str,
    parameters: &BTreeMap<String, String>,
    local: &BTreeMap<String, String>,
) -> Result<String, FilterError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| FilterError::Template(format!("unclosed ${{ in {text}")))?;
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if name == "AWS::Region" {
            out.push_str(REGION_MARK);
        } else if let Some(v) = local.get(name).or_else(|| parameters.get(name)) {
            out.push_str(v);
        } else {
            return Err(FilterError::Template(format!(
                "${{{name}}} is neither a parameter with a default nor AWS::Region"
            )));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check(pattern: &Value) -> Result<(), FilterError> {
    let Value::Object(fields) = pattern else {
        return Err(FilterError::NotAnObject(pattern.to_string()));
    };
    for (_, v) in fields {
        match v {
            Value::Object(_) => check(v)?,
            Value::Array(options) => {
                for o in options {
                    if let Value::Object(op) = o {
                        for name in op.keys() {
                            if !matches!(name.as_str(), "prefix" | "anything-but" | "exists") {
                                return Err(FilterError::UnknownOperator(name.clone()));
                            }
                        }
                    }
                }
            }
            other => return Err(FilterError::BadLeaf(other.to_string())),
        }
    }
    Ok(())
}

fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        // A missing parent makes every leaf under it missing.
        Value::Object(fields) => fields.iter().all(|(k, p)| match p {
            Value::Object(_) => matches(p, value.and_then(|v| v.get(k))),
            Value::Array(options) => {
                let field = value.and_then(|v| v.get(k));
                options.iter().any(|o| leaf(o, field))
            }
            _ => false,
        }),
        _ => false,
    }
}

fn leaf(option: &Value, field: Option<&Value>) -> bool {
    match option {
        Value::Object(op) => op.iter().all(|(name, arg)| match name.as_str() {
            "exists" => arg.as_bool() == Some(field.is_some()),
            "prefix" => match (arg, field) {
                (Value::String(p), Some(Value::String(s))) => s.starts_with(p.as_str()),
                _ => false,
            },
            "anything-but" => match field {
                None => false,
                Some(f) => match arg {
                    Value::Array(list) => !list.contains(f),
                    other => other != f,
                },
            },
            _ => false,
        }),
        literal => field == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(by: &str) -> Value {
        json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {"_hw": {"M": {"by": {"S": by}, "o": {"S": "us-east-1"}}}, "year": {"N": "1975"}}}})
    }

    #[test]
    fn patterns_match_like_lambda() {
        let apps = json!({"dynamodb": {"NewImage": {"_hw": {"M": {"by": {"S": ["app"]}}}}}});
        let f = Filters::new(vec![apps]).unwrap();
        assert!(f.pass(&record("app")));
        assert!(!f.pass(&record("resolver")));
        let prefix =
            json!({"dynamodb": {"NewImage": {"_hw": {"M": {"o": {"S": [{"prefix": "us-"}]}}}}}});
        let but = json!({"eventName": [{"anything-but": ["REMOVE"]}]});
        let gone = json!({"dynamodb": {"OldImage": [{"exists": false}]}});
        for (p, want) in [(prefix, true), (but, true), (gone, true)] {
            assert_eq!(
                Filters::new(vec![p.clone()]).unwrap().pass(&record("x")),
                want,
                "{p}"
            );
        }
        // A number is a string in an image: the literal 1975 does not match.
        let year = json!({"dynamodb": {"NewImage": {"year": {"N": [1975]}}}});
        assert!(!Filters::new(vec![year]).unwrap().pass(&record("app")));
        assert!(Filters::default().pass(&record("x")));
        assert!(Filters::new(vec![json!({}); 6]).is_err());
        assert!(Filters::new(vec![json!({"a": [{"numeric": [">", 1]}]})]).is_err());
        // Missing parents count as missing.
        let unstamped =
            json!({"dynamodb": {"NewImage": {"_hw": {"M": {"o": {"S": [{"exists": false}]}}}}}});
        let plain = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "k"}}}});
        assert!(Filters::new(vec![unstamped.clone()]).unwrap().pass(&plain));
        assert!(!Filters::new(vec![unstamped]).unwrap().pass(&record("app")));
    }

    /// A stream record in `region` of a write stamped in `origin` (by
    /// `by`) over a version stamped in `old` (`None`: an insert).
    fn write(region: &str, origin: &str, by: &str, old: Option<&str>) -> Value {
        let stamp = |o: &str, by: &str| json!({"_hw": {"M": {"o": {"S": o}, "by": {"S": by}}}, "pk": {"S": "k"}});
        let mut dynamodb = json!({"Keys": {"pk": {"S": "k"}}, "NewImage": stamp(origin, by)});
        if let Some(o) = old {
            dynamodb["OldImage"] = stamp(o, "app");
        }
        json!({
            "eventName": if old.is_some() { "MODIFY" } else { "INSERT" },
            "awsRegion": region,
            "dynamodb": dynamodb,
        })
    }

    #[test]
    fn the_templates_filters_keep_every_write_and_drop_ttl_deletes() {
        let regions = ["us-east-1", "us-west-2"];
        let f = Filters::deployed(&regions);
        assert_eq!(
            f.for_region("us-east-1").len(),
            2,
            "the template's two patterns"
        );
        // A plain writer's overwrite may show only in a record that looks
        // like any other: a foreign write, a replicated copy, an echo of the
        // resolver's own write. Every write is kept.
        for record in [
            write("us-east-1", "us-east-1", "app", Some("us-west-2")),
            write("us-west-2", "us-east-1", "app", Some("us-west-2")),
            write("us-west-2", "us-east-1", "app", Some("us-east-1")),
            write("us-west-2", "us-east-1", "app", None),
            write("us-east-1", "us-east-1", "resolver", Some("us-east-1")),
            write("us-west-2", "us-east-1", "resolver", Some("us-east-1")),
        ] {
            assert!(f.pass(&record), "{record}");
        }
        // Unstamped writes and hard deletes are kept; TTL deletes are not.
        let plain = json!({"eventName": "MODIFY", "awsRegion": "us-east-1", "dynamodb": {"NewImage": {"pk": {"S": "k"}}}});
        assert!(f.pass(&plain));
        let delete = json!({"eventName": "REMOVE", "awsRegion": "us-east-1", "dynamodb": {"Keys": {"pk": {"S": "k"}}}});
        assert!(f.pass(&delete));
        let mut ttl = delete.clone();
        ttl["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        assert!(!f.pass(&ttl));
    }

    #[test]
    fn a_change_to_the_template_changes_what_passes() {
        let regions = ["us-east-1", "us-west-2"];
        let replicated = write("us-west-2", "us-east-1", "app", Some("us-east-1"));
        let from = |text: &str| Filters::from_template(text, &regions).unwrap();
        assert!(from(TEMPLATE).pass(&replicated));
        // Pattern 1 narrowed to inserts: a MODIFY no longer passes.
        let narrowed = TEMPLATE.replace(
            r#"'{"eventName":["INSERT","MODIFY"]}'"#,
            r#"'{"eventName":["INSERT"]}'"#,
        );
        assert_ne!(narrowed, TEMPLATE);
        assert!(!from(&narrowed).pass(&replicated));
        assert!(from(&narrowed).pass(&write("us-west-2", "us-east-1", "app", None)));
        // A pattern with a Region in it is read per Region.
        let local = TEMPLATE.replace(
            r#"- Pattern: '{"eventName":["INSERT","MODIFY"]}'"#,
            r#"- Pattern: !Sub '{"awsRegion":["${AWS::Region}"],"dynamodb":{"NewImage":{"_hw":{"M":{"o":{"S":["${AWS::Region}"]}}}}}}'"#,
        );
        assert_ne!(local, TEMPLATE);
        assert!(!from(&local).pass(&replicated));
        assert!(from(&local).pass(&write("us-west-2", "us-west-2", "app", None)));
        // No FilterCriteria: every record passes.
        let at = TEMPLATE.find("            FilterCriteria:").unwrap();
        let end = TEMPLATE[at..].find("\n\n").unwrap() + at;
        let none = format!("{}{}", &TEMPLATE[..at], &TEMPLATE[end..]);
        assert!(from(&none).is_empty());
        assert!(from(&none).pass(&replicated));
        // Intrinsics other than !Sub cannot build a pattern.
        let reffed = local.replacen("- Pattern: !Sub", "- Pattern: !Ref", 1);
        assert!(Filters::from_template(&reffed, &regions).is_err());
    }
}
