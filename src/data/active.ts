import net from 'node:net';
import { Code } from '../protocol/replies.js';
import { FtpError } from '../protocol/errors.js';
import type { PendingDataChannel } from './data-channel.js';
import { feedReads, RawFeed } from './raw-feed.js';
import { openDataConnection, type DataTlsPolicy } from './tls-wrap.js';

export interface ActiveOptions {
  readonly host: string;
  readonly port: number;
  /** Connect from the control connection's local address, so the client sees the server it knows. */
  readonly localAddress: string;
  readonly timeoutMs: number;
  readonly tlsPolicy: () => DataTlsPolicy | undefined;
}

/** PORT/EPRT: the server connects to the client when the transfer starts. */
export function activeChannel(o: ActiveOptions): PendingDataChannel {
  return {
    async connect(signal, purpose) {
      const policy = o.tlsPolicy();
      // A protected upload reads through a RawFeed (raw-feed.ts); an outgoing socket can take its reads directly.
      const feed = purpose === 'upload' && policy?.strictEof ? new RawFeed() : undefined;
      const raw = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress, ...(feed && feedReads(feed)) });
      await new Promise<void>((resolve, reject) => {
        const settle = (why?: string) => () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          if (why === undefined) return resolve();
          raw.destroy();
          reject(new FtpError(Code.CannotOpenDataConnection, why));
        };
        const onAbort = settle('Data connection cancelled');
        const timer = setTimeout(settle('Could not connect to the client in time'), o.timeoutMs);
        signal.addEventListener('abort', onAbort, { once: true });
        raw.once('error', settle('Could not connect to the client'));
        raw.once('connect', settle());
      });
      return openDataConnection(raw, policy, { purpose, stallTimeoutMs: o.timeoutMs, feed: feed?.attach(raw) });
    },
    // Nothing is open before connect(); the connection then belongs to the transfer.
    dispose() {},
  };
}
