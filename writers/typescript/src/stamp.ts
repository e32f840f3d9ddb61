/** The stamp's wire format: how a Version is read from and written to an item. */
import {
  checkCounter,
  compareTimedDot,
  decodeDot,
  decodeTick,
  decodeTimedDot,
  encodeDot,
  encodeTick,
  encodeTimedDot,
  parseI64,
  parseRegion,
  parseU64,
  type Tick,
  type TimedDot,
} from "./dot.js";
import { StampError } from "./errors.js";
import { describe, compareUtf8, valueEquals, type AttributeValue, type Item } from "./value.js";
import {
  checkArithmetic,
  counterTotal,
  headerDot,
  insertTick,
  nextEpoch,
  versionValues,
  type Contribution,
  type Counter,
  type Header,
  type Home,
  type PendingMove,
  type Register,
  type Sibling,
  type Version,
} from "./version.js";

export const DEFAULT_STAMP_ATTRIBUTE = "_hw";
export const MAX_REGIONS = 64;
export const MAX_WINDOW = 1024;
export const MAX_WINDOW_TICKS = 2 * MAX_WINDOW;
export const MAX_SIBLINGS = 64;
export const MAX_PENDING_WRITES = 16;

/** What the codec needs to know about the table. */
export interface Schema {
  partitionKey: string;
  sortKey?: string | undefined;
  /** Default `_hw`. */
  stampAttribute?: string | undefined;
}

export function stampAttributeOf(schema: Schema): string {
  return schema.stampAttribute ?? DEFAULT_STAMP_ATTRIBUTE;
}

export function keyAttributes(schema: Schema): string[] {
  return schema.sortKey === undefined
    ? [schema.partitionKey]
    : [schema.partitionKey, schema.sortKey];
}

/** The key attributes and the stamp attribute cannot be changed by an app. */
export function isReserved(schema: Schema, attribute: string): boolean {
  return attribute === stampAttributeOf(schema) || keyAttributes(schema).includes(attribute);
}

/** Just the key attributes of `item`. */
export function keyOf(schema: Schema, item: Item): Item {
  const key: Item = {};
  for (const k of keyAttributes(schema)) {
    const v = item[k];
    if (v === undefined) {
      throw new StampError("missing-key", `the item lacks key attribute \`${k}\``, k);
    }
    key[k] = v;
  }
  return key;
}

function str(m: Record<string, AttributeValue>, field: string): string {
  const v = m[field];
  if (v === undefined) throw StampError.field(field, "missing");
  if (v.S === undefined) throw StampError.field(field, "not a string");
  return v.S;
}

function num(m: Record<string, AttributeValue>, field: string): bigint {
  const v = m[field];
  if (v === undefined) throw StampError.field(field, "missing");
  if (v.N === undefined) throw StampError.field(field, "not a number");
  const n = parseU64(v.N);
  if (n === undefined) throw StampError.field(field, "not a whole number");
  return n;
}

function optionalMap(
  m: Record<string, AttributeValue>,
  field: string,
): Record<string, AttributeValue> | undefined {
  const v = m[field];
  if (v === undefined) return undefined;
  if (v.M === undefined) throw StampError.field(field, "not a map");
  return v.M;
}

function inField<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof StampError ? e.inField(field) : e;
  }
}

function words(text: string): string[] {
  return text.split(/[ \t\n\f\r]+/).filter((w) => w !== "");
}

/** The header of a stamp map. */
export function decodeHeader(stamp: Record<string, AttributeValue>): Header {
  const origin = parseRegion(str(stamp, "o"));
  const timeMs = num(stamp, "t");
  const byText = str(stamp, "by");
  if (byText !== "app" && byText !== "resolver") {
    throw StampError.field("by", `\`${byText}\` is neither app nor resolver`);
  }
  const dot = inField("dot", () => decodeDot(str(stamp, "dot")));
  if (dot.region !== origin) throw StampError.field("dot", "its Region differs from `o`");
  return { origin, timeMs, by: byText, tick: dot.tick };
}

