/** The pure core and the writer's retry logic, without DynamoDB. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Draft,
  HomeStrategy,
  Router,
  MemoryStore,
  StoreError,
  Writer,
  decodeItem,
  decodeTimedDot,
  encodeItem,
  encodeTick,
  planOperation,
  parseRules,
  randomNonce,
  storeError,
  type Item,
  type PutCondition,
} from "../src/index.js";

const SCHEMA = { partitionKey: "pk" };
const RULES = parseRules({ attributes: { stock: "counter" } });
const ctx = (nonce = 7, timeMs = 1_764_000_000_000n) => ({
  region: "us-east-1",
  timeMs,
  nonce,
  by: "app" as const,
});

void describe("dots and stamps", () => {
  it("writes nonces in base 36, lower case, and reads them back", () => {
    assert.equal(encodeTick({ counter: 42, nonce: 0xffffffff }), "42:1z141z3");
    assert.equal(encodeTick({ counter: 1, nonce: 0 }), "1:0");
    const t = decodeTimedDot("us-east-1:42:1z141z3:1764000000123");
    assert.deepEqual(t, {
      dot: { region: "us-east-1", tick: { counter: 42, nonce: 0xffffffff } },
      timeMs: 1764000000123n,
    });
    for (let i = 0; i < 100; i++) {
      const n = randomNonce();
      assert.ok(Number.isInteger(n) && n >= 0 && n <= 0xffffffff);
    }
  });

  it("refuses dot counters past 2^53 - 1 as an overflow, naming the field", () => {
    const plan = planOperation(
      undefined,
      { kind: "insert", item: { pk: { S: "a" }, x: { S: "1" } } },
      ctx(),
      { schema: SCHEMA, rules: RULES },
    );
    const item = structuredClone(plan.item);
    item._hw!.M!.k!.M!["us-east-1"] = { S: `${2 ** 53}:b 1:b` };
    assert.throws(() => decodeItem(SCHEMA, item), { kind: "overflow", field: "k.us-east-1" });
    item._hw!.M!.k!.M!["us-east-1"] = { S: `${2 ** 53 - 1}:b` };
    assert.throws(
      () =>
        planOperation(item, { kind: "update", set: { x: { S: "2" } } }, ctx(), {
          schema: SCHEMA,
          rules: RULES,
        }),
      { code: "stamp", kind: "overflow" },
    );
  });

  it("names attributes, never values, in errors", () => {
    const secret = "s3cr3t-value";
    const plan = planOperation(
      undefined,
      { kind: "insert", item: { pk: { S: "a" }, stock: { N: "3" } } },
      ctx(),
      { schema: SCHEMA, rules: RULES },
    );
    const tampered: Item = { ...plan.item, stock: { S: secret } };
    assert.throws(
      () => decodeItem(SCHEMA, tampered),
      (e: Error) => e.message.includes("stock") && !e.message.includes(secret),
    );
    const undotted: Item = { ...plan.item, note: { S: secret } };
    assert.throws(
      () => decodeItem(SCHEMA, undotted),
      (e: Error) => e.message.includes("note") && !e.message.includes(secret),
    );
  });

  it("round-trips a version through the codec", () => {
    const plan = planOperation(
      undefined,
      {
        kind: "insert",
        item: {
          pk: { S: "a" },
          stock: { N: "-12" },
          tags: { SS: ["x", "y"] },
          b: { B: new Uint8Array([0, 255]) },
        },
      },
      ctx(),
      { schema: SCHEMA, rules: RULES },
    );
    assert.deepEqual(encodeItem(SCHEMA, decodeItem(SCHEMA, plan.item)), plan.item);
  });
});

void describe("draft", () => {
  it("shows pending changes and exact counter sums", () => {
    const d = new Draft({ stock: { N: "9223372036854775807" }, name: { S: "a" } });
    d.increment("stock", 1).increment("stock", 2n);
    assert.deepEqual(d.get("stock"), { N: "9223372036854775810" });
    d.remove("name");
    assert.deepEqual(d.names(), ["stock"]);
    assert.throws(() => d.increment("stock", 0.5), { code: "counter_value" });
  });
});

void describe("storeError", () => {
  const meta = (status: number) => ({ $metadata: { httpStatusCode: status } });
  it("classifies SDK errors", () => {
    const cases: [unknown, string, boolean][] = [
      [{ name: "ConditionalCheckFailedException", ...meta(400) }, "condition-failed", false],
      [{ name: "ValidationException", message: "bad value abc", ...meta(400) }, "rejected", false],
      [{ name: "ThrottlingException", ...meta(400) }, "service", true],
      [{ name: "ProvisionedThroughputExceededException", ...meta(400) }, "service", true],
      [{ name: "InternalServerError", ...meta(500) }, "service", true],
      [{ name: "ResourceNotFoundException", ...meta(400) }, "service", false],
      [Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "service", true],
      [{ name: "TimeoutError" }, "timed-out", true],
    ];
    for (const [err, kind, retryable] of cases) {
      const e = storeError("us-east-1", err);
      assert.equal(e.kind, kind, JSON.stringify(err));
      assert.equal(e.retryable, retryable, JSON.stringify(err));
      assert.ok(!e.message.includes("abc"), e.message);
    }
  });
});

/** A memory store that throttles its first `n` calls. */
class Throttled extends MemoryStore {
  calls = 0;
  constructor(public throttle: number) {
    super("T", SCHEMA);
  }
  private gate(): void {
    if (this.calls++ < this.throttle) {
      throw new StoreError("service", "throttled", {
        retryable: true,
        errorName: "ThrottlingException",
      });
    }
  }
  override async get(region: string, key: Item, table?: string) {
    await Promise.resolve();
    this.gate();
    return super.get(region, key, table);
  }
  override async put(region: string, item: Item, condition: PutCondition) {
    await Promise.resolve();
    this.gate();
    return super.put(region, item, condition);
  }
}

