import type net from 'node:net';
import tls from 'node:tls';
import { Code } from '../protocol/replies.js';
import { handshakeFailureReason, type TlsFailureReason } from '../observability/metrics.js';
import { FtpError } from '../protocol/errors.js';
import type { DataConnection, TransferPurpose } from './data-channel.js';
import { REUSE_REQUIRED_TEXT } from '../tls/reuse-policy.js';
import { RawFeed, UploadTlsSocket } from './raw-feed.js';

export interface DataTlsPolicy {
  /** The session's data context: it shares ticket keys with the control connection only (src/tls/session-contexts.ts). */
  readonly context: tls.SecureContext;
  /** Resolves the control connection's TLS session IDs, for clients that resume by ID (src/tls/session-contexts.ts). */
  readonly sessionIds: net.Server;
  /** The handshake must resume this session's control TLS session. */
  readonly requireReuse: boolean;
  /** SessionTlsContexts.ticketsFor of this session. */
  readonly ticketsFor: (purpose: TransferPurpose) => void;
  /** TLS_STRICT_EOF: an upload must end with close_notify (raw-feed.ts); a bare FIN fails it. */
  readonly strictEof: boolean;
  /** TLS_HANDSHAKE_TIMEOUT_SECONDS, at most DATA_TIMEOUT_SECONDS. */
  readonly handshakeTimeoutMs: number;
  /** Told once per failed handshake, for the metrics. */
  readonly handshakeFailed: (reason: TlsFailureReason) => void;
}

const CLOSE_WAIT_MS = 5_000;

/**
 * Starts the data connection's TLS (or none) on a socket whose bytes JavaScript has not read yet (an accepted
 * socket is paused; a ClientHello waits in the kernel, bytes after a PROXY header in the socket's buffer). A
 * protected upload reads through a RawFeed, so that a bare FIN can be told from close_notify; everything else
 * uses Node's native TLS. `feed`: the RawFeed an active-mode connection was made with.
 */
export function openDataConnection(
  raw: net.Socket,
  policy: DataTlsPolicy | undefined,
  o: { readonly purpose: TransferPurpose; readonly stallTimeoutMs: number; readonly feed?: RawFeed },
): DataConnection {
  if (!policy) {
    raw.resume();
    return plainConnection(withStallTimeout(raw, o.stallTimeoutMs));
  }
  const options = { isServer: true, secureContext: policy.context, server: policy.sessionIds };
  policy.ticketsFor(o.purpose);
  let secure: tls.TLSSocket;
  if (o.purpose === 'upload' && policy.strictEof) {
    const feed = o.feed ?? RawFeed.adopt(raw);
    const upload = new UploadTlsSocket(feed as unknown as net.Socket, options);
    feed.readBy(upload);
    secure = upload;
  } else {
    secure = new tls.TLSSocket(raw, options);
  }
  withStallTimeout(secure, o.stallTimeoutMs);
  const handshake = new Promise<net.Socket>((resolve, reject) => {
    let settled = false;
    // The error is made only when it is the outcome: 'close' comes after every transfer, and an error's stack costs.
    const fail = (reason: TlsFailureReason, error: () => FtpError) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      policy.handshakeFailed(reason);
      reject(error());
    };
    const timer = setTimeout(() => {
      fail('timeout', () => new FtpError(Code.CannotOpenDataConnection, 'TLS handshake on data connection timed out'));
      // Free the socket even if no transfer is waiting for it.
      secure.destroy();
    }, policy.handshakeTimeoutMs);
    secure.once('secure', () => {
      clearTimeout(timer);
      if (policy.requireReuse && !secure.isSessionReused()) {
        // Cut here, inside the handshake callback: the session ticket of this fresh handshake (encrypted under
        // this session's keys) must never reach a client that could not resume, or it could resume next time.
        secure.destroy();
        fail('reuse_required', () => new FtpError(Code.NetworkProtocolNotSupported, REUSE_REQUIRED_TEXT));
        return;
      }
      settled = true;
      // 'secure' fires inside OpenSSL's handshake, before a TLS 1.3 server has written its session tickets.
      // A transfer that ended right away (a short listing) then lost its close_notify: SSL_shutdown failed
      // "while in init" and the client saw a truncated stream (Python ftplib: SSLError in unwrap()).
      setImmediate(() => resolve(secure));
    });
    secure.once('error', (err) => {
      fail(
        handshakeFailureReason(err),
        () => new FtpError(Code.NetworkProtocolNotSupported, 'TLS handshake on data connection failed', { cause: err }),
      );
    });
    secure.once('close', () => {
      fail('closed', () => new FtpError(Code.CannotOpenDataConnection, 'Data connection closed during TLS handshake'));
    });
  });
  // Errors surface through ready(); a connection nobody waits for must not raise an unhandled rejection.
  handshake.catch(() => undefined);
  secure.on('error', () => undefined);
  return {
    protected: true,
    ready: () => handshake,
    finish: () => endGracefully(secure),
    closed: closeOf(secure),
    destroy: () => secure.destroy(),
  };
}

/** A transfer that moves no byte for this long is dead (client gone without FIN): it ends with 426. */
function withStallTimeout<T extends net.Socket>(socket: T, ms: number): T {
  socket.setTimeout(ms, () => socket.destroy(new Error('data connection stalled')));
  return socket;
}

function plainConnection(raw: net.Socket): DataConnection {
  raw.on('error', () => undefined);
  return {
    protected: false,
    ready: async () => raw,
    finish: () => endGracefully(raw),
    closed: closeOf(raw),
    destroy: () => raw.destroy(),
  };
}

const closeOf = (socket: net.Socket): Promise<void> =>
  socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));

/**
 * end() flushes and sends close_notify/FIN; the client then closes. Destroying early could reset the connection
 * and lose what the kernel still holds for a slow reader, so the socket stays until the client closes it or
 * the stall timeout ends it; the transfer's reply waits for that only CLOSE_WAIT_MS.
 */
async function endGracefully(socket: net.Socket): Promise<void> {
  if (socket.destroyed) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CLOSE_WAIT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.end();
    // Data the client still sends (a late close_notify) must not stall the close.
    socket.resume();
  });
}
