import type { Logger } from '../observability/logger.js';
import { signatureHeader } from './event.js';
import type { Spool } from './spool.js';

export interface DeliveryOptions {
  readonly url: string;
  readonly secret: string | undefined;
  readonly timeoutMs: number;
  /** EVENT_RETRY_MAX_AGE_SECONDS in ms: an event older than this that still fails is dropped. */
  readonly maxAgeMs: number;
  readonly backoff: { readonly firstMs: number; readonly maxMs: number };
  readonly log: Logger;
  readonly onDelivered: (latencySeconds: number) => void;
  readonly onGivenUp: () => void;
}

/**
 * POSTs the spool's records in order, one at a time (so a receiver sees one path's events in the order they
 * happened), each with its signature. 2xx: delivered, the position advances. Anything else, a timeout or a
 * network error: retried with exponential backoff and full jitter until the event is maxAge old, then dropped
 * with an error log. The response body is never read (a huge or slow one costs nothing).
 */
export class Delivery {
  private readonly stopping = new AbortController();
  private readonly running: Promise<void>;
  private readonly stopped: Promise<void>;

  constructor(
    private readonly spool: Spool,
    private readonly o: DeliveryOptions,
  ) {
    this.stopped = new Promise((resolve) => this.stopping.signal.addEventListener('abort', () => resolve(), { once: true }));
    this.running = this.run();
  }

  /** Stops after the POST under way (cut at its timeout). */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  /** The loop never ends but by stop(): a spool that cannot be read is logged and tried again. */
  private async run(): Promise<void> {
    for (;;) {
      try {
        await this.deliverAll();
        return;
      } catch (err) {
        this.o.log.error({ err }, 'event spool unreadable; delivery retries in a while');
        await sleep(this.o.backoff.maxMs, this.stopping.signal);
      }
    }
  }

  private async deliverAll(): Promise<void> {
    const signal = this.stopping.signal;
    let failures = 0;
    while (!signal.aborted) {
      const [record] = this.spool.peek(1);
      if (!record) {
        await Promise.race([this.spool.waitForAppend(), this.stopped]);
        continue;
      }
      const time = eventTime(record.line);
      const problem = await this.post(record.line, signal);
      if (signal.aborted) return;
      if (problem === undefined) {
        failures = 0;
        this.spool.ack(record.next);
        this.o.onDelivered(Math.max(0, (Date.now() - time) / 1000));
        continue;
      }
      if (Date.now() - time > this.o.maxAgeMs) {
        this.o.log.error({ event: eventSummary(record.line), problem }, 'event given up: still undeliverable at EVENT_RETRY_MAX_AGE_SECONDS');
        this.o.onGivenUp();
        failures = 0;
        this.spool.ack(record.next);
        continue;
      }
      const delay = Math.random() * Math.min(this.o.backoff.maxMs, this.o.backoff.firstMs * 2 ** failures);
      failures++;
      // The first failure of a run of them is worth a warning; the rest would repeat it.
      if (failures === 1) this.o.log.warn({ problem, url: redactUrl(this.o.url) }, 'event delivery failed, retrying with backoff');
      await sleep(delay, signal);
    }
  }

  /** undefined when the receiver took the event, else what went wrong. */
  private async post(body: string, stop: AbortSignal): Promise<string | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.secret !== undefined) headers['x-ftps-signature'] = signatureHeader(this.o.secret, body, Math.floor(Date.now() / 1000));
    try {
      const res = await fetch(this.o.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.any([stop, AbortSignal.timeout(this.o.timeoutMs)]),
      });
      await res.body?.cancel().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.message);
    }
  }
}

function eventTime(line: string): number {
  try {
    const t = Date.parse((JSON.parse(line) as { time?: string }).time ?? '');
    return Number.isNaN(t) ? Date.now() : t;
  } catch {
    return Date.now();
  }
}

function eventSummary(line: string): unknown {
  try {
    const { id, type, path } = JSON.parse(line) as Record<string, unknown>;
    return { id, type, path };
  } catch {
    return 'unreadable';
  }
}

/** A URL may carry credentials (user:password@): never in logs. */
function redactUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
