/*
 * The transport of streamed GetObject requests (src/storage/s3/object-get-handler.ts): bodies read into one reused
 * buffer. Its use: byte-exact reads from Ceph RGW, ranged, over plain HTTP and over TLS with S3_CA_PATH, a reader
 * slower than the store's idle timeout, no port of the gateway left in TIME_WAIT. Its abuse, by a store or a
 * network that misbehaves: a connection cut in the middle of a body, a body without Content-Length, an endless
 * response head, a store gone silent. Each ends in a StorageError within the timeouts, never a hang or a short
 * file reported as whole.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { HttpRequest } from '@smithy/core/protocols';
import { beforeAll, describe, expect, it } from 'vitest';
import { Bucket, type ObjectInfo } from '../../src/storage/s3/bucket.js';
import { ObjectBody, ObjectGetHandler } from '../../src/storage/s3/object-get-handler.js';
import { S3FileReader } from '../../src/storage/s3/s3-reader.js';
import { StorageError } from '../../src/storage/storage.js';
import { pemPair } from '../support/certificates.js';
import { afterThisTest, tempDir } from '../support/fixtures.js';
import { s3TestBucket, skipS3, type S3TestBucket } from '../support/s3.js';

const OBJECT_BYTES = 3 * 1024 * 1024 + 12_345;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Listens on 127.0.0.1 and hands every connection to `onSocket`; closed after the test. */
async function listen(onSocket: (socket: net.Socket) => void, server: net.Server = net.createServer()): Promise<number> {
  // A TLS server also emits 'connection', for the TCP socket under each TLS one.
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterThisTest(() => new Promise((resolve) => server.close(() => resolve(undefined))));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => sockets.add(s));
  afterThisTest(() => sockets.forEach((s) => s.destroy()));
  return (server.address() as net.AddressInfo).port;
}

/** Relays each connection to RGW; `cutAfter` response bytes, the relay destroys both sides. */
function relayTo(target: URL, cutAfter = Number.POSITIVE_INFINITY): (socket: net.Socket) => void {
  return (client) => {
    const store = net.connect(Number(target.port), target.hostname);
    store.on('error', () => client.destroy());
    client.on('close', () => store.destroy());
    client.pipe(store);
    let relayed = 0;
    store.on('data', (chunk: Buffer) => {
      const room = cutAfter - relayed;
      relayed += chunk.length;
      if (chunk.length < room) client.write(chunk);
      else client.write(chunk.subarray(0, room), () => client.destroy());
    });
    store.on('end', () => client.end());
  };
}

/** Connections of this machine in TIME_WAIT towards local port `port` (/proc/net/tcp, tcp6). */
function timeWaitTowards(port: number): number {
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, , remote, state] = line.trim().split(/\s+/);
      if (state === '06' && parseInt(remote!.split(':')[1]!, 16) === port) count++;
    }
  }
  return count;
}

/** Reads the whole reader from `start` through a 512 KiB buffer, as a download does. */
async function readAll(reader: S3FileReader, start = 0): Promise<Buffer> {
  const buffer = Buffer.alloc(512 * 1024);
  const parts: Buffer[] = [];
  for (let position = start; ; ) {
    const n = await reader.read(buffer, position);
    if (n === 0) return Buffer.concat(parts);
    parts.push(Buffer.from(buffer.subarray(0, n)));
    position += n;
  }
}

/** An ObjectGetHandler's GET of `http://127.0.0.1:port/` with short timeouts, for stores that misbehave. */
async function getFrom(port: number): Promise<ObjectBody> {
  const handler = new ObjectGetHandler({ ca: undefined, connectionTimeoutMs: 1_000, idleTimeoutMs: 300 });
  const request = new HttpRequest({ protocol: 'http:', hostname: '127.0.0.1', port, method: 'GET', path: '/b/k', headers: { host: `127.0.0.1:${port}` } });
  const { response } = await handler.handle(request);
  return response.body as ObjectBody;
}

/** Every body byte, through readInto. */
async function drain(body: ObjectBody): Promise<number> {
  const buffer = Buffer.alloc(64 * 1024);
  let total = 0;
  for (let n; (n = await body.readInto(buffer)) > 0; ) total += n;
  return total;
}

