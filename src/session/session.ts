import type { EventFields } from '../events/event.js';
import type { EventSink } from '../events/events.js';
import type net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type tls from 'node:tls';
import type { Account, AuthResult, UserStore } from '../auth/user-store.js';
import type { CommandCatalog, CommandContext, Endpoint, SessionState } from '../commands/context.js';
import { errorToReply } from '../commands/errors.js';
import type { CommandRegistry } from '../commands/registry.js';
import type { Config } from '../config/config.js';
import { SessionDataChannels } from '../data/session-data.js';
import type { SharedPassivePorts } from '../data/shared-passive.js';
import type { PasvAddresses } from '../data/pasv-address.js';
import { normalizeAddress } from '../net/peer-address.js';
import type { PortPool } from '../data/port-pool.js';
import type { DataTlsPolicy } from '../data/tls-wrap.js';
import type { Origin, ProxyPolicy, ProxyVersion } from '../net/proxy-protocol.js';
import type { LogThrottle } from '../observability/log-throttle.js';
import type { Logger } from '../observability/logger.js';
import { handshakeFailureReason, type Metrics } from '../observability/metrics.js';
import { FtpError } from '../protocol/errors.js';
import { parseCommand, type CommandLine } from '../protocol/parse-command.js';
import { Code, isStreamed, reply, type AnyReply, type Reply } from '../protocol/replies.js';
import type { StorageBackend } from '../storage/storage.js';
import { ROOT } from '../storage/virtual-path.js';
import { ClientCertificateRefused, clientAuthOptions, verifyClientCertificate } from '../tls/client-certificates.js';
import type { SessionReusePolicy } from '../tls/reuse-policy.js';
import type { SessionTlsContexts, TlsContextFactory } from '../tls/session-contexts.js';
import { ControlChannel } from './control-channel.js';

export const MAX_LINE_BYTES = 4096;
/** Over-long lines tolerated before the session is closed as abusive. */
const MAX_OVERLONG_LINES = 3;
/** Commands a client may pipeline (both lanes together) before we stop reading from it. */
const MAX_QUEUED_COMMANDS = 32;
/**
 * Reply bytes a client may leave unread before its session is closed. Commands wait for the client to read
 * the previous reply and long replies are written as the client reads them, so only a client that stopped
 * reading altogether gets here.
 */
export const MAX_BUFFERED_REPLY_BYTES = 256 * 1024;
/**
 * How long after its greeting a connection may stay without a successful login: IDLE_TIMEOUT_SECONDS if shorter
 * (the TLS handshake of implicit mode before it has TLS_HANDSHAKE_TIMEOUT_SECONDS of its own). The idle timer
 * restarts with every command, so without this bound a client sending NOOP now and then would hold its
 * connection slot for ever without ever logging in.
 */
const LOGIN_DEADLINE_SECONDS = 60;
/**
 * A client whose transfer ended during a shutdown may still be finishing it on its side (basic-ftp writing a
 * download to a slow disk) and would take a 421 arriving then for the transfer's outcome: it hears the 421 in
 * answer to its next command, or after this pause.
 */
const SHUTDOWN_PAUSE_AFTER_TRANSFER_MS = 2_000;

/** The server's count of failed logins per client address (src/server/login-bans.ts). */
export interface LoginFailures {
  isBanned(address: string): boolean;
  /** True when the address is banned now. */
  recordFailure(address: string): boolean;
}

