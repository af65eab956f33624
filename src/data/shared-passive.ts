/*
 * PASV_PORT_SHARING: every passive port listens for all sessions at once, so a few ports (one per replica in a
 * Kubernetes StatefulSet) serve any number of sessions, even from one NAT address.
 *
 * A data connection is routed to its session by what its first bytes say (tls/client-hello.ts): a ticket under
 * one session's keys, or a TLS 1.2 session ID one session issued, names exactly that session. A connection that
 * names none (clients exempt from session reuse, clear-text data) goes to the one session of its client address
 * waiting on that port; none or several waiting: refused. Either way the session must be waiting on that port
 * and the address check passes as before; then the TLS handshake runs with that session's contexts, and
 * `isSessionReused()` stays the proof of ownership. A connection that names no waiting session gets nothing.
 */
import net from 'node:net';
import { originOf, type Origin, type ProxyHeaderError, type ProxyPolicy } from '../net/proxy-protocol.js';
import { normalizeAddress } from '../net/peer-address.js';
import { readStart } from '../net/read-start.js';
import type { Logger } from '../observability/logger.js';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello, type ResumptionOffer } from '../tls/client-hello.js';
import type { ResumptionIdentity } from '../tls/session-contexts.js';
import { PassiveRequest, type PassiveChannel, type PassiveRequestOptions } from './passive.js';

/** Why a connection to a shared port found no session; counted per reason. */
export type SharedRouteRefusal = 'no_session' | 'ambiguous' | 'not_waiting' | 'no_client_hello' | 'too_many_unrouted';

/**
 * Connections of one client address whose ClientHello is still awaited, beyond one per session of that address
 * waiting on the port. Each holds a socket for up to TLS_HANDSHAKE_TIMEOUT_SECONDS: without a cap, one address
 * with a waiting session could pile them up. Beyond it the oldest is closed, not the newest: a client's own
 * connection sends its hello at once, so a neighbour behind the same NAT address who holds silent connections
 * cannot lock it out.
 */
const EXTRA_UNROUTED_PER_ADDRESS = 32;

export interface SharedPassiveOptions {
  readonly ports: readonly number[];
  /** FTPS_BIND_ADDRESS, or every interface. */
  readonly bindAddress: string | undefined;
  readonly proxy: ProxyPolicy | undefined;
  /** How long a connection may take to send its ClientHello (TLS_HANDSHAKE_TIMEOUT_SECONDS). */
  readonly helloTimeoutMs: number;
  readonly log: Logger;
  readonly refused: (reason: SharedRouteRefusal) => void;
}

/** One session's PASV as a shared port sees it. */
export interface SharedRequestOptions extends PassiveRequestOptions {
  /** The client's address (the PROXY-carried one): the fallback route and the port choice go by it. */
  readonly holder: string;
  /** What this session's ClientHellos name it by; undefined before it has TLS contexts. */
  readonly resumption: ResumptionIdentity | undefined;
}

interface Waiting {
  readonly request: PassiveRequest;
  readonly resumption: ResumptionIdentity | undefined;
  /** options.holder, normalized once. */
  readonly holder: string;
  readonly promiscuous: boolean;
}

/**
 * The requests waiting on one port, indexed the ways a connection looks them up. Scanning them all on every
 * connection and PASV took ~0.5 of 13.6 server CPU-seconds with 500 sessions on one port (npm run load:shared).
 */
class PortQueue {
  readonly all = new Set<Waiting>();
  private readonly byHolder = new Map<string, Set<Waiting>>();
  private readonly byTicketKey = new Map<string, Waiting>();
  private promiscuous = 0;

  add(w: Waiting): void {
    this.all.add(w);
    const same = this.byHolder.get(w.holder) ?? new Set<Waiting>();
    this.byHolder.set(w.holder, same.add(w));
    const key = w.resumption?.ticketKeyName;
    if (key !== undefined) this.byTicketKey.set(key, w);
    if (w.promiscuous) this.promiscuous++;
  }

