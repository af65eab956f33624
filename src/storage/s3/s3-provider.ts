import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isWithin } from '../../auth/home.js';
import type { Account } from '../../auth/user-store.js';
import { ConfigError, type Config } from '../../config/config.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { StorageProvider } from '../provider.js';
import { StorageError, type StorageBackend } from '../storage.js';
import { Bucket, type S3Settings } from './bucket.js';
import { S3Storage } from './s3-storage.js';

const HOUR_MS = 60 * 60 * 1000;
/** The readiness probe's own bound, inside /readyz's 2 s: a later answer counts as a slow store. */
const PROBE_TIMEOUT_MS = 1_500;
const SLOW_WARNING_INTERVAL_MS = 60_000;
/**
 * How old a multipart upload must be to be abandoned. A live one belongs to a transfer still receiving, which
 * may last hours; one replica's sweep must never abort another's. A day is longer than any upload the part
 * limit allows at a few MB/s, and an upload older than that fails with 451 rather than losing data silently.
 */
export const ABANDONED_UPLOAD_AGE_MS = 24 * HOUR_MS;

/**
 * Homes are key prefixes: FTP_ROOT is S3_PREFIX, and a home FTP_ROOT/alice is `<S3_PREFIX>alice/`. Nothing is
 * stored on local disk, so replicas share nothing but the bucket.
 */
export class S3StorageProvider implements StorageProvider {
  #lastSlowWarning = -Infinity;

  private constructor(
    private readonly bucket: Bucket,
    private readonly settings: S3Settings,
    private readonly root: string,
    private readonly log: Logger,
  ) {}

  static create(config: Config, settings: S3Settings, metrics: Metrics, log: Logger): S3StorageProvider {
    const { root } = config.storage;
    const { anonymous, anonymousRoot } = config.auth;
    // Homes outside FTP_ROOT have no key prefix; users' homes never are (auth/home.ts), FTP_ANONYMOUS_ROOT may be.
    if (anonymous && !isWithin(root, anonymousRoot)) {
      throw new ConfigError([`FTP_ANONYMOUS_ROOT: with STORAGE_BACKEND=s3 it must lie inside FTP_ROOT (${root}), whose key prefix is S3_PREFIX`]);
    }
    let bucket: Bucket;
    try {
      bucket = new Bucket(settings, (operation, result, seconds) => metrics.s3Request(operation, result, seconds));
    } catch (err) {
      throw new ConfigError([`S3_CA_PATH: cannot read ${settings.caPath ?? ''} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    log.info({ bucket: settings.bucket, prefix: settings.prefix, endpoint: settings.endpoint ?? 'AWS' }, 'storing files in S3');
    return new S3StorageProvider(bucket, settings, root, log);
  }

  /** A home needs no marker: the root of a tree exists whether or not a key lies under it. */
  open(account: Account): Promise<StorageBackend> {
    return Promise.resolve(new S3Storage(this.bucket, this.#homePrefix(account.homeDir), this.settings.partSize));
  }

  #homePrefix(homeDir: string): string {
    const relative = path.relative(this.root, homeDir).split(path.sep).filter(Boolean);
    return this.settings.prefix + relative.map((part) => `${part}/`).join('');
  }

  /**
   * Not ready when the bucket refuses this replica (no such bucket, wrong keys, a policy without s3:ListBucket): a
   * configuration only this replica may have. A slow or unreachable store is every replica's at once: taking them
   * all out of rotation (and a balancer cutting their sessions) would turn a hiccup of the store into an outage, so
   * that is logged, at most once a minute, and the replica stays ready; transfers meanwhile get 451.
   */
  async probe(): Promise<string | undefined> {
    try {
      await this.bucket.headBucket(AbortSignal.timeout(PROBE_TIMEOUT_MS));
      return undefined;
    } catch (err) {
      const reason = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
      if (!(err instanceof StorageError && err.kind === 'unavailable')) return `the bucket ${this.settings.bucket} refused this replica (${reason})`;
      if (Date.now() - this.#lastSlowWarning >= SLOW_WARNING_INTERVAL_MS) {
        this.#lastSlowWarning = Date.now();
        this.log.warn({ bucket: this.settings.bucket, reason }, 'the S3 store is slow or unreachable (readiness unchanged: every replica shares it)');
      }
      return undefined;
    }
  }

  async maintain(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.sweepAbandonedUploads(ABANDONED_UPLOAD_AGE_MS).catch((err: unknown) =>
        this.log.error({ err }, 'sweeping abandoned multipart uploads failed'),
      );
      await sleep(HOUR_MS, undefined, { signal, ref: false }).catch(() => undefined);
    }
  }

  /** Aborts multipart uploads under S3_PREFIX begun more than `olderThanMs` ago; returns how many. */
  async sweepAbandonedUploads(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs;
    let aborted = 0;
    for await (const upload of this.bucket.multipartUploads(this.settings.prefix)) {
      if (upload.initiated.getTime() >= before) continue;
      // Another replica may abort the same one at the same time: NoSuchUpload then is success.
      await this.bucket.abortMultipart(upload.key, upload.uploadId).catch(() => undefined);
      aborted++;
    }
    if (aborted > 0) this.log.info({ aborted }, 'aborted abandoned multipart uploads');
    return aborted;
  }

  close(): void {
    this.bucket.destroy();
  }
}
