import os from 'node:os';
import path from 'node:path';
import { EVENT_TYPES } from '../events/event.js';
import {
  absolutePath, addressList, bool, count, integer, ipAddress, ipOrHost, listOf, MAX_SECONDS, oneLine, oneOf, pasvOverrides, port,
  s3Prefix, seconds, text, urlOf, userFilter, type ValueType,
} from './value-types.js';

/**
 * The one definition of every environment variable: its type, default, description, and whether it is secret.
 * The zod schema, check-config's output, `--help`, the README table and .env.example are derived from it
 * (`npm run docs:config` rewrites the last two; a unit test fails while they disagree).
 *
 * - `default`: a value, or a function of the variables defined above it, applied after the cross-variable
 *   rules (so `toConfig` can still tell whether the variable was set). None: the variable may stay unset.
 * - `shown`: how the documentation shows a default that is not simply a value (Markdown); for a computed
 *   default or none, .env.example adds "unset means …".
 * - `doc`: Markdown, a sentence without its capital and final period: the README's "Meaning" cell,
 *   .env.example's comment (plain text).
 * - `documentedWith`: shares the description of the variable just above (one README row, one comment).
 * - `secret`: redacted by check-config, marked in .env.example and `--help`.
 */
interface Spec<V> {
  // A computed default names the variables it reads in its parameter's type: typed by `Values`, the
  // table's type would depend on itself.
  readonly default?: V | ((values: never) => V);
  readonly shown?: string;
  readonly doc?: string;
  readonly documentedWith?: string;
  readonly secret?: true;
}

export type Definition<V = unknown> = Spec<V> & { readonly type: ValueType<V> };

function variable<V, const S extends Spec<V>>(type: ValueType<V>, spec: S): S & { readonly type: ValueType<V> } {
  return { ...spec, type };
}

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

const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

const control = {
  FTPS_IMPLICIT_SSL: variable(bool, {
    default: false,
    doc: 'TLS from the first byte on the control port (implicit FTPS) instead of `AUTH TLS` on a plain connection',
  }),
  // 0 lets the OS pick a free port (tests).
  FTPS_PORT: variable(integer(0, 65_535), {
    default: (v: { FTPS_IMPLICIT_SSL: boolean }): number => (v.FTPS_IMPLICIT_SSL ? 990 : 21),
    shown: '`21` (`990` when implicit)',
    doc: 'control port',
  }),
  FTPS_BIND_ADDRESS: variable(ipAddress, { shown: 'all interfaces', doc: 'IP address to listen on' }),
  FTPS_REQUIRE_TLS: variable(bool, { default: true, doc: 'refuse USER/PASS before `AUTH TLS` (530)' }),
  FTPS_REQUIRE_PROT_P: variable(bool, {
    default: true,
    doc: 'refuse transfers on data connections left unprotected, without `PROT P` (521)',
  }),
  FTPS_BANNER: variable(oneLine, { default: 'ftps-gateway ready', doc: 'text of the 220 greeting; one line' }),
  // Computed (from nothing): applied after the rules, so that toConfig tells a path set explicitly, whose
  // missing file is an error, from the default, whose missing file means a self-signed pair.
  TLS_CERT_PATH: variable(text, {
    default: (): string => '/certs/tls.crt',
    doc: 'PEM certificate (chain) and private key; a self-signed pair is used when both are left unset and the files are missing',
  }),
  TLS_KEY_PATH: variable(text, { default: (): string => '/certs/tls.key', documentedWith: 'TLS_CERT_PATH' }),
  TLS_KEY_PASSPHRASE: variable(text, { secret: true, doc: 'passphrase of an encrypted private key' }),
  TLS_MIN_VERSION: variable(oneOf(TLS_VERSIONS), { default: 'TLSv1.2', doc: 'lowest TLS version accepted: `TLSv1.2` or `TLSv1.3`' }),
  TLS_MAX_VERSION: variable(oneOf(TLS_VERSIONS), {
    default: 'TLSv1.3',
    doc: 'highest TLS version offered: `TLSv1.2` or `TLSv1.3` (`TLSv1.2` for clients whose TLS 1.3 session resumption fails)',
  }),
  TLS_CIPHERS: variable(text, {
    default: INTERMEDIATE_TLS12_CIPHERS,
    shown: 'ECDHE + AEAD (Mozilla "intermediate" without DHE)',
    doc: "OpenSSL cipher list for TLS 1.2; TLS 1.3 suites are OpenSSL's",
  }),
  TLS_REQUIRE_SESSION_REUSE: variable(bool, {
    default: true,
    doc: "data TLS must resume *its own* control connection's session, which stops connection stealing (522 otherwise)",
  }),
  TLS_SESSION_REUSE_EXEMPT_CIDRS: variable(addressList, {
    doc:
      'client addresses (IPs/CIDRs, comma-separated) whose data connections need not resume their control session; ' +
      "they still need TLS, `PROT P` and the client's own address. Per user: `reuse=optional` in the users file",
  }),
  TLS_CLIENT_CA_PATH: variable(text, {
    doc: 'PEM CA certificate(s) that sign the client certificates accepted; needed when `TLS_CLIENT_AUTH` is not `none`',
  }),
  TLS_CLIENT_AUTH: variable(oneOf(['none', 'optional', 'required']), {
    default: 'none',
    doc:
      'client certificates: `none`; `optional`: a presented certificate must be signed by `TLS_CLIENT_CA_PATH`; ' +
      '`required`: no login without one (control connection)',
  }),
  TLS_HANDSHAKE_TIMEOUT_SECONDS: variable(seconds, {
    default: 10,
    doc: 'seconds a TLS handshake (control or data) may take before the connection is dropped',
  }),
  TLS_STRICT_EOF: variable(bool, {
    default: true,
    doc:
      'a protected upload is complete only when the client ended its TLS stream with close_notify; ' +
      'a bare TCP FIN or a reset gets 426 and the previous content stays',
  }),
};

