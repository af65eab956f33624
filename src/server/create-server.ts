import { mkdir } from 'node:fs/promises';
import { createUserStore, type GeneratedUser } from '../auth/create-user-store.js';
import { ConfigError, type Config } from '../config/config.js';
import { PasvAddresses } from '../data/pasv-address.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { StateDir } from '../state/state-dir.js';
import { createStorageProvider } from '../storage/provider.js';
import { loadTlsMaterial } from '../tls/certificates.js';
import { CertificateReloader } from '../tls/certificate-reloader.js';
import { TlsContextFactory } from '../tls/session-contexts.js';
import { FtpServer } from './ftp-server.js';
import { EventService } from '../events/events.js';

async function ensureRoot(root: string): Promise<void> {
  try {
    await mkdir(root, { recursive: true });
  } catch (err) {
    throw new ConfigError([`FTP_ROOT: cannot create ${root} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
}

/**
 * Everything the server needs that is checked at start; problems are ConfigErrors. `announce` prints what the
 * operator must see once, outside the log (a generated password).
 */
export async function createServer(config: Config, log: Logger, announce: GeneratedUser['announce'] = () => {}): Promise<FtpServer> {
  const state = await StateDir.open(config, log);
  const [material, pasvAddresses] = await Promise.all([loadTlsMaterial(config, state), PasvAddresses.create(config, log)]);
  // Object storage keeps nothing under FTP_ROOT: it only names the key prefix S3_PREFIX.
  if (config.storage.s3 === undefined) await ensureRoot(config.storage.root);
  // Process metrics only when an HTTP endpoint can serve them.
  const metrics = new Metrics({ processMetrics: config.operations.httpPort !== 0 });
  const storage = await createStorageProvider(config, metrics, log);
  const store = await createUserStore(config, log, { state, announce });
  const tls = new TlsContextFactory(material, config.tls);
  // Logs the certificates, then watches their files until FtpServer.stop(); created last, so nothing can leak it.
  const certificates = new CertificateReloader({ config, log, contexts: tls });
  const events = EventService.create(config, metrics, log);
  return new FtpServer({ config, log, tls, certificates, users: store, storage, pasvAddresses, metrics, events });
}
