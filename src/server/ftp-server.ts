import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Account, UserStore } from '../auth/user-store.js';
import { allCommands } from '../commands/index.js';
import { CommandRegistry } from '../commands/registry.js';
import type { Config } from '../config/config.js';
import type { PasvAddresses } from '../data/pasv-address.js';
import { normalizeAddress } from '../data/peer-address.js';
import { PortPool } from '../data/port-pool.js';
import type { Logger } from '../observability/logger.js';
import { Session } from '../session/session.js';
import { LocalFsStorage } from '../storage/local-fs.js';
import type { TlsContextFactory } from '../tls/session-contexts.js';
import { ConnectionLimiter } from './connection-limiter.js';
import { LoginBans } from './login-bans.js';

export interface ServerDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly tls: TlsContextFactory;
  readonly users: UserStore;
  readonly pasvAddresses: PasvAddresses;
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
}

/** The control listener, the registry of live sessions and the per-address records they share. */
export class FtpServer {
  private readonly listener: net.Server;
  private readonly sessions = new Set<Session>();
  private readonly commands: CommandRegistry;
  private readonly ports: PortPool;
  private readonly limiter: ConnectionLimiter;
  private readonly logins: LoginBans;
  private sessionsOpened = 0;
  private readonly refused = { banned: 0, overLimit: 0 };

  constructor(private readonly deps: ServerDeps) {
    const { config } = deps;
    this.commands = new CommandRegistry(allCommands, config);
    this.ports = new PortPool(config.data.pasvMinPort, config.data.pasvMaxPort);
    this.limiter = new ConnectionLimiter(config.limits.maxConnections, config.limits.maxConnectionsPerIp);
    const { banThreshold: threshold, banWindowSeconds: windowSeconds, banSeconds } = config.auth;
    this.logins = new LoginBans({ threshold, windowSeconds, banSeconds, log: deps.log });
    this.listener = net.createServer((socket) => this.onConnection(socket));
    this.listener.on('error', (err) => deps.log.error({ err }, 'listener error'));
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
    this.deps.log.info(
      {
        port: address.port,
        address: address.address,
        implicitTls: this.deps.config.ftps.implicit,
        clientCertificates: this.deps.config.tls.clientAuth,
      },
      'listening',
    );
    return address;
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
    };
  }

  /** Stops accepting, tells idle sessions 421, lets transfers finish up to graceMs, then cuts the rest. */
  async stop(graceMs: number): Promise<void> {
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
    this.logins.dispose();
    this.deps.pasvAddresses.close();
    // The store may watch FTP_USERS_FILE.
    this.deps.users.close?.();
  }

  /** Refusals cost a map lookup and one write: no session, no TLS, no timer. */
  private onConnection(socket: net.Socket): void {
    const { config, log } = this.deps;
    const remote = normalizeAddress(socket.remoteAddress ?? '');
    socket.on('error', () => undefined);
    if (this.logins.isBanned(remote)) {
      this.refused.banned++;
      // The ban itself was logged once; a line per attempt would let the attacker flood the log.
      log.debug({ remote }, 'connection from a banned address refused');
      this.refuse(socket, 'Too many failed logins from your address');
      return;
    }
    const refusal = this.limiter.admit(remote);
    if (refusal) {
      this.refused.overLimit++;
      log.warn({ remote, reason: refusal }, 'connection refused');
      this.refuse(socket, refusal);
      return;
    }
    this.sessionsOpened++;
    const session = new Session(socket, {
      config,
      log: log.child({ session: randomBytes(4).toString('hex'), remote }),
      commands: this.commands,
      users: this.deps.users,
      tls: this.deps.tls,
      logins: this.logins,
      ports: this.ports,
      pasvAddresses: this.deps.pasvAddresses,
      openStorage: (account: Account) => new LocalFsStorage(account.homeDir),
    });
    this.sessions.add(session);
    session.log.debug('connected');
    void session.closed.then(() => {
      this.sessions.delete(session);
      this.limiter.release(remote);
    });
    void session.start();
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