/** The home the stamp records, if any (`h`, `e`, `m`). */
export function decodeHome(stamp: Record<string, AttributeValue>): Home | undefined {
  const h = stamp.h;
  const e = stamp.e;
  if (h === undefined && e === undefined) return undefined;
  if (h === undefined || e === undefined) throw StampError.field("h", "`h` and `e` come together");
  const region = parseRegion(str(stamp, "h"));
  const epochBig = num(stamp, "e");
  if (epochBig >= BigInt(Number.MAX_SAFE_INTEGER)) nextEpoch(Number.MAX_SAFE_INTEGER);
  const epoch = Number(epochBig);
  nextEpoch(epoch);
  let pending: PendingMove | undefined;
  const m = stamp.m;
  if (m !== undefined) {
    if (m.M === undefined) throw StampError.field("m", "not a map");
    const regions = Object.entries(m.M);
    if (regions.length > MAX_REGIONS) throw StampError.cap("MAX_REGIONS", "m", MAX_REGIONS);
    pending = new Map();
    for (const [r, list] of regions) {
      if (list.S === undefined) throw StampError.field("m", "a Region's writes are not a string");
      const kept: [number, bigint][] = [];
      words(list.S).forEach((pair, i) => {
        if (i >= MAX_PENDING_WRITES) {
          throw StampError.cap("MAX_PENDING_WRITES", "m", MAX_PENDING_WRITES);
        }
        const j = pair.indexOf(":");
        const c = j < 0 ? undefined : parseU64(pair.slice(0, j));
        const t = j < 0 ? undefined : parseU64(pair.slice(j + 1));
        if (c === undefined || t === undefined) {
          throw StampError.field("m", "writes are `counter:time_ms` pairs");
        }
        const counter = inField("m", () => checkCounter(c));
        if (!kept.some(([kc, kt]) => kc === counter && kt === t)) kept.push([counter, t]);
      });
      kept.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
      pending.set(parseRegion(r), kept);
    }
  }
  return { epoch, region, pending };
}

function decodeCounter(attribute: string, value: AttributeValue): Counter {
  const field = `c.${attribute}`;
  if (value.M === undefined) throw StampError.field(field, "not a map");
  const perRegion = Object.entries(value.M);
  if (perRegion.length > MAX_REGIONS) throw StampError.cap("MAX_REGIONS", field, MAX_REGIONS);
  const counter: Counter = new Map();
  for (const [region, text] of perRegion) {
    if (text.S === undefined) throw StampError.field(field, `\`${region}\` is not a string`);
    const bad = () =>
      StampError.field(field, "a Region's entry is not `base watermark counter:nonce:delta ...`");
    const parts = words(text.S);
    const base = parts[0] === undefined ? undefined : parseI64(parts[0]);
    const wm = parts[1] === undefined ? undefined : parseU64(parts[1]);
    if (base === undefined || wm === undefined) throw bad();
    const watermark = inField(field, () => checkCounter(wm));
    const deltas: { tick: Tick; delta: bigint }[] = [];
    parts.slice(2).forEach((part, i) => {
      if (i >= MAX_WINDOW_TICKS) throw StampError.cap("MAX_WINDOW_TICKS", field, MAX_WINDOW_TICKS);
      const j = part.lastIndexOf(":");
      if (j < 0) throw bad();
      let tick: Tick;
      try {
        tick = decodeTick(part.slice(0, j));
      } catch (e) {
        if (e instanceof StampError && e.kind === "overflow") throw e.inField(field);
        throw bad();
      }
      const delta = parseI64(part.slice(j + 1));
      if (delta === undefined) throw bad();
      const at = deltas.findIndex(
        (d) => d.tick.counter === tick.counter && d.tick.nonce === tick.nonce,
      );
      if (at >= 0) deltas[at] = { tick, delta };
      else deltas.push({ tick, delta });
    });
    deltas.sort((a, b) => a.tick.counter - b.tick.counter || a.tick.nonce - b.tick.nonce);
    const contribution: Contribution = { base, watermark, deltas };
    counter.set(parseRegion(region), contribution);
  }
  return counter;
}

