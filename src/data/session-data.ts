import type { Config } from '../config/config.js';
import type { ProxyPolicy } from '../net/proxy-protocol.js';
import type { LogThrottle } from '../observability/log-throttle.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ResumptionIdentity } from '../tls/session-contexts.js';
import { activeChannel } from './active.js';
import type { PendingDataChannel } from './data-channel.js';
import { openPassive, type PassiveChannel, type PassiveRequestOptions } from './passive.js';
import type { PasvAddresses } from './pasv-address.js';
import type { PortPool } from './port-pool.js';
import type { SharedPassivePorts } from './shared-passive.js';
import type { DataTlsPolicy } from './tls-wrap.js';

/** An address and port, as PASV replies and PORT commands carry them. */
export interface DataEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface SessionDataOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Pick<Metrics, 'passiveRefused'>;
  readonly throttledLog: LogThrottle;
  readonly ports: PortPool;
  /** Set with PASV_PORT_SHARING: PASV registers there instead of opening a port of its own. */
  readonly sharedPassive: SharedPassivePorts | undefined;
  readonly proxy: ProxyPolicy | undefined;
  readonly pasvAddresses: PasvAddresses;
  /** The client (the PROXY-carried address) and the control connection's local address. */
  readonly peer: DataEndpoint;
  readonly local: DataEndpoint;
  /** Decided when the data connection opens: PROT P may come after PASV. */
  readonly tlsPolicy: () => DataTlsPolicy | undefined;
  /** The session's TLS contexts, once it has them: what its data connections' ClientHellos are recognized by. */
  readonly resumption: () => ResumptionIdentity | undefined;
}

/**
 * One session's data connection set-up: the pending passive (own or shared port) or active channel, at most one
 * at a time, and the address and port a PASV reply announces.
 */
export class SessionDataChannels {
  private pending: PendingDataChannel | undefined;

  constructor(private readonly o: SessionDataOptions) {}

  /** Opens a passive channel; replaces (and frees) any earlier pending channel. */
  async passive(): Promise<DataEndpoint> {
    this.replace(undefined);
    const { config, log, throttledLog, peer, local } = this.o;
    const request: PassiveRequestOptions = {
      allowedPeer: config.data.pasvPromiscuous ? undefined : peer.address,
      timeoutMs: config.data.timeoutSeconds * 1000,
      tlsPolicy: this.o.tlsPolicy,
      log,
      foreignConnection: (from, port, via) =>
        throttledLog.warn(`foreign:${from}`, log, { from, ...(via && { via }), port }, 'refused data connection from a foreign address'),
      clientsWaitForTls: config.data.implicitTls,
    };
    const shared = this.o.sharedPassive;
    const channel: PassiveChannel = shared
      ? shared.request({ ...request, holder: peer.address, resumption: this.o.resumption() })
      : await openPassive({
          ...request,
          pool: this.o.ports,
          holder: peer.address,
          bindAddress: local.address,
          proxy: this.o.proxy,
          refused: (reason) => {
            this.o.metrics.passiveRefused(reason);
            const key = reason === 'exhausted' ? 'pasv:exhausted' : `pasv:${peer.address}`;
            throttledLog.warn(key, log, { reason }, 'no passive port for a client');
          },
        });
    this.replace(channel);
    const { pasvMinPort, pasvAdvertisedMinPort } = config.data;
    return {
      address: this.o.pasvAddresses.addressFor(peer.address) ?? local.address,
      port: channel.port - pasvMinPort + pasvAdvertisedMinPort,
    };
  }

  /** Remembers an active-mode target; replaces any earlier pending channel. */
  active(target: DataEndpoint): void {
    this.replace(
      activeChannel({
        host: target.address,
        port: target.port,
        localAddress: this.o.local.address,
        timeoutMs: this.o.config.data.timeoutSeconds * 1000,
        tlsPolicy: this.o.tlsPolicy,
      }),
    );
  }

  /** Takes the pending channel for one transfer; undefined when the client set none up. */
  take(): PendingDataChannel | undefined {
    const pending = this.pending;
    this.pending = undefined;
    return pending;
  }

  /** The session ended: frees whatever is pending. */
  dispose(): void {
    this.replace(undefined);
  }

  private replace(next: PendingDataChannel | undefined): void {
    this.pending?.dispose();
    this.pending = next;
  }
}
