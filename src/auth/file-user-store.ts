import { createHash, createHmac, randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { hashCost, verifyPassword, type PasswordHash } from './password-hash.js';
import { isListed } from '../net/address-list.js';
import { parseUsersFile, type FileUser, type UsersFileOptions } from './users-file.js';
import { passwordBytes, type AuthFailure, type AuthResult, type Password, type PeerInfo, type UserStore } from './user-store.js';

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
/** Per process: which decoy a name gets cannot be computed from outside. */
const DECOY_KEY = randomBytes(32);

interface Decoy {
  readonly hash: PasswordHash;
  /** Users whose hash is of this kind. */
  readonly users: number;
}

/** Per hash kind, the hash of median cost among the users of that kind. */
function decoysOf(users: ReadonlyMap<string, FileUser>): Decoy[] {
  const byKind = new Map<string, PasswordHash[]>();
  for (const { hash } of users.values()) byKind.set(hash.kind, [...(byKind.get(hash.kind) ?? []), hash]);
  return [...byKind.values()].map((hashes) => {
    const sorted = hashes.sort((a, b) => hashCost(a) - hashCost(b));
    return { hash: sorted[Math.floor(sorted.length / 2)]!, users: hashes.length };
  });
}
const fail = (reason: AuthFailure): AuthResult => ({ ok: false, reason });

/**
 * Users from FTP_USERS_FILE, reloaded when the file changes. The directory is watched, not the file:
 * Kubernetes updates a mounted secret by swapping a `..data` symlink next to it, and the file's own inode
 * never changes. A periodic re-read covers volumes without notifications. A file that no longer parses
 * keeps the last good users.
 */
export class FileUserStore implements UserStore {
  private users: ReadonlyMap<string, FileUser> = new Map();
  /** Per hash kind, what unknown names are checked against (decoyFor). */
  private decoys: readonly Decoy[] = [];
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

  async authenticate(name: string, password: Password, peer: PeerInfo): Promise<AuthResult> {
    const user = this.users.get(name);
    // Without any user there is no decoy, and no name costs anything: still the same for all names.
    const hash = user?.hash ?? this.decoyFor(name);
    const matches = hash !== undefined && (await verifyPassword(hash, passwordBytes(password)));
    if (!user) return fail('unknown-user');
    if (user.allowedFrom && !isListed(user.allowedFrom, peer.address)) return fail('address-not-allowed');
    if (!matches) return fail('wrong-password');
    if (user.disabled) return fail('account-disabled');
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

  /**
   * Takes a parsed file. An unchanged user keeps its Account object, so open sessions see no change; every
   * account answers current() from whatever file is loaded now.
   */
  private use(users: ReadonlyMap<string, FileUser>): void {
    const before = this.users;
    this.users = new Map(
      [...users].map(([name, user]) => {
        const old = before.get(name)?.account;
        const same = old !== undefined && old.homeDir === user.account.homeDir && old.writable === user.account.writable &&
          old.sessionReuseExempt === user.account.sessionReuseExempt;
        const current = () => {
          const now = this.users.get(name);
          return now && !now.disabled ? now.account : undefined;
        };
        return [name, { ...user, account: same ? old : { ...user.account, current } }];
      }),
    );
    this.decoys = decoysOf(this.users);
  }

  /**
   * The hash an unknown name is checked against, so that it costs what a real user costs. Unknown names are
   * spread over the hash kinds in the file in proportion to their users (by a keyed hash of the name, so one name
   * always costs the same), each kind at its median cost: a user with a costlier hash kind is not told apart
   * from unknown names by timing, and repeating a name learns nothing new.
   */
  private decoyFor(name: string): PasswordHash | undefined {
    if (this.decoys.length === 0) return undefined;
    const pick = createHmac('sha256', DECOY_KEY).update(name).digest().readUInt32BE(0) % this.users.size;
    let seen = 0;
    for (const decoy of this.decoys) {
      seen += decoy.users;
      if (pick < seen) return decoy.hash;
    }
    return this.decoys[0]!.hash;
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
