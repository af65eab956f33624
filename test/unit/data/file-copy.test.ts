import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFileToSocket, readerToStream } from '../../../src/data/file-copy.js';
import { LocalFsStorage } from '../../../src/storage/local-fs.js';
import { StorageError, type FileReader } from '../../../src/storage/storage.js';
import { resolveVirtualPath, ROOT } from '../../../src/storage/virtual-path.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
let storage: LocalFsStorage;
const sockets: net.Socket[] = [];

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ftps-file-copy-'));
  storage = new LocalFsStorage(dir);
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await fs.rm(dir, { recursive: true, force: true });
});

async function fileWith(name: string, content: Buffer): Promise<FileReader> {
  await fs.writeFile(path.join(dir, name), content);
  return storage.openRead(resolveVirtualPath(ROOT, name));
}

/** A file of zeros without disk blocks: large enough that a copy of it blocks on a receiver that does not read. */
async function sparseFile(size: number): Promise<FileReader> {
  await fs.writeFile(path.join(dir, 'sparse.bin'), '');
  await fs.truncate(path.join(dir, 'sparse.bin'), size);
  return storage.openRead(resolveVirtualPath(ROOT, 'sparse.bin'));
}

/** A connected TCP pair on loopback: `sender` is the server side the copy writes to, `receiver` the client. */
async function socketPair(): Promise<{ sender: net.Socket; receiver: net.Socket }> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const receiver = net.connect((listener.address() as AddressInfo).port, '127.0.0.1');
  const [sender] = await Promise.all([accepted, new Promise((resolve) => receiver.once('connect', resolve))]);
  listener.close();
  sockets.push(sender, receiver);
  return { sender, receiver };
}

/** Everything the receiver gets until the sender ends. */
function received(receiver: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  receiver.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    receiver.once('end', () => resolve(Buffer.concat(chunks)));
    receiver.once('error', reject);
  });
}

/** Copies, ends the socket as the transfer does, and returns what arrived. */
async function copyAll(reader: FileReader, start: number): Promise<{ copied: number; progress: number; bytes: Buffer }> {
  const { sender, receiver } = await socketPair();
  const arrived = received(receiver);
  let progress = 0;
  const copied = await copyFileToSocket(reader, start, sender, new AbortController().signal, (n) => (progress += n));
  sender.end();
  return { copied, progress, bytes: await arrived };
}

/** A sender whose writes back up: the receiver reads nothing, so a large copy blocks on its write callbacks. */
async function blockedPair(): Promise<{ sender: net.Socket; receiver: net.Socket }> {
  const pair = await socketPair();
  pair.receiver.pause();
  pair.receiver.on('error', () => undefined);
  return pair;
}