function decodeSiblings(
  name: string,
  list: AttributeValue,
  shown: AttributeValue | undefined,
): Register {
  const field = `s.${name}`;
  if (list.L === undefined) throw StampError.field(field, "not a list");
  if (list.L.length > MAX_SIBLINGS) throw StampError.cap("MAX_SIBLINGS", field, MAX_SIBLINGS);
  const siblings: Sibling[] = list.L.map((entry) => {
    if (entry.M === undefined) throw StampError.field(field, "an entry is not a map");
    const m = entry.M;
    let atText: string;
    try {
      atText = str(m, "at");
    } catch {
      throw StampError.field(field, "an entry lacks `at`");
    }
    return { at: inField(field, () => decodeTimedDot(atText)), value: m.v };
  });
  if (siblings.length < 2) throw StampError.field(field, "fewer than two concurrent edits");
  siblings.sort((a, b) => compareTimedDot(a.at, b.at));
  return { kind: "many", siblings, shown };
}

/**
 * Decodes a stamped item written by the protocol. Throws a StampError naming
 * what is missing or malformed; an item a plain writer changed is refused
 * here (`adoptPlain` takes it in).
 */
export function decodeItem(schema: Schema, item: Item): Version {
  const { version, plain } = decodeItemLenient(schema, item);
  const name = plain[0];
  if (name === undefined) return version;
  const value = item[name] as AttributeValue;
  if (version.counters.has(name)) {
    throw new StampError(
      "counter-mismatch",
      `counter attribute \`${name}\` holds ${describe(value)}, not the sum of its per-Region contributions`,
      name,
    );
  }
  throw new StampError(
    "undotted-attribute",
    `attribute \`${name}\` has a value but no dot in the stamp (written outside the stamp protocol)`,
    name,
  );
}

/**
 * Decodes a stamped item, listing (sorted) the attributes its stamp does not
 * account for: attributes with a value and no dot, and counters whose value
 * is not the sum of their contributions (a plain writer's edits). The
 * version shows those attributes as they were before. Throws a StampError
 * naming what is missing or malformed.
 */
export function decodeItemLenient(
  schema: Schema,
  item: Item,
): { version: Version; plain: string[] } {
  const stampName = stampAttributeOf(schema);
  const key = keyOf(schema, item);
  const stampValue = item[stampName];
  if (stampValue === undefined) {
    throw new StampError("missing", `the item has no stamp attribute \`${stampName}\``, stampName);
  }
  if (stampValue.M === undefined) throw StampError.field(stampName, "not a map");
  const stamp = stampValue.M;
  const header = decodeHeader(stamp);

  const known = new Map<string, Tick[]>();
  const k = optionalMap(stamp, "k");
  if (k === undefined) throw StampError.field("k", "missing");
  const kEntries = Object.entries(k);
  if (kEntries.length > MAX_REGIONS) throw StampError.cap("MAX_REGIONS", "k", MAX_REGIONS);
  for (const [region, ticks] of kEntries) {
    if (ticks.S === undefined) throw StampError.field("k", `\`${region}\` is not a string`);
    const field = `k.${region}`;
    const window: Tick[] = [];
    words(ticks.S).forEach((t, i) => {
      if (i >= MAX_WINDOW_TICKS) throw StampError.cap("MAX_WINDOW_TICKS", field, MAX_WINDOW_TICKS);
      insertTick(
        window,
        inField(field, () => decodeTick(t)),
      );
    });
    if (new Set(window.map((t) => t.counter)).size > MAX_WINDOW) {
      throw StampError.cap("MAX_WINDOW", field, MAX_WINDOW);
    }
    known.set(parseRegion(region), window);
  }

  const counters = new Map<string, Counter>();
  const c = optionalMap(stamp, "c");
  if (c !== undefined) {
    for (const [attribute, perRegion] of Object.entries(c)) {
      counters.set(attribute, decodeCounter(attribute, perRegion));
    }
  }

  const attrs = new Map<string, Register>();
  const d = optionalMap(stamp, "d");
  if (d !== undefined) {
    for (const [atText, names] of Object.entries(d)) {
      const at = inField("d", () => decodeTimedDot(atText));
      if (names.SS === undefined) {
        throw StampError.field("d", `\`${encodeTimedDot(at)}\` is not a string set`);
      }
      for (const name of names.SS) {
        if (attrs.has(name)) throw StampError.field("d", `attribute \`${name}\` has two dots`);
        attrs.set(name, { kind: "one", sibling: { at, value: item[name] } });
      }
    }
  }
  const s = optionalMap(stamp, "s");
  if (s !== undefined) {
    for (const [name, list] of Object.entries(s)) {
      const register = decodeSiblings(name, list, item[name]);
      if (attrs.has(name)) throw StampError.field("s", `attribute \`${name}\` is also in \`d\``);
      attrs.set(name, register);
    }
  }

  const plain: string[] = [];
  for (const [name, value] of Object.entries(item)) {
    if (isReserved(schema, name)) continue;
    const counter = counters.get(name);
    if (counter !== undefined) {
      const expected = inField(`c.${name}`, () => counterTotal(counter));
      if (!valueEquals(value, { N: expected.toString() })) plain.push(name);
    } else if (!attrs.has(name)) {
      plain.push(name);
    }
  }
  plain.sort(compareUtf8);

  const version: Version = { key, header, known, attrs, counters, home: decodeHome(stamp) };
  checkArithmetic(version);
  return { version, plain };
}