const data = {
  DATA_IMPLICIT_SSL: variable(bool, {
    default: false,
    doc: 'every data connection is TLS from its first byte, without `PROT P` (DartFTP/PowerTCP)',
  }),
  DATA_TLS_CERT_PATH: variable(text, {
    shown: 'the control certificate',
    doc: 'a separate certificate and key (PEM) for data connections; set both or neither',
  }),
  DATA_TLS_KEY_PATH: variable(text, { shown: 'the control certificate', documentedWith: 'DATA_TLS_CERT_PATH' }),
  PASV_ADDRESS: variable(ipOrHost, {
    shown: "the control connection's local address",
    doc: 'IP address or host name sent in 227 (PASV) replies; a host name is resolved at start and every `PASV_ADDRESS_RESOLVE_SECONDS`',
  }),
  PASV_MIN_PORT: variable(port, {
    default: 30_000,
    doc: 'passive port range, inclusive (exhausted → 425); publish the same ports from the container',
  }),
  PASV_MAX_PORT: variable(port, { default: 30_009, documentedWith: 'PASV_MIN_PORT' }),
  PASV_PORT_SHARING: variable(bool, {
    default: false,
    doc:
      'every passive port serves all sessions: a data connection goes to the session its TLS resumption names ' +
      '(or, without one, to the only session of its address waiting there), so a few ports serve any number of sessions',
  }),
  PASV_ADVERTISED_MIN_PORT: variable(port, {
    shown: '`PASV_MIN_PORT`',
    doc:
      'the port PASV/EPSV replies give for `PASV_MIN_PORT` (the others follow in order) when a NodePort or load ' +
      'balancer maps the passive ports to other numbers',
  }),
  PASV_PROMISCUOUS: variable(bool, { default: false, doc: "accept passive data connections from other IPs than the client's" }),
  PASV_MAX_PER_IP: variable(count, {
    default: (v: { PASV_MIN_PORT: number; PASV_MAX_PORT: number }): number =>
      Math.max(1, Math.floor((v.PASV_MAX_PORT - v.PASV_MIN_PORT + 1) / 4)),
    shown: 'a quarter of the range, at least 1',
    doc: 'passive ports one client address may hold at once (425 beyond); raise it when many clients share one NAT address',
  }),
  ACTIVE_MODE: variable(bool, { default: true, doc: "allow PORT/EPRT (only to the client's own IP, never to ports < 1024)" }),
  DATA_TIMEOUT_SECONDS: variable(seconds, {
    default: 60,
    doc: 'seconds to wait for a data connection to open, and for a stalled transfer to move again (426)',
  }),
};

