/* src/events/spool.ts: append-only segments, torn tails, resume offsets, the size bound. */
import { appendFileSync, closeSync, fdatasyncSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolOptions } from '../../../src/events/spool.js';

let dir: string;
let open: Spool[];
let dropped: Array<{ records: number; reason: string }>;

function spool(o: Partial<SpoolOptions> = {}): Spool {
  const s = new Spool({
    dir,
    maxBytes: 1024 * 1024,
    syncIntervalMs: 50,
    syncEvery: 256,
    onDropped: (records, reason) => dropped.push({ records, reason }),
    onSyncError: (err) => {
      throw err;
    },
    ...o,
  });
  open.push(s);
  return s;
}

const record = (n: number, pad = 0) => JSON.stringify({ n, pad: 'x'.repeat(pad) });
const numbers = (s: Spool, max = 100_000) => s.peek(max).map((r) => (JSON.parse(r.line) as { n: number }).n);

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'spool-'));
  open = [];
  dropped = [];
});
afterEach(() => {
  for (const s of open) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Spool', () => {
  it('hands records back in order and resumes after the acknowledged one when reopened', () => {
    const s = spool();
    for (let n = 0; n < 10; n++) s.append(record(n));
    const first = s.peek(4);
    expect(first.map((r) => JSON.parse(r.line).n)).toEqual([0, 1, 2, 3]);
    s.ack(first.at(-1)!.next);
    expect(numbers(s)).toEqual([4, 5, 6, 7, 8, 9]);
    s.close();
    // A kill -9 after ack: the next process starts where delivery stood.
    expect(numbers(spool())).toEqual([4, 5, 6, 7, 8, 9]);
  });

  it('makes an append visible to another reader at once, before any sync (a kill -9 loses nothing)', () => {
    const writer = spool({ syncIntervalMs: 60_000, syncEvery: 1_000_000 });
    writer.append(record(1));
    expect(numbers(spool())).toEqual([1]);
  });

  it('cuts a record torn by a crash mid-write and appends cleanly after it', () => {
    const s = spool();
    s.append(record(1));
    s.close();
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.ndjson'));
    appendFileSync(path.join(dir, segment!), '{"n":2,"pad":"xx');
    const again = spool();
    expect(numbers(again)).toEqual([1]);
    again.append(record(3));
    expect(numbers(again)).toEqual([1, 3]);
  });

  it('rotates segments and deletes those fully delivered', () => {
    const s = spool({ maxBytes: 200_000 }); // segments of 50 kB
    for (let n = 0; n < 100; n++) s.append(record(n, 1000));
    const segments = () => readdirSync(dir).filter((f) => f.endsWith('.ndjson')).length;
    expect(segments()).toBeGreaterThan(1);
    expect(dropped).toEqual([]);
    expect(numbers(s)).toHaveLength(100);
    const all = s.peek(1000);
    s.ack(all.at(-1)!.next);
    expect(segments()).toBe(1);
    expect(s.peek(10)).toEqual([]);
  });

  it('when full, drops the oldest records with a report, keeps the newest, and stays within its bound', () => {
    const s = spool({ maxBytes: 65_536 });
    for (let n = 0; n < 1000; n++) s.append(record(n, 500));
    expect(s.bytes).toBeLessThanOrEqual(65_536);
    const kept = numbers(s);
    const lost = dropped.reduce((sum, d) => sum + d.records, 0);
    expect(dropped.every((d) => d.reason === 'spool_full')).toBe(true);
    expect(lost + kept.length).toBe(1000);
    expect(kept.at(-1)).toBe(999);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 1000 - kept.length + i));
  });

  it('refuses a record larger than a segment without throwing', () => {
    const s = spool({ maxBytes: 65_536 });
    s.append(record(1, 20_000));
    expect(dropped).toEqual([{ records: 1, reason: 'spool_error' }]);
    s.append(record(2));
    expect(numbers(s)).toEqual([2]);
  });

  it('wakes a waiting reader on append', async () => {
    const s = spool();
    const woken = s.waitForAppend();
    s.append(record(7));
    await woken;
    expect(numbers(s)).toEqual([7]);
  });

  it('benchmark: appends with batched fdatasync against write + fdatasync per record', async () => {
    const count = 2000;
    const rate = (ms: number) => `${count} records in ${ms.toFixed(0)} ms (${((count / ms) * 1000).toFixed(0)}/s)`;
    const s = spool();
    let started = performance.now();
    for (let n = 0; n < count; n++) {
      s.append(record(n, 300));
      // Let syncs run, as between the replies of real sessions.
      if (n % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    s.close();
    console.log(`spool append, fdatasync batched (50 ms / 256 records): ${rate(performance.now() - started)}`);
    const fd = openSync(path.join(dir, 'baseline'), 'a');
    started = performance.now();
    for (let n = 0; n < count; n++) {
      writeSync(fd, `${record(n, 300)}\n`);
      fdatasyncSync(fd);
    }
    closeSync(fd);
    console.log(`baseline, write + fdatasync per record: ${rate(performance.now() - started)}`);
  });
});
