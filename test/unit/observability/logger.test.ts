import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';

function capture(format: 'json' | 'pretty') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger({ log: { level: 'info', format } }, sink), lines };
}

describe('createLogger', () => {
  it('pretty: one readable line per entry, UTC time to the millisecond, secrets redacted', () => {
    const { log, lines } = capture('pretty');
    log.warn({ user: 'alice', password: 'hunter2' }, 'login failed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z\] WARN: login failed \{"user":"alice","password":"\[redacted\]"\}$/);
    const shown = Date.parse(lines[0]!.slice(1, 24).replace(' ', 'T'));
    expect(Math.abs(shown - Date.now())).toBeLessThan(60_000);
  });

  it('json: one object per line with an ISO time', () => {
    const { log, lines } = capture('json');
    log.info({ password: 'hunter2' }, 'hello');
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 30, msg: 'hello', password: '[redacted]', service: 'ftps-gateway' });
    expect(new Date(String(entry.time)).toISOString()).toBe(entry.time);
  });
});
