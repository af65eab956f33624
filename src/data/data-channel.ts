import type { Duplex } from 'node:stream';

/** An established data connection, TLS-wrapped when protected. */
export interface DataConnection {
  readonly protected: boolean;
  /** Resolves with the stream to transfer on once TLS (if any) is established and checked. */
  ready(): Promise<Duplex>;
  /** Ends the connection gracefully after a transfer (TLS close_notify, then FIN). */
  finish(): Promise<void>;
  destroy(): void;
}

/** A data connection the client set up with PASV/EPSV/PORT/EPRT but that is not open yet. */
export interface PendingDataChannel {
  /** Waits for the client's connection (passive) or connects to the client (active). */
  connect(signal: AbortSignal): Promise<DataConnection>;
  dispose(): void;
}
