/** A write, pure: the changes an app makes (a Draft) and how they become the next stamped version. */
import { I64_MAX, I64_MIN, parseI64 } from "./dot.js";
import { EditError, HomewardError, StampError } from "./errors.js";
import { isReserved, type Schema } from "./stamp.js";
import {
  cloneValue,
  compareUtf8,
  describe,
  valueEquals,
  type AttributeValue,
  type Item,
} from "./value.js";
import {
  checkArithmetic,
  cloneVersion,
  counterTotal,
  exactCounterTotal,
  headerTimedDot,
  insertTick,
  trim,
  versionNextCounter,
  type Contribution,
  type Counter,
  type Home,
  type Version,
  type WriterKind,
} from "./version.js";

type Change =
  { kind: "set"; value: AttributeValue } | { kind: "remove" } | { kind: "add"; delta: bigint };

function saturatingAdd(a: bigint, b: bigint): bigint {
  const s = a + b;
  return s > I64_MAX ? I64_MAX : s < I64_MIN ? I64_MIN : s;
}

function toDelta(delta: bigint | number): bigint {
  if (typeof delta === "number" && !Number.isSafeInteger(delta)) {
    throw new EditError(
      "counter_value",
      "an increment must be a whole number (a safe integer, or a bigint)",
    );
  }
  const d = BigInt(delta);
  if (d < I64_MIN || d > I64_MAX) {
    throw new EditError("counter_value", "an increment must fit a signed 64-bit integer");
  }
  return d;
}

/** The app's view of an item during an update: the current values, and its changes to them. */
export class Draft {
  /** @internal */
  current: Map<string, AttributeValue>;
  /** @internal */
  readonly changes = new Map<string, Change>();

  constructor(current: Map<string, AttributeValue> | Item = new Map()) {
    this.current = current instanceof Map ? current : new Map(Object.entries(current));
  }

  /** The current value of `attribute`, with this draft's changes applied. */
  get(attribute: string): AttributeValue | undefined {
    const change = this.changes.get(attribute);
    if (change === undefined) return this.current.get(attribute);
    switch (change.kind) {
      case "set":
        return change.value;
      case "remove":
        return undefined;
      case "add": {
        const n = this.current.get(attribute)?.N;
        const now = n === undefined ? 0n : (parseI64(n) ?? 0n);
        return { N: (now + change.delta).toString() };
      }
    }
  }

  set(attribute: string, value: AttributeValue): this {
    this.changes.set(attribute, { kind: "set", value });
    return this;
  }

  remove(attribute: string): this {
    this.changes.set(attribute, { kind: "remove" });
    return this;
  }

  /** Adds `delta` to a counter attribute (negative to decrement). */
  increment(attribute: string, delta: bigint | number): this {
    const d = toDelta(delta);
    const change = this.changes.get(attribute);
    const set =
      change?.kind === "set" && change.value.N !== undefined ? parseI64(change.value.N) : undefined;
    if (set !== undefined) {
      // A value set in this draft (or adopted from a legacy item) and then
      // incremented: the increment adds to it.
      this.changes.set(attribute, { kind: "set", value: { N: (set + d).toString() } });
      return this;
    }
    const total = change?.kind === "add" ? saturatingAdd(change.delta, d) : d;
    this.changes.set(attribute, { kind: "add", delta: total });
    return this;
  }

  /** Names of every attribute the draft currently holds, sorted. */
  names(): string[] {
    const all = new Set([...this.current.keys(), ...this.changes.keys()]);
    return [...all].sort(compareUtf8).filter((n) => this.get(n) !== undefined);
  }

  /** Every value the draft currently holds. */
  values(): Item {
    const out: Item = {};
    for (const n of this.names()) out[n] = this.get(n) as AttributeValue;
    return out;
  }

  isEmpty(): boolean {
    return this.changes.size === 0;
  }
}

/** Which attributes are counters (the `counter` rule); the writer needs nothing else of the merge rules. */
export interface Rules {
  isCounter(attribute: string): boolean;
}

const KNOWN_RULES = ["lww", "home", "max", "min", "union", "counter"];

/**
 * The merge rules, as the resolver's `MERGE_RULES` JSON
 * (`{"default": "lww", "attributes": {"stock": "counter"}}`): the writer
 * uses them to know the counters. Custom rule names are accepted as is.
 */
export function parseRules(
  rules: string | { default?: string; attributes?: Record<string, string> } = {},
): Rules {
  const spec = typeof rules === "string" ? (JSON.parse(rules) as typeof rules) : rules;
  if (typeof spec !== "object" || spec === null) {
    throw new HomewardError("config", "merge rules must be a JSON object");
  }
  const ruleName = (text: string) => text.split(":")[0] ?? "";
  if (spec.default !== undefined && KNOWN_RULES.includes(ruleName(spec.default))) {
    if (["max", "min", "union", "counter"].includes(ruleName(spec.default))) {
      throw new HomewardError(
        "config",
        `rule \`${spec.default}\` cannot be the default: it only fits some attribute types`,
      );
    }
  }
  const counters = new Set(
    Object.entries(spec.attributes ?? {})
      .filter(([, rule]) => ruleName(rule) === "counter")
      .map(([name]) => name),
  );
  return { isCounter: (attribute) => counters.has(attribute) };
}