export interface SessionDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly commands: CommandRegistry;
  readonly users: UserStore;
  readonly tls: TlsContextFactory;
  readonly reusePolicy: SessionReusePolicy;
  readonly logins: LoginFailures;
  readonly ports: PortPool;
  /** Set with PASV_PORT_SHARING: PASV registers there instead of opening a port of its own. */
  readonly sharedPassive: SharedPassivePorts | undefined;
  /** Warnings a client can repeat at will (foreign data connections, refused PASV), one per address per minute. */
  readonly throttledLog: LogThrottle;
  /** Who the client is: the socket's peer, or the client a trusted proxy's PROXY header named. */
  readonly origin: Origin;
  /** PROXY_PROTOCOL is on: passive data connections from trusted proxies carry headers too. */
  readonly proxy: ProxyPolicy | undefined;
  readonly metrics: Metrics;
  /** The address 227 replies advertise, per client network. */
  readonly pasvAddresses: PasvAddresses;
  /** The account's tree; its home is created when missing. */
  readonly openStorage: (account: Account) => Promise<StorageBackend>;
  /** The id in this session's log lines and events. */
  readonly sessionId: string;
  readonly events: EventSink;
}

interface RunningTransfer {
  readonly controller: AbortController;
  /** Settles once the transfer command's final reply has been sent. */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/** One control connection: reads commands, runs their handlers one at a time, writes their replies. */
export class Session implements CommandContext {
  readonly state: SessionState = {
    pendingUser: undefined,
    account: undefined,
    loginFailures: 0,
    cwd: ROOT,
    pbszDone: false,
    protectData: false,
    transferType: 'I',
    restartOffset: 0,
    renameFrom: undefined,
    epsvAll: false,
    mlstFacts: ['type', 'size', 'modify', 'perm', 'unix.mode'],
  };
  readonly config: Config;
  readonly metrics: Metrics;
  readonly peer: Endpoint;
  readonly local: Endpoint;
  log: Logger;

  private readonly channel: ControlChannel;
  private readonly queue: CommandLine[] = [];
  private busy = false;
  /** Commands that run beside a transfer (ABOR, STAT), one at a time, in their own lane. */
  private readonly outOfBand: CommandLine[] = [];
  private outOfBandRunning: Promise<void> | undefined;
  private readingPaused = false;
  private overlongLines = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private loginTimer: NodeJS.Timeout | undefined;
  private tlsContexts: SessionTlsContexts | undefined;
  readonly data: SessionDataChannels;
  private transfer: RunningTransfer | undefined;
  /** Data connections of finished transfers whose client has not closed them yet (their data may be in flight). */
  private readonly lingering = new Set<Promise<void>>();
  private storageBackend: StorageBackend | undefined;
  private afterReply: 'upgrade' | 'close' | undefined;
  /** Fingerprint of the client certificate the control connection presented, told to the auth hook. */
  private clientCertificate: string | undefined;
  private ended = false;
  /** Set by shutdown(): commands are no longer run (QUIT is), the next one wakes the shutdown. */
  private shuttingDown: { readonly commandArrived: () => void } | undefined;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    socket: net.Socket,
    private readonly deps: SessionDeps,
  ) {
    this.config = deps.config;
    this.metrics = deps.metrics;
    this.log = deps.log;
    // The client's address for bans, allow-lists, the PORT and PASV checks; the local one stays the socket's
    // (passive listeners bind to it).
    this.peer = deps.origin.peer;
    this.local = { address: normalizeAddress(socket.localAddress ?? ''), port: socket.localPort ?? 0 };
    this.data = new SessionDataChannels({
      config: this.config,
      log: this.log,
      metrics: this.metrics,
      throttledLog: deps.throttledLog,
      ports: deps.ports,
      sharedPassive: deps.sharedPassive,
      proxy: deps.proxy,
      pasvAddresses: deps.pasvAddresses,
      peer: this.peer,
      local: this.local,
      tlsPolicy: () => this.dataTlsPolicy(),
      resumption: () => this.tlsContexts,
    });
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    // In implicit mode the server checked the first bytes before TLS (src/server/ftp-server.ts).
    const refuseProxyHeader = deps.proxy !== undefined && deps.origin.via === undefined && !deps.config.ftps.implicit;
    const limits = { maxLineBytes: MAX_LINE_BYTES, maxBufferedReplyBytes: MAX_BUFFERED_REPLY_BYTES, refuseProxyHeader };
    this.channel = new ControlChannel(socket, limits, {
      onLine: (line) => this.onLine(line),
      onOverlong: () => this.onOverlong(),
      onClose: () => this.onClose(),
      onProxyHeader: (version) => this.onUntrustedProxyHeader(version),
      onReplyOverflow: () => this.onReplyOverflow(),
    });
  }

