import type { Account } from '../auth/user-store.js';
import { blockListOf, isListed, parseAddressRange, type AddressRange } from '../net/address-list.js';

/**
 * Whether a session's data connections must resume its own control TLS session (session-contexts.ts).
 * TLS_REQUIRE_SESSION_REUSE sets the rule; TLS_SESSION_REUSE_EXEMPT_CIDRS and a user's `reuse=optional` narrow
 * it for clients that cannot resume (Commons Net never does, rclone resumes another connection's session).
 * Exempt sessions still need TLS and PROT P, and their passive connections the client's own address.
 */
export class SessionReusePolicy {
  readonly #required: boolean;
  readonly #exempt;

  constructor(tls: { readonly requireSessionReuse: boolean; readonly sessionReuseExemptCidrs: readonly string[] }) {
    this.#required = tls.requireSessionReuse;
    this.#exempt = blockListOf(
      tls.sessionReuseExemptCidrs.map(parseAddressRange).filter((r): r is AddressRange => r !== undefined),
    );
  }

  /** The rule for a session of `account` (undefined before login) from the client at `address`. */
  requiredFor(address: string, account: Account | undefined): boolean {
    return this.#required && account?.sessionReuseExempt !== true && !isListed(this.#exempt, address);
  }
}

/** The 522 text: it names the settings, because the one who reads it is often the one who can change them. */
export const REUSE_REQUIRED_TEXT =
  'TLS session of data connection must resume the control connection session ' +
  '(TLS_REQUIRE_SESSION_REUSE; exempt a client with TLS_SESSION_REUSE_EXEMPT_CIDRS or reuse=optional in the users file)';
