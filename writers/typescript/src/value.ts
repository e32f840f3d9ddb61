/** DynamoDB attribute values: the SDK's types, compared and sized as the Rust core does. */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";

export type { AttributeValue };

/** An item (or a key): attribute name -> value, as the SDK reads and writes it. */
export type Item = Record<string, AttributeValue>;

/** The type name of a value (`S`, `N`, `SS`, ...). */
export function typeName(value: AttributeValue): string {
  if (value.S !== undefined) return "S";
  if (value.N !== undefined) return "N";
  if (value.B !== undefined) return "B";
  if (value.BOOL !== undefined) return "BOOL";
  if (value.NULL !== undefined) return "NULL";
  if (value.M !== undefined) return "M";
  if (value.L !== undefined) return "L";
  if (value.SS !== undefined) return "SS";
  if (value.NS !== undefined) return "NS";
  if (value.BS !== undefined) return "BS";
  return "?";
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Whether two values are equal as the Rust core compares them: same type,
 * same content; sets and lists in order, maps by key.
 */
export function valueEquals(a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const ta = typeName(a);
  if (ta !== typeName(b)) return false;
  switch (ta) {
    case "S":
      return a.S === b.S;
    case "N":
      return a.N === b.N;
    case "BOOL":
      return a.BOOL === b.BOOL;
    case "NULL":
      return a.NULL === b.NULL;
    case "B":
      return bytesEqual(a.B!, b.B!);
    case "SS":
      return arrayEquals(a.SS!, b.SS!, (x, y) => x === y);
    case "NS":
      return arrayEquals(a.NS!, b.NS!, (x, y) => x === y);
    case "BS":
      return arrayEquals(a.BS!, b.BS!, bytesEqual);
    case "L":
      return arrayEquals(a.L!, b.L!, valueEquals);
    case "M": {
      const ma = a.M!;
      const mb = b.M!;
      const ka = Object.keys(ma);
      if (ka.length !== Object.keys(mb).length) return false;
      return ka.every((k) => Object.hasOwn(mb, k) && valueEquals(ma[k], mb[k]));
    }
    default:
      return false;
  }
}

function arrayEquals<T>(a: T[], b: T[], eq: (x: T, y: T) => boolean): boolean {
  return a.length === b.length && a.every((x, i) => eq(x, b[i] as T));
}

const encoder = new TextEncoder();

/** UTF-8 length of a string. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Orders strings by their UTF-8 bytes (Rust's `str` order). */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}

/** The most DynamoDB stores in one item. */
export const MAX_ITEM_BYTES = 400 * 1024;

function numberSize(n: string): number {
  const mantissa = n.replace(/^[-+]+/, "").split(/[eE]/)[0] ?? "";
  const digits = mantissa.replace(/[^0-9]/g, "");
  const significant = Math.max(digits.replace(/^0+/, "").replace(/0+$/, "").length, 1);
  return Math.ceil(significant / 2) + 1;
}

/** Size of one value by DynamoDB's rules. */
export function valueSize(value: AttributeValue): number {
  switch (typeName(value)) {
    case "S":
      return utf8Length(value.S!);
    case "N":
      return numberSize(value.N!);
    case "B":
      return value.B!.length;
    case "BOOL":
    case "NULL":
      return 1;
    case "SS":
      return value.SS!.reduce((s, x) => s + utf8Length(x), 0);
    case "NS":
      return value.NS!.reduce((s, x) => s + numberSize(x), 0);
    case "BS":
      return value.BS!.reduce((s, x) => s + x.length, 0);
    case "L":
      return 3 + value.L!.reduce((s, x) => s + 1 + valueSize(x), 0);
    case "M":
      return (
        3 + Object.entries(value.M!).reduce((s, [k, x]) => s + 1 + utf8Length(k) + valueSize(x), 0)
      );
    default:
      return 0;
  }
}

/** Size of an item: per attribute, its name's UTF-8 length plus its value's size. */
export function itemSize(item: Item): number {
  return Object.entries(item).reduce((s, [k, v]) => s + utf8Length(k) + valueSize(v), 0);
}

/** A value described for an error message: its type and size, never the value. */
export function describe(value: AttributeValue): string {
  return `a ${typeName(value)} value of ${valueSize(value)} bytes`;
}

/** A deep copy of a value (binary included). */
export function cloneValue(value: AttributeValue): AttributeValue {
  return structuredClone(value);
}
