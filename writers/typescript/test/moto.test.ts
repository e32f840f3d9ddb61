/** The writer and the router against DynamoDB, played by moto. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DynamoStore,
  HomeStrategy,
  Router,
  Writer,
  decodeItem,
  type ClientProvider,
  type Item,
  type PutCondition,
} from "../src/index.js";
import { client, createTables, freePort, startMoto, type Moto } from "./moto.js";

const TABLE = "Items";
const SCHEMA = { partitionKey: "pk" };
const RULES = { attributes: { stock: "counter", views: "counter" } };
const EAST = "us-east-1";
const WEST = "us-west-1";

let moto: Moto;
const made: DynamoDBClient[] = [];

/** Fresh clients per Region (a distinct writer process, as far as DynamoDB can tell). */
function clients(overrides: Record<string, string> = {}, maxAttempts = 3): ClientProvider {
  const cache = new Map<string, DynamoDBClient>();
  return (region) => {
    let c = cache.get(region);
    if (c === undefined) {
      c = client(overrides[region] ?? moto.endpoint, region, maxAttempts);
      made.push(c);
      cache.set(region, c);
    }
    return c;
  };
}

function writer(provider: ClientProvider = clients(), maxAttempts = 10): Writer {
  return new Writer({
    table: TABLE,
    schema: SCHEMA,
    clients: provider,
    rules: RULES,
    backoff: { maxAttempts },
  });
}

async function raw(region: string, key: Item): Promise<Item | undefined> {
  const out = await clients()(region).send(
    new GetItemCommand({ TableName: TABLE, Key: key, ConsistentRead: true }),
  );
  return out.Item;
}

let n = 0;
const freshKey = (): Item => ({ pk: { S: `item-${++n}` } });

before(async () => {
  moto = await startMoto();
  await createTables(moto.endpoint, EAST, TABLE);
  await createTables(moto.endpoint, WEST, TABLE);
});

after(async () => {
  for (const c of made) c.destroy();
  await moto?.stop();
});