const storageAndUsers = {
  FTP_ROOT: variable(absolutePath, { default: '/data', doc: 'absolute directory served to clients' }),
  FOLLOW_SYMLINKS: variable(bool, {
    default: true,
    doc: "follow symlinks whose target stays inside the user's home; `false` refuses every symlink (550)",
  }),
  STATE_DIR: variable(absolutePath, {
    default: '/var/lib/ftps-gateway',
    doc: 'where the generated password hash and self-signed certificate are kept across restarts (a volume); never inside `FTP_ROOT`',
  }),
  UPLOAD_FSYNC: variable(bool, {
    default: true,
    doc: 'an upload is on stable storage (file data, then the directory entry) before its 226',
  }),
  MAX_UPLOAD_BYTES: variable(count, {
    shown: 'unlimited',
    doc: 'the largest file an upload may make, in bytes: beyond it 552, and the previous content stays',
  }),
  STORAGE_BACKEND: variable(oneOf(['local', 's3']), {
    default: 'local',
    doc: '`local`: files under `FTP_ROOT` (a volume); `s3`: objects in `S3_BUCKET`, homes as key prefixes, nothing on local disk',
  }),
  S3_BUCKET: variable(text, { doc: 'the bucket (required with `STORAGE_BACKEND=s3`)' }),
  S3_PREFIX: variable(s3Prefix, {
    default: '',
    doc: 'key prefix that stands for `FTP_ROOT` (e.g. `ftp/`); a home `FTP_ROOT/alice` is the prefix `ftp/alice/`',
  }),
  S3_ENDPOINT: variable(urlOf(['http:', 'https:']), {
    shown: 'AWS',
    doc: 'URL of any S3-compatible service (Ceph RGW, MinIO, R2, Wasabi)',
  }),
  S3_REGION: variable(oneLine, { default: 'us-east-1', doc: 'the region requests are signed for' }),
  S3_FORCE_PATH_STYLE: variable(bool, {
    default: false,
    doc: 'address the bucket as `endpoint/bucket` rather than `bucket.endpoint` (usual for RGW and MinIO)',
  }),
  S3_ACCESS_KEY_ID: variable(oneLine, {
    shown: "the SDK's chain",
    doc:
      'static keys (best as `_FILE` secrets); set both or neither: unset, the AWS SDK finds credentials itself ' +
      '(web identity in EKS, instance roles, `AWS_*` variables)',
  }),
  S3_SECRET_ACCESS_KEY: variable(oneLine, { secret: true, documentedWith: 'S3_ACCESS_KEY_ID' }),
  S3_CA_PATH: variable(absolutePath, { doc: "PEM bundle of a private CA that signed the S3 endpoint's certificate" }),
  S3_PART_SIZE: variable(integer(5 * 1024 * 1024, 5 * 1024 * 1024 * 1024, 'bytes, from 5 MiB (5242880) to 5 GiB'), {
    default: 8 * 1024 * 1024,
    shown: '8388608 (8 MiB)',
    doc: 'bytes per part of a multipart upload; an upload holds at most 5 parts in memory',
  }),
  FTP_USER: variable(text, { shown: '`ftp`', doc: 'one account with home `FTP_ROOT`; set both or neither' }),
  FTP_PASSWORD: variable(text, { shown: 'random', secret: true, documentedWith: 'FTP_USER' }),
  LOGIN_MAX_ATTEMPTS: variable(count, { default: 3, doc: 'failed logins on one connection before it is closed' }),
  FTP_USERS_FILE: variable(text, {
    doc:
      'users file (usually a mounted secret), `name:[!]password-hash:home:rw|ro[:allowed-cidrs]` per line ' +
      '(`!` disables), reloaded when it changes',
  }),
  FTP_ANONYMOUS: variable(bool, { default: false, doc: 'read-only login as `anonymous` or `ftp` with any password' }),
  // Never the users' homes.
  FTP_ANONYMOUS_ROOT: variable(absolutePath, {
    default: (v: { FTP_ROOT: string }): string => path.join(v.FTP_ROOT, 'pub'),
    shown: '`FTP_ROOT/pub`',
    doc: "the anonymous user's root; a root containing any user's home stops the start",
  }),
  LOGIN_BAN_THRESHOLD: variable(count, {
    default: 10,
    doc: 'failed logins from one IP within the window → that IP is refused with 421 at connect for the ban time',
  }),
  LOGIN_BAN_WINDOW_SECONDS: variable(seconds, { default: 600, documentedWith: 'LOGIN_BAN_THRESHOLD' }),
  LOGIN_BAN_SECONDS: variable(seconds, { default: 900, documentedWith: 'LOGIN_BAN_THRESHOLD' }),
};