  /** Resolves when the control connection has closed. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get catalog(): CommandCatalog {
    return this.deps.commands;
  }

  get controlSecure(): boolean {
    return this.channel.secure;
  }

  /** Greets the client (after the TLS handshake in implicit mode) and starts reading commands. */
  start(): void {
    this.guard(this.greet());
  }

  private async greet(): Promise<void> {
    if (this.config.ftps.implicit) {
      if (!(await this.secureControl('implicit TLS handshake failed'))) return;
    } else {
      this.channel.start();
    }
    this.channel.send(reply(Code.ServiceReady, this.config.ftps.banner));
    this.armIdleTimer();
    // Armed after the idle timer: when both are equally long, a client that stayed silent hears "idle".
    const deadline = Math.min(LOGIN_DEADLINE_SECONDS, this.config.limits.idleTimeoutSeconds);
    this.loginTimer = setTimeout(() => this.onLoginDeadline(), deadline * 1000);
    this.loginTimer.unref();
  }

  /** Server shutdown: idle sessions get 421 now; a running transfer may finish first, and its client act on it. */
  async shutdown(): Promise<void> {
    if (this.ended) return;
    const commandArrived = new Promise<void>((resolve) => (this.shuttingDown = { commandArrived: resolve }));
    const transfer = this.transfer;
    await transfer?.done;
    await Promise.all(this.lingering);
    if (transfer) {
      const pause = new AbortController();
      const paused = delay(SHUTDOWN_PAUSE_AFTER_TRANSFER_MS, undefined, { signal: pause.signal }).catch(() => undefined);
      await Promise.race([commandArrived, this.closed, paused]);
      pause.abort();
    }
    if (this.ended) return;
    this.channel.send(reply(Code.ServiceNotAvailable, 'Server shutting down, closing control connection'));
    this.channel.close();
    await this.closed;
  }

  /** Ends the session at once (after the shutdown grace period). */
  destroy(): void {
    this.transfer?.controller.abort();
    this.channel.destroy();
  }

  // --- the command loop ---

  /**
   * The session's fault boundary: an unexpected error anywhere in its loop ends this session with 421 and one
   * log line, never the process and the other clients' sessions.
   */
  private guard(work: Promise<void>): void {
    work.catch((err: unknown) => this.fault(err));
  }

  private fault(err: unknown): void {
    if (this.ended) return;
    this.log.error({ err }, 'session failed unexpectedly, closing it');
    this.transfer?.controller.abort();
    this.channel.send(reply(Code.ServiceNotAvailable, 'Internal error, closing control connection'));
    this.channel.close();
  }

  private onLine(line: Buffer): void {
    this.armIdleTimer();
    const command = parseCommand(line);
    if (!command) return;
    const outOfBand = this.transfer !== undefined && this.deps.commands.lookup(command.verb)?.duringTransfer === true;
    (outOfBand ? this.outOfBand : this.queue).push(command);
    if (this.queue.length + this.outOfBand.length >= MAX_QUEUED_COMMANDS) {
      this.readingPaused = true;
      this.channel.pause();
    }
    this.guard(outOfBand ? this.pumpOutOfBand() : this.pump());
  }

