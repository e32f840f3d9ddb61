/** Every conformance vector (conformance/vectors/*.json), against the pure core and the router. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  HomeStrategy,
  HomewardError,
  MemoryStore,
  Router,
  Writer,
  adoptPlain,
  adoptionText,
  conditionExpression,
  decodeItemLenient,
  encodeDot,
  encodeTick,
  fnv1a32,
  UNATTRIBUTED,
  headerDot,
  parseRules,
  planOperation,
  type Home,
  type Item,
  type Operation,
  type PlanConfig,
  type Schema,
} from "../src/index.js";
import { canonicalItem, loadVectors, toItem, toValue, type Json } from "./support.js";

type Case = { [key: string]: Json };

interface Table {
  partition_key: string;
  sort_key: string | null;
  stamp_attribute: string;
  ttl_attribute: string;
  retention_seconds: number;
  home_attribute: string | null;
}

function schemaOf(t: Table): Schema {
  return {
    partitionKey: t.partition_key,
    sortKey: t.sort_key ?? undefined,
    stampAttribute: t.stamp_attribute,
  };
}

function operationOf(op: { [key: string]: Json }): Operation {
  switch (op.kind) {
    case "insert":
      return { kind: "insert", item: toItem(op.item ?? {}) };
    case "delete":
      return { kind: "delete" };
    case "update":
      return {
        kind: "update",
        set: toItem(op.set ?? {}),
        remove: (op.remove ?? []) as string[],
        increment: (op.increment ?? {}) as Record<string, number>,
      };
    default:
      throw new Error(`unknown operation ${JSON.stringify(op.kind)}`);
  }
}

/** The vectors' error kind of an error this package throws. */
function kindOf(e: unknown): string {
  if (e instanceof HomewardError) return e.code;
  throw e;
}

function attributeOf(e: unknown): string | undefined {
  const a = (e as { attribute?: unknown; field?: unknown }).attribute;
  return typeof a === "string" ? a : undefined;
}

function runWriteCase(c: Case): void {
  const setup = c.setup as unknown as { table: Table; rules: Json; dot_window: number };
  const t = setup.table;
  const schema = schemaOf(t);
  const config: PlanConfig = {
    schema,
    rules: parseRules(setup.rules as { attributes?: Record<string, string> }),
    window: setup.dot_window,
    homeAttribute: t.home_attribute ?? undefined,
    ttlAttribute: t.ttl_attribute,
    retentionSeconds: t.retention_seconds,
  };
  const ctxJson = c.context as { region: string; time_ms: number; nonce: number; nonce36: string };
  assert.equal(ctxJson.nonce.toString(36), ctxJson.nonce36, "nonce36 is the nonce in base 36");
  const ctx = {
    region: ctxJson.region,
    timeMs: BigInt(ctxJson.time_ms),
    nonce: ctxJson.nonce,
    by: "app" as const,
  };
  const read = c.read === null || c.read === undefined ? undefined : toItem(c.read);
  const home = c.home === null ? undefined : (c.home as unknown as Home);
  const op = operationOf(c.operation as { [key: string]: Json });
  const expect = c.expect as {
    item?: Json;
    condition?: { kind: string; dot?: string };
    error?: { kind: string; attribute: string | null };
  };
  type Part = { dot: string; text: string } | null;
  const adoption = c.adoption as
    { dot: string; attributes: string[]; register: Part; slot: Part } | undefined;
  if (adoption !== undefined && read !== undefined) {
    // The adoption the vector spells out: its attributes, nonce texts and dots.
    const adopted = adoptPlain(schema, config.rules, read);
    assert.deepEqual(adopted.attributes, adoption.attributes);
    assert.ok(adopted.dot !== undefined);
    assert.equal(encodeDot(adopted.dot.dot), adoption.dot);
    const stamped = read[t.stamp_attribute] !== undefined;
    const decoded = stamped ? decodeItemLenient(schema, read).version : undefined;
    const base = decoded === undefined ? "" : encodeDot(headerDot(decoded.header));
    const isCounter = (n: string) => decoded?.counters.has(n) === true || config.rules.isCounter(n);
    const registers = new Map(
      adopted.attributes.filter((n) => !isCounter(n)).map((n) => [n, read[n]!]),
    );
    const known = (adopted.version.known.get(UNATTRIBUTED) ?? []).map(
      (tick) => `${UNATTRIBUTED}:${encodeTick(tick)}`,
    );
    for (const [part, edits] of [
      [adoption.register, registers],
      [adoption.slot, new Map()],
    ] as const) {
      if (part === null) continue;
      const text = adoptionText(base, edits);
      assert.equal(text, part.text);
      assert.ok(part.dot.endsWith(`:${fnv1a32(new TextEncoder().encode(text)).toString(36)}`));
      assert.ok(known.includes(part.dot), `${part.dot} in k.unattributed`);
    }
  }
  if (expect.error !== undefined) {
    let thrown: unknown;
    try {
      planOperation(read, op, ctx, config, home);
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown !== undefined, `expected error ${expect.error.kind}, but the write was made`);
    assert.equal(kindOf(thrown), expect.error.kind, thrown instanceof Error ? thrown.message : "");
    if (expect.error.attribute !== null) assert.equal(attributeOf(thrown), expect.error.attribute);
    return;
  }
  const plan = planOperation(read, op, ctx, config, home);
  assert.deepEqual(canonicalItem(plan.item), canonicalItem(toItem(expect.item as Json)));
  const cond = expect.condition as { kind: string; dot?: string };
  const kinds: Record<string, string> = {
    not_exists: "not-exists",
    dot_is: "dot-is",
    unstamped: "unstamped",
  };
  assert.equal(plan.condition.kind, kinds[cond.kind]);
  if (plan.condition.kind === "dot-is") assert.equal(plan.condition.dot, cond.dot);
  // The expression parts, as the README's table gives them.
  const expr = conditionExpression(plan.condition, schema);
  const hw = t.stamp_attribute;
  const pk = t.partition_key;
  const expected = {
    not_exists: {
      ConditionExpression: "attribute_not_exists(#pk)",
      ExpressionAttributeNames: { "#pk": pk },
    },
    unstamped: {
      ConditionExpression: "attribute_exists(#pk) AND attribute_not_exists(#hw)",
      ExpressionAttributeNames: { "#pk": pk, "#hw": hw },
    },
    dot_is: {
      ConditionExpression: "attribute_exists(#pk) AND #hw.#dot = :dot",
      ExpressionAttributeNames: { "#pk": pk, "#hw": hw, "#dot": "dot" },
      ExpressionAttributeValues: { ":dot": { S: cond.dot } },
    },
  }[cond.kind];
  assert.deepEqual(expr, expected);
}

