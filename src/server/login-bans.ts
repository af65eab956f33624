import type { Logger } from '../observability/logger.js';

export interface LoginBanOptions {
  /** LOGIN_BAN_THRESHOLD: failed logins within the window that ban the address. */
  readonly threshold: number;
  readonly windowSeconds: number;
  readonly banSeconds: number;
  readonly log: Logger;
  /** Addresses with failures on record, and bans, kept at most: memory stays bounded under a spray of addresses. */
  readonly maxAddresses?: number;
  readonly maxBans?: number;
  /** Called when an address is banned (its `ban` event). */
  readonly onBan?: (address: string, failures: number) => void;
}

/*
 * About 250 bytes per address with one failure: some 5 MB at the cap. Beyond it the addresses whose last
 * failure is oldest are forgotten first: an attacker rotating through more addresses than that within the
 * window could make it forget a real attacker, but per-address bans cannot stop such an attacker anyway.
 * Failures per address stay below the threshold, and all of them are bounded by the login rate
 * (MAX_CONNECTIONS connections, one failure per second each).
 */
const MAX_ADDRESSES = 20_000;
const MAX_BANS = 10_000;

/**
 * Failed logins per client address, shared by all connections, and the bans they lead to (like fail2ban's
 * findtime/maxretry/bantime). Only failures count: a successful login resets nothing, else an attacker who
 * holds one valid account (or anonymous access) behind the same address could reset the count between guesses.
 * Times come from performance.now(): a wall-clock jump neither lifts nor extends a ban.
 */
export class LoginBans {
  /** Recent failure times per address, ordered by each address's latest failure (oldest first). */
  private readonly failures = new Map<string, number[]>();
  /** Ban end per address; all bans last the same, so insertion order is expiry order. */
  private readonly bans = new Map<string, number>();
  private liftTimer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly banMs: number;
  private readonly maxAddresses: number;
  private readonly maxBans: number;

  constructor(private readonly o: LoginBanOptions) {
    this.windowMs = o.windowSeconds * 1000;
    this.banMs = o.banSeconds * 1000;
    this.maxAddresses = o.maxAddresses ?? MAX_ADDRESSES;
    this.maxBans = o.maxBans ?? MAX_BANS;
  }

  isBanned(address: string): boolean {
    const until = this.bans.get(address);
    // An expired ban the timer has not lifted yet no longer counts.
    return until !== undefined && until > performance.now();
  }

  /** Counts one failed login; true when the address is banned now (by this failure or before it). */
  recordFailure(address: string): boolean {
    // A banned address's further failures neither extend the ban nor start a new count.
    if (this.isBanned(address)) return true;
    const now = performance.now();
    const since = now - this.windowMs;
    const recent = [...(this.failures.get(address) ?? []).filter((t) => t > since), now];
    // Deleted and set again, so that the map stays ordered by latest failure.
    this.failures.delete(address);
    if (recent.length >= this.o.threshold) {
      this.ban(address, now, recent.length);
      return true;
    }
    this.failures.set(address, recent);
    if (this.failures.size > this.maxAddresses) this.compact(since);
    return false;
  }

  /** Addresses with failures on record or banned. */
  get trackedAddresses(): number {
    return this.failures.size + this.bans.size;
  }

  get bannedAddresses(): number {
    return this.bans.size;
  }

  /** Stops the timer that lifts bans (server stop). */
  dispose(): void {
    clearTimeout(this.liftTimer);
    this.liftTimer = undefined;
  }

  /**
   * One pass from the oldest: forgets addresses without a failure in the window, then the oldest others until a
   * tenth of the room is free, so that the pass runs once per many failures, not on each.
   */
  private compact(since: number): void {
    const target = Math.floor(this.maxAddresses * 0.9);
    let forgottenEarly = 0;
    for (const [address, times] of this.failures) {
      const expired = times[times.length - 1]! <= since;
      if (!expired && this.failures.size <= target) break;
      this.failures.delete(address);
      if (!expired) forgottenEarly++;
    }
    if (forgottenEarly > 0) {
      this.o.log.warn({ forgotten: forgottenEarly, maxAddresses: this.maxAddresses }, 'too many addresses with failed logins: oldest forgotten');
    }
  }

  private ban(address: string, now: number, failures: number): void {
    this.bans.set(address, now + this.banMs);
    this.o.log.warn(
      { remote: address, failures, windowSeconds: this.o.windowSeconds, banSeconds: this.o.banSeconds },
      'address banned after repeated login failures',
    );
    this.o.onBan?.(address, failures);
    if (this.bans.size > this.maxBans) {
      const [oldest] = this.bans.keys();
      this.bans.delete(oldest!);
      this.o.log.warn({ remote: oldest, maxBans: this.maxBans }, 'ban list full: oldest ban lifted early');
    }
    this.scheduleLift();
  }

  /** One timer, for the ban that ends first; it lifts every ban that has ended and re-arms for the next. */
  private scheduleLift(): void {
    if (this.liftTimer !== undefined) return;
    const first = this.bans.values().next();
    if (first.done) return;
    this.liftTimer = setTimeout(() => {
      this.liftTimer = undefined;
      const now = performance.now();
      for (const [address, until] of this.bans) {
        if (until > now) break;
        this.bans.delete(address);
        this.o.log.info({ remote: address }, 'address ban expired');
      }
      this.scheduleLift();
    }, Math.max(0, first.value - performance.now()));
    this.liftTimer.unref();
  }
}