const directories = {
  AUTH_HOOK_URL: variable(urlOf(['http:', 'https:']), {
    doc:
      'HTTP(S) endpoint asked about logins unknown to `FTP_USER` and the users file: POST of JSON ' +
      '`{user, password, clientAddress, protocol, clientCertificate?}`, answered 200 + JSON `{home, permissions, allowedCidrs?, sessionReuse?}`, ' +
      '401/403 (refused) or 404 (unknown: ask LDAP); anything else refuses the login',
  }),
  AUTH_HOOK_SECRET: variable(text, { secret: true, doc: 'sent to the auth hook as `Authorization: Bearer <secret>`' }),
  AUTH_HOOK_TIMEOUT_SECONDS: variable(seconds, { default: 5, doc: 'seconds the auth hook may take to answer; then the login is refused' }),
  // 0 turns the cache off.
  AUTH_HOOK_CACHE_SECONDS: variable(integer(0, 3600), {
    default: 60,
    doc: 'seconds a successful hook answer is reused for the same user, password and client address (`0`: ask every time); failures are never cached',
  }),
  LDAP_URL: variable(urlOf(['ldap:', 'ldaps:']), {
    doc: 'LDAP server asked about logins no earlier source knows: `ldaps://host` or `ldap://host` (with StartTLS, see `LDAP_STARTTLS`)',
  }),
  LDAP_STARTTLS: variable(bool, { default: true, doc: 'with `ldap://`: StartTLS before anything is sent; `false` sends passwords in clear text' }),
  LDAP_CA_PATH: variable(text, { shown: 'the system CAs', doc: "PEM CA certificate(s) that sign the LDAP server's certificate" }),
  LDAP_TIMEOUT_SECONDS: variable(seconds, { default: 5, doc: 'seconds one LDAP login (connect, TLS, search, binds) may take; then it is refused' }),
  LDAP_BIND_DN: variable(text, { shown: 'anonymous search', doc: 'service account that searches for users; set both or neither' }),
  LDAP_BIND_PASSWORD: variable(text, { secret: true, documentedWith: 'LDAP_BIND_DN' }),
  LDAP_USER_BASE: variable(text, { doc: 'search base of users, e.g. `ou=people,dc=example,dc=org`; required with `LDAP_URL`' }),
  LDAP_USER_FILTER: variable(userFilter, {
    default: '(uid={user})',
    doc: 'search filter; `{user}` is the login name, escaped (RFC 4515); exactly one entry must match',
  }),
  LDAP_HOME_ATTRIBUTE: variable(text, {
    doc: "attribute holding the user's home, relative to `FTP_ROOT` (a leading `/` is allowed, `..` is not), e.g. `homeDirectory`",
  }),
  LDAP_HOME_TEMPLATE: variable(text, {
    default: '{user}',
    doc: 'home relative to `FTP_ROOT` when `LDAP_HOME_ATTRIBUTE` is unset or absent from the entry; `{user}` is the login name',
  }),
  LDAP_RW_GROUP: variable(text, {
    doc:
      'group DN (a `memberOf` value) whose members get read-write access; `LDAP_RO_GROUP`: read-only. ' +
      'A user in neither is refused; at least one is required with `LDAP_URL`',
  }),
  LDAP_RO_GROUP: variable(text, { documentedWith: 'LDAP_RW_GROUP' }),
};

const events = {
  EVENT_WEBHOOK_URL: variable(urlOf(['http:', 'https:']), {
    doc:
      'HTTP(S) endpoint that receives events (uploads, downloads, logins, …; README "Events") as signed JSON POSTs, ' +
      'at least once, spooled in `STATE_DIR/events` first; `EVENT_WEBHOOK_SECRET` is required with it',
  }),
  EVENT_WEBHOOK_SECRET: variable(text, {
    secret: true,
    doc: 'HMAC-SHA256 key of the `X-FTPS-Signature: t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">` header',
  }),
  EVENT_TYPES: variable(listOf(EVENT_TYPES), { default: EVENT_TYPES, doc: 'the event types sent, comma-separated' }),
  EVENT_TIMEOUT_SECONDS: variable(seconds, { default: 10, doc: 'seconds one POST may take; then it is retried' }),
  EVENT_RETRY_MAX_AGE_SECONDS: variable(seconds, {
    default: 86_400,
    doc: 'an event still undelivered this long after it happened is dropped (error log, `ftps_events_dropped_total{reason="max_age"}`)',
  }),
  EVENT_SPOOL_MAX_BYTES: variable(integer(65_536, Number.MAX_SAFE_INTEGER), {
    default: 104_857_600,
    doc: 'the most the event spool may hold on disk; beyond it the oldest events are dropped (error log, `ftps_events_dropped_total{reason="spool_full"}`)',
  }),
  REPLICA_NAME: variable(text, {
    default: (): string => os.hostname(),
    shown: 'the host name',
    doc: "this gateway's name in events (`replica`)",
  }),
  // Off by the rule (on when it costs under 5% of upload throughput): measured at about 0.8 CPU s/GB,
  // 70% more server CPU, 1 GiB PROT P uploads at ~300 instead of ~400-700 MB/s (README "Events").
  UPLOAD_SHA256: variable(bool, {
    default: false,
    doc: 'compute the SHA-256 of each whole-file upload while it streams, for the `sha256` of its event (costs about 0.8 CPU seconds per GB)',
  }),
};

