/*
 * Per-session TLS contexts: how a data connection proves it belongs to its control connection.
 *
 * FTPS servers (vsftpd `require_ssl_reuse`, ProFTPD `TLSOptions` without NoSessionReuseRequired) refuse a
 * protected data connection unless it resumes the TLS session of its own control connection: otherwise
 * whoever connects to the passive port first, from the client's address, gets the file.
 * Node reports only *that* a session was resumed (`isSessionReused()`), not *which* one.
 *
 * So every control connection gets its own SecureContext with its own random 48-byte ticket keys. Session
 * tickets are encrypted under those keys, so a ticket issued on one control connection can be decrypted
 * only by that connection's contexts; its data connections use a context with the same keys (and the data
 * certificate, which may differ). On a data connection, `isSessionReused() === true` therefore proves that
 * the peer holds a ticket from this control connection; a fresh handshake, or a ticket from any other
 * connection, yields false.
 *
 * Session IDs (TLS <= 1.2) need a server-side cache, which Node's TLSSocket does not keep: curl with OpenSSL
 * disables tickets (SSL_OP_NO_TICKET) and resumes by ID only, so without one every curl data connection over
 * TLS 1.2 is refused. Each control connection therefore also gets its own small ID cache: its control handshake
 * records the IDs it issues, its data handshakes look them up and record nothing. A cache shared between
 * control connections would let any session resume any other; this one keeps the property above.
 *
 * Client certificates (TLS_CLIENT_AUTH) are asked for on the control connection only: its context holds the client
 * CA and its TLSSocket requests the certificate (client-certificates.ts). A data connection resumes that session, and
 * with it the identity the control handshake proved; it never asks again, so the proof above is unchanged.
 *
 * A certificate reload (certificate-reloader.ts) changes what new sessions get; a session keeps the contexts it
 * took first, so its data connections go on resuming its control session under the same keys and certificate.
 *
 * Cost: about 0.3 ms and 35 KB per context (bench/idle-sessions.mjs: 100 KB per idle TLS session against
 * 66 KB with one shared context), one or two per control connection. With session reuse not
 * required, all sessions share one context pair (and one ID cache, where resumption is then only a saving).
 */
import type { TransferPurpose } from '../data/data-channel.js';
import { createPrivateKey, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { TlsMaterial, TlsPair } from './certificates.js';
/**
 * What names one session in a ClientHello (client-hello.ts): its tickets' key name, or a TLS 1.2 session ID it
 * issued. Shared passive ports route by it; the handshake still has to resume for real.
 */
export interface ResumptionIdentity {
  /** The key name of every ticket this session issues; undefined when sessions share contexts (no proof then). */
  readonly ticketKeyName: string | undefined;
  issuedSessionId(idHex: string): boolean;
}

export interface SessionTlsContexts extends ResumptionIdentity {
  readonly control: tls.SecureContext;
  readonly data: tls.SecureContext;
  /** The `server` option of the control connection's TLSSocket: records the session IDs it issues. */
  readonly controlSessionIds: net.Server;
  /** The `server` option of data connections' TLSSockets: resumes those IDs only. */
  readonly dataSessionIds: net.Server;
  /**
   * The session tickets the next data handshakes send. Downloads: a fresh ticket, also when resuming: OpenSSL
   * clients use a TLS 1.3 ticket once, and without a new one curl's second transfer on one control connection
   * offered none and was refused (522). Uploads: none. A client that only writes never reads the ticket, and
   * closing a socket with unread data makes the kernel send a reset, which destroys upload data the server
   * has not read yet (rclone lost files so).
   */
  ticketsFor(purpose: TransferPurpose): void;
}

/** Structurally a subset of `Config['tls']`, which can be passed as it is. */
export interface TlsContextOptions {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3' | undefined;
  readonly ciphers?: string | undefined;
  readonly requireSessionReuse: boolean;
}

/**
 * A session's ticket keys die with its control connection, so its TLS session may live as long as that: TLS 1.3's
 * upper bound of 7 days (RFC 8446 4.6.1). With 2 hours, a FileZilla session open longer than that could no
 * longer open data connections (proftpd#1931). Contexts shared by all sessions keep 2 hours.
 */
const SESSION_TIMEOUT_SECONDS = 7 * 24 * 3600;
const SHARED_SESSION_TIMEOUT_SECONDS = 7200;
/** A control connection handshakes once (TLS 1.3 records two ticket placeholders); renegotiation adds few. */
const MAX_SESSION_IDS = 8;

/** The options of every context; loadTlsMaterial validates with them, so what it accepted is what runs. */
export function secureContextOptions(
  material: Pick<TlsMaterial, 'cert' | 'key' | 'passphrase' | 'clientCa'>,
  options: Pick<TlsContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'>,
  ticketKeys?: Buffer,
  sessionTimeout = SESSION_TIMEOUT_SECONDS,
): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    passphrase: material.passphrase,
    // Only the control material has one; the control TLSSocket asks for a certificate (client-certificates.ts).
    ca: material.clientCa,
    minVersion: options.minVersion,
    maxVersion: options.maxVersion,
    ciphers: options.ciphers,
    honorCipherOrder: true,
    sessionTimeout,
    // OpenSSL caches no session ID of a handshake that asked for a client certificate unless the context has an
    // ID context; TLS 1.2 data connections resuming by ID (curl) then failed. One constant does: the ticket keys
    // and the ID cache of each control connection are what keep sessions apart.
    sessionIdContext: 'ftps-gateway',
    ticketKeys,
  };
}

