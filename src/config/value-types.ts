import { isIP, isIPv4 } from 'node:net';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { formatRange, parseAddressRange } from '../net/address-list.js';

/**
 * How one variable's text becomes a value (`schema`, which names what it expected when it refuses) and how a
 * value is written back as text (`format`: check-config, .env.example, the README table).
 */
export interface ValueType<T> {
  readonly schema: z.ZodType<T, string>;
  readonly format: (value: T) => string;
}

/** A type whose text `parse` turns into a value, or refuses with undefined. */
function valueType<T>(expected: string, parse: (raw: string) => T | undefined, format: (value: T) => string): ValueType<T> {
  const schema = z.string().transform((raw, ctx) => {
    const value = parse(raw);
    if (value !== undefined) return value;
    ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(raw)}`, input: raw });
    return z.NEVER;
  });
  return { schema, format };
}

const asIs = (value: string): string => value;

// An explicit table: z.coerce.boolean() reads "false" as true.
const BOOLEANS = new Map([
  ['true', true], ['1', true], ['yes', true],
  ['false', false], ['0', false], ['no', false],
]);
export const bool = valueType('true/false/1/0/yes/no', (raw) => BOOLEANS.get(raw.toLowerCase()), String);

export function integer(min: number, max: number, expected = `a whole number from ${min} to ${max}`): ValueType<number> {
  return valueType(expected, (raw) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return n >= min && n <= max ? n : undefined;
  }, String);
}
export const port = integer(1, 65_535);
export const count = integer(1, Number.MAX_SAFE_INTEGER, 'a positive whole number');
// Node timers hold at most 2^31-1 ms; a longer timeout would fire at once.
export const MAX_SECONDS = Math.floor(0x7fff_ffff / 1000);
export const seconds = integer(1, MAX_SECONDS);

/** Case-insensitive (LOG_LEVEL=INFO works), resolved to the canonical spelling. */
export function oneOf<const V extends string>(values: readonly V[]): ValueType<V> {
  return valueType(`one of ${values.join('/')}`, (raw) => values.find((v) => v.toLowerCase() === raw.toLowerCase()), asIs);
}

export const ipAddress = valueType('an IP address', (raw) => (isIP(raw) ? raw : undefined), asIs);
// An all-numeric name such as 10.0.0.256 is a mistyped IP, not a host name.
export const ipOrHost = valueType('an IP address or host name', (raw) =>
  isIP(raw) || (z.regexes.hostname.test(raw) && !/^[\d.]+$/.test(raw)) ? raw : undefined, asIs);
// The banner goes into a 220 reply line; a line break would forge further replies.
export const oneLine = valueType('a single line (no CR or LF)', (raw) => (/[\r\n]/.test(raw) ? undefined : raw), asIs);
export const absolutePath = valueType('an absolute path', (raw) => (isAbsolute(raw) ? raw : undefined), asIs);
export const text: ValueType<string> = { schema: z.string(), format: asIs };

/** Comma-separated addresses/CIDRs, normalized ("10.0.0.0/8,192.0.2.7"). */
export const addressList = valueType('comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,192.0.2.7', (raw) => {
  const ranges = raw.split(',').map(parseAddressRange);
  return ranges.every((r) => r !== undefined) ? ranges.map(formatRange) : undefined;
}, (list: readonly string[]) => list.join(','));

/** `CIDR=IPv4;CIDR=IPv4`: the PASV address for clients of each network, first match wins. */
export const pasvOverrides = valueType('CIDR=IPv4-address pairs separated by ";", e.g. 10.0.0.0/8=10.0.0.5', (raw) => {
  const pairs = raw.split(';').filter((pair) => pair.trim() !== '').map((pair) => {
    const [cidr = '', address = '', extra] = pair.split('=').map((part) => part.trim());
    const range = parseAddressRange(cidr);
    return range && isIPv4(address) && extra === undefined ? { cidr: formatRange(range), address } : undefined;
  });
  return pairs.length > 0 && pairs.every((p) => p !== undefined) ? pairs : undefined;
}, (pairs: readonly { cidr: string; address: string }[]) => pairs.map((p) => `${p.cidr}=${p.address}`).join(';'));

/** A URL with one of `protocols` (e.g. ['http:', 'https:']), kept as written. */
export function urlOf(protocols: readonly string[]): ValueType<string> {
  const expected = `a URL starting ${protocols.map((p) => `${p}//`).join(' or ')}`;
  return valueType(expected, (raw) => (URL.canParse(raw) && protocols.includes(new URL(raw).protocol) ? raw : undefined), asIs);
}

/** An S3 key prefix: empty, or relative components ending in `/` (one added when missing), no `.`/`..`/empty component. */
export const s3Prefix = valueType('a key prefix such as ftp/ (no leading /, no . or .. components)', (raw) => {
  if (raw === '') return raw;
  const prefix = raw.endsWith('/') ? raw : `${raw}/`;
  const parts = prefix.slice(0, -1).split('/');
  return parts.every((p) => p !== '' && p !== '.' && p !== '..') && !/[\r\n]/.test(prefix) ? prefix : undefined;
}, asIs);

/** An LDAP search filter in parentheses with the placeholder `{user}`. */
export const userFilter = valueType('an LDAP filter in parentheses containing {user}, e.g. (uid={user})', (raw) =>
  raw.startsWith('(') && raw.endsWith(')') && raw.includes('{user}') ? raw : undefined, asIs);

/** A comma-separated subset of `values` (case-insensitive, deduplicated, in the order given); at least one. */
export function listOf<const V extends string>(values: readonly V[]): ValueType<readonly V[]> {
  return valueType(`a comma-separated list of ${values.join(',')}`, (raw): readonly V[] | undefined => {
    const picked = raw.split(',').map((item) => values.find((v) => v.toLowerCase() === item.trim().toLowerCase()));
    return picked.every((v) => v !== undefined) ? [...new Set(picked)] : undefined;
  }, (list: readonly V[]) => list.join(','));
}
