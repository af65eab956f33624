import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Client, FileType } from 'basic-ftp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';
import { ftpsAccess } from '../support/ftps-client.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let srv: RunningServer;
const clients: Client[] = [];

beforeAll(async () => {
  srv = await startServer({ FTPS_IMPLICIT_SSL: 'true' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await srv.stop();
});

async function connectImplicit(): Promise<Client> {
  const { client, welcome } = await ftpsAccess(srv.port, TEST_USER, TEST_PASSWORD, { implicit: true });
  clients.push(client);
  expect(welcome.code).toBe(220);
  return client;
}

async function download(client: Client, remote: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  expect((await client.downloadTo(sink, remote)).code).toBe(226);
  return Buffer.concat(chunks);
}

/** Everything a plain-text client receives until the server closes the connection. */
function plainConnection(port: number): { socket: net.Socket; received: Buffer[]; closed: Promise<void>; connected: Promise<void> } {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const received: Buffer[] = [];
  socket.on('data', (c: Buffer) => received.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connected = new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, received, closed, connected };
}

describe('implicit FTPS (FTPS_IMPLICIT_SSL=true)', () => {
  it('serves basic-ftp with secure: "implicit": upload, list, download', async () => {
    const client = await connectImplicit();
    const control = client.ftp.socket as TLSSocket;
    expect(control.encrypted).toBe(true);
    // Implicit mode does not offer AUTH TLS.
    const feat = await client.send('FEAT');
    expect(feat.message).not.toMatch(/AUTH TLS/);
    expect(feat.message).toMatch(/PROT/);

    const content = randomBytes(1024 * 1024 + 17);
    expect((await client.uploadFrom(Readable.from([content]), 'implicit.bin')).code).toBe(226);
    expect(sha256(await readFile(path.join(srv.root, 'implicit.bin')))).toBe(sha256(content));

    await writeFile(path.join(srv.root, 'note.txt'), 'hello');
    const listing = await client.list();
    expect(listing.map((f) => [f.name, f.type, f.size]).sort()).toEqual([
      ['implicit.bin', FileType.File, content.length],
      ['note.txt', FileType.File, 5],
    ]);
    expect(sha256(await download(client, 'implicit.bin'))).toBe(sha256(content));
    expect((await download(client, 'note.txt')).toString()).toBe('hello');
    const transfers = srv.logs.filter((l) => l.msg === 'transfer');
    expect(transfers.length).toBeGreaterThanOrEqual(4);
    expect(transfers.every((l) => l.protection === 'tls' && l.result === 'ok')).toBe(true);
  });

  it('sends no 220 to a plain-text client and closes it; TLS clients are still served', async () => {
    const plain = plainConnection(srv.port);
    await plain.connected;
    // A plain FTP client waits for the greeting: it must not come in clear text. The client then gives up
    // waiting and sends its first command in clear text, which the server must treat as a failed handshake.
    const firstCommand = new Promise<void>((resolve) => setTimeout(resolve, 300));
    await Promise.race([firstCommand, plain.closed]);
    expect(Buffer.concat(plain.received).toString('latin1')).not.toMatch(/220/);
    plain.socket.write('USER alice\r\n');
    await plain.closed;
    const text = Buffer.concat(plain.received).toString('latin1');
    expect(text).not.toMatch(/^\d{3}[ -]/m);
    expect(text).not.toContain('220');

    // A client speaking plain FTP with a full login sequence at once gets nothing readable either.
    const eager = plainConnection(srv.port);
    await eager.connected;
    eager.socket.write('USER alice\r\nPASS x\r\nLIST\r\n');
    await eager.closed;
    expect(Buffer.concat(eager.received).toString('latin1')).not.toMatch(/\d{3} /);

    // The listener is unharmed.
    await writeFile(path.join(srv.root, 'after.txt'), 'still here');
    const client = await connectImplicit();
    expect(await client.pwd()).toBe('/');
    expect((await client.list()).map((f) => f.name)).toContain('after.txt');
    expect((await download(client, 'after.txt')).toString()).toBe('still here');
  });
});
