/**
 * The TypeScript writer behind `homeward-sim conform`: JSON lines in, JSON
 * lines out. Run as `node dist/conform.js`. The simulator writes one request
 * per line on stdin and waits for its answer on stdout (the protocol is in
 * `conformance/README.md`, "conform: testing a writer of your own"). Each
 * operation is made with `Writer` through a DynamoDB client per (Region,
 * endpoint), with dummy credentials: the endpoint is a local moto. Nothing
 * but answers is written to stdout; diagnostics go to stderr.
 */
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  ContendedError,
  EditError,
  HomeError,
  HomewardError,
  StampError,
  StoreError,
  TooLargeError,
} from "./errors.js";
import type { Draft } from "./edit.js";
import type { AttributeValue, Item } from "./value.js";
import { Writer, type Stamped } from "./writer.js";

export const PROTOCOL = 1;
export const WRITER = "homeward-typescript 0.1.0";

/** JSON as the protocol's lines carry it. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Request = { [key: string]: Json };

/** An answer line: `ok` with a body, or a typed `error`. */
export type Answer =
  | { id: Json; ok: { [key: string]: Json } }
  | {
      id: Json;
      error: {
        kind: string;
        message: string;
        attribute?: string;
        bytes?: number;
        attempts?: number;
      };
    };

/** A request this adapter cannot understand (kind `protocol`), or a bad `configure` (`config`). */
class RequestError extends Error {
  constructor(
    readonly kind: "protocol" | "config",
    message: string,
  ) {
    super(message);
  }
}

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const fromBase64 = (text: Json): Uint8Array => {
  if (typeof text !== "string") throw new RequestError("protocol", "a binary value is base64 text");
  return new Uint8Array(Buffer.from(text, "base64"));
};
const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

/** One attribute value as the protocol writes it (binary as base64) -> as the SDK holds it. */
export function fromJson(json: Json): AttributeValue {
  if (!isObject(json) || Object.keys(json).length !== 1) {
    throw new RequestError("protocol", "an attribute value is an object with one type key");
  }
  const [[kind, inner]] = Object.entries(json) as [[string, Json]];
  switch (kind) {
    case "B":
      return { B: fromBase64(inner) };
    case "BS":
      return { BS: (inner as Json[]).map(fromBase64) };
    case "M":
      return { M: itemFromJson(inner, "M") };
    case "L":
      return { L: (inner as Json[]).map(fromJson) };
    case "S":
    case "N":
    case "BOOL":
    case "NULL":
    case "SS":
    case "NS":
      return { [kind]: inner } as unknown as AttributeValue;
    default:
      throw new RequestError("protocol", `unknown attribute type \`${kind}\``);
  }
}

/** One attribute value as the SDK holds it -> as the protocol writes it. */
export function toJson(value: AttributeValue): Json {
  if (value.B !== undefined) return { B: toBase64(value.B) };
  if (value.BS !== undefined) return { BS: value.BS.map(toBase64) };
  if (value.M !== undefined) return { M: itemToJson(value.M) };
  if (value.L !== undefined) return { L: value.L.map(toJson) };
  if (value.S !== undefined) return { S: value.S };
  if (value.N !== undefined) return { N: value.N };
  if (value.BOOL !== undefined) return { BOOL: value.BOOL };
  if (value.NULL !== undefined) return { NULL: value.NULL };
  if (value.SS !== undefined) return { SS: value.SS };
  if (value.NS !== undefined) return { NS: value.NS };
  throw new Error("an attribute value of no known type");
}

export function itemFromJson(json: Json | undefined, what: string): Item {
  if (!isObject(json))
    throw new RequestError("protocol", `\`${what}\` is an object of attribute values`);
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, fromJson(v)]));
}

export function itemToJson(item: Item): { [key: string]: Json } {
  return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toJson(v)]));
}

function text(request: Request, name: string): string {
  const v = request[name];
  if (typeof v !== "string" || v === "") {
    throw new RequestError("protocol", `\`${name}\` is a non-empty string`);
  }
  return v;
}

interface Configuration {
  schema: { partitionKey: string; sortKey?: string; stampAttribute: string };
  rules: { default?: string; attributes?: Record<string, string> };
  window: number;
  ttlAttribute: string;
  retentionSeconds: number;
  homeAttribute: string | undefined;
  skews: Map<string, number>;
}

