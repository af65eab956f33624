import type { Account, AuthResult, UserStore } from './user-store.js';

/** The conventional anonymous login names, in any case. */
export const isAnonymousName = (name: string): boolean => ['anonymous', 'ftp'].includes(name.toLowerCase());

/** FTP_ANONYMOUS: "anonymous" or "ftp" with any password (by convention an e-mail address), read-only. */
export class AnonymousUserStore implements UserStore {
  private readonly account: Account;

  constructor(root: string) {
    this.account = { name: 'anonymous', homeDir: root, writable: false };
  }

  async authenticate(name: string): Promise<AuthResult> {
    return isAnonymousName(name) ? { ok: true, account: this.account } : { ok: false, reason: 'unknown-user' };
  }
}
