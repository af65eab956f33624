/*
 * Buckets on the run's one Ceph RGW (test/container/shared-rgw.ts, started by test/global-setup.ts on first request):
 * every call makes a fresh bucket, so suites and tests never share objects. Buckets are not deleted: the container
 * and everything in it (RAM, memstore) go when the run ends.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  NotFound,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3Settings } from '../../src/storage/s3/bucket.js';
import type { RgwEndpoint } from '../container/shared-rgw.js';
import { askTestSetup } from '../container/support.js';
import type { UserTree } from './user-tree.js';

/** S3 suites need the RGW container: skipped where container suites are. */
export const skipS3 = process.env.SKIP_CONTAINER_TESTS === '1';

/** A part size at S3's minimum, so that a few MiB already make a multipart upload (the backend's default is 8 MiB). */
export const TEST_PART_SIZE = 5 * 1024 * 1024;

export interface S3TestBucket {
  /** For `new Bucket(settings)` (src/storage/s3/bucket.ts): this bucket, key prefix `prefix` (default none). */
  readonly settings: S3Settings;
  /** A client of its own, to arrange and check objects behind the gateway's back. */
  readonly client: S3Client;
  /** For startServer: STORAGE_BACKEND=s3 and the S3_* variables of the same bucket and prefix. */
  readonly env: Readonly<Record<string, string>>;
}

let rgw: Promise<RgwEndpoint> | undefined;
let client: S3Client | undefined;

/** The settings Ceph 16 needs from an SDK client (test/images/ceph-rgw/README.md). */
function clientOf(e: RgwEndpoint): S3Client {
  return new S3Client({
    endpoint: e.endpoint,
    region: e.region,
    forcePathStyle: true,
    credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A new empty bucket on the shared RGW (the first call in a run waits for the image build and the start). */
export async function s3TestBucket(o: { prefix?: string } = {}): Promise<S3TestBucket> {
  const e = await (rgw ??= askTestSetup('rgw').then((body) => JSON.parse(body) as RgwEndpoint));
  client ??= clientOf(e);
  const bucket = `ftps-test-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const prefix = o.prefix ?? '';
  return {
    settings: {
      bucket,
      prefix,
      endpoint: e.endpoint,
      region: e.region,
      forcePathStyle: true,
      credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey },
      partSize: TEST_PART_SIZE,
    },
    client,
    env: {
      STORAGE_BACKEND: 's3',
      S3_BUCKET: bucket,
      S3_PREFIX: prefix,
      S3_ENDPOINT: e.endpoint,
      S3_REGION: e.region,
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: e.accessKeyId,
      S3_SECRET_ACCESS_KEY: e.secretAccessKey,
      S3_PART_SIZE: String(TEST_PART_SIZE),
    },
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
