//! The connection table, created on a DynamoDB endpoint for local runs and tests (the
//! deployed table comes from `template.yaml`): only local and test code can reach this.

use std::time::Duration;

use adsync::registry::dynamo::{EXPIRES_AT, PK, SK};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters as _;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification, TimeToLiveStatus,
};

/// How long `create_table` waits for a new table to become active.
const CREATE_TABLE_WAIT: Duration = Duration::from_secs(120);

fn unavailable<E: std::error::Error>(op: &str, err: E) -> String {
    format!("DynamoDB {op}: {}", DisplayErrorContext(err))
}

/// Creates the registry table (schema in the module docs), waits until it is active and
/// enables TTL on `expiresAt`. Succeeds if the table already exists. For tests and the local
/// dev server; the deployed table comes from the SAM template.
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    let build = |e| unavailable("CreateTable", e);
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(SK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(SK)
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) => {}
        Err(e) => return Err(unavailable("CreateTable", e)),
    }

    // Real DynamoDB creates tables asynchronously, and TTL can only be set on an active one.
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(CREATE_TABLE_WAIT)
        .await
        .map_err(|e| unavailable("DescribeTable", e))?;

    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", e))?;
    let status = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status());
    // Enabling TTL twice is a ValidationException, so only enable it when it is off.
    if !matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRES_AT)
                    .build()
                    .map_err(|e| unavailable("UpdateTimeToLive", e))?,
            )
            .send()
            .await
            .map_err(|e| unavailable("UpdateTimeToLive", e))?;
    }
    Ok(())
}
