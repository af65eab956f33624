import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SharedRouteRefusal } from '../data/shared-passive.js';
import type { AuthFailure, AuthResult } from '../auth/user-store.js';

export type TransferDirection = 'upload' | 'download' | 'listing';
export type TransferResult = 'ok' | 'aborted' | 'failed';
/** How an S3 request ended: a 404 is the answer "absent" (HeadObject of a name that is free), not a failure. */
export type S3RequestResult = 'ok' | 'not_found' | 'error';
export type TlsChannel = 'control' | 'data';
/** Why PASV/EPSV found no port: the range is exhausted, or the client's address holds PASV_MAX_PER_IP. */
export type PassiveRefusal = 'exhausted' | 'address_limit';
/**
 * Why a TLS handshake failed, as a bounded label. `client_alert`: the client aborted with an alert, most often
 * because it does not trust the certificate; `certificate_refused`: the handshake completed but the client's
 * certificate was not accepted (TLS_CLIENT_AUTH).
 */
export type TlsFailureReason =
  | 'timeout'
  | 'protocol'
  | 'client_alert'
  | 'no_certificate'
  | 'certificate_refused'
  | 'reuse_required'
  | 'closed';

/** The server's state the gauges show, read at scrape time. */
export interface GaugeSource {
  readonly sessions: number;
  readonly bannedAddresses: number;
  readonly passivePortsInUse: number;
  readonly passivePortsFree: number;
  readonly certificates: { readonly control: { readonly validTo: Date }; readonly data: { readonly validTo: Date } };
}

/** An exhaustive map keeps the label's values bounded: a new AuthFailure does not compile until it is named here. */
const LOGIN_FAILURE: Record<AuthFailure, string> = {
  'unknown-user': 'unknown_user',
  'wrong-password': 'wrong_password',
  'account-disabled': 'account_disabled',
  'address-not-allowed': 'address_not_allowed',
  'address-banned': 'address_banned',
  'not-permitted': 'not_permitted',
  'source-unavailable': 'source_unavailable',
};

