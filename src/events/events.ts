import path from 'node:path';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Delivery } from './delivery.js';
import { makeEvent, type EventFields, type EventType } from './event.js';
import { Spool } from './spool.js';

/** fdatasync of the spool: at most this long after an append, or after this many appends. */
export const SPOOL_SYNC_INTERVAL_MS = 50;
export const SPOOL_SYNC_EVERY = 256;
const BACKOFF = { firstMs: 500, maxMs: 60_000 };

/** Where events go: handlers call emit() and go on; nothing here waits for the network. */
export interface EventSink {
  emit(fields: EventFields): void;
}

export const NO_EVENTS: EventSink = { emit: () => undefined };

/**
 * EVENT_WEBHOOK_URL set: events of the chosen EVENT_TYPES are spooled under STATE_DIR/events and delivered by
 * one Delivery loop. emit() costs a JSON.stringify and one write(2) to the page cache.
 */
export class EventService implements EventSink {
  private readonly spool: Spool;
  private readonly delivery: Delivery;

  private constructor(
    private readonly types: ReadonlySet<EventType>,
    private readonly replica: string,
    private readonly metrics: Metrics,
    config: NonNullable<Config['events']['webhook']>,
    stateDir: string,
    log: Logger,
  ) {
    this.spool = new Spool({
      dir: path.join(stateDir, 'events'),
      maxBytes: config.spoolMaxBytes,
      syncIntervalMs: SPOOL_SYNC_INTERVAL_MS,
      syncEvery: SPOOL_SYNC_EVERY,
      onDropped: (records, reason, err) => {
        metrics.eventsDropped(reason, records);
        log.error({ records, reason, err }, reason === 'spool_full' ? 'event spool full (EVENT_SPOOL_MAX_BYTES): oldest events dropped' : 'event could not be spooled: dropped');
      },
      onSyncError: (err) => log.error({ err }, 'event spool: sync or position save failed'),
    });
    metrics.observeEventSpool(() => this.spool.bytes);
    this.delivery = new Delivery(this.spool, {
      url: config.url,
      secret: config.secret,
      timeoutMs: config.timeoutSeconds * 1000,
      maxAgeMs: config.retryMaxAgeSeconds * 1000,
      backoff: BACKOFF,
      log,
      onDelivered: (latency) => metrics.eventDelivered(latency),
      onGivenUp: () => metrics.eventsDropped('max_age', 1),
    });
  }

  /** None unless EVENT_WEBHOOK_URL is set; a ConfigError when the spool cannot be opened. */
  static create(config: Config, metrics: Metrics, log: Logger): EventService | undefined {
    const webhook = config.events.webhook;
    if (!webhook) return undefined;
    try {
      return new EventService(new Set(config.events.types), config.events.replica, metrics, webhook, config.storage.stateDir, log.child({ component: 'events' }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ConfigError([`EVENT_WEBHOOK_URL: the event spool ${path.join(config.storage.stateDir, 'events')} cannot be opened (${code}); STATE_DIR must be writable`]);
    }
  }

  emit(fields: EventFields): void {
    if (!this.types.has(fields.type)) return;
    this.spool.append(JSON.stringify(makeEvent(fields, this.replica)));
    this.metrics.eventQueued(fields.type);
  }

  /** Server stop: the delivery loop ends after its POST under way, the spool is synced and closed. */
  async close(): Promise<void> {
    await this.delivery.stop();
    this.spool.close();
  }
}
