import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { verifyPassword, type PasswordHash } from './password-hash.js';
import { isListed } from '../net/address-list.js';
import { parseUsersFile, type FileUser, type UsersFileOptions } from './users-file.js';
import type { AuthFailure, AuthResult, PeerInfo, UserStore } from './user-store.js';

export interface FileUserStoreOptions extends UsersFileOptions {
  /** FTP_USERS_FILE */
  readonly file: string;
  readonly log: Logger;
  /** Re-read period, for volumes where change notifications never come. */
  readonly pollIntervalMs: number;
}

/** A Kubernetes secret update is several renames in a row: read once they have settled. */
const SETTLE_MS = 100;

const fingerprint = (text: string): string => createHash('sha256').update(text).digest('hex');
const fail = (reason: AuthFailure): AuthResult => ({ ok: false, reason });

/**
 * Users from FTP_USERS_FILE, reloaded when the file changes. The directory is watched, not the file:
 * Kubernetes updates a mounted secret by swapping a `..data` symlink next to it, and the file's own inode
 * never changes. A periodic re-read covers volumes without notifications. A file that no longer parses
 * keeps the last good users.
 */
export class FileUserStore implements UserStore {
  private users: ReadonlyMap<string, FileUser> = new Map();
  /** Checked for unknown names: a real user's hash, so they cost what a known name costs. */
  private decoy: PasswordHash | undefined;
  /** The content (or read error) last looked at: an unchanged file is not parsed again. */
  private seen: string;
  private reloading = Promise.resolve();
  private closed = false;
  private watcher: FSWatcher | undefined;
  private readonly poller: NodeJS.Timeout;
  private settle: NodeJS.Timeout | undefined;

  /** Reads and checks the file; its problems are ConfigErrors, one per bad line. */
  static async open(options: FileUserStoreOptions): Promise<FileUserStore> {
    const text = await readFile(options.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([`FTP_USERS_FILE: cannot read ${options.file} (${err.code ?? 'error'})`]);
    });
    const { users, problems } = parseUsersFile(text, options);
    if (problems.length > 0) {
      throw new ConfigError(problems.map((p) => `FTP_USERS_FILE: line ${p.line}: ${p.message}`));
    }
    return new FileUserStore(options, users, fingerprint(text));
  }

  private constructor(
    private readonly options: FileUserStoreOptions,
    users: ReadonlyMap<string, FileUser>,
    seen: string,
  ) {
    this.use(users);
    this.seen = seen;
    this.poller = setInterval(() => void this.reload(), options.pollIntervalMs).unref();
    this.watchDirectory();
  }

  get size(): number {
    return this.users.size;
  }

  async authenticate(name: string, password: string, peer: PeerInfo): Promise<AuthResult> {
    const user = this.users.get(name);
    // Without any user there is no decoy, and no name costs anything: still the same for all names.
    const hash = user?.hash ?? this.decoy;
    const matches = hash !== undefined && (await verifyPassword(hash, password));
    if (!user) return fail('unknown-user');
    if (user.allowedFrom && !isListed(user.allowedFrom, peer.address)) return fail('address-not-allowed');
    if (!matches) return fail('wrong-password');
    await mkdir(user.account.homeDir, { recursive: true });
    return { ok: true, account: user.account };
  }

  /**
   * Re-reads the file now (what the watcher, the timer and SIGHUP call). Runs one at a time; never rejects:
   * problems are logged and the current users stay.
   */
  reload(): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.readAndApply())
      .catch((err: unknown) => this.options.log.error({ err, file: this.options.file }, 'users file reload failed'));
    return this.reloading;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.poller);
    clearTimeout(this.settle);
  }

  private use(users: ReadonlyMap<string, FileUser>): void {
    this.users = users;
    this.decoy = users.values().next().value?.hash;
  }

  private watchDirectory(): void {
    const { file, log } = this.options;
    const onFailure = (err: unknown) =>
      log.warn({ err, file }, `cannot watch the users file's directory; re-reading it every ${this.options.pollIntervalMs} ms`);
    try {
      this.watcher = watch(path.dirname(file), { persistent: false }, () => {
        clearTimeout(this.settle);
        this.settle = setTimeout(() => void this.reload(), SETTLE_MS).unref();
      });
      this.watcher.on('error', (err) => {
        onFailure(err);
        this.watcher?.close();
      });
    } catch (err) {
      onFailure(err);
    }
  }

  private async readAndApply(): Promise<void> {
    if (this.closed) return;
    const { file, log } = this.options;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      if (this.seen === code) return;
      this.seen = code;
      log.warn({ file, code }, 'cannot read the users file; keeping the current users');
      return;
    }
    const seen = fingerprint(text);
    if (seen === this.seen) return;
    this.seen = seen;
    const { users, problems } = parseUsersFile(text, this.options);
    if (problems.length > 0) {
      for (const p of problems) log.warn({ file, line: p.line }, `users file line ${p.line}: ${p.message}`);
      log.warn({ file, problems: problems.length }, 'users file not reloaded: keeping the current users');
      return;
    }
    this.use(users);
    log.info({ file, users: users.size }, 'users file reloaded');
  }
}
