//! The real [`Store`]: aws-sdk-dynamodb, one client per Region, created on
//! first use and reused. Endpoint, credentials, retries and timeouts come
//! from the `SdkConfig` the caller loads (so `AWS_ENDPOINT_URL` points it at
//! a local DynamoDB, and the SDK's own retry config handles throttling).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::Region as SdkRegion;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::Client;
use serde_dynamo::Item;

use crate::dot::Region;
use crate::stamp::Schema;
use crate::store::{Page, PutCondition, PutResult, Store, StoreError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;

/// One table name, reachable in every Region of the global table.
#[derive(Clone)]
pub struct DynamoStore {
    base: SdkConfig,
    table: String,
    schema: Schema,
    clients: Arc<Mutex<HashMap<Region, Client>>>,
}

impl DynamoStore {
    pub fn new(base: SdkConfig, table: &str, schema: Schema) -> Self {
        DynamoStore {
            base,
            table: table.to_owned(),
            schema,
            clients: Arc::default(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The client for `region`, made once.
    pub fn client(&self, region: &Region) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let config = aws_sdk_dynamodb::config::Builder::from(&self.base)
                    .region(SdkRegion::new(region.to_string()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }
}

impl DynamoStore {
    /// The conditional PutItem request for `item` in `region`.
    fn put_request(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let request = self
            .client(region)
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone().into()));
        let request = match condition {
            PutCondition::Always => request,
            _ => request.expression_attribute_names("#pk", &self.schema.partition_key),
        };
        match condition {
            PutCondition::Always => request,
            PutCondition::NotExists => request.condition_expression("attribute_not_exists(#pk)"),
            PutCondition::Unstamped => request
                .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#hw)")
                .expression_attribute_names("#hw", &self.schema.stamp_attribute),
            PutCondition::DotIs(dot) => request
                .condition_expression("attribute_exists(#pk) AND #hw.#dot = :dot")
                .expression_attribute_names("#hw", &self.schema.stamp_attribute)
                .expression_attribute_names("#dot", "dot")
                .expression_attribute_values(
                    ":dot",
                    aws_sdk_dynamodb::types::AttributeValue::S(dot.clone()),
                ),
            PutCondition::AttributeIs(name, value) => request
                .condition_expression("attribute_exists(#pk) AND #a = :a")
                .expression_attribute_names("#a", name)
                .expression_attribute_values(":a", value.clone().into()),
        }
    }
}

/// Maps an SDK error to a [`StoreError`], keeping what matters for retries.
pub fn store_error<E>(
    region: &Region,
    err: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let message = match err.message() {
        Some(m) => format!("{code}: {m}"),
        None => format!(
            "{code} {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        ),
    };
    if code == "ConditionalCheckFailedException" {
        return StoreError::ConditionFailed;
    }
    if code == "ValidationException" {
        return StoreError::Rejected(message);
    }
    if matches!(err, SdkError::TimeoutError(_)) {
        return StoreError::TimedOut {
            region: region.to_string(),
        };
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let retryable = match &err {
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => {
            status.is_some_and(|s| s >= 500)
                || matches!(
                    code.as_str(),
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "TransactionConflictException"
                )
        }
    };
    StoreError::Service {
        region: region.to_string(),
        retryable,
        message,
        source: Some(Box::new(err)),
    }
}

impl Store for DynamoStore {
    async fn get(&self, region: &Region, key: &Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client(region)
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.clone().into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(region, e))?;
        Ok(out.item.map(Item::from))
    }

    async fn put(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<(), StoreError> {
        self.put_request(region, item, condition)
            .send()
            .await
            .map_err(|e| store_error(region, e))?;
        Ok(())
    }

    async fn put_returning(
        &self,
        region: &Region,
        item: &Item,
        condition: &PutCondition,
    ) -> Result<PutResult, StoreError> {
        let sent = self
            .put_request(region, item, condition)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match sent {
            Ok(_) => Ok(PutResult::Written),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => Ok(
                    PutResult::Conflict(failed.item().map(|i| Item::from(i.clone()))),
                ),
                _ => Err(store_error(region, e)),
            },
        }
    }

    async fn scan(
        &self,
        region: &Region,
        start: Option<&Item>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let out = self
            .client(region)
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start.map(|s| s.clone().into()))
            .send()
            .await
            .map_err(|e| store_error(region, e))?;
        Ok(Page {
            items: out
                .items
                .unwrap_or_default()
                .into_iter()
                .map(Item::from)
                .collect(),
            next: out.last_evaluated_key.map(Item::from),
        })
    }
}
