//! The narrow port between Homeward and DynamoDB: read one item strongly
//! consistent in a Region, write one item conditionally in a Region.

use std::future::Future;

use serde_dynamo::Item;
use thiserror::Error;

use crate::dot::Region;

/// What a conditional put requires of the item it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// No condition (control items an operator replaces whole).
    Always,
    /// No item with this key exists (insert).
    NotExists,
    /// The item exists and carries no stamp (adopting a legacy item).
    Unstamped,
    /// The item's stamp carries this dot (`region:counter:nonce`): the
    /// version that was read is still the current one.
    DotIs(String),
    /// The item exists and its top-level attribute `name` equals `value`
    /// (Homeward's control items: an assignment's epoch).
    AttributeIs(String, serde_dynamo::AttributeValue),
}

impl PutCondition {
    /// Whether the condition holds for the `current` item, as DynamoDB
    /// evaluates the expressions [`crate::dynamo::DynamoStore`] sends. For
    /// in-memory stores (the simulator, benchmarks).
    pub fn holds(&self, current: Option<&Item>, stamp_attribute: &str) -> bool {
        use serde_dynamo::AttributeValue;
        match (self, current) {
            (PutCondition::Always, _) => true,
            (PutCondition::NotExists, current) => current.is_none(),
            (_, None) => false,
            (PutCondition::Unstamped, Some(item)) => !item.contains_key(stamp_attribute),
            (PutCondition::DotIs(dot), Some(item)) => match item.get(stamp_attribute) {
                Some(AttributeValue::M(m)) => {
                    matches!(m.get("dot"), Some(AttributeValue::S(d)) if d == dot)
                }
                _ => false,
            },
            (PutCondition::AttributeIs(name, value), Some(item)) => item.get(name) == Some(value),
        }
    }
}

/// A failed store call.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The item changed since it was read (or exists, for an insert).
    #[error("conditional check failed")]
    ConditionFailed,
    /// DynamoDB refused the request itself (a bad key, a too-large item):
    /// retrying cannot help.
    #[error("DynamoDB rejected the request: {0}")]
    Rejected(String),
    /// The call did not answer in time (the SDK's attempt or operation
    /// timeout, or the resolver's bound on the time left). Ambiguous: the
    /// call may have taken effect. Retryable.
    #[error("DynamoDB call timed out in {region} (it may have taken effect)")]
    TimedOut { region: String },
    /// Anything else; `retryable` for throttling, 5xx and timeouts left
    /// over after the SDK's own retries.
    #[error("DynamoDB call failed in {region} (retryable: {retryable}): {message}")]
    Service {
        region: String,
        retryable: bool,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// Throttling: the table's or the account's throughput limits.
    pub fn is_throttling(&self) -> bool {
        const CODES: [&str; 3] = [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
        ];
        matches!(self, StoreError::Service { message, .. }
            if CODES.iter().any(|code| message.starts_with(code)))
    }

    /// Transient errors (throttling, 5xx, timeouts) may succeed when tried
    /// again; the others (a rejected request, a failed condition) will not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::TimedOut { .. }
                | StoreError::Service {
                    retryable: true,
                    ..
                }
        )
    }
}

/// How a conditional put that can report what stood in its way ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PutResult {
    Written,
    /// The condition failed; the item as it stands now (`None`: there is
    /// no item).
    Conflict(Option<Item>),
}

/// One page of a scan: the items, and where the next page starts.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// The last key read, `None` on the last page.
    pub next: Option<Item>,
}

/// One table, reachable in several Regions.
pub trait Store: Send + Sync {
    /// Strongly consistent read of the item with `key` in `region`.
    fn get(
        &self,
        region: &Region,
        key: &Item,
    ) -> impl Future<Output = Result<Option<Item>, StoreError>> + Send;

    /// Replaces the item in `region` if `condition` holds.
    fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`Self::put`], handing back the item that made the condition fail
    /// (DynamoDB's `ReturnValuesOnConditionCheckFailure=ALL_OLD`): a retry
    /// needs no read. Stores that cannot tell fail with
    /// [`StoreError::ConditionFailed`], as `put` does.
    fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> impl Future<Output = Result<PutResult, StoreError>> + Send {
        let put = self.put(region, item, condition);
        async move { put.await.map(|()| PutResult::Written) }
    }

    /// Up to `limit` items of the table in `region`, from after `start`.
    /// Stores that cannot scan say so (the operator function needs it).
    fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        let _ = (region, start, limit);
        async { Err(StoreError::Rejected("this store cannot scan".into())) }
    }
}

/// A shared store is a store (the resolver shares its journal table with
/// the assignments it reads).
impl<S: Store> Store for std::sync::Arc<S> {
    fn get(
        &self,
        region: &Region,
        key: &Item,
    ) -> impl Future<Output = Result<Option<Item>, StoreError>> + Send {
        (**self).get(region, key)
    }

    fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put(region, item, condition)
    }

    fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> impl Future<Output = Result<PutResult, StoreError>> + Send {
        (**self).put_returning(region, item, condition)
    }

    fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        (**self).scan(region, start, limit)
    }
}
