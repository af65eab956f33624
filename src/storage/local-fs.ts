import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  mapFsError,
  StorageError,
  type FileReader,
  type FileStat,
  type StorageBackend,
  type UploadTarget,
} from './storage.js';
import { baseName, joinVirtual, ROOT, type VirtualPath } from './virtual-path.js';

const STREAM_BUFFER = 256 * 1024;
/** The hidden file a `replace` upload writes before its rename; listings hide it, temp-sweeper.ts removes dead ones. */
export const TEMP_NAME = /^\.ftps-upload-[0-9a-f]{16}\.tmp$/;
const MAX_UNIQUE_TRIES = 1000;
// Every path we open is already a realpath, so O_NOFOLLOW only bites if someone swapped in a symlink since,
// and O_NONBLOCK keeps a FIFO in the tree from blocking a libuv thread before we can refuse it.
const OPEN_SAFE = constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** path.relative, not a string prefix: `/data/alice2` is not inside `/data/alice`. */
function isInside(root: string, real: string): boolean {
  const rel = path.relative(root, real);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function contained(root: string, real: string): string {
  if (!isInside(root, real)) throw new StorageError('outside-root');
  return real;
}

async function withMappedErrors<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw mapFsError(err);
  }
}

const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;

function toFileStat(name: string, st: Stats): FileStat {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { name, type, size: st.size, mtime: st.mtime, mode: st.mode & 0o7777 };
}

/** A listed link shows its target only when the target exists inside the root; otherwise the link itself. */
async function statListed(root: string, full: string, isLink: boolean): Promise<Stats> {
  if (!isLink) return fs.stat(full);
  const target = await fs.realpath(full).catch(() => undefined);
  return target !== undefined && isInside(root, target) ? fs.stat(target) : fs.lstat(full);
}

