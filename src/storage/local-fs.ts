import { randomBytes } from 'node:crypto';
import { constants, type Dir, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { entryPath, isErrno, lstatOrUndefined, Walk, type DirRef } from './confined-tree.js';
import {
  mapFsError,
  StorageError,
  type DirectoryListing,
  type FileReader,
  type FileStat,
  type StorageBackend,
  type UploadTarget,
} from './storage.js';
import { baseName, componentsOf, isClientName, joinVirtual, ROOT, type VirtualPath } from './virtual-path.js';

/** The hidden file a `replace` upload writes before its rename; listings hide it, temp-sweeper.ts removes dead ones. */
export const TEMP_NAME = /^\.ftps-upload-[0-9a-f]{16}\.tmp$/;
const MAX_UNIQUE_TRIES = 1000;
/**
 * Directory entries read, then stat-ed together, per step of a listing. Small enough that a batch dies in the
 * young generation: with 64, 8 parallel listings of 100,000 entries promoted their garbage and grew the heap by
 * ~55 MiB (measured with the image's --max-semi-space-size=4); with 32, by ~7 MiB, at the same speed.
 */
const LIST_BATCH = 32;
/** stat() calls of one listing in flight at once: enough to keep the disk busy, few enough to leave the thread pool to others. */
const LIST_STAT_CONCURRENCY = 8;
// O_NOFOLLOW: every open names one entry in a directory handle and must not follow it (confined-tree.ts);
// O_NONBLOCK keeps a FIFO in the tree from blocking a libuv thread before we can refuse it.
const OPEN_SAFE = constants.O_NOFOLLOW | constants.O_NONBLOCK;

function toStorageError(err: unknown): StorageError {
  // O_NOFOLLOW met a symlink that the walk was not allowed to follow (or one swapped in since): never through it.
  if (isErrno(err, 'ELOOP')) return new StorageError('outside-root', undefined, { cause: err });
  return mapFsError(err);
}

async function withMappedErrors<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw toStorageError(err);
  }
}

function toFileStat(name: string, st: Stats): FileStat {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { name, type, size: st.size, mtime: st.mtime, mode: st.mode & 0o7777 };
}

/** Opens a regular file and nothing else: a directory or device behind a client path is refused. */
async function openRegularFile(at: string, flags: number, mode?: number): Promise<FileHandle> {
  const handle = await fs.open(at, flags | OPEN_SAFE, mode);
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new StorageError('is-a-directory');
    if (!st.isFile()) throw new StorageError('permission');
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Writes every byte of `chunks` at `position` (undefined: at the end, O_APPEND); writev may stop short. */
async function writeAll(handle: FileHandle, chunks: readonly Buffer[], position: number | undefined): Promise<number> {
  let pending = chunks.filter((c) => c.length > 0);
  let written = 0;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, position === undefined ? undefined : position + written);
    written += bytesWritten;
    let skip = bytesWritten;
    while (pending.length > 0 && skip >= pending[0]!.length) skip -= pending.shift()!.length;
    if (skip > 0) pending = [pending[0]!.subarray(skip), ...pending.slice(1)];
  }
  return written;
}

/**
 * Written bytes after which a durable upload syncs in the background while more arrive, so that the sync before
 * its 226 only has the tail left to flush (fdatasync of a whole 1 GiB file at the end took as long as receiving it).
 */
const SYNC_EVERY = 16 * 1024 * 1024;

/**
 * The bytes of an upload going into an open file, in the order they come, one writev per call. With `sync`, the
 * data reaches stable storage before finish() resolves (fdatasync: data and size, what reading it back needs),
 * most of it in the background during the upload.
 */
class FileWriter {
  #position: number;
  #unsynced = 0;
  #syncing: Promise<void> | undefined;
  #syncError: unknown;
  #closed = false;

  constructor(
    private readonly handle: FileHandle,
    start: number,
    /** O_APPEND: the kernel puts every write at the end. */
    private readonly append: boolean,
    private readonly sync: boolean,
  ) {
    this.#position = start;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    return withMappedErrors(async () => {
      const written = await writeAll(this.handle, chunks, this.append ? undefined : this.#position);
      this.#position += written;
      this.#unsynced += written;
      if (this.sync && this.#unsynced >= SYNC_EVERY && !this.#syncing) this.#syncInBackground();
    });
  }

