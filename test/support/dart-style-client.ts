import tls from 'node:tls';
import { expect } from 'vitest';
import { readAll, RawFtpClient } from './raw-client.js';
import { TEST_PASSWORD, TEST_USER } from './server.js';

/** A DartFTP-like client: a RawFtpClient that sets data connections up with PASV only. */
export class DartStyleClient {
  private constructor(readonly control: RawFtpClient) {}

  static async connect(port: number, mode: 'implicit' | 'explicit'): Promise<DartStyleClient> {
    const control = await RawFtpClient.connect(port, { implicitTls: mode === 'implicit' });
    expect((await control.read()).code).toBe(220);
    if (mode === 'explicit') expect((await control.upgrade()).code).toBe(234);
    // No PBSZ, no PROT: the data channel is protected because the server is configured so.
    expect((await control.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await control.send('TYPE I')).code).toBe(200);
    return new DartStyleClient(control);
  }

  /** PASV, and the port from the 227 reply `(h1,h2,h3,h4,p1,p2)`. */
  async pasv(): Promise<number> {
    const r = await this.control.send('PASV');
    expect(r.code).toBe(227);
    const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
    expect(m).not.toBeNull();
    const [h1, h2, h3, h4, p1, p2] = m!.slice(1).map(Number) as [number, number, number, number, number, number];
    expect(`${h1}.${h2}.${h3}.${h4}`).toBe('127.0.0.1');
    return p1 * 256 + p2;
  }

  /** A data connection that is TLS from its first byte and resumes the control connection's session. */
  async openData(port: number): Promise<tls.TLSSocket> {
    const socket = tls.connect({ port, host: '127.0.0.1', session: this.control.tlsSession, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.isSessionReused()).toBe(true);
    return socket;
  }

  /** PASV, data connection, then the command (connect-first, as DartFTP does). */
  async download(command: string): Promise<Buffer> {
    const data = await this.openData(await this.pasv());
    const body = readAll(data);
    expect((await this.control.send(command)).code).toBe(150);
    const bytes = await body;
    expect((await this.control.read()).code).toBe(226);
    return bytes;
  }

  async upload(command: string, content: Buffer): Promise<void> {
    const data = await this.openData(await this.pasv());
    expect((await this.control.send(command)).code).toBe(150);
    await new Promise<void>((resolve) => data.end(content, resolve));
    expect((await this.control.read()).code).toBe(226);
    data.destroy();
  }

  close(): void {
    this.control.close();
  }
}

