/* src/server/login-bans.ts: failed logins per address, bans and their expiry, bounded memory. */
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';
import { LoginBans, type LoginBanOptions } from '../../../src/server/login-bans.js';

let logs: Array<Record<string, unknown>>;
let bans: LoginBans;

function create(o: Partial<Omit<LoginBanOptions, 'log'>> = {}): LoginBans {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger({ log: { level: 'debug', format: 'json' } }, sink);
  bans = new LoginBans({ threshold: 3, windowSeconds: 60, banSeconds: 120, ...o, log });
  return bans;
}

/** Fake timers move performance.now() and setTimeout together: the clock the registry reads. */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  logs = [];
});
afterEach(() => {
  bans.dispose();
  vi.useRealTimers();
});

const fail = (b: LoginBans, address: string, times: number): boolean[] => Array.from({ length: times }, () => b.recordFailure(address));

describe('LoginBans', () => {
  it('bans an address at the threshold, and only that address', () => {
    const b = create();
    expect(fail(b, '10.0.0.1', 3)).toEqual([false, false, true]);
    expect(b.isBanned('10.0.0.1')).toBe(true);
    expect(b.isBanned('10.0.0.2')).toBe(false);
    expect(logs).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'address banned after repeated login failures', remote: '10.0.0.1', failures: 3 }),
    );
  });

  it('counts failures within the sliding window only', () => {
    const b = create();
    fail(b, '10.0.0.1', 2);
    vi.advanceTimersByTime(59_000);
    // Two failures 59 s ago and one now: still within 60 s.
    expect(b.recordFailure('10.0.0.1')).toBe(true);

    fail(b, '10.0.0.2', 2);
    vi.advanceTimersByTime(60_001);
    expect(fail(b, '10.0.0.2', 2)).toEqual([false, false]);
    expect(b.isBanned('10.0.0.2')).toBe(false);
  });

  it('lifts the ban after banSeconds and logs it; the count starts again from zero', () => {
    const b = create();
    fail(b, '10.0.0.1', 3);
    vi.advanceTimersByTime(119_999);
    expect(b.isBanned('10.0.0.1')).toBe(true);
    expect(logs.some((l) => l.msg === 'address ban expired')).toBe(false);
    vi.advanceTimersByTime(1);
    expect(b.isBanned('10.0.0.1')).toBe(false);
    expect(logs).toContainEqual(expect.objectContaining({ level: 30, msg: 'address ban expired', remote: '10.0.0.1' }));
    expect(b.trackedAddresses).toBe(0);
    expect(fail(b, '10.0.0.1', 2)).toEqual([false, false]);
  });

  it('failures while banned neither extend the ban nor count towards the next one', () => {
    const b = create();
    fail(b, '10.0.0.1', 3);
    vi.advanceTimersByTime(100_000);
    expect(fail(b, '10.0.0.1', 5)).toEqual([true, true, true, true, true]);
    vi.advanceTimersByTime(20_000);
    expect(b.isBanned('10.0.0.1')).toBe(false);
    expect(b.recordFailure('10.0.0.1')).toBe(false);
  });

  it('lifts each of several bans at its own time with one timer', () => {
    const b = create();
    fail(b, '10.0.0.1', 3);
    vi.advanceTimersByTime(30_000);
    fail(b, '10.0.0.2', 3);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(90_000);
    expect([b.isBanned('10.0.0.1'), b.isBanned('10.0.0.2')]).toEqual([false, true]);
    vi.advanceTimersByTime(30_000);
    expect(b.isBanned('10.0.0.2')).toBe(false);
    expect(logs.filter((l) => l.msg === 'address ban expired').map((l) => l.remote)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a spray of addresses stays within the cap; an address that keeps failing is not forgotten', () => {
    const b = create({ threshold: 100, maxAddresses: 1000 });
    const attacker: boolean[] = [];
    let most = 0;
    for (let i = 1; i <= 50_000; i++) {
      b.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      // Every 500 sprayed addresses, so that it stays among the most recent 1000: its 100th failure bans it.
      if (i % 500 === 0) attacker.push(b.recordFailure('192.0.2.1'));
      most = Math.max(most, b.trackedAddresses);
    }
    expect(most).toBe(1000);
    expect(attacker.indexOf(true)).toBe(99);
    expect(logs.some((l) => l.msg === 'too many addresses with failed logins: oldest forgotten')).toBe(true);
  });

  it('forgets addresses whose failures left the window before forgetting any other', () => {
    const b = create({ maxAddresses: 10 });
    for (let i = 0; i < 10; i++) b.recordFailure(`10.0.0.${i}`);
    vi.advanceTimersByTime(61_000);
    b.recordFailure('10.0.1.1');
    expect(b.trackedAddresses).toBe(1);
    expect(logs.some((l) => l.msg === 'too many addresses with failed logins: oldest forgotten')).toBe(false);
  });

  it('caps the bans: beyond it the oldest is lifted early, and says so', () => {
    const b = create({ threshold: 1, maxBans: 3 });
    for (const a of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) b.recordFailure(a);
    expect(b.bannedAddresses).toBe(3);
    expect(b.isBanned('10.0.0.1')).toBe(false);
    expect(b.isBanned('10.0.0.4')).toBe(true);
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'ban list full: oldest ban lifted early', remote: '10.0.0.1' }));
  });

  it('dispose() stops the timer', () => {
    const b = create();
    fail(b, '10.0.0.1', 3);
    expect(vi.getTimerCount()).toBe(1);
    b.dispose();
    expect(vi.getTimerCount()).toBe(0);
  });
});
