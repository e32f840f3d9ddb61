/**
 * Adoption: edits made outside the stamp protocol (a plain `PutItem` or
 * `UpdateItem`, a console edit, a batch job) taken in as the edit of one
 * more origin, the pseudo-Region `unattributed`, instead of refused. As the
 * Rust core's `homeward::adopt::adopt` (conformance/README.md, "Adoption").
 *
 * What a plain writer changed is read off the item: attributes with a value
 * and no dot, and counters whose value is not the sum of their
 * contributions. Those edits get one adoption dot,
 * `unattributed:<counter>:<nonce>`, derived from the item alone (the
 * counter follows `k.unattributed`, the nonce hashes the base dot and the
 * adopted values, the time is the stamp's `t`): every writer that adopts
 * the same plain edit gives it the same dot. The next write records it.
 */
import { I64_MAX, I64_MIN, encodeDot, parseI64, type Tick, type TimedDot } from "./dot.js";
import type { Rules } from "./edit.js";
import { CounterMismatchError, StampError } from "./errors.js";
import { decodeItemLenient, isReserved, keyOf, stampAttributeOf, type Schema } from "./stamp.js";
import {
  cloneValue,
  compareUtf8,
  describe,
  typeName,
  type AttributeValue,
  type Item,
} from "./value.js";
import {
  checkArithmetic,
  exactCounterTotal,
  headerDot,
  insertTick,
  versionNextCounter,
  type Contribution,
  type Counter,
  type Version,
} from "./version.js";

/** The origin of edits made outside the protocol: never a stamp's `o`. */
export const UNATTRIBUTED = "unattributed";

/** A version of a stamped item with its plain writers' edits taken in. */
export interface Adoption {
  version: Version;
  /** The adoption's dot, when there was something to take in. */
  dot: TimedDot | undefined;
  /** The attributes taken in, sorted. */
  attributes: string[];
}

/** FNV-1a, 32 bits (offset basis 0x811c9dc5, prime 0x01000193). */
export function fnv1a32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

const hex = (bytes: Uint8Array): string =>
  Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");

const sorted = (items: string[]): string => [...items].sort(compareUtf8).join(",");

/**
 * A value as text that is the same for equal values whatever the order of
 * their map keys and set members: the type tag, then the value; strings as
 * JSON strings, binary as lower-case hex, set members sorted by their text,
 * map entries by key (UTF-8 byte order).
 */
export function canonical(value: AttributeValue): string {
  switch (typeName(value)) {
    case "S":
      return "S" + JSON.stringify(value.S);
    case "N":
      return "N" + value.N!;
    case "B":
      return "B" + hex(value.B!);
    case "BOOL":
      return value.BOOL! ? "BOOLtrue" : "BOOLfalse";
    case "NULL":
      return "NULL";
    case "SS":
      return `SS[${sorted(value.SS!.map((x) => JSON.stringify(x)))}]`;
    case "NS":
      return `NS[${sorted(value.NS!)}]`;
    case "BS":
      return `BS[${sorted(value.BS!.map(hex))}]`;
    case "L":
      return `L[${value.L!.map(canonical).join(",")}]`;
    case "M": {
      const m = value.M!;
      const keys = Object.keys(m).sort(compareUtf8);
      return `M{${keys.map((k) => `${JSON.stringify(k)}:${canonical(m[k] as AttributeValue)}`).join(",")}}`;
    }
    default:
      throw StampError.field("?", "a value of no known DynamoDB type");
  }
}

/**
 * The text an adoption nonce hashes: the base dot (empty for an item without
 * a stamp), `\n`, then for each attribute of `edits` (sorted by name) its
 * name, `\n`, its canonical value, `\n`. The plain attributes' dot hashes
 * them; the counters' slot hashes no attribute.
 */
export function adoptionText(baseDot: string, edits: Map<string, AttributeValue>): string {
  let text = baseDot + "\n";
  for (const name of [...edits.keys()].sort(compareUtf8)) {
    text += `${name}\n${canonical(edits.get(name) as AttributeValue)}\n`;
  }
  return text;
}

const encoder = new TextEncoder();
const nonceOf = (text: string): number => fnv1a32(encoder.encode(text));

