/** An in-memory multi-Region store: for tests, and the conformance kit's routing cases. */
import { StoreError } from "./errors.js";
import { keyAttributes, stampAttributeOf, type Schema } from "./stamp.js";
import type { PutCondition, Store } from "./store.js";
import type { AttributeValue, Item } from "./value.js";

function keyText(names: string[], item: Item): string {
  return JSON.stringify(
    names.map((n) => item[n] ?? null),
    (_, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v),
  );
}

/** `f()` as a promise: its value, or its exception as the rejection. */
function settle<T>(f: () => T): Promise<T> {
  return new Promise((resolve) => resolve(f()));
}

/** Whether `condition` holds for `current`, as DynamoDB evaluates the protocol's expressions. */
export function conditionHolds(
  condition: PutCondition,
  current: Item | undefined,
  stampAttribute: string,
): boolean {
  switch (condition.kind) {
    case "always":
      return true;
    case "not-exists":
      return current === undefined;
    case "unstamped":
      return current !== undefined && current[stampAttribute] === undefined;
    case "dot-is": {
      const dot: AttributeValue | undefined = current?.[stampAttribute]?.M?.dot;
      return dot?.S === condition.dot;
    }
  }
}

/**
 * One table in several Regions, in memory, with no replication. Regions in
 * `unreachable` fail every call with a retryable error (a Region that does
 * not answer). Other tables (the control item's journal table) are kept
 * per name, keyed by `pk`/`sk`.
 */
export class MemoryStore implements Store {
  readonly table: string;
  readonly schema: Schema;
  readonly unreachable = new Set<string>();
  private readonly data = new Map<string, Map<string, Item>>();

  constructor(table: string, schema: Schema) {
    this.table = table;
    this.schema = schema;
  }

  private names(table: string): string[] {
    return table === this.table ? keyAttributes(this.schema) : ["pk", "sk"];
  }

  private space(region: string, table: string): Map<string, Item> {
    const name = `${region}\u0000${table}`;
    let space = this.data.get(name);
    if (space === undefined) {
      space = new Map();
      this.data.set(name, space);
    }
    return space;
  }

  private check(region: string): void {
    if (this.unreachable.has(region)) {
      throw new StoreError(
        "service",
        `DynamoDB call failed in ${region} (retryable: true): no answer`,
        {
          region,
          retryable: true,
        },
      );
    }
  }

  /** Stores `item` as it is (no condition), in `region`'s copy of `table`. */
  seed(region: string, item: Item, table: string = this.table): void {
    this.space(region, table).set(keyText(this.names(table), item), structuredClone(item));
  }

  /** The item as stored, without a call (no reachability check). */
  peek(region: string, key: Item, table: string = this.table): Item | undefined {
    const found = this.space(region, table).get(keyText(this.names(table), key));
    return found === undefined ? undefined : structuredClone(found);
  }

  get(region: string, key: Item, table: string = this.table): Promise<Item | undefined> {
    return settle(() => {
      this.check(region);
      return this.peek(region, key, table);
    });
  }

  put(region: string, item: Item, condition: PutCondition): Promise<void> {
    return settle(() => {
      this.check(region);
      const space = this.space(region, this.table);
      const k = keyText(this.names(this.table), item);
      if (!conditionHolds(condition, space.get(k), stampAttributeOf(this.schema))) {
        throw new StoreError("condition-failed", "conditional check failed", { region });
      }
      space.set(k, structuredClone(item));
    });
  }
}
