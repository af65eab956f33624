import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import type { StateDir } from '../state/state-dir.js';
import { AnonymousUserStore, isAnonymousName } from './anonymous-user-store.js';
import { CompositeUserStore, OrderedUserStore } from './composite-user-store.js';
import { FileUserStore } from './file-user-store.js';
import { HookUserStore } from './hook-user-store.js';
import { LdapUserStore } from './ldap-user-store.js';
import { hashPassword, parsePasswordHash } from './password-hash.js';
import { isWithin } from './home.js';
import { StaticUserStore } from './static-user-store.js';
import type { UserStore } from './user-store.js';

export const DEFAULT_USER = 'ftp';
const USERS_FILE_POLL_MS = 5_000;
/** In STATE_DIR: the hash of the generated password of DEFAULT_USER. */
const GENERATED_PASSWORD_FILE = 'default-user.hash';

/** Where the generated user's password hash is kept, and how its password is shown (once) to the operator. */
export interface GeneratedUser {
  readonly state: StateDir;
  readonly announce: (line: string) => void;
}

/**
 * The user sources the configuration names, combined. A name belongs to one source only:
 * - FTP_USER/FTP_PASSWORD: one read-write user whose home is FTP_ROOT;
 * - FTP_USERS_FILE: users with their own homes under FTP_ROOT; a line naming FTP_USER, or an anonymous name
 *   while FTP_ANONYMOUS is on, is an error in the file (FTP_USER wins);
 * - FTP_ANONYMOUS: "anonymous"/"ftp" with any password, read-only in FTP_ANONYMOUS_ROOT.
 * These local sources answer every login together (same time whichever knows the name). Only a name none of them
 * knows goes on to AUTH_HOOK_URL, then, if the hook does not know it either (404), to LDAP_URL: a name is the
 * first source's that knows it, and local passwords never leave the process.
 * Only when none of them is configured is user "ftp" created with a random password shown once, so a first
 * `docker run` works and nothing is guessable; anonymous access or a users file alone never creates it. Its hash
 * stays in STATE_DIR, so restarts keep the password and never show it again.
 */
export async function createUserStore(config: Config, log: Logger, generated: GeneratedUser): Promise<UserStore> {
  const { auth, storage } = config;
  // FTP_USER's home is FTP_ROOT; the users file's homes are checked line by line as it loads.
  if (auth.anonymous && auth.user !== undefined && isWithin(auth.anonymousRoot, storage.root)) {
    throw new ConfigError([
      `FTP_ANONYMOUS_ROOT: ${auth.anonymousRoot} contains FTP_ROOT (${storage.root}), the home of FTP_USER "${auth.user}": anonymous users could read it`,
    ]);
  }
  const sources: UserStore[] = [];
  if (auth.user !== undefined && auth.password !== undefined) {
    if (auth.anonymous && isAnonymousName(auth.user)) {
      throw new ConfigError([`FTP_USER: "${auth.user}" is an anonymous login name, and FTP_ANONYMOUS is true`]);
    }
    sources.push(new StaticUserStore({ name: auth.user, homeDir: storage.root, writable: true }, { password: auth.password }));
  }
  if (auth.usersFile !== undefined) {
    const claimedBy = (name: string) =>
      name === auth.user ? 'FTP_USER' : auth.anonymous && isAnonymousName(name) ? 'FTP_ANONYMOUS' : undefined;
    const store = await FileUserStore.open({
      file: auth.usersFile,
      root: storage.root,
      anonymousRoot: auth.anonymous ? auth.anonymousRoot : undefined,
      claimedBy,
      log,
      pollIntervalMs: USERS_FILE_POLL_MS,
    });
    log.info({ file: auth.usersFile, users: store.size }, 'users file loaded');
    sources.push(store);
  }
  if (auth.anonymous) {
    // Object storage has no directories to make.
    if (storage.s3 === undefined) await mkdir(auth.anonymousRoot, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([`FTP_ANONYMOUS_ROOT: cannot create ${auth.anonymousRoot} (${err.code ?? 'error'})`]);
    });
    sources.push(new AnonymousUserStore(auth.anonymousRoot));
  }
  const homes = { root: storage.root, anonymousRoot: auth.anonymous ? auth.anonymousRoot : undefined };
  const remote: UserStore[] = [];
  if (auth.hook !== undefined) remote.push(new HookUserStore(auth.hook, homes, log));
  if (auth.ldap !== undefined) remote.push(await LdapUserStore.open(auth.ldap, homes, log));
  if (sources.length === 0 && remote.length === 0) sources.push(await generatedUserStore(config, log, generated));
  const local = sources.length === 1 ? sources[0]! : new CompositeUserStore(sources);
  if (remote.length === 0) return local;
  return new OrderedUserStore(sources.length === 0 ? remote : [local, ...remote]);
}

async function generatedUserStore(config: Config, log: Logger, { state, announce }: GeneratedUser): Promise<UserStore> {
  let password: string | undefined;
  const stored = await state.remember(GENERATED_PASSWORD_FILE, () => {
    password = randomBytes(12).toString('base64url');
    return hashPassword(password);
  });
  const parsed = parsePasswordHash(stored.text.trim());
  if ('problem' in parsed) throw new ConfigError([`STATE_DIR: ${GENERATED_PASSWORD_FILE}: ${parsed.problem} (delete it to get a new password)`]);
  const account = { name: DEFAULT_USER, homeDir: config.storage.root, writable: true };
  const choose = 'set FTP_USER/FTP_PASSWORD, FTP_USERS_FILE, AUTH_HOOK_URL, LDAP_URL or FTP_ANONYMOUS to choose your own';
  if (password === undefined) {
    log.info({ user: DEFAULT_USER, stateDir: config.storage.stateDir }, `No user configured: user "${DEFAULT_USER}" keeps the password generated at first start (${choose})`);
  } else {
    log.warn({ user: DEFAULT_USER, stateDir: config.storage.stateDir }, `No user configured: created user "${DEFAULT_USER}" with a generated password, printed once below (${choose})`);
    announce(`Generated password for FTP user "${DEFAULT_USER}": ${password}`);
  }
  return new StaticUserStore(account, { hash: parsed.hash });
}
