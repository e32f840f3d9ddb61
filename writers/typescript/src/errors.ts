/**
 * Typed errors. Messages name attributes, fields and Regions, never an
 * item's values (error texts reach logs; items hold personal data).
 */

/**
 * Every error this package throws. `code` tells them apart: `stamp`,
 * `reserved`, `not_a_counter`, `counter_value`, `counter_removed`,
 * `overflow`, `bad_key`, `too_large`, `home`, `not_found`,
 * `already_exists`, `contended`, `store`, `config` (the conformance kit's
 * error kinds where it has one).
 */
export class HomewardError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export type StampErrorKind =
  | "missing"
  | "field"
  | "bad-region"
  | "bad-dot"
  | "undotted-attribute"
  | "counter-mismatch"
  | "missing-key"
  | "overflow"
  | "cap-exceeded";

/** A stamp (or the item around it) that cannot be read. */
export class StampError extends HomewardError {
  readonly kind: StampErrorKind;
  /** The stamp field, attribute or cap concerned. */
  readonly field: string | undefined;
  constructor(kind: StampErrorKind, message: string, field?: string) {
    super("stamp", message);
    this.kind = kind;
    this.field = field;
  }

  static field(field: string, reason: string): StampError {
    return new StampError("field", `stamp field \`${field}\` is malformed: ${reason}`, field);
  }

  static overflow(field: string, reason: string): StampError {
    return new StampError("overflow", `stamp field \`${field}\` would overflow: ${reason}`, field);
  }

  static cap(cap: string, field: string, limit: number): StampError {
    return new StampError(
      "cap-exceeded",
      `stamp field \`${field}\` exceeds the cap ${cap} (${limit})`,
      field,
    );
  }

  /** The same error, an overflow or cap now naming `field`. */
  inField(field: string): StampError {
    if (this.kind === "overflow") {
      const reason = this.message.replace(/^.*would overflow: /, "");
      return StampError.overflow(field, reason);
    }
    if (this.kind === "cap-exceeded") {
      const m = /exceeds the cap (\S+) \((\d+)\)$/.exec(this.message);
      return StampError.cap(m?.[1] ?? "", field, Number(m?.[2] ?? 0));
    }
    return this;
  }
}

/**
 * A counter attribute a plain writer (outside the stamp protocol) set to
 * something that is not a whole number: it cannot be adopted as a
 * contribution. Names the attribute and the value's type, never the value.
 */
export class CounterMismatchError extends StampError {
  readonly attribute: string;
  constructor(attribute: string, found: string) {
    super(
      "counter-mismatch",
      `counter attribute \`${attribute}\` holds ${found}, not a whole number (written outside the stamp protocol); it cannot be adopted`,
      attribute,
    );
    this.attribute = attribute;
  }
}

export type EditErrorKind =
  "reserved" | "not_a_counter" | "counter_value" | "counter_removed" | "overflow";

/** A change the writer cannot make; nothing is written. */
export class EditError extends HomewardError {
  readonly kind: EditErrorKind;
  readonly attribute: string | undefined;
  constructor(kind: EditErrorKind, message: string, attribute?: string, cause?: unknown) {
    super(kind, message, cause === undefined ? undefined : { cause });
    this.kind = kind;
    this.attribute = attribute;
  }
}

/** A key that is not one of the table's keys. */
export class BadKeyError extends HomewardError {
  constructor(message: string) {
    super("bad_key", `bad key: ${message}`);
  }
}

/** The item would be over DynamoDB's 400 KB limit. */
export class TooLargeError extends HomewardError {
  readonly bytes: number;
  constructor(bytes: number) {
    super("too_large", `the item would be ${bytes} bytes, over DynamoDB's 409600-byte limit`);
    this.bytes = bytes;
  }
}

/** The item's home cannot be found or moved as asked. */
export class HomeError extends HomewardError {
  /** The home attribute concerned, if any. */
  readonly attribute: string | undefined;
  constructor(message: string, attribute?: string) {
    super("home", `home: ${message}`);
    this.attribute = attribute;
  }
}

/** No (live) item with this key. */
export class NotFoundError extends HomewardError {
  constructor() {
    super("not_found", "no item with this key");
  }
}

/** An insert met a live item with this key. */
export class AlreadyExistsError extends HomewardError {
  constructor() {
    super("already_exists", "an item with this key already exists");
  }
}

/** The retries were spent: the item kept changing under the write. */
export class ContendedError extends HomewardError {
  readonly attempts: number;
  constructor(attempts: number) {
    super(
      "contended",
      `gave up after ${attempts} attempts: the item kept changing under the write`,
    );
    this.attempts = attempts;
  }
}

export type StoreErrorKind = "condition-failed" | "rejected" | "timed-out" | "service";

/** A failed DynamoDB call. */
export class StoreError extends HomewardError {
  readonly kind: StoreErrorKind;
  readonly region: string | undefined;
  /** Throttling, 5xx, timeouts, no answer: trying again may succeed. */
  readonly retryable: boolean;
  /** The service's error name (`ThrottlingException`, ...), when there is one. */
  readonly errorName: string | undefined;
  constructor(
    kind: StoreErrorKind,
    message: string,
    opts: { region?: string; retryable?: boolean; errorName?: string; cause?: unknown } = {},
  ) {
    super("store", message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
    this.region = opts.region;
    this.retryable = opts.retryable ?? false;
    this.errorName = opts.errorName;
  }
}
