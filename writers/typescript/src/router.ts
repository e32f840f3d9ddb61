/**
 * The writer's routing: which Region each write goes to. `route` sends it
 * to the item's home Region (falling back to the local Region when the home
 * does not answer); `local` writes here and lets the resolvers reconcile.
 * Both honour evacuated Regions: a write for an item homed in one is made
 * here and moves the item's home here, one epoch on.
 */
import { isRegion } from "./dot.js";
import { HomeError, HomewardError, StoreError } from "./errors.js";
import type { HomeStrategy } from "./home.js";
import { keyOf } from "./stamp.js";
import type { Item } from "./value.js";
import type { Home } from "./version.js";
import { softDelete, type Change, type Stamped, type Writer } from "./writer.js";

export type Mode = "route" | "local";

/** A write and the Region it was made in. */
export interface Routed extends Stamped {
  region: string;
  /** Whether the write moved the item's home (failover or an explicit move). */
  moved: boolean;
}

/** The journal table's control item that lists the evacuated Regions. */
export const CONTROL_KEY: Item = { pk: { S: "homeward:control" }, sk: { S: "evacuated" } };

/**
 * The evacuated Regions: a fixed list plus the control item in the local
 * Region's journal table, re-read at most every `refreshMs`. When the control
 * item cannot be read the last list read stands.
 */
export class Evacuations {
  private cached: { at: number; regions: Set<string> } | undefined;
  constructor(
    readonly fixed: Iterable<string> = [],
    readonly refreshMs = 5000,
    readonly onWarning: (message: string) => void = () => {},
  ) {}

  async current(writer: Writer, controlTable: string, local: string): Promise<Set<string>> {
    let fromItem: Set<string>;
    const cached = this.cached;
    if (cached !== undefined && Date.now() - cached.at < this.refreshMs) {
      fromItem = cached.regions;
    } else {
      try {
        fromItem = await readEvacuated(writer, controlTable, local);
        this.cached = { at: Date.now(), regions: fromItem };
      } catch (e) {
        this.onWarning(
          `cannot read the evacuated Regions; keeping the last list: ${e instanceof Error ? e.message : "error"}`,
        );
        fromItem = cached?.regions ?? new Set();
      }
    }
    return new Set([...this.fixed, ...fromItem]);
  }

  /** Forgets the cached list (the next call reads the control item). */
  invalidate(): void {
    this.cached = undefined;
  }
}

/** Reads the control item's list of evacuated Regions in `region`. */
export async function readEvacuated(
  writer: Writer,
  controlTable: string,
  region: string,
): Promise<Set<string>> {
  const found = await writer.store.get(region, CONTROL_KEY, controlTable);
  const regions = found?.regions;
  if (regions === undefined) return new Set();
  if (regions.L === undefined) {
    throw new StoreError("rejected", "control item `evacuated`: `regions` is not a list");
  }
  return new Set(
    regions.L.map((v) => {
      if (v.S === undefined || !isRegion(v.S)) {
        throw new StoreError("rejected", "control item `evacuated`: an entry is not a Region name");
      }
      return v.S;
    }),
  );
}

export interface RouterOptions {
  writer: Writer;
  /** The caller's Region. */
  local: string;
  /** `route` (default) or `local`. */
  mode?: Mode;
  /** How to find an item's home (`HomeStrategy.parse("attribute:src_region")`). */
  homes: HomeStrategy;
  /** The journal table holding the control item (default `<table>-journal`). */
  controlTable?: string;
  /** Regions always treated as evacuated (`EVACUATED_REGIONS`). */
  evacuated?: Iterable<string>;
  /** How long a read of the control item is trusted (default 5000 ms). */
  controlRefreshMs?: number;
  /** Where warnings go (the home unreachable, the control item unreadable). */
  onWarning?: (message: string) => void;
}

/** The stamped writer of one Region, with a routing mode. */
export class Router {
  readonly writer: Writer;
  readonly local: string;
  readonly mode: Mode;
  readonly homes: HomeStrategy;
  readonly controlTable: string;
  readonly evacuations: Evacuations;
  private readonly warn: (message: string) => void;

  constructor(options: RouterOptions) {
    if (options.homes.source.kind === "negotiated") {
      throw new HomewardError(
        "config",
        "the negotiated home strategy is not supported by the TypeScript writer (use the Rust router)",
      );
    }
    if (!isRegion(options.local)) throw new HomeError(`\`${options.local}\` is not a Region name`);
    this.writer = options.writer;
    this.local = options.local;
    this.mode = options.mode ?? "route";
    this.homes = options.homes;
    this.writer.homeAttribute = this.homes.mirror();
    this.controlTable = options.controlTable ?? `${this.writer.store.table}-journal`;
    this.warn = options.onWarning ?? (() => {});
    this.evacuations = new Evacuations(
      options.evacuated ?? [],
      options.controlRefreshMs ?? 5000,
      this.warn,
    );
  }

  private evacuated(): Promise<Set<string>> {
    return this.evacuations.current(this.writer, this.controlTable, this.local);
  }

