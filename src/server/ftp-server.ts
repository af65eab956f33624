import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Account, UserStore } from '../auth/user-store.js';
import { allCommands } from '../commands/index.js';
import { CommandRegistry } from '../commands/registry.js';
import type { Config } from '../config/config.js';
import type { PasvAddresses } from '../data/pasv-address.js';
import { PortPool } from '../data/port-pool.js';
import { SharedPassivePorts } from '../data/shared-passive.js';
import { normalizeAddress } from '../net/peer-address.js';
import { detectProxySignature, originOf, ProxyPolicy, type Origin, type ProxyHeaderError } from '../net/proxy-protocol.js';
import { Readiness } from '../observability/health.js';
import { LogThrottle } from '../observability/log-throttle.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { NO_EVENTS, type EventService, type EventSink } from '../events/events.js';
import { Session } from '../session/session.js';
import type { StorageProvider } from '../storage/provider.js';
import type { CertificateReloader } from '../tls/certificate-reloader.js';
import { SessionReusePolicy } from '../tls/reuse-policy.js';
import type { TlsContextFactory } from '../tls/session-contexts.js';
import { ConnectionLimiter } from './connection-limiter.js';
import { HttpEndpoint } from './http-endpoint.js';
import { LoginBans } from './login-bans.js';

/** Warnings a client can cause at will are logged once per address in this window, then summed up. */
const CLIENT_WARNING_WINDOW_MS = 60_000;

export interface ServerDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly tls: TlsContextFactory;
  /** Watches the certificate files and puts new pairs into `tls`. */
  readonly certificates: CertificateReloader;
  readonly users: UserStore;
  /** Where the files are (STORAGE_BACKEND); closed by stop(). */
  readonly storage: StorageProvider;
  readonly pasvAddresses: PasvAddresses;
  /** Counts events; its gauges read this server (and the HTTP endpoint serves it when HTTP_PORT is set). */
  readonly metrics: Metrics;
  /** EVENT_WEBHOOK_URL: where events go; closed by stop() once every session has ended. */
  readonly events?: EventService | undefined;
}

/** What the server has done, for health checks and metrics. */
export interface ServerStats {
  /** Control connections being served now. */
  readonly sessions: number;
  /** Sessions created since start; a refused connection never becomes one. */
  readonly sessionsOpened: number;
  /** Connections closed at once: from a banned address, or beyond MAX_CONNECTIONS(_PER_IP). */
  readonly refused: { readonly banned: number; readonly overLimit: number };
  /** Per-session TLS context sets created (src/tls/session-contexts.ts). */
  readonly tlsContexts: number;
  readonly bannedAddresses: number;
  readonly passivePortsInUse: number;
  readonly passivePortsFree: number;
}

/** The control listener, the registry of live sessions and the per-address records they share. */
export class FtpServer {
  private readonly listener: net.Server;
  private readonly sessions = new Set<Session>();
  private readonly commands: CommandRegistry;
  private readonly ports: PortPool;
  /** PASV_PORT_SHARING: the passive range, listening for every session from listen() to stop(). */
  private sharedPassive: SharedPassivePorts | undefined;
  private readonly throttledLog: LogThrottle;
  private readonly limiter: ConnectionLimiter;
  private readonly logins: LoginBans;
  /** PROXY_PROTOCOL and PROXY_TRUSTED_CIDRS; undefined when off. */
  private readonly proxy: ProxyPolicy | undefined;
  private readonly reusePolicy: SessionReusePolicy;
  private sessionsOpened = 0;
  private readonly refused = { banned: 0, overLimit: 0 };
  /** /healthz, /readyz and /metrics; none when HTTP_PORT=0. */
  private readonly http: HttpEndpoint | undefined;
  /** Aborted by stop(): ends the sweep of what dead uploads left (temporary files, multipart uploads). */
  private readonly sweep = new AbortController();
  private sweeping: Promise<void> | undefined;

  private get events(): EventSink {
    return this.deps.events ?? NO_EVENTS;
  }