/** From a short listing to an hour-long upload. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/**
 * The server's Prometheus metrics, in a registry of their own (not prom-client's global one, so that several
 * servers in one process, as in tests, keep apart). Events are counted as they happen; gauges are read from
 * the server when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  #source: (() => GaugeSource) | undefined;
  readonly #logins: Counter<'result'>;
  readonly #transfers: Counter<'direction' | 'result'>;
  readonly #bytes: Counter<'direction'>;
  readonly #duration: Histogram<'direction'>;
  readonly #tlsFailures: Counter<'channel' | 'reason'>;
  readonly #passiveRefusals: Counter<'reason'>;
  readonly #sharedPortRefusals: Counter<'reason'>;
  readonly #eventsQueued: Counter<'type'>;
  readonly #eventsDelivered: Counter;
  readonly #eventsDropped: Counter<'reason'>;
  readonly #eventLatency: Histogram;
  readonly #s3Requests: Counter<'operation' | 'result'>;
  readonly #s3Latency: Histogram<'operation'>;
  #spoolBytes: (() => number) | undefined;

  /** `processMetrics`: prom-client's process_* and nodejs_* too; they start timers and observers, so only when served. */
  constructor(o: { processMetrics: boolean }) {
    const registers = [this.registry];
    this.#logins = new Counter({
      name: 'ftps_logins_total',
      help: 'Login attempts (PASS) by result: success, unknown_user, wrong_password, account_disabled, address_not_allowed, address_banned, not_permitted, source_unavailable (auth hook or LDAP down).',
      labelNames: ['result'],
      registers,
    });
    this.#transfers = new Counter({
      name: 'ftps_transfers_total',
      help: 'Data transfers by direction (upload, download, listing) and result (ok, aborted, failed).',
      labelNames: ['direction', 'result'],
      registers,
    });
    this.#bytes = new Counter({
      name: 'ftps_transfer_bytes_total',
      help: 'File and listing bytes moved over data connections by direction, including those of unfinished transfers.',
      labelNames: ['direction'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'ftps_transfer_duration_seconds',
      help: 'Duration of successful transfers by direction, from the data connection to the final reply.',
      labelNames: ['direction'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#tlsFailures = new Counter({
      name: 'ftps_tls_handshake_failures_total',
      help: 'Failed TLS handshakes by channel (control, data) and reason (timeout, protocol, client_alert, no_certificate, certificate_refused, reuse_required, closed).',
      labelNames: ['channel', 'reason'],
      registers,
    });
    this.#passiveRefusals = new Counter({
      name: 'ftps_passive_refusals_total',
      help: 'PASV/EPSV answered 425 for want of a port, by reason: exhausted (the whole range is lent), address_limit (PASV_MAX_PER_IP).',
      labelNames: ['reason'],
      registers,
    });
    this.#sharedPortRefusals = new Counter({
      name: 'ftps_shared_passive_refusals_total',
      help:
        'Data connections to a shared passive port (PASV_PORT_SHARING) that reached no session, by reason: no_session, ' +
        'ambiguous (several sessions of that address wait and it named none), not_waiting (it named a session not waiting ' +
        'on that port), no_client_hello, too_many_unrouted (an address holding too many connections that sent no ClientHello yet).',
      labelNames: ['reason'],
      registers,
    });
    this.#eventsQueued = new Counter({
      name: 'ftps_events_queued_total',
      help: 'Events written to the spool (EVENT_WEBHOOK_URL), by type.',
      labelNames: ['type'],
      registers,
    });
    this.#eventsDelivered = new Counter({
      name: 'ftps_events_delivered_total',
      help: 'Events the webhook receiver accepted (2xx).',
      registers,
    });
    this.#eventsDropped = new Counter({
      name: 'ftps_events_dropped_total',
      help: 'Events lost, by reason: max_age (undeliverable for EVENT_RETRY_MAX_AGE_SECONDS), spool_full (EVENT_SPOOL_MAX_BYTES), spool_error (could not be written).',
      labelNames: ['reason'],
      registers,
    });
    this.#eventLatency = new Histogram({
      name: 'ftps_event_delivery_latency_seconds',
      help: 'From an event to its acceptance by the webhook receiver, retries included.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86_400],
      registers,
    });
    this.#s3Requests = new Counter({
      name: 'ftps_s3_requests_total',
      help: 'Requests to the S3 store (STORAGE_BACKEND=s3) by operation (PutObject, UploadPart, GetObject, ...) and result (ok, not_found: a 404 such as a HEAD of a free name, error); retries are inside one request.',
      labelNames: ['operation', 'result'],
      registers,
    });
    this.#s3Latency = new Histogram({
      name: 'ftps_s3_request_duration_seconds',
      help: 'Duration of requests to the S3 store by operation, until the response headers (a GetObject body streams after).',
      labelNames: ['operation'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    const spoolBytes: Gauge = new Gauge({
      name: 'ftps_event_spool_bytes',
      help: 'Bytes of the event spool on disk (delivered records included until their segment is deleted).',
      registers,
      collect: () => {
        if (this.#spoolBytes) spoolBytes.set(this.#spoolBytes());
      },
    });
    this.#gauge('ftps_sessions_active', 'Control connections being served.', (s) => s.sessions);
    this.#gauge('ftps_banned_addresses', 'Client addresses banned now after repeated login failures.', (s) => s.bannedAddresses);
    this.#gauge('ftps_passive_ports_in_use', 'Passive ports lent to a pending or running data connection.', (s) => s.passivePortsInUse);
    this.#gauge('ftps_passive_ports_free', 'Passive ports of PASV_MIN_PORT..PASV_MAX_PORT free to lend.', (s) => s.passivePortsFree);
    const expiry: Gauge<'channel'> = new Gauge({
      name: 'ftps_certificate_expiry_timestamp_seconds',
      help: 'When the certificate new handshakes use expires, in seconds since the epoch, by channel (control, data).',
      labelNames: ['channel'],
      registers,
      collect: () => {
        const certificates = this.#source?.().certificates;
        if (!certificates) return;
        for (const channel of ['control', 'data'] as const) {
          expiry.set({ channel }, certificates[channel].validTo.getTime() / 1000);
        }
      },
    });
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The server whose state the gauges report. */
  observe(source: () => GaugeSource): void {
    this.#source = source;
  }

  login(result: AuthResult): void {
    this.#logins.inc({ result: result.ok ? 'success' : LOGIN_FAILURE[result.reason] });
  }

  transfer(direction: TransferDirection, result: TransferResult, bytes: number, seconds: number): void {
    this.#transfers.inc({ direction, result });
    this.#bytes.inc({ direction }, bytes);
    if (result === 'ok') this.#duration.observe({ direction }, seconds);
  }

  tlsHandshakeFailed(channel: TlsChannel, reason: TlsFailureReason): void {
    this.#tlsFailures.inc({ channel, reason });
  }

  passiveRefused(reason: PassiveRefusal): void {
    this.#passiveRefusals.inc({ reason });
  }

  sharedPortRefused(reason: SharedRouteRefusal): void {
    this.#sharedPortRefusals.inc({ reason });
  }

  eventQueued(type: string): void {
    this.#eventsQueued.inc({ type });
  }

  eventDelivered(latencySeconds: number): void {
    this.#eventsDelivered.inc();
    this.#eventLatency.observe(latencySeconds);
  }

  eventsDropped(reason: 'max_age' | 'spool_full' | 'spool_error', count: number): void {
    this.#eventsDropped.inc({ reason }, count);
  }

  s3Request(operation: string, result: S3RequestResult, seconds: number): void {
    this.#s3Requests.inc({ operation, result });
    this.#s3Latency.observe({ operation }, seconds);
  }

  /** The event spool whose size the gauge reports. */
  observeEventSpool(bytes: () => number): void {
    this.#spoolBytes = bytes;
  }

  /** The Prometheus text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  #gauge(name: string, help: string, read: (s: GaugeSource) => number): void {
    const gauge: Gauge = new Gauge({
      name,
      help,
      registers: [this.registry],
      collect: () => {
        const source = this.#source?.();
        if (source) gauge.set(read(source));
      },
    });
  }
}

/**
 * The reason label for an error that ended a handshake. OpenSSL's errors carry ERR_SSL_* codes (alerts the client
 * sent among them); control-channel.ts rejects with ETIMEDOUT on its timeout; anything else ended the connection.
 */
export function handshakeFailureReason(err: unknown): TlsFailureReason {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_certificate';
  if (code !== undefined && /^ERR_SSL_(SSLV3|TLSV1)_ALERT_/.test(code)) return 'client_alert';
  if (code !== undefined && /^ERR_(SSL|OSSL)_/.test(code)) return 'protocol';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'closed';
}
