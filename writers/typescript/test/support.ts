/** Test helpers: DynamoDB JSON as the vectors hold it, and structural comparison. */
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import type { AttributeValue, Item } from "../src/index.js";

/** JSON values as the vectors hold them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `conformance/vectors`: `HOMEWARD_VECTORS`, else the repository's copy. */
export function vectorsDir(): string {
  if (process.env.HOMEWARD_VECTORS) return process.env.HOMEWARD_VECTORS;
  // build-test/test/support.js -> the package -> the repository.
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "../../../../conformance/vectors");
}

export interface VectorFile {
  file: string;
  format: number;
  cases: { [key: string]: Json }[];
}

export function loadVectors(): VectorFile[] {
  const dir = vectorsDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => {
      const doc = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as {
        format: number;
        cases: { [key: string]: Json }[];
      };
      return { file, format: doc.format, cases: doc.cases };
    });
}

const b64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

/** A DynamoDB JSON value (binary as base64) as the SDK holds it. */
export function toValue(json: Json): AttributeValue {
  const v = json as Record<string, Json>;
  if ("B" in v) return { B: b64(v.B as string) };
  if ("BS" in v) return { BS: (v.BS as string[]).map(b64) };
  if ("M" in v) return { M: toItem(v.M) };
  if ("L" in v) return { L: (v.L as Json[]).map(toValue) };
  return v as unknown as AttributeValue;
}

export function toItem(json: Json): Item {
  return Object.fromEntries(
    Object.entries(json as Record<string, Json>).map(([k, v]) => [k, toValue(v)]),
  );
}

/**
 * A canonical JSON form for structural comparison: maps by key, SS/NS/BS
 * as sorted sets, L in order, binary as base64, N as its exact text.
 */
export function canonical(value: AttributeValue): Json {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString("base64") };
  if (value.BS !== undefined) {
    return { BS: value.BS.map((b) => Buffer.from(b).toString("base64")).sort() };
  }
  if (value.SS !== undefined) return { SS: [...value.SS].sort() };
  if (value.NS !== undefined) return { NS: [...value.NS].sort() };
  if (value.M !== undefined) return { M: canonicalItem(value.M) };
  if (value.L !== undefined) return { L: value.L.map(canonical) };
  return value as unknown as Json;
}

export function canonicalItem(item: Item): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  for (const k of Object.keys(item).sort()) out[k] = canonical(item[k] as AttributeValue);
  return out;
}
