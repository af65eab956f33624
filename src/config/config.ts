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
      pasvPortSharing: v.PASV_PORT_SHARING,
      /** What a reply says for PASV_MIN_PORT + n: this + n. */
      pasvAdvertisedMinPort: v.PASV_ADVERTISED_MIN_PORT ?? v.PASV_MIN_PORT,
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
      s3: v.STORAGE_BACKEND !== 's3' ? undefined : {
        // The schema requires it with STORAGE_BACKEND=s3.
        bucket: v.S3_BUCKET ?? '',
        prefix: v.S3_PREFIX,
        endpoint: v.S3_ENDPOINT,
        region: v.S3_REGION,
        forcePathStyle: v.S3_FORCE_PATH_STYLE,
        credentials: v.S3_ACCESS_KEY_ID === undefined || v.S3_SECRET_ACCESS_KEY === undefined
          ? undefined
          : { accessKeyId: v.S3_ACCESS_KEY_ID, secretAccessKey: v.S3_SECRET_ACCESS_KEY },
        caPath: v.S3_CA_PATH,
        partSize: v.S3_PART_SIZE,
      },
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
      hook: v.AUTH_HOOK_URL === undefined ? undefined : {
        url: v.AUTH_HOOK_URL,
        secret: v.AUTH_HOOK_SECRET,
        timeoutSeconds: v.AUTH_HOOK_TIMEOUT_SECONDS,
        cacheSeconds: v.AUTH_HOOK_CACHE_SECONDS,
      },
      ldap: v.LDAP_URL === undefined ? undefined : {
        url: v.LDAP_URL,
        startTls: v.LDAP_STARTTLS,
        caPath: v.LDAP_CA_PATH,
        timeoutSeconds: v.LDAP_TIMEOUT_SECONDS,
        bindDn: v.LDAP_BIND_DN,
        bindPassword: v.LDAP_BIND_PASSWORD,
        // The schema requires it with LDAP_URL.
        userBase: v.LDAP_USER_BASE ?? '',
        userFilter: v.LDAP_USER_FILTER,
        homeAttribute: v.LDAP_HOME_ATTRIBUTE,
        homeTemplate: v.LDAP_HOME_TEMPLATE,
        rwGroup: v.LDAP_RW_GROUP,
        roGroup: v.LDAP_RO_GROUP,
      },
    },
    events: {
      webhook: v.EVENT_WEBHOOK_URL === undefined ? undefined : {
        url: v.EVENT_WEBHOOK_URL,
        secret: v.EVENT_WEBHOOK_SECRET,
        timeoutSeconds: v.EVENT_TIMEOUT_SECONDS,
        retryMaxAgeSeconds: v.EVENT_RETRY_MAX_AGE_SECONDS,
        spoolMaxBytes: v.EVENT_SPOOL_MAX_BYTES,
      },
      types: v.EVENT_TYPES,
      replica: v.REPLICA_NAME,
      uploadSha256: v.UPLOAD_SHA256,
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
