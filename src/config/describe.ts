import type { Config } from './config.js';
import { SECRET_VARIABLES, type VariableName } from './schema.js';

const SECRETS = new Set<string>(SECRET_VARIABLES);

/** The resolved configuration as `VARIABLE=value` lines (for check-config); unset is empty, secrets are redacted. */
export function describeConfig(config: Config): string {
  const { ftps, data, tls, storage, auth, limits, operations, log } = config;
  // Typed by variable name, so the compiler flags a variable missing here.
  const values: Record<VariableName, string | number | boolean | undefined> = {
    FTPS_IMPLICIT_SSL: ftps.implicit,
    FTPS_PORT: ftps.port,
    FTPS_BIND_ADDRESS: ftps.bindAddress,
    FTPS_REQUIRE_TLS: ftps.requireTls,
    FTPS_REQUIRE_PROT_P: ftps.requireProtP,
    FTPS_BANNER: ftps.banner,
    TLS_CERT_PATH: tls.certPath,
    TLS_KEY_PATH: tls.keyPath,
    TLS_KEY_PASSPHRASE: tls.keyPassphrase,
    TLS_MIN_VERSION: tls.minVersion,
    TLS_MAX_VERSION: tls.maxVersion,
    TLS_CIPHERS: tls.ciphers,
    TLS_REQUIRE_SESSION_REUSE: tls.requireSessionReuse,
    TLS_SESSION_REUSE_EXEMPT_CIDRS: tls.sessionReuseExemptCidrs.join(',') || undefined,
    TLS_CLIENT_CA_PATH: tls.clientCaPath,
    TLS_CLIENT_AUTH: tls.clientAuth,
    TLS_HANDSHAKE_TIMEOUT_SECONDS: tls.handshakeTimeoutSeconds,
    TLS_STRICT_EOF: tls.strictEof,
    DATA_IMPLICIT_SSL: data.implicitTls,
    DATA_TLS_CERT_PATH: data.tlsCertPath,
    DATA_TLS_KEY_PATH: data.tlsKeyPath,
    PASV_ADDRESS: data.pasvAddress,
    PASV_MIN_PORT: data.pasvMinPort,
    PASV_MAX_PORT: data.pasvMaxPort,
    PASV_PROMISCUOUS: data.pasvPromiscuous,
    PASV_MAX_PER_IP: data.pasvMaxPerIp,
    ACTIVE_MODE: data.activeMode,
    DATA_TIMEOUT_SECONDS: data.timeoutSeconds,
    FTP_ROOT: storage.root,
    FOLLOW_SYMLINKS: storage.followSymlinks,
    STATE_DIR: storage.stateDir,
    UPLOAD_FSYNC: storage.fsync,
    MAX_UPLOAD_BYTES: storage.maxUploadBytes,
    FTP_USER: auth.user,
    FTP_PASSWORD: auth.password,
    LOGIN_MAX_ATTEMPTS: auth.loginMaxAttempts,
    FTP_USERS_FILE: auth.usersFile,
    FTP_ANONYMOUS: auth.anonymous,
    FTP_ANONYMOUS_ROOT: auth.anonymousRoot,
    LOGIN_BAN_THRESHOLD: auth.banThreshold,
    LOGIN_BAN_WINDOW_SECONDS: auth.banWindowSeconds,
    LOGIN_BAN_SECONDS: auth.banSeconds,
    MAX_CONNECTIONS: limits.maxConnections,
    MAX_CONNECTIONS_PER_IP: limits.maxConnectionsPerIp,
    IDLE_TIMEOUT_SECONDS: limits.idleTimeoutSeconds,
    SHUTDOWN_GRACE_SECONDS: limits.shutdownGraceSeconds,
    HTTP_PORT: operations.httpPort,
    HTTP_BIND_ADDRESS: operations.httpBindAddress,
    PROXY_PROTOCOL: operations.proxyProtocol,
    PROXY_TRUSTED_CIDRS: operations.proxyTrustedCidrs.join(',') || undefined,
    PASV_ADDRESS_OVERRIDES: operations.pasvAddressOverrides.map((o) => `${o.cidr}=${o.address}`).join(';') || undefined,
    PASV_ADDRESS_RESOLVE_SECONDS: operations.pasvAddressResolveSeconds,
    LOG_LEVEL: log.level,
    LOG_FORMAT: log.format,
  };
  return Object.entries(values)
    .map(([name, value]) => `${name}=${shown(name, value)}`)
    .join('\n');
}

function shown(name: string, value: string | number | boolean | undefined): string {
  if (value === undefined) return '';
  return SECRETS.has(name) ? '[redacted]' : String(value);
}
