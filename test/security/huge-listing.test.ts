/*
 * Finding 3: one LIST of 100,000 entries took the server from 158 to 561 MB and stalled every other session for
 * seconds (every entry was stat-ed at once, the whole text built in memory). Listings now stream from the
 * directory in batches with a bounded number of stat() calls in flight, written as fast as the client reads.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, noopProbe, quantile, report, sampleRss } from '../support/measure.js';
import { loggedIn } from '../support/raw-client.js';
import { IMAGE_NODE_ARGS, K8S_HEAP_LIMIT, startServerProcess, type ServerProcess } from '../support/server-process.js';

const ENTRIES = 100_000;
const PARALLEL = 8;

let srv: ServerProcess;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ftps-huge-'));
  const dir = path.join(root, 'huge');
  await mkdir(dir);
  // touch in one process: far quicker than 100,000 writeFile calls.
  execFileSync('sh', ['-c', `cd "${dir}" && seq -f 'file-%06g.dat' 1 ${ENTRIES} | xargs touch`]);
  srv = await startServerProcess({ FTP_ROOT: root, LOG_LEVEL: 'warn', PASV_MAX_PER_IP: '10' }, { nodeArgs: [...IMAGE_NODE_ARGS, K8S_HEAP_LIMIT] });
}, 120_000);

afterAll(async () => {
  await srv?.stop();
  await rm(root, { recursive: true, force: true });
});

/** Counts the lines of a data connection as they arrive (the probe shares this process: no big strings here). */
function countLines(socket: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let lines = 0;
    socket.on('data', (chunk: Buffer) => {
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
    });
    socket.once('end', () => resolve(lines));
    socket.once('error', reject);
  });
}

/** One listing over a protected passive connection; resolves with its line count. */
async function listing(verb: 'LIST' | 'MLSD'): Promise<number> {
  const c = await loggedIn(srv.port);
  try {
    const data = await c.openPassive({ tls: true });
    const received = countLines(data);
    expect((await c.send(`${verb} huge`)).code).toBe(150);
    const lines = await received;
    expect((await c.read(60_000)).code).toBe(226);
    return lines;
  } finally {
    c.close();
  }
}

describe('huge directory listings', () => {
  it(`${PARALLEL} parallel LIST/MLSD of ${ENTRIES} entries: every entry, bounded memory, others keep being served`, async () => {
    const probe = await noopProbe(() => loggedIn(srv.port));
    const rss = sampleRss(srv.pid);
    const started = performance.now();
    const counts = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => listing(i % 2 === 0 ? 'LIST' : 'MLSD')));
    const seconds = (performance.now() - started) / 1000;
    const memory = rss.stop();
    const { latencies, unanswered } = await probe.stop();
    report('huge listings', {
      parallel: PARALLEL,
      entries: ENTRIES,
      seconds,
      rssBeforeMiB: memory.before / MiB,
      rssGrowthMiB: memory.growth / MiB,
      noopP99Ms: quantile(latencies, 0.99),
      noopMaxMs: Math.max(...latencies),
    });
    expect(counts).toEqual(Array(PARALLEL).fill(ENTRIES));
    expect(unanswered).toBe(0);
    expect(memory.growth).toBeLessThan(64 * MiB);
  }, 180_000);
});
