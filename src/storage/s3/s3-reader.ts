import { StorageError, type FileReader } from '../storage.js';
import type { Bucket, ObjectInfo } from './bucket.js';
import type { ObjectBody } from './object-get-handler.js';
import { s3StorageError } from './s3-errors.js';

/**
 * Reads an object in order from one streaming GET: a read at the position where the last one ended takes the
 * next bytes of the body; a read elsewhere (a restarted transfer) starts a ranged GET there. Every GET asks for
 * the version that was opened (If-Match): an object replaced meanwhile fails the transfer rather than mixing two.
 */
export class S3FileReader implements FileReader {
  #body: ObjectBody | undefined;
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
    this.#body = await this.bucket.get(this.key, this.info.etag, position, this.#abort.signal);
    this.#position = position;
  }

  #stop(): void {
    this.#abort.abort();
    this.#body?.destroy();
    this.#body = undefined;
  }
}
