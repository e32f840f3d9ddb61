//! Lambda event filtering (FilterCriteria) for the simulated event source
//! mapping: up to 5 patterns, OR-ed; a record that matches none is dropped
//! before the function is invoked. Patterns use the EventBridge syntax
//! Lambda documents for DynamoDB: only keys under `dynamodb` (and the
//! record's top-level fields) are matched; a leaf is a list of literals
//! (exact match) or of `{"prefix": ..}`, `{"anything-but": ..}`,
//! `{"exists": ..}` operators. Numbers in images are strings (`{"N":"101"}`),
//! so numeric operators never match them and are not offered.

use serde_json::Value;

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
}

/// A checked set of patterns.
#[derive(Debug, Clone, Default)]
pub struct Filters(Vec<Value>);

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
        Ok(Filters(patterns))
    }

    /// Whether Lambda would pass `record` (no filters: every record).
    pub fn pass(&self, record: &Value) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| matches(p, Some(record)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
        Value::Object(fields) => fields.iter().all(|(k, p)| match p {
            Value::Object(_) => match value.and_then(|v| v.get(k)) {
                Some(inner) => matches(p, Some(inner)),
                None => false,
            },
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
    }
}
