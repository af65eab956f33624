import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type tls from 'node:tls';
import { Client, Filter, InvalidCredentialsError, SizeLimitExceededError, type Entry } from 'ldapts';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { resolveHome, type HomeRules } from './home.js';
import { passwordText, type AuthResult, type Password, type UserStore } from './user-store.js';

export type LdapSettings = NonNullable<Config['auth']['ldap']>;

/** Why the directory could not answer: its text ends up in the one log line of the refused login. */
class LdapUnavailable extends Error {}

/** The attribute a filter such as `(uid={user})` compares the login name with: its value is the user's name. */
const NAME_ATTRIBUTE = /\(([A-Za-z][\w-]*)=\{user\}\)/;

/** DNs compared as directories do, near enough: case and the spaces around separators do not matter. */
const normalizeDn = (dn: string): string => dn.toLowerCase().replace(/\s*([,=+])\s*/g, '$1').trim();

const valuesOf = (entry: Entry, attribute: string): string[] => {
  const value = entry[attribute];
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v));
};

/**
 * Users from LDAP_URL, asked about logins no earlier source knows. Each login opens its own connection: StartTLS
 * (or ldaps://) first, the service account (LDAP_BIND_DN) searches LDAP_USER_BASE with LDAP_USER_FILTER, whose
 * `{user}` is the login name escaped per RFC 4515 (a name such as `*` must not match every entry), exactly one entry
 * must match, then a bind as that entry checks the password. Its `memberOf` decides read-write, read-only or no
 * access. The whole exchange has LDAP_TIMEOUT_SECONDS; a directory that is down, slow or misconfigured refuses the
 * login (one error log line, `ftps_logins_total{result="source_unavailable"}`): fail closed.
 */
export class LdapUserStore implements UserStore {
  private readonly url: URL;

