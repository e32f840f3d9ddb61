/** Where an item's home Region is (`HOME_STRATEGY`), as the resolver and the Rust router see it. */
import { isRegion } from "./dot.js";
import { HomeError, HomewardError, StampError } from "./errors.js";
import { decodeHome } from "./stamp.js";
import type { Item } from "./value.js";
import { versionValues, type Home, type Version } from "./version.js";

export type HomeSource =
  | { kind: "attribute"; name: string }
  | { kind: "key-prefix"; name: string }
  | { kind: "stamp" }
  | { kind: "negotiated" }
  | { kind: "table"; pattern: string; region: string };

/** How to find an item's home Region. */
export class HomeStrategy {
  readonly source: HomeSource;
  readonly stampAttribute: string;

  constructor(source: HomeSource, stampAttribute = "_hw") {
    this.source = source;
    this.stampAttribute = stampAttribute;
  }

  /**
   * Parses `attribute:<name>`, `key-prefix:<key attribute>`, `stamp`,
   * `negotiated` or `table:<pattern with {region}>` (matched against `tableName`).
   */
  static parse(spec: string, stampAttribute = "_hw", tableName = ""): HomeStrategy {
    const i = spec.indexOf(":");
    const kind = i < 0 ? spec : spec.slice(0, i);
    const rest = i < 0 ? undefined : spec.slice(i + 1);
    let source: HomeSource | undefined;
    if (kind === "attribute" && rest) source = { kind: "attribute", name: rest };
    else if (kind === "key-prefix" && rest) source = { kind: "key-prefix", name: rest };
    else if (kind === "table" && rest !== undefined) {
      source = { kind: "table", pattern: rest, region: regionInTableName(rest, tableName) };
    } else if (rest === undefined && spec === "stamp") source = { kind: "stamp" };
    else if (rest === undefined && spec === "negotiated") source = { kind: "negotiated" };
    if (source === undefined) {
      throw new HomewardError(
        "config",
        `home strategy \`${spec}\` is not one of \`attribute:<name>\`, \`key-prefix:<key attribute>\`, \`stamp\`, \`negotiated\`, \`table:<pattern with {region}>\``,
      );
    }
    return new HomeStrategy(source, stampAttribute);
  }

  /** The item's home; `undefined` when the item does not name one. Throws a HomeError when it names no Region. */
  homeOf(item: Item): Home | undefined {
    const stamped = (): Home | undefined => {
      const m = item[this.stampAttribute]?.M;
      if (m === undefined) return undefined;
      try {
        return decodeHome(m);
      } catch (e) {
        if (e instanceof StampError) throw new HomeError(e.message);
        throw e;
      }
    };
    const region = (text: string, what: string): Home => {
      if (!isRegion(text)) throw new HomeError(`${what} is not a Region name`);
      return { region: text, epoch: 0 };
    };
    const s = this.source;
    switch (s.kind) {
      case "attribute": {
        const home = stamped();
        if (home !== undefined) return home;
        const v = item[s.name];
        if (v === undefined) return undefined;
        if (v.S === undefined) throw new HomeError(`home attribute \`${s.name}\` is not a string`);
        return region(v.S, `home attribute \`${s.name}\``);
      }
      case "key-prefix": {
        const v = item[s.name]?.S;
        if (v === undefined) {
          throw new HomeError(`key attribute \`${s.name}\` is missing or not a string`);
        }
        const j = v.indexOf("#");
        if (j < 0) throw new HomeError(`key \`${s.name}\` has no \`region#\` prefix`);
        return region(v.slice(0, j), `the prefix of key \`${s.name}\``);
      }
      case "stamp":
      case "negotiated":
        return stamped();
      case "table":
        return { region: s.region, epoch: 0 };
    }
  }

  /** The home of a decoded version. */
  homeOfVersion(version: Version): Home | undefined {
    const s = this.source;
    if (s.kind === "stamp" || s.kind === "negotiated") return version.home;
    if (s.kind === "attribute" && version.home !== undefined) return version.home;
    const item: Item = { ...version.key };
    const mirror = this.mirror();
    if (mirror !== undefined) {
      const value = versionValues(version).get(mirror);
      if (value !== undefined) item[mirror] = value;
    }
    return this.homeOf(item);
  }

  /** The attribute that mirrors the home for the application (`attribute:<name>`). */
  mirror(): string | undefined {
    return this.source.kind === "attribute" ? this.source.name : undefined;
  }

  /** Why this strategy's homes cannot move, if they cannot. */
  fixedReason(): string | undefined {
    switch (this.source.kind) {
      case "key-prefix":
        return "the home is part of the item's key (key-prefix strategy); such items are reconciled, never re-homed";
      case "table":
        return "the home is part of the table name (table strategy); such items are reconciled, never re-homed";
      default:
        return undefined;
    }
  }

  canRehome(): boolean {
    return this.fixedReason() === undefined;
  }
}

function regionInTableName(pattern: string, tableName: string): string {
  const i = pattern.indexOf("{region}");
  if (i < 0) throw new HomewardError("config", `table pattern \`${pattern}\` has no \`{region}\``);
  const before = pattern.slice(0, i);
  const after = pattern.slice(i + "{region}".length);
  if (
    !tableName.startsWith(before) ||
    !tableName.slice(before.length).endsWith(after) ||
    tableName.length < before.length + after.length
  ) {
    throw new HomewardError(
      "config",
      `table name \`${tableName}\` does not match pattern \`${pattern}\``,
    );
  }
  const text = tableName.slice(before.length, tableName.length - after.length);
  if (!isRegion(text)) {
    throw new HomewardError(
      "config",
      `table name \`${tableName}\` under pattern \`${pattern}\` names \`${text}\`, not a Region`,
    );
  }
  return text;
}