/** Makes the DynamoDB client of a Region at an endpoint. */
export type MakeClient = (region: string, endpoint: string) => DynamoDBClient;

const defaultClient: MakeClient = (region, endpoint) =>
  new DynamoDBClient({
    region,
    endpoint,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
    maxAttempts: 3,
  });

/** Answers the conform protocol's requests with `Writer` calls. */
export class Adapter {
  private readonly clients = new Map<string, DynamoDBClient>();
  private writers = new Map<string, Writer>();
  private config: Configuration | undefined;

  constructor(private readonly makeClient: MakeClient = defaultClient) {}

  private client(region: string, endpoint: string): DynamoDBClient {
    const key = `${region} ${endpoint}`;
    let c = this.clients.get(key);
    if (c === undefined) {
      c = this.makeClient(region, endpoint);
      this.clients.set(key, c);
    }
    return c;
  }

  private writer(request: Request): [Writer, string] {
    const config = this.config;
    if (config === undefined) throw new RequestError("protocol", "an operation before `configure`");
    const region = text(request, "region");
    const endpoint = text(request, "endpoint");
    const table = text(request, "table");
    const key = `${table} ${endpoint}`;
    let w = this.writers.get(key);
    if (w === undefined) {
      w = new Writer({
        table,
        schema: config.schema,
        clients: (r) => this.client(r, endpoint),
        rules: config.rules,
        window: config.window,
        tombstones: {
          ttlAttribute: config.ttlAttribute,
          retentionSeconds: config.retentionSeconds,
        },
        ...(config.homeAttribute === undefined ? {} : { homeAttribute: config.homeAttribute }),
        clock: (r) => Date.now() + (config.skews.get(r) ?? 0),
      });
      this.writers.set(key, w);
    }
    return [w, region];
  }

  private configure(request: Request): { [key: string]: Json } {
    if (request.protocol !== PROTOCOL) {
      throw new RequestError(
        "config",
        `protocol ${JSON.stringify(request.protocol)} is not ${PROTOCOL}`,
      );
    }
    const t = request.table;
    if (!isObject(t) || typeof t.partition_key !== "string") {
      throw new RequestError("config", "`table` is an object with a `partition_key`");
    }
    const optional = (name: string): string | undefined => {
      const v = t[name];
      if (v === undefined || v === null) return undefined;
      if (typeof v !== "string") throw new RequestError("config", `\`table.${name}\` is a string`);
      return v;
    };
    const skews = request.clock_skew_ms ?? {};
    if (!isObject(skews) || !Object.values(skews).every((v) => Number.isInteger(v))) {
      throw new RequestError("config", "`clock_skew_ms` maps Regions to whole milliseconds");
    }
    const rules = request.rules ?? {};
    if (!isObject(rules)) throw new RequestError("config", "`rules` is an object");
    const sortKey = optional("sort_key");
    this.config = {
      schema: {
        partitionKey: t.partition_key,
        ...(sortKey === undefined ? {} : { sortKey }),
        stampAttribute: optional("stamp_attribute") ?? "_hw",
      },
      rules: rules,
      window: typeof request.dot_window === "number" ? request.dot_window : 32,
      ttlAttribute: optional("ttl_attribute") ?? "hw_expires",
      retentionSeconds:
        typeof t.retention_seconds === "number" ? t.retention_seconds : 7 * 24 * 3600,
      homeAttribute: optional("home_attribute"),
      skews: new Map(Object.entries(skews as Record<string, number>)),
    };
    this.writers = new Map();
    return { writer: WRITER };
  }

  private async handle(request: Request): Promise<{ [key: string]: Json }> {
    const op = request.op;
    if (op === "configure") return this.configure(request);
    const [w, region] = this.writer(request);
    const written = (s: Stamped) => ({ version: itemToJson(s.item), dot: s.dot });
    switch (op) {
      case "insert":
        return written(await w.insert(region, itemFromJson(request.item, "item")));
      case "get": {
        const got = await w.get(region, itemFromJson(request.key, "key"));
        return got === undefined ? { version: null, dot: null } : written(got);
      }
      case "update":
        return written(
          await w.update(region, itemFromJson(request.key, "key"), updateChange(request)),
        );
      case "increment": {
        const by = request.by;
        if (typeof by !== "number" || !Number.isInteger(by)) {
          throw new RequestError("protocol", "`by` is a whole number");
        }
        return written(
          await w.increment(
            region,
            itemFromJson(request.key, "key"),
            text(request, "attribute"),
            by,
          ),
        );
      }
      case "delete":
        return written(await w.delete(region, itemFromJson(request.key, "key")));
      default:
        throw new RequestError("protocol", `unknown op ${JSON.stringify(op)}`);
    }
  }

