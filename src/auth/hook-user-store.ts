import { createHmac, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { z } from 'zod';
import type { Config } from '../config/config.js';
import { blockListOf, isListed, parseAddressRange } from '../net/address-list.js';
import type { Logger } from '../observability/logger.js';
import { resolveHome, type HomeRules } from './home.js';
import { passwordBytes, passwordText, type Account, type AuthResult, type Password, type PeerInfo, type UserStore } from './user-store.js';

export type HookSettings = NonNullable<Config['auth']['hook']>;

/** A hook's answer is a few fields: anything longer is not one, and is not read into memory. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** Cached logins kept at most; beyond, the oldest go first (memory stays bounded under many distinct logins). */
const MAX_CACHED = 10_000;

/** The 200 answer's body; unknown fields are ignored, so hooks may send more. */
const answerSchema = z.object({
  home: z.string(),
  permissions: z.enum(['rw', 'ro']),
  allowedCidrs: z.array(z.string()).min(1).optional(),
  sessionReuse: z.enum(['optional', 'required']).optional(),
});

interface HookAccount {
  readonly account: Account;
  /** Client addresses the account may log in from; undefined = any. */
  readonly allowedFrom: net.BlockList | undefined;
}

/** Why the hook could not answer: its text ends up in the one log line of the refused login. */
class HookUnavailable extends Error {}

/**
 * Users from AUTH_HOOK_URL: every login the earlier sources do not know is POSTed to the hook, which decides.
 * Fail closed: no answer in time, a 5xx, a redirect or a body that is not the documented JSON refuses the login
 * (metric `ftps_logins_total{result="source_unavailable"}`, one error log line), so an outage never lets anyone in.
 *
 * Successful answers are reused for AUTH_HOOK_CACHE_SECONDS, keyed by an HMAC (per-process key) of user, password,
 * client address and certificate: the cache holds no password, a different password or address asks the hook again,
 * and failures are never cached, so guessing always costs a hook round trip (and counts toward bans in the session).
 */
export class HookUserStore implements UserStore {
  private readonly cache = new Map<string, { readonly entry: HookAccount; readonly until: number }>();
  private readonly cacheKey = randomBytes(32);
  /** Where logs say the hook is: no query string or user-info, which could hold a secret. */
  private readonly endpoint: string;

  constructor(
    private readonly settings: HookSettings,
    private readonly homes: HomeRules,
    private readonly log: Logger,
  ) {
    const url = new URL(settings.url);
    this.endpoint = url.origin + url.pathname;
  }

  async authenticate(name: string, password: Password, peer: PeerInfo): Promise<AuthResult> {
    const text = passwordText(password);
    // JSON carries text: a password that is not UTF-8 cannot be what the hook's users chose.
    if (text === undefined) return { ok: false, reason: 'wrong-password' };
    const key = this.keyOf(name, password, peer);
    let entry = this.cached(key);
    if (entry === undefined) {
      let answer: HookAccount | 'refused' | 'unknown';
      try {
        answer = await this.ask(name, text, peer);
      } catch (err) {
        if (!(err instanceof HookUnavailable)) throw err;
        this.log.error({ hook: this.endpoint, user: name, problem: err.message }, 'auth hook unavailable: login refused');
        return { ok: false, reason: 'source-unavailable' };
      }
      if (answer === 'refused') return { ok: false, reason: 'wrong-password' };
      if (answer === 'unknown') return { ok: false, reason: 'unknown-user' };
      entry = answer;
      this.remember(key, entry);
    }
    if (entry.allowedFrom && !isListed(entry.allowedFrom, peer.address)) return { ok: false, reason: 'address-not-allowed' };
    return { ok: true, account: entry.account };
  }

  private async ask(user: string, password: string, peer: PeerInfo): Promise<HookAccount | 'refused' | 'unknown'> {
    const { url, secret, timeoutSeconds } = this.settings;
    const body = JSON.stringify({ user, password, clientAddress: peer.address, protocol: 'ftps', clientCertificate: peer.clientCertificate });
    let response: Response;
    let answer: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(secret !== undefined && { authorization: `Bearer ${secret}` }) },
        body,
        // A redirect would send the password on to wherever it points.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutSeconds * 1000),
      });
      answer = await readLimited(response);
    } catch (err) {
      if (err instanceof HookUnavailable) throw err;
      const e = err as Error & { cause?: { code?: string } };
      const problem = e.name === 'TimeoutError' ? `no answer within ${timeoutSeconds} s` : `request failed (${e.cause?.code ?? e.message})`;
      throw new HookUnavailable(problem);
    }
    if (response.status === 401 || response.status === 403) return 'refused';
    if (response.status === 404) return 'unknown';
    if (response.status !== 200) throw new HookUnavailable(`answered HTTP ${response.status}`);
    return this.accountOf(user, answer);
  }

  /** The 200 answer → the account; a body that is not the documented JSON, or a home outside FTP_ROOT, refuses. */
  private accountOf(name: string, text: string): HookAccount {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new HookUnavailable('answered 200 with a body that is not JSON');
    }
    const parsed = answerSchema.safeParse(json);
    if (!parsed.success) {
      const fields = [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(body)'))].join(', ');
      throw new HookUnavailable(`answered 200 with invalid fields: ${fields}`);
    }
    const { home, permissions, allowedCidrs, sessionReuse } = parsed.data;
    const resolved = resolveHome(home, this.homes);
    if ('problem' in resolved) throw new HookUnavailable(`answered 200 with a refused ${resolved.problem}`);
    const ranges = allowedCidrs?.map(parseAddressRange);
    if (ranges?.some((r) => r === undefined)) throw new HookUnavailable('answered 200 with an allowedCidrs entry that is not an IP or CIDR');
    const account: Account = {
      name,
      homeDir: resolved.homeDir,
      writable: permissions === 'rw',
      ...(sessionReuse === 'optional' && { sessionReuseExempt: true }),
    };
    return { account, allowedFrom: ranges && blockListOf(ranges.filter((r) => r !== undefined)) };
  }

  private keyOf(name: string, password: Password, peer: PeerInfo): string {
    const hmac = createHmac('sha256', this.cacheKey);
    // Length-prefixed, so that no two different logins give the same input.
    for (const part of [Buffer.from(name), passwordBytes(password), Buffer.from(peer.address), Buffer.from(peer.clientCertificate ?? '')]) {
      hmac.update(`${part.length}:`).update(part);
    }
    return hmac.digest('base64');
  }

  private cached(key: string): HookAccount | undefined {
    const hit = this.cache.get(key);
    if (hit === undefined) return undefined;
    if (hit.until > performance.now()) return hit.entry;
    this.cache.delete(key);
    return undefined;
  }

  private remember(key: string, entry: HookAccount): void {
    const ms = this.settings.cacheSeconds * 1000;
    if (ms === 0) return;
    this.cache.delete(key);
    this.cache.set(key, { entry, until: performance.now() + ms });
    // All entries live equally long, so insertion order is expiry order: the first one is the oldest.
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** The response body as text, refused beyond MAX_ANSWER_BYTES. */
async function readLimited(response: Response): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (response.body === null) return '';
  // Leaving the loop early cancels the stream, so the rest is never downloaded.
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) throw new HookUnavailable(`answered with more than ${MAX_ANSWER_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}