void describe("writer against moto", () => {
  it("inserts, reads, updates (function and object), increments and soft-deletes", async () => {
    const w = writer();
    const key = freshKey();
    const first = await w.insert(EAST, { ...key, name: { S: "lamp" }, stock: { N: "10" } });
    assert.match(first.dot, /^us-east-1:1:[0-9a-z]+$/);
    await assert.rejects(w.insert(EAST, { ...key, name: { S: "again" } }), {
      code: "already_exists",
    });

    const got = await w.get(EAST, key);
    assert.deepEqual(got?.values, { name: { S: "lamp" }, stock: { N: "10" } });

    await w.update(EAST, key, (d) => {
      d.set("color", { S: "red" });
      d.remove("name");
    });
    await w.update(EAST, key, { name: { S: "desk lamp" }, color: undefined });
    const inc = await w.increment(EAST, key, "stock", -3);
    assert.equal(inc.values.stock?.N, "7");
    assert.match(inc.dot, /^us-east-1:4:/);
    assert.deepEqual((await w.get(EAST, key))?.values, {
      name: { S: "desk lamp" },
      stock: { N: "7" },
    });
    // The stored item decodes, and its stamp tells the story.
    const stored = await raw(EAST, key);
    const v = decodeItem(SCHEMA, stored!);
    assert.equal(v.known.get(EAST)?.length, 4);

    await w.delete(EAST, key);
    assert.equal(await w.get(EAST, key), undefined);
    const tomb = await raw(EAST, key);
    assert.ok(tomb?.hw_expires?.N, "the TTL attribute is set");
    assert.equal(tomb?.name, undefined);
    assert.equal(tomb?.stock?.N, "7", "counters keep their contributions");
    await assert.rejects(w.update(EAST, key, { name: { S: "x" } }), { code: "not_found" });

    // An insert revives the soft-deleted item.
    const revived = await w.insert(EAST, { ...key, name: { S: "new lamp" } });
    assert.match(revived.dot, /^us-east-1:6:/);
    assert.equal((await w.get(EAST, key))?.values.name?.S, "new lamp");
  });

  it("counts concurrent increments from two writers exactly, past 2^53", async () => {
    const key = freshKey();
    await writer().insert(EAST, { ...key, views: { N: "0" } });
    const a = writer(clients(), 50);
    const b = writer(clients(), 50);
    const each = 12;
    const run = async (w: Writer, delta: number) => {
      for (let i = 0; i < each; i++) await w.increment(EAST, key, "views", delta);
    };
    await Promise.all([run(a, 1), run(b, 2), run(a, 1), run(b, 2)]);
    const total = 2 * each * (1 + 2);
    assert.equal((await a.get(EAST, key))?.values.views?.N, String(total));

    const big = 2n ** 53n;
    await a.increment(EAST, key, "views", big);
    await b.increment(EAST, key, "views", big);
    assert.equal((await b.get(EAST, key))?.values.views?.N, (2n * big + BigInt(total)).toString());
  });

  it("retries a failed condition: the change runs again on the newer version", async () => {
    const key = freshKey();
    await writer().insert(EAST, { ...key, a: { S: "1" } });
    const other = writer();
    // A store whose first read is overtaken by another writer's update.
    class Overtaken extends DynamoStore {
      reads = 0;
      puts: PutCondition[] = [];
      override async get(region: string, k: Item, table?: string) {
        const item = await super.get(region, k, table);
        if (table === undefined && this.reads++ === 0) {
          await other.update(EAST, key, { b: { S: "2" } });
        }
        return item;
      }
      override async put(region: string, item: Item, condition: PutCondition) {
        this.puts.push(condition);
        return super.put(region, item, condition);
      }
    }
    const store = new Overtaken(TABLE, SCHEMA, clients());
    const w = new Writer({ table: TABLE, schema: SCHEMA, store, rules: RULES });
    let calls = 0;
    const written = await w.update(EAST, key, (d) => {
      calls++;
      d.set("c", { S: "3" });
    });
    assert.equal(calls, 2, "the change ran twice");
    assert.equal(store.puts.length, 2, "two conditional puts");
    assert.deepEqual(written.values, { a: { S: "1" }, b: { S: "2" }, c: { S: "3" } });
    assert.match(written.dot, /^us-east-1:3:/);
  });

  it("gives up with a typed error when the item keeps changing", async () => {
    const key = freshKey();
    await writer().insert(EAST, { ...key, a: { S: "1" } });
    const other = writer();
    class AlwaysOvertaken extends DynamoStore {
      override async get(region: string, k: Item, table?: string) {
        const item = await super.get(region, k, table);
        await other.update(EAST, key, (d) => d.set("a", { S: String(Math.random()) }));
        return item;
      }
    }
    const w = new Writer({
      table: TABLE,
      schema: SCHEMA,
      store: new AlwaysOvertaken(TABLE, SCHEMA, clients()),
      backoff: { maxAttempts: 3, baseMs: 1, capMs: 2 },
    });
    await assert.rejects(w.update(EAST, key, { b: { S: "x" } }), {
      code: "contended",
      attempts: 3,
    });
  });

  it("adopts an item written without a stamp", async () => {
    const key = freshKey();
    await clients()(EAST).send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { ...key, title: { S: "Jaws" }, stock: { N: "5" } },
      }),
    );
    const w = writer();
    const read = await w.get(EAST, key);
    assert.deepEqual(read?.values, { title: { S: "Jaws" }, stock: { N: "5" } });
    const written = await w.update(EAST, key, { rating: { N: "4" } });
    const stored = await raw(EAST, key);
    assert.deepEqual(stored, written.item);
    const stamp = stored?._hw?.M;
    assert.equal(stamp?.dot?.S, written.dot);
    // The legacy attributes are adopted as an edit of `unattributed` (time 0),
    // the new one carries the write's dot.
    const groups = Object.entries(stamp?.d?.M ?? {}).map(([at, names]) => [at, names.SS]);
    assert.equal(groups.length, 2);
    assert.deepEqual(groups.find(([at]) => String(at).startsWith("unattributed:1:"))?.[1], [
      "title",
    ]);
    assert.deepEqual(groups.find(([at]) => String(at).startsWith(`${written.dot}:`))?.[1], [
      "rating",
    ]);
    assert.ok(
      stamp?.c?.M?.stock?.M?.unattributed,
      "the counter keeps its legacy value as a contribution of `unattributed`",
    );
    assert.equal(stored?.stock?.N, "5");
    // The next write is an ordinary stamped one.
    const next = await w.increment(EAST, key, "stock", 1);
    assert.equal(next.values.stock?.N, "6");
  });

  it("reports DynamoDB's refusals as typed errors without item values", async () => {
    const w = writer();
    const key = freshKey();
    await w.insert(EAST, { ...key, stock: { N: "1" } });
    const secret = "secret-value-42";
    await assert.rejects(w.update(EAST, key, { stock: { S: secret } }), (e: Error) => {
      assert.equal((e as { code?: string }).code, "counter_value");
      assert.ok(!e.message.includes(secret), e.message);
      return true;
    });
    await assert.rejects(
      w.insert(EAST, { pk: { S: secret }, big: { S: "x".repeat(410_000) } }),
      (e: Error) => {
        assert.equal((e as { code?: string }).code, "too_large");
        assert.ok(!e.message.includes(secret));
        return true;
      },
    );
    await assert.rejects(
      w.update(EAST, { pk: { N: "1" }, extra: { S: secret } }, {}),
      (e: Error) => {
        assert.equal((e as { code?: string }).code, "bad_key");
        assert.ok(!e.message.includes(secret));
        return true;
      },
    );
  });
});

