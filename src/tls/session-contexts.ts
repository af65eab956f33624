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
 * connection, yields false. This relies on tickets alone: Node's TLSSocket keeps no server-side session-ID
 * cache, and none may be added (a shared cache would let any session resume any other).
 *
 * Cost: about 0.3 ms and 18 KB per context, one or two per control connection. With session reuse not
 * required, all sessions share one context pair instead.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { TlsMaterial } from './certificates.js';

export interface SessionTlsContexts {
  readonly control: tls.SecureContext;
  readonly data: tls.SecureContext;
}

/** Structurally a subset of `Config['tls']`, which can be passed as it is. */
export interface TlsContextOptions {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly ciphers?: string | undefined;
  readonly requireSessionReuse: boolean;
}

/** Long enough for the data connections of a long session to still resume its control session. */
const SESSION_TIMEOUT_SECONDS = 7200;

/** The options of every context; loadTlsMaterial validates with them, so what it accepted is what runs. */
export function secureContextOptions(
  material: Pick<TlsMaterial, 'cert' | 'key' | 'passphrase'>,
  options: Pick<TlsContextOptions, 'minVersion' | 'ciphers'>,
  ticketKeys?: Buffer,
): tls.SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    passphrase: material.passphrase,
    minVersion: options.minVersion,
    ciphers: options.ciphers,
    honorCipherOrder: true,
    sessionTimeout: SESSION_TIMEOUT_SECONDS,
    ticketKeys,
  };
}

/** Decrypts an encrypted key once, so that contexts created per connection do not run its KDF each time. */
function unlocked(material: TlsMaterial): TlsMaterial {
  if (material.passphrase === undefined) return material;
  const key = createPrivateKey({ key: material.key, passphrase: material.passphrase });
  return { ...material, key: key.export({ type: 'pkcs8', format: 'pem' }).toString(), passphrase: undefined };
}

export class TlsContextFactory {
  readonly #material: { readonly control: TlsMaterial; readonly data: TlsMaterial };
  readonly #options: TlsContextOptions;
  readonly #shared: SessionTlsContexts | undefined;

  constructor(material: { control: TlsMaterial; data: TlsMaterial }, options: TlsContextOptions) {
    const control = unlocked(material.control);
    this.#material = { control, data: material.data === material.control ? control : unlocked(material.data) };
    this.#options = options;
    this.#shared = options.requireSessionReuse ? undefined : this.#create();
  }

  /** Contexts for one control connection (fresh per call when session reuse is required). */
  forSession(): SessionTlsContexts {
    return this.#shared ?? this.#create();
  }

  #create(): SessionTlsContexts {
    const ticketKeys = randomBytes(48);
    const context = (material: TlsMaterial) =>
      tls.createSecureContext(secureContextOptions(material, this.#options, ticketKeys));
    const control = context(this.#material.control);
    // Same certificate and same keys: one context serves both channels.
    const data = this.#material.data === this.#material.control ? control : context(this.#material.data);
    return Object.freeze({ control, data });
  }
}
