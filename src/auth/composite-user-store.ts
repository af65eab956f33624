import type { AuthResult, Password, PeerInfo, UserStore } from './user-store.js';

/** Several user sources behind one UserStore. The sources must not share a name (createUserStore sees to it). */
export class CompositeUserStore implements UserStore {
  constructor(private readonly sources: readonly UserStore[]) {}

  async authenticate(name: string, password: Password, peer: PeerInfo): Promise<AuthResult> {
    // Every source answers every login, so the time taken does not tell which source, if any, knows the name.
    const results = await Promise.all(this.sources.map((s) => s.authenticate(name, password, peer)));
    return (
      results.find((r) => r.ok) ??
      results.find((r) => !r.ok && r.reason !== 'unknown-user') ?? { ok: false, reason: 'unknown-user' }
    );
  }

  async reload(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.reload?.()));
  }

  close(): void {
    for (const s of this.sources) s.close?.();
  }
}

/**
 * Sources asked one after the other (the local ones as one CompositeUserStore, then the auth hook, then LDAP):
 * the next is asked only when every earlier one answered "unknown user". So a name an earlier source knows is
 * that source's, and a local user's password, right or wrong, never travels to a hook or a directory.
 */
export class OrderedUserStore implements UserStore {
  constructor(private readonly sources: readonly UserStore[]) {}

  async authenticate(name: string, password: Password, peer: PeerInfo): Promise<AuthResult> {
    let result: AuthResult = { ok: false, reason: 'unknown-user' };
    for (const source of this.sources) {
      result = await source.authenticate(name, password, peer);
      if (result.ok || result.reason !== 'unknown-user') return result;
    }
    return result;
  }

  async reload(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.reload?.()));
  }

  close(): void {
    for (const s of this.sources) s.close?.();
  }
}