void describe("writer retries", () => {
  const writer = (store: MemoryStore, maxAttempts = 10) =>
    new Writer({
      table: "T",
      schema: SCHEMA,
      store,
      rules: RULES,
      backoff: { maxAttempts, baseMs: 1, capMs: 2 },
    });

  it("retries throttling with backoff", async () => {
    const store = new Throttled(0);
    const w = writer(store);
    await w.insert("us-east-1", { pk: { S: "a" }, stock: { N: "1" } });
    store.throttle = store.calls + 3;
    const written = await w.increment("us-east-1", { pk: { S: "a" } }, "stock", 1);
    assert.equal(written.values.stock?.N, "2");
    store.throttle = store.calls + 3;
    assert.equal((await w.get("us-east-1", { pk: { S: "a" } }))?.values.stock?.N, "2");
  });

  it("gives the throttling error back once the attempts are spent", async () => {
    const store = new Throttled(0);
    const w = writer(store, 3);
    await w.insert("us-east-1", { pk: { S: "a" } });
    store.throttle = Infinity;
    await assert.rejects(w.update("us-east-1", { pk: { S: "a" } }, { x: { S: "1" } }), {
      code: "store",
      errorName: "ThrottlingException",
    });
  });

  it("treats the stamp's time as the clock's and soft-deletes with the TTL", async () => {
    const store = new MemoryStore("T", SCHEMA);
    const w = new Writer({
      table: "T",
      schema: SCHEMA,
      store,
      rules: RULES,
      clock: () => 1_764_000_000_999,
      nonce: () => 35,
      tombstones: { retentionSeconds: 60 },
    });
    const first = await w.insert("eu-west-1", { pk: { S: "a" }, x: { S: "1" }, stock: { N: "4" } });
    assert.equal(first.dot, "eu-west-1:1:z");
    const del = await w.delete("eu-west-1", { pk: { S: "a" } });
    assert.deepEqual(del.values, {
      hw_expires: { N: String(1_764_000_000 + 60) },
      stock: { N: "4" },
    });
  });
});

void describe("router (memory)", () => {
  it("routes reads, increments and soft deletes to the home", async () => {
    const store = new MemoryStore("T", SCHEMA);
    const w = new Writer({ table: "T", schema: SCHEMA, store, rules: RULES });
    const key = { pk: { S: "a" } };
    for (const r of ["us-east-1", "eu-west-1"]) {
      await w.insert(r, { ...key, home_region: { S: "eu-west-1" }, stock: { N: "1" } });
    }
    const router = new Router({
      writer: w,
      local: "us-east-1",
      homes: HomeStrategy.parse("attribute:home_region"),
    });
    assert.equal((await router.increment(key, "stock", 2n)).region, "eu-west-1");
    assert.equal((await router.get(key))?.values.stock?.N, "3");
    const deleted = await router.delete(key);
    assert.equal(deleted.region, "eu-west-1");
    assert.equal(await router.get(key), undefined);
    assert.equal(store.peek("us-east-1", key)?.hw_expires, undefined);
  });

  it("refuses the negotiated strategy clearly", () => {
    const w = new Writer({ table: "T", schema: SCHEMA, store: new MemoryStore("T", SCHEMA) });
    assert.throws(
      () => new Router({ writer: w, local: "us-east-1", homes: HomeStrategy.parse("negotiated") }),
      { code: "config" },
    );
  });
});
