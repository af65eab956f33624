import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import type { S3RequestResult } from '../../observability/metrics.js';
import { StorageError } from '../storage.js';
import { ObjectBody, ObjectGetHandler } from './object-get-handler.js';
import { s3StorageError } from './s3-errors.js';

export interface S3Settings {
  readonly bucket: string;
  /** Key prefix of FTP_ROOT: '' or ending in '/'. */
  readonly prefix: string;
  readonly endpoint?: string | undefined;
  readonly region: string;
  readonly forcePathStyle: boolean;
  /** Unset: the SDK's default chain (web identity, instance roles, AWS_* variables). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
  readonly caPath?: string | undefined;
  readonly partSize: number;
}

/** Called once per S3 request with its operation (e.g. "PutObject"), result and duration. */
export type S3RequestObserver = (operation: string, result: S3RequestResult, seconds: number) => void;

export interface ObjectInfo {
  readonly size: number;
  readonly mtime: Date;
  readonly etag: string;
}

/** The largest part a copy may make (UploadPartCopy) and the largest object CopyObject copies in one request. */
export const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** Every part of a multipart upload but the last must have at least this many bytes. */
export const MIN_PART_BYTES = 5 * 1024 ** 2;
export const MAX_PARTS = 10_000;
// Part uploads of one transfer in flight, plus requests of listings and other sessions.
const MAX_SOCKETS = 64;
const CONNECTION_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 120_000;

/**
 * The bucket, as the storage code needs it: one method per S3 request, every failure a StorageError (s3-errors.ts).
 * Checksums are computed only where S3 requires them: TLS (or the private network to the store) protects the bytes
 * in transit, and Ceph RGW 16 refuses the SDK's default trailing checksums on streamed uploads.
 */
export class Bucket {
  readonly client: S3Client;
  /** The client of streamed GetObject requests: one connection each, the body read into a reused buffer. */
  readonly #bodies: S3Client;
  readonly name: string;

