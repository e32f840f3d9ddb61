/** One version of an item as Homeward sees it: key, header, and the causal state of every attribute. */
import {
  I64_MAX,
  I64_MIN,
  MAX_COUNTER,
  checkCounter,
  compareTick,
  nextCounter,
  type Dot,
  type Tick,
  type TimedDot,
} from "./dot.js";
import { StampError } from "./errors.js";
import { cloneValue, compareUtf8, type AttributeValue, type Item } from "./value.js";

export type WriterKind = "app" | "resolver";

/** The write that made a version. */
export interface Header {
  origin: string;
  timeMs: bigint;
  by: WriterKind;
  tick: Tick;
}

export function headerDot(h: Header): Dot {
  return { region: h.origin, tick: h.tick };
}

export function headerTimedDot(h: Header): TimedDot {
  return { dot: headerDot(h), timeMs: h.timeMs };
}

/** One edit of an attribute (`value` undefined: the edit removed it). */
export interface Sibling {
  at: TimedDot;
  value: AttributeValue | undefined;
}

/** The edits of one plain attribute no later edit superseded. */
export type Register =
  | { kind: "one"; sibling: Sibling }
  | { kind: "many"; siblings: Sibling[]; shown: AttributeValue | undefined };

export function registerValue(r: Register): AttributeValue | undefined {
  return r.kind === "one" ? r.sibling.value : r.shown;
}

/** One Region's share of a counter: a folded base plus the deltas still in the window. */
export interface Contribution {
  base: bigint;
  watermark: number;
  /** Sorted by tick, one per tick. */
  deltas: { tick: Tick; delta: bigint }[];
}

/** Per-Region contributions of one counter attribute. */
export type Counter = Map<string, Contribution>;

export function contributionTotal(c: Contribution): bigint {
  return c.deltas.reduce((s, d) => s + d.delta, c.base);
}

/** The counter's value, exact. */
export function exactCounterTotal(counter: Counter): bigint {
  let sum = 0n;
  for (const c of counter.values()) sum += contributionTotal(c);
  return sum;
}

/** The counter's value as the item stores it (an `i64`), or an overflow. */
export function counterTotal(counter: Counter): bigint {
  const total = exactCounterTotal(counter);
  if (total < I64_MIN || total > I64_MAX) {
    throw StampError.overflow("c", "the counter's contributions overflow i64");
  }
  return total;
}

/** The highest home epoch a stamp may hold: 2^53 - 1. */
export const MAX_EPOCH = MAX_COUNTER;

/** `epoch + 1`, checked. */
export function nextEpoch(epoch: number): number {
  if (epoch >= MAX_EPOCH) {
    throw StampError.overflow("e", "the next home epoch would pass 2^53 - 1");
  }
  return epoch + 1;
}

/** Foreign writes counted towards an `after N` re-home: per Region, sorted `(counter, time)` pairs. */
export type PendingMove = Map<string, [number, bigint][]>;

/** The item's home as the stamp records it. */
export interface Home {
  epoch: number;
  region: string;
  pending?: PendingMove | undefined;
}

/** Orders homes by epoch, then Region (what fences moves). */
export function compareHome(a: Home, b: Home): number {
  return a.epoch - b.epoch || compareUtf8(a.region, b.region);
}

/** A decoded item version. */
export interface Version {
  key: Item;
  header: Header;
  /** Per Region, the window of its dots this version includes (sorted, distinct). */
  known: Map<string, Tick[]>;
  attrs: Map<string, Register>;
  counters: Map<string, Counter>;
  home: Home | undefined;
}

/** Inserts `tick` into a sorted window (no duplicates). */
export function insertTick(window: Tick[], tick: Tick): void {
  let i = 0;
  while (i < window.length && compareTick(window[i] as Tick, tick) < 0) i++;
  if (i < window.length && compareTick(window[i] as Tick, tick) === 0) return;
  window.splice(i, 0, tick);
}

/** The counter the next write of `region` takes on this item's chain. */
export function versionNextCounter(v: Version, region: string): number {
  const window = v.known.get(region);
  const last = window?.[window.length - 1];
  if (last === undefined) return 1;
  try {
    return nextCounter(last.counter);
  } catch (e) {
    throw e instanceof StampError ? e.inField(`k.${region}`) : e;
  }
}