  /** Reads again once a lane has room. */
  private resumeIfRoom(): void {
    if (this.readingPaused && !this.ended && this.queue.length + this.outOfBand.length < MAX_QUEUED_COMMANDS) {
      this.readingPaused = false;
      this.channel.resume();
    }
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (let next = this.queue.shift(); next && !this.ended; next = this.queue.shift()) {
        this.resumeIfRoom();
        // A client that sends commands but never reads the replies must not pile them up in our memory.
        await this.channel.drained();
        // An ABOR answered out of band must have replied before the next queued command (e.g. QUIT) runs.
        await this.outOfBandRunning;
        if (this.ended) break;
        if (this.shuttingDown && next.verb !== 'QUIT') {
          // Answered by the shutdown's 421.
          this.shuttingDown.commandArrived();
          break;
        }
        await this.execute(next);
      }
    } finally {
      this.busy = false;
    }
  }

  /** The out-of-band lane: one command at a time, each after the client has read the previous reply. */
  private pumpOutOfBand(): Promise<void> {
    this.outOfBandRunning ??= (async () => {
      try {
        for (let next = this.outOfBand.shift(); next && !this.ended; next = this.outOfBand.shift()) {
          this.resumeIfRoom();
          await this.channel.drained();
          if (this.ended) break;
          await this.execute(next);
        }
      } finally {
        this.outOfBandRunning = undefined;
      }
    })();
    return this.outOfBandRunning;
  }

  private async execute(command: CommandLine): Promise<void> {
    const { verb, arg } = command;
    this.log.debug({ verb, argument: verb === 'PASS' ? undefined : arg }, 'command');
    if (!this.applyAccountChanges()) return;
    const transferBefore = this.transfer;
    let result: AnyReply;
    let close = false;
    try {
      result = await this.dispatch(command);
    } catch (err) {
      ({ reply: result, close } = errorToReply(err, this.log));
    }
    await this.send(result);
    const started = this.transfer;
    if (started && started !== transferBefore) {
      this.transfer = undefined;
      started.finish();
    }
    if (this.ended) return;
    if (close) this.afterReply = 'close';
    await this.runAfterReply();
  }

  /** Writes a reply; a streamed one as fast as the client reads it, released however that ends. */
  private async send(r: AnyReply): Promise<void> {
    if (!isStreamed(r)) {
      if (!this.ended) this.channel.send(r);
      return;
    }
    try {
      if (!this.ended) await this.channel.sendStreamed(r);
    } catch (err) {
      // The first line is out: the reply can only be ended, and the failure logged.
      this.log.warn({ err }, 'listing over the control connection failed midway');
      this.channel.sendText(`${r.code} ${r.last}\r\n`);
    } finally {
      await r.release().catch((err: unknown) => this.log.warn({ err }, 'releasing a listing failed'));
    }
  }

  /**
   * A users-file reload applies at the next command: narrowed permissions at once, a removed (or moved) account
   * ends the session. False when the session is closing.
   */
  private applyAccountChanges(): boolean {
    const account = this.state.account;
    if (!account?.current) return true;
    const now = account.current();
    if (now?.homeDir === account.homeDir) {
      if (now !== account) {
        this.state.account = now;
        this.log.info({ writable: now.writable }, 'account changed by a users reload');
      }
      return true;
    }
    this.log.warn('account removed or changed by a users reload, closing');
    this.channel.send(reply(Code.ServiceNotAvailable, 'Your account was changed, closing control connection'));
    this.channel.close();
    return false;
  }

  private async dispatch({ verb, arg, rawArg }: CommandLine): Promise<AnyReply> {
    const spec = this.deps.commands.lookup(verb);
    if (!spec) return reply(Code.NotImplemented, 'Command not implemented');
    if (spec.access === 'authenticated' && !this.state.account) {
      return reply(Code.NotLoggedIn, 'Please log in with USER and PASS first');
    }
    if (spec.arg === 'required' && arg === undefined) {
      return reply(Code.ArgumentSyntaxError, `${verb} needs an argument`);
    }
    return spec.arg === 'none' ? spec.handle(this, undefined, undefined) : spec.handle(this, arg, rawArg);
  }

  private async runAfterReply(): Promise<void> {
    const action = this.afterReply;
    this.afterReply = undefined;
    if (action === 'close') {
      this.channel.close();
    } else if (action === 'upgrade') {
      // Commands pipelined behind AUTH arrived in plain text: drop them.
      this.queue.length = 0;
      if (await this.secureControl('TLS handshake after AUTH failed')) this.log.debug('control connection upgraded to TLS');
    }
  }

  /**
   * The control connection's TLS handshake (implicit mode, or after AUTH) and the client certificate check.
   * No command is read before both passed. False when the connection was closed instead.
   */
  private async secureControl(failure: string): Promise<boolean> {
    const tlsContexts = this.sessionTls();
    const mode = this.config.tls.clientAuth;
    let secure: tls.TLSSocket;
    try {
      secure = await this.channel.upgrade(
        { secureContext: tlsContexts.control, server: tlsContexts.controlSessionIds, ...clientAuthOptions(mode) },
        this.config.tls.handshakeTimeoutSeconds * 1000,
      );
    } catch (err) {
      this.metrics.tlsHandshakeFailed('control', handshakeFailureReason(err));
      // With TLS_CLIENT_AUTH=required, OpenSSL itself ends a handshake that brought no certificate.
      if ((err as NodeJS.ErrnoException).code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
        this.log.warn({ reason: 'no certificate presented' }, 'client certificate refused');
      } else {
        this.log.info({ err: String(err) }, failure);
      }
      this.channel.destroy();
      return false;
    }
    try {
      const clientCert = verifyClientCertificate(secure, mode);
      this.clientCertificate = clientCert?.fingerprint256;
      this.log = this.log.child({ tls: secure.getProtocol(), ...(clientCert && { clientCert }) });
    } catch (err) {
      if (!(err instanceof ClientCertificateRefused)) throw err;
      this.metrics.tlsHandshakeFailed('control', 'certificate_refused');
      this.log.warn({ reason: err.reason, clientCert: err.certificate }, 'client certificate refused');
      this.channel.send(reply(Code.ServiceNotAvailable, 'Client certificate not accepted, closing control connection'));
      this.channel.close();
      return false;
    }
    this.channel.start();
    return true;
  }

  private onOverlong(): void {
    this.overlongLines++;
    if (this.overlongLines >= MAX_OVERLONG_LINES) {
      this.log.warn('too many over-long command lines, closing');
      this.channel.send(reply(Code.ServiceNotAvailable, 'Too many over-long command lines, closing connection'));
      this.channel.close();
      return;
    }
    this.channel.send(reply(Code.SyntaxError, `Command line too long (limit ${MAX_LINE_BYTES} bytes)`));
  }

  private onReplyOverflow(): void {
    this.log.warn({ limit: MAX_BUFFERED_REPLY_BYTES }, 'client does not read its replies, closing');
    this.transfer?.controller.abort();
    this.channel.destroy();
  }

  private onUntrustedProxyHeader(version: ProxyVersion): void {
    this.log.warn({ version }, 'PROXY header from an address outside PROXY_TRUSTED_CIDRS, closing');
    this.channel.destroy();
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.onIdle(), this.config.limits.idleTimeoutSeconds * 1000);
    this.idleTimer.unref();
  }

  private onIdle(): void {
    // A long transfer is activity, even if the control connection is silent.
    if (this.transfer) return this.armIdleTimer();
    this.log.info('idle timeout');
    this.channel.send(reply(Code.ServiceNotAvailable, 'Idle timeout, closing control connection'));
    this.channel.close();
  }

  private onLoginDeadline(): void {
    if (this.state.account) return;
    this.log.info('no login in time, closing');
    this.channel.send(reply(Code.ServiceNotAvailable, 'Login timed out, closing control connection'));
    this.channel.close();
  }

  private onClose(): void {
    this.ended = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.loginTimer);
    // The transfer's handler then cleans up (temporary upload file) and finishes it in execute().
    this.transfer?.controller.abort();
    this.data.dispose();
    this.log.debug('session closed');
    this.resolveClosed();
  }

  // --- CommandContext ---

  storage(): StorageBackend {
    if (!this.storageBackend) throw new FtpError(Code.NotLoggedIn, 'Please log in with USER and PASS first');
    return this.storageBackend;
  }

  async authenticate(user: string, password: Buffer): Promise<AuthResult> {
    const { logins } = this.deps;
    const address = this.peer.address;
    // A banned address gets no more guesses, not even on connections it opened before the ban.
    const result: AuthResult = logins.isBanned(address)
      ? { ok: false, reason: 'address-banned' }
      : await this.deps.users.authenticate(user, password, { address, clientCertificate: this.clientCertificate });
    this.metrics.login(result);
    // The failure that completes a ban ends this connection too, after the usual reply.
    if (!result.ok && logins.recordFailure(address)) this.closeAfterReply();
    return result;
  }

  async login(account: Account): Promise<void> {
    clearTimeout(this.loginTimer);
    this.storageBackend = await this.deps.openStorage(account);
    this.state.account = account;
    this.state.cwd = ROOT;
    this.log = this.log.child({ user: account.name });
  }

  event(fields: EventFields): void {
    this.deps.events.emit({
      user: this.state.account?.name,
      clientAddress: this.peer.address,
      session: this.deps.sessionId,
      ...fields,
    });
  }

  sendPreliminary(r: Reply): void {
    this.channel.send(r);
  }

  upgradeToTlsAfterReply(): void {
    this.afterReply = 'upgrade';
  }

  closeAfterReply(): void {
    this.afterReply = 'close';
  }

  beginTransfer(): AbortSignal {
    const controller = new AbortController();
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    // execute() finishes it once the command that began it has sent its final reply.
    this.transfer = { controller, done, finish };
    return controller.signal;
  }

  async abortTransfer(): Promise<boolean> {
    const running = this.transfer;
    if (!running) return false;
    running.controller.abort();
    await running.done;
    return true;
  }

  lingerUntil(closed: Promise<void>): void {
    this.lingering.add(closed);
    void closed.then(() => this.lingering.delete(closed));
  }

  get transferInProgress(): boolean {
    return this.transfer !== undefined;
  }

  statusLines(): readonly string[] {
    const a = this.state.account;
    return [
      `Connected from ${this.peer.address}`,
      a ? `Logged in as ${a.name}` : 'Not logged in',
      `Control connection ${this.controlSecure ? 'protected by TLS' : 'in plain text'}`,
      `Data connections ${this.state.protectData || this.config.data.implicitTls ? 'protected by TLS' : 'in plain text'}`,
      `TYPE ${this.state.transferType === 'I' ? 'BINARY' : 'ASCII'}, STRU FILE, MODE STREAM`,
      this.transfer ? 'A transfer is in progress' : 'No transfer in progress',
    ];
  }

  private dataTlsPolicy(): DataTlsPolicy | undefined {
    if (!this.state.protectData && !this.config.data.implicitTls) return undefined;
    return {
      context: this.sessionTls().data,
      sessionIds: this.sessionTls().dataSessionIds,
      requireReuse: this.deps.reusePolicy.requiredFor(this.peer.address, this.state.account),
      ticketsFor: (purpose) => this.sessionTls().ticketsFor(purpose),
      strictEof: this.config.tls.strictEof,
      handshakeTimeoutMs: Math.min(this.config.tls.handshakeTimeoutSeconds, this.config.data.timeoutSeconds) * 1000,
      handshakeFailed: (reason) => this.metrics.tlsHandshakeFailed('data', reason),
    };
  }

  private sessionTls(): SessionTlsContexts {
    this.tlsContexts ??= this.deps.tls.forSession();
    return this.tlsContexts;
  }
}
