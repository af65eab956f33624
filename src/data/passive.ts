import net from 'node:net';
import { originOf, type Origin, type ProxyHeaderError, type ProxyPolicy } from '../net/proxy-protocol.js';
import type { Logger } from '../observability/logger.js';
import type { PassiveRefusal } from '../observability/metrics.js';
import { Code } from '../protocol/replies.js';
import { FtpError } from '../protocol/errors.js';
import type { DataConnection, PendingDataChannel, TransferPurpose } from './data-channel.js';
import { normalizeAddress, sameHost } from '../net/peer-address.js';
import type { PortPool } from './port-pool.js';
import { openDataConnection, type DataTlsPolicy } from './tls-wrap.js';

/** How a passive request (on a port of its own, or on a shared port) takes the client's connection. */
export interface PassiveRequestOptions {
  /** Only this client address may connect; undefined accepts anyone (PASV_PROMISCUOUS). */
  readonly allowedPeer: string | undefined;
  /** Without a connection within this time the listener closes and frees its port. */
  readonly timeoutMs: number;
  /** Decided when the client connects, so a PROT P sent after PASV still applies. */
  readonly tlsPolicy: () => DataTlsPolicy | undefined;
  readonly log: Logger;
  /** Reports a connection from a foreign address (port theft); rate-limited by the caller, for it is the thief's to repeat. */
  readonly foreignConnection: (from: string, port: number, via: string | undefined) => void;
  /**
   * Clients that wait for the data connection's TLS before they send the transfer command: DartFTP style (with
   * DATA_IMPLICIT_SSL) does, so TLS starts after a short pause; curl 7.88 waits ~0.2 s (TLS 1.2: ~1.2 s) and then
   * sends it anyway, as it must with vsftpd and pure-ftpd, which start TLS only then too.
   */
  readonly clientsWaitForTls: boolean;
}

/** A passive port of the request's own, from the range (PASV_PORT_SHARING off). */
export interface PassiveOptions extends PassiveRequestOptions {
  readonly pool: PortPool;
  /** The client's address: what the pool counts its ports against (PASV_MAX_PER_IP). */
  readonly holder: string;
  /** Local address to listen on: the control connection's local address. */
  readonly bindAddress: string;
  /**
   * PROXY_PROTOCOL: a connection from a trusted proxy must start with a header, and the client it names is
   * the one checked against allowedPeer. Other connections are checked by their own address; their bytes are
   * never taken for a header (a plain upload may well begin with "PROXY").
   */
  readonly proxy: ProxyPolicy | undefined;
  /** Reports a PASV refused for want of a port: the range is exhausted, or this address holds its share. */
  readonly refused: (reason: PassiveRefusal) => void;
}


export interface PassiveChannel extends PendingDataChannel {
  readonly port: number;
}

const noPort = () => new FtpError(Code.CannotOpenDataConnection, 'No passive port available, try again later');
const overShare = () =>
  new FtpError(Code.CannotOpenDataConnection, 'Your address holds its share of passive ports; use them or try again later');
const notConnected = () => new FtpError(Code.CannotOpenDataConnection, 'Data connection was not opened in time');

export async function openPassive(o: PassiveOptions): Promise<PassiveChannel> {
  if (o.pool.atLimit(o.holder)) {
    o.refused('address_limit');
    throw overShare();
  }
  for (let attempt = o.pool.usedCount + o.pool.freeCount; attempt > 0; attempt--) {
    const port = o.pool.acquire(o.holder);
    if (port === undefined) break;
    // Paused: nothing of a connection is read in JavaScript before its TLS starts (tls-wrap.ts).
    const server = net.createServer({ pauseOnConnect: true });
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ port, host: o.bindAddress, exclusive: true }, () => resolve(true));
    });
    if (listening) return listenOwn(server, port, o);
    // Taken by another process: skip it and try the next port of the range.
    o.pool.release(port);
    o.log.warn({ port }, 'passive port busy outside this server');
  }
  o.refused('exhausted');
  throw noPort();
}

/**
 * When the TLS of a passive connection starts: when its transfer command arrives, as vsftpd, ProFTPD and pure-ftpd
 * do, because uploads and downloads take different paths (raw-feed.ts). A client still silent after a while waits
 * for the handshake: TLS then starts on the path that serves both directions correctly (the upload one). The wait
 * is EARLY_START_MS, or, when clients are known to wait (clientsWaitForTls), a few milliseconds plus twice the time
 * the client took from the PASV reply to its connection (an RTT estimate).
 */
const EARLY_START_MS = 2_000;
const EARLY_START_WAITING_CLIENTS_MS = 20;
/**
 * Closes an accepted connection that will not be used, in order: its unread bytes (a ClientHello) are read and
 * dropped first, or the kernel would answer with a reset, and only after the current command's refusal has gone
 * out on the control connection, so that a client reading both sees the reply rather than a broken data socket.
 */
function closeUnused(socket: net.Socket): void {
  setImmediate(() => {
    socket.on('data', () => undefined);
    socket.resume();
    socket.end();
    setTimeout(() => socket.destroy(), 2_000).unref();
  });
}