/** The stamp map alone. */
export function encodeStamp(version: Version): AttributeValue {
  const h = version.header;
  const stamp: Record<string, AttributeValue> = {
    o: { S: h.origin },
    t: { N: h.timeMs.toString() },
    by: { S: h.by },
    dot: { S: encodeDot(headerDot(h)) },
  };
  const k: Record<string, AttributeValue> = {};
  for (const [region, window] of version.known) {
    k[region] = { S: [...window].reverse().map(encodeTick).join(" ") };
  }
  stamp.k = { M: k };

  const byDot = new Map<string, { at: TimedDot; names: string[] }>();
  const multi: Record<string, AttributeValue> = {};
  const names = [...version.attrs.keys()].sort(compareUtf8);
  for (const name of names) {
    const register = version.attrs.get(name) as Register;
    if (register.kind === "one") {
      const text = encodeTimedDot(register.sibling.at);
      const group = byDot.get(text) ?? { at: register.sibling.at, names: [] };
      group.names.push(name);
      byDot.set(text, group);
    } else {
      multi[name] = {
        L: register.siblings.map((sib) => {
          const m: Record<string, AttributeValue> = { at: { S: encodeTimedDot(sib.at) } };
          if (sib.value !== undefined) m.v = sib.value;
          return { M: m };
        }),
      };
    }
  }
  if (byDot.size > 0) {
    const d: Record<string, AttributeValue> = {};
    for (const [text, group] of byDot) d[text] = { SS: group.names };
    stamp.d = { M: d };
  }
  if (Object.keys(multi).length > 0) stamp.s = { M: multi };
  if (version.counters.size > 0) {
    const c: Record<string, AttributeValue> = {};
    for (const [name, counter] of version.counters) {
      const perRegion: Record<string, AttributeValue> = {};
      for (const [region, contribution] of counter) {
        let text = `${contribution.base} ${contribution.watermark}`;
        for (const d of contribution.deltas) text += ` ${encodeTick(d.tick)}:${d.delta}`;
        perRegion[region] = { S: text };
      }
      c[name] = { M: perRegion };
    }
    stamp.c = { M: c };
  }
  if (version.home !== undefined) {
    stamp.h = { S: version.home.region };
    stamp.e = { N: version.home.epoch.toString() };
    if (version.home.pending !== undefined) {
      const m: Record<string, AttributeValue> = {};
      for (const [region, kept] of version.home.pending) {
        m[region] = { S: kept.map(([c, t]) => `${c}:${t}`).join(" ") };
      }
      stamp.m = { M: m };
    }
  }
  return { M: stamp };
}

/** Encodes a version as a full item: key, shown values, stamp. */
export function encodeItem(schema: Schema, version: Version): Item {
  const item: Item = { ...version.key };
  for (const [name, value] of versionValues(version)) item[name] = value;
  item[stampAttributeOf(schema)] = encodeStamp(version);
  return item;
}
