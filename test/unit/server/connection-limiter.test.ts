/* src/server/connection-limiter.ts: MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConnectionLimiter } from '../../../src/server/connection-limiter.js';

describe('ConnectionLimiter', () => {
  it('admits up to the total, then refuses with a reason', () => {
    const limiter = new ConnectionLimiter(2, 10);
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    expect(limiter.admit('10.0.0.2')).toBeUndefined();
    expect(limiter.admit('10.0.0.3')).toBe('Too many connections');
  });

  it('admits up to the per-address limit; other addresses still get in', () => {
    const limiter = new ConnectionLimiter(10, 2);
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    expect(limiter.admit('10.0.0.1')).toBe('Too many connections from your address');
    expect(limiter.admit('10.0.0.2')).toBeUndefined();
  });

  it('a release frees the slot for the same address and for the total', () => {
    const limiter = new ConnectionLimiter(1, 1);
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    expect(limiter.admit('10.0.0.2')).toBe('Too many connections');
    limiter.release('10.0.0.1');
    expect(limiter.admit('10.0.0.2')).toBeUndefined();
    expect(limiter.admit('10.0.0.1')).toBe('Too many connections');
  });

  it('a refused connection takes no slot', () => {
    const limiter = new ConnectionLimiter(3, 1);
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    for (let i = 0; i < 5; i++) expect(limiter.admit('10.0.0.1')).toBeDefined();
    expect(limiter.admit('10.0.0.2')).toBeUndefined();
    expect(limiter.admit('10.0.0.3')).toBeUndefined();
  });

  it.each<[string, (l: ConnectionLimiter) => void]>([
    ['an address never admitted', (l) => l.release('10.9.9.9')],
    ['an address more often than admitted', (l) => (l.release('10.0.0.1'), l.release('10.0.0.1'))],
  ])('releasing %s frees no extra slot', (_label, act) => {
    const limiter = new ConnectionLimiter(2, 2);
    expect(limiter.admit('10.0.0.1')).toBeUndefined();
    expect(limiter.admit('10.0.0.2')).toBeUndefined();
    act(limiter);
    // At most one slot (the one really released, if any) is free now.
    const admitted = ['10.0.0.5', '10.0.0.6', '10.0.0.7'].filter((ip) => limiter.admit(ip) === undefined);
    expect(admitted.length).toBeLessThanOrEqual(1);
  });

  it('against a model: never more than the limits, and every admitted connection counted', () => {
    const ip = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '::1');
    const op = fc.record({ admit: fc.boolean(), ip });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 80 }), (maxTotal, maxPerIp, ops) => {
        const limiter = new ConnectionLimiter(maxTotal, maxPerIp);
        const open = new Map<string, number>();
        const total = () => [...open.values()].reduce((a, b) => a + b, 0);
        for (const o of ops) {
          const current = open.get(o.ip) ?? 0;
          if (o.admit) {
            const refusal = limiter.admit(o.ip);
            const expectedOk = total() < maxTotal && current < maxPerIp;
            expect(refusal === undefined).toBe(expectedOk);
            if (expectedOk) open.set(o.ip, current + 1);
          } else if (current > 0) {
            // The server releases only what it admitted.
            limiter.release(o.ip);
            open.set(o.ip, current - 1);
          }
        }
      }),
      { seed: 1579, numRuns: 300 },
    );
  });
});
