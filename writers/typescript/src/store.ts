/** The narrow port to DynamoDB: a strongly consistent read and a conditional put, per Region. */
import {
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  type PutItemCommandInput,
} from "@aws-sdk/client-dynamodb";
import { StoreError } from "./errors.js";
import { stampAttributeOf, type Schema } from "./stamp.js";
import type { Item } from "./value.js";

/** What a conditional put requires of the item it replaces. */
export type PutCondition =
  | { kind: "always" }
  | { kind: "not-exists" }
  | { kind: "unstamped" }
  | { kind: "dot-is"; dot: string };

/** The expression parts of a put under `condition`, exactly as the stamp protocol writes them. */
export function conditionExpression(
  condition: PutCondition,
  schema: Schema,
): Pick<
  PutItemCommandInput,
  "ConditionExpression" | "ExpressionAttributeNames" | "ExpressionAttributeValues"
> {
  const pk = schema.partitionKey;
  const hw = stampAttributeOf(schema);
  switch (condition.kind) {
    case "always":
      return {};
    case "not-exists":
      return {
        ConditionExpression: "attribute_not_exists(#pk)",
        ExpressionAttributeNames: { "#pk": pk },
      };
    case "unstamped":
      return {
        ConditionExpression: "attribute_exists(#pk) AND attribute_not_exists(#hw)",
        ExpressionAttributeNames: { "#pk": pk, "#hw": hw },
      };
    case "dot-is":
      return {
        ConditionExpression: "attribute_exists(#pk) AND #hw.#dot = :dot",
        ExpressionAttributeNames: { "#pk": pk, "#hw": hw, "#dot": "dot" },
        ExpressionAttributeValues: { ":dot": { S: condition.dot } },
      };
  }
}

/** Gives the DynamoDB client of a Region. */
export type ClientProvider = (region: string) => DynamoDBClient;

/** A provider that makes one client per Region with `config` (endpoint, credentials, retries), then reuses it. */
export function clientsFor(
  config: ConstructorParameters<typeof DynamoDBClient>[0] = {},
): ClientProvider {
  const clients = new Map<string, DynamoDBClient>();
  return (region) => {
    let client = clients.get(region);
    if (client === undefined) {
      client = new DynamoDBClient({ ...config, region });
      clients.set(region, client);
    }
    return client;
  };
}

const THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "ThrottlingException",
  "RequestLimitExceeded",
  "ThrottlingError",
]);

const RETRYABLE = new Set([...THROTTLING, "InternalServerError", "TransactionConflictException"]);

/** Whether a store error is throttling (worth a backoff and another attempt). */
export function isThrottling(e: unknown): boolean {
  return e instanceof StoreError && e.errorName !== undefined && THROTTLING.has(e.errorName);
}

/** Maps an SDK error to a StoreError; the message names the error and the Region, never the request's values. */
export function storeError(region: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const e = err as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  const name = typeof e?.name === "string" ? e.name : "Error";
  const status = e?.$metadata?.httpStatusCode;
  if (name === "ConditionalCheckFailedException") {
    return new StoreError("condition-failed", "conditional check failed", {
      region,
      errorName: name,
      cause: err,
    });
  }
  if (name === "ValidationException") {
    return new StoreError("rejected", `DynamoDB rejected the request in ${region} (${name})`, {
      region,
      errorName: name,
      cause: err,
    });
  }
  if (name === "TimeoutError" || name === "RequestTimeout" || e?.code === "ETIMEDOUT") {
    return new StoreError(
      "timed-out",
      `DynamoDB call timed out in ${region} (it may have taken effect)`,
      { region, retryable: true, errorName: name, cause: err },
    );
  }
  // No HTTP answer at all (connection refused, reset, DNS): the Region does not answer.
  const noAnswer = status === undefined;
  const retryable = noAnswer || status >= 500 || RETRYABLE.has(name) || e?.$retryable !== undefined;
  const what = noAnswer ? `no answer${e?.code ? ` (${e.code})` : ""}` : `${name}, HTTP ${status}`;
  return new StoreError(
    "service",
    `DynamoDB call failed in ${region} (retryable: ${retryable}): ${what}`,
    { region, retryable, errorName: noAnswer ? e?.code : name, cause: err },
  );
}

/** One table, reachable in several Regions: what the writer reads and writes through. */
export interface Store {
  readonly table: string;
  /** Strongly consistent read in `region` (of `table`, default the store's table). */
  get(region: string, key: Item, table?: string): Promise<Item | undefined>;
  /** Replaces the item in `region` if `condition` holds; a StoreError otherwise. */
  put(region: string, item: Item, condition: PutCondition): Promise<void>;
}

/** One table, reachable in every Region of the global table, through the AWS SDK. */
export class DynamoStore implements Store {
  readonly table: string;
  readonly schema: Schema;
  readonly clients: ClientProvider;

  constructor(table: string, schema: Schema, clients: ClientProvider) {
    this.table = table;
    this.schema = schema;
    this.clients = clients;
  }

  /** Strongly consistent read of the item with `key` in `region`. */
  async get(region: string, key: Item, table: string = this.table): Promise<Item | undefined> {
    try {
      const out = await this.clients(region).send(
        new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }),
      );
      return out.Item;
    } catch (err) {
      throw storeError(region, err);
    }
  }

  /** Replaces the item in `region` if `condition` holds. */
  async put(region: string, item: Item, condition: PutCondition): Promise<void> {
    try {
      await this.clients(region).send(
        new PutItemCommand({
          TableName: this.table,
          Item: item,
          ...conditionExpression(condition, this.schema),
        }),
      );
    } catch (err) {
      throw storeError(region, err);
    }
  }
}
