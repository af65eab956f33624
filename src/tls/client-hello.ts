/**
 * What a data connection's first bytes say about the TLS session it resumes, read before any TLS runs, so that a
 * shared passive port can hand the connection to the one session that issued it (data/shared-passive.ts):
 * - a TLS 1.3 `pre_shared_key` identity or a TLS 1.2 `SessionTicket` is a ticket, and OpenSSL's tickets begin
 *   with the 16-byte name of the keys that encrypted them, which are each session's own (session-contexts.ts);
 * - a TLS 1.2 session ID is one that a single session's ID cache issued.
 * Only the ClientHello's framing is trusted here: whatever it names, the handshake that follows still has to
 * resume the routed session's TLS session (`isSessionReused()`), or it is refused as before.
 */

/**
 * The ClientHello's resumption identities (empty when it offers none), in hex: a shared port compares them with
 * every waiting session's, so they are converted once.
 */
export interface ResumptionOffer {
  /** Key names of the offered tickets (TLS 1.3 PSK identities, TLS 1.2 SessionTicket), 16 bytes each. */
  readonly ticketKeyNames: readonly string[];
  /** The legacy session ID (TLS 1.2 resumption by ID; TLS 1.3 clients send a random one). */
  readonly sessionId: string | undefined;
}

export type ClientHelloParse =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'not-tls' }
  | { readonly kind: 'client-hello'; readonly offer: ResumptionOffer };

/** A ClientHello larger than this (post-quantum key shares are ~1.2 KiB) is not worth routing. */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;
const TICKET_KEY_NAME_BYTES = 16;
const RECORD_HEADER = 5;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SESSION_TICKET = 35;
const EXT_PRE_SHARED_KEY = 41;

/** Parses the ClientHello at the start of `bytes`, which may arrive split over several TLS records. */
export function parseClientHello(bytes: Buffer): ClientHelloParse {
  const message = handshakeMessage(bytes);
  if (message === 'incomplete' || message === 'not-tls') return { kind: message };
  try {
    return { kind: 'client-hello', offer: readOffer(new Reader(message)) };
  } catch {
    return { kind: 'not-tls' };
  }
}

/** Reassembles the first handshake message from its records; it must be a ClientHello. */
function handshakeMessage(bytes: Buffer): Buffer | 'incomplete' | 'not-tls' {
  const fragments: Buffer[] = [];
  let gathered = 0;
  let offset = 0;
  for (;;) {
    if (bytes.length < offset + RECORD_HEADER) return 'incomplete';
    const type = bytes[offset]!;
    const major = bytes[offset + 1]!;
    const length = bytes.readUInt16BE(offset + 3);
    if (type !== HANDSHAKE || major !== 3 || length === 0 || length > MAX_CLIENT_HELLO_BYTES) return 'not-tls';
    if (bytes.length < offset + RECORD_HEADER + length) return 'incomplete';
    fragments.push(bytes.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length));
    gathered += length;
    offset += RECORD_HEADER + length;
    const joined = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
    if (joined[0] !== CLIENT_HELLO) return 'not-tls';
    if (joined.length < 4) continue;
    const size = joined.readUIntBE(1, 3);
    if (size > MAX_CLIENT_HELLO_BYTES) return 'not-tls';
    if (gathered >= size + 4) return joined.subarray(4, size + 4);
  }
}

function readOffer(r: Reader): ResumptionOffer {
  r.skip(2 + 32); // legacy_version, random
  const sessionId = r.vector(1);
  r.vector(2); // cipher_suites
  r.vector(1); // compression_methods
  const ticketKeyNames: string[] = [];
  if (r.remaining === 0) return { ticketKeyNames, sessionId: nonEmpty(sessionId) };
  const extensions = new Reader(r.vector(2));
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const body = extensions.vector(2);
    if (type === EXT_SESSION_TICKET) {
      if (body.length >= TICKET_KEY_NAME_BYTES) ticketKeyNames.push(body.toString('hex', 0, TICKET_KEY_NAME_BYTES));
    } else if (type === EXT_PRE_SHARED_KEY) {
      const identities = new Reader(new Reader(body).vector(2));
      while (identities.remaining > 0) {
        const identity = identities.vector(2);
        identities.skip(4); // obfuscated_ticket_age
        if (identity.length >= TICKET_KEY_NAME_BYTES) ticketKeyNames.push(identity.toString('hex', 0, TICKET_KEY_NAME_BYTES));
      }
    }
  }
  return { ticketKeyNames, sessionId: nonEmpty(sessionId) };
}

const nonEmpty = (b: Buffer): string | undefined => (b.length > 0 ? b.toString('hex') : undefined);

/** Bounds-checked reads; running past the end throws, which parseClientHello reports as not TLS. */
class Reader {
  #offset = 0;

  constructor(private readonly bytes: Buffer) {}

  get remaining(): number {
    return this.bytes.length - this.#offset;
  }

  skip(n: number): void {
    this.take(n);
  }

  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  /** A length-prefixed vector whose length takes `prefix` bytes. */
  vector(prefix: 1 | 2): Buffer {
    const length = this.take(prefix).readUIntBE(0, prefix);
    return this.take(length);
  }

  private take(n: number): Buffer {
    if (n > this.remaining) throw new RangeError('truncated');
    const out = this.bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }
}
