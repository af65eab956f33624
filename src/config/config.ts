/** The resolved, validated configuration. Produced once by loadConfig() and deeply frozen. */
export interface Config {
  readonly ftps: {
    /** FTPS_IMPLICIT_SSL: TLS from the first byte on the control port. */
    readonly implicit: boolean;
    /** FTPS_PORT: 21, or 990 when implicit. */
    readonly port: number;
    /** FTPS_BIND_ADDRESS: undefined = all interfaces. */
    readonly bindAddress: string | undefined;
    /** FTPS_REQUIRE_TLS: USER/PASS refused before AUTH. */
    readonly requireTls: boolean;
    /** FTPS_REQUIRE_PROT_P: transfers refused on unprotected data connections. */
    readonly requireProtP: boolean;
    /** FTPS_BANNER */
    readonly banner: string;
  };
  readonly data: {
    /** DATA_IMPLICIT_SSL: every data connection is TLS from its first byte. */
    readonly implicitTls: boolean;
    /** DATA_TLS_CERT_PATH / DATA_TLS_KEY_PATH: both or neither. */
    readonly tlsCertPath: string | undefined;
    readonly tlsKeyPath: string | undefined;
    /** PASV_ADDRESS: IP or host name; undefined = control connection's local address. */
    readonly pasvAddress: string | undefined;
    readonly pasvMinPort: number;
    readonly pasvMaxPort: number;
    readonly pasvPromiscuous: boolean;
    /** PASV_MAX_PER_IP: passive ports one client address may hold at once. */
    readonly pasvMaxPerIp: number;
    /** ACTIVE_MODE: PORT/EPRT allowed. */
    readonly activeMode: boolean;
    /** DATA_TIMEOUT_SECONDS */
    readonly timeoutSeconds: number;
  };
  readonly tls: {
    readonly certPath: string;
    readonly keyPath: string;
    /** true when TLS_CERT_PATH or TLS_KEY_PATH was set explicitly (then a missing file is an error). */
    readonly pathsExplicit: boolean;
    readonly keyPassphrase: string | undefined;
    readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
    /** TLS_MAX_VERSION: for clients whose TLS 1.3 resumption is broken. */
    readonly maxVersion: 'TLSv1.2' | 'TLSv1.3';
    /** TLS_CIPHERS: OpenSSL cipher list for TLS 1.2 (ECDHE + AEAD by default). */
    readonly ciphers: string;
    readonly requireSessionReuse: boolean;
    /** TLS_SESSION_REUSE_EXEMPT_CIDRS: clients whose data connections need not resume their control session. */
    readonly sessionReuseExemptCidrs: readonly string[];
    /** TLS_CLIENT_CA_PATH: CA that signs accepted client certificates. */
    readonly clientCaPath: string | undefined;
    /** TLS_CLIENT_AUTH: whether clients must (required) or may (optional) present a certificate. */
    readonly clientAuth: 'none' | 'optional' | 'required';
    /** TLS_HANDSHAKE_TIMEOUT_SECONDS: a stalled handshake is dropped after this. */
    readonly handshakeTimeoutSeconds: number;
    /** TLS_STRICT_EOF: a protected upload must end with close_notify; a bare FIN or reset gets 426. */
    readonly strictEof: boolean;
  };
  readonly storage: {
    /** FTP_ROOT */
    readonly root: string;
    /** FOLLOW_SYMLINKS: follow symlinks that stay inside the user's home (false: refuse every symlink). */
    readonly followSymlinks: boolean;
    /** UPLOAD_FSYNC: an upload is on stable storage (file and directory synced) before its 226. */
    readonly fsync: boolean;
    /** MAX_UPLOAD_BYTES: the largest file an upload may make; undefined = no limit. */
    readonly maxUploadBytes: number | undefined;
    /** STATE_DIR: the generated password hash and self-signed pair, outside every FTP root. */
    readonly stateDir: string;
  };
  readonly auth: {
    readonly user: string | undefined;
    readonly password: string | undefined;
    readonly loginMaxAttempts: number;
    /** FTP_USERS_FILE: name:hash:home:permissions[:cidrs] lines, reloaded when it changes. */
    readonly usersFile: string | undefined;
    /** FTP_ANONYMOUS: read-only login as anonymous/ftp. */
    readonly anonymous: boolean;
    /** FTP_ANONYMOUS_ROOT: the anonymous user's root (FTP_ROOT/pub when unset). */
    readonly anonymousRoot: string;
    /** LOGIN_BAN_*: failures per IP within the window before a ban of banSeconds. */
    readonly banThreshold: number;
    readonly banWindowSeconds: number;
    readonly banSeconds: number;
  };
  readonly limits: {
    readonly maxConnections: number;
    readonly maxConnectionsPerIp: number;
    readonly idleTimeoutSeconds: number;
    /** SHUTDOWN_GRACE_SECONDS: how long running transfers may finish after SIGTERM/SIGINT. */
    readonly shutdownGraceSeconds: number;
  };
  readonly operations: {
    /** HTTP_PORT: /healthz, /readyz and /metrics; 0 = no HTTP endpoint. */
    readonly httpPort: number;
    /** HTTP_BIND_ADDRESS: undefined = all interfaces. */
    readonly httpBindAddress: string | undefined;
    /** PROXY_PROTOCOL: the header versions accepted on control and passive data connections. */
    readonly proxyProtocol: 'off' | 'v1' | 'v2' | 'any';
    /** PROXY_TRUSTED_CIDRS: the only peers whose PROXY headers are believed (normalized address/CIDR list). */
    readonly proxyTrustedCidrs: readonly string[];
    /** PASV_ADDRESS_OVERRIDES: clients inside `cidr` are sent `address` in 227 replies; first match wins. */
    readonly pasvAddressOverrides: readonly { readonly cidr: string; readonly address: string }[];
    /** PASV_ADDRESS_RESOLVE_SECONDS: how often a host name in PASV_ADDRESS is resolved again. */
    readonly pasvAddressResolveSeconds: number;
  };
  readonly log: {
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    readonly format: 'json' | 'pretty';
  };
}

/** A configuration problem: one line per problem, naming the variable. Never a stack trace. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}
