import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/config.js';
import { loadConfig } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'ftps-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const noDotenv = { dotenvPath: join(dir, 'absent.env') };
const load = (env: Record<string, string | undefined>) => loadConfig(env, noDotenv);

function problemsOf(env: Record<string, string | undefined>, opts = noDotenv): readonly string[] {
  try {
    loadConfig(env, opts);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig problems', () => {
  it.each([
    [{ FTPS_IMPLICIT_SSL: 'maybe' }, 'FTPS_IMPLICIT_SSL: expected true/false/1/0/yes/no, got "maybe"'],
    [{ ACTIVE_MODE: 'on' }, 'ACTIVE_MODE: expected true/false/1/0/yes/no, got "on"'],
    [{ MAX_CONNECTIONS: '12abc' }, 'MAX_CONNECTIONS: expected a positive whole number, got "12abc"'],
    [{ MAX_CONNECTIONS_PER_IP: '-1' }, 'MAX_CONNECTIONS_PER_IP: expected a positive whole number, got "-1"'],
    [{ LOGIN_MAX_ATTEMPTS: '0' }, 'LOGIN_MAX_ATTEMPTS: expected a positive whole number, got "0"'],
    [{ IDLE_TIMEOUT_SECONDS: '1.5' }, 'IDLE_TIMEOUT_SECONDS: expected a whole number from 1 to 2147483, got "1.5"'],
    [{ DATA_TIMEOUT_SECONDS: '2147484' }, 'DATA_TIMEOUT_SECONDS: expected a whole number from 1 to 2147483, got "2147484"'],
    [{ FTPS_PORT: '65536' }, 'FTPS_PORT: expected a whole number from 0 to 65535, got "65536"'],
    [{ FTPS_PORT: ' 21' }, 'FTPS_PORT: expected a whole number from 0 to 65535, got " 21"'],
    [{ PASV_MIN_PORT: '0' }, 'PASV_MIN_PORT: expected a whole number from 1 to 65535, got "0"'],
    [{ PASV_MAX_PORT: '70000' }, 'PASV_MAX_PORT: expected a whole number from 1 to 65535, got "70000"'],
    [{ PASV_MIN_PORT: '30010' }, 'PASV_MIN_PORT: must not be greater than PASV_MAX_PORT (30010 > 30009)'],
    [{ DATA_TLS_CERT_PATH: '/d/cert.pem' }, 'DATA_TLS_KEY_PATH: required when DATA_TLS_CERT_PATH is set'],
    [{ DATA_TLS_KEY_PATH: '/d/key.pem' }, 'DATA_TLS_CERT_PATH: required when DATA_TLS_KEY_PATH is set'],
    [{ FTP_USER: 'alice' }, 'FTP_PASSWORD: required when FTP_USER is set'],
    [{ FTP_PASSWORD: 'hunter2' }, 'FTP_USER: required when FTP_PASSWORD is set'],
    [{ STORAGE_BACKEND: 's3' }, 'S3_BUCKET: required when STORAGE_BACKEND is s3'],
    [{ STORAGE_BACKEND: 'gcs' }, 'STORAGE_BACKEND: expected one of local/s3, got "gcs"'],
    [{ S3_ACCESS_KEY_ID: 'AKIA' }, 'S3_SECRET_ACCESS_KEY: required when S3_ACCESS_KEY_ID is set'],
    [{ S3_PREFIX: '/ftp' }, 'S3_PREFIX: expected a key prefix such as ftp/ (no leading /, no . or .. components), got "/ftp"'],
    [{ S3_PREFIX: 'ftp/../x' }, 'S3_PREFIX: expected a key prefix such as ftp/ (no leading /, no . or .. components), got "ftp/../x"'],
    [{ S3_PART_SIZE: '1048576' }, 'S3_PART_SIZE: expected bytes, from 5 MiB (5242880) to 5 GiB, got "1048576"'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL: expected one of fatal/error/warn/info/debug/trace/silent, got "verbose"'],
    [{ LOG_FORMAT: 'xml' }, 'LOG_FORMAT: expected one of json/pretty, got "xml"'],
    [{ TLS_MIN_VERSION: 'TLSv1.1' }, 'TLS_MIN_VERSION: expected one of TLSv1.2/TLSv1.3, got "TLSv1.1"'],
    [{ FTP_ROOT: 'data' }, 'FTP_ROOT: expected an absolute path, got "data"'],
    [{ FTPS_BIND_ADDRESS: 'localhost' }, 'FTPS_BIND_ADDRESS: expected an IP address, got "localhost"'],
    [{ PASV_ADDRESS: '10.0.0.256' }, 'PASV_ADDRESS: expected an IP address or host name, got "10.0.0.256"'],
    [{ PASV_ADDRESS: 'ftp_host!' }, 'PASV_ADDRESS: expected an IP address or host name, got "ftp_host!"'],
    [{ HTTP_PORT: '65536' }, 'HTTP_PORT: expected a whole number from 0 to 65535, got "65536"'],
    [{ HTTP_BIND_ADDRESS: 'localhost' }, 'HTTP_BIND_ADDRESS: expected an IP address, got "localhost"'],
    [{ PROXY_PROTOCOL: 'v3' }, 'PROXY_PROTOCOL: expected one of off/v1/v2/any, got "v3"'],
    [{ PROXY_PROTOCOL: 'v2' }, 'PROXY_TRUSTED_CIDRS: required when PROXY_PROTOCOL is v2 (the load balancers\' addresses)'],
    [
      { PROXY_TRUSTED_CIDRS: '10.0.0.0/33' },
      'PROXY_TRUSTED_CIDRS: expected comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,192.0.2.7, got "10.0.0.0/33"',
    ],
    [
      { PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=fd00::5' },
      'PASV_ADDRESS_OVERRIDES: expected CIDR=IPv4-address pairs separated by ";", e.g. 10.0.0.0/8=10.0.0.5, got "10.0.0.0/8=fd00::5"',
    ],
    [{ PASV_ADDRESS_RESOLVE_SECONDS: '0' }, 'PASV_ADDRESS_RESOLVE_SECONDS: expected a whole number from 1 to 2147483, got "0"'],
    [{ FTPS_BANNER: 'hi\r\n230 Logged in' }, 'FTPS_BANNER: expected a single line (no CR or LF), got "hi\\r\\n230 Logged in"'],
    [{ AUTH_HOOK_URL: 'ftp://auth.example.com' }, 'AUTH_HOOK_URL: expected a URL starting http:// or https://, got "ftp://auth.example.com"'],
    [{ AUTH_HOOK_URL: 'auth.example.com' }, 'AUTH_HOOK_URL: expected a URL starting http:// or https://, got "auth.example.com"'],
    [{ AUTH_HOOK_CACHE_SECONDS: '3601' }, 'AUTH_HOOK_CACHE_SECONDS: expected a whole number from 0 to 3600, got "3601"'],
    [
      { LDAP_URL: 'ldap://x', LDAP_USER_BASE: 'dc=x', LDAP_RW_GROUP: 'cn=g', LDAP_USER_FILTER: 'uid={user}' },
      'LDAP_USER_FILTER: expected an LDAP filter in parentheses containing {user}, e.g. (uid={user}), got "uid={user}"',
    ],
    [{ LDAP_BIND_DN: 'cn=svc,dc=x' }, 'LDAP_BIND_PASSWORD: required when LDAP_BIND_DN is set'],
    [{ LDAP_URL: 'ldap://x', LDAP_RO_GROUP: 'cn=g' }, 'LDAP_USER_BASE: required when LDAP_URL is set'],
    [
      { LDAP_URL: 'ldaps://x', LDAP_USER_BASE: 'dc=x' },
      'LDAP_RW_GROUP: LDAP_RW_GROUP or LDAP_RO_GROUP is required when LDAP_URL is set (users in neither group are refused)',
    ],
  ])('%o is refused', (env, problem) => {
    expect(problemsOf(env)).toStrictEqual([problem]);
  });

  it('reports several problems together, cross-field rules included', () => {
    expect(
      problemsOf({
        FTPS_IMPLICIT_SSL: 'maybe',
        MAX_CONNECTIONS: 'many',
        PASV_MIN_PORT: '31000',
        PASV_MAX_PORT: '30000',
        FTP_USER: 'alice',
        FTP_ROOT: './data',
      }),
    ).toStrictEqual([
      'FTPS_IMPLICIT_SSL: expected true/false/1/0/yes/no, got "maybe"',
      'FTP_ROOT: expected an absolute path, got "./data"',
      'MAX_CONNECTIONS: expected a positive whole number, got "many"',
      'FTP_PASSWORD: required when FTP_USER is set',
      'PASV_MIN_PORT: must not be greater than PASV_MAX_PORT (31000 > 30000)',
    ]);
  });

  it('throws a ConfigError whose message is the problem lines', () => {
    expect(() => load({ LOG_FORMAT: 'xml', LOG_LEVEL: 'loud' })).toThrow(
      new ConfigError([
        'LOG_LEVEL: expected one of fatal/error/warn/info/debug/trace/silent, got "loud"',
        'LOG_FORMAT: expected one of json/pretty, got "xml"',
      ]),
    );
  });

  it('never puts a secret into a problem line', () => {
    const secret = 'correct-horse-battery';
    const problems = problemsOf({
      FTP_USER: 'alice',
      FTP_PASSWORD: secret,
      FTP_PASSWORD_FILE: file('both-password', `${secret}\n`),
      TLS_KEY_PASSPHRASE: secret,
      TLS_KEY_PASSPHRASE_FILE: file('both-passphrase', secret),
    });
    expect(problems).toStrictEqual([
      'TLS_KEY_PASSPHRASE: set either TLS_KEY_PASSPHRASE or TLS_KEY_PASSPHRASE_FILE, not both',
      'FTP_PASSWORD: set either FTP_PASSWORD or FTP_PASSWORD_FILE, not both',
    ]);
    expect(problems.join('\n')).not.toContain(secret);
    expect(problemsOf({ FTP_PASSWORD: secret }).join('\n')).not.toContain(secret);
  });
});

describe('loadConfig X_FILE', () => {
  it.each([
    ['\n', 'hunter2'],
    ['\r\n', 'hunter2'],
    ['', 'hunter2'],
    ['\n\n', 'hunter2\n'],
  ])('reads the value from the file, dropping one trailing newline (%j)', (ending, expected) => {
    const config = load({ FTP_USER: 'alice', FTP_PASSWORD_FILE: file('password', `hunter2${ending}`) });
    expect(config.auth.password).toBe(expected);
  });

  it('validates a value read from a file like any other', () => {
    expect(load({ FTPS_PORT_FILE: file('port', '2121\n') }).ftps.port).toBe(2121);
    expect(problemsOf({ FTPS_PORT_FILE: file('bad-port', 'ftp\n') })).toStrictEqual([
      'FTPS_PORT: expected a whole number from 0 to 65535, got "ftp"',
    ]);
  });

  it('refuses X together with X_FILE', () => {
    expect(problemsOf({ FTP_ROOT: '/srv', FTP_ROOT_FILE: file('root', '/data\n') })).toStrictEqual([
      'FTP_ROOT: set either FTP_ROOT or FTP_ROOT_FILE, not both',
    ]);
  });

  it('names X_FILE when the file cannot be read, without follow-on problems', () => {
    const missing = join(dir, 'no-such-file');
    expect(problemsOf({ FTP_USER: 'alice', FTP_PASSWORD_FILE: missing })).toStrictEqual([
      `FTP_PASSWORD_FILE: cannot read ${JSON.stringify(missing)} (ENOENT)`,
    ]);
    expect(problemsOf({ FTP_ROOT_FILE: dir })).toStrictEqual([`FTP_ROOT_FILE: cannot read ${JSON.stringify(dir)} (EISDIR)`]);
  });

  it('treats an empty X as unset next to X_FILE', () => {
    expect(load({ LOG_LEVEL: '', LOG_LEVEL_FILE: file('level', 'warn\n') }).log.level).toBe('warn');
  });
});

describe('loadConfig .env file', () => {
  const dotenvPath = file('test.env', 'LOG_LEVEL=debug\nFTP_ROOT=/from-file\n# a comment\nMAX_CONNECTIONS=10\nFTPS_BANNER="quoted banner"\n');

  it('reads the .env file', () => {
    const config = loadConfig({}, { dotenvPath });
    expect([config.log.level, config.storage.root, config.limits.maxConnections, config.ftps.banner]).toStrictEqual([
      'debug',
      '/from-file',
      10,
      'quoted banner',
    ]);
  });

  it('lets the real environment win, except where it is empty', () => {
    const config = loadConfig({ LOG_LEVEL: 'error', FTP_ROOT: '', MAX_CONNECTIONS: undefined }, { dotenvPath });
    expect([config.log.level, config.storage.root, config.limits.maxConnections]).toStrictEqual(['error', '/from-file', 10]);
  });

  it('reports problems found in the .env file', () => {
    expect(problemsOf({}, { dotenvPath: file('bad.env', 'ACTIVE_MODE=perhaps\n') })).toStrictEqual([
      'ACTIVE_MODE: expected true/false/1/0/yes/no, got "perhaps"',
    ]);
  });

  it.skipIf(process.getuid?.() === 0)('reports a .env file that exists but cannot be read', () => {
    const unreadable = file('unreadable.env', 'LOG_LEVEL=debug\n');
    chmodSync(unreadable, 0o000);
    expect(problemsOf({}, { dotenvPath: unreadable })).toStrictEqual([`${unreadable}: cannot read the .env file (EACCES)`]);
  });

  it('reports a .env path that is a directory', () => {
    expect(problemsOf({}, { dotenvPath: dir })).toStrictEqual([`${dir}: cannot read the .env file (EISDIR)`]);
  });
});

describe('loadConfig result', () => {
  it('is deeply frozen', () => {
    const config = load({ FTP_USER: 'alice', FTP_PASSWORD: 'hunter2' });
    expect(Object.isFrozen(config)).toBe(true);
    for (const section of Object.values(config)) expect(Object.isFrozen(section)).toBe(true);
    expect(() => {
      (config.ftps as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.ftps.port).toBe(21);
  });
});