/** Opens a regular file and nothing else: a directory or device behind a client path is refused. */
async function openRegularFile(real: string, flags: number, mode?: number): Promise<FileHandle> {
  const handle = await fs.open(real, flags | OPEN_SAFE, mode);
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

function createWriteStream(handle: FileHandle, start: number | undefined, signal: AbortSignal | undefined): Writable {
  const stream = handle.createWriteStream({ highWaterMark: STREAM_BUFFER, start });
  return signal ? addAbortSignal(signal, stream) : stream;
}

/** Ends the stream if the writer did not, and waits until its file descriptor is closed. */
async function closeStream(stream: Writable): Promise<void> {
  if (!stream.writableEnded && !stream.destroyed) stream.end();
  await finished(stream);
}

/** Destroys the stream and waits for its file descriptor to close; the stream's own error is not ours to report. */
async function discardStream(stream: Writable): Promise<void> {
  stream.destroy();
  await finished(stream).catch(() => undefined);
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

/** Writes go to a hidden temporary file that replaces the target in one rename, so a failed upload leaves the old file intact. */
class ReplaceUpload implements UploadTarget {
  #settled = false;

  constructor(
    readonly stream: Writable,
    private readonly tempPath: string,
    private readonly targetPath: string,
  ) {}

  async commit(): Promise<void> {
    if (this.#settled) throw new StorageError('io', 'Upload already finished');
    this.#settled = true;
    try {
      await closeStream(this.stream);
      await fs.rename(this.tempPath, this.targetPath);
    } catch (err) {
      await discardStream(this.stream);
      await fs.rm(this.tempPath, { force: true });
      throw mapFsError(err);
    }
  }

  async abort(): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    await discardStream(this.stream);
    await withMappedErrors(() => fs.rm(this.tempPath, { force: true }));
  }
}

/** Append and resume write in place: what reached the disk stays, whichever way the transfer ends. */
class InPlaceUpload implements UploadTarget {
  constructor(readonly stream: Writable) {}

  commit(): Promise<void> {
    return withMappedErrors(() => closeStream(this.stream));
  }

  abort(): Promise<void> {
    return discardStream(this.stream);
  }
}

/**
 * A user's home directory on the local disk. Every client path is mapped to a real path with all
 * symlinks resolved and checked to lie inside the real root, so a symlink cannot lead a client out.
 */
export class LocalFsStorage implements StorageBackend {
  #realRoot: string | undefined;

  constructor(private readonly rootDir: string) {}

  stat(p: VirtualPath): Promise<FileStat> {
    return withMappedErrors(async () => {
      const { real, exists } = await this.locate(p);
      // A dangling symlink shows up in list(), so stat() reports it too, as the link itself.
      return toFileStat(baseName(p) || '/', exists ? await fs.stat(real) : await fs.lstat(real));
    });
  }

  list(p: VirtualPath): Promise<FileStat[]> {
    return withMappedErrors(async () => {
      const [root, dir] = await Promise.all([this.realRoot(), this.existing(p)]);
      const entries = await fs.readdir(dir, { withFileTypes: true });
      const stats = await Promise.all(
        entries
          .filter((e) => !TEMP_NAME.test(e.name))
          .map(async (e) => {
            try {
              return toFileStat(e.name, await statListed(root, path.join(dir, e.name), e.isSymbolicLink()));
            } catch (err) {
              // Deleted between readdir and stat: simply not there any more.
              if (isErrno(err, 'ENOENT')) return undefined;
              throw err;
            }
          }),
      );
      return stats.filter((s) => s !== undefined);
    });
  }

  openRead(p: VirtualPath): Promise<FileReader> {
    return withMappedErrors(
      async () => new LocalFileReader(await openRegularFile(await this.existing(p), constants.O_RDONLY)),
    );
  }

  openWrite(
    p: VirtualPath,
    o: { mode: 'replace' | 'append' | 'resume'; start?: number; signal?: AbortSignal },
  ): Promise<UploadTarget> {
    return withMappedErrors(async () => {
      const { real, exists } = await this.locate(p);
      if (o.mode === 'replace') {
        // The replacement keeps the old file's permissions (as far as the umask allows), not the default ones.
        const previous = exists ? await fs.stat(real) : undefined;
        if (previous?.isDirectory()) throw new StorageError('is-a-directory');
        const tempPath = path.join(path.dirname(real), `.ftps-upload-${randomBytes(8).toString('hex')}.tmp`);
        const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
        const handle = await openRegularFile(tempPath, flags, previous ? previous.mode & 0o777 : 0o666);
        return new ReplaceUpload(createWriteStream(handle, undefined, o.signal), tempPath, real);
      }
      // O_EXCL when creating: if a dangling symlink sits at the name, we must not create its target.
      const flags =
        (o.mode === 'append' ? constants.O_WRONLY | constants.O_APPEND : constants.O_RDWR) |
        (exists ? 0 : constants.O_CREAT | constants.O_EXCL);
      const handle = await openRegularFile(real, flags);
      if (o.mode === 'append') return new InPlaceUpload(createWriteStream(handle, undefined, o.signal));
      const start = o.start ?? 0;
      // Drop any old tail so the result is exactly the first `start` bytes plus what the client sends.
      await handle.truncate(start).catch(async (err: unknown) => {
        await handle.close();
        throw err;
      });
      return new InPlaceUpload(createWriteStream(handle, start, o.signal));
    });
  }

  mkdir(p: VirtualPath): Promise<void> {
    return withMappedErrors(async () => {
      await fs.mkdir(await this.entry(p));
    });
  }

  remove(p: VirtualPath, kind: 'file' | 'dir'): Promise<void> {
    return withMappedErrors(async () => {
      // entry() does not follow a final symlink: removing a link removes the link, never its target.
      const real = await this.entry(p);
      await (kind === 'dir' ? fs.rmdir(real) : fs.unlink(real));
    });
  }

  rename(from: VirtualPath, to: VirtualPath): Promise<void> {
    return withMappedErrors(async () => {
      const [realFrom, realTo] = await Promise.all([this.entry(from), this.entry(to)]);
      // POSIX rename silently replaces an empty directory; a client never means that.
      const target = await fs.lstat(realTo).catch((err: unknown) => {
        if (isErrno(err, 'ENOENT')) return undefined;
        throw err;
      });
      if (target?.isDirectory()) throw new StorageError('exists');
      await fs.rename(realFrom, realTo);
    });
  }

  setModifiedTime(p: VirtualPath, time: Date): Promise<void> {
    return withMappedErrors(async () => {
      const real = await this.existing(p);
      const { atime } = await fs.stat(real);
      await fs.utimes(real, atime, time);
    });
  }

  uniqueName(dir: VirtualPath, hint: string): Promise<VirtualPath> {
    return withMappedErrors(async () => {
      const realDir = await this.existing(dir);
      // report.txt, report.1.txt, report.2.txt, … keeps the extension the client's file type depends on.
      const dot = hint.lastIndexOf('.');
      const [stem, ext] = dot > 0 ? [hint.slice(0, dot), hint.slice(dot)] : [hint, ''];
      for (let n = 0; n < MAX_UNIQUE_TRIES; n++) {
        const name = n === 0 ? hint : `${stem}.${n}${ext}`;
        const candidate = joinVirtual(dir, name);
        try {
          await fs.lstat(path.join(realDir, name));
        } catch (err) {
          if (isErrno(err, 'ENOENT')) return candidate;
          throw err;
        }
      }
      throw new StorageError('exists');
    });
  }

  private async realRoot(): Promise<string> {
    return (this.#realRoot ??= await fs.realpath(this.rootDir));
  }

  /**
   * The real path `p` refers to, every symlink resolved. When nothing exists there yet, the would-be path:
   * the resolved parent plus the last name (which may be a dangling symlink; `exists` is false then too).
   */
  private async locate(p: VirtualPath): Promise<{ real: string; exists: boolean }> {
    const root = await this.realRoot();
    try {
      return { real: contained(root, await fs.realpath(path.join(root, p))), exists: true };
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    return { real: await this.entry(p), exists: false };
  }

  /** Like locate(), for operations that need the thing to exist. */
  private async existing(p: VirtualPath): Promise<string> {
    const { real, exists } = await this.locate(p);
    if (!exists) throw new StorageError('not-found');
    return real;
  }

  /** The directory entry `p` names, its parent resolved and checked; the last component is not followed. */
  private async entry(p: VirtualPath): Promise<string> {
    if (p === ROOT) throw new StorageError('permission');
    const root = await this.realRoot();
    const candidate = path.join(root, p);
    return path.join(contained(root, await fs.realpath(path.dirname(candidate))), path.basename(candidate));
  }
}
