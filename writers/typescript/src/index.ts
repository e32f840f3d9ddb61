/**
 * Homeward's writer for TypeScript: stamps every write to a DynamoDB global
 * table as the stamp protocol says, writes conditionally on the version
 * read, and routes writes to each item's home Region.
 */
export * from "./errors.js";
export type { AttributeValue, Item } from "./value.js";
export { itemSize, valueEquals, MAX_ITEM_BYTES } from "./value.js";
export * from "./dot.js";
export * from "./version.js";
export * from "./stamp.js";
export * from "./adopt.js";
export * from "./edit.js";
export * from "./home.js";
export * from "./store.js";
export * from "./writer.js";
export * from "./router.js";
export * from "./memory.js";
