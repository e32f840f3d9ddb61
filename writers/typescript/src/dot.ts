/** Regions, ticks and dots: the identity of one write, and their text forms. */
import { StampError } from "./errors.js";
import { compareUtf8 } from "./value.js";

/** The highest dot counter (and home epoch) a stamp may hold: 2^53 - 1. */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

const U64_MAX = (1n << 64n) - 1n;

/** Whether `name` is a Region name: lower-case letters, digits and `-`, 1 to 32 of them. */
export function isRegion(name: string): boolean {
  return /^[a-z0-9-]{1,32}$/.test(name);
}

/** Checks a Region name. */
export function parseRegion(name: string): string {
  if (!isRegion(name)) {
    throw new StampError(
      "bad-region",
      `bad Region name \`${name}\` (expected lower-case letters, digits and \`-\`)`,
      name,
    );
  }
  return name;
}

/** A `u64` as Rust parses it, or `undefined`. */
export function parseU64(text: string): bigint | undefined {
  if (!/^\+?[0-9]+$/.test(text)) return undefined;
  const n = BigInt(text);
  return n <= U64_MAX ? n : undefined;
}

/** An `i64` as Rust parses it, or `undefined`. */
export function parseI64(text: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(text)) return undefined;
  const n = BigInt(text);
  return n >= I64_MIN && n <= I64_MAX ? n : undefined;
}

export const I64_MIN = -(1n << 63n);
export const I64_MAX = (1n << 63n) - 1n;

/** A `u32` in base 36 as Rust's `u32::from_str_radix(_, 36)` reads it. */
function parseBase36(text: string): number | undefined {
  if (!/^\+?[0-9a-zA-Z]+$/.test(text)) return undefined;
  let n = 0n;
  for (const ch of text.replace(/^\+/, "").toLowerCase()) {
    n = n * 36n + BigInt(parseInt(ch, 36));
    if (n > 0xffffffffn) return undefined;
  }
  return Number(n);
}

/** A counter read from a stamp: at most MAX_COUNTER (else an overflow). */
export function checkCounter(counter: bigint): number {
  if (counter > BigInt(MAX_COUNTER)) {
    throw StampError.overflow("counter", "a dot counter above 2^53 - 1");
  }
  return Number(counter);
}

/** `counter + 1`, checked: never above MAX_COUNTER. */
export function nextCounter(counter: number): number {
  if (counter >= MAX_COUNTER) {
    throw StampError.overflow("counter", "the next dot counter would pass 2^53 - 1");
  }
  return counter + 1;
}

/** The position of a write on its Region's chain. */
export interface Tick {
  counter: number;
  /** An unsigned 32-bit number. */
  nonce: number;
}

export function compareTick(a: Tick, b: Tick): number {
  return a.counter - b.counter || a.nonce - b.nonce;
}

/** `counter:nonce`, the nonce in base 36. */
export function encodeTick(t: Tick): string {
  return `${t.counter}:${t.nonce.toString(36)}`;
}

function badDot(text: string): StampError {
  return new StampError(
    "bad-dot",
    `bad dot \`${text}\` (expected \`region:counter:nonce[:time_ms]\`)`,
    text,
  );
}

/** Keeps an overflow; any other error becomes `bad`. */
function orBad(e: unknown, bad: () => StampError): unknown {
  return e instanceof StampError && e.kind === "overflow" ? e : bad();
}

export function decodeTick(text: string): Tick {
  const i = text.indexOf(":");
  if (i < 0) throw badDot(text);
  const c = parseU64(text.slice(0, i));
  const nonce = parseBase36(text.slice(i + 1));
  if (c === undefined || nonce === undefined) throw badDot(text);
  return { counter: checkCounter(c), nonce };
}

/** One write: the Region that made it and its place on that Region's chain. */
export interface Dot {
  region: string;
  tick: Tick;
}

/** `region:counter:nonce`. */
export function encodeDot(d: Dot): string {
  return `${d.region}:${encodeTick(d.tick)}`;
}

export function decodeDot(text: string): Dot {
  const i = text.indexOf(":");
  if (i < 0) throw badDot(text);
  const region = text.slice(0, i);
  if (!isRegion(region)) throw badDot(text);
  try {
    return { region, tick: decodeTick(text.slice(i + 1)) };
  } catch (e) {
    throw orBad(e, () => badDot(text));
  }
}

export function compareDot(a: Dot, b: Dot): number {
  return compareUtf8(a.region, b.region) || compareTick(a.tick, b.tick);
}

/** A dot with the time its write was made (epoch ms). */
export interface TimedDot {
  dot: Dot;
  timeMs: bigint;
}

/** `region:counter:nonce:time_ms`. */
export function encodeTimedDot(t: TimedDot): string {
  return `${encodeDot(t.dot)}:${t.timeMs}`;
}

export function decodeTimedDot(text: string): TimedDot {
  const i = text.lastIndexOf(":");
  if (i < 0) throw badDot(text);
  let dot: Dot;
  try {
    dot = decodeDot(text.slice(0, i));
  } catch (e) {
    throw orBad(e, () => badDot(text));
  }
  const timeMs = parseU64(text.slice(i + 1));
  if (timeMs === undefined) throw badDot(text);
  return { dot, timeMs };
}

/** The order of timed dots: dot, then time (Rust's derived order). */
export function compareTimedDot(a: TimedDot, b: TimedDot): number {
  return compareDot(a.dot, b.dot) || (a.timeMs < b.timeMs ? -1 : a.timeMs > b.timeMs ? 1 : 0);
}

export function timedDotEquals(a: TimedDot, b: TimedDot): boolean {
  return compareTimedDot(a, b) === 0;
}

/** A fresh random nonce: an unsigned 32-bit number. */
export function randomNonce(): number {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return buf[0] as number;
}