  /** Completes the file: synced (when asked for) and closed. */
  async finish(): Promise<void> {
    if (this.sync) {
      await this.#syncing;
      if (this.#syncError !== undefined) throw this.#syncError;
      await this.handle.datasync();
    }
    await this.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#syncing;
    await this.handle.close();
  }

  #syncInBackground(): void {
    this.#unsynced = 0;
    this.#syncing = this.handle.datasync().then(
      () => (this.#syncing = undefined),
      (err: unknown) => {
        this.#syncError ??= err;
        this.#syncing = undefined;
      },
    );
  }
}

/** Positional reads on an open handle, errors mapped. */
class LocalFileReader implements FileReader {
  constructor(private readonly handle: FileHandle) {}

  read(buffer: Buffer, position: number): Promise<number> {
    return withMappedErrors(async () => (await this.handle.read(buffer, 0, buffer.length, position)).bytesRead);
  }

  close(): Promise<void> {
    return withMappedErrors(() => this.handle.close());
  }
}

/**
 * Writes go to a hidden temporary file that replaces the target in one rename, so a failed upload leaves the old
 * file intact. The walk holds the target's directory open until the upload is settled: the rename acts on that
 * directory, wherever it has been moved meanwhile, and syncing it makes the rename durable.
 */
class ReplaceUpload implements UploadTarget {
  readonly startSize = 0;
  #settled = false;

  constructor(
    private readonly file: FileWriter,
    private readonly walk: Walk,
    private readonly dir: DirRef,
    private readonly tempName: string,
    private readonly targetName: string,
    private readonly fsync: boolean,
    /** STOU's placeholder (its inode), removed on abort if it is still ours and empty. */
    private readonly placeholder?: number,
  ) {}

  write(chunks: readonly Buffer[]): Promise<void> {
    return this.file.write(chunks);
  }

  async commit(): Promise<void> {
    if (this.#settled) throw new StorageError('io', 'Upload already finished');
    this.#settled = true;
    try {
      // Data first, then the name: a crash at any point leaves either the old file or the whole new one.
      await this.file.finish();
      await fs.rename(entryPath(this.dir, this.tempName), entryPath(this.dir, this.targetName));
      if (this.fsync) await this.dir.handle.sync();
    } catch (err) {
      await this.file.close().catch(() => undefined);
      await fs.rm(entryPath(this.dir, this.tempName), { force: true });
      throw toStorageError(err);
    } finally {
      await this.walk.close();
    }
  }

  async abort(): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    try {
      await this.file.close().catch(() => undefined);
      await withMappedErrors(() => fs.rm(entryPath(this.dir, this.tempName), { force: true }));
      if (this.placeholder !== undefined) await this.#freePlaceholder(this.placeholder);
    } finally {
      await this.walk.close();
    }
  }

  /** Only our own still-empty placeholder: someone may have stored a file under the name since. */
  async #freePlaceholder(ino: number): Promise<void> {
    const at = entryPath(this.dir, this.targetName);
    const now = await lstatOrUndefined(at);
    if (now?.ino === ino && now.size === 0) await fs.unlink(at).catch(() => undefined);
  }
}

/** Append and resume write in place: what reached the disk stays, whichever way the transfer ends. */
class InPlaceUpload implements UploadTarget {
  constructor(
    private readonly file: FileWriter,
    readonly startSize: number,
  ) {}

  write(chunks: readonly Buffer[]): Promise<void> {
    return this.file.write(chunks);
  }

  commit(): Promise<void> {
    return withMappedErrors(() => this.file.finish());
  }

  abort(): Promise<void> {
    return this.file.close().catch(() => undefined);
  }
}

/** Entries in batches, each batch stat-ed with bounded concurrency; the walk and the directory stay open until close(). */
class LocalListing implements DirectoryListing {
  #closed = false;

