import { StorageError, type FileReader } from '../storage.js';
import type { Bucket, ObjectInfo } from './bucket.js';
import { s3StorageError } from './s3-errors.js';

/**
 * At most this many bytes from the read position to the end are fetched whole, on a pooled connection; more are
 * streamed on a connection of their own (object-get-handler.ts). As much as that transport's read buffer.
 */
const WHOLE_GET_MAX_BYTES = 256 * 1024;

/**
 * Reads an object in order from one GET: a read at the position where the last one ended takes the next bytes of
 * the body; a read elsewhere (a restarted transfer) starts a ranged GET there. Every GET asks for the version that
 * was opened (If-Match): an object replaced meanwhile fails the transfer rather than mixing two.
 */
export class S3FileReader implements FileReader {
  #body: Body | undefined;
  #abort = new AbortController();
  /** The position of the next byte the body yields. */
  #position = 0;
  #closed = false;

  constructor(
    private readonly bucket: Bucket,
    private readonly key: string,
    private readonly info: ObjectInfo,
  ) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    // A read after close() would open a GET that nothing closes any more.
    if (this.#closed) throw new StorageError('io', 'Reader closed');
    if (position >= this.info.size || buffer.length === 0) return 0;
    if (this.#body === undefined || position !== this.#position) await this.#open(position);
    let filled = 0;
    try {
      while (filled < buffer.length) {
        const n = await this.#body!.readInto(buffer.subarray(filled));
        if (n === 0) break;
        filled += n;
      }
    } catch (err) {
      throw s3StorageError(err, 'GetObject');
    }
    this.#position += filled;
    return filled;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#stop();
    return Promise.resolve();
  }

  async #open(position: number): Promise<void> {
    this.#stop();
    this.#abort = new AbortController();
    const { key, info } = this;
    const signal = this.#abort.signal;
    this.#body =
      info.size - position <= WHOLE_GET_MAX_BYTES
        ? bytesBody(await this.bucket.getBytes(key, info.etag, position, info.size, signal))
        : await this.bucket.get(key, info.etag, position, signal);
    this.#position = position;
  }

  #stop(): void {
    this.#abort.abort();
    this.#body?.destroy();
    this.#body = undefined;
  }
}

/** A GET's body as the reader takes it: an ObjectBody, or bytesBody(). */
interface Body {
  readInto(target: Buffer): Promise<number>;
  destroy(): void;
}

/** Bytes in memory, read as a body is. */
function bytesBody(bytes: Buffer): Body {
  let taken = 0;
  return {
    readInto: (target) => {
      const n = bytes.copy(target, 0, taken);
      taken += n;
      return Promise.resolve(n);
    },
    destroy: () => undefined,
  };
}
