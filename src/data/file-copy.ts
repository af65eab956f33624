import { Readable, type Writable } from 'node:stream';
import type { FileReader } from '../storage/storage.js';

const BUFFER_COUNT = 2;
/** Per buffer, for files; a listing, far smaller and produced line by line, passes its own. */
const FILE_BUFFER_SIZE = 512 * 1024;
const MIN_BUFFER_SIZE = 16 * 1024;

/**
 * Buffers no larger than the file: a small download needs no 1 MiB of them (each allocation counts towards V8's
 * next full collection; see upload-receiver.ts).
 */
export function bufferSizeFor(bytes: number): number {
  return Math.min(FILE_BUFFER_SIZE, Math.max(MIN_BUFFER_SIZE, Math.ceil(bytes / MIN_BUFFER_SIZE) * MIN_BUFFER_SIZE));
}
// TYPE A downloads are rare and go through a byte-by-byte transform anyway: plain allocation is good enough there.
const STREAM_CHUNK = 64 * 1024;

/**
 * Copies a file into a (TLS) socket from `start` to the end of the file through two reused buffers: one is
 * being read while the other is being written, and a buffer is refilled only after the socket's write
 * callback for it has run. fs.ReadStream instead allocates a fresh buffer per read; at 1 GB/s that is
 * thousands of buffers a second for the GC and fresh pages for the kernel to zero.
 *
 * Resolves with the bytes copied, once the socket has taken all of them; the socket is not ended. Rejects at
 * once on abort (signal.reason), when the socket fails or closes, or with the reader's StorageError. The
 * caller then destroys the socket and closes the reader; a read still running may finish after that.
 */
export async function copyFileToSocket(
  reader: FileReader,
  start: number,
  socket: Writable,
  signal: AbortSignal,
  onProgress: (bytes: number) => void = () => undefined,
  bufferSize = FILE_BUFFER_SIZE,
): Promise<number> {
  const buffers = Array.from({ length: BUFFER_COUNT }, () => Buffer.allocUnsafeSlow(bufferSize));
  const writes: Array<Promise<void> | undefined> = [];
  let position = start;
  for (let i = 0; ; i = (i + 1) % BUFFER_COUNT) {
    const previous = writes[i];
    if (previous) await interruptible(previous, socket, signal);
    const buffer = buffers[i]!;
    // A file truncated meanwhile reads 0 bytes here: the copy ends early with what the file still holds.
    const bytesRead = await interruptible(reader.read(buffer, position), socket, signal);
    if (bytesRead === 0) break;
    position += bytesRead;
    const written = write(socket, buffer.subarray(0, bytesRead)).then(() => onProgress(bytesRead));
    // Awaited when the buffer comes round again, or below; if the copy stops first, nobody awaits it.
    written.catch(() => undefined);
    writes[i] = written;
  }
  await interruptible(Promise.all(writes), socket, signal);
  return position - start;
}

function write(socket: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
}

/**
 * `step`, unless the transfer is aborted or the socket fails or closes first. Without this, a write to a
 * client that stopped reading would keep an ABOR waiting until the stall timeout.
 */
function interruptible<T>(step: Promise<T>, socket: Writable, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stop = (err: unknown) => {
      cleanup();
      reject(err);
    };
    const onAbort = () => stop(signal.reason);
    const onClose = () => stop(closedError(socket));
    const cleanup = () => {
      signal.removeEventListener('abort', onAbort);
      socket.off('error', stop);
      socket.off('close', onClose);
    };
    // Subscribed first, so that a step left behind never becomes an unhandled rejection.
    step.then((value) => {
      cleanup();
      resolve(value);
    }, stop);
    if (signal.aborted) onAbort();
    else if (socket.destroyed) onClose();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('error', stop);
      socket.on('close', onClose);
    }
  });
}

const closedError = (socket: Writable): Error =>
  socket.errored ?? new Error('Data connection closed during the transfer');

/** The file from `start` on as a stream, for TYPE A downloads; the caller closes the reader. */
export function readerToStream(reader: FileReader, start: number): Readable {
  let position = start;
  const stream = new Readable({
    highWaterMark: STREAM_CHUNK,
    read() {
      const buffer = Buffer.allocUnsafe(STREAM_CHUNK);
      reader.read(buffer, position).then(
        (bytesRead) => {
          position += bytesRead;
          stream.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
        },
        (err: unknown) => stream.destroy(err as Error),
      );
    },
  });
  return stream;
}

/**
 * Text lines (a listing) as a FileReader, so that they travel like a download, through two reused buffers:
 * each read fills the buffer with as many whole CRLF-terminated lines as fit. Allocating a buffer per chunk
 * instead left 8 parallel listings of 100,000 entries ~30 MiB of freed but unreturned memory.
 */
export class LinesReader implements FileReader {
  readonly #lines: AsyncIterator<string>;
  /** A line that did not fit into the last buffer. */
  #carry: Buffer | undefined;
  #done = false;

  constructor(lines: AsyncIterable<string>) {
    this.#lines = lines[Symbol.asyncIterator]();
  }

  async read(buffer: Buffer): Promise<number> {
    let used = 0;
    for (;;) {
      if (this.#carry) {
        // A line longer than the buffer is cut: listing lines are far shorter than any buffer we use.
        const n = this.#carry.copy(buffer, used);
        if (n < this.#carry.length && used > 0) return used;
        used += n;
        this.#carry = undefined;
      }
      if (this.#done || used === buffer.length) return used;
      const next = await this.#lines.next();
      if (next.done) {
        this.#done = true;
        return used;
      }
      const text = `${next.value}\r\n`;
      const written = buffer.write(text, used);
      if (written === Buffer.byteLength(text)) used += written;
      else this.#carry = Buffer.from(text);
    }
  }

  async close(): Promise<void> {
    this.#done = true;
    await this.#lines.return?.();
  }
}
