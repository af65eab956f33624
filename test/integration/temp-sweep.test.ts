/*
 * The sweep of temporary upload files a killed process left behind, run by the real server on its FTP_ROOT.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

/** Two hours ago, in seconds: past the safe age of an hour that the default DATA_TIMEOUT_SECONDS gives. */
const OLD = Date.now() / 1000 - 2 * 3600;
const SWEPT = 'temporary upload files swept';

const tempName = (): string => `.ftps-upload-${randomBytes(8).toString('hex')}.tmp`;

async function put(root: string, rel: string, content: string, old: boolean): Promise<string> {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
  if (old) await utimes(file, OLD, OLD);
  return file;
}

const summaryOf = (srv: RunningServer) => srv.logs.find((l) => l.msg === SWEPT);

describe('stale temporary upload files', () => {
  it('are removed in the background after start; fresh ones and ordinary files stay', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'ftps-root-'));
    const leftovers = [await put(root, tempName(), 'x'.repeat(1000), true), await put(root, `bob/inbox/${tempName()}`, 'y'.repeat(24), true)];
    const fresh = await put(root, tempName(), 'an upload another replica is writing', false);
    const report = await put(root, 'report.pdf', 'old but not temporary', true);

    const srv = await startServer({ FTP_ROOT: root });
    try {
      await vi.waitFor(() => expect(summaryOf(srv)).toBeDefined(), { timeout: 10_000, interval: 20 });
      expect(summaryOf(srv)).toMatchObject({ level: 30, root, olderThanSeconds: 3600, removed: 2, bytes: 1024, failures: 0, aborted: false });
      expect(srv.logs.filter((l) => /temporary upload file/.test(String(l.msg)) && l.msg !== SWEPT)).toEqual([]);
      for (const file of leftovers) expect(existsSync(file), file).toBe(false);
      expect(existsSync(fresh)).toBe(true);
      expect(existsSync(report)).toBe(true);

      const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
      try {
        expect((await client.list()).map((f) => f.name).sort()).toEqual(['bob', 'report.pdf']);
      } finally {
        client.close();
      }
    } finally {
      await srv.stop();
    }
  });

  it('never delays start, and stop() ends a sweep still running before it returns', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'ftps-root-'));
    const count = 3000;
    await Promise.all(Array.from({ length: count }, (_, i) => put(root, `d${i}/${tempName()}`, 'partial', true)));

    const srv = await startServer({ FTP_ROOT: root });
    // Listening, and the sweep of 3000 directories has barely begun.
    expect(summaryOf(srv)).toBeUndefined();
    await srv.stop();

    const summary = summaryOf(srv);
    expect(summary).toMatchObject({ aborted: true, failures: 0 });
    expect(summary!.removed as number).toBeLessThan(count);
    expect(summary!.directories as number).toBeLessThan(count + 1);
  });
});
