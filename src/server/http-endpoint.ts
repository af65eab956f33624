import http from 'node:http';
import type net from 'node:net';
import type { Readiness } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface HttpEndpointOptions {
  /** HTTP_PORT (not 0) and HTTP_BIND_ADDRESS (undefined = all interfaces). */
  readonly port: number;
  readonly host: string | undefined;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly readiness: Readiness;
}

/*
 * Probes and scrapers send one small request and wait for one small answer: a client that trickles its headers
 * (slowloris) or holds idle connections gets little. Node checks both timeouts every connectionsCheckingInterval.
 * Idle connections must never keep a probe out: beyond the limits below a new connection takes the place of the
 * oldest one that has no request running (of its own address first), so a flood of idle connections only ever
 * displaces itself, and a probe always gets in.
 */
const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 2_000;
const CHECK_INTERVAL_MS = 500;
const MAX_CONNECTIONS = 128;
const MAX_CONNECTIONS_PER_ADDRESS = 8;
const MAX_HEADER_BYTES = 8 * 1024;
const DRAINING = 'draining: the FTP listener is not accepting connections, running transfers finish\n';

interface Tracked {
  readonly address: string;
  /** A request is being answered: never evicted. */
  busy: boolean;
}

type Answer = { readonly status: number; readonly body: string; readonly contentType?: string };

/** GET /healthz, /readyz and /metrics for probes and Prometheus. Answers in plain text. */
export class HttpEndpoint {
  readonly #server: http.Server;
  readonly #routes: ReadonlyMap<string, () => Promise<Answer>>;
  /** Open connections, oldest first (a Map keeps insertion order). */
  readonly #connections = new Map<net.Socket, Tracked>();

  constructor(private readonly o: HttpEndpointOptions) {
    this.#routes = new Map<string, () => Promise<Answer>>([
      // The event loop answers: the process serves. Nothing else, so that a storage outage never restarts the pod.
      ['/healthz', async () => ({ status: 200, body: 'ok\n' })],
      [
        '/readyz',
        async () => {
          const { draining, problems } = await o.readiness.state();
          const reasons = problems.map((p) => `not ready: ${p}\n`).join('');
          // Draining is 404, not 503: HAProxy (http-check disable-on-404) then sends no new sessions but keeps the
          // running ones, where a 503 would mark the replica down and cut them. Kubernetes counts both as not ready.
          // It wins over the other problems: the replica is going away, and its running transfers may still finish.
          if (draining) return { status: 404, body: `${DRAINING}${reasons}` };
          if (problems.length === 0) return { status: 200, body: 'ready\n' };
          return { status: 503, body: reasons };
        },
      ],
      [
        '/metrics',
        async () => {
          const { contentType, text } = await o.metrics.exposition();
          return { status: 200, body: text, contentType };
        },
      ],
    ]);
    this.#server = http.createServer(
      {
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        connectionsCheckingInterval: CHECK_INTERVAL_MS,
        maxHeaderSize: MAX_HEADER_BYTES,
      },
      (req, res) => {
        const tracked = this.#connections.get(req.socket);
        if (tracked) tracked.busy = true;
        res.once('close', () => {
          if (tracked) tracked.busy = false;
        });
        this.#respond(req, res).catch((err: unknown) => {
          o.log.error({ err }, 'HTTP endpoint failed to answer');
          res.destroy();
        });
      },
    );
    this.#server.on('connection', (socket: net.Socket) => this.#admit(socket));
    // Node answers malformed requests itself (400, 408, 431) and closes them: nothing of theirs reaches #respond.
    this.#server.on('error', (err) => o.log.error({ err }, 'HTTP endpoint error'));
  }

  async listen(): Promise<net.AddressInfo> {
    const { port, host, log } = this.o;
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ port, host }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as net.AddressInfo;
    log.info({ port: address.port, address: address.address }, 'HTTP endpoint listening');
    return address;
  }

  /** Stops accepting and drops open connections: probes and scrapes are retried by their senders. */
  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  /** Makes room for a new connection by evicting an idle one; refuses it only when every connection is busy. */
  #admit(socket: net.Socket): void {
    const address = socket.remoteAddress ?? '';
    const own = [...this.#connections].filter(([, t]) => t.address === address);
    const crowd = own.length >= MAX_CONNECTIONS_PER_ADDRESS ? own : this.#connections.size >= MAX_CONNECTIONS ? [...this.#connections] : [];
    if (crowd.length > 0) {
      const idle = crowd.find(([, t]) => !t.busy);
      if (!idle) {
        socket.destroy();
        return;
      }
      idle[0].destroy();
      this.#connections.delete(idle[0]);
    }
    this.#connections.set(socket, { address, busy: false });
    socket.once('close', () => this.#connections.delete(socket));
  }

  async #respond(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = this.#routes.get((req.url ?? '').split('?', 1)[0]!);
    let answer: Answer;
    if (!route) {
      answer = { status: 404, body: 'not found\n' };
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      answer = { status: 405, body: 'method not allowed\n' };
    } else {
      try {
        answer = await route();
      } catch (err) {
        this.o.log.error({ err, path: req.url }, 'HTTP endpoint failed to answer');
        answer = { status: 500, body: 'internal error\n' };
      }
    }
    // HEAD: Node sends the headers and drops the body.
    res.writeHead(answer.status, {
      'Content-Type': answer.contentType ?? 'text/plain; charset=utf-8',
      'Cache-Control': 'no-store',
    });
    res.end(answer.body);
  }
}
