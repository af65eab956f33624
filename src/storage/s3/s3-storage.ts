import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { StorageError, type DirectoryListing, type FileReader, type FileStat, type StorageBackend, type UploadTarget } from '../storage.js';
import { baseName, componentsOf, isClientName, joinVirtual, parentOf, ROOT, type VirtualPath } from '../virtual-path.js';
import { MAX_COPY_BYTES, type Bucket, type ObjectInfo } from './bucket.js';
import { S3FileReader } from './s3-reader.js';
import { S3Upload, type KeptPrefix } from './s3-upload.js';

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
/** Keys per ListObjectsV2 page of a listing: S3's maximum, so a listing costs as few requests as it can. */
const LIST_PAGE = 1000;
/** S3's limit on a key (UTF-8 bytes), home prefix included; a directory's marker takes one byte more. */
const MAX_KEY_BYTES = 1024;

type Entry = { type: 'file'; info: ObjectInfo } | { type: 'dir'; mtime: Date } | undefined;

/**
 * A user's tree in a bucket: the virtual path /a/b is the key `<home>a/b`, a directory /a is everything under
 * `<home>a/`, made to exist when empty by the marker object `<home>a/` (MKD). What S3 cannot do is refused
 * with 'unsupported' (550): renaming a directory (every key under it would have to be copied, not atomically)
 * and setting a modification time (S3 keeps only the time an object was written).
 */
export class S3Storage implements StorageBackend {
  constructor(
    private readonly bucket: Bucket,
    /** '' or a prefix ending in '/'. */
    private readonly home: string,
    private readonly partSize: number,
  ) {}

  async stat(p: VirtualPath): Promise<FileStat> {
    const entry = await this.#entry(p);
    if (entry === undefined) throw new StorageError('not-found');
    // The root is named '/' as on the local disk (MLST / shows it).
    return this.#toStat(p === ROOT ? '/' : baseName(p), entry);
  }

  async list(p: VirtualPath): Promise<DirectoryListing> {
    const prefix = this.#dirPrefix(p);
    const abort = new AbortController();
    const first = await this.bucket.list({ prefix, delimiter: '/', maxKeys: LIST_PAGE, signal: abort.signal });
    const empty = (first.KeyCount ?? 0) === 0;
    if (empty && p !== ROOT) {
      throw await this.#notADirectory(p);
    }
    const bucket = this.bucket;
    const listedAt = new Date();
    async function* entries(): AsyncGenerator<FileStat> {
      let page = first;
      for (;;) {
        // A key `a` and keys under `a/` (written by other tools) make one name: the file, as stat() sees it. Such
        // keys are adjacent in key order, so they share a page unless the file is the last key of one.
        const files = new Set((page.Contents ?? []).map((object) => object.Key?.slice(prefix.length)));
        for (const common of page.CommonPrefixes ?? []) {
          const name = common.Prefix?.slice(prefix.length, -1);
          if (name !== undefined && isNameable(name) && !files.has(name)) yield { name, type: 'dir', size: 0, mtime: listedAt, mode: DIR_MODE };
        }
        for (const object of page.Contents ?? []) {
          const name = object.Key?.slice(prefix.length);
          // The directory's own marker ('' after the prefix) is not an entry.
          if (name !== undefined && isNameable(name)) {
            yield { name, type: 'file', size: object.Size ?? 0, mtime: object.LastModified ?? listedAt, mode: FILE_MODE };
          }
        }
        if (!page.IsTruncated || page.NextContinuationToken === undefined) return;
        page = await bucket.list({ prefix, delimiter: '/', maxKeys: LIST_PAGE, token: page.NextContinuationToken, signal: abort.signal });
      }
    }
    const iterator = entries();
    return {
      [Symbol.asyncIterator]: () => iterator,
      close: async () => {
        abort.abort();
        await iterator.return(undefined);
      },
    };
  }