  remove(w: Waiting): void {
    if (!this.all.delete(w)) return;
    const same = this.byHolder.get(w.holder)!;
    same.delete(w);
    if (same.size === 0) this.byHolder.delete(w.holder);
    const key = w.resumption?.ticketKeyName;
    if (key !== undefined && this.byTicketKey.get(key) === w) this.byTicketKey.delete(key);
    if (w.promiscuous) this.promiscuous--;
  }

  /** Requests of this client address still waiting for their connection. */
  ofClient(client: string): Waiting[] {
    return [...(this.byHolder.get(client) ?? [])].filter((w) => w.request.accepting);
  }

  countOf(client: string): number {
    return this.byHolder.get(client)?.size ?? 0;
  }

  /** Whether anyone waits here who takes connections from any address (PASV_PROMISCUOUS). */
  get takesAnyAddress(): boolean {
    return this.promiscuous > 0;
  }

  /** The request whose session the offer names: by a ticket's key name, else by a TLS 1.2 session ID. */
  namedBy(offer: ResumptionOffer): Waiting | undefined {
    for (const key of offer.ticketKeyNames) {
      const named = this.byTicketKey.get(key);
      if (named) return named;
    }
    const id = offer.sessionId;
    if (id === undefined) return undefined;
    for (const w of this.all) if (w.resumption?.issuedSessionId(id)) return w;
    return undefined;
  }
}

export class SharedPassivePorts {
  private readonly queues = new Map<number, PortQueue>();
  private readonly servers: net.Server[] = [];
  /** Per client address, connections whose ClientHello is being read, oldest first. */
  private readonly unrouted = new Map<string, Set<net.Socket>>();
  private next = 0;

  private constructor(private readonly o: SharedPassiveOptions) {
    for (const port of o.ports) this.queues.set(port, new PortQueue());
  }

  /** Listens on every port; a port that cannot be bound is a start-up error naming it. */
  static async listen(o: SharedPassiveOptions): Promise<SharedPassivePorts> {
    const shared = new SharedPassivePorts(o);
    try {
      for (const port of o.ports) await shared.listenOn(port);
    } catch (err) {
      shared.close();
      throw err;
    }
    return shared;
  }