/** Decrypts an encrypted key once, so that contexts created per connection do not run its KDF each time. */
function unlocked(material: TlsMaterial): TlsMaterial {
  if (material.passphrase === undefined) return material;
  const key = createPrivateKey({ key: material.key, passphrase: material.passphrase });
  return { ...material, key: key.export({ type: 'pkcs8', format: 'pem' }).toString(), passphrase: undefined };
}

/** What new handshakes use; replaced as a whole, so a handshake never mixes two generations. */
interface Generation {
  /** As loaded (key possibly encrypted): what `current` reports. */
  readonly material: TlsPair;
  readonly unlocked: TlsPair;
  /** The one context pair of all sessions when session reuse is not required. */
  readonly shared: SessionTlsContexts | undefined;
}

export class TlsContextFactory {
  readonly #options: TlsContextOptions;
  #generation: Generation;
  #created = 0;

  constructor(material: TlsPair, options: TlsContextOptions) {
    this.#options = options;
    this.#generation = this.#load(material);
  }

  /** Contexts for one control connection (fresh per call when session reuse is required). */
  forSession(): SessionTlsContexts {
    return this.#generation.shared ?? this.#create(this.#generation.unlocked, SESSION_TIMEOUT_SECONDS, true);
  }

  /**
   * New material (validated by loadTlsMaterial) for every handshake from now on. Sessions keep the contexts
   * they already hold: their data connections must resume the control session under the same ticket keys.
   */
  replace(material: TlsPair): void {
    this.#generation = this.#load(material);
  }

  /** The certificates new handshakes use now. */
  get current(): TlsPair {
    return this.#generation.material;
  }

  /** Context sets created so far: one per TLS control connection (or one per certificate when shared). */
  get created(): number {
    return this.#created;
  }

  #load(material: TlsPair): Generation {
    const control = unlocked(material.control);
    const pair = { control, data: material.data === material.control ? control : unlocked(material.data) };
    return { material, unlocked: pair, shared: this.#options.requireSessionReuse ? undefined : this.#create(pair, SHARED_SESSION_TIMEOUT_SECONDS, false) };
  }

