//! DynamoDB's item size, computed as DynamoDB bills and limits it (400 KB).

use serde_dynamo::{AttributeValue, Item};

/// The most DynamoDB stores in one item.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Size of an item: for each attribute, its name's UTF-8 length plus its
/// value's size.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// Size of one value by DynamoDB's rules: strings and binaries by length,
/// numbers by significant digits (about one byte per two digits, plus one),
/// maps and lists 3 bytes plus one per element plus their contents.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(Vec::len).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
    }
}

fn number_size(n: &str) -> usize {
    let digits = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        let mut m = HashMap::new();
        m.insert("name".to_string(), AttributeValue::S("abc".into()));
        m.insert("n".to_string(), AttributeValue::N("12345".into()));
        let item = Item::from(m);
        assert_eq!(item_size(&item), 4 + 3 + 1 + 4);
        assert_eq!(
            value_size(&AttributeValue::L(vec![AttributeValue::Bool(true)])),
            3 + 2
        );
    }
}