  constructor(private readonly deps: ServerDeps) {
    const { config } = deps;
    this.commands = new CommandRegistry(allCommands, config);
    this.ports = new PortPool(config.data.pasvMinPort, config.data.pasvMaxPort, config.data.pasvMaxPerIp);
    this.throttledLog = new LogThrottle(CLIENT_WARNING_WINDOW_MS);
    this.limiter = new ConnectionLimiter(config.limits.maxConnections, config.limits.maxConnectionsPerIp);
    const { banThreshold: threshold, banWindowSeconds: windowSeconds, banSeconds } = config.auth;
    this.logins = new LoginBans({
      threshold,
      windowSeconds,
      banSeconds,
      log: deps.log,
      onBan: (address, failures) => this.events.emit({ type: 'ban', clientAddress: address, reason: `${failures} failed logins` }),
    });
    const { proxyProtocol: versions, proxyTrustedCidrs: trustedCidrs } = config.operations;
    // A proxy sends its header at once on connecting: the handshake bound covers it, as it covers TLS set-up.
    const headerTimeoutMs = config.tls.handshakeTimeoutSeconds * 1000;
    this.proxy = versions === 'off' ? undefined : new ProxyPolicy({ versions, trustedCidrs, timeoutMs: headerTimeoutMs });
    this.reusePolicy = new SessionReusePolicy(config.tls);
    this.listener = net.createServer((socket) => this.onConnection(socket));
    this.listener.on('error', (err) => deps.log.error({ err }, 'listener error'));
    deps.metrics.observe(() => ({ ...this.stats, certificates: deps.tls.current }));
    const { httpPort: port, httpBindAddress: host } = config.operations;
    if (port !== 0) {
      const readiness = new Readiness({ accepting: () => this.accepting, certificates: () => deps.tls.current, storage: () => deps.storage.probe() });
      this.http = new HttpEndpoint({ port, host, log: deps.log, metrics: deps.metrics, readiness });
    }
  }