  /** `ownSession`: the contexts of one control connection, whose tickets and IDs name it alone. */
  #create(material: TlsPair, sessionTimeout: number, ownSession: boolean): SessionTlsContexts {
    this.#created++;
    const ticketKeys = randomBytes(48);
    // The control handshake comes first and gets tickets; each data connection then sets what it gets.
    let policy: TicketPolicy = { issue: true, renew: false };
    const context = (m: TlsMaterial) => {
      const created = tls.createSecureContext(secureContextOptions(m, this.#options, ticketKeys, sessionTimeout));
      issueTicketsAs(created, ticketKeys, () => policy);
      return created;
    };
    const control = context(material.control);
    // Same certificate and same keys: one context serves both channels.
    const data = material.data === material.control ? control : context(material.data);
    const ticketsFor = (purpose: TransferPurpose) => {
      policy = purpose === 'download' ? { issue: true, renew: true } : { issue: false, renew: false };
    };
    const ids = sessionIdCache();
    return Object.freeze({
      control,
      data,
      controlSessionIds: ids.controlSessionIds,
      dataSessionIds: ids.dataSessionIds,
      ticketKeyName: ownSession ? ticketKeys.toString('hex', 0, 16) : undefined,
      issuedSessionId: (idHex: string) => ownSession && ids.issued(idHex),
      ticketsFor,
    });
  }
}

/** The hooks of Node's native SecureContext behind `ticketKeys` (internal: node/test/parallel/test-https-resume-after-renew.js). */
interface TicketKeyHooks {
  enableTicketKeyCallback(): void;
  onticketkeycallback: (name: Buffer, iv: Buffer, encrypt: boolean) => unknown[];
}

interface TicketPolicy {
  /** Send tickets after a handshake. */
  readonly issue: boolean;
  /** Also after a handshake that resumed by ticket. */
  readonly renew: boolean;
}

/**
 * Node's own ticket callback always issues tickets and never asks OpenSSL to renew one, so a resumed handshake
 * issues none. This one uses the same 48-byte keys (name, HMAC key, AES key, as `ticketKeys` lays them out) and
 * follows `policy()`: on encryption 0 makes OpenSSL send no TLS 1.3 ticket (TLS 1.2 sends an empty one); on
 * decryption 2 means "valid, and send a new one". Where Node lacks the hooks, `ticketKeys` alone stays in force:
 * sessions resume as before.
 */
function issueTicketsAs(context: tls.SecureContext, ticketKeys: Buffer, policy: () => TicketPolicy): void {
  const native = (context as unknown as { context?: Partial<TicketKeyHooks> }).context;
  if (typeof native?.enableTicketKeyCallback !== 'function') return;
  const [name, hmac, aes] = [ticketKeys.subarray(0, 16), ticketKeys.subarray(16, 32), ticketKeys.subarray(32, 48)];
  native.enableTicketKeyCallback();
  native.onticketkeycallback = (ticketName, _iv, encrypt) => {
    // Node checks every part of the answer, even when it tells OpenSSL not to issue.
    if (encrypt) return [policy().issue ? 1 : 0, hmac, aes, name, randomBytes(16)];
    // 0: not ours (another session's ticket), a full handshake follows.
    return [ticketName.equals(name) ? (policy().renew ? 2 : 1) : 0, hmac, aes];
  };
}

/**
 * TLSSocket emits 'newSession' and 'resumeSession' on the object given as its `server` option (Node documents a
 * net.Server there); these never listen, they only carry the events. Evicts the oldest ID beyond the limit.
 */
function sessionIdCache(): Pick<SessionTlsContexts, 'controlSessionIds' | 'dataSessionIds'> & { issued(idHex: string): boolean } {
  const sessions = new Map<string, Buffer>();
  const controlSessionIds = new net.Server();
  controlSessionIds.on('newSession', (id: Buffer, session: Buffer, done: () => void) => {
    sessions.delete(id.toString('hex'));
    sessions.set(id.toString('hex'), session);
    for (const oldest of sessions.keys()) {
      if (sessions.size <= MAX_SESSION_IDS) break;
      sessions.delete(oldest);
    }
    done();
  });
  const dataSessionIds = new net.Server();
  dataSessionIds.on('resumeSession', (id: Buffer, done: (err: Error | null, session: Buffer | null) => void) => {
    done(null, sessions.get(id.toString('hex')) ?? null);
  });
  return { controlSessionIds, dataSessionIds, issued: (idHex) => sessions.has(idHex) };
}