/** Every number a write or move adds to can take it; else an overflow naming the field. */
export function checkArithmetic(v: Version): void {
  for (const region of v.known.keys()) versionNextCounter(v, region);
  try {
    checkCounter(BigInt(v.header.tick.counter));
  } catch (e) {
    throw e instanceof StampError ? e.inField("dot") : e;
  }
  if (v.home !== undefined) nextEpoch(v.home.epoch);
  for (const [name, counter] of v.counters) {
    try {
      counterTotal(counter);
    } catch (e) {
      throw e instanceof StampError ? e.inField(`c.${name}`) : e;
    }
  }
}

/** Every value the item shows, without key and stamp (counters as their exact total). */
export function versionValues(v: Version): Map<string, AttributeValue> {
  const out = new Map<string, AttributeValue>();
  for (const [name, r] of v.attrs) {
    const value = registerValue(r);
    if (value !== undefined) out.set(name, value);
  }
  for (const [name, counter] of v.counters) {
    out.set(name, { N: exactCounterTotal(counter).toString() });
  }
  return out;
}

/** Folds every delta at or below `cut` into the base, all or nothing (never past i64). */
export function fold(c: Contribution, cut: number): void {
  if (cut <= c.watermark) return;
  const folded = c.deltas.filter((d) => d.tick.counter <= cut);
  const keep = c.deltas.filter((d) => d.tick.counter > cut);
  const base = folded.reduce((s, d) => s + d.delta, c.base);
  if (base < I64_MIN || base > I64_MAX) return;
  c.base = base;
  c.deltas = keep;
  c.watermark = Math.max(c.watermark, cut);
}

/**
 * Keeps the `window` highest distinct counters of each Region (forked dots
 * with equal counters all kept) and folds every counter delta below a
 * Region's window into that Region's base.
 */
export function trim(v: Version, window: number): void {
  for (const [region, ticks] of v.known) {
    let distinct = 0;
    let last: number | undefined;
    let cut: number | undefined;
    for (let i = ticks.length - 1; i >= 0; i--) {
      const t = ticks[i] as Tick;
      if (last !== t.counter) {
        distinct++;
        last = t.counter;
      }
      if (distinct > window) {
        cut = t.counter;
        break;
      }
    }
    if (cut !== undefined) {
      const c = cut;
      v.known.set(
        region,
        ticks.filter((t) => t.counter > c),
      );
    }
  }
  for (const counter of v.counters.values()) {
    for (const [region, c] of counter) {
      const lowest = v.known.get(region)?.[0]?.counter ?? 0;
      fold(c, Math.max(lowest - 1, 0));
    }
  }
}

/** A deep copy of a version. */
export function cloneVersion(v: Version): Version {
  const sib = (s: Sibling): Sibling => ({
    at: { dot: { region: s.at.dot.region, tick: { ...s.at.dot.tick } }, timeMs: s.at.timeMs },
    value: s.value === undefined ? undefined : cloneValue(s.value),
  });
  return {
    key: Object.fromEntries(Object.entries(v.key).map(([k, x]) => [k, cloneValue(x)])),
    header: { ...v.header, tick: { ...v.header.tick } },
    known: new Map([...v.known].map(([r, w]) => [r, w.map((t) => ({ ...t }))])),
    attrs: new Map(
      [...v.attrs].map(([n, r]): [string, Register] => [
        n,
        r.kind === "one"
          ? { kind: "one", sibling: sib(r.sibling) }
          : {
              kind: "many",
              siblings: r.siblings.map(sib),
              shown: r.shown === undefined ? undefined : cloneValue(r.shown),
            },
      ]),
    ),
    counters: new Map(
      [...v.counters].map(([n, counter]) => [
        n,
        new Map(
          [...counter].map(([r, c]) => [
            r,
            {
              base: c.base,
              watermark: c.watermark,
              deltas: c.deltas.map((d) => ({ tick: { ...d.tick }, delta: d.delta })),
            },
          ]),
        ),
      ]),
    ),
    home:
      v.home === undefined
        ? undefined
        : {
            epoch: v.home.epoch,
            region: v.home.region,
            pending:
              v.home.pending === undefined
                ? undefined
                : new Map([...v.home.pending].map(([r, l]) => [r, l.map(([c, t]) => [c, t])])),
          },
  };
}