  constructor(settings: S3Settings, observe?: S3RequestObserver) {
    const ca = settings.caPath === undefined ? undefined : readFileSync(settings.caPath);
    this.name = settings.bucket;
    const config = {
      region: settings.region,
      endpoint: settings.endpoint,
      forcePathStyle: settings.forcePathStyle,
      // A copy: the SDK marks the object it is given, and the configuration is frozen.
      credentials: settings.credentials && { ...settings.credentials },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    } as const;
    this.client = new S3Client({
      ...config,
      requestHandler: {
        httpAgent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(ca && { ca }) }),
        connectionTimeout: CONNECTION_TIMEOUT_MS,
        // Inactivity, not duration: a part upload may take long, but never sit silent this long.
        requestTimeout: IDLE_TIMEOUT_MS,
      },
    });
    this.#bodies = new S3Client({
      ...config,
      requestHandler: new ObjectGetHandler({ ca, connectionTimeoutMs: CONNECTION_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS }),
    });
    if (observe) for (const client of [this.client, this.#bodies]) observeRequests(client, observe);
  }

  /** The object's size, time and ETag; undefined when there is none. */
  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: key }));
      return { size: out.ContentLength ?? 0, mtime: out.LastModified ?? new Date(0), etag: out.ETag ?? '' };
    } catch (err) {
      const mapped = s3StorageError(err, 'HeadObject');
      if (mapped.kind === 'not-found') return undefined;
      throw mapped;
    }
  }

  list(o: { prefix: string; delimiter?: string; maxKeys?: number; token?: string | undefined; signal?: AbortSignal }): Promise<ListObjectsV2CommandOutput> {
    const input = { Bucket: this.name, Prefix: o.prefix, Delimiter: o.delimiter, MaxKeys: o.maxKeys, ContinuationToken: o.token };
    return this.#send('ListObjectsV2', () => this.client.send(new ListObjectsV2Command(input), { abortSignal: o.signal }));
  }

  /** The bytes from `start` to the end of the version `etag` names (else 412, a StorageError 'io'). */
  async get(key: string, etag: string, start: number, signal: AbortSignal): Promise<ObjectBody> {
    const out = await this.#send('GetObject', () =>
      this.#bodies.send(new GetObjectCommand({ Bucket: this.name, Key: key, IfMatch: etag, Range: `bytes=${start}-` }), { abortSignal: signal }),
    );
    if (!(out.Body instanceof ObjectBody)) throw new StorageError('io', undefined, { cause: new Error('S3 GetObject: the SDK wrapped the body') });
    return out.Body;
  }

  /**
   * Bytes start..end-1 of the version `etag` names, whole in memory (small ranges only), on a pooled connection:
   * a connection of its own per request (get()) would add a connect, ~1.5 ms against RGW on loopback, to each.
   */
  async getBytes(key: string, etag: string, start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
    const out = await this.#send('GetObject', () =>
      this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key, IfMatch: etag, Range: `bytes=${start}-${end - 1}` }), { abortSignal: signal }),
    );
    const bytes = Buffer.from(await out.Body!.transformToByteArray());
    if (bytes.length !== end - start) throw new StorageError('io', undefined, { cause: new Error('S3 GetObject: short range') });
    return bytes;
  }

  async put(key: string, body: Buffer): Promise<void> {
    await this.#send('PutObject', () => this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentLength: body.length })));
  }

  async delete(key: string): Promise<void> {
    await this.#send('DeleteObject', () => this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: key })));
  }

  /** A server-side copy of an object of at most MAX_COPY_BYTES. */
  async copy(from: string, to: string, etag: string): Promise<void> {
    await this.#send('CopyObject', () =>
      this.client.send(new CopyObjectCommand({ Bucket: this.name, Key: to, CopySource: this.#copySource(from), CopySourceIfMatch: etag })),
    );
  }

  async createMultipart(key: string): Promise<string> {
    const out = await this.#send('CreateMultipartUpload', () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.name, Key: key })));
    if (!out.UploadId) throw new StorageError('io', undefined, { cause: new Error('S3 CreateMultipartUpload: no UploadId') });
    return out.UploadId;
  }

  async uploadPart(key: string, uploadId: string, part: number, body: Buffer, signal: AbortSignal): Promise<CompletedPart> {
    const out = await this.#send('UploadPart', () =>
      this.client.send(
        new UploadPartCommand({ Bucket: this.name, Key: key, UploadId: uploadId, PartNumber: part, Body: body, ContentLength: body.length }),
        { abortSignal: signal },
      ),
    );
    return { PartNumber: part, ETag: out.ETag };
  }

  /** Part `part` of an upload made of bytes start..end-1 of `from`, copied inside the store. */
  async uploadPartCopy(o: { key: string; uploadId: string; part: number; from: string; etag: string; start: number; end: number }): Promise<CompletedPart> {
    const out = await this.#send('UploadPartCopy', () =>
      this.client.send(
        new UploadPartCopyCommand({
          Bucket: this.name,
          Key: o.key,
          UploadId: o.uploadId,
          PartNumber: o.part,
          CopySource: this.#copySource(o.from),
          CopySourceIfMatch: o.etag,
          CopySourceRange: `bytes=${o.start}-${o.end - 1}`,
        }),
      ),
    );
    return { PartNumber: o.part, ETag: out.CopyPartResult?.ETag };
  }

  async completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.#send('CompleteMultipartUpload', () =>
      this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.name, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
    );
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    await this.#send('AbortMultipartUpload', () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.name, Key: key, UploadId: uploadId })));
  }

  /** Multipart uploads under `prefix`, page by page. */
  async *multipartUploads(prefix: string): AsyncGenerator<{ key: string; uploadId: string; initiated: Date }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const out = await this.#send('ListMultipartUploads', () =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.name, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })),
      );
      for (const u of out.Uploads ?? []) {
        if (u.Key !== undefined && u.UploadId !== undefined) yield { key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? new Date() };
      }
      keyMarker = out.IsTruncated ? out.NextKeyMarker : undefined;
      uploadIdMarker = out.IsTruncated ? out.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
  }

  async headBucket(signal?: AbortSignal): Promise<void> {
    await this.#send('HeadBucket', () => this.client.send(new HeadBucketCommand({ Bucket: this.name }), { abortSignal: signal }));
  }

  destroy(): void {
    this.client.destroy();
    this.#bodies.destroy();
  }

  // Keys may hold any character: each component URL-encoded, the slashes kept.
  #copySource(key: string): string {
    return `${this.name}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async #send<T>(operation: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw s3StorageError(err, operation);
    }
  }
}

/** Counts and times every request of `client` by operation (ftps_s3_requests_total, ftps_s3_request_duration_seconds). */
function observeRequests(client: S3Client, observe: S3RequestObserver): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const started = performance.now();
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      try {
        const output = await next(args);
        observe(operation, 'ok', (performance.now() - started) / 1000);
        return output;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        observe(operation, status === 404 ? 'not_found' : 'error', (performance.now() - started) / 1000);
        throw err;
      }
    },
    { step: 'initialize', name: 'ftpsGatewayRequestMetrics' },
  );
}