/**
 * Reads an item, taking in what plain writers changed in it (as the Rust
 * core's `adopt::adopt`). For a stamped item: attributes with a value and no
 * dot, and counters off their contributions; for an item without a stamp:
 * every attribute. Each becomes an edit of `unattributed`, derived from the
 * item alone, with counter `n` = the next of `k.unattributed`: plain
 * attributes get one dot `unattributed:n:<nonce>` at the stamp's `t` (0
 * without a stamp), the nonce hashing the base dot and their values;
 * counters get `value - sum` as `unattributed`'s delta in the stamp's slot
 * `n:<nonce of the base dot alone>`. The next write records them.
 *
 * Throws a StampError for a malformed stamp or a missing key attribute, a
 * `CounterMismatchError` for a counter attribute whose value is not a whole
 * number.
 */
export function adoptPlain(schema: Schema, rules: Rules, item: Item): Adoption {
  const stamped = item[stampAttributeOf(schema)] !== undefined;
  let version: Version;
  let plain: string[];
  let baseDot: string;
  if (stamped) {
    ({ version, plain } = decodeItemLenient(schema, item));
    baseDot = encodeDot(headerDot(version.header));
  } else {
    version = {
      key: keyOf(schema, item),
      header: { origin: UNATTRIBUTED, timeMs: 0n, by: "app", tick: { counter: 0, nonce: 0 } },
      known: new Map(),
      attrs: new Map(),
      counters: new Map(),
      home: undefined,
    };
    plain = Object.keys(item)
      .filter((name) => !isReserved(schema, name))
      .sort(compareUtf8);
    baseDot = "";
  }
  if (plain.length === 0) return { version, dot: undefined, attributes: [] };
  const counter = versionNextCounter(version, UNATTRIBUTED);
  const isCounter = (name: string) => version.counters.has(name) || rules.isCounter(name);
  const registers = new Map(
    plain.filter((n) => !isCounter(n)).map((n) => [n, item[n] as AttributeValue]),
  );
  const counters = plain.filter(isCounter);
  const timeMs = stamped ? version.header.timeMs : 0n;
  const window = version.known.get(UNATTRIBUTED) ?? [];
  version.known.set(UNATTRIBUTED, window);
  let dot: TimedDot | undefined;

  if (registers.size > 0) {
    const tick: Tick = { counter, nonce: nonceOf(adoptionText(baseDot, registers)) };
    dot = { dot: { region: UNATTRIBUTED, tick }, timeMs };
    for (const [name, value] of registers) {
      version.attrs.set(name, {
        kind: "one",
        sibling: {
          at: { dot: { region: UNATTRIBUTED, tick: { ...tick } }, timeMs },
          value: cloneValue(value),
        },
      });
    }
    insertTick(window, { ...tick });
  }

  if (counters.length > 0) {
    const slot: Tick = { counter, nonce: nonceOf(adoptionText(baseDot, new Map())) };
    for (const name of counters) {
      const value = item[name] as AttributeValue;
      const target = value.N === undefined ? undefined : parseI64(value.N);
      if (target === undefined) throw new CounterMismatchError(name, describe(value));
      const existing = version.counters.get(name);
      const delta = target - (existing === undefined ? 0n : exactCounterTotal(existing));
      if (delta < I64_MIN || delta > I64_MAX) {
        throw StampError.overflow(`c.${name}`, "an adopted delta");
      }
      const c: Counter = existing ?? new Map<string, Contribution>();
      version.counters.set(name, c);
      const contribution = c.get(UNATTRIBUTED) ?? { base: 0n, watermark: 0, deltas: [] };
      c.set(UNATTRIBUTED, contribution);
      contribution.deltas = contribution.deltas.filter(
        (d) => d.tick.counter !== slot.counter || d.tick.nonce !== slot.nonce,
      );
      contribution.deltas.push({ tick: { ...slot }, delta });
      contribution.deltas.sort(
        (a, b) => a.tick.counter - b.tick.counter || a.tick.nonce - b.tick.nonce,
      );
      version.attrs.delete(name);
    }
    insertTick(window, { ...slot });
    dot ??= { dot: { region: UNATTRIBUTED, tick: slot }, timeMs };
  }
  if (dot === undefined) throw new Error("unreachable: something was adopted");
  if (!stamped) version.header.tick = { ...dot.dot.tick };
  checkArithmetic(version);
  return { version, dot, attributes: plain };
}
