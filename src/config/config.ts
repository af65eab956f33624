import type { VariableName, Values } from './variables.js';

/**
 * The variables → the nested configuration the code reads. What each variable means is in variables.ts;
 * `isSet` tells a variable set by the user from its default.
 */
export function toConfig(v: Values, isSet: (name: VariableName) => boolean) {
  return {
    ftps: {
      implicit: v.FTPS_IMPLICIT_SSL,
      port: v.FTPS_PORT,
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
      pasvMaxPerIp: v.PASV_MAX_PER_IP,
      activeMode: v.ACTIVE_MODE,
      timeoutSeconds: v.DATA_TIMEOUT_SECONDS,
    },
    tls: {
      certPath: v.TLS_CERT_PATH,
      keyPath: v.TLS_KEY_PATH,
      /** Set explicitly: then a missing file is an error rather than a reason to generate a self-signed pair. */
      pathsExplicit: isSet('TLS_CERT_PATH') || isSet('TLS_KEY_PATH'),
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
      anonymousRoot: v.FTP_ANONYMOUS_ROOT,
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

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/** The resolved, validated configuration. Produced once by loadConfig() and deeply frozen. */
export type Config = DeepReadonly<ReturnType<typeof toConfig>>;

/** A configuration problem: one line per problem, naming the variable. Never a stack trace. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}