  async listen(): Promise<net.AddressInfo> {
    const { port, bindAddress } = this.deps.config.ftps;
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen({ port, host: bindAddress }, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    const address = this.listener.address() as net.AddressInfo;
    if (this.deps.config.data.pasvPortSharing) {
      const { data, ftps, tls } = this.deps.config;
      this.sharedPassive = await SharedPassivePorts.listen({
        ports: Array.from({ length: data.pasvMaxPort - data.pasvMinPort + 1 }, (_, i) => data.pasvMinPort + i),
        bindAddress: ftps.bindAddress,
        proxy: this.proxy,
        helloTimeoutMs: tls.handshakeTimeoutSeconds * 1000,
        log: this.deps.log,
        refused: (reason) => this.deps.metrics.sharedPortRefused(reason),
      }).catch((err: unknown) => {
        this.listener.close();
        throw err;
      });
    }
    // Up before "listening" is logged, so that whoever waits for that line can probe at once.
    await this.http?.listen().catch((err: unknown) => {
      this.listener.close();
      throw err;
    });
    this.deps.log.info(
      {
        port: address.port,
        address: address.address,
        implicitTls: this.deps.config.ftps.implicit,
        clientCertificates: this.deps.config.tls.clientAuth,
        proxyProtocol: this.deps.config.operations.proxyProtocol,
      },
      'listening',
    );
    // In the background: walking a large volume takes a while, and serving does not need it done.
    this.sweeping = this.deps.storage.maintain(this.sweep.signal);
    return address;
  }

  /** The control listener accepts connections; false from the moment stop() begins (close() drops the handle). */
  get accepting(): boolean {
    return this.listener.listening;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get stats(): ServerStats {
    return {
      sessions: this.sessions.size,
      sessionsOpened: this.sessionsOpened,
      refused: { ...this.refused },
      tlsContexts: this.deps.tls.created,
      bannedAddresses: this.logins.bannedAddresses,
      passivePortsInUse: this.ports.usedCount,
      passivePortsFree: this.ports.freeCount,
    };
  }

  /** SIGHUP: re-reads the certificates and the users file now. Never rejects: problems are logged. */
  async reload(): Promise<void> {
    await Promise.all([this.deps.certificates.reload({ force: true }), this.deps.users.reload?.()]);
  }

  /** Stops accepting, tells idle sessions 421, lets transfers finish up to graceMs, then cuts the rest. */
  async stop(graceMs: number): Promise<void> {
    this.sweep.abort();
    // close() stops accepting now; its callback waits for every connection to end.
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    const all = [...this.sessions];
    const graceful = Promise.all(all.map((s) => s.shutdown()));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)));
    if ((await Promise.race([graceful, expired])) === 'expired') {
      this.deps.log.warn({ sessions: this.sessions.size }, 'shutdown grace period over, closing remaining sessions');
      for (const s of this.sessions) s.destroy();
      // Cut transfers still remove their temporary upload files before the process exits.
      await graceful;
    }
    clearTimeout(timer);
    await closed;
    this.sharedPassive?.close();
    // Ends at the next directory entry; no file system work outlives stop().
    await this.sweeping;
    this.deps.storage.close();
    this.logins.dispose();
    this.throttledLog.close();
    this.deps.pasvAddresses.close();
    // The store may watch FTP_USERS_FILE.
    this.deps.users.close?.();
    this.deps.certificates.close();
    // After the sessions: their last events are spooled.
    await this.deps.events?.close();
    // Last: through the grace period /readyz answered 503 and /metrics stayed scrapeable.
    await this.http?.close();
  }

  /**
   * A connection from a trusted proxy (PROXY_PROTOCOL) has its header read first, so that bans and limits
   * judge the client it names. Refusals of a known address cost a map lookup and one write: no session, no
   * TLS, no timer.
   */
  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    originOf(socket, this.proxy).then(
      (origin) => (origin ? this.admit(socket, origin) : socket.destroy()),
      (err: ProxyHeaderError) => {
        const entry = { remote: normalizeAddress(socket.remoteAddress ?? ''), reason: err.reason };
        if (err.probe) this.deps.log.debug(entry, 'connection closed before its PROXY header');
        else this.deps.log.warn(entry, 'PROXY header refused, closing');
        socket.destroy();
      },
    );
  }

  private admit(socket: net.Socket, origin: Origin): void {
    const { config, log } = this.deps;
    const remote = origin.peer.address;
    const who = { remote, ...(origin.via !== undefined && { via: origin.via }) };
    if (this.logins.isBanned(remote)) {
      this.refused.banned++;
      // The ban itself was logged once; a line per attempt would let the attacker flood the log.
      log.debug(who, 'connection from a banned address refused');
      this.refuse(socket, 'Too many failed logins from your address');
      return;
    }
    const refusal = this.limiter.admit(remote);
    if (refusal) {
      this.refused.overLimit++;
      log.warn({ ...who, reason: refusal }, 'connection refused');
      this.refuse(socket, refusal);
      return;
    }
    if (!this.proxy || origin.via !== undefined || !config.ftps.implicit) {
      this.startSession(socket, origin, who);
      return;
    }
    // A direct connection must not carry a header. Explicit mode checks the first command line (ControlChannel);
    // here TLS comes first, and without this look a proxy missing from PROXY_TRUSTED_CIDRS showed as a failed handshake.
    detectProxySignature(socket, config.tls.handshakeTimeoutSeconds * 1000).then(
      (version) => {
        if (version === undefined) return this.startSession(socket, origin, who);
        log.warn({ ...who, version }, 'PROXY header from an address outside PROXY_TRUSTED_CIDRS, closing');
        this.drop(socket, remote);
      },
      (err: unknown) => {
        log.info({ ...who, err: (err as Error).message }, 'implicit TLS handshake failed');
        this.drop(socket, remote);
      },
    );
  }

  private startSession(socket: net.Socket, origin: Origin, who: { remote: string; via?: string }): void {
    const { config, log } = this.deps;
    // After a header read or first-byte check: stop() may have begun (such a session would outlive the
    // shutdown), or the peer may be gone already (a health check's reset; its 'close' may have been emitted).
    if (!this.listener.listening || socket.destroyed) {
      this.drop(socket, origin.peer.address);
      return;
    }
    this.sessionsOpened++;
    const sessionId = randomBytes(4).toString('hex');
    const session = new Session(socket, {
      config,
      sessionId,
      events: this.events,
      log: log.child({ session: sessionId, ...who }),
      commands: this.commands,
      users: this.deps.users,
      tls: this.deps.tls,
      reusePolicy: this.reusePolicy,
      logins: this.logins,
      ports: this.ports,
      sharedPassive: this.sharedPassive,
      throttledLog: this.throttledLog,
      origin,
      proxy: this.proxy,
      metrics: this.deps.metrics,
      pasvAddresses: this.deps.pasvAddresses,
      openStorage: (account: Account) => this.deps.storage.open(account),
    });
    this.sessions.add(session);
    session.log.debug('connected');
    // `closed` never rejects: it resolves when the socket closes, however the session ended.
    void session.closed.then(() => {
      this.sessions.delete(session);
      this.limiter.release(origin.peer.address);
    });
    session.start();
  }

  /** Closes an admitted connection that never became a session. */
  private drop(socket: net.Socket, remote: string): void {
    socket.destroy();
    this.limiter.release(remote);
  }

  private refuse(socket: net.Socket, reason: string): void {
    // In implicit mode the client expects TLS; plain text would be noise, so just close.
    if (this.deps.config.ftps.implicit) {
      socket.destroy();
      return;
    }
    // Closed as soon as the reply is handed to the kernel: a client that never reads holds nothing here.
    socket.write(`421 ${reason}, try again later\r\n`);
    socket.destroySoon();
  }
}
