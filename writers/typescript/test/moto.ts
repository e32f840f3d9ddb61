/** Starts a moto server for the tests (from the repository's .venv, or HOMEWARD_MOTO) and stops it after. */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";

export function motoServerPath(): string {
  if (process.env.HOMEWARD_MOTO) return process.env.HOMEWARD_MOTO;
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "../../../../.venv/bin/moto_server");
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface Moto {
  endpoint: string;
  stop(): Promise<void>;
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/moto-api/`);
    return res.status < 500;
  } catch {
    return false;
  }
}

/** Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers. */
export async function startMoto(): Promise<Moto> {
  const bin = motoServerPath();
  if (!existsSync(bin)) {
    throw new Error(
      `moto_server not found at ${bin}: run \`bash scripts/test.sh venv\`, or set HOMEWARD_MOTO`,
    );
  }
  const port = await freePort();
  const child: ChildProcess = spawn(bin, ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (!(await answers(endpoint))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`moto_server did not start on ${endpoint}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

export const CREDENTIALS = { accessKeyId: "testing", secretAccessKey: "testing" };

/** A client of `region` at `endpoint`. */
export function client(endpoint: string, region: string, maxAttempts = 3): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region, credentials: CREDENTIALS, maxAttempts });
}

/** Creates the table (`pk` S) and its journal table (`pk`, `sk` S) in `region`. */
export async function createTables(endpoint: string, region: string, table: string): Promise<void> {
  const c = client(endpoint, region);
  await c.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  await c.send(
    new CreateTableCommand({
      TableName: `${table}-journal`,
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  c.destroy();
}