/** A listener of the request's own: every connection to it is a candidate for this one request. */
function listenOwn(server: net.Server, port: number, o: PassiveOptions): PassiveRequest {
  /** Connections whose origin is still being found out (a trusted proxy's header being read). */
  const reading = new Set<net.Socket>();
  const request = new PassiveRequest(port, o, () => {
    for (const socket of reading) socket.destroy();
    server.close();
    o.pool.release(port);
  });
  server.on('error', (err) => o.log.warn({ err, port }, 'passive listener error'));
  server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    if (!request.accepting) {
      socket.destroy();
      return;
    }
    // The listener stays open meanwhile: a stranger relayed by the same proxy must not block our client's connection.
    reading.add(socket);
    originOf(socket, o.proxy).then(
      (origin) => {
        reading.delete(socket);
        if (origin) request.accept(socket, origin);
        else socket.destroy();
      },
      (err: ProxyHeaderError) => {
        reading.delete(socket);
        socket.destroy();
        // Cut short by the listener closing, or a port probe: nothing to tell.
        if (!request.accepting || err.probe) return;
        const via = normalizeAddress(socket.remoteAddress ?? '');
        o.log.warn({ via, port, reason: err.reason }, 'PROXY header refused on data connection');
      },
    );
  });
  return request;
}

/**
 * One PASV/EPSV: waits for the client's connection (offered by the port's listener, own or shared), checks its
 * address, and starts its TLS when the transfer command says which direction it goes.
 */
export class PassiveRequest implements PassiveChannel {
  /** The client's connection, accepted and checked, its TLS not started yet (paused: JavaScript read nothing). */
  private accepted: net.Socket | undefined;
  private connection: DataConnection | undefined;
  private readonly opened = performance.now();
  private failure: FtpError | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly timer: NodeJS.Timeout;
  private grace: NodeJS.Timeout | undefined;
  private closed = false;
  private taken = false;

  readonly replyBeforeConnect: (() => boolean) | undefined;

  /**
   * `stopAccepting` frees the port (closes its own listener, or leaves the shared port's routing table), once.
   * `routedByClientHello`: on a shared port a protected connection is routed by its ClientHello, so the transfer's
   * 1xx reply goes first for clients that send it only after that reply.
   */
  constructor(
    readonly port: number,
    private readonly o: PassiveRequestOptions,
    private readonly stopAccepting: () => void,
    routedByClientHello = false,
  ) {
    this.replyBeforeConnect = routedByClientHello ? () => this.accepting && this.protectedData : undefined;
    // Unclaimed for this long, from PASV on: the connection (if any) is dropped and the port freed.
    this.timer = setTimeout(() => this.fail(notConnected), o.timeoutMs);
  }

  /** Still waiting for its client's connection. */
  get accepting(): boolean {
    return !this.accepted && !this.closed;
  }

  /** Whether data connections are protected now (TLS decided when the client connects: PROT P may follow PASV). */
  get protectedData(): boolean {
    return this.o.tlsPolicy() !== undefined;
  }

  /** Whether its data connection must resume the session (false: exempt, shared contexts, or clear text). */
  get reuseRequired(): boolean {
    return this.o.tlsPolicy()?.requireReuse ?? false;
  }

  /** A connection whose origin is known: taken when it comes from the client's address, refused otherwise. */
  accept(socket: net.Socket, origin: Origin): void {
    // Gone while its header was read: it must not take the place of the client's connection.
    if (this.accepted || this.closed || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (this.o.allowedPeer !== undefined && !sameHost(origin.peer.address, this.o.allowedPeer)) {
      // Port theft: someone else connected to the port we advertised to our client.
      this.o.foreignConnection(origin.peer.address, this.port, origin.via);
      socket.destroy();
      return;
    }
    this.accepted = socket;
    this.closeListener();
    if (this.waiters.size === 0) {
      // No transfer waits yet: clear text has nothing to decide, TLS waits a little for the command.
      if (!this.o.tlsPolicy()) this.start('download');
      else this.grace = setTimeout(() => this.start('upload'), this.earlyStartMs());
    }
    this.wake();
  }

  private earlyStartMs(): number {
    if (!this.o.clientsWaitForTls) return EARLY_START_MS;
    return Math.min(EARLY_START_MS, EARLY_START_WAITING_CLIENTS_MS + 2 * (performance.now() - this.opened));
  }

  private start(purpose: TransferPurpose): DataConnection {
    clearTimeout(this.grace);
    this.connection ??= openDataConnection(this.accepted!, this.o.tlsPolicy(), { purpose, stallTimeoutMs: this.o.timeoutMs });
    return this.connection;
  }

  /** `err` is made only if it is the outcome: every transfer disposes its request, and an error's stack costs. */
  private fail(err: () => FtpError): void {
    if (this.taken) return;
    this.failure ??= err();
    clearTimeout(this.timer);
    clearTimeout(this.grace);
    this.closeListener();
    this.connection?.destroy();
    if (!this.connection && this.accepted) closeUnused(this.accepted);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private closeListener(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopAccepting();
  }

  async connect(signal: AbortSignal, purpose: TransferPurpose): Promise<DataConnection> {
    if (!this.accepted && !this.failure) {
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          this.waiters.delete(done);
          resolve();
        };
        const done = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        this.waiters.add(done);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    signal.throwIfAborted();
    if (this.failure || !this.accepted) throw this.failure ?? notConnected();
    this.taken = true;
    clearTimeout(this.timer);
    return this.start(purpose);
  }

  dispose(): void {
    this.fail(() => new FtpError(Code.CannotOpenDataConnection, 'Data connection was cancelled'));
  }
}