const limits = {
  MAX_CONNECTIONS: variable(count, { default: 256, doc: 'control connections in total (421 beyond)' }),
  MAX_CONNECTIONS_PER_IP: variable(count, { default: 32, doc: 'control connections from one client IP (421 beyond)' }),
  IDLE_TIMEOUT_SECONDS: variable(seconds, { default: 300, doc: 'seconds a control connection may stay silent before it is closed with 421' }),
  // 0: cut running transfers at once.
  SHUTDOWN_GRACE_SECONDS: variable(integer(0, MAX_SECONDS), {
    default: 30,
    doc:
      'after SIGTERM/SIGINT: idle sessions get 421 at once, running transfers may finish this long (their clients then get ' +
      '421 at their next command, or 2 s later; QUIT still gets 221)',
  }),
};

const operations = {
  // 0 disables the HTTP endpoint.
  HTTP_PORT: variable(integer(0, 65_535), {
    default: 8080,
    doc: 'HTTP endpoint: `/healthz`, `/readyz`, `/metrics` (`0` disables it)',
  }),
  HTTP_BIND_ADDRESS: variable(ipAddress, { shown: 'all interfaces', doc: 'IP address the HTTP endpoint listens on' }),
  PROXY_PROTOCOL: variable(oneOf(['off', 'v1', 'v2', 'any']), {
    default: 'off',
    doc: 'PROXY protocol header expected from load balancers on control and passive data connections: `off`, `v1`, `v2` or `any`',
  }),
  PROXY_TRUSTED_CIDRS: variable(addressList, {
    doc:
      "the load balancers' addresses (IPs/CIDRs, comma-separated; required with `PROXY_PROTOCOL`); " +
      'a header from any other peer closes the connection',
  }),
  PASV_ADDRESS_OVERRIDES: variable(pasvOverrides, {
    doc:
      'PASV address per client network, pairs `CIDR=IPv4` separated by `;` (e.g. `10.0.0.0/8=10.0.0.5`): ' +
      'clients from each network get that address in 227 replies (first match), everyone else `PASV_ADDRESS`',
  }),
  PASV_ADDRESS_RESOLVE_SECONDS: variable(seconds, {
    default: 60,
    doc: 'how often a host name in `PASV_ADDRESS` is resolved again (dynamic DNS); a failed lookup keeps the last address',
  }),
};

const logging = {
  LOG_LEVEL: variable(oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), {
    default: 'info',
    doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`',
  }),
  LOG_FORMAT: variable(oneOf(['json', 'pretty']), { default: 'json', doc: '`json`, or `pretty` for humans' }),
};

/** The sections of .env.example and `--help`, in order. */
export const GROUPS = [
  { title: 'Control connection and TLS', variables: control },
  { title: 'Data connections', variables: data },
  { title: 'Storage and users', variables: storageAndUsers },
  { title: 'Users from an HTTP hook or LDAP', variables: directories },
  { title: 'Events', variables: events },
  { title: 'Limits', variables: limits },
  { title: 'Operations', variables: operations },
  { title: 'Logging', variables: logging },
] as const;

export const VARIABLES = { ...control, ...data, ...storageAndUsers, ...directories, ...events, ...limits, ...operations, ...logging };

export type VariableName = keyof typeof VARIABLES;

type ValueOf<D> = D extends { readonly type: ValueType<infer V> } ? V : never;

/** The variables after parsing and every default: a variable without a default may be undefined. */
export type Values = {
  readonly [K in VariableName]: (typeof VARIABLES)[K] extends { readonly default: unknown }
    ? ValueOf<(typeof VARIABLES)[K]>
    : ValueOf<(typeof VARIABLES)[K]> | undefined;
};

/** Every variable the configuration reads, in definition order; each may also be given as VARIABLE_FILE. */
export const VARIABLE_NAMES = Object.keys(VARIABLES) as VariableName[];

/** Variables whose values must never be printed or logged. */
export const SECRET_VARIABLES: readonly VariableName[] = VARIABLE_NAMES.filter((name) => definition(name).secret === true);

/** A variable's definition, with its value type erased (for code that treats every variable alike). */
export function definition(name: VariableName): Definition {
  return VARIABLES[name] as Definition;
}
