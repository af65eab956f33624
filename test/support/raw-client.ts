import net from 'node:net';
import tls from 'node:tls';
import { expect } from 'vitest';
import { TEST_PASSWORD, TEST_USER } from './server.js';

export interface FtpReply {
  readonly code: number;
  /** The whole reply text, lines joined with \n, codes included. */
  readonly text: string;
}

/**
 * A minimal FTP control client that speaks raw lines, for tests that must send what real clients would
 * not (bad sequences, garbage, no PROT P) and see the exact replies.
 */
export class RawFtpClient {
  private buffer = '';
  private readonly replies: FtpReply[] = [];
  private waiter: (() => void) | undefined;
  private closedFlag = false;
  socket: net.Socket;
  /** The TLS session of the control connection, for data connections that must resume it. */
  tlsSession: Buffer | undefined;

  private constructor(
    socket: net.Socket,
    /** The server's address: data connections go there too. */
    readonly host: string,
  ) {
    this.socket = socket;
    this.listen(socket);
  }

  /** `prelude` is written before anything else, as a load balancer writes its PROXY protocol header. */
  static async connect(
    port: number,
    o: { implicitTls?: boolean; host?: string; localAddress?: string; prelude?: Buffer } = {},
  ): Promise<RawFtpClient> {
    const host = o.host ?? '127.0.0.1';
    const socket = o.prelude
      ? await withPrelude(net.connect({ port, host, localAddress: o.localAddress }), o.prelude, o.implicitTls ?? false)
      : o.implicitTls
        ? tls.connect({ port, host, rejectUnauthorized: false })
        : net.connect({ port, host, localAddress: o.localAddress });
    const client = new RawFtpClient(socket, host);
    if (socket instanceof tls.TLSSocket) client.trackSession(socket);
    // A socket that carried a prelude is connected already; with implicit TLS its handshake is still to come.
    if (socket.connecting || o.implicitTls) {
      await new Promise<void>((resolve, reject) => {
        socket.once(o.implicitTls ? 'secureConnect' : 'connect', () => resolve());
        socket.once('error', reject);
      });
    }
    return client;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private listen(socket: net.Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      this.parse();
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  private trackSession(socket: tls.TLSSocket): void {
    socket.on('session', (session: Buffer) => (this.tlsSession = session));
  }

  private parse(): void {
    for (;;) {
      const first = /^(\d{3})([ -])/.exec(this.buffer);
      if (!first) {
        const nl = this.buffer.indexOf('\n');
        if (nl === -1) return;
        this.buffer = this.buffer.slice(nl + 1);
        continue;
      }
      const code = first[1]!;
      let end: number;
      if (first[2] === ' ') {
        end = this.buffer.indexOf('\n');
      } else {
        const m = new RegExp(`(^|\\n)${code} [^\\n]*\\n`).exec(this.buffer.slice(4));
        end = m ? 4 + m.index + m[0].length - 1 : -1;
      }
      if (end === -1) return;
      const text = this.buffer.slice(0, end).replace(/\r/g, '');
      this.buffer = this.buffer.slice(end + 1);
      this.replies.push({ code: Number(code), text });
      this.waiter?.();
    }
  }

  /** The next reply, or throws after timeoutMs. */
  async read(timeoutMs = 5000): Promise<FtpReply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closedFlag) throw new Error('connection closed');
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error('timed out waiting for a reply');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.replies.shift()!;
  }

  writeRaw(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends a command and returns its (first) reply. */
  async send(line: string, timeoutMs?: number): Promise<FtpReply> {
    this.socket.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** AUTH TLS and the handshake; `options` adds client TLS options (e.g. `maxVersion`). */
  async upgrade(options: tls.ConnectionOptions = {}): Promise<FtpReply> {
    const r = await this.send('AUTH TLS');
    if (r.code !== 234) return r;
    const raw = this.socket;
    raw.removeAllListeners('data');
    // The same (absent) SNI as the data connections: OpenSSL does not resume a TLS 1.3 session under another name.
    const secure = tls.connect({ ...options, socket: raw, host: raw.remoteAddress, rejectUnauthorized: false });
    // TLS 1.3 tickets can arrive together with the end of the handshake: listen before it completes.
    this.trackSession(secure);
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.listen(secure);
    return r;
  }

  async login(user: string, password: string): Promise<FtpReply> {
    const u = await this.send(`USER ${user}`);
    if (u.code !== 331) return u;
    return this.send(`PASS ${password}`);
  }

  /** EPSV, then a data connection: TLS resuming the control session when `tls` says so. */
  async openPassive(o: { tls?: boolean; resume?: boolean; prelude?: Buffer } = {}): Promise<net.Socket> {
    const r = await this.send('EPSV');
    const port = /\(\|\|\|(\d+)\|\)/.exec(r.text)?.[1];
    if (r.code !== 229 || !port) throw new Error(`EPSV failed: ${r.text}`);
    const session = o.resume === false ? undefined : this.tlsSession;
    return connectData(Number(port), { tls: o.tls ?? false, session, host: this.host, prelude: o.prelude });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A data connection; with TLS the client role, resuming `session` when given (as FileZilla does). `prelude` is
 * written first, before the TLS handshake (a PROXY protocol header).
 */
export async function connectData(
  port: number,
  o: { tls: boolean; session?: Buffer | undefined; host?: string | undefined; prelude?: Buffer | undefined },
): Promise<net.Socket> {
  const host = o.host ?? '127.0.0.1';
  if (o.prelude) return withPrelude(net.connect({ port, host }), o.prelude, o.tls, { session: o.session });
  const socket = o.tls
    ? tls.connect({ port, host, rejectUnauthorized: false, session: o.session })
    : net.connect({ port, host });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

/** Once `raw` is connected: writes `prelude`, then starts TLS on it when `secure` (without awaiting the handshake). */
async function withPrelude(raw: net.Socket, prelude: Buffer, secure: boolean, options: tls.ConnectionOptions = {}): Promise<net.Socket> {
  await new Promise<void>((resolve, reject) => {
    raw.once('connect', () => resolve());
    raw.once('error', reject);
  });
  raw.write(prelude);
  // `host` as the other connections give it: an IP, so no SNI, which session resumption must match.
  return secure ? tls.connect({ ...options, socket: raw, host: raw.remoteAddress, rejectUnauthorized: false }) : raw;
}

/** Reads a data connection to its end. Rejects if it is reset or fails its handshake. */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** 220, then AUTH TLS and the handshake (nothing more in implicit mode, where TLS came first). */
export async function secureClient(port: number, o: { implicitTls?: boolean } = {}): Promise<RawFtpClient> {
  const c = await RawFtpClient.connect(port, o);
  expect((await c.read()).code).toBe(220);
  if (!o.implicitTls) expect((await c.upgrade()).code).toBe(234);
  return c;
}

/** Logged in over TLS as the test user; with `prot` (default) also PBSZ 0 + PROT P, as FileZilla does. */
export async function loggedIn(port: number, o: { implicitTls?: boolean; prot?: boolean } = {}): Promise<RawFtpClient> {
  const c = await secureClient(port, o);
  expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
  if (o.prot ?? true) {
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
  }
  return c;
}

/** NLST over a protected passive data connection: the names, with the 150 and 226 replies checked. */
export async function listNames(c: RawFtpClient): Promise<string[]> {
  const data = await c.openPassive({ tls: true });
  const listing = readAll(data);
  expect((await c.send('NLST')).code).toBe(150);
  const names = (await listing).toString().split('\r\n');
  expect((await c.read()).code).toBe(226);
  return names;
}