  constructor(
    private readonly walk: Walk,
    private readonly dir: DirRef,
    private readonly entries: Dir,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<FileStat> {
    try {
      for (;;) {
        const names: string[] = [];
        for (let e = await this.entries.read(); e !== null; e = names.length < LIST_BATCH ? await this.entries.read() : null) {
          if (isClientName(e.name)) names.push(e.name);
          if (names.length === LIST_BATCH) break;
        }
        if (names.length === 0) return;
        for (const st of await mapLimited(names, LIST_STAT_CONCURRENCY, (name) => this.#stat(name))) {
          if (st) yield st;
        }
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.entries.close().catch(() => undefined);
    await this.walk.close();
  }

  async #stat(name: string): Promise<FileStat | undefined> {
    try {
      return toFileStat(name, await this.walk.statEntry(this.dir, name));
    } catch (err) {
      // Deleted between readdir and stat: simply not there any more.
      if (isErrno(err, 'ENOENT')) return undefined;
      throw mapFsError(err);
    }
  }
}

/** `fn` over `items` with at most `limit` running at once; results in the order of `items`. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export interface LocalFsOptions {
  /** FOLLOW_SYMLINKS: follow symlinks whose target stays inside the home; false refuses every symlink. */
  readonly followSymlinks: boolean;
  /** UPLOAD_FSYNC: commit() syncs the file (and a replaced file's directory) before it resolves. */
  readonly fsync: boolean;
}

/**
 * A user's home directory on the local disk. Every operation walks from the home one directory handle at a
 * time and acts on the last one (confined-tree.ts), so no check can be raced by a rename or a swapped symlink.
 */
export class LocalFsStorage implements StorageBackend {
  #realRoot: Promise<string> | undefined;

  constructor(
    private readonly rootDir: string,
    private readonly options: LocalFsOptions = { followSymlinks: true, fsync: true },
  ) {}

  stat(p: VirtualPath): Promise<FileStat> {
    return this.#within(async (walk) => {
      if (p === ROOT) return toFileStat('/', await walk.directory([]).then((d) => d.handle.stat()));
      const { dir, name } = await walk.entry(componentsOf(p), false);
      return toFileStat(baseName(p), await walk.statEntry(dir, name));
    });
  }

