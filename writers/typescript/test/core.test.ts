/** The pure core and the writer's retry logic, without DynamoDB. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CounterMismatchError,
  Draft,
  UNATTRIBUTED,
  adoptPlain,
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
    // A counter a plain writer set to a string cannot be adopted: the write
    // is refused, naming the attribute, not the value.
    assert.throws(
      () =>
        planOperation(tampered, { kind: "update", set: { x: { S: "2" } } }, ctx(8), {
          schema: SCHEMA,
          rules: RULES,
        }),
      (e: Error) =>
        e instanceof CounterMismatchError &&
        e.code === "stamp" &&
        e.attribute === "stock" &&
        e.message.includes("stock") &&
        !e.message.includes(secret),
    );
  });

  it("adopts an attribute a plain writer added, with a dot derived from the item", () => {
    const plan = planOperation(
      undefined,
      { kind: "insert", item: { pk: { S: "a" }, stock: { N: "3" } } },
      ctx(),
      { schema: SCHEMA, rules: RULES },
    );
    const undotted: Item = { ...plan.item, note: { S: "added by a console" } };
    // The strict decoder still refuses it...
    assert.throws(() => decodeItem(SCHEMA, undotted), { kind: "undotted-attribute" });
    // ...the writer's read takes it in: an edit of `unattributed`.
    const adopted = adoptPlain(SCHEMA, RULES, undotted);
    assert.deepEqual(adopted.attributes, ["note"]);
    assert.equal(adopted.dot?.dot.region, UNATTRIBUTED);
    assert.equal(adopted.dot?.dot.tick.counter, 1);
    assert.equal(adopted.dot?.timeMs, 1_764_000_000_000n);
    assert.deepEqual(adoptPlain(SCHEMA, RULES, undotted).dot, adopted.dot);
    const next = planOperation(undotted, { kind: "update", set: { x: { S: "2" } } }, ctx(9), {
      schema: SCHEMA,
      rules: RULES,
    });
    assert.deepEqual(next.item.note, { S: "added by a console" });
    assert.deepEqual(next.condition, { kind: "dot-is", dot: "us-east-1:1:7" });
    // The stamp is whole again: it decodes strictly, and knows the adoption.
    const written = decodeItem(SCHEMA, next.item);
    assert.deepEqual(written.known.get(UNATTRIBUTED), [adopted.dot?.dot.tick]);
    assert.equal(adoptPlain(SCHEMA, RULES, next.item).dot, undefined);
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

void describe("plain writers (memory)", () => {
  it("gets and updates a stamped item a plain writer changed, adopting its edits", async () => {
    const store = new MemoryStore("T", SCHEMA);
    const w = new Writer({ table: "T", schema: SCHEMA, store, rules: RULES });
    const key = { pk: { S: "a" } };
    await w.insert("us-east-1", { ...key, name: { S: "lamp" }, stock: { N: "1" } });
    // boto3's UpdateItem `SET color = :c ADD stock :five`: the stamp is left as it was.
    const plain = { ...store.peek("us-east-1", key)!, color: { S: "red" }, stock: { N: "6" } };
    store.seed("us-east-1", plain);
    const got = await w.get("us-east-1", key);
    assert.deepEqual(got?.values.color, { S: "red" });
    assert.deepEqual(got?.values.stock, { N: "6" });
    // color's dot, and stock's slot (same counter, the nonce of the stamp's dot alone)
    assert.equal(got?.version.known.get(UNATTRIBUTED)?.length, 2);
    assert.deepEqual(decodeItem(SCHEMA, got.item).known, got.version.known);
    const written = await w.increment("us-east-1", key, "stock", -2);
    assert.deepEqual(written.values.stock, { N: "4" });
    const stored = decodeItem(SCHEMA, store.peek("us-east-1", key)!);
    assert.deepEqual(stored.known.get(UNATTRIBUTED), got?.version.known.get(UNATTRIBUTED));
    assert.equal(stored.counters.get("stock")?.get(UNATTRIBUTED)?.deltas[0]?.delta, 5n);
    // A counter set to a string by a plain writer cannot be adopted.
    store.seed("us-east-1", { ...store.peek("us-east-1", key)!, stock: { S: "private text" } });
    await assert.rejects(
      w.update("us-east-1", key, { name: { S: "x" } }),
      (e: Error) =>
        e instanceof CounterMismatchError &&
        e.attribute === "stock" &&
        !e.message.includes("private text"),
    );
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