  /** The answer to one request line. */
  async answer(line: string): Promise<Answer> {
    let request: Json;
    try {
      request = JSON.parse(line) as Json;
    } catch (e) {
      return failure(null, "protocol", `not a line of JSON (${(e as Error).message})`);
    }
    if (!isObject(request)) return failure(null, "protocol", "a request is a JSON object");
    const id = request.id ?? null;
    try {
      return { id, ok: await this.handle(request) };
    } catch (e) {
      return errorAnswer(id, e);
    }
  }

  /** Closes every client. */
  close(): void {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}

/** The change function of an `update`: `set`, then `remove`, then `add` (set elements added to the value the draft holds, read on every attempt). */
export function updateChange(request: Request): (draft: Draft) => void {
  const sets = itemFromJson(request.set ?? {}, "set");
  const removes = request.remove ?? [];
  if (!Array.isArray(removes) || !removes.every((n) => typeof n === "string")) {
    throw new RequestError("protocol", "`remove` is a list of attribute names");
  }
  const adds = itemFromJson(request.add ?? {}, "add");
  for (const [name, value] of Object.entries(adds)) {
    if (value.SS === undefined && value.NS === undefined && value.BS === undefined) {
      throw new RequestError("protocol", `\`add.${name}\` is a set (SS, NS or BS)`);
    }
  }
  return (draft) => {
    for (const [name, value] of Object.entries(sets)) draft.set(name, value);
    for (const name of removes) draft.remove(name);
    for (const [name, value] of Object.entries(adds)) {
      const current = draft.get(name);
      if (value.BS !== undefined) {
        const merged = [...(current?.BS ?? [])];
        for (const b of value.BS) {
          if (!merged.some((m) => Buffer.from(m).equals(Buffer.from(b)))) merged.push(b);
        }
        draft.set(name, { BS: merged });
      } else {
        const kind = value.SS !== undefined ? "SS" : "NS";
        const merged = [...((kind === "SS" ? current?.SS : current?.NS) ?? [])];
        for (const element of (kind === "SS" ? value.SS : value.NS) ?? []) {
          if (!merged.includes(element)) merged.push(element);
        }
        draft.set(name, kind === "SS" ? { SS: merged } : { NS: merged });
      }
    }
  };
}

function failure(id: Json, kind: string, message: string): Answer {
  return { id, error: { kind, message } };
}

/** A thrown error as a typed answer (the kinds are the conformance kit's). */
export function errorAnswer(id: Json, e: unknown): Answer {
  if (e instanceof RequestError) return failure(id, e.kind, e.message);
  if (e instanceof StoreError) {
    return failure(id, e.retryable ? "unavailable" : "rejected", e.message);
  }
  if (e instanceof HomewardError) {
    const answer = { id, error: { kind: e.code, message: e.message } } as Answer & {
      error: { attribute?: string; bytes?: number; attempts?: number };
    };
    const attribute =
      e instanceof EditError || e instanceof HomeError
        ? e.attribute
        : e instanceof StampError
          ? e.field
          : undefined;
    if (attribute !== undefined) answer.error.attribute = attribute;
    if (e instanceof TooLargeError) answer.error.bytes = e.bytes;
    if (e instanceof ContendedError) answer.error.attempts = e.attempts;
    return answer;
  }
  console.error(e);
  return failure(id, "internal", e instanceof Error ? `${e.name}: ${e.message}` : String(e));
}

/** Answers every line of `input` on `output`, in order, until the input ends. */
export async function serve(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  adapter: Adapter = new Adapter(),
): Promise<void> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === "") continue;
      const answer = await adapter.answer(line);
      output.write(`${JSON.stringify(answer)}\n`);
    }
  } finally {
    adapter.close();
  }
}

const invoked =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invoked) {
  serve(process.stdin, process.stdout).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
