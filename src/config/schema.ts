import { isIP, isIPv4 } from 'node:net';
import path, { isAbsolute } from 'node:path';
import { z } from 'zod';
import { formatRange, parseAddressRange } from '../net/address-list.js';
import type { Config } from './config.js';

/** Drops unset entries. An empty value counts as unset, so `X=` in a compose file or .env means "use the default". */
export function withoutUnset(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
  );
}

/** A variable whose text `parse` turns into a value, or refuses with undefined. */
function variable<T>(expected: string, parse: (raw: string) => T | undefined) {
  return z.string().transform((raw, ctx) => {
    const value = parse(raw);
    if (value !== undefined) return value;
    ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(raw)}`, input: raw });
    return z.NEVER;
  });
}

// An explicit table: z.coerce.boolean() reads "false" as true.
const BOOLEANS = new Map([
  ['true', true], ['1', true], ['yes', true],
  ['false', false], ['0', false], ['no', false],
]);
const bool = variable('true/false/1/0/yes/no', (raw) => BOOLEANS.get(raw.toLowerCase()));

function integer(min: number, max: number, expected = `a whole number from ${min} to ${max}`) {
  return variable(expected, (raw) => {
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    return n >= min && n <= max ? n : undefined;
  });
}
const port = integer(1, 65_535);
const count = integer(1, Number.MAX_SAFE_INTEGER, 'a positive whole number');
// Node timers hold at most 2^31-1 ms; a longer timeout would fire at once.
const seconds = integer(1, Math.floor(0x7fff_ffff / 1000));

/** Case-insensitive (LOG_LEVEL=INFO works), resolved to the canonical spelling. */
function oneOf<const V extends string>(values: readonly V[]) {
  return variable(`one of ${values.join('/')}`, (raw) => values.find((v) => v.toLowerCase() === raw.toLowerCase()));
}

const ipAddress = variable('an IP address', (raw) => (isIP(raw) ? raw : undefined));
// An all-numeric name such as 10.0.0.256 is a mistyped IP, not a host name.
const ipOrHost = variable('an IP address or host name', (raw) =>
  isIP(raw) || (z.regexes.hostname.test(raw) && !/^[\d.]+$/.test(raw)) ? raw : undefined,
);
// The banner goes into a 220 reply line; a line break would forge further replies.
const oneLine = variable('a single line (no CR or LF)', (raw) => (/[\r\n]/.test(raw) ? undefined : raw));
const absolutePath = variable('an absolute path', (raw) => (isAbsolute(raw) ? raw : undefined));
const text = z.string();

/** Comma-separated addresses/CIDRs, normalized ("10.0.0.0/8,192.0.2.7"). */
const addressList = variable('comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,192.0.2.7', (raw) => {
  const ranges = raw.split(',').map(parseAddressRange);
  return ranges.every((r) => r !== undefined) ? ranges.map(formatRange) : undefined;
});

/** `CIDR=IPv4;CIDR=IPv4`: the PASV address for clients of each network, first match wins. */
const pasvOverrides = variable('CIDR=IPv4-address pairs separated by ";", e.g. 10.0.0.0/8=10.0.0.5', (raw) => {
  const pairs = raw.split(';').filter((pair) => pair.trim() !== '').map((pair) => {
    const [cidr = '', address = '', extra] = pair.split('=').map((part) => part.trim());
    const range = parseAddressRange(cidr);
    return range && isIPv4(address) && extra === undefined ? { cidr: formatRange(range), address } : undefined;
  });
  return pairs.length > 0 && pairs.every((p) => p !== undefined) ? pairs : undefined;
});

/**
 * TLS 1.2 suites: Mozilla's "intermediate" profile less its DHE suites, i.e. forward secrecy (ECDHE) and AEAD
 * only, no static RSA key exchange and no CBC. TLS 1.3 suites are OpenSSL's (all AEAD), whatever this says.
 */
export const INTERMEDIATE_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const variables = z.object({
  FTPS_IMPLICIT_SSL: bool.default(false),
  // 0 lets the OS pick a free port (tests); unset means 21, or 990 when implicit.
  FTPS_PORT: integer(0, 65_535).optional(),
  FTPS_BIND_ADDRESS: ipAddress.optional(),
  FTPS_REQUIRE_TLS: bool.default(true),
  FTPS_REQUIRE_PROT_P: bool.default(true),
  FTPS_BANNER: oneLine.default('ftps-gateway ready'),

  // Defaults applied in toConfig, which needs to know whether they were set.
  TLS_CERT_PATH: text.optional(),
  TLS_KEY_PATH: text.optional(),
  TLS_KEY_PASSPHRASE: text.optional(),
  TLS_MIN_VERSION: oneOf(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  TLS_MAX_VERSION: oneOf(['TLSv1.2', 'TLSv1.3']).default('TLSv1.3'),
  TLS_CIPHERS: text.default(INTERMEDIATE_TLS12_CIPHERS),
  TLS_REQUIRE_SESSION_REUSE: bool.default(true),
  TLS_SESSION_REUSE_EXEMPT_CIDRS: addressList.optional(),
  TLS_CLIENT_CA_PATH: text.optional(),
  TLS_CLIENT_AUTH: oneOf(['none', 'optional', 'required']).default('none'),
  TLS_HANDSHAKE_TIMEOUT_SECONDS: seconds.default(10),
  TLS_STRICT_EOF: bool.default(true),

  DATA_IMPLICIT_SSL: bool.default(false),
  DATA_TLS_CERT_PATH: text.optional(),
  DATA_TLS_KEY_PATH: text.optional(),
  PASV_ADDRESS: ipOrHost.optional(),
  PASV_MIN_PORT: port.default(30_000),
  PASV_MAX_PORT: port.default(30_009),
  PASV_PROMISCUOUS: bool.default(false),
  // Defaults to a quarter of the range (at least 1) in toConfig.
  PASV_MAX_PER_IP: count.optional(),
  ACTIVE_MODE: bool.default(true),
  DATA_TIMEOUT_SECONDS: seconds.default(60),

  FTP_ROOT: absolutePath.default('/data'),
  FOLLOW_SYMLINKS: bool.default(true),
  STATE_DIR: absolutePath.default('/var/lib/ftps-gateway'),
  UPLOAD_FSYNC: bool.default(true),
  // Unset: no limit.
  MAX_UPLOAD_BYTES: count.optional(),
  FTP_USER: text.optional(),
  FTP_PASSWORD: text.optional(),
  LOGIN_MAX_ATTEMPTS: count.default(3),
  FTP_USERS_FILE: text.optional(),
  FTP_ANONYMOUS: bool.default(false),
  // Defaults to FTP_ROOT/pub in toConfig: never the users' homes.
  FTP_ANONYMOUS_ROOT: absolutePath.optional(),
  LOGIN_BAN_THRESHOLD: count.default(10),
  LOGIN_BAN_WINDOW_SECONDS: seconds.default(600),
  LOGIN_BAN_SECONDS: seconds.default(900),

  MAX_CONNECTIONS: count.default(256),
  MAX_CONNECTIONS_PER_IP: count.default(32),
  IDLE_TIMEOUT_SECONDS: seconds.default(300),
  // 0: cut running transfers at once on SIGTERM.
  SHUTDOWN_GRACE_SECONDS: integer(0, Math.floor(0x7fff_ffff / 1000)).default(30),

  // 0 disables the HTTP endpoint.
  HTTP_PORT: integer(0, 65_535).default(8080),
  HTTP_BIND_ADDRESS: ipAddress.optional(),
  PROXY_PROTOCOL: oneOf(['off', 'v1', 'v2', 'any']).default('off'),
  PROXY_TRUSTED_CIDRS: addressList.optional(),
  PASV_ADDRESS_OVERRIDES: pasvOverrides.optional(),
  PASV_ADDRESS_RESOLVE_SECONDS: seconds.default(60),

  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: oneOf(['json', 'pretty']).default('json'),
});

type Variables = z.output<typeof variables>;
export type VariableName = keyof Variables;

/** Every variable the configuration reads; each may also be given as VARIABLE_FILE. */
export const VARIABLE_NAMES = Object.keys(variables.shape) as VariableName[];

/** Variables whose values must never be printed or logged. */
export const SECRET_VARIABLES: readonly VariableName[] = ['TLS_KEY_PASSPHRASE', 'FTP_PASSWORD'];

/**
 * A rule across variables. It runs whenever the variables it reads parsed, even if others failed,
 * so that one run reports every problem.
 */
function rule(reads: readonly VariableName[], check: (vars: Variables, ctx: z.RefinementCtx<Variables>) => void) {
  const names: readonly PropertyKey[] = reads;
  return z.superRefine(check, { when: (payload) => !payload.issues.some((issue) => names.includes(issue.path?.[0] ?? '')) });
}

function bothOrNeither(a: VariableName, b: VariableName) {
  return rule([a, b], (vars, ctx) => {
    for (const [set, missing] of [[a, b], [b, a]] as const) {
      if (vars[set] !== undefined && vars[missing] === undefined) {
        ctx.addIssue({ code: 'custom', path: [missing], message: `required when ${set} is set` });
      }
    }
  });
}

const clientAuthNeedsCa = rule(['TLS_CLIENT_AUTH', 'TLS_CLIENT_CA_PATH'], (vars, ctx) => {
  if (vars.TLS_CLIENT_AUTH !== 'none' && vars.TLS_CLIENT_CA_PATH === undefined) {
    ctx.addIssue({ code: 'custom', path: ['TLS_CLIENT_CA_PATH'], message: `required when TLS_CLIENT_AUTH is ${vars.TLS_CLIENT_AUTH}` });
  }
});

const pasvRange = rule(['PASV_MIN_PORT', 'PASV_MAX_PORT'], ({ PASV_MIN_PORT: min, PASV_MAX_PORT: max }, ctx) => {
  if (min > max) {
    ctx.addIssue({ code: 'custom', path: ['PASV_MIN_PORT'], message: `must not be greater than PASV_MAX_PORT (${min} > ${max})` });
  }
});

const tlsVersions = rule(['TLS_MIN_VERSION', 'TLS_MAX_VERSION'], ({ TLS_MIN_VERSION: min, TLS_MAX_VERSION: max }, ctx) => {
  if (min > max) ctx.addIssue({ code: 'custom', path: ['TLS_MIN_VERSION'], message: `must not be above TLS_MAX_VERSION (${min} > ${max})` });
});

const proxyNeedsTrust = rule(['PROXY_PROTOCOL', 'PROXY_TRUSTED_CIDRS'], (vars, ctx) => {
  if (vars.PROXY_PROTOCOL !== 'off' && vars.PROXY_TRUSTED_CIDRS === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['PROXY_TRUSTED_CIDRS'],
      message: `required when PROXY_PROTOCOL is ${vars.PROXY_PROTOCOL} (the load balancers' addresses)`,
    });
  }
});

