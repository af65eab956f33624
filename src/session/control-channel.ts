import type net from 'node:net';
import tls from 'node:tls';
import { proxySignature, type ProxyVersion } from '../net/proxy-protocol.js';
import { formatMiddleLine, formatReply, type Reply, type StreamedReply } from '../protocol/replies.js';
import { stripTelnet } from '../protocol/parse-command.js';

export interface ControlChannelEvents {
  /** One command line: its bytes without the line end, Telnet sequences removed. */
  onLine(line: Buffer): void;
  /** A line exceeded the limit; its bytes up to the next CRLF are discarded. */
  onOverlong(): void;
  onClose(): void;
  /** The connection began with a PROXY header though its peer is no trusted proxy; nothing of it is read. */
  onProxyHeader(version: ProxyVersion): void;
  /** The client left more than maxBufferedReplyBytes of replies unread. */
  onReplyOverflow(): void;
}

export interface ControlChannelOptions {
  readonly maxLineBytes: number;
  readonly maxBufferedReplyBytes: number;
  /**
   * Watch the first bytes for a PROXY protocol signature (a direct connection while PROXY_PROTOCOL is on).
   * Bytes are held back only while they could still begin one (at most 12), so commands are not delayed.
   */
  readonly refuseProxyHeader: boolean;
}

const CRLF_LF = 0x0a;
/** Bytes of a streamed reply written before waiting for the client to read them. */
const STREAM_CHUNK = 16 * 1024;

/**
 * The control connection: a bounded line reader, the reply writer and the TLS upgrade. It knows
 * nothing of FTP commands. Lines end at LF (a preceding CR is dropped), as clients and RFC 959 differ.
 */
export class ControlChannel {
  private socket: net.Socket;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;
  private closed = false;
  /** The first bytes, while they could still be a PROXY signature; undefined once decided. */
  private opening: Buffer | undefined;
  private readonly maxLineBytes: number;
  private readonly maxBufferedReplyBytes: number;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);

  constructor(
    private readonly raw: net.Socket,
    options: ControlChannelOptions,
    private readonly events: ControlChannelEvents,
  ) {
    this.socket = raw;
    this.maxLineBytes = options.maxLineBytes;
    this.maxBufferedReplyBytes = options.maxBufferedReplyBytes;
    if (options.refuseProxyHeader) this.opening = Buffer.alloc(0);
    raw.setNoDelay(true);
    raw.on('error', () => undefined);
    raw.once('close', () => {
      this.closed = true;
      events.onClose();
    });
  }

  /** Starts reading commands: at once in explicit mode, after upgrade() (and its checks) with TLS. */
  start(): void {
    this.socket.on('data', this.onData);
    // A socket whose PROXY header was read comes paused, with the bytes after the header put back.
    this.socket.resume();
  }

  get secure(): boolean {
    return this.socket instanceof tls.TLSSocket;
  }

  send(r: Reply): void {
    this.sendText(formatReply(r));
  }

  /** Raw reply text; beyond maxBufferedReplyBytes unread the client is reported, not buffered for. */
  sendText(text: string): void {
    if (this.closed || !this.socket.writable) return;
    this.socket.write(text);
    if (this.socket.writableLength > this.maxBufferedReplyBytes) this.events.onReplyOverflow();
  }

  /** A multi-line reply whose lines are produced as the client reads them; rejects when producing them fails. */
  async sendStreamed(r: StreamedReply): Promise<void> {
    let pending = `${r.code}-${r.first}\r\n`;
    for await (const line of r.lines) {
      pending += `${formatMiddleLine(line)}\r\n`;
      if (pending.length < STREAM_CHUNK) continue;
      this.sendText(pending);
      pending = '';
      await this.drained();
      if (this.closed) return;
    }
    this.sendText(`${pending}${r.code} ${r.last}\r\n`);
  }

  /** Stops reading (backpressure while commands queue up). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Resolves once the client has read what was sent (or the connection closed). */
  async drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.raw.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.raw.on('close', done);
    });
  }

  /**
   * Switches to TLS in place; reading resumes with start(), so that the caller can check the client first.
   * Bytes the client pipelined after AUTH in plain text are dropped: they must not be executed as if they
   * had come over TLS (STARTTLS command injection).
   */
  async upgrade(
    /** `server` records the session IDs this handshake issues (src/tls/session-contexts.ts). */
    options: Pick<tls.TLSSocketOptions, 'secureContext' | 'server' | 'requestCert' | 'rejectUnauthorized'>,
    handshakeTimeoutMs: number,
  ): Promise<tls.TLSSocket> {
    this.socket.removeListener('data', this.onData);
    this.opening = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    this.discarding = false;
    const secure = new tls.TLSSocket(this.raw, { ...options, isServer: true });
    secure.on('error', () => undefined);
    this.socket = secure;
    await handshake(secure, handshakeTimeoutMs);
    return secure;
  }

  /** Flushes what was written, then closes. */
  close(): void {
    if (this.closed) return;
    this.socket.end();
    // A client that never reads its last reply must not hold the socket open.
    setTimeout(() => this.raw.destroy(), 2_000).unref();
  }

  destroy(): void {
    this.raw.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.opening === undefined) return this.consume(chunk);
    const opening = Buffer.concat([this.opening, chunk]);
    const signature = proxySignature(opening);
    if (signature === 'incomplete') {
      this.opening = opening;
      return;
    }
    this.opening = undefined;
    if (signature === 'absent') return this.consume(opening);
    this.socket.removeListener('data', this.onData);
    this.events.onProxyHeader(signature);
  }

  private consume(chunk: Buffer): void {
    let start = 0;
    for (let lf = chunk.indexOf(CRLF_LF); lf !== -1; lf = chunk.indexOf(CRLF_LF, start)) {
      const piece = chunk.subarray(start, lf);
      start = lf + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (this.pendingBytes + piece.length > this.maxLineBytes) {
        this.dropPending();
        this.events.onOverlong();
        continue;
      }
      this.pending.push(piece);
      const line = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.events.onLine(decodeLine(line));
    }
    const rest = chunk.subarray(start);
    if (this.discarding || rest.length === 0) return;
    if (this.pendingBytes + rest.length > this.maxLineBytes) {
      this.dropPending();
      this.discarding = true;
      this.events.onOverlong();
      return;
    }
    // Copy: the rest must not pin the whole (possibly large) chunk in memory.
    this.pending.push(Buffer.from(rest));
    this.pendingBytes += rest.length;
  }

  private dropPending(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }
}

function decodeLine(line: Buffer): Buffer {
  return stripTelnet(line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line);
}

function handshake(socket: tls.TLSSocket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('TLS handshake timed out'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('secure', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('connection closed during TLS handshake'));
    });
  });
}
