/*
 * The transport of large GetObject requests: the body is read into one reused buffer.
 *
 * The SDK's HTTP handler (node:http) allocates a fresh 64 KiB buffer for every socket read and passes each through
 * its parser and a stream. Reading a 512 MiB body from Ceph RGW that way cost 2.5–3.5 CPU-seconds per GB on the
 * 2-core bench machine, against 0.4 for a socket that reads into one reused buffer (net.Socket's `onread`); through
 * the gateway, which also encrypts every byte for the FTP client, that difference made downloads 0.64× the direct
 * SDK's speed (bench/s3.mjs).
 *
 * The request stays the SDK's: built, signed and retried by it (credentials, endpoint, path style, error documents
 * parsed into named errors); only the transport is here. One HTTP/1.1 request per connection (Connection: close,
 * so a body cut short can never be mistaken for the end of one), the response head parsed, the body framed by its
 * Content-Length. The body is a Readable, so the SDK reads an error document as ever; a download calls
 * readInto(), which copies what the socket read straight into the transfer's buffer and reads on only once
 * that is taken (the socket is paused meanwhile, so the buffer is never overwritten unread).
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { buildQueryString, HttpResponse, type HttpHandler, type HttpRequest } from '@smithy/core/protocols';
import type { HttpHandlerOptions } from '@smithy/types';

/** Bytes per socket read; each is copied out before the next read. */
const READ_BUFFER_BYTES = 256 * 1024;
/** A response head (status line and headers) larger than this is refused: S3's are well under 4 KiB. */
const MAX_HEAD_BYTES = 64 * 1024;
/** An error document read until the connection closes (no Content-Length) is cut at this size. */
const MAX_UNFRAMED_BODY_BYTES = 64 * 1024;
/** After the whole body, how long the store may take to close the connection before it is cut. */
const CLOSE_WAIT_MS = 5_000;

export interface ObjectGetHandlerOptions {
  /** S3_CA_PATH: the CA trusted for an https endpoint instead of the system's (as the SDK's own client has it). */
  readonly ca: Buffer | undefined;
  readonly connectionTimeoutMs: number;
  /** How long the store may stay silent while the body is awaited (not while the reader is busy). */
  readonly idleTimeoutMs: number;
}

export class ObjectGetHandler implements HttpHandler<ObjectGetHandlerOptions> {
  constructor(private readonly options: ObjectGetHandlerOptions) {}

  async handle(request: HttpRequest, handlerOptions: HttpHandlerOptions = {}): Promise<{ response: HttpResponse }> {
    return new ObjectBody(request, this.options, handlerOptions.abortSignal as AbortSignal | undefined).response;
  }

  updateHttpClientConfig(): void {
    // Nothing to update: the configuration is fixed when the Bucket is made.
  }

  httpHandlerConfigs(): ObjectGetHandlerOptions {
    return this.options;
  }
}

/** An error of the connection to the store, named and coded so that the SDK retries it and s3-errors.ts maps it. */
function connectionError(message: string, name = 'Error', code = 'ECONNRESET'): Error {
  return Object.assign(new Error(`S3 connection: ${message}`), { name, code });
}

/** One GET on its own connection; the response's body. */
export class ObjectBody extends Readable {
  readonly response: Promise<{ response: HttpResponse }>;
  readonly #socket: net.Socket;
  readonly #chunk = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  readonly #idleTimeoutMs: number;
  /** The response head read so far; undefined once it is parsed. */
  #head: Buffer | undefined = Buffer.alloc(0);
  /** Body bytes in #chunk not taken yet: #chunk[#start, #end). */
  #start = 0;
  #end = 0;
  /** Body bytes still to come from the socket. */
  #unreceived = 0;
  /** An error document without Content-Length: its body ends when the connection does. */
  #untilClose = false;
  #failure: Error | undefined;
  #waiter: (() => void) | undefined;
  #resolveResponse!: (value: { response: HttpResponse }) => void;
  #rejectResponse!: (err: Error) => void;

