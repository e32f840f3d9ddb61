/**
 * The stamped writer: read strongly consistent in the Region written to,
 * stamp the change, write conditionally on the version read, and retry with
 * jittered backoff when another write got there first (or DynamoDB throttles).
 */
import { encodeDot, isRegion, randomNonce } from "./dot.js";
import {
  AlreadyExistsError,
  BadKeyError,
  ContendedError,
  EditError,
  HomeError,
  HomewardError,
  NotFoundError,
  StoreError,
  TooLargeError,
} from "./errors.js";
import {
  DEFAULT_WINDOW,
  Draft,
  apply,
  firstVersion,
  parseRules,
  type Rules,
  type WriteContext,
} from "./edit.js";
import { adoptPlain } from "./adopt.js";
import {
  encodeItem,
  isReserved,
  keyAttributes,
  keyOf,
  stampAttributeOf,
  type Schema,
} from "./stamp.js";
import {
  DynamoStore,
  isThrottling,
  type ClientProvider,
  type PutCondition,
  type Store,
} from "./store.js";
import { MAX_ITEM_BYTES, itemSize, typeName, type AttributeValue, type Item } from "./value.js";
import { compareHome, headerDot, versionValues, type Home, type Version } from "./version.js";

/** A change: a function that edits the draft, or the attributes to set (`undefined` removes one). */
export type Change = ((draft: Draft) => void) | Record<string, AttributeValue | undefined>;

function changeFn(change: Change): (draft: Draft) => void {
  if (typeof change === "function") return change;
  return (draft) => {
    for (const [name, value] of Object.entries(change)) {
      if (value === undefined) draft.remove(name);
      else draft.set(name, value);
    }
  };
}

/** What the pure core needs to know besides the item. */
export interface PlanConfig {
  schema: Schema;
  rules: Rules;
  /** Dots kept per Region (`DOT_WINDOW`, default 32). */
  window?: number | undefined;
  /** The attribute that mirrors the item's home (the `attribute:<name>` strategy). */
  homeAttribute?: string | undefined;
  /** The table's TTL attribute for soft deletes (default `hw_expires`). */
  ttlAttribute?: string | undefined;
  /** How long a soft-delete tombstone lives, in seconds (default 7 days). */
  retentionSeconds?: number | undefined;
}

/** One write, as data (the conformance kit's operations). */
export type Operation =
  | { kind: "insert"; item: Item }
  | {
      kind: "update";
      set?: Item;
      remove?: string[];
      increment?: Record<string, number | bigint>;
    }
  | { kind: "delete" };

/**
 * What a writer puts for `operation` on the item as read (`undefined`: no
 * item): the whole item and its condition. Pure: the protocol's steps with
 * the given time and nonce. Throws the error the write would meet.
 */
export function planOperation(
  read: Item | undefined,
  operation: Operation,
  ctx: WriteContext,
  config: PlanConfig,
  home?: Home,
): Plan {
  const ttl = config.ttlAttribute ?? "hw_expires";
  switch (operation.kind) {
    case "insert": {
      const plan = planInsert(operation.item, ctx, config, home);
      if (read === undefined) return plan;
      if (read[ttl] === undefined) throw new AlreadyExistsError();
      return planUpdate(read, revival(operation.item, config), ctx, config, {
        home,
        tombstoneOk: true,
      });
    }
    case "update":
      return planUpdate(
        read,
        (draft) => {
          for (const [name, value] of Object.entries(operation.set ?? {})) draft.set(name, value);
          for (const name of operation.remove ?? []) draft.remove(name);
          for (const [name, delta] of Object.entries(operation.increment ?? {})) {
            draft.increment(name, delta);
          }
        },
        ctx,
        config,
        { home },
      );
    case "delete":
      return planUpdate(
        read,
        softDelete(config.rules, ctx.timeMs, ttl, config.retentionSeconds),
        ctx,
        config,
        { home },
      );
  }
}

/** The change that revives a soft-deleted item with the values of `item`. */
function revival(item: Item, config: PlanConfig): (draft: Draft) => void {
  const ttl = config.ttlAttribute ?? "hw_expires";
  return (draft) => {
    draft.remove(ttl);
    for (const [name, value] of Object.entries(item)) {
      if (!isReserved(config.schema, name)) draft.set(name, value);
    }
  };
}

/** A version ready to be written: the whole item and the condition to put it under. */
export interface Plan {
  version: Version;
  item: Item;
  condition: PutCondition;
}