describe.skipIf(skipS3)('streamed GetObject bodies', () => {
  let s3: S3TestBucket;
  let content: Buffer;
  let info: ObjectInfo;

  beforeAll(async () => {
    s3 = await s3TestBucket();
    content = randomBytes(OBJECT_BYTES);
    await s3.client.send(new PutObjectCommand({ Bucket: s3.settings.bucket, Key: 'object.bin', Body: content }));
    info = (await new Bucket(s3.settings).head('object.bin'))!;
  });

  it('reads an object byte for byte, whole and from offsets (streamed, and fetched whole near the end)', async () => {
    const bucket = new Bucket(s3.settings);
    const reader = new S3FileReader(bucket, 'object.bin', info);
    expect(sha256(await readAll(reader))).toBe(sha256(content));
    expect(sha256(await readAll(reader, 1_000_001))).toBe(sha256(content.subarray(1_000_001)));
    // The last 100,000 bytes are fetched whole, on a pooled connection.
    expect(sha256(await readAll(reader, OBJECT_BYTES - 100_000))).toBe(sha256(content.subarray(OBJECT_BYTES - 100_000)));
    await reader.close();
  });

  it('an object replaced after it was opened is not read: the GET is pinned to the opened version (If-Match)', async () => {
    const bucket = new Bucket(s3.settings);
    // Streamed, and fetched whole (up to 256 KiB).
    for (const bytes of [OBJECT_BYTES, 100_000]) {
      await s3.client.send(new PutObjectCommand({ Bucket: s3.settings.bucket, Key: 'replaced.bin', Body: content.subarray(0, bytes) }));
      const opened = (await bucket.head('replaced.bin'))!;
      await s3.client.send(new PutObjectCommand({ Bucket: s3.settings.bucket, Key: 'replaced.bin', Body: randomBytes(bytes) }));
      const reader = new S3FileReader(bucket, 'replaced.bin', opened);
      await expect(readAll(reader)).rejects.toBeInstanceOf(StorageError);
      await reader.close();
    }
  });

  it('reads over TLS from an https endpoint whose CA is S3_CA_PATH', async () => {
    const pair = await pemPair('localhost');
    const caPath = path.join(await tempDir(), 'ca.pem');
    await writeFile(caPath, pair.cert);
    const port = await listen(relayTo(new URL(s3.settings.endpoint!)), tls.createServer({ cert: pair.cert, key: pair.key }));
    const bucket = new Bucket({ ...s3.settings, endpoint: `https://localhost:${port}`, caPath });
    const reader = new S3FileReader(bucket, 'object.bin', info);
    expect(sha256(await readAll(reader, 7))).toBe(sha256(content.subarray(7)));
    await reader.close();
    // Without the CA, the store's certificate is not trusted.
    const untrusting = new S3FileReader(new Bucket({ ...s3.settings, endpoint: `https://localhost:${port}` }), 'object.bin', info);
    await expect(readAll(untrusting)).rejects.toBeInstanceOf(StorageError);
  });

  it('a reader slower than the idle timeout still gets every byte: the store waits on a paused socket', async () => {
    const e = s3.settings;
    const client = new S3Client({
      endpoint: e.endpoint,
      region: e.region,
      forcePathStyle: true,
      credentials: e.credentials,
      requestHandler: new ObjectGetHandler({ ca: undefined, connectionTimeoutMs: 1_000, idleTimeoutMs: 300 }),
    });
    const out = await client.send(new GetObjectCommand({ Bucket: e.bucket, Key: 'object.bin' }));
    const body = out.Body as unknown as ObjectBody;
    const buffer = Buffer.alloc(1024 * 1024);
    const parts: Buffer[] = [];
    for (let n; (n = await body.readInto(buffer)) > 0; ) {
      parts.push(Buffer.from(buffer.subarray(0, n)));
      if (parts.length <= 2) await new Promise((resolve) => setTimeout(resolve, 700));
    }
    expect(sha256(Buffer.concat(parts))).toBe(sha256(content));
  });

  it('GETs leave no connection in TIME_WAIT on the gateway: the store closes first, a GET given up is reset', async () => {
    const port = await listen(relayTo(new URL(s3.settings.endpoint!)));
    const bucket = new Bucket({ ...s3.settings, endpoint: `http://127.0.0.1:${port}` });
    const buffer = Buffer.alloc(512 * 1024);
    for (let i = 0; i < 10; i++) {
      const whole = new S3FileReader(bucket, 'object.bin', info);
      expect((await readAll(whole)).length).toBe(OBJECT_BYTES);
      await whole.close();
      const givenUp = new S3FileReader(bucket, 'object.bin', info);
      await givenUp.read(buffer, 0);
      await givenUp.close();
    }
    // The closes complete within a round trip on loopback.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(timeWaitTowards(port)).toBe(0);
  });

  it('a reader closed while its GET is on its way leaves no connection open', async () => {
    const open = new Set<net.Socket>();
    const relay = relayTo(new URL(s3.settings.endpoint!));
    const port = await listen((socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      relay(socket);
    });
    const bucket = new Bucket({ ...s3.settings, endpoint: `http://127.0.0.1:${port}` });
    for (let i = 0; i < 20; i++) {
      const reader = new S3FileReader(bucket, 'object.bin', info);
      const reading = reader.read(Buffer.alloc(512 * 1024), 0);
      // Closed at once, and after a few milliseconds: before and after the response has come.
      if (i % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 5));
      await reader.close();
      await reading.catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(open.size).toBe(0);
  });

  it('a connection cut in the middle of the body fails the read (451), after the bytes that came', async () => {
    const port = await listen(relayTo(new URL(s3.settings.endpoint!), 1024 * 1024));
    const reader = new S3FileReader(new Bucket({ ...s3.settings, endpoint: `http://127.0.0.1:${port}` }), 'object.bin', info);
    await expect(readAll(reader)).rejects.toMatchObject({ kind: 'unavailable' });
  });

  it('a store that cannot be reached fails the read (451)', async () => {
    const closed = await listen((socket) => socket.destroy());
    const reader = new S3FileReader(new Bucket({ ...s3.settings, endpoint: `http://127.0.0.1:${closed}` }), 'object.bin', info);
    await expect(readAll(reader)).rejects.toMatchObject({ kind: 'unavailable' });
  });
});

