/* src/data/port-pool.ts: the passive port range shared by all sessions. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PortPool } from '../../../src/data/port-pool.js';

describe('PortPool', () => {
  it('lends every port of the range once, in order, then none', () => {
    const pool = new PortPool(30000, 30002);
    expect([pool.acquire(), pool.acquire(), pool.acquire()]).toEqual([30000, 30001, 30002]);
    expect(pool.acquire()).toBeUndefined();
    expect({ free: pool.freeCount, used: pool.usedCount }).toEqual({ free: 0, used: 3 });
  });

  it('a range of one port', () => {
    const pool = new PortPool(40000, 40000);
    expect(pool.acquire()).toBe(40000);
    expect(pool.acquire()).toBeUndefined();
    pool.release(40000);
    expect(pool.acquire()).toBe(40000);
  });

  it('round-robin: a just-released port goes to the back of the line', () => {
    const pool = new PortPool(30000, 30002);
    expect(pool.acquire()).toBe(30000);
    pool.release(30000);
    expect([pool.acquire(), pool.acquire(), pool.acquire()]).toEqual([30001, 30002, 30000]);
  });

  it.each<[string, (pool: PortPool) => void]>([
    ['releasing a port twice', (pool) => (pool.release(30000), pool.release(30000))],
    ['releasing a port that was never lent', (pool) => pool.release(30001)],
    ['releasing a port outside the range', (pool) => pool.release(12345)],
  ])('%s changes nothing (no port is ever lent twice)', (_label, act) => {
    const pool = new PortPool(30000, 30001);
    expect(pool.acquire()).toBe(30000);
    pool.release(30000);
    const before = { free: pool.freeCount, used: pool.usedCount };
    act(pool);
    expect({ free: pool.freeCount, used: pool.usedCount }).toEqual(before);
    const lent = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(lent.filter((p) => p !== undefined).sort()).toEqual([30000, 30001]);
  });

  it('against a model: ports in use are distinct, in range, and counts always add up', () => {
    const op = fc.oneof(fc.constant({ kind: 'acquire' as const }), fc.nat(12).map((i) => ({ kind: 'release' as const, port: 50000 + i })));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(op, { maxLength: 60 }), (size, ops) => {
        const pool = new PortPool(50000, 50000 + size - 1);
        const inUse = new Set<number>();
        for (const o of ops) {
          if (o.kind === 'acquire') {
            const port = pool.acquire();
            if (inUse.size === size) expect(port).toBeUndefined();
            else {
              expect(port).toBeGreaterThanOrEqual(50000);
              expect(port).toBeLessThan(50000 + size);
              expect(inUse.has(port!)).toBe(false);
              inUse.add(port!);
            }
          } else {
            pool.release(o.port);
            inUse.delete(o.port);
          }
          expect(pool.usedCount).toBe(inUse.size);
          expect(pool.freeCount + pool.usedCount).toBe(size);
        }
      }),
      { seed: 2428, numRuns: 300 },
    );
  });
});
