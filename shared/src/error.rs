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
    #[error("counter attribute `{attribute}` holds {found}, not the sum of its per-Region contributions")]
    CounterMismatch {
        attribute: String,
        found: String,
        expected: i64,
    },
    #[error("the item lacks key attribute `{0}`")]
    MissingKey(String),
    /// A number read from the stamp (an epoch, a dot counter, a counter
    /// contribution) that would overflow, or leave the range a stamp may
    /// hold, on the next write or move. Names the field, never a value.
    #[error("stamp field `{field}` would overflow: {reason}")]
    Overflow { field: String, reason: &'static str },
    /// A stamp larger than the decoder accepts: names the cap (a constant
    /// of [`crate::stamp`]) and the field that exceeds it.
    #[error("stamp field `{field}` exceeds the cap {cap} ({limit})")]
    CapExceeded {
        cap: &'static str,
        field: String,
        limit: usize,
    },
}

impl StampError {
    /// A malformed or missing stamp field, and why.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        StampError::Field {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn overflow(field: &str, reason: &'static str) -> Self {
        StampError::Overflow {
            field: field.to_owned(),
            reason,
        }
    }

    /// The same error, an overflow or cap now naming `field` (the decoder
    /// knows where in the stamp a number was read; the parsers below it
    /// do not).
    pub(crate) fn in_field(self, field: &str) -> Self {
        match self {
            StampError::Overflow { reason, .. } => StampError::Overflow {
                field: field.to_owned(),
                reason,
            },
            StampError::CapExceeded { cap, limit, .. } => StampError::CapExceeded {
                cap,
                field: field.to_owned(),
                limit,
            },
            other => other,
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
