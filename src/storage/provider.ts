import { randomBytes } from 'node:crypto';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Account } from '../auth/user-store.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { LocalFsStorage } from './local-fs.js';
import type { StorageBackend } from './storage.js';
import { sweepPeriodically } from './temp-sweeper.js';

/** Where the users' files are (STORAGE_BACKEND): what the server needs besides each session's tree. */
export interface StorageProvider {
  /** The tree of an account's home, created when missing (a user source may name a new home). */
  open(account: Account): Promise<StorageBackend>;
  /** Why the storage cannot take a file now (/readyz), undefined when it can. */
  probe(): Promise<string | undefined>;
  /** Removes what dead uploads left behind, now and periodically, until `signal` aborts; never rejects. */
  maintain(signal: AbortSignal): Promise<void>;
  /** Releases connections (after the sessions ended). */
  close(): void;
}

/** Files under FTP_ROOT. */
class LocalStorageProvider implements StorageProvider {
  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  async open(account: Account): Promise<StorageBackend> {
    await mkdir(account.homeDir, { recursive: true });
    const { followSymlinks, fsync } = this.config.storage;
    return new LocalFsStorage(account.homeDir, { followSymlinks, fsync });
  }

  /**
   * Creates and removes a hidden file in the storage root: access(W_OK) would say yes to root on a read-only
   * mount or a full disk's directory. The name is random so that replicas sharing the volume never collide.
   */
  async probe(): Promise<string | undefined> {
    const root = this.config.storage.root;
    const file = path.join(root, `.ftps-gateway-probe-${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(file, '', { flag: 'wx' });
      await unlink(file);
      return undefined;
    } catch (err) {
      return `the storage root ${root} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
    }
  }

  maintain(signal: AbortSignal): Promise<void> {
    return sweepPeriodically({ root: this.config.storage.root, dataTimeoutSeconds: this.config.data.timeoutSeconds, log: this.log, signal });
  }

  close(): void {}
}

/** The configured storage; the S3 client is loaded only when it is used. */
export async function createStorageProvider(config: Config, metrics: Metrics, log: Logger): Promise<StorageProvider> {
  if (config.storage.s3 === undefined) return new LocalStorageProvider(config, log);
  const { S3StorageProvider } = await import('./s3/s3-provider.js');
  return S3StorageProvider.create(config, config.storage.s3, metrics, log);
}
