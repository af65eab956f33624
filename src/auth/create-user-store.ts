import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { StaticUserStore } from './static-user-store.js';
import type { UserStore } from './user-store.js';

export const DEFAULT_USER = 'ftp';

/**
 * FTP_USER/FTP_PASSWORD, or, when no user is configured, user "ftp" with a random password shown once,
 * so a first `docker run` works and nothing is guessable.
 */
export function createUserStore(config: Config, log: Logger): UserStore {
  const home = config.storage.root;
  if (config.auth.user !== undefined && config.auth.password !== undefined) {
    return new StaticUserStore({ name: config.auth.user, homeDir: home, writable: true }, config.auth.password);
  }
  const generated = randomBytes(12).toString('base64url');
  log.warn(
    { user: DEFAULT_USER },
    `No user configured (FTP_USER/FTP_PASSWORD): created user "${DEFAULT_USER}" with password ${generated} for this run`,
  );
  return new StaticUserStore({ name: DEFAULT_USER, homeDir: home, writable: true }, generated);
}