  /** Reads LDAP_CA_PATH now, so a wrong path stops the start rather than every login. */
  static async open(settings: LdapSettings, homes: HomeRules, log: Logger): Promise<LdapUserStore> {
    const ca = settings.caPath === undefined ? undefined : await readFile(settings.caPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([`LDAP_CA_PATH: cannot read ${settings.caPath} (${err.code ?? 'error'})`]);
    });
    return new LdapUserStore(settings, homes, log, ca);
  }

  private constructor(
    private readonly settings: LdapSettings,
    private readonly homes: HomeRules,
    private readonly log: Logger,
    private readonly ca: string | undefined,
  ) {
    this.url = new URL(settings.url);
  }

  async authenticate(name: string, password: Password): Promise<AuthResult> {
    const text = passwordText(password);
    // A bind with an empty password is an "unauthenticated bind" (RFC 4513 §5.1.2) that some servers answer with
    // success: never sent. LDAP passwords are UTF-8 strings: other bytes cannot match.
    if (text === undefined || text === '') return { ok: false, reason: 'wrong-password' };
    const ms = this.settings.timeoutSeconds * 1000;
    const ldaps = this.url.protocol === 'ldaps:';
    // Only for ldaps://: given to an ldap:// client, ldapts's StartTLS handshake fails.
    // The deadline below bounds the exchange; ldapts's own timeout (a little later) bounds the closing unbind.
    const client = new Client({
      url: this.settings.url,
      timeout: ms + 1000,
      connectTimeout: ms,
      ...(ldaps && { tlsOptions: this.tlsOptions() }),
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LdapUnavailable(`no answer within ${this.settings.timeoutSeconds} s`)), ms);
    });
    const check = this.check(client, name, text);
    // Settled either way: after the deadline its rejection has no reader.
    check.catch(() => undefined);
    try {
      return await Promise.race([check, deadline]);
    } catch (err) {
      const problem = err instanceof LdapUnavailable ? err.message : describe(err);
      this.log.error({ ldap: this.url.origin, user: name, problem }, 'LDAP unavailable: login refused');
      return { ok: false, reason: 'source-unavailable' };
    } finally {
      clearTimeout(timer);
      // Unbinding also closes the socket, whatever state the exchange was left in; the answer need not wait for it.
      void client.unbind().catch(() => undefined);
    }
  }

  private async check(client: Client, name: string, password: string): Promise<AuthResult> {
    const { startTls, bindDn, bindPassword, userBase, userFilter, homeAttribute, rwGroup, roGroup } = this.settings;
    if (this.url.protocol === 'ldap:' && startTls) await step('StartTLS', client.startTLS(this.tlsOptions()));
    if (bindDn !== undefined && bindPassword !== undefined) await step('service account bind', client.bind(bindDn, bindPassword));
    const filter = userFilter.replaceAll('{user}', Filter.escape(name));
    const nameAttribute = NAME_ATTRIBUTE.exec(userFilter)?.[1];
    const attributes = ['memberOf', ...[nameAttribute, homeAttribute].filter((a) => a !== undefined)];
    let entries: Entry[];
    try {
      ({ searchEntries: entries } = await client.search(userBase, { scope: 'sub', filter, attributes, sizeLimit: 2 }));
    } catch (err) {
      if (err instanceof SizeLimitExceededError) throw new LdapUnavailable('LDAP_USER_FILTER matches more than one entry');
      throw new LdapUnavailable(`search: ${describe(err)}`);
    }
    if (entries.length === 0) return { ok: false, reason: 'unknown-user' };
    if (entries.length > 1) throw new LdapUnavailable('LDAP_USER_FILTER matches more than one entry');
    const entry = entries[0]!;
    try {
      await client.bind(entry.dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return { ok: false, reason: 'wrong-password' };
      throw new LdapUnavailable(`user bind: ${describe(err)}`);
    }
    const groups = new Set(valuesOf(entry, 'memberOf').map(normalizeDn));
    const inGroup = (dn: string | undefined) => dn !== undefined && groups.has(normalizeDn(dn));
    const writable = inGroup(rwGroup);
    if (!writable && !inGroup(roGroup)) return { ok: false, reason: 'not-permitted' };
    // Directories match names without regard to case: "ALICE" is alice, with alice's name and home.
    const spelled = nameAttribute === undefined ? [] : valuesOf(entry, nameAttribute);
    const canonical = spelled.find((v) => v.toLowerCase() === name.toLowerCase()) ?? name;
    const homeDir = this.homeOf(entry, canonical);
    return { ok: true, account: { name: canonical, homeDir, writable } };
  }

  /** LDAP_HOME_ATTRIBUTE's value (a POSIX homeDirectory's leading "/" means FTP_ROOT), else LDAP_HOME_TEMPLATE. */
  private homeOf(entry: Entry, name: string): string {
    const { homeAttribute, homeTemplate } = this.settings;
    const [attribute] = homeAttribute === undefined ? [] : valuesOf(entry, homeAttribute);
    // In the template a name is one path segment: "." would be FTP_ROOT itself, "a/b" someone else's home.
    if (attribute === undefined && (name === '.' || name.includes('/'))) {
      throw new LdapUnavailable(`entry ${entry.dn}: name ${JSON.stringify(name)} cannot be a home directory`);
    }
    const home = attribute === undefined ? homeTemplate.replaceAll('{user}', name) : attribute.replace(/^\/+/, '') || '.';
    const resolved = resolveHome(home, this.homes);
    if ('problem' in resolved) throw new LdapUnavailable(`entry ${entry.dn}: ${resolved.problem}`);
    return resolved.homeDir;
  }

  /**
   * New for every connection: ldapts's startTLS() stores the plain socket in the object it is given, and a shared
   * object would make a later connection run TLS over an old socket.
   */
  private tlsOptions(): tls.ConnectionOptions {
    const host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
    return {
      ...(this.ca !== undefined && { ca: this.ca }),
      // The name the certificate must carry; SNI only for names (an IP address there is invalid).
      host,
      ...(isIP(host) === 0 && { servername: host }),
      minVersion: 'TLSv1.2',
    };
  }
}

/** An LDAP or network error as one short phrase: an LDAP result by its name and code, a socket error by its code. */
function describe(err: unknown): string {
  const e = err as Error & { code?: string | number };
  if (typeof e.code === 'number') return `${e.name} (result code ${e.code})`;
  return e.code === undefined ? e.message : `${e.code}: ${e.message}`;
}

/** Runs one step of the exchange; its failure names the step. */
async function step<T>(label: string, operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    throw new LdapUnavailable(`${label}: ${describe(err)}`);
  }
}