  /**
   * Registers a PASV on the port where this client address waits least (preferably not at all, so that even
   * connections that name no session find exactly one), fewest waiting overall breaking ties.
   */
  request(options: SharedRequestOptions): PassiveChannel {
    const holder = normalizeAddress(options.holder);
    const ports = [...this.queues.keys()];
    let best = ports[0]!;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let i = 0; i < ports.length; i++) {
      const port = ports[(this.next + i) % ports.length]!;
      const queue = this.queues.get(port)!;
      const score = queue.countOf(holder) * 1_000_000 + queue.all.size;
      if (score < bestScore) [best, bestScore] = [port, score];
    }
    this.next = (this.next + 1) % ports.length;
    const queue = this.queues.get(best)!;
    const request: PassiveRequest = new PassiveRequest(best, options, () => queue.remove(entry), true);
    const entry: Waiting = { request, resumption: options.resumption, holder, promiscuous: options.allowedPeer === undefined };
    queue.add(entry);
    return request;
  }

  /** Requests waiting now, over all ports. */
  get waitingCount(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.all.size;
    return n;
  }

  close(): void {
    for (const server of this.servers) server.close();
    this.servers.length = 0;
  }

  private async listenOn(port: number): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on shared passive port ${port} (${(err as NodeJS.ErrnoException).code ?? err.message})`)));
      server.listen({ port, host: this.o.bindAddress, exclusive: true }, () => resolve());
    });
    server.on('error', (err) => this.o.log.warn({ err, port }, 'shared passive listener error'));
    server.on('connection', (socket) => this.onConnection(socket, port));
    this.servers.push(server);
  }

  private onConnection(socket: net.Socket, port: number): void {
    socket.on('error', () => undefined);
    originOf(socket, this.o.proxy).then(
      (origin) => {
        if (!origin) socket.destroy();
        else void this.route(socket, port, origin);
      },
      (err: ProxyHeaderError) => {
        socket.destroy();
        if (err.probe) return;
        this.o.log.warn({ via: normalizeAddress(socket.remoteAddress ?? ''), port, reason: err.reason }, 'PROXY header refused on data connection');
      },
    );
  }

  /**
   * Clear-text data goes by address alone: the client may be waiting for the server (a download). A protected
   * connection is routed by its ClientHello: to the session its ticket or TLS 1.2 session ID names (which must be
   * waiting here), else to the one session of its address waiting here. A ticket naming a session that is not
   * waiting here is refused, unless that one session of its address does not require resumption anyway (rclone
   * shares one session cache over its connections).
   */
  private async route(socket: net.Socket, port: number, origin: Origin): Promise<void> {
    const queue = this.queues.get(port)!;
    const client = normalizeAddress(origin.peer.address);
    const candidates = queue.ofClient(client);
    if (candidates.length === 1 && !candidates[0]!.request.protectedData) {
      candidates[0]!.request.accept(socket, origin);
      return;
    }
    // Whatever it names, a session takes connections from its client's address only (PASV_PROMISCUOUS aside):
    // an address nobody here waits for is refused before a byte is read.
    if (candidates.length === 0 && !queue.takesAnyAddress) {
      this.drop(socket, 'no_session', port, origin);
      return;
    }
    const reading = this.unrouted.get(client) ?? new Set<net.Socket>();
    this.unrouted.set(client, reading.add(socket));
    if (reading.size > candidates.length + EXTRA_UNROUTED_PER_ADDRESS) {
      const oldest = reading.values().next().value!;
      reading.delete(oldest);
      oldest.destroy();
      this.refuse('too_many_unrouted', port, origin);
    }
    let offer: ResumptionOffer;
    try {
      const hello = await readStart(socket, 'TLS ClientHello', this.o.helloTimeoutMs, (bytes) => {
        const parsed = parseClientHello(bytes);
        if (parsed.kind === 'incomplete' && bytes.length < MAX_CLIENT_HELLO_BYTES) return undefined;
        return { result: parsed, consumed: 0 };
      }, (reason, probe) => Object.assign(new Error(reason), { probe }));
      if (hello.kind !== 'client-hello') {
        this.drop(socket, 'no_client_hello', port, origin);
        return;
      }
      offer = hello.offer;
    } catch (err) {
      socket.destroy();
      if (!(err as { probe?: boolean }).probe) this.refuse('no_client_hello', port, origin);
      return;
    } finally {
      reading.delete(socket);
      if (reading.size === 0 && this.unrouted.get(client) === reading) this.unrouted.delete(client);
    }
    const named = queue.namedBy(offer);
    if (named?.request.accepting) {
      named.request.accept(socket, origin);
      return;
    }
    const fallback = queue.ofClient(client);
    const ticketElsewhere = named !== undefined || offer.ticketKeyNames.length > 0;
    if (fallback.length === 1 && (!ticketElsewhere || !fallback[0]!.request.reuseRequired)) {
      fallback[0]!.request.accept(socket, origin);
      return;
    }
    const reason = named || ticketElsewhere ? 'not_waiting' : fallback.length === 0 ? 'no_session' : 'ambiguous';
    this.drop(socket, reason, port, origin);
  }

  private drop(socket: net.Socket, reason: SharedRouteRefusal, port: number, origin: Origin): void {
    // Its ClientHello is read and dropped first, or the kernel would answer the close with a reset.
    socket.on('data', () => undefined);
    socket.resume();
    socket.end();
    setTimeout(() => socket.destroy(), 2_000).unref();
    this.refuse(reason, port, origin);
  }

  private refuse(reason: SharedRouteRefusal, port: number, origin: Origin): void {
    this.o.refused(reason);
    this.o.log.warn({ from: origin.peer.address, ...(origin.via && { via: origin.via }), port, reason }, 'shared passive port: data connection refused');
  }
}
