/* src/events/event.ts: ids, the envelope, the signature receivers check. */
import { describe, expect, it } from 'vitest';
import { EVENT_SCHEMA, makeEvent, signatureHeader, uuidv7, verifySignature } from '../../../src/events/event.js';
import { envSchema } from '../../../src/config/schema.js';

describe('events', () => {
  it('ids are UUIDv7: unique, version 7, ordered by time', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 20)) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
  });

  it('an event carries the schema, id, time and replica around the fields given', () => {
    const e = makeEvent({ type: 'upload', path: '/a.txt', bytes: 3 }, 'gw-1', Date.UTC(2026, 0, 2, 3, 4, 5, 6));
    expect(e).toMatchObject({ schema: EVENT_SCHEMA, time: '2026-01-02T03:04:05.006Z', replica: 'gw-1', type: 'upload', path: '/a.txt', bytes: 3 });
  });

  describe('signature', () => {
    const body = '{"schema":"ftps-gateway.event/1","id":"x"}';
    const now = 1_800_000_000;
    it('verifies with the right secret and a fresh timestamp', () => {
      expect(verifySignature('s3cret', body, signatureHeader('s3cret', body, now), now + 10)).toBe(true);
    });
    it.each([
      ['another secret', signatureHeader('other', body, now), body, now],
      ['a changed body', signatureHeader('s3cret', body, now), body.replace('x', 'y'), now],
      ['an old timestamp (replay)', signatureHeader('s3cret', body, now), body, now + 301],
      ['a timestamp swapped in', signatureHeader('s3cret', body, now).replace(`t=${now}`, `t=${now + 1}`), body, now],
      ['a malformed header', 'v1=abc', body, now],
    ])('refuses %s', (_what, header, signedBody, verifyAt) => {
      expect(verifySignature('s3cret', signedBody, header, verifyAt)).toBe(false);
    });
  });

  describe('configuration', () => {
    const base = { FTP_ROOT: '/tmp/x' };
    it('EVENT_TYPES defaults to every type and takes a comma list, case-insensitive', () => {
      expect(envSchema.parse(base).events.types).toHaveLength(10);
      expect(envSchema.parse({ ...base, EVENT_TYPES: 'upload, UPLOAD_FAILED,upload' }).events.types).toEqual(['upload', 'upload_failed']);
    });
    it('refuses an unknown type, and a URL without its secret', () => {
      expect(envSchema.safeParse({ ...base, EVENT_TYPES: 'upload,uplod' }).success).toBe(false);
      const noSecret = envSchema.safeParse({ ...base, EVENT_WEBHOOK_URL: 'https://hooks.example/ftp' });
      expect(noSecret.error?.issues[0]).toMatchObject({ path: ['EVENT_WEBHOOK_SECRET'] });
      expect(envSchema.safeParse({ ...base, EVENT_WEBHOOK_URL: 'ftp://x' }).success).toBe(false);
    });
  });
});