function assertSize(item: Item): void {
  const bytes = itemSize(item);
  if (bytes > MAX_ITEM_BYTES) throw new TooLargeError(bytes);
}

/** The first version of a new item, to put under `attribute_not_exists`. */
export function planInsert(item: Item, ctx: WriteContext, config: PlanConfig, home?: Home): Plan {
  let key: Item;
  try {
    key = keyOf(config.schema, item);
  } catch (e) {
    throw new BadKeyError(e instanceof Error ? e.message : "missing key attribute");
  }
  checkKey(config.schema, key);
  const stampName = stampAttributeOf(config.schema);
  if (item[stampName] !== undefined) {
    throw new EditError(
      "reserved",
      `attribute \`${stampName}\` is a key or the stamp attribute and cannot be changed`,
      stampName,
    );
  }
  const values = Object.fromEntries(
    Object.entries(item).filter(([name]) => !isReserved(config.schema, name)),
  );
  const version = firstVersion(key, values, ctx, config.rules, config.schema, home, config.window);
  const encoded = encodeItem(config.schema, version);
  assertSize(encoded);
  return { version, item: encoded, condition: { kind: "not-exists" } };
}

/**
 * The next version of the item as read (`read`), with `change` applied:
 * what a read-modify-write writes, and its condition. Pure.
 *
 * `home` records a home in the stamp (a move, or the assignment used); it
 * never lowers the home the item records. `tombstoneOk` is for reviving a
 * soft-deleted item (an insert over its tombstone).
 */
export function planUpdate(
  read: Item | undefined,
  change: Change,
  ctx: WriteContext,
  config: PlanConfig,
  options: { home?: Home | undefined; tombstoneOk?: boolean } = {},
): Plan {
  if (read === undefined) throw new NotFoundError();
  const ttl = config.ttlAttribute ?? "hw_expires";
  const isTombstone = read[ttl] !== undefined;
  const tombstoneOk = options.tombstoneOk ?? false;
  if (isTombstone && !tombstoneOk) throw new NotFoundError();
  if (!isTombstone && tombstoneOk) throw new AlreadyExistsError();
  // What plain writers changed (all of an item without a stamp) is taken
  // in: this write records it.
  const base = adoptPlain(config.schema, config.rules, read).version;
  const draft = new Draft(versionValues(base));
  const condition: PutCondition =
    read[stampAttributeOf(config.schema)] !== undefined
      ? { kind: "dot-is", dot: encodeDot(headerDot(base.header)) }
      : { kind: "unstamped" };
  changeFn(change)(draft);
  // A home never goes back to an older epoch.
  let home = options.home;
  if (home !== undefined && base.home !== undefined && !(compareHome(home, base.home) > 0)) {
    home = undefined;
  }
  const moved = movedHome(config.homeAttribute, base, draft);
  if (moved !== undefined) home = moved;
  const version = apply(base, draft, ctx, config.rules, config.schema, home, config.window);
  const item = encodeItem(config.schema, version);
  assertSize(item);
  return { version, item, condition };
}

/** The change of a soft delete at `timeMs`: every plain attribute removed, the TTL attribute set. */
export function softDelete(
  rules: Rules,
  timeMs: bigint,
  ttlAttribute = "hw_expires",
  retentionSeconds: number = 7 * 24 * 3600,
): (draft: Draft) => void {
  const expires = (timeMs / 1000n + BigInt(retentionSeconds)).toString();
  return (draft) => {
    for (const name of draft.names().filter((n) => !rules.isCounter(n))) draft.remove(name);
    draft.set(ttlAttribute, { N: expires });
  };
}

/** The home a draft moves the item to by changing its home attribute (once the stamp records a home). */
function movedHome(name: string | undefined, base: Version, draft: Draft): Home | undefined {
  if (name === undefined || base.home === undefined) return undefined;
  const text = draft.get(name)?.S;
  if (text === undefined || text === base.home.region) return undefined;
  if (!isRegion(text)) throw new HomeError(`\`${name}\` does not name a Region`, name);
  return { region: text, epoch: base.home.epoch + 1 };
}

