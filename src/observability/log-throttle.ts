import type { Logger } from './logger.js';

/** Keys tracked at once; beyond it new keys share one bucket, so a flood from many addresses costs bounded memory. */
const MAX_KEYS = 10_000;
const OVERFLOW_KEY = '*';

interface Bucket {
  count: number;
  readonly timer: NodeJS.Timeout;
}

/**
 * One warning per key (a client address) per window, for events a client can cause at will: the first one is
 * logged at once, the rest are counted and summed up in one line when the window ends. Without it one log line
 * per foreign connection to a passive port would let anyone flood the log.
 */
export class LogThrottle {
  readonly #buckets = new Map<string, Bucket>();

  constructor(private readonly windowMs: number) {}

  /** Logs `msg` with `fields` to `log` for `key`, or counts it when `key` was logged within the window. */
  warn(key: string, log: Logger, fields: Record<string, unknown>, msg: string): void {
    const bucketKey = this.#buckets.has(key) || this.#buckets.size < MAX_KEYS ? key : OVERFLOW_KEY;
    const bucket = this.#buckets.get(bucketKey);
    if (bucket) {
      bucket.count++;
      return;
    }
    log.warn(fields, msg);
    const timer = setTimeout(() => {
      const repeated = this.#buckets.get(bucketKey)?.count ?? 0;
      this.#buckets.delete(bucketKey);
      if (repeated > 0) {
        log.warn({ key: bucketKey, repeated, windowSeconds: this.windowMs / 1000 }, `${msg} (repeated)`);
      }
    }, this.windowMs).unref();
    this.#buckets.set(bucketKey, { count: 0, timer });
  }

  /** Drops pending summaries (server stop). */
  close(): void {
    for (const bucket of this.#buckets.values()) clearTimeout(bucket.timer);
    this.#buckets.clear();
  }
}
