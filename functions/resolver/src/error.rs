//! Why a record failed, and whether trying again can help.
//!
//! Transient errors (throttling, 5xx, timeouts, contention, running out of
//! time) are reported to Lambda, which redelivers the record. Permanent
//! ones (the record itself is bad, or its merge cannot be stored) would
//! fail the same way forever and block the shard, so the record is
//! quarantined instead: journaled with both images and acknowledged.
//!
//! No message here carries an item value: they end up in logs, and many
//! tables hold personal data.

use homeward::classify::ClassifyError;
use homeward::control::AssignError;
use homeward::{StampError, StoreError};

/// Why one record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Malformed(#[from] ClassifyError),
    #[error("malformed record: {0} image is not a DynamoDB item: {1}")]
    Image(&'static str, String),
    #[error("malformed stamp: {0}")]
    Stamp(#[from] StampError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the home copy kept changing; gave up after {0} attempts")]
    Contended(u32),
    #[error("an earlier record of the same item failed; this one waits for it")]
    Blocked,
    #[error("not enough time left in this invocation to start the record")]
    OutOfTime,
    #[error("the merge produced a change the rules forbid: {0}")]
    Edit(#[from] homeward::EditError),
    #[error("the merged item would be {bytes} bytes, over DynamoDB's 400 KB item limit")]
    TooLarge { bytes: usize },
    #[error("home: {0}")]
    Home(String),
    #[error("home assignment: {0}")]
    Assign(#[from] AssignError),
}

impl RecordError {
    /// Whether the record would fail the same way on every delivery: it is
    /// quarantined rather than retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            RecordError::Malformed(_)
            | RecordError::Image(..)
            | RecordError::Stamp(_)
            | RecordError::Edit(_)
            | RecordError::TooLarge { .. }
            | RecordError::Home(_) => true,
            RecordError::Store(e) | RecordError::Assign(AssignError::Store(e)) => {
                matches!(e, StoreError::Rejected(_))
            }
            RecordError::Assign(AssignError::Malformed(_)) => true,
            RecordError::Assign(_)
            | RecordError::Contended(_)
            | RecordError::Blocked
            | RecordError::OutOfTime => false,
        }
    }

    /// An image that did not parse, described by where and what kind of
    /// error, never by the text around it (serde's messages quote values).
    pub fn image(which: &'static str, e: &serde_json::Error) -> Self {
        RecordError::Image(which, json_error_text(e))
    }
}

/// How logs name an item: `key#` and 16 hex digits of the FNV-1a hash of
/// its key id ([`homeward::control::key_id`]: the key as DynamoDB JSON,
/// names sorted) — enough to correlate lines and, given a key, to find
/// them, not to read a user's data — or the key text itself when the
/// operator allows it (`LOG_KEYS=true`).
pub fn key_for_log(key: &serde_dynamo::Item, show: bool) -> String {
    if show {
        return homeward::control::key_text(key);
    }
    let hash = homeward::control::key_id(key)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("key#{hash:016x}")
}

/// A serde_json error without the input it quotes: its category and place.
pub fn json_error_text(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "not DynamoDB JSON",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        what.to_owned()
    } else {
        format!("{what} at line {} column {}", e.line(), e.column())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence_is_a_property_of_the_error() {
        let rejected = RecordError::Store(StoreError::Rejected("ValidationException".into()));
        let throttled = RecordError::Store(StoreError::Service {
            region: "us-east-1".into(),
            retryable: true,
            message: "ThrottlingException".into(),
            source: None,
        });
        let timed_out = RecordError::Store(StoreError::TimedOut {
            region: "us-east-1".into(),
        });
        assert!(rejected.is_permanent());
        assert!(RecordError::TooLarge { bytes: 500_000 }.is_permanent());
        assert!(RecordError::Stamp(StampError::Missing("_hw".into())).is_permanent());
        assert!(!throttled.is_permanent());
        assert!(!timed_out.is_permanent());
        assert!(!RecordError::Contended(9).is_permanent());
        assert!(!RecordError::OutOfTime.is_permanent());
    }

    #[test]
    fn logs_name_keys_by_hash_unless_allowed() {
        let key = serde_dynamo::Item::from(std::collections::HashMap::from([(
            "email".to_string(),
            serde_dynamo::AttributeValue::S("alice@example.com".into()),
        )]));
        let hidden = key_for_log(&key, false);
        assert!(hidden.starts_with("key#") && hidden.len() == 20, "{hidden}");
        assert!(!hidden.contains("alice"));
        assert_eq!(hidden, key_for_log(&key, false), "stable");
        assert!(key_for_log(&key, true).contains("alice@example.com"));
    }

    #[test]
    fn image_errors_quote_no_values() {
        let e = serde_json::from_str::<u64>(r#""alice@example.com""#).unwrap_err();
        assert!(e.to_string().contains("alice"), "serde quotes the value");
        let text = RecordError::image("new", &e).to_string();
        assert!(!text.contains("alice"), "{text}");
        assert!(text.contains("new image"), "{text}");
    }
}
