import type { Readable } from 'node:stream';
import type { FileReader } from '../storage.js';
import type { Bucket, ObjectInfo } from './bucket.js';
import { s3StorageError } from './s3-errors.js';

/**
 * Reads an object in order from one streaming GET: a read at the position where the last one ended takes the
 * next bytes of the stream; a read elsewhere (a restarted transfer) starts a ranged GET there. Every GET asks for
 * the version that was opened (If-Match): an object replaced meanwhile fails the transfer rather than mixing two.
 */
export class S3FileReader implements FileReader {
  #body: AsyncIterator<Buffer> | undefined;
  #stream: Readable | undefined;
  #abort = new AbortController();
  /** The position of the next byte the stream yields (the first of #rest when there is one). */
  #position = 0;
  #rest: Buffer | undefined;

  constructor(
    private readonly bucket: Bucket,
    private readonly key: string,
    private readonly info: ObjectInfo,
  ) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    if (position >= this.info.size || buffer.length === 0) return 0;
    if (this.#body === undefined || position !== this.#position) await this.#open(position);
    let filled = 0;
    try {
      while (filled < buffer.length) {
        const chunk = this.#rest ?? (await this.#next());
        if (chunk === undefined) break;
        const taken = chunk.copy(buffer, filled);
        filled += taken;
        this.#rest = taken < chunk.length ? chunk.subarray(taken) : undefined;
      }
    } catch (err) {
      throw s3StorageError(err, 'GetObject');
    }
    this.#position += filled;
    return filled;
  }

  close(): Promise<void> {
    this.#stop();
    return Promise.resolve();
  }

  async #next(): Promise<Buffer | undefined> {
    const { value, done } = await this.#body!.next();
    return done ? undefined : value;
  }

  async #open(position: number): Promise<void> {
    this.#stop();
    this.#abort = new AbortController();
    this.#stream = await this.bucket.get(this.key, this.info.etag, position, this.#abort.signal);
    this.#body = this.#stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.#position = position;
  }

  #stop(): void {
    this.#abort.abort();
    this.#stream?.destroy();
    this.#stream = undefined;
    this.#body = undefined;
    this.#rest = undefined;
  }
}