  async list(p: VirtualPath): Promise<DirectoryListing> {
    const walk = await withMappedErrors(() => this.#begin());
    try {
      const dir = await walk.directory(componentsOf(p));
      const entries = await fs.opendir(entryPath(dir), { bufferSize: LIST_BATCH });
      return new LocalListing(walk, dir, entries);
    } catch (err) {
      await walk.close();
      throw toStorageError(err);
    }
  }

  openRead(p: VirtualPath): Promise<FileReader> {
    return this.#within(async (walk) => {
      const { dir, name } = await walk.entry(componentsOf(p), true);
      return new LocalFileReader(await openRegularFile(entryPath(dir, name), constants.O_RDONLY));
    });
  }

  async openWrite(p: VirtualPath, o: { mode: 'replace' | 'append' | 'resume'; start?: number }): Promise<UploadTarget> {
    if (o.mode === 'replace') return this.#openReplace(p);
    return this.#within(async (walk) => {
      const { dir, name } = await walk.entry(componentsOf(p), true);
      const exists = (await lstatOrUndefined(entryPath(dir, name))) !== undefined;
      // O_EXCL when creating: whatever appears at the name meanwhile is not written through.
      const flags =
        (o.mode === 'append' ? constants.O_WRONLY | constants.O_APPEND : constants.O_RDWR) |
        (exists ? 0 : constants.O_CREAT | constants.O_EXCL);
      const handle = await openRegularFile(entryPath(dir, name), flags);
      try {
        const { size } = await handle.stat();
        if (o.mode === 'append') return new InPlaceUpload(new FileWriter(handle, size, true, this.options.fsync), size);
        const start = o.start ?? 0;
        // Writing beyond the end would make a sparse file of any apparent size: the caller checks, this refuses.
        if (start > size) throw new StorageError('invalid-offset');
        // Drop any old tail so the result is exactly the first `start` bytes plus what the client sends.
        await handle.truncate(start);
        return new InPlaceUpload(new FileWriter(handle, start, false, this.options.fsync), start);
      } catch (err) {
        await handle.close();
        throw err;
      }
    });
  }

  freeSpace(dir: VirtualPath): Promise<number | undefined> {
    return this.#within(async (walk) => {
      const { bavail, bsize } = await fs.statfs(entryPath(await walk.directory(componentsOf(dir))));
      return bavail * bsize;
    });
  }

  mkdir(p: VirtualPath): Promise<void> {
    return this.#within(async (walk) => {
      const { dir, name } = await walk.entry(componentsOf(p), false);
      await fs.mkdir(entryPath(dir, name));
    });
  }

  remove(p: VirtualPath, kind: 'file' | 'dir'): Promise<void> {
    // The last component is not followed: removing a link removes the link, never its target.
    return this.#within(async (walk) => {
      const { dir, name } = await walk.entry(componentsOf(p), false);
      await (kind === 'dir' ? fs.rmdir(entryPath(dir, name)) : fs.unlink(entryPath(dir, name)));
    });
  }

  rename(from: VirtualPath, to: VirtualPath): Promise<void> {
    return this.#within(async (walk) => {
      const source = await walk.entry(componentsOf(from), false);
      const target = await walk.entry(componentsOf(to), false);
      // POSIX rename silently replaces an empty directory; a client never means that.
      if ((await lstatOrUndefined(entryPath(target.dir, target.name)))?.isDirectory()) throw new StorageError('exists');
      await fs.rename(entryPath(source.dir, source.name), entryPath(target.dir, target.name));
    });
  }

  setModifiedTime(p: VirtualPath, time: Date): Promise<void> {
    return this.#within(async (walk) => {
      const handle =
        p === ROOT
          ? (await walk.directory([])).handle
          : await fs.open(entryPathOf(await walk.entry(componentsOf(p), true)), constants.O_RDONLY | OPEN_SAFE);
      try {
        const { atime } = await handle.stat();
        await handle.utimes(atime, time);
      } finally {
        if (p !== ROOT) await handle.close();
      }
    });
  }

  openUnique(dir: VirtualPath, hint: string): Promise<{ path: VirtualPath; target: UploadTarget }> {
    return this.#within(async (walk) => {
      const parent = await walk.directory(componentsOf(dir));
      // report.txt, report.1.txt, report.2.txt, … keeps the extension the client's file type depends on.
      const dot = hint.lastIndexOf('.');
      const [stem, ext] = dot > 0 ? [hint.slice(0, dot), hint.slice(dot)] : [hint, ''];
      for (let n = 0; n < MAX_UNIQUE_TRIES; n++) {
        const candidate = joinVirtual(dir, n === 0 ? hint : `${stem}.${n}${ext}`);
        const name = baseName(candidate);
        let placeholder: FileHandle;
        try {
          // O_EXCL makes the reservation atomic, also against other replicas on the same volume.
          placeholder = await fs.open(entryPath(parent, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | OPEN_SAFE, 0o666);
        } catch (err) {
          if (isErrno(err, 'EEXIST')) continue;
          throw err;
        }
        const { ino } = await placeholder.stat();
        await placeholder.close();
        try {
          return { path: candidate, target: await this.#openReplace(candidate, ino) };
        } catch (err) {
          await fs.unlink(entryPath(parent, name)).catch(() => undefined);
          throw err;
        }
      }
      throw new StorageError('exists');
    });
  }

  /** A temporary file next to the target, renamed over it on commit; the walk stays open with the upload. */
  async #openReplace(p: VirtualPath, placeholder?: number): Promise<UploadTarget> {
    const walk = await withMappedErrors(() => this.#begin());
    try {
      const { dir, name } = await walk.entry(componentsOf(p), true);
      // The replacement keeps the old file's permissions (as far as the umask allows), not the default ones.
      const previous = await lstatOrUndefined(entryPath(dir, name));
      if (previous?.isDirectory()) throw new StorageError('is-a-directory');
      const tempName = `.ftps-upload-${randomBytes(8).toString('hex')}.tmp`;
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
      const handle = await openRegularFile(entryPath(dir, tempName), flags, previous?.isFile() ? previous.mode & 0o777 : 0o666);
      return new ReplaceUpload(new FileWriter(handle, 0, false, this.options.fsync), walk, dir, tempName, name, this.options.fsync, placeholder);
    } catch (err) {
      await walk.close();
      throw toStorageError(err);
    }
  }

  /** One operation: a walk from the home, closed whatever happens; errors mapped to StorageErrors. */
  #within<T>(op: (walk: Walk) => Promise<T>): Promise<T> {
    return withMappedErrors(async () => {
      const walk = await this.#begin();
      try {
        return await op(walk);
      } finally {
        await walk.close();
      }
    });
  }

  #begin(): Promise<Walk> {
    // Only absolute symlink targets need it: computed once, when the first one is met.
    const realRoot = () => (this.#realRoot ??= fs.realpath(this.rootDir));
    return Walk.begin(this.rootDir, realRoot, this.options.followSymlinks);
  }
}

const entryPathOf = ({ dir, name }: { dir: DirRef; name: string }): string => entryPath(dir, name);