  async openRead(p: VirtualPath): Promise<FileReader> {
    const info = await this.#file(p);
    return new S3FileReader(this.bucket, this.#key(p), info);
  }

  async openWrite(p: VirtualPath, o: { mode: 'replace' | 'append' | 'resume'; start?: number }): Promise<UploadTarget> {
    const key = this.#key(p);
    const [existing] = await Promise.all([this.#entry(p), this.#requireDirectory(parentOf(p))]);
    if (p === ROOT || existing?.type === 'dir') throw new StorageError('is-a-directory');
    const old = existing ? { ...existing.info, key } : undefined;
    let kept: KeptPrefix = { bytes: 0 };
    if (o.mode === 'append') kept = { bytes: old?.size ?? 0, source: old };
    if (o.mode === 'resume') {
      const start = o.start ?? 0;
      if (start > (old?.size ?? 0)) throw new StorageError('invalid-offset');
      kept = { bytes: start, source: old };
    }
    return new S3Upload(this.bucket, key, this.partSize, kept);
  }

  async mkdir(p: VirtualPath): Promise<void> {
    if (p === ROOT) throw new StorageError('exists');
    const [existing] = await Promise.all([this.#entry(p), this.#requireDirectory(parentOf(p))]);
    if (existing) throw new StorageError('exists');
    await this.bucket.put(this.#dirPrefix(p), Buffer.alloc(0));
  }

  async remove(p: VirtualPath, kind: 'file' | 'dir'): Promise<void> {
    if (p === ROOT) throw new StorageError('permission');
    if (kind === 'file') {
      await this.#file(p);
      await this.bucket.delete(this.#key(p));
      return;
    }
    const marker = this.#dirPrefix(p);
    const under = await this.bucket.list({ prefix: marker, maxKeys: 2 });
    const keys = (under.Contents ?? []).map((o) => o.Key);
    if (keys.length === 0) throw await this.#notADirectory(p);
    if (keys.some((k) => k !== marker)) throw new StorageError('not-empty');
    await this.bucket.delete(marker);
  }

  /** A file: copied inside the store, then the old key deleted; the new name shows the whole file or nothing. */
  async rename(from: VirtualPath, to: VirtualPath): Promise<void> {
    const [source, target] = await Promise.all([this.#entry(from), this.#entry(to), this.#requireDirectory(parentOf(to))]);
    if (source === undefined) throw new StorageError('not-found');
    if (source.type === 'dir') throw new StorageError('unsupported', 'Renaming directories is not supported by the object storage');
    if (target?.type === 'dir' || to === ROOT) throw new StorageError('is-a-directory');
    const fromKey = this.#key(from);
    const toKey = this.#key(to);
    if (fromKey === toKey) return;
    if (source.info.size <= MAX_COPY_BYTES) {
      await this.bucket.copy(fromKey, toKey, source.info.etag);
    } else {
      // Above 5 GiB only a multipart upload of copied parts can copy it: an "append" of the whole object to nothing.
      const copy = new S3Upload(this.bucket, toKey, this.partSize, { bytes: source.info.size, source: { ...source.info, key: fromKey } });
      await copy.commit();
    }
    await this.bucket.delete(fromKey);
  }

  setModifiedTime(): Promise<void> {
    return Promise.reject(new StorageError('unsupported', 'Setting modification times is not supported by the object storage'));
  }

  /**
   * S3 has no atomic "create if absent" that every compatible store honours, so the name is made unique by a random
   * part, whatever is there: `report.txt` → `report.3f9a2c1b7d4e.txt`.
   */
  async openUnique(dir: VirtualPath, hint: string): Promise<{ path: VirtualPath; target: UploadTarget }> {
    await this.#requireDirectory(dir);
    const ext = path.posix.extname(hint);
    const stem = hint.slice(0, hint.length - ext.length) || 'file';
    const unique = joinVirtual(dir, `${stem}.${randomBytes(6).toString('hex')}${ext}`);
    return { path: unique, target: new S3Upload(this.bucket, this.#key(unique), this.partSize, { bytes: 0 }) };
  }

  freeSpace(): Promise<number | undefined> {
    return Promise.resolve(undefined);
  }

  #key(p: VirtualPath): string {
    const key = this.home + componentsOf(p).join('/');
    // Refused before any request: RGW answers a HEAD of a longer key with a bare 400, which would read as an I/O error.
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new StorageError('invalid-name');
    return key;
  }

  #dirPrefix(p: VirtualPath): string {
    return p === ROOT ? this.home : `${this.#key(p)}/`;
  }

  /** A file (its object), a directory (a marker or any key under it), or nothing; asked both ways at once. */
  async #entry(p: VirtualPath): Promise<Entry> {
    if (p === ROOT) return { type: 'dir', mtime: new Date() };
    const [info, under] = await Promise.all([this.bucket.head(this.#key(p)), this.bucket.list({ prefix: this.#dirPrefix(p), maxKeys: 1 })]);
    if (info) return { type: 'file', info };
    const first = under.Contents?.[0];
    if (first === undefined) return undefined;
    return { type: 'dir', mtime: first.Key === this.#dirPrefix(p) && first.LastModified ? first.LastModified : new Date() };
  }

  /** Why `p`, with no key under it, is no directory: a file by that name, or nothing at all. */
  async #notADirectory(p: VirtualPath): Promise<StorageError> {
    return new StorageError((await this.bucket.head(this.#key(p))) ? 'not-a-directory' : 'not-found');
  }

  async #file(p: VirtualPath): Promise<ObjectInfo> {
    const entry = await this.#entry(p);
    if (entry === undefined) throw new StorageError('not-found');
    if (entry.type === 'dir') throw new StorageError('is-a-directory');
    return entry.info;
  }

  async #requireDirectory(p: VirtualPath): Promise<void> {
    const entry = await this.#entry(p);
    if (entry === undefined) throw new StorageError('not-found');
    if (entry.type !== 'dir') throw new StorageError('not-a-directory');
  }

  #toStat(name: string, entry: NonNullable<Entry>): FileStat {
    return entry.type === 'file'
      ? { name, type: 'file', size: entry.info.size, mtime: entry.info.mtime, mode: FILE_MODE }
      : { name, type: 'dir', size: 0, mtime: entry.mtime, mode: DIR_MODE };
  }
}

/** A name a client could address: keys like `a//b` or `a/./b` make empty or dot names, which no path can reach. */
const isNameable = (name: string): boolean => name !== '' && name !== '.' && name !== '..' && !name.includes('/') && isClientName(name);
