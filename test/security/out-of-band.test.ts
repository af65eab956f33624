/*
 * Finding 1: memory exhaustion through out-of-band commands. STAT sent while a transfer is pending used to run at
 * once, any number in parallel, with replies written whatever the client read: 30 `STAT <big dir>` lines took the
 * server from 158 MB to 3.2 GB. Now one out-of-band command runs at a time, STAT during a transfer reports the
 * transfer only, every reply waits for the client to read the previous one, and listings over the control
 * connection are written as fast as the client reads them.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, noopProbe, quantile, report, sampleRss } from '../support/measure.js';
import { loggedIn, type RawFtpClient } from '../support/raw-client.js';
import { IMAGE_NODE_ARGS, K8S_HEAP_LIMIT, startServerProcess, type ServerProcess } from '../support/server-process.js';

const ENTRIES = 5_000;
const LINES = 10_000;
const WINDOW_MS = 8_000;
const STAT_KINDS = ['STAT', 'STAT big', 'STAT -la big', 'STAT /', 'STAT file.bin', 'STAT missing', `STAT ${'x'.repeat(1000)}`];

let srv: ServerProcess;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ftps-oob-'));
  await mkdir(path.join(root, 'big'));
  await Promise.all(Array.from({ length: ENTRIES }, (_, i) => writeFile(path.join(root, 'big', `entry-${i}.txt`), '')));
  await writeFile(path.join(root, 'file.bin'), Buffer.alloc(1024));
  srv = await startServerProcess({ FTP_ROOT: root, DATA_TIMEOUT_SECONDS: '60' }, { nodeArgs: [...IMAGE_NODE_ARGS, K8S_HEAP_LIMIT] });
});

afterAll(async () => {
  await srv?.stop();
  await rm(root, { recursive: true, force: true });
});

/** Pipelines `count` STAT lines of every kind and never reads a reply; returns the server's RSS growth and others' latency. */
async function flood(c: RawFtpClient, count: number) {
  const probe = await noopProbe(() => loggedIn(srv.port));
  const rss = sampleRss(srv.pid);
  c.socket.pause();
  c.writeRaw(Array.from({ length: count }, (_, i) => `${STAT_KINDS[i % STAT_KINDS.length]}\r\n`).join(''));
  await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
  const memory = rss.stop();
  const { latencies, unanswered } = await probe.stop();
  return { memory, latencies, unanswered };
}

describe('out-of-band commands', () => {
  it(`${LINES} pipelined STAT lines during a pending transfer: bounded memory, others unaffected`, async () => {
    const attacker = await loggedIn(srv.port);
    // A transfer that waits for a data connection the client never opens.
    await attacker.openPassive({ tls: true }).then((s) => s.destroy());
    expect((await attacker.send('EPSV')).code).toBe(229);
    attacker.writeRaw('RETR file.bin\r\n');
    const { memory, latencies, unanswered } = await flood(attacker, LINES);
    report('STAT flood during a pending transfer', {
      rssBeforeMiB: memory.before / MiB,
      rssGrowthMiB: memory.growth / MiB,
      noopP99Ms: quantile(latencies, 0.99),
      noops: latencies.length,
    });
    expect(srv.child.exitCode).toBeNull();
    expect(unanswered).toBe(0);
    expect(memory.growth).toBeLessThan(32 * MiB);
    attacker.close();
    // The server still serves.
    const fresh = await loggedIn(srv.port);
    expect((await fresh.send('NOOP')).code).toBe(200);
    fresh.close();
  }, 60_000);

  it(`${LINES} pipelined STAT listings with no transfer, never read: bounded memory, others unaffected`, async () => {
    const attacker = await loggedIn(srv.port);
    const { memory, latencies, unanswered } = await flood(attacker, LINES);
    report('STAT flood without a transfer', {
      rssBeforeMiB: memory.before / MiB,
      rssGrowthMiB: memory.growth / MiB,
      noopP99Ms: quantile(latencies, 0.99),
      noops: latencies.length,
    });
    expect(srv.child.exitCode).toBeNull();
    expect(unanswered).toBe(0);
    expect(memory.growth).toBeLessThan(32 * MiB);
    attacker.close();
  }, 60_000);

  it('answers STAT during a transfer with the transfer status, not a listing', async () => {
    const c = await loggedIn(srv.port);
    expect((await c.send('EPSV')).code).toBe(229);
    c.writeRaw('RETR file.bin\r\n');
    const status = await c.send('STAT big');
    expect(status.code).toBe(211);
    expect(status.text).toContain('A transfer is in progress');
    expect(status.text).not.toContain('entry-');
    expect((await c.send('ABOR')).code).toBe(426);
    expect((await c.read()).code).toBe(226);
    // Without a transfer, STAT lists (streamed) as before.
    const listing = await c.send('STAT big', 15_000);
    expect(listing.code).toBe(213);
    expect(listing.text.split('\n').filter((l) => l.includes('entry-'))).toHaveLength(ENTRIES);
    c.close();
  }, 30_000);
});