describe('copyFileToSocket', () => {
  it.each([
    ['empty', 0],
    ['1 byte', 1],
    ['one buffer (512 KiB)', 512 * KiB],
    ['one buffer + 1', 512 * KiB + 1],
    ['3 MiB + 7', 3 * MiB + 7],
  ])('sends exactly the file: %s', async (_name, size) => {
    const content = randomBytes(size);
    const reader = await fileWith('f.bin', content);
    const { copied, progress, bytes } = await copyAll(reader, 0);
    await reader.close();
    expect(copied).toBe(size);
    expect(progress).toBe(size);
    expect(bytes.length).toBe(size);
    expect(sha256(bytes)).toBe(sha256(content));
  });

  it.each([1, 512 * KiB - 1, 512 * KiB, 512 * KiB + 1, 3 * MiB, 3 * MiB + 6, 3 * MiB + 7])(
    'sends the tail from offset %i',
    async (start) => {
      const content = randomBytes(3 * MiB + 7);
      const reader = await fileWith('f.bin', content);
      const { copied, bytes } = await copyAll(reader, start);
      await reader.close();
      expect(copied).toBe(content.length - start);
      expect(bytes.equals(content.subarray(start))).toBe(true);
    },
  );

  it('reads into the same two buffers throughout, and never overwrites one the socket still holds', async () => {
    const content = randomBytes(8 * MiB + 3);
    const inner = await fileWith('f.bin', content);
    const seen = new Set<ArrayBufferLike>();
    const reader: FileReader = {
      read: (buffer, position) => {
        seen.add(buffer.buffer);
        return inner.read(buffer, position);
      },
      close: () => inner.close(),
    };
    const { sender, receiver } = await socketPair();
    // A slow receiver, so that writes are still pending while the next buffer is read.
    const chunks: Buffer[] = [];
    receiver.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      receiver.pause();
      setTimeout(() => receiver.resume(), 1);
    });
    const ended = new Promise((resolve) => receiver.once('end', resolve));
    expect(await copyFileToSocket(reader, 0, sender, new AbortController().signal)).toBe(content.length);
    sender.end();
    await ended;
    await reader.close();
    expect(seen.size).toBe(2);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
  });

  it('rejects at once on abort while the receiver is not reading, and the reader can then be closed', async () => {
    const reader = await sparseFile(256 * MiB);
    const { sender } = await blockedPair();
    const controller = new AbortController();
    let progress = 0;
    const copy = copyFileToSocket(reader, 0, sender, controller.signal, (n) => (progress += n));
    // Blocked on backpressure: the kernel buffers are full and no write callback comes any more.
    await sleep(300);
    expect(progress).toBeLessThan(256 * MiB);
    controller.abort();
    // Rejected from the abort event itself: settled before the event loop turns once, with no drain or timer awaited.
    const nextTurn = new Promise((resolve) => setImmediate(() => resolve('still pending')));
    expect(await Promise.race([copy.catch((err: unknown) => err), nextTurn])).toMatchObject({ name: 'AbortError' });
    await reader.close();
    sender.destroy();
  });

  it('rejects at once when the signal was aborted before it started', async () => {
    const reader = await fileWith('f.bin', randomBytes(10));
    const { sender, receiver } = await socketPair();
    receiver.on('data', () => expect.unreachable('no byte may be sent'));
    await expect(copyFileToSocket(reader, 0, sender, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    await reader.close();
  });

  it('rejects with the socket error when the socket fails while a write waits (stall timeout)', async () => {
    const reader = await sparseFile(256 * MiB);
    const { sender } = await blockedPair();
    const copy = copyFileToSocket(reader, 0, sender, new AbortController().signal);
    await sleep(300);
    sender.destroy(new Error('data connection stalled'));
    await expect(copy).rejects.toThrow('data connection stalled');
    await reader.close();
  });

  it('rejects, not as a StorageError, when the receiver resets the connection', async () => {
    const reader = await sparseFile(256 * MiB);
    const { sender, receiver } = await socketPair();
    const gotSome = new Promise((resolve) => receiver.once('data', resolve));
    const copy = copyFileToSocket(reader, 0, sender, new AbortController().signal);
    copy.catch(() => undefined);
    await gotSome;
    receiver.resetAndDestroy();
    const err: unknown = await copy.then(
      () => expect.unreachable('the copy cannot complete'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(StorageError);
    await reader.close();
  });

  it('rejects with the StorageError of a failing read, with writes still pending', async () => {
    const inner = await fileWith('f.bin', randomBytes(4 * MiB));
    let reads = 0;
    const reader: FileReader = {
      read: (buffer, position) =>
        ++reads === 4 ? Promise.reject(new StorageError('io')) : inner.read(buffer, position),
      close: () => inner.close(),
    };
    const { sender, receiver } = await socketPair();
    receiver.on('data', () => undefined);
    await expect(copyFileToSocket(reader, 0, sender, new AbortController().signal)).rejects.toMatchObject({
      name: 'StorageError',
      kind: 'io',
    });
    expect(reads).toBe(4);
    sender.destroy();
    await reader.close();
    // A pending write that now fails must not surface as an unhandled rejection (vitest reports those).
    await sleep(50);
  });

  it('ends early with a prefix when the file is truncated mid-copy, never hangs', async () => {
    const content = randomBytes(32 * MiB);
    const reader = await fileWith('t.bin', content);
    const { sender, receiver } = await socketPair();
    const chunks: Buffer[] = [];
    let size = 0;
    let paused = false;
    const firstMiB = new Promise<void>((resolve) =>
      receiver.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= MiB && !paused) {
          // Once: the copy is then blocked on backpressure with most of the file not read yet.
          paused = true;
          receiver.pause();
          resolve();
        }
      }),
    );
    const ended = new Promise((resolve) => receiver.once('end', resolve));
    const copy = copyFileToSocket(reader, 0, sender, new AbortController().signal);
    await firstMiB;
    await sleep(100);
    await fs.truncate(path.join(dir, 't.bin'), 2 * MiB);
    receiver.resume();
    const copied = await copy;
    sender.end();
    await ended;
    await reader.close();
    const bytes = Buffer.concat(chunks);
    expect(bytes.length).toBe(copied);
    expect(copied).toBeGreaterThanOrEqual(2 * MiB);
    expect(copied).toBeLessThan(content.length);
    expect(bytes.equals(content.subarray(0, copied))).toBe(true);
  });
});

describe('readerToStream', () => {
  it.each([
    [0, 0],
    [1, 0],
    [200 * KiB + 5, 0],
    [200 * KiB + 5, 1],
    [200 * KiB + 5, 64 * KiB],
    [200 * KiB + 5, 200 * KiB + 5],
  ])('streams a %i-byte file from offset %i', async (size, start) => {
    const content = randomBytes(size);
    const reader = await fileWith('s.bin', content);
    const chunks: Buffer[] = [];
    for await (const chunk of readerToStream(reader, start)) chunks.push(chunk as Buffer);
    await reader.close();
    expect(Buffer.concat(chunks).equals(content.subarray(start))).toBe(true);
  });

  it('fails with the reader StorageError', async () => {
    const reader: FileReader = {
      read: () => Promise.reject(new StorageError('io')),
      close: async () => undefined,
    };
    const stream = readerToStream(reader, 0);
    await expect(stream.toArray()).rejects.toMatchObject({ name: 'StorageError', kind: 'io' });
  });
});
