import type { CompletedPart } from '@aws-sdk/client-s3';
import { StorageError, type UploadTarget } from '../storage.js';
import { MAX_COPY_BYTES, MAX_PARTS, MIN_PART_BYTES, type Bucket, type ObjectInfo } from './bucket.js';
import { s3StorageError } from './s3-errors.js';

/** Part uploads of one upload in flight at once: with the part being filled, at most 5 parts are in memory. */
const PARTS_IN_FLIGHT = 4;
/** The first part buffer; it doubles up to the part size, so that a small file never holds a whole part. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/** What an upload keeps of the object it replaces: its first `bytes` (append, resume), read from `source`. */
export interface KeptPrefix {
  readonly bytes: number;
  readonly source?: ObjectInfo & { readonly key: string };
}

/**
 * An upload into one object. Bytes are gathered into parts of S3_PART_SIZE; a file that fits one part is one
 * PutObject at commit, a larger one a multipart upload completed at commit — before that no reader sees any of
 * it, and abort() (or a failed commit) aborts the multipart upload, so the old object stays as it was.
 *
 * S3 cannot append: the kept prefix of the old object is copied inside the store as the first parts
 * (UploadPartCopy) when it is at least MIN_PART_BYTES, else read into the first part (under 5 MiB).
 */
export class S3Upload implements UploadTarget {
  readonly startSize: number;
  #part: Buffer;
  /** Part buffers whose upload has finished, filled again rather than allocated anew (see #sendPart). */
  readonly #spare: Buffer[] = [];
  #filled = 0;
  #nextPart = 1;
  /** The CreateMultipartUpload under way or done, once a part needs it: abort() may come while a write() waits for it. */
  #creating: Promise<string> | undefined;
  readonly #parts: CompletedPart[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #failure: StorageError | undefined;
  #settled = false;
  #prepared: Promise<void> | undefined;

  constructor(
    private readonly bucket: Bucket,
    private readonly key: string,
    private readonly partSize: number,
    private readonly kept: KeptPrefix,
  ) {
    this.startSize = kept.bytes;
    this.#part = Buffer.allocUnsafe(Math.min(partSize, FIRST_BUFFER_BYTES));
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    this.#checkOpen();
    this.#prepared ??= this.#keepPrefix();
    await this.#prepared;
    for (const chunk of chunks) {
      let offset = 0;
      while (offset < chunk.length) {
        if (this.#filled === this.#part.length) this.#grow();
        const copied = chunk.copy(this.#part, this.#filled, offset);
        this.#filled += copied;
        offset += copied;
        if (this.#filled === this.partSize) await this.#sendPart();
      }
    }
  }

  async commit(): Promise<void> {
    this.#checkOpen();
    this.#settled = true;
    try {
      this.#prepared ??= this.#keepPrefix();
      await this.#prepared;
      if (this.#creating === undefined) {
        await this.bucket.put(this.key, this.#part.subarray(0, this.#filled));
      } else {
        if (this.#filled > 0) await this.#sendPart();
        await Promise.all(this.#inFlight);
        if (this.#failure) throw this.#failure;
        await this.bucket.completeMultipart(this.key, await this.#creating, this.#parts.sort((a, b) => a.PartNumber! - b.PartNumber!));
      }
    } catch (err) {
      await this.#discard();
      throw s3StorageError(err, 'upload');
    } finally {
      this.#release();
    }
  }

  async abort(): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    await this.#discard();
    this.#release();
  }

  #checkOpen(): void {
    if (this.#failure) throw this.#failure;
    if (this.#settled) throw new StorageError('io', 'Upload already finished');
  }

  /** The old object's first bytes, as parts copied inside the store or as the start of the first part. */
  async #keepPrefix(): Promise<void> {
    const { bytes, source } = this.kept;
    if (bytes === 0 || !source) return;
    if (bytes < MIN_PART_BYTES) {
      this.#part = await this.bucket.getBytes(source.key, source.etag, 0, bytes);
      this.#filled = bytes;
      return;
    }
    // Equal pieces of at most 5 GiB; each is at least 5 MiB since the whole is.
    const pieces = Math.ceil(bytes / MAX_COPY_BYTES);
    const uploadId = await this.#multipartUploadId();
    for (let i = 0; i < pieces; i++) {
      const start = Math.floor((bytes * i) / pieces);
      const end = Math.floor((bytes * (i + 1)) / pieces);
      const part = this.#nextPart++;
      this.#parts.push(await this.bucket.uploadPartCopy({ key: this.key, uploadId, part, from: source.key, etag: source.etag, start, end }));
    }
  }

  #grow(): void {
    const bigger = Buffer.allocUnsafe(Math.min(this.partSize, this.#part.length * 2));
    this.#part.copy(bigger, 0, 0, this.#filled);
    this.#part = bigger;
  }

  #multipartUploadId(): Promise<string> {
    this.#creating ??= this.bucket.createMultipart(this.key);
    return this.#creating;
  }

  /** Sends the filled part in the background; waits while PARTS_IN_FLIGHT are on their way. */
  async #sendPart(): Promise<void> {
    if (this.#nextPart > MAX_PARTS) throw (this.#failure = new StorageError('quota'));
    const uploadId = await this.#multipartUploadId();
    const part = this.#nextPart++;
    const full = this.#part;
    const body = full.subarray(0, this.#filled);
    // A file that filled one part will likely fill the next. A fresh buffer per part (128 of 8 MiB per GiB: new pages
    // for the kernel to zero, full collections to free them) cost ~7.4 CPU s/GB and ~100 MiB of RSS growth in the
    // 1 GiB upload benchmark; reused, ~2.9 s and ~45 MiB.
    this.#part = this.#spare.pop() ?? Buffer.allocUnsafe(this.partSize);
    this.#filled = 0;
    const sending = this.bucket.uploadPart(this.key, uploadId, part, body, this.#abort.signal).then(
      (done) => {
        this.#parts.push(done);
        // The request has ended, so its body was sent: the buffer is free. After a failure no more parts follow.
        if (full.length === this.partSize) this.#spare.push(full);
      },
      (err: unknown) => {
        this.#failure ??= s3StorageError(err, 'UploadPart');
      },
    );
    const tracked = sending.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
    while (this.#inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.#inFlight);
    if (this.#failure) throw this.#failure;
  }

  /** Stops the parts on their way and aborts the multipart upload, so that no part stays stored (and billed). */
  async #discard(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#inFlight);
    await this.#prepared?.catch(() => undefined);
    // A session aborts as soon as the data connection fails, while a write() may still be creating the multipart
    // upload: its id, once there, is aborted too (the write's part then fails on the aborted signal, never sent).
    const uploadId = await this.#creating?.catch(() => undefined);
    if (uploadId !== undefined) await this.bucket.abortMultipart(this.key, uploadId).catch(() => undefined);
  }

  #release(): void {
    this.#part = Buffer.alloc(0);
    this.#spare.length = 0;
  }
}