/** A key must hold exactly the table's key attributes, each a string, number or binary. */
export function checkKey(schema: Schema, key: Item): void {
  const names = keyAttributes(schema);
  for (const name of names) {
    const v = key[name];
    if (v === undefined) throw new BadKeyError(`missing key attribute \`${name}\``);
    const t = typeName(v);
    if (t !== "S" && t !== "N" && t !== "B") {
      throw new BadKeyError(`key attribute \`${name}\` is of type ${t}, expected S, N or B`);
    }
  }
  const extra = Object.keys(key).find((k) => !names.includes(k));
  if (extra !== undefined)
    throw new BadKeyError(`\`${extra}\` is not a key attribute of the table`);
}

/** How often and how patiently to retry a failed condition or throttling. */
export interface Backoff {
  maxAttempts: number;
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { maxAttempts: 10, baseMs: 10, capMs: 500 };

/** Full-jitter exponential delay before retrying after attempt `attempt` (1-based). */
export function backoffDelay(b: Backoff, attempt: number): number {
  const ceiling = Math.min(b.baseMs * 2 ** Math.min(attempt, 16), b.capMs);
  return Math.random() * ceiling;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A version as written (or read): the whole item, the values the app sees, its dot. */
export interface Stamped {
  /** The item as stored: key, values, stamp. */
  item: Item;
  /** The values without key and stamp. */
  values: Item;
  /** This version's dot, `region:counter:nonce`. */
  dot: string;
  version: Version;
}

function stamped(schema: Schema, version: Version, item?: Item): Stamped {
  return {
    item: item ?? encodeItem(schema, version),
    values: Object.fromEntries(versionValues(version)),
    dot: encodeDot(headerDot(version.header)),
    version,
  };
}

export interface WriterOptions {
  /** The global table's name. */
  table: string;
  /** Key attributes, and the stamp attribute (default `_hw`). */
  schema: Schema;
  /** The DynamoDB client of each Region (see `clientsFor`); or give `store`. */
  clients?: ClientProvider;
  /** Where items are read and written (default: DynamoDB through `clients`). */
  store?: Store;
  /** The merge rules (`MERGE_RULES` JSON or object): the writer needs the counters. */
  rules?: Rules | string | { default?: string; attributes?: Record<string, string> };
  /** Dots kept per Region (`DOT_WINDOW`, default 32). */
  window?: number;
  backoff?: Partial<Backoff>;
  /** Soft deletes: the table's TTL attribute (default `hw_expires`) and how long a tombstone lives (default 7 days). */
  tombstones?: { ttlAttribute?: string; retentionSeconds?: number };
  /** The attribute that mirrors the item's home (`attribute:<name>`); the router sets it. */
  homeAttribute?: string;
  /** The stamp's time, in epoch ms, per Region written to (default: the system clock). */
  clock?: (region: string) => number | bigint;
  /** Nonces (default: random u32). */
  nonce?: () => number;
}

/** The stamped writer of one table. */
export class Writer {
  readonly store: Store;
  readonly schema: Schema;
  readonly rules: Rules;
  readonly window: number;
  readonly backoff: Backoff;
  readonly ttlAttribute: string;
  readonly retentionSeconds: number;
  homeAttribute: string | undefined;
  private readonly clock: (region: string) => number | bigint;
  private readonly nonce: () => number;

  constructor(options: WriterOptions) {
    this.schema = options.schema;
    if (options.store !== undefined) this.store = options.store;
    else if (options.clients !== undefined) {
      this.store = new DynamoStore(options.table, options.schema, options.clients);
    } else throw new HomewardError("config", "a writer needs `clients` or a `store`");
    const rules = options.rules;
    this.rules =
      rules !== undefined && typeof rules === "object" && "isCounter" in rules
        ? rules
        : parseRules(rules);
    this.window = options.window ?? DEFAULT_WINDOW;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.ttlAttribute = options.tombstones?.ttlAttribute ?? "hw_expires";
    this.retentionSeconds = options.tombstones?.retentionSeconds ?? 7 * 24 * 3600;
    this.homeAttribute = options.homeAttribute;
    this.clock = options.clock ?? (() => Date.now());
    this.nonce = options.nonce ?? randomNonce;
  }

  /** The pure core's configuration. */
  planConfig(): PlanConfig {
    return {
      schema: this.schema,
      rules: this.rules,
      window: this.window,
      homeAttribute: this.homeAttribute,
      ttlAttribute: this.ttlAttribute,
      retentionSeconds: this.retentionSeconds,
    };
  }

  /** The writer's clock for `region`, in epoch ms. */
  now(region: string): bigint {
    return BigInt(this.clock(region));
  }

  /** The next write's context in `region`: a fresh nonce, the clock's time. */
  context(region: string): WriteContext {
    if (!isRegion(region)) throw new HomeError(`\`${region}\` is not a Region name`);
    return { region, timeMs: BigInt(this.clock(region)), nonce: this.nonce(), by: "app" };
  }

  /**
   * Reads the current version in `region` (strongly consistent); `undefined`
   * when there is no item or it is a soft-delete tombstone. What plain
   * writers changed is adopted (`adoptPlain`): an item without a stamp, or a
   * stamped item a plain writer changed, reads as that adoption, which its
   * next write records.
   */
  async get(region: string, key: Item): Promise<Stamped | undefined> {
    checkKey(this.schema, key);
    const item = await this.retryThrottled(() => this.store.get(region, key));
    if (item === undefined || item[this.ttlAttribute] !== undefined) return undefined;
    const adopted = adoptPlain(this.schema, this.rules, item);
    // A plain writer's edits taken in: the item as its next write records them.
    const asRead = item[stampAttributeOf(this.schema)] !== undefined && adopted.dot === undefined;
    return stamped(this.schema, adopted.version, asRead ? item : undefined);
  }

  /** Creates an item (`attribute_not_exists`), or revives a soft-deleted one over its tombstone. */
  async insert(region: string, item: Item, home?: Home): Promise<Stamped> {
    const plan = planInsert(item, this.context(region), this.planConfig(), home);
    const key = keyOf(this.schema, item);
    // Twice at most: TTL may remove a tombstone between the two tries.
    for (let i = 0; i < 2; i++) {
      try {
        await this.retryThrottled(() => this.store.put(region, plan.item, plan.condition));
        return stamped(this.schema, plan.version, plan.item);
      } catch (e) {
        if (!(e instanceof StoreError && e.kind === "condition-failed")) throw e;
      }
      // Something holds the key: a tombstone can be written over.
      try {
        return await this.modify(region, key, home, true, revival(item, this.planConfig()));
      } catch (e) {
        if (!(e instanceof NotFoundError)) throw e;
      }
    }
    throw new ContendedError(2);
  }

  /**
   * Read-modify-write of an existing item in `region`. `change` edits a
   * Draft of the current values (it may run more than once when the item
   * changes under the write), or is an object of attributes to set
   * (`undefined` removes one).
   */
  update(region: string, key: Item, change: Change, home?: Home): Promise<Stamped> {
    return this.modify(region, key, home, false, changeFn(change));
  }

  /** Adds `delta` to counter attribute `attribute` (exact, whole numbers). */
  increment(
    region: string,
    key: Item,
    attribute: string,
    delta: bigint | number,
  ): Promise<Stamped> {
    return this.update(region, key, (draft) => {
      draft.increment(attribute, delta);
    });
  }

  /**
   * Soft delete: removes every plain attribute (each gets a stamped
   * tombstone) and sets the TTL attribute; DynamoDB's TTL removes the item
   * later. Counters keep their contributions until then.
   */
  delete(region: string, key: Item): Promise<Stamped> {
    const timeMs = this.now(region);
    return this.update(
      region,
      key,
      softDelete(this.rules, timeMs, this.ttlAttribute, this.retentionSeconds),
    );
  }

  private async modify(
    region: string,
    key: Item,
    home: Home | undefined,
    tombstoneOk: boolean,
    change: (draft: Draft) => void,
  ): Promise<Stamped> {
    checkKey(this.schema, key);
    let last: unknown;
    for (let attempt = 1; attempt <= this.backoff.maxAttempts; attempt++) {
      try {
        const read = await this.store.get(region, key);
        const plan = planUpdate(read, change, this.context(region), this.planConfig(), {
          home,
          tombstoneOk,
        });
        await this.store.put(region, plan.item, plan.condition);
        return stamped(this.schema, plan.version, plan.item);
      } catch (e) {
        const conflict = e instanceof StoreError && e.kind === "condition-failed";
        if (!conflict && !isThrottling(e)) throw e;
        last = e;
      }
      if (attempt < this.backoff.maxAttempts) await sleep(backoffDelay(this.backoff, attempt));
    }
    if (isThrottling(last)) throw last;
    throw new ContendedError(this.backoff.maxAttempts);
  }

  /** Runs `call`, retrying throttling with jittered backoff. */
  private async retryThrottled<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (e) {
        if (!isThrottling(e) || attempt >= this.backoff.maxAttempts) throw e;
      }
      await sleep(backoffDelay(this.backoff, attempt));
    }
  }
}
