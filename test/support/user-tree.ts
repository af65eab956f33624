/*
 * A user's file tree seen behind the gateway's back, the same way for both storage backends: tests arrange files
 * and check what landed through it (a directory on the local disk, or keys under a prefix in a bucket), so one test
 * body runs against either backend.
 */
import { access, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { RESERVED_PREFIX } from '../../src/storage/virtual-path.js';

export type BackendName = 'local' | 's3';

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

/** The tree under `prefix` ('' or ending in '/') in `bucket`. */
export function s3Tree(client: S3Client, bucket: string, prefix: string): UserTree {
  const key = (rel: string) => prefix + rel;
  const dirKey = (rel: string) => (rel === '' ? prefix : `${key(rel)}/`);
  const head = (rel: string) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(rel) }));
  return {
    backend: 's3',
    async read(rel) {
      const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(rel) }));
      return Buffer.from(await Body!.transformToByteArray());
    },
    async put(rel, data) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key(rel), Body: Buffer.from(data) }));
    },
    async mkdir(rel) {
      const parts = rel.split('/');
      for (let i = 1; i <= parts.length; i++) {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: dirKey(parts.slice(0, i).join('/')), Body: Buffer.alloc(0) }));
      }
    },
    async exists(rel) {
      const found = await head(rel).then(
        () => true,
        (err: unknown) => {
          if (err instanceof NotFound) return false;
          throw err;
        },
      );
      if (found) return true;
      const under = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: dirKey(rel), MaxKeys: 1 }));
      return (under.KeyCount ?? 0) > 0;
    },
    async names(rel = '') {
      const dir = dirKey(rel);
      const names = new Set<string>();
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: dir, Delimiter: '/', ContinuationToken: token }),
        );
        for (const p of page.CommonPrefixes ?? []) names.add(p.Prefix!.slice(dir.length, -1));
        // The directory's own marker is not an entry.
        for (const o of page.Contents ?? []) if (o.Key !== dir) names.add(o.Key!.slice(dir.length));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return [...names].sort();
    },
    mtime: async (rel) => (await head(rel)).LastModified!,
    remove: async (rel) => void (await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(rel) }))),
    async leftovers() {
      const { Uploads } = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (Uploads ?? []).map((u) => u.Key!.slice(prefix.length)).sort();
    },
  };
}