describe('a store that misbehaves', () => {
  it('a 200 without Content-Length is refused: its end could not be told from a cut', async () => {
    const port = await listen((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nsome bytes'));
    await expect(getFrom(port)).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('a response that is not HTTP/1.1 is refused', async () => {
    const port = await listen((socket) => socket.end('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    await expect(getFrom(port)).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('an endless response head is refused at 64 KiB, without reading on', async () => {
    let sent = 0;
    const port = await listen((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const more = () => {
        while (!socket.destroyed && sent < 16 * 1024 * 1024) {
          sent += 1024;
          if (!socket.write(`X-Filler: ${'a'.repeat(1010)}\r\n`)) return void socket.once('drain', more);
        }
      };
      more();
    });
    await expect(getFrom(port)).rejects.toMatchObject({ code: 'EPROTO' });
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });

  it('a store that goes silent in the middle of a body times out (idle timeout) instead of hanging', async () => {
    const port = await listen((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nfirst bytes'));
    const body = await getFrom(port);
    const started = performance.now();
    await expect(drain(body)).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('a store that never answers times out before a response', async () => {
    const port = await listen(() => undefined);
    await expect(getFrom(port)).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('a body longer than its Content-Length is cut at the length', async () => {
    const port = await listen((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello and more'));
    expect(await drain(await getFrom(port))).toBe(5);
  });

  it('an error document without Content-Length is read until the connection closes', async () => {
    const port = await listen((socket) => socket.end('HTTP/1.1 503 Slow Down\r\n\r\n<Error><Code>SlowDown</Code></Error>'));
    const body = await getFrom(port);
    expect(await drain(body)).toBe('<Error><Code>SlowDown</Code></Error>'.length);
  });

  it('a header that would split the request is refused before anything is sent', async () => {
    let connections = 0;
    const port = await listen(() => connections++);
    const handler = new ObjectGetHandler({ ca: undefined, connectionTimeoutMs: 1_000, idleTimeoutMs: 300 });
    const request = new HttpRequest({
      protocol: 'http:',
      hostname: '127.0.0.1',
      port,
      method: 'GET',
      path: '/b/k',
      headers: { 'if-match': '"etag"\r\nX-Injected: 1' },
    });
    await expect(handler.handle(request)).rejects.toThrow(/line break/);
    expect(connections).toBe(0);
  });
});
