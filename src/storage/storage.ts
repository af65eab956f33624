import type { VirtualPath } from './virtual-path.js';

export interface FileStat {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mtime: Date;
  /** Permission bits (mode & 0o7777). */
  mode: number;
}

export type StorageErrorKind =
  | 'not-found'
  | 'exists'
  | 'not-a-directory'
  | 'is-a-directory'
  | 'not-empty'
  | 'permission'
  | 'no-space'
  | 'quota'
  | 'invalid-name'
  | 'outside-root'
  | 'invalid-offset'
  | 'unsupported'
  | 'unavailable'
  | 'io';

// Client-safe wording: a message may reach an FTP reply, so it never names a real path or an errno.
const MESSAGES: Readonly<Record<StorageErrorKind, string>> = {
  'not-found': 'No such file or directory',
  exists: 'File exists',
  'not-a-directory': 'Not a directory',
  'is-a-directory': 'Is a directory',
  'not-empty': 'Directory not empty',
  permission: 'Permission denied',
  'no-space': 'Insufficient storage space',
  quota: 'Disk quota exceeded',
  'invalid-name': 'Invalid file name',
  // Same words as 'permission': a client learns nothing about where a symlink leads.
  'outside-root': 'Permission denied',
  'invalid-offset': 'Restart offset is beyond the end of the file',
  unsupported: 'Not supported by this storage',
  unavailable: 'Storage temporarily unavailable',
  io: 'Storage error',
};

export class StorageError extends Error {
  override readonly name = 'StorageError';

  constructor(
    readonly kind: StorageErrorKind,
    message: string = MESSAGES[kind],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const ERRNO_KINDS: ReadonlyMap<string, StorageErrorKind> = new Map([
  ['ENOENT', 'not-found'],
  ['EEXIST', 'exists'],
  ['ENOTDIR', 'not-a-directory'],
  ['EISDIR', 'is-a-directory'],
  ['ENOTEMPTY', 'not-empty'],
  ['EACCES', 'permission'],
  ['EPERM', 'permission'],
  // A read-only mount is, to the client, a refusal like any other.
  ['EROFS', 'permission'],
  ['ENOSPC', 'no-space'],
  ['EDQUOT', 'quota'],
  ['ENAMETOOLONG', 'invalid-name'],
]);

/** Turns any error from node:fs into a StorageError; the original stays in `cause` for the logs. */
export function mapFsError(err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const code = (err as NodeJS.ErrnoException | null | undefined)?.code;
  const kind = (code !== undefined && ERRNO_KINDS.get(code)) || 'io';
  return new StorageError(kind, MESSAGES[kind], { cause: err });
}

/** The file tree a session works on. Every method rejects only with StorageError, and so do readers and targets. */
export interface StorageBackend {
  stat(p: VirtualPath): Promise<FileStat>;
  /**
   * Opens a directory for listing (errors such as not-found come here, before any entry); the entries then
   * stream in batches, unsorted, leaving out what no client could name (reserved names, CR/LF in names).
   */
  list(p: VirtualPath): Promise<DirectoryListing>;
  /** Opens a regular file for reading; the caller must close() the reader, whichever way the transfer ends. */
  openRead(p: VirtualPath): Promise<FileReader>;
  /** `resume` keeps the first `start` bytes and writes from there; `append` writes at the end. */
  openWrite(p: VirtualPath, o: { mode: 'replace' | 'append' | 'resume'; start?: number }): Promise<UploadTarget>;
  mkdir(p: VirtualPath): Promise<void>;
  remove(p: VirtualPath, kind: 'file' | 'dir'): Promise<void>;
  rename(from: VirtualPath, to: VirtualPath): Promise<void>;
  setModifiedTime(p: VirtualPath, time: Date): Promise<void>;
  /**
   * For STOU: reserves a name in `dir` that did not exist (`hint`, else `stem.N.ext`) atomically, so that two
   * concurrent uploads never get the same one, and opens an upload to it; abort() frees the name again.
   */
  openUnique(dir: VirtualPath, hint: string): Promise<{ path: VirtualPath; target: UploadTarget }>;
  /** Bytes a new file may still take here, when the backend can tell (ALLO); undefined when it cannot. */
  freeSpace(dir: VirtualPath): Promise<number | undefined>;
}

/** A directory being listed: iterate it once; close() releases it (also when it was never iterated). */
export interface DirectoryListing extends AsyncIterable<FileStat> {
  close(): Promise<void>;
}

/**
 * An open file read at explicit positions into the caller's buffers, so a download can reuse the same few
 * buffers instead of allocating one per read as a stream does.
 */
export interface FileReader {
  /** Fills `buffer` from `position` on; resolves with the bytes read, 0 at the end of the file. */
  read(buffer: Buffer, position: number): Promise<number>;
  /** Releases the file. Waits for a read still running. */
  close(): Promise<void>;
}

/**
 * An upload in progress. write() the bytes in order (one call at a time), then commit() makes the file complete
 * and durable (UPLOAD_FSYNC) — a `replace` upload appears under its name only then, in one step — or abort()
 * discards it (a replaced file keeps its old content; in-place writes stay). Call one of them, always.
 */
export interface UploadTarget {
  /** The size the file has before this upload's first byte (what resume keeps, what append adds to). */
  readonly startSize: number;
  write(chunks: readonly Buffer[]): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}
