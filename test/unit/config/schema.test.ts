import os from 'node:os';
import { EVENT_TYPES } from '../../../src/events/event.js';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { envSchema, INTERMEDIATE_TLS12_CIPHERS, VARIABLE_NAMES } from '../../../src/config/schema.js';

const parse = (env: Record<string, string | undefined>): Config => envSchema.parse(env);

describe('envSchema', () => {
  it('applies every default to an empty environment', () => {
    expect(parse({})).toStrictEqual({
      ftps: {
        implicit: false,
        port: 21,
        bindAddress: undefined,
        requireTls: true,
        requireProtP: true,
        banner: 'ftps-gateway ready',
      },
      data: {
        implicitTls: false,
        tlsCertPath: undefined,
        tlsKeyPath: undefined,
        pasvAddress: undefined,
        pasvMinPort: 30000,
        pasvMaxPort: 30009,
        pasvPromiscuous: false,
        pasvMaxPerIp: 2,
        pasvPortSharing: false,
        pasvAdvertisedMinPort: 30000,
        activeMode: true,
        timeoutSeconds: 60,
      },
      tls: {
        certPath: '/certs/tls.crt',
        keyPath: '/certs/tls.key',
        pathsExplicit: false,
        keyPassphrase: undefined,
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.3',
        ciphers: INTERMEDIATE_TLS12_CIPHERS,
        requireSessionReuse: true,
        sessionReuseExemptCidrs: [],
        clientCaPath: undefined,
        clientAuth: 'none',
        handshakeTimeoutSeconds: 10,
        strictEof: true,
      },
      storage: { root: '/data', followSymlinks: true, fsync: true, maxUploadBytes: undefined, stateDir: '/var/lib/ftps-gateway', s3: undefined },
      auth: {
        user: undefined,
        password: undefined,
        loginMaxAttempts: 3,
        usersFile: undefined,
        anonymous: false,
        anonymousRoot: '/data/pub',
        banThreshold: 10,
        banWindowSeconds: 600,
        banSeconds: 900,
        hook: undefined,
        ldap: undefined,
      },
      events: { webhook: undefined, types: [...EVENT_TYPES], replica: os.hostname(), uploadSha256: false },
      limits: { maxConnections: 256, maxConnectionsPerIp: 32, idleTimeoutSeconds: 300, shutdownGraceSeconds: 30 },
      operations: {
        httpPort: 8080,
        httpBindAddress: undefined,
        proxyProtocol: 'off',
        proxyTrustedCidrs: [],
        pasvAddressOverrides: [],
        pasvAddressResolveSeconds: 60,
      },
      log: { level: 'info', format: 'json' },
    });
  });

  it('treats empty values as unset', () => {
    expect(parse(Object.fromEntries(VARIABLE_NAMES.map((name) => [name, ''])))).toStrictEqual(parse({}));
  });

  const setValues: [Record<string, string>, (c: Config) => unknown, unknown][] = [
    [{ FTPS_IMPLICIT_SSL: 'true' }, (c) => [c.ftps.implicit, c.ftps.port], [true, 990]],
    [{ FTPS_PORT: '2121' }, (c) => c.ftps.port, 2121],
    [{ FTPS_BIND_ADDRESS: '::1' }, (c) => c.ftps.bindAddress, '::1'],
    [{ FTPS_REQUIRE_TLS: 'no' }, (c) => c.ftps.requireTls, false],
    [{ FTPS_REQUIRE_PROT_P: '0' }, (c) => c.ftps.requireProtP, false],
    [{ FTPS_BANNER: 'Welcome, friend' }, (c) => c.ftps.banner, 'Welcome, friend'],
    [{ DATA_IMPLICIT_SSL: 'YES' }, (c) => c.data.implicitTls, true],
    [
      { DATA_TLS_CERT_PATH: '/d/cert.pem', DATA_TLS_KEY_PATH: '/d/key.pem' },
      (c) => [c.data.tlsCertPath, c.data.tlsKeyPath],
      ['/d/cert.pem', '/d/key.pem'],
    ],
    [{ PASV_ADDRESS: 'ftp.example.com' }, (c) => c.data.pasvAddress, 'ftp.example.com'],
    [{ PASV_MIN_PORT: '40000', PASV_MAX_PORT: '40100' }, (c) => [c.data.pasvMinPort, c.data.pasvMaxPort], [40000, 40100]],
    [{ PASV_PROMISCUOUS: 'True' }, (c) => c.data.pasvPromiscuous, true],
    [{ PASV_MAX_PER_IP: '5' }, (c) => c.data.pasvMaxPerIp, 5],
    [{ PASV_PORT_SHARING: 'true' }, (c) => c.data.pasvPortSharing, true],
    [{ PASV_ADVERTISED_MIN_PORT: '31000' }, (c) => [c.data.pasvMinPort, c.data.pasvAdvertisedMinPort], [30000, 31000]],
    [{ ACTIVE_MODE: 'false' }, (c) => c.data.activeMode, false],
    [{ DATA_TIMEOUT_SECONDS: '15' }, (c) => c.data.timeoutSeconds, 15],
    [{ TLS_CERT_PATH: '/etc/ftps/cert.pem' }, (c) => [c.tls.certPath, c.tls.keyPath, c.tls.pathsExplicit], ['/etc/ftps/cert.pem', '/certs/tls.key', true]],
    [{ TLS_KEY_PATH: '/etc/ftps/key.pem' }, (c) => [c.tls.certPath, c.tls.keyPath, c.tls.pathsExplicit], ['/certs/tls.crt', '/etc/ftps/key.pem', true]],
    [{ TLS_KEY_PASSPHRASE: 's3cret' }, (c) => c.tls.keyPassphrase, 's3cret'],
    [{ TLS_MIN_VERSION: 'TLSv1.3' }, (c) => c.tls.minVersion, 'TLSv1.3'],
    [{ TLS_MAX_VERSION: 'TLSv1.2' }, (c) => c.tls.maxVersion, 'TLSv1.2'],
    [{ TLS_SESSION_REUSE_EXEMPT_CIDRS: '10.0.0.0/8, 192.0.2.7' }, (c) => c.tls.sessionReuseExemptCidrs, ['10.0.0.0/8', '192.0.2.7']],
    [{ TLS_CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256' }, (c) => c.tls.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256'],
    [{ TLS_REQUIRE_SESSION_REUSE: 'NO' }, (c) => c.tls.requireSessionReuse, false],
    [{ FTP_ROOT: '/srv/ftp' }, (c) => c.storage.root, '/srv/ftp'],
    [{ FOLLOW_SYMLINKS: 'false' }, (c) => c.storage.followSymlinks, false],
    [{ UPLOAD_FSYNC: 'no' }, (c) => c.storage.fsync, false],
    [{ STATE_DIR: '/data/state' }, (c) => c.storage.stateDir, '/data/state'],
    [{ MAX_UPLOAD_BYTES: '1048576' }, (c) => c.storage.maxUploadBytes, 1_048_576],
    [{ TLS_STRICT_EOF: 'false' }, (c) => c.tls.strictEof, false],
    [{ FTP_USER: 'alice', FTP_PASSWORD: 'hunter2' }, (c) => [c.auth.user, c.auth.password], ['alice', 'hunter2']],
    [{ LOGIN_MAX_ATTEMPTS: '5' }, (c) => c.auth.loginMaxAttempts, 5],
    [{ FTP_USERS_FILE: '/run/secrets/users' }, (c) => c.auth.usersFile, '/run/secrets/users'],
    [{ FTP_ANONYMOUS: 'yes' }, (c) => c.auth.anonymous, true],
    [{ FTP_ANONYMOUS_ROOT: '/srv/pub' }, (c) => c.auth.anonymousRoot, '/srv/pub'],
    [{ LOGIN_BAN_THRESHOLD: '4' }, (c) => c.auth.banThreshold, 4],
    [{ LOGIN_BAN_WINDOW_SECONDS: '60' }, (c) => c.auth.banWindowSeconds, 60],
    [{ LOGIN_BAN_SECONDS: '120' }, (c) => c.auth.banSeconds, 120],
    [{ TLS_CLIENT_CA_PATH: '/certs/ca.crt', TLS_CLIENT_AUTH: 'Required' }, (c) => [c.tls.clientCaPath, c.tls.clientAuth], ['/certs/ca.crt', 'required']],
    [{ TLS_HANDSHAKE_TIMEOUT_SECONDS: '3' }, (c) => c.tls.handshakeTimeoutSeconds, 3],
    [{ MAX_CONNECTIONS: '1000' }, (c) => c.limits.maxConnections, 1000],
    [{ MAX_CONNECTIONS_PER_IP: '4' }, (c) => c.limits.maxConnectionsPerIp, 4],
    [{ IDLE_TIMEOUT_SECONDS: '30' }, (c) => c.limits.idleTimeoutSeconds, 30],
    [{ SHUTDOWN_GRACE_SECONDS: '0' }, (c) => c.limits.shutdownGraceSeconds, 0],
    [{ HTTP_PORT: '9090' }, (c) => c.operations.httpPort, 9090],
    [{ HTTP_BIND_ADDRESS: '127.0.0.1' }, (c) => c.operations.httpBindAddress, '127.0.0.1'],
    [
      { PROXY_PROTOCOL: 'V2', PROXY_TRUSTED_CIDRS: '10.0.0.0/8, fd00::1' },
      (c) => [c.operations.proxyProtocol, c.operations.proxyTrustedCidrs],
      ['v2', ['10.0.0.0/8', 'fd00::1']],
    ],
    [
      { PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5; 192.168.0.0/16 = 192.168.1.2;' },
      (c) => c.operations.pasvAddressOverrides,
      [{ cidr: '10.0.0.0/8', address: '10.0.0.5' }, { cidr: '192.168.0.0/16', address: '192.168.1.2' }],
    ],
    [{ PASV_ADDRESS_RESOLVE_SECONDS: '300' }, (c) => c.operations.pasvAddressResolveSeconds, 300],
    [
      { AUTH_HOOK_URL: 'https://auth.example.com/ftp', AUTH_HOOK_SECRET: 'bearer', AUTH_HOOK_TIMEOUT_SECONDS: '2', AUTH_HOOK_CACHE_SECONDS: '0' },
      (c) => c.auth.hook,
      { url: 'https://auth.example.com/ftp', secret: 'bearer', timeoutSeconds: 2, cacheSeconds: 0 },
    ],
    [
      {
        LDAP_URL: 'ldap://ldap.example.org', LDAP_STARTTLS: 'false', LDAP_CA_PATH: '/certs/ldap-ca.crt', LDAP_TIMEOUT_SECONDS: '3',
        LDAP_BIND_DN: 'cn=svc,dc=example,dc=org', LDAP_BIND_PASSWORD: 'svc-pass', LDAP_USER_BASE: 'ou=people,dc=example,dc=org',
        LDAP_USER_FILTER: '(&(objectClass=person)(mail={user}))', LDAP_HOME_ATTRIBUTE: 'homeDirectory', LDAP_HOME_TEMPLATE: 'ldap/{user}',
        LDAP_RW_GROUP: 'cn=rw,dc=example,dc=org', LDAP_RO_GROUP: 'cn=ro,dc=example,dc=org',
      },
      (c) => c.auth.ldap,
      {
        url: 'ldap://ldap.example.org', startTls: false, caPath: '/certs/ldap-ca.crt', timeoutSeconds: 3,
        bindDn: 'cn=svc,dc=example,dc=org', bindPassword: 'svc-pass', userBase: 'ou=people,dc=example,dc=org',
        userFilter: '(&(objectClass=person)(mail={user}))', homeAttribute: 'homeDirectory', homeTemplate: 'ldap/{user}',
        rwGroup: 'cn=rw,dc=example,dc=org', roGroup: 'cn=ro,dc=example,dc=org',
      },
    ],
    [
      { LDAP_URL: 'ldaps://ldap.example.org', LDAP_USER_BASE: 'dc=example,dc=org', LDAP_RO_GROUP: 'cn=ro,dc=example,dc=org' },
      (c) => [c.auth.ldap?.startTls, c.auth.ldap?.userFilter, c.auth.ldap?.homeTemplate, c.auth.ldap?.rwGroup, c.auth.hook],
      [true, '(uid={user})', '{user}', undefined, undefined],
    ],
    [
      {
        EVENT_WEBHOOK_URL: 'https://hooks.example.com/ftp', EVENT_WEBHOOK_SECRET: 'hmac-key', EVENT_TIMEOUT_SECONDS: '3',
        EVENT_RETRY_MAX_AGE_SECONDS: '3600', EVENT_SPOOL_MAX_BYTES: '1048576',
      },
      (c) => c.events.webhook,
      { url: 'https://hooks.example.com/ftp', secret: 'hmac-key', timeoutSeconds: 3, retryMaxAgeSeconds: 3600, spoolMaxBytes: 1_048_576 },
    ],
    [
      { EVENT_TYPES: 'upload,upload_failed', REPLICA_NAME: 'gw-2', UPLOAD_SHA256: 'true' },
      (c) => [c.events.types, c.events.replica, c.events.uploadSha256],
      [['upload', 'upload_failed'], 'gw-2', true],
    ],
    [
      {
        STORAGE_BACKEND: 's3', S3_BUCKET: 'files', S3_PREFIX: 'ftp/in', S3_ENDPOINT: 'https://rgw.example.org:7480', S3_REGION: 'eu-west-1',
        S3_FORCE_PATH_STYLE: 'true', S3_ACCESS_KEY_ID: 'AKIAEXAMPLE', S3_SECRET_ACCESS_KEY: 'secret-key', S3_CA_PATH: '/certs/s3-ca.pem',
        S3_PART_SIZE: '16777216',
      },
      (c) => c.storage.s3,
      {
        bucket: 'files', prefix: 'ftp/in/', endpoint: 'https://rgw.example.org:7480', region: 'eu-west-1', forcePathStyle: true,
        credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret-key' }, caPath: '/certs/s3-ca.pem', partSize: 16_777_216,
      },
    ],
    [
      { STORAGE_BACKEND: 's3', S3_BUCKET: 'files' },
      (c) => c.storage.s3,
      { bucket: 'files', prefix: '', endpoint: undefined, region: 'us-east-1', forcePathStyle: false, credentials: undefined, caPath: undefined, partSize: 8_388_608 },
    ],
    [{ LOG_LEVEL: 'debug' }, (c) => c.log.level, 'debug'],
    [{ LOG_FORMAT: 'pretty' }, (c) => c.log.format, 'pretty'],
  ];

  it.each(setValues)('parses %o', (env, get, expected) => {
    expect(get(parse(env))).toStrictEqual(expected);
  });

  it('has a set-value case for every variable', () => {
    const covered = new Set(setValues.flatMap(([env]) => Object.keys(env)));
    expect([...covered].sort()).toStrictEqual([...VARIABLE_NAMES].sort());
  });

  it.each([
    ['true', true], ['TRUE', true], ['1', true], ['yes', true], ['Yes', true],
    ['false', false], ['False', false], ['0', false], ['no', false], ['NO', false],
  ])('reads the boolean %s as %s', (raw, expected) => {
    expect(parse({ ACTIVE_MODE: raw }).data.activeMode).toBe(expected);
  });

  it.each([
    [{ FTPS_PORT: '0' }, (c: Config) => c.ftps.port, 0],
    [{ FTPS_IMPLICIT_SSL: 'yes', FTPS_PORT: '2990' }, (c: Config) => c.ftps.port, 2990],
    [{ PASV_MIN_PORT: '30005', PASV_MAX_PORT: '30005' }, (c: Config) => c.data.pasvMaxPort - c.data.pasvMinPort, 0],
    [{ PASV_ADDRESS: '203.0.113.7' }, (c: Config) => c.data.pasvAddress, '203.0.113.7'],
    [{ FTPS_BIND_ADDRESS: '0.0.0.0' }, (c: Config) => c.ftps.bindAddress, '0.0.0.0'],
    [{ LOG_LEVEL: 'WARN' }, (c: Config) => c.log.level, 'warn'],
    [{ TLS_MIN_VERSION: 'tlsv1.3' }, (c: Config) => c.tls.minVersion, 'TLSv1.3'],
    [{ MAX_CONNECTIONS: '007' }, (c: Config) => c.limits.maxConnections, 7],
    [{ HTTP_PORT: '0' }, (c: Config) => c.operations.httpPort, 0],
  ])('accepts the edge case %o', (env, get, expected) => {
    expect(get(parse(env))).toStrictEqual(expected);
  });

  it('ignores variables it does not know', () => {
    expect(parse({ PATH: '/usr/bin', HOME: '/root' })).toStrictEqual(parse({}));
  });
});