  /** The item's home as this Region's copy shows it (a stale view is fenced by the epoch). */
  async homeOf(key: Item): Promise<Home | undefined> {
    if (this.homes.source.kind === "table") return { region: this.homes.source.region, epoch: 0 };
    const item = await this.writer.store.get(this.local, key);
    return item === undefined ? undefined : this.homes.homeOf(item);
  }

  /** The Region a write for an item homed in `home` goes to. */
  private async target(home: string | undefined): Promise<string> {
    if (this.mode === "route" && home !== undefined) {
      return (await this.evacuated()).has(home) ? this.local : home;
    }
    return this.local;
  }

  /** Reads the item where the mode would write it (`undefined`: none, or soft-deleted). */
  async get(key: Item): Promise<Stamped | undefined> {
    const home = await this.homeOf(key);
    const region = await this.target(home?.region);
    try {
      return await this.writer.get(region, key);
    } catch (e) {
      if (e instanceof StoreError && e.retryable && region !== this.local) {
        this.warn(`home Region ${region} unreachable; reading in ${this.local}`);
        return this.writer.get(this.local, key);
      }
      throw e;
    }
  }

  /** Creates an item. Its home comes from the item, or is this Region (`stamp`). */
  async insert(item: Item): Promise<Routed> {
    const mine: Item = { ...item };
    let home: Home | undefined =
      this.homes.source.kind === "stamp" ? { region: this.local, epoch: 0 } : undefined;
    const named = home?.region ?? this.homes.homeOf(mine)?.region;
    const evacuated = await this.evacuated();
    let moved = false;
    if (named !== undefined && evacuated.has(named)) {
      if (this.homes.canRehome() && named !== this.local) {
        // Born during an evacuation: homed here from the start.
        home = { region: this.local, epoch: 1 };
        const mirror = this.homes.mirror();
        if (mirror !== undefined) mine[mirror] = { S: this.local };
        moved = true;
      }
    }
    const region = moved && home !== undefined ? home.region : await this.target(named);
    const written = await this.writer.insert(region, mine, home);
    return { ...written, region, moved };
  }

  /**
   * Read-modify-write of an existing item, in the Region the mode picks.
   * An item homed in an evacuated Region is written here and re-homed here;
   * when the home Region does not answer, the write is made here.
   */
  async update(key: Item, change: Change): Promise<Routed> {
    const home = await this.homeOf(key);
    const evacuated = await this.evacuated();
    if (home !== undefined && evacuated.has(home.region)) {
      if (this.homes.canRehome() && home.region !== this.local) {
        this.warn(`home ${home.region} evacuated: ${this.local} adopts the item`);
        return this.moveHomeFrom(key, home, this.local, change);
      }
    }
    const region = await this.target(home?.region);
    try {
      const written = await this.writer.update(region, key, change);
      return { ...written, region, moved: false };
    } catch (e) {
      if (e instanceof StoreError && e.retryable && region !== this.local) {
        this.warn(`home Region ${region} unreachable; writing in ${this.local}`);
        const written = await this.writer.update(this.local, key, change);
        return { ...written, region: this.local, moved: false };
      }
      throw e;
    }
  }

  /** Adds `delta` to a counter attribute. */
  increment(key: Item, attribute: string, delta: bigint | number): Promise<Routed> {
    return this.update(key, (draft) => {
      draft.increment(attribute, delta);
    });
  }

  /** Soft delete (see `Writer.delete`), routed. */
  delete(key: Item): Promise<Routed> {
    const change = softDelete(
      this.writer.rules,
      this.writer.now(this.local),
      this.writer.ttlAttribute,
      this.writer.retentionSeconds,
    );
    return this.update(key, change);
  }

  /** Moves the item's home to `to`, one epoch on, the home attribute (if any) set to match. Idempotent. */
  async moveHome(key: Item, to: string): Promise<Routed> {
    if (!isRegion(to)) throw new HomeError(`\`${to}\` is not a Region name`);
    const from = (await this.homeOf(key)) ?? { region: this.local, epoch: 0 };
    const evacuated = await this.evacuated();
    const at = evacuated.has(from.region) ? to : from.region;
    const current = await this.writer.get(at, key);
    if (current !== undefined && this.homes.homeOfVersion(current.version)?.region === to) {
      return { ...current, region: at, moved: false };
    }
    return this.moveHomeFrom(key, from, to, () => {});
  }

  private async moveHomeFrom(key: Item, from: Home, to: string, change: Change): Promise<Routed> {
    const reason = this.homes.fixedReason();
    if (reason !== undefined) throw new HomeError(reason);
    const evacuated = await this.evacuated();
    const at = evacuated.has(from.region) ? to : from.region;
    const next: Home = { region: to, epoch: from.epoch + 1 };
    const mirror = this.homes.mirror();
    const written = await this.writer.update(
      at,
      key,
      (draft) => {
        if (typeof change === "function") change(draft);
        else
          for (const [name, value] of Object.entries(change)) {
            if (value === undefined) draft.remove(name);
            else draft.set(name, value);
          }
        if (mirror !== undefined) draft.set(mirror, { S: to });
      },
      next,
    );
    return { ...written, region: at, moved: true };
  }

  /** Checks that `item` has the table's key (a helper for callers building keys). */
  keyOf(item: Item): Item {
    return keyOf(this.writer.schema, item);
  }
}
