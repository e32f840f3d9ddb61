//! The item key given on the command line: DynamoDB JSON
//! (`{"pk":{"S":"user-42"}}`) or the shorthand `pk=value[,sk=value]`,
//! typed by the key attributes' types (`--key-types`, or the table's
//! description).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ScalarAttributeType;
use homeward::{Region, Schema};
use serde_dynamo::{AttributeValue, Item};

use crate::error::CliError;
use crate::settings::{KeyType, Settings};

/// Parses `text` as a key of `schema`; `types` are the key attributes'
/// types in schema order (partition, then sort).
///
/// # Errors
/// [`CliError::Key`] naming what is missing, extra or mistyped.
pub fn parse_key(text: &str, schema: &Schema, types: &[KeyType]) -> Result<Item, CliError> {
    let text = text.trim();
    let names: Vec<&str> = schema.key_attributes().collect();
    let item = if text.starts_with('{') {
        let item: Item = serde_json::from_str(text).map_err(|e| {
            CliError::Key(format!(
                "not DynamoDB JSON ({}); e.g. {{\"{}\":{{\"S\":\"...\"}}}}",
                resolver::error::json_error_text(&e),
                names[0]
            ))
        })?;
        item
    } else {
        shorthand(text, &names, types)?
    };
    for name in &names {
        let Some(value) = item.get(*name) else {
            return Err(CliError::Key(format!("key attribute `{name}` is missing")));
        };
        let ok = matches!(
            value,
            AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)
        );
        if !ok {
            return Err(CliError::Key(format!(
                "key attribute `{name}` must be S, N or B, not {}",
                homeward::rules::type_name(value)
            )));
        }
    }
    if let Some(extra) = item.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(CliError::Key(format!(
            "`{extra}` is not a key attribute (the key is {})",
            names.join(", ")
        )));
    }
    Ok(item)
}

/// `pk=value[,sk=value]`: pairs start at the beginning or after a comma
/// followed by a key attribute's name and `=`, so values may hold commas.
fn shorthand(text: &str, names: &[&str], types: &[KeyType]) -> Result<Item, CliError> {
    let mut starts: Vec<(usize, &str)> = Vec::new();
    for name in names {
        let head = format!("{name}=");
        if text.starts_with(&head) {
            starts.push((0, name));
        }
        let mid = format!(",{name}=");
        if let Some(at) = text.find(&mid) {
            starts.push((at + 1, name));
        }
    }
    starts.sort();
    starts.dedup_by_key(|(_, name)| *name);
    if starts.first().map(|(at, _)| *at) != Some(0) {
        return Err(CliError::Key(format!(
            "the key is neither DynamoDB JSON nor `{}=value{}`",
            names[0],
            names
                .get(1)
                .map(|s| format!(",{s}=value"))
                .unwrap_or_default()
        )));
    }
    let mut map = HashMap::new();
    for (i, (at, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |(next, _)| next - 1);
        let value = &text[at + name.len() + 1..end];
        let place = names.iter().position(|n| n == name).unwrap_or(0);
        let ty = types.get(place).copied().unwrap_or(KeyType::S);
        let value = match ty {
            KeyType::S => AttributeValue::S(value.to_owned()),
            KeyType::N => {
                if value.parse::<f64>().is_err() {
                    return Err(CliError::Key(format!(
                        "key attribute `{name}` is a number (N) and its value is not one"
                    )));
                }
                AttributeValue::N(value.to_owned())
            }
            KeyType::B => {
                return Err(CliError::Key(format!(
                    "key attribute `{name}` is binary (B): give the key as DynamoDB JSON"
                )))
            }
        };
        map.insert((*name).to_owned(), value);
    }
    Ok(Item::from(map))
}

/// The key attributes' types: `--key-types` when given, else the table's
/// attribute definitions in the first Region.
///
/// # Errors
/// [`CliError::Aws`] when the table cannot be described,
/// [`CliError::Config`] when the counts do not match.
pub async fn key_types(
    sdk: &SdkConfig,
    settings: &Settings,
    schema: &Schema,
) -> Result<Vec<KeyType>, CliError> {
    let names: Vec<&str> = schema.key_attributes().collect();
    if let Some(types) = &settings.key_types {
        if types.len() != names.len() {
            return Err(CliError::Config(format!(
                "--key-types gives {} types for {} key attributes ({})",
                types.len(),
                names.len(),
                names.join(", ")
            )));
        }
        return Ok(types.clone());
    }
    let region = &settings.regions[0];
    let described = dynamodb(sdk, region)
        .describe_table()
        .table_name(settings.table())
        .send()
        .await
        .map_err(|e| {
            let mut err = CliError::aws(region.as_str(), "DescribeTable", settings.table(), &e);
            if let CliError::Aws { message, .. } = &mut err {
                message.push_str(" (pass --key-types to skip this look-up)");
            }
            err
        })?;
    let definitions = described
        .table
        .and_then(|t| t.attribute_definitions)
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let ty = definitions
                .iter()
                .find(|d| d.attribute_name() == *name)
                .map(|d| d.attribute_type().clone());
            match ty {
                Some(ScalarAttributeType::N) => Ok(KeyType::N),
                Some(ScalarAttributeType::B) => Ok(KeyType::B),
                Some(ScalarAttributeType::S) => Ok(KeyType::S),
                _ => Err(CliError::Config(format!(
                    "TABLE_KEY: `{name}` is not a key attribute of table {} in {region}",
                    settings.table()
                ))),
            }
        })
        .collect()
}

/// A DynamoDB client for `region`.
pub fn dynamodb(sdk: &SdkConfig, region: &Region) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn shorthand_and_json_keys() {
        let movies = Schema::new("year", Some("title"));
        let key = parse_key(
            "year=1975,title=Jaws, the shark",
            &movies,
            &[KeyType::N, KeyType::S],
        )
        .unwrap();
        assert_eq!(key.get("year"), Some(&AttributeValue::N("1975".into())));
        assert_eq!(key.get("title"), Some(&s("Jaws, the shark")));
        // Either order.
        let key = parse_key("title=Jaws,year=1975", &movies, &[KeyType::N, KeyType::S]).unwrap();
        assert_eq!(key.get("year"), Some(&AttributeValue::N("1975".into())));
        let json = r#"{"year":{"N":"1975"},"title":{"S":"Jaws"}}"#;
        assert_eq!(parse_key(json, &movies, &[]).unwrap().len(), 2);

        let users = Schema::new("pk", None);
        let key = parse_key("pk=a=b", &users, &[KeyType::S]).unwrap();
        assert_eq!(key.get("pk"), Some(&s("a=b")));
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_echoing_values() {
        let movies = Schema::new("year", Some("title"));
        let types = [KeyType::N, KeyType::S];
        let err = |t: &str| parse_key(t, &movies, &types).unwrap_err().to_string();
        assert!(err("year=1975").contains("`title` is missing"));
        assert!(err("year=nineteen,title=Jaws").contains("`year` is a number"));
        assert!(!err("year=nineteen,title=Jaws").contains("nineteen"));
        assert!(err("Jaws").contains("neither DynamoDB JSON"));
        assert!(!err("Jaws").contains("Jaws"));
        assert!(err(r#"{"year":{"N":"1"},"title":{"S":"x"},"x":{"S":"y"}}"#)
            .contains("`x` is not a key attribute"));
        assert!(err(r#"{"year":{"N":"1"},"title":{"SS":["x"]}}"#).contains("must be S, N or B"));
        assert!(err(r#"{"year":"#).contains("not DynamoDB JSON"));
    }
}
