//! Your merge rules, registered once. The resolver and the rehome function,
//! the operator CLI and the simulator (`homeward-sim run`, `demo`, `check`)
//! all build their rules from [`registry`], so a rule named in
//! `MERGE_RULES` means the same thing everywhere, and a function never
//! refuses to start over a rule another one knows.
//!
//! To add a rule: implement [`MergeRule`] (the value shown among concurrent
//! edits, from the set of edits alone, sorted by dot) and insert it below
//! under the name `MERGE_RULES` will use; then rebuild and redeploy.

use std::sync::Arc;

use serde_dynamo::AttributeValue;

use crate::rules::{MergeRule, Registry};
use crate::version::Sibling;

/// Every custom rule, by name.
pub fn registry() -> Registry {
    let mut rules = Registry::new();
    rules.insert("longest".to_owned(), Arc::new(Longest));
    rules
}

/// An example you may keep or delete: among concurrent edits of a string,
/// the longest (in characters; equal lengths: the later dot). A removal or
/// a value of another type loses to any string.
pub struct Longest;

impl MergeRule for Longest {
    fn resolve(&self, siblings: &[Sibling]) -> Option<AttributeValue> {
        siblings
            .iter()
            .filter_map(|s| match &s.value {
                Some(AttributeValue::S(text)) => Some((text.chars().count(), text)),
                _ => None,
            })
            // Siblings come sorted by dot: the last of the longest wins ties.
            .max_by_key(|(length, _)| *length)
            .map(|(_, text)| AttributeValue::S(text.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dot::{Dot, Region, Tick, TimedDot};

    fn edit(counter: u64, value: Option<&str>) -> Sibling {
        Sibling {
            at: TimedDot {
                dot: Dot {
                    region: Region::parse("us-east-1").unwrap(),
                    tick: Tick { counter, nonce: 1 },
                },
                time_ms: counter,
            },
            value: value.map(|v| AttributeValue::S(v.into())),
        }
    }

    #[test]
    fn longest_picks_the_longest_string_and_the_later_of_equals() {
        let rule = registry()["longest"].clone();
        let shown = rule.resolve(&[edit(1, Some("abc")), edit(2, Some("a")), edit(3, None)]);
        assert_eq!(shown, Some(AttributeValue::S("abc".into())));
        let tie = rule.resolve(&[edit(1, Some("ab")), edit(2, Some("cd"))]);
        assert_eq!(tie, Some(AttributeValue::S("cd".into())));
        assert_eq!(rule.resolve(&[edit(1, None)]), None);
    }
}