/** Every Region name a routing case mentions. */
function regionsOf(c: Case): string[] {
  return [...new Set(JSON.stringify(c).match(/[a-z]{2}-[a-z]+-\d+/g) ?? [])];
}

async function runRoutingCase(c: Case): Promise<void> {
  const t = c.table as unknown as Table;
  const schema = schemaOf(t);
  const store = new MemoryStore(c.table_name as string, schema);
  if (c.stored !== null && c.stored !== undefined) {
    const stored = toItem(c.stored);
    for (const region of regionsOf(c)) store.seed(region, stored);
  }
  for (const r of c.unreachable as string[]) store.unreachable.add(r);
  const writer = new Writer({
    table: c.table_name as string,
    schema,
    store,
    backoff: { maxAttempts: 2, baseMs: 1, capMs: 1 },
    tombstones: { ttlAttribute: t.ttl_attribute, retentionSeconds: t.retention_seconds },
  });
  const router = new Router({
    writer,
    local: c.local as string,
    mode: c.mode as "route" | "local",
    homes: HomeStrategy.parse(c.strategy as string, t.stamp_attribute, c.table_name as string),
    evacuated: c.evacuated as string[],
  });
  const op = c.operation as { kind: string; item?: Json; set?: Json; to?: string };
  const expect = c.expect as {
    error?: { kind: string };
    region?: string;
    moved?: boolean;
    home?: { region: string; epoch: number } | null;
    home_attribute?: Json;
  };
  const key: Item = {};
  const source = toItem(op.kind === "insert" ? (op.item as Json) : (c.stored as Json));
  for (const k of [schema.partitionKey, ...(schema.sortKey ? [schema.sortKey] : [])]) {
    key[k] = source[k]!;
  }
  const run = () => {
    switch (op.kind) {
      case "insert":
        return router.insert(toItem(op.item as Json));
      case "update":
        return router.update(key, toItem(op.set as Json));
      case "move_home":
        return router.moveHome(key, op.to as string);
      default:
        throw new Error(`unknown operation ${op.kind}`);
    }
  };
  if (expect.error !== undefined) {
    await assert.rejects(run(), (e: unknown) => kindOf(e) === expect.error!.kind);
    return;
  }
  const routed = await run();
  assert.equal(routed.region, expect.region, "region");
  assert.equal(routed.moved, expect.moved, "moved");
  const h = routed.version.home;
  assert.deepEqual(
    h === undefined ? null : { region: h.region, epoch: h.epoch },
    expect.home ?? null,
    "home",
  );
  const attr = t.home_attribute;
  assert.deepEqual(
    attr === null || routed.item[attr] === undefined ? null : routed.item[attr],
    expect.home_attribute === null ? null : toValue(expect.home_attribute as Json),
    "home attribute",
  );
  // It is stored where the router says.
  assert.deepEqual(store.peek(routed.region, key), routed.item);
}

const files = loadVectors();

void describe("conformance vectors", () => {
  it("has every file in a known format", () => {
    assert.ok(files.length >= 8, `found ${files.length} vector files`);
    for (const f of files) assert.equal(f.format, 1, f.file);
  });
  for (const f of files) {
    void describe(f.file, () => {
      for (const c of f.cases) {
        it(c.name as string, async () => {
          if (f.file === "routing.json") await runRoutingCase(c);
          else runWriteCase(c);
        });
      }
    });
  }
});