function toConfig(v: Variables): Config {
  return {
    ftps: {
      implicit: v.FTPS_IMPLICIT_SSL,
      port: v.FTPS_PORT ?? (v.FTPS_IMPLICIT_SSL ? 990 : 21),
      bindAddress: v.FTPS_BIND_ADDRESS,
      requireTls: v.FTPS_REQUIRE_TLS,
      requireProtP: v.FTPS_REQUIRE_PROT_P,
      banner: v.FTPS_BANNER,
    },
    data: {
      implicitTls: v.DATA_IMPLICIT_SSL,
      tlsCertPath: v.DATA_TLS_CERT_PATH,
      tlsKeyPath: v.DATA_TLS_KEY_PATH,
      pasvAddress: v.PASV_ADDRESS,
      pasvMinPort: v.PASV_MIN_PORT,
      pasvMaxPort: v.PASV_MAX_PORT,
      pasvPromiscuous: v.PASV_PROMISCUOUS,
      pasvMaxPerIp: v.PASV_MAX_PER_IP ?? Math.max(1, Math.floor((v.PASV_MAX_PORT - v.PASV_MIN_PORT + 1) / 4)),
      activeMode: v.ACTIVE_MODE,
      timeoutSeconds: v.DATA_TIMEOUT_SECONDS,
    },
    tls: {
      certPath: v.TLS_CERT_PATH ?? '/certs/tls.crt',
      keyPath: v.TLS_KEY_PATH ?? '/certs/tls.key',
      pathsExplicit: v.TLS_CERT_PATH !== undefined || v.TLS_KEY_PATH !== undefined,
      keyPassphrase: v.TLS_KEY_PASSPHRASE,
      minVersion: v.TLS_MIN_VERSION,
      maxVersion: v.TLS_MAX_VERSION,
      ciphers: v.TLS_CIPHERS,
      requireSessionReuse: v.TLS_REQUIRE_SESSION_REUSE,
      sessionReuseExemptCidrs: v.TLS_SESSION_REUSE_EXEMPT_CIDRS ?? [],
      clientCaPath: v.TLS_CLIENT_CA_PATH,
      clientAuth: v.TLS_CLIENT_AUTH,
      handshakeTimeoutSeconds: v.TLS_HANDSHAKE_TIMEOUT_SECONDS,
      strictEof: v.TLS_STRICT_EOF,
    },
    storage: {
      root: v.FTP_ROOT,
      followSymlinks: v.FOLLOW_SYMLINKS,
      fsync: v.UPLOAD_FSYNC,
      maxUploadBytes: v.MAX_UPLOAD_BYTES,
      stateDir: v.STATE_DIR,
    },
    auth: {
      user: v.FTP_USER,
      password: v.FTP_PASSWORD,
      loginMaxAttempts: v.LOGIN_MAX_ATTEMPTS,
      usersFile: v.FTP_USERS_FILE,
      anonymous: v.FTP_ANONYMOUS,
      anonymousRoot: v.FTP_ANONYMOUS_ROOT ?? path.join(v.FTP_ROOT, 'pub'),
      banThreshold: v.LOGIN_BAN_THRESHOLD,
      banWindowSeconds: v.LOGIN_BAN_WINDOW_SECONDS,
      banSeconds: v.LOGIN_BAN_SECONDS,
    },
    limits: {
      maxConnections: v.MAX_CONNECTIONS,
      maxConnectionsPerIp: v.MAX_CONNECTIONS_PER_IP,
      idleTimeoutSeconds: v.IDLE_TIMEOUT_SECONDS,
      shutdownGraceSeconds: v.SHUTDOWN_GRACE_SECONDS,
    },
    operations: {
      httpPort: v.HTTP_PORT,
      httpBindAddress: v.HTTP_BIND_ADDRESS,
      proxyProtocol: v.PROXY_PROTOCOL,
      proxyTrustedCidrs: v.PROXY_TRUSTED_CIDRS ?? [],
      pasvAddressOverrides: v.PASV_ADDRESS_OVERRIDES ?? [],
      pasvAddressResolveSeconds: v.PASV_ADDRESS_RESOLVE_SECONDS,
    },
    log: { level: v.LOG_LEVEL, format: v.LOG_FORMAT },
  };
}

/**
 * Environment variables → Config. Unknown variables are ignored; issue paths name the variable.
 * X_FILE indirection and the .env file are load.ts's business: this sees plain values.
 */
export const envSchema = z.preprocess(
  withoutUnset,
  variables
    .check(
      bothOrNeither('DATA_TLS_CERT_PATH', 'DATA_TLS_KEY_PATH'),
      bothOrNeither('FTP_USER', 'FTP_PASSWORD'),
      pasvRange,
      tlsVersions,
      clientAuthNeedsCa,
      proxyNeedsTrust,
    )
    .transform(toConfig),
);
