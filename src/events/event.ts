import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** The `schema` field of every event; a change that is not backwards compatible bumps the number. */
export const EVENT_SCHEMA = 'ftps-gateway.event/1';

export const EVENT_TYPES = [
  'upload',
  'upload_failed',
  'download',
  'delete',
  'rename',
  'mkdir',
  'rmdir',
  'login',
  'login_failed',
  'ban',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What the code that emits an event knows; the service adds id, time and replica, the session who and where. */
export interface EventFields {
  readonly type: EventType;
  readonly user?: string | undefined;
  readonly clientAddress?: string | undefined;
  readonly session?: string | undefined;
  readonly path?: string | undefined;
  readonly newPath?: string | undefined;
  readonly bytes?: number | undefined;
  readonly durationMs?: number | undefined;
  /** `ok`, or what went wrong: `aborted`, `failed`, `refused`. */
  readonly result?: string | undefined;
  readonly reason?: string | undefined;
  /** Uploads of a whole file: hex SHA-256 of the bytes stored, computed while they streamed (UPLOAD_SHA256). */
  readonly sha256?: string | undefined;
}

/** One event as it is spooled and POSTed (README "Events"); absent fields are left out. */
export interface GatewayEvent extends EventFields {
  readonly schema: typeof EVENT_SCHEMA;
  readonly id: string;
  /** ISO 8601, UTC, milliseconds. */
  readonly time: string;
  readonly replica: string;
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Unique without coordination between
 * replicas, and sortable by time, which helps receivers that keep a window of seen ids.
 */
export function uuidv7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function makeEvent(fields: EventFields, replica: string, now = Date.now()): GatewayEvent {
  return { schema: EVENT_SCHEMA, id: uuidv7(now), time: new Date(now).toISOString(), replica, ...fields };
}

/** The `X-FTPS-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * What a receiver does (and the tests): true when `header` signs `body` with `secret` and its timestamp is at
 * most `toleranceSeconds` away from `nowSeconds` (an older one may be a replay).
 */
export function verifySignature(secret: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const t = Number(match[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}
