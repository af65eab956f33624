import net from 'node:net';
import { originOf, type Origin, type ProxyHeaderError, type ProxyPolicy } from '../net/proxy-protocol.js';
import type { Logger } from '../observability/logger.js';
import type { PassiveRefusal } from '../observability/metrics.js';
import { Code } from '../protocol/replies.js';
import { FtpError } from '../protocol/errors.js';
import type { DataConnection, PendingDataChannel } from './data-channel.js';
import { normalizeAddress, sameHost } from '../net/peer-address.js';
import type { PortPool } from './port-pool.js';
import { openDataConnection, type DataTlsPolicy } from './tls-wrap.js';

export interface PassiveOptions {
  readonly pool: PortPool;
  /** The client's address: what the pool counts its ports against (PASV_MAX_PER_IP). */
  readonly holder: string;
  /** Local address to listen on: the control connection's local address. */
  readonly bindAddress: string;
  /** Only this client address may connect; undefined accepts anyone (PASV_PROMISCUOUS). */
  readonly allowedPeer: string | undefined;
  /**
   * PROXY_PROTOCOL: a connection from a trusted proxy must start with a header, and the client it names is
   * the one checked against allowedPeer. Other connections are checked by their own address; their bytes are
   * never taken for a header (a plain upload may well begin with "PROXY").
   */
  readonly proxy: ProxyPolicy | undefined;
  /** Without a connection within this time the listener closes and frees its port. */
  readonly timeoutMs: number;
  /** Decided when the client connects, so a PROT P sent after PASV still applies. */
  readonly tlsPolicy: () => DataTlsPolicy | undefined;
  readonly log: Logger;
  /** Reports a connection from a foreign address (port theft); rate-limited by the caller, for it is the thief's to repeat. */
  readonly foreignConnection: (from: string, port: number, via: string | undefined) => void;
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
    const server = net.createServer({ pauseOnConnect: false });
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ port, host: o.bindAddress, exclusive: true }, () => resolve(true));
    });
    if (listening) return new Listener(server, port, o);
    // Taken by another process: skip it and try the next port of the range.
    o.pool.release(port);
    o.log.warn({ port }, 'passive port busy outside this server');
  }
  o.refused('exhausted');
  throw noPort();
}

class Listener implements PassiveChannel {
  private connection: DataConnection | undefined;
  private failure: FtpError | undefined;
  private readonly waiters = new Set<() => void>();
  /** Connections whose origin is still being found out (a trusted proxy's header being read). */
  private readonly reading = new Set<net.Socket>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private taken = false;

  constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly o: PassiveOptions,
  ) {
    server.on('connection', (socket) => this.onConnection(socket));
    server.on('error', (err) => o.log.warn({ err, port }, 'passive listener error'));
    this.timer = setTimeout(() => this.fail(notConnected()), o.timeoutMs);
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.connection || this.closed) {
      socket.destroy();
      return;
    }
    // The listener stays open meanwhile: a stranger relayed by the same proxy must not block our client's connection.
    this.reading.add(socket);
    originOf(socket, this.o.proxy).then(
      (origin) => {
        this.reading.delete(socket);
        if (origin) this.accept(socket, origin);
        else socket.destroy();
      },
      (err: ProxyHeaderError) => {
        this.reading.delete(socket);
        socket.destroy();
        // Cut short by the listener closing, or a port probe: nothing to tell.
        if (this.closed || err.probe) return;
        const via = normalizeAddress(socket.remoteAddress ?? '');
        this.o.log.warn({ via, port: this.port, reason: err.reason }, 'PROXY header refused on data connection');
      },
    );
  }

  private accept(socket: net.Socket, origin: Origin): void {
    // Gone while its header was read: it must not take the place of the client's connection.
    if (this.connection || this.closed || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (this.o.allowedPeer !== undefined && !sameHost(origin.peer.address, this.o.allowedPeer)) {
      // Port theft: someone else connected to the port we advertised to our client.
      this.o.foreignConnection(origin.peer.address, this.port, origin.via);
      socket.destroy();
      return;
    }
    this.connection = openDataConnection(socket, this.o.tlsPolicy(), this.o.timeoutMs);
    this.closeListener();
    this.wake();
  }

  private fail(err: FtpError): void {
    if (this.connection) return;
    this.failure ??= err;
    this.closeListener();
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  private closeListener(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const socket of this.reading) socket.destroy();
    this.server.close();
    this.o.pool.release(this.port);
  }

  async connect(signal: AbortSignal): Promise<DataConnection> {
    if (!this.connection && !this.failure) {
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
    if (!this.connection) throw this.failure ?? notConnected();
    this.taken = true;
    return this.connection;
  }

  dispose(): void {
    this.fail(new FtpError(Code.CannotOpenDataConnection, 'Data connection was cancelled'));
    if (!this.taken) this.connection?.destroy();
  }
}