void describe("router against moto", () => {
  const homes = HomeStrategy.parse("attribute:home_region");

  it("routes a write to the item's home Region", async () => {
    const key = freshKey();
    const w = writer();
    // Replication is not played: the item is in both Regions.
    for (const r of [EAST, WEST])
      await w.insert(r, { ...key, home_region: { S: WEST }, x: { N: "1" } });
    const router = new Router({ writer: w, local: EAST, homes, controlRefreshMs: 0 });
    const routed = await router.update(key, { x: { N: "2" } });
    assert.equal(routed.region, WEST);
    assert.equal(routed.moved, false);
    assert.equal((await raw(WEST, key))?.x?.N, "2");
    assert.equal((await raw(EAST, key))?.x?.N, "1");
  });

  it("falls back to the local Region when the home does not answer", async () => {
    const key = freshKey();
    await writer().insert(EAST, { ...key, home_region: { S: WEST }, x: { N: "1" } });
    const dead = `http://127.0.0.1:${await freePort()}`;
    const warnings: string[] = [];
    const router = new Router({
      writer: writer(clients({ [WEST]: dead }, 2)),
      local: EAST,
      homes,
      controlRefreshMs: 0,
      onWarning: (m) => warnings.push(m),
    });
    const routed = await router.increment(key, "views", 5);
    assert.equal(routed.region, EAST);
    assert.equal(routed.moved, false);
    assert.equal((await raw(EAST, key))?.views?.N, "5");
    assert.ok(
      warnings.some((m) => m.includes("unreachable")),
      warnings.join("; "),
    );
  });

  it("re-homes an item whose home is evacuated (the control item)", async () => {
    const key = freshKey();
    const w = writer();
    await w.insert(EAST, { ...key, home_region: { S: WEST }, x: { N: "1" } });
    await clients()(EAST).send(
      new PutItemCommand({
        TableName: `${TABLE}-journal`,
        Item: {
          pk: { S: "homeward:control" },
          sk: { S: "evacuated" },
          regions: { L: [{ S: WEST }] },
        },
      }),
    );
    try {
      const router = new Router({ writer: w, local: EAST, homes, controlRefreshMs: 0 });
      const routed = await router.update(key, { x: { N: "2" } });
      assert.equal(routed.region, EAST);
      assert.equal(routed.moved, true);
      const stored = await raw(EAST, key);
      assert.equal(stored?.home_region?.S, EAST);
      assert.equal(stored?._hw?.M?.h?.S, EAST);
      assert.equal(stored?._hw?.M?.e?.N, "1");
      // The next write goes to the new home, no move.
      const again = await router.update(key, { x: { N: "3" } });
      assert.equal(again.region, EAST);
      assert.equal(again.moved, false);
    } finally {
      await clients()(EAST).send(
        new PutItemCommand({
          TableName: `${TABLE}-journal`,
          Item: { pk: { S: "homeward:control" }, sk: { S: "evacuated" }, regions: { L: [] } },
        }),
      );
    }
  });

  it("moves a home on request, one epoch on, idempotently", async () => {
    const key = freshKey();
    const w = writer();
    for (const r of [EAST, WEST]) await w.insert(r, { ...key, home_region: { S: WEST } });
    const router = new Router({ writer: w, local: EAST, homes, controlRefreshMs: 0 });
    const moved = await router.moveHome(key, "eu-west-1");
    assert.equal(moved.region, WEST);
    assert.deepEqual(
      { h: moved.version.home?.region, e: moved.version.home?.epoch },
      { h: "eu-west-1", e: 1 },
    );
    const second = await w.get(WEST, key);
    assert.equal(second?.values.home_region?.S, "eu-west-1");
    // Asked again (the local copy still names the old home): nothing is written.
    const again = await router.moveHome(key, "eu-west-1");
    assert.equal(again.moved, false);
    assert.equal(again.dot, moved.dot);
  });
});