/** Who writes, where and when: what the next dot is made of. */
export interface WriteContext {
  region: string;
  timeMs: bigint;
  nonce: number;
  by: WriterKind;
}

/** The default dot window (`DOT_WINDOW`). */
export const DEFAULT_WINDOW = 32;

/** A stamp number at its cap is an `overflow` edit error; other stamp errors stay. */
function stampToEdit(e: unknown): unknown {
  return e instanceof StampError && e.kind === "overflow"
    ? new EditError("overflow", e.message, e.field, e)
    : e;
}

/**
 * Applies `draft` to `base`, producing the next version written in
 * `ctx.region`. Attributes whose value does not change keep their dot.
 * Throws an EditError for a change the rules forbid.
 */
export function apply(
  base: Version,
  draft: Draft,
  ctx: WriteContext,
  rules: Rules,
  schema: Schema,
  home?: Home,
  window: number = DEFAULT_WINDOW,
): Version {
  const next = cloneVersion(base);
  let counter: number;
  try {
    counter = versionNextCounter(base, ctx.region);
  } catch (e) {
    throw stampToEdit(e);
  }
  next.header = {
    origin: ctx.region,
    timeMs: ctx.timeMs,
    by: ctx.by,
    tick: { counter, nonce: ctx.nonce },
  };
  const tick = next.header.tick;
  const at = headerTimedDot(next.header);
  const known = next.known.get(ctx.region) ?? [];
  insertTick(known, tick);
  next.known.set(ctx.region, known);
  if (home !== undefined) next.home = home;

  const names = [...draft.changes.keys()].sort(compareUtf8);
  for (const name of names) {
    const change = draft.changes.get(name) as Change;
    if (isReserved(schema, name)) {
      throw new EditError(
        "reserved",
        `attribute \`${name}\` is a key or the stamp attribute and cannot be changed`,
        name,
      );
    }
    if (rules.isCounter(name)) {
      let delta: bigint;
      if (change.kind === "add") {
        delta = change.delta;
      } else if (change.kind === "remove") {
        throw new EditError(
          "counter_removed",
          `counter attribute \`${name}\` cannot be removed (set it to 0, or delete the item)`,
          name,
        );
      } else {
        const target = change.value.N === undefined ? undefined : parseI64(change.value.N);
        if (target === undefined) {
          throw new EditError(
            "counter_value",
            `counter attribute \`${name}\` needs a whole number, got ${describe(change.value)}`,
            name,
          );
        }
        const existing = next.counters.get(name);
        const now = existing === undefined ? 0n : exactCounterTotal(existing);
        delta = target - now;
        if (delta < I64_MIN || delta > I64_MAX) {
          throw new EditError("overflow", `counter \`${name}\` would overflow`, name);
        }
      }
      const c: Counter = next.counters.get(name) ?? new Map<string, Contribution>();
      next.counters.set(name, c);
      const contribution = c.get(ctx.region) ?? { base: 0n, watermark: 0, deltas: [] };
      c.set(ctx.region, contribution);
      const i = contribution.deltas.findIndex(
        (d) => d.tick.counter === tick.counter && d.tick.nonce === tick.nonce,
      );
      if (i >= 0) contribution.deltas[i] = { tick: { ...tick }, delta };
      else {
        contribution.deltas.push({ tick: { ...tick }, delta });
        contribution.deltas.sort(
          (a, b) => a.tick.counter - b.tick.counter || a.tick.nonce - b.tick.nonce,
        );
      }
      try {
        counterTotal(c);
      } catch {
        throw new EditError("overflow", `counter \`${name}\` would overflow`, name);
      }
      next.attrs.delete(name);
      continue;
    }
    let value: AttributeValue | undefined;
    if (change.kind === "set") value = change.value;
    else if (change.kind === "remove") value = undefined;
    else {
      throw new EditError(
        "not_a_counter",
        `attribute \`${name}\` is not configured as a counter; only counter attributes take increments`,
        name,
      );
    }
    const register = next.attrs.get(name);
    const unchanged =
      register === undefined
        ? value === undefined
        : register.kind === "one"
          ? valueEquals(register.sibling.value, value)
          : false;
    if (!unchanged) {
      next.attrs.set(name, {
        kind: "one",
        sibling: {
          at: { dot: { ...at.dot }, timeMs: at.timeMs },
          value: value === undefined ? undefined : cloneValue(value),
        },
      });
    }
  }
  trim(next, window);
  try {
    checkArithmetic(next);
  } catch (e) {
    throw stampToEdit(e);
  }
  return next;
}

/** A version with nothing in it: the base of an insert or an adoption. */
export function emptyVersion(key: Item, ctx: WriteContext): Version {
  return {
    key: { ...key },
    header: { origin: ctx.region, timeMs: 0n, by: ctx.by, tick: { counter: 0, nonce: 0 } },
    known: new Map(),
    attrs: new Map(),
    counters: new Map(),
    home: undefined,
  };
}

/** The first version of a new item: every attribute carries the insert's dot. */
export function firstVersion(
  key: Item,
  values: Item,
  ctx: WriteContext,
  rules: Rules,
  schema: Schema,
  home?: Home,
  window?: number,
): Version {
  const draft = new Draft();
  for (const [name, value] of Object.entries(values)) draft.set(name, value);
  return apply(emptyVersion(key, ctx), draft, ctx, rules, schema, home, window);
}
