import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isWithin } from '../auth/users-file.js';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';

/** What a remembered value is and whether this call made it (so a generated password is shown once only). */
export interface Remembered {
  readonly text: string;
  readonly created: boolean;
}

/**
 * STATE_DIR: what the server generates for itself on a zero-config start (the default user's password hash,
 * the self-signed pair) survives restarts, so clients and FileZilla's trust prompt see the same ones again.
 * The directory must lie outside every FTP root: no client may ever download the key or the hash.
 *
 * When it cannot be written (no volume and a read-only file system), values live for this run only, with a
 * warning: a first start must not fail for want of persistence. Read-only mode (check-config) never writes.
 */
export class StateDir {
  private constructor(
    private readonly dir: string,
    private readonly writable: boolean,
    private readonly log: Logger,
  ) {}

  static async open(config: Config, log: Logger, { readOnly = false } = {}): Promise<StateDir> {
    const dir = config.storage.stateDir;
    const roots = [['FTP_ROOT', config.storage.root]];
    if (config.auth.anonymous) roots.push(['FTP_ANONYMOUS_ROOT', config.auth.anonymousRoot]);
    const exposed = roots
      .filter(([, root]) => isWithin(root!, dir) || isWithin(dir, root!))
      .map(([name, root]) => `STATE_DIR: ${dir} and ${name} (${root}) overlap: FTP clients could reach the server's key and password hash`);
    if (exposed.length > 0) throw new ConfigError(exposed);
    if (readOnly) return new StateDir(dir, false, log);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return new StateDir(dir, true, log);
    } catch (err) {
      log.warn({ dir, code: (err as NodeJS.ErrnoException).code }, 'STATE_DIR cannot be created: generated credentials last for this run only');
      return new StateDir(dir, false, log);
    }
  }

  /**
   * The value stored under `name` while `usable` says so, otherwise the one `create` makes, stored (mode 0600,
   * written whole) for next time.
   */
  async remember(name: string, create: () => Promise<string>, usable: (text: string) => boolean = () => true): Promise<Remembered> {
    const file = path.join(this.dir, name);
    try {
      const text = await readFile(file, 'utf8');
      if (usable(text)) return { text, created: false };
      this.log.info({ file }, 'replacing a stored value that can no longer be used');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ConfigError([`STATE_DIR: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
      }
    }
    const text = await create();
    if (this.writable) await this.store(file, text);
    return { text, created: true };
  }

  /** A crash mid-write must not leave half a key behind: write a temporary file, then rename it into place. */
  private async store(file: string, text: string): Promise<void> {
    const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(temporary, text, { mode: 0o600, flush: true });
      await rename(temporary, file);
    } catch (err) {
      this.log.warn({ file, code: (err as NodeJS.ErrnoException).code }, 'cannot write to STATE_DIR: this value lasts for this run only');
    }
  }
}
