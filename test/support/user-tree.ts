/*
 * A user's file tree seen behind the gateway's back, the same way for both storage backends: tests arrange files
 * and check what landed through it (a directory on the local disk, or keys under a prefix in a bucket), so one test
 * body runs against either backend. The S3 one is s3Tree() in s3.ts (it needs the AWS SDK, which local suites
 * do not load).
 */
import { access, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RESERVED_PREFIX } from '../../src/storage/virtual-path.js';

export type BackendName = 'local' | 's3';

/** For describe.each over both backends; `s3` needs the RGW container, skipped where container suites are. */
export const STORAGE_BACKENDS: ReadonlyArray<{ backend: BackendName; skip: boolean }> = [
  { backend: 'local', skip: false },
  { backend: 's3', skip: process.env.SKIP_CONTAINER_TESTS === '1' },
];

/** Paths are relative to the user's home, '/'-separated, without a leading '/' ('' is the home itself). */
export interface UserTree {
  readonly backend: BackendName;
  read(rel: string): Promise<Buffer>;
  /** Creates the file (and, on the local disk, its parent directories), replacing what was there. */
  put(rel: string, data: string | Buffer): Promise<void>;
  /** The directory and its parents (S3: a marker object for each). */
  mkdir(rel: string): Promise<void>;
  /** A file or a directory of that name (on S3 also one that exists only because keys lie under it). */
  exists(rel: string): Promise<boolean>;
  /** The names in a directory, sorted, whatever they are (temporary files included). */
  names(rel?: string): Promise<string[]>;
  mtime(rel: string): Promise<Date>;
  /** Removes a file. */
  remove(rel: string): Promise<void>;
  /** What unfinished uploads leave anywhere in the tree: temporary files (local), multipart uploads (S3). */
  leftovers(): Promise<string[]>;
}

export function localTree(root: string): UserTree {
  const at = (rel: string) => path.join(root, ...rel.split('/'));
  return {
    backend: 'local',
    read: (rel) => readFile(at(rel)),
    async put(rel, data) {
      await mkdir(path.dirname(at(rel)), { recursive: true });
      await writeFile(at(rel), data);
    },
    mkdir: async (rel) => void (await mkdir(at(rel), { recursive: true })),
    exists: (rel) => access(at(rel)).then(() => true, () => false),
    names: async (rel = '') => (await readdir(at(rel))).sort(),
    mtime: async (rel) => (await stat(at(rel))).mtime,
    remove: (rel) => unlink(at(rel)),
    leftovers: async () =>
      (await readdir(root, { recursive: true })).filter((p) => path.basename(p).startsWith(RESERVED_PREFIX)).sort(),
  };
}
