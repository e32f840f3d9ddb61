//! Typed errors of the pure core.

use thiserror::Error;

/// A stamp (or the item around it) that cannot be read. Never defaulted:
/// an item whose stamp is malformed is reported, not silently re-stamped.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StampError {
    #[error("the item has no stamp attribute `{0}`")]
    Missing(String),
    #[error("stamp field `{field}` is malformed: {reason}")]
    Field { field: String, reason: String },
    #[error("bad Region name `{0}` (expected lower-case letters, digits and `-`)")]
    BadRegion(String),
    #[error("bad dot `{0}` (expected `region:counter:nonce[:time_ms]`)")]
    BadDot(String),
    #[error(
        "attribute `{0}` has a value but no dot in the stamp (written outside the stamp protocol)"
    )]
    UndottedAttribute(String),
    #[error("counter attribute `{attribute}` holds {found} but its per-Region contributions sum to {expected}")]
    CounterMismatch {
        attribute: String,
        found: String,
        expected: i64,
    },
    #[error("the item lacks key attribute `{0}`")]
    MissingKey(String),
}

impl StampError {
    pub(crate) fn field(field: &str, reason: impl Into<String>) -> Self {
        StampError::Field {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A merge-rule configuration that cannot be used. Raised when the rules are
/// loaded (start-up), never during a merge.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("merge rules are not valid JSON: {0}")]
    Json(String),
    #[error("unknown merge rule `{rule}` for {target} (known: lww, home, max, min, union, counter{custom})")]
    UnknownRule {
        rule: String,
        target: String,
        custom: String,
    },
    #[error("unknown attribute type `{ty}` in `{spec}` (expected one of S, N, B, SS, NS, BS, L, M, BOOL)")]
    UnknownType { ty: String, spec: String },
    #[error("rule `{rule}` does not fit type {ty} (attribute `{attribute}`); it fits {fits}")]
    TypeMismatch {
        rule: String,
        ty: String,
        attribute: String,
        fits: String,
    },
    #[error("rule `{0}` cannot be the default: it only fits some attribute types; name the attributes it applies to")]
    BadDefault(String),
    #[error("attribute `{0}` is a key or the stamp attribute and cannot have a merge rule")]
    ReservedAttribute(String),
}
