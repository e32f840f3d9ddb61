/** The conform adapter (`node dist/conform.js`) against moto: lines in, lines out. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { PutItemCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { Adapter, serve } from "../src/conform.js";
import { decodeItem, encodeDot, headerDot, type Item } from "../src/index.js";
import { client, createTables, startMoto, type Moto } from "./moto.js";

const TABLE = "Conform";
const EAST = "us-east-1";
const SCHEMA = { partitionKey: "pk" };

type Line = { [key: string]: unknown };

const CONFIGURE: Line = {
  id: 0,
  op: "configure",
  protocol: 1,
  table: {
    partition_key: "pk",
    sort_key: null,
    stamp_attribute: "_hw",
    ttl_attribute: "hw_expires",
    retention_seconds: 604800,
    home_attribute: null,
  },
  rules: { attributes: { n: "counter", tags: "union" } },
  dot_window: 32,
  home_strategy: "attribute:home_region",
  clock_skew_ms: { [EAST]: 1500 },
};

let moto: Moto;
const made: DynamoDBClient[] = [];

before(async () => {
  moto = await startMoto();
  await createTables(moto.endpoint, EAST, TABLE);
});

after(async () => {
  for (const c of made) c.destroy();
  await moto?.stop();
});

const op = (id: number, name: string, fields: Line): Line => ({
  id,
  op: name,
  region: EAST,
  endpoint: moto.endpoint,
  table: TABLE,
  ...fields,
});

/** Feeds `lines` to the adapter (in process) and returns its answers. */
async function run(lines: (Line | string)[]): Promise<Line[]> {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = "";
  output.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const adapter = new Adapter((region, endpoint) => {
    const c = client(endpoint, region);
    made.push(c);
    return c;
  });
  const done = serve(input, output, adapter);
  input.end(lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l)) + "\n").join(""));
  await done;
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}

const ok = (a: Line | undefined) => (a?.ok ?? {}) as { version: Item; dot: string };

void describe("conform adapter", () => {
  it("answers each operation with the version written", async () => {
    const key = { pk: { S: "k0" } };
    const started = Date.now();
    const answers = await run([
      CONFIGURE,
      op(1, "insert", { item: { ...key, a: { S: "init" }, n: { N: "0" } } }),
      op(2, "update", { key, set: { b: { S: "x" } }, remove: ["a"] }),
      op(3, "update", { key, add: { tags: { SS: ["t1", "t2"] } } }),
      op(4, "update", { key, add: { tags: { SS: ["t2", "t3"] } } }),
      op(5, "increment", { key, attribute: "n", by: -3 }),
      op(6, "get", { key }),
      op(7, "delete", { key }),
      op(8, "get", { key }),
    ]);
    const ended = Date.now();
    assert.deepEqual(
      answers.map((a) => a.id),
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(answers[0], { id: 0, ok: { writer: "homeward-typescript 0.1.0" } });
    for (let i = 1; i <= 5; i++) {
      const { version, dot } = ok(answers[i]);
      const v = decodeItem(SCHEMA, version);
      assert.equal(encodeDot(headerDot(v.header)), dot);
      assert.match(dot, new RegExp(`^${EAST}:${i}:`));
    }
    const first = decodeItem(SCHEMA, ok(answers[1]).version);
    const t = Number(first.header.timeMs);
    assert.ok(started + 1500 <= t && t <= ended + 1500, "the Region's clock skew is in the stamp");
    assert.deepEqual(ok(answers[2]).version.b, { S: "x" });
    assert.equal(ok(answers[2]).version.a, undefined);
    assert.deepEqual(ok(answers[4]).version.tags, { SS: ["t1", "t2", "t3"] });
    assert.deepEqual(ok(answers[5]).version.n, { N: "-3" });
    assert.equal(ok(answers[6]).dot, ok(answers[5]).dot);
    assert.ok(ok(answers[7]).version.hw_expires?.N, "a soft delete sets the TTL attribute");
    assert.deepEqual(answers[8], { id: 8, ok: { version: null, dot: null } });
  });

  it("types its errors and goes on after them", async () => {
    const key = { pk: { S: "k1" } };
    const answers = await run([
      op(1, "get", { key }),
      CONFIGURE,
      op(2, "update", { key, set: { a: { S: "x" } } }),
      op(3, "insert", { item: { ...key, a: { S: "x" } } }),
      op(4, "insert", { item: { ...key, a: { S: "y" } } }),
      op(5, "increment", { key, attribute: "a", by: 1 }),
      op(6, "update", { key, set: { n: { S: "many" } } }),
      "{not json",
      op(7, "rename", { key }),
      { ...CONFIGURE, id: 8, protocol: 2 },
      op(9, "get", { key }),
    ]);
    assert.deepEqual(
      answers.map((a) => [a.id, (a.error as { kind?: string } | undefined)?.kind ?? null]),
      [
        [1, "protocol"],
        [0, null],
        [2, "not_found"],
        [3, null],
        [4, "already_exists"],
        [5, "not_a_counter"],
        [6, "counter_value"],
        [null, "protocol"],
        [7, "protocol"],
        [8, "config"],
        [9, null],
      ],
    );
    assert.equal((answers[5]?.error as { attribute?: string }).attribute, "a");
    assert.equal((answers[6]?.error as { attribute?: string }).attribute, "n");
  });

  it("answers the get of an unstamped item with its adopted version", async () => {
    const key = { pk: { S: "legacy" } };
    const c = client(moto.endpoint, EAST);
    made.push(c);
    await c.send(new PutItemCommand({ TableName: TABLE, Item: { ...key, a: { S: "x" } } }));
    const answers = await run([CONFIGURE, op(1, "get", { key })]);
    const { version, dot } = ok(answers[1]);
    const v = decodeItem(SCHEMA, version);
    assert.equal(encodeDot(headerDot(v.header)), dot);
    assert.deepEqual(version.a, { S: "x" });
  });

  it("runs as `node dist/conform.js`: reads stdin to its end and exits 0", async () => {
    // build-test/test/ -> build-test/src/conform.js (what `npm run build` puts in dist/).
    const here = path.dirname(fileURLToPath(import.meta.url));
    const script = path.resolve(here, "../src/conform.js");
    const child = spawn(process.execPath, [script], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const lines = [CONFIGURE, op(1, "insert", { item: { pk: { S: "k2" }, b: { B: "AAEC" } } })];
    child.stdin.end(lines.map((l) => JSON.stringify(l) + "\n").join(""));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.equal(code, 0);
    const answers = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Line);
    assert.match((answers[0]?.ok as { writer: string }).writer, /^homeward-typescript/);
    assert.deepEqual(ok(answers[1]).version.b, { B: "AAEC" });
  });
});