  constructor(request: HttpRequest, o: ObjectGetHandlerOptions, signal: AbortSignal | undefined) {
    super();
    this.response = new Promise((resolve, reject) => {
      this.#resolveResponse = resolve;
      this.#rejectResponse = reject;
    });
    // Nobody awaits the response once the body is handed out; a failure then surfaces through readInto().
    this.response.catch(() => undefined);
    this.#idleTimeoutMs = o.idleTimeoutMs;
    const head = requestHead(request);
    const host = request.hostname.startsWith('[') ? request.hostname.slice(1, -1) : request.hostname;
    const secure = request.protocol === 'https:';
    const port = request.port ?? (secure ? 443 : 80);
    const onread = { buffer: this.#chunk, callback: (n: number) => this.#onRead(n) };
    this.#socket = secure
      ? // `onread` works on TLS sockets too (it reads the decrypted bytes); Node's types name it for net only.
        tls.connect({ host, port, ca: o.ca, servername: net.isIP(host) ? undefined : host, onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    const connectTimer = setTimeout(() => this.#fail(connectionError('connection timed out', 'TimeoutError', 'ETIMEDOUT')), o.connectionTimeoutMs);
    this.#socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
    this.#socket.setNoDelay(true);
    this.#socket.setTimeout(o.idleTimeoutMs, () => this.#fail(connectionError('the store stopped answering', 'TimeoutError', 'ETIMEDOUT')));
    this.#socket.on('error', (err) => this.#fail(err));
    this.#socket.on('end', () => this.#onEnd());
    this.#socket.on('close', () => {
      clearTimeout(connectTimer);
      this.#onEnd();
    });
    if (signal) {
      const onAbort = () => this.#fail(Object.assign(new Error('Request aborted'), { name: 'AbortError' }));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.#socket.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    this.#socket.write(head);
  }

  /** Copies the next body bytes into `target`; 0 at the body's end. Rejects with the connection's failure. */
  async readInto(target: Buffer): Promise<number> {
    for (;;) {
      if (this.#end > this.#start) {
        const n = this.#chunk.copy(target, 0, this.#start, Math.min(this.#end, this.#start + target.length));
        this.#start += n;
        if (this.#start === this.#end) this.#readOn();
        return n;
      }
      if (this.#failure) throw this.#failure;
      if (this.#complete) return 0;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  override _read(size: number): void {
    const buffer = Buffer.allocUnsafe(Math.max(size, 16 * 1024));
    this.readInto(buffer).then(
      (n) => this.push(n === 0 ? null : buffer.subarray(0, n)),
      (err: Error) => this.destroy(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.#complete) {
      // Bytes left untaken are dropped; reading on lets the store's close arrive.
      this.#start = this.#end;
      this.#readOn();
    } else {
      this.#abandon();
    }
    callback(err);
  }

  /** The socket read `n` bytes into #chunk; false pauses it until they are taken. */
  #onRead(n: number): boolean {
    if (this.#head !== undefined) return this.#onHeadBytes(n);
    return this.#onBodyBytes(n);
  }

  /** `received` body bytes are at the start of #chunk (any beyond Content-Length are dropped). */
  #onBodyBytes(received: number): boolean {
    const n = Math.min(received, this.#unreceived);
    this.#unreceived -= n;
    this.#start = 0;
    this.#end = n;
    if (this.#unreceived === 0) this.#awaitClose();
    this.#wake();
    if (n === 0) return true;
    // Paused, the store's silence is the reader's doing: no idle timeout meanwhile.
    this.#socket.setTimeout(0);
    return false;
  }

  #readOn(): void {
    if (this.#socket.destroyed) return;
    if (!this.#complete) this.#socket.setTimeout(this.#idleTimeoutMs);
    this.#socket.resume();
  }

  /**
   * The whole body is in. The store, told Connection: close, closes first, so the connection's TIME_WAIT is the
   * store's: a gateway that closed every GET itself would hold one local port per GET for a minute, and enough
   * downloads a second would use up its ports towards one store. A store that keeps it open is cut after
   * CLOSE_WAIT_MS.
   */
  #awaitClose(): void {
    this.#socket.setTimeout(0);
    const timer = setTimeout(() => this.#socket.destroy(), CLOSE_WAIT_MS).unref();
    this.#socket.once('close', () => clearTimeout(timer));
  }

  /** Given up before the body's end: a reset where the socket is plain TCP, which leaves no TIME_WAIT either. */
  #abandon(): void {
    if (this.#socket.destroyed) return;
    if (this.#socket instanceof tls.TLSSocket || this.#socket.connecting) this.#socket.destroy();
    else this.#socket.resetAndDestroy();
  }

  #onHeadBytes(n: number): boolean {
    const bytes = this.#head!.length === 0 ? this.#chunk.subarray(0, n) : Buffer.concat([this.#head!, this.#chunk.subarray(0, n)]);
    const headEnd = bytes.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (bytes.length > MAX_HEAD_BYTES) this.#fail(connectionError(`response head over ${MAX_HEAD_BYTES} bytes`, 'Error', 'EPROTO'));
      // A copy: #chunk is read into again.
      else this.#head = Buffer.from(bytes);
      return true;
    }
    let response: HttpResponse;
    try {
      response = parseHead(bytes.toString('latin1', 0, headEnd), this);
    } catch (err) {
      this.#fail(err as Error);
      return true;
    }
    const length = response.headers['content-length'];
    const ok = response.statusCode >= 200 && response.statusCode < 300;
    if (length === undefined && ok) {
      this.#fail(connectionError('a response body without Content-Length', 'Error', 'EPROTO'));
      return true;
    }
    this.#head = undefined;
    this.#untilClose = length === undefined;
    this.#unreceived = length === undefined ? MAX_UNFRAMED_BODY_BYTES : Number(length);
    this.#resolveResponse({ response });
    // The body bytes that came with the head, moved to the buffer's start (copy() is memmove-safe).
    const bodyBytes = bytes.copy(this.#chunk, 0, headEnd + 4);
    return this.#onBodyBytes(bodyBytes);
  }

  #onEnd(): void {
    if (this.#complete) return;
    if (this.#untilClose) {
      this.#unreceived = 0;
      this.#wake();
      return;
    }
    this.#fail(connectionError(this.#head === undefined ? 'closed before the end of the body' : 'closed before a response'));
  }

  /** The whole body has come (it may not all be taken yet). */
  get #complete(): boolean {
    return this.#head === undefined && this.#unreceived === 0;
  }

  #fail(err: Error): void {
    if (this.#failure || this.#complete) return;
    this.#failure = err;
    this.#abandon();
    this.#rejectResponse(err);
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/** The request line and headers; a header that could split the request (CR, LF) is refused. */
function requestHead(request: HttpRequest): string {
  const query = buildQueryString(request.query ?? {});
  let head = `${request.method} ${request.path}${query ? `?${query}` : ''} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(request.headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`S3 request header ${name}: a line break`);
    if (name.toLowerCase() === 'connection') continue;
    head += `${name}: ${value}\r\n`;
  }
  return `${head}Connection: close\r\n\r\n`;
}

/** Status line and headers → an HttpResponse whose body is `body`; header names lower-cased, repeats joined. */
function parseHead(text: string, body: Readable): HttpResponse {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!status) throw connectionError('not an HTTP/1.1 response', 'Error', 'EPROTO');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw connectionError('a malformed response header', 'Error', 'EPROTO');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const length = headers['content-length'];
  if (length !== undefined && !/^\d{1,15}$/.test(length)) throw connectionError('a malformed Content-Length', 'Error', 'EPROTO');
  return new HttpResponse({ statusCode: Number(status[1]), reason: status[2], headers, body });
}
