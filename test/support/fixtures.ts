import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** A logger whose lines land, parsed, in `lines`. */
export function captureLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger({ log: { level: 'debug', format: 'json' } }, sink), lines };
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  // Last registered first: a client is closed before the server it talks to, a server before its directory.
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Runs `cleanup` after the current test. */
export const afterThisTest = (cleanup: () => unknown): void => void cleanups.push(cleanup);

/** A temporary directory removed after the current test. */
export async function tempDir(prefix = 'ftps-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  afterThisTest(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
