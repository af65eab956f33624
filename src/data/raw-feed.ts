/*
 * How a protected upload learns whether the client ended its TLS stream with close_notify.
 *
 * The threat: a TLS upload cut by a bare TCP FIN (a client that stops after 1 of 4 MiB, or an on-path relay
 * that cuts a victim's upload) must not be committed as complete. TLS's close_notify alert is what tells a
 * complete stream from a cut one.
 *
 * The mechanism: Node's TLS layer reports close_notify and a bare FIN alike, as 'end' (OpenSSL's
 * SSL_RECEIVED_SHUTDOWN is not exposed). So for uploads the TLS layer does not read the TCP socket itself: it
 * reads from a RawFeed, which hands it the socket's bytes as they arrive and sees the TCP FIN first. When the FIN
 * comes, the TLS layer has already decrypted everything before it: if that included close_notify, the TLS stream
 * has ended and the FIN is passed on; if not, the stream was truncated and the TLS socket is destroyed with
 * TlsTruncatedError instead. Downloads keep Node's native TLS path (the client's close_notify does not matter
 * there, and the JavaScript path costs downloads three times the CPU).
 *
 * The cost: Node wraps a non-socket stream with its JSStreamSocket, one JavaScript call and one copy per read.
 * Reads go into one reused buffer (net.Socket's `onread` option) instead of a fresh 64 KiB allocation each: with
 * fresh buffers the JavaScript path cost +0.5–0.8 CPU-seconds per GiB over native TLS; with the reused one, within
 * the noise (bench: npm run bench:peers). An accepted socket cannot be given `onread`, so its handle moves to a
 * new net.Socket that has one (`handle` is the option Node's own server uses to build accepted sockets).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';

/** Bytes per read from the TCP socket; the TLS layer copies them out at once, so one buffer serves every read. */
const READ_BUFFER = 64 * 1024;

/** The TLS stream of an upload ended with a bare TCP FIN, without close_notify. */
export class TlsTruncatedError extends Error {
  readonly code = 'ERR_TLS_TRUNCATED';

  constructor() {
    super('Data connection closed without TLS close_notify');
    this.name = 'TlsTruncatedError';
  }
}

/**
 * A server-side TLS socket that remembers the moment its stream ended: Node ends a readable stream with push(null),
 * synchronously inside the read that brought close_notify, while the 'end' event comes later (and only once the
 * consumer has read everything, which an upload under backpressure may not have yet).
 */
export class UploadTlsSocket extends tls.TLSSocket {
  #ended = false;

  get tlsEnded(): boolean {
    return this.#ended;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) this.#ended = true;
    return super.push(chunk, encoding);
  }
}

/** Socket options that make reads land in one reused buffer, delivered to `feed`. */
export function feedReads(feed: RawFeed): Pick<net.NetConnectOpts, 'onread'> {
  const buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
  const callback = (bytes: number): boolean => {
    feed.deliver(buffer.subarray(0, bytes));
    return true;
  };
  return { onread: { buffer, callback } };
}

/**
 * The stream a TLSSocket reads from for an upload: the duck-typed Duplex Node's JSStreamSocket needs (data/end/
 * error/close events, pause/resume, cork/uncork/write/end/destroy), backed by a net.Socket whose reads arrive
 * through feedReads().
 */
export class RawFeed extends EventEmitter {
  #socket: net.Socket | undefined;
  #tls: UploadTlsSocket | undefined;
  /** Bytes read from the socket before it became ours (after a PROXY header), handed over first. */
  #leftover: Buffer | undefined;

  /** Takes over an accepted (paused) socket: its handle, and the bytes it already buffered. */
  static adopt(accepted: net.Socket): RawFeed {
    const feed = new RawFeed();
    const leftover = accepted.readableLength > 0 ? (accepted.read() as Buffer | null) : null;
    feed.#leftover = leftover ?? undefined;
    const internals = accepted as unknown as { _handle: unknown };
    const handle = internals._handle;
    // The old socket must not close the handle it no longer owns when it is destroyed below.
    internals._handle = null;
    const socket = new net.Socket({ handle, readable: true, writable: true, allowHalfOpen: true, ...feedReads(feed) } as net.SocketConstructorOpts);
    accepted.destroy();
    return feed.attach(socket);
  }

  /** A feed for a socket created with feedReads(feed) (active mode connects with it). */
  attach(socket: net.Socket): this {
    this.#socket = socket;
    socket.pause();
    socket.on('end', () => this.#onFin());
    socket.on('error', (err) => this.emit('error', err));
    socket.on('close', () => this.emit('close'));
    return this;
  }

  /** The TLS socket reading from this feed, whose state the FIN is judged by. */
  readBy(secure: UploadTlsSocket): void {
    this.#tls = secure;
  }

  deliver(bytes: Buffer): void {
    this.emit('data', bytes);
  }

  #onFin(): void {
    // Everything before the FIN went through the TLS layer synchronously: a close_notify among it ended the stream.
    if (this.#tls && !this.#tls.tlsEnded) {
      this.#tls.destroy(new TlsTruncatedError());
      return;
    }
    this.emit('end');
  }

  // --- what JSStreamSocket calls ---

  get readable(): boolean {
    return this.#socket?.readable ?? false;
  }

  get writable(): boolean {
    return this.#socket?.writable ?? false;
  }

  pause(): this {
    this.#socket?.pause();
    return this;
  }

  resume(): this {
    this.#socket?.resume();
    return this;
  }

  /** The TLSSocket takes bytes its stream buffered before it started (Node's initRead) through these two. */
  get readableLength(): number {
    return this.#leftover?.length ?? 0;
  }

  read(): Buffer | null {
    const leftover = this.#leftover ?? null;
    this.#leftover = undefined;
    return leftover;
  }

  cork(): void {
    this.#socket?.cork();
  }

  uncork(): void {
    this.#socket?.uncork();
  }

  write(chunk: Buffer, done?: (err?: Error | null) => void): boolean {
    return this.#socket?.write(chunk, done) ?? false;
  }

  end(done?: () => void): void {
    this.#socket?.end(done);
  }

  destroy(err?: Error): void {
    this.#socket?.destroy(err);
  }

  setNoDelay(noDelay?: boolean): void {
    this.#socket?.setNoDelay(noDelay);
  }
}
