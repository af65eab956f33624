import { mkdir } from 'node:fs/promises';
import { createUserStore } from '../auth/create-user-store.js';
import type { UserStore } from '../auth/user-store.js';
import { ConfigError, type Config } from '../config/config.js';
import { PasvAddresses } from '../data/pasv-address.js';
import type { Logger } from '../observability/logger.js';
import { loadTlsMaterial } from '../tls/certificates.js';
import { TlsContextFactory } from '../tls/session-contexts.js';
import { FtpServer } from './ftp-server.js';

async function ensureRoot(root: string): Promise<void> {
  try {
    await mkdir(root, { recursive: true });
  } catch (err) {
    throw new ConfigError([`FTP_ROOT: cannot create ${root} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
}

/** Everything the server needs that is checked at start; problems are ConfigErrors. */
export async function createServer(config: Config, log: Logger, users?: UserStore): Promise<FtpServer> {
  const [material, pasvAddresses] = await Promise.all([loadTlsMaterial(config), PasvAddresses.create(config, log)]);
  await ensureRoot(config.storage.root);
  for (const [channel, m] of Object.entries(material)) {
    if (channel === 'data' && m === material.control) continue;
    const entry = { channel, fingerprint256: m.fingerprint256, subject: m.subject, validTo: m.validTo.toISOString() };
    if (m.selfSigned) log.warn(entry, 'no certificate found: using a generated self-signed certificate');
    else log.info(entry, 'certificate loaded');
  }
  const store = users ?? (await createUserStore(config, log));
  return new FtpServer({ config, log, tls: new TlsContextFactory(material, config.tls), users: store, pasvAddresses });
}
