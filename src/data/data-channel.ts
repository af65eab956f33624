import type net from 'node:net';

/** What the transfer does with its data connection: protected uploads read it differently (raw-feed.ts). */
export type TransferPurpose = 'upload' | 'download';

/** An established data connection, TLS-wrapped when protected. */
export interface DataConnection {
  readonly protected: boolean;
  /** Resolves with the stream to transfer on once TLS (if any) is established and checked. */
  ready(): Promise<net.Socket>;
  /**
   * Ends the connection gracefully after a transfer (TLS close_notify, then FIN). Resolves when the client has
   * closed it too (it read everything), or after a few seconds for clients that wait for the reply first.
   */
  finish(): Promise<void>;
  /**
   * Resolves when the socket is gone: the client closed it, or it stalled (DATA_TIMEOUT_SECONDS). Until then
   * sent data may still sit in kernel buffers, which a container's stop would discard with its network.
   */
  readonly closed: Promise<void>;
  destroy(): void;
}

/** A data connection the client set up with PASV/EPSV/PORT/EPRT but that is not open yet. */
export interface PendingDataChannel {
  /**
   * Waits for the client's connection (passive) or connects to the client (active), and starts its TLS for
   * `purpose` (a passive connection whose client handshakes before sending its command may have started already).
   */
  connect(signal: AbortSignal, purpose: TransferPurpose): Promise<DataConnection>;
  dispose(): void;
}
