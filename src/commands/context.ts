import type { Config } from '../config/config.js';
import type { Account, AuthResult } from '../auth/user-store.js';
import type { PendingDataChannel } from '../data/data-channel.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Reply } from '../protocol/replies.js';
import type { EventFields } from '../events/event.js';
import type { StorageBackend } from '../storage/storage.js';
import type { VirtualPath } from '../storage/virtual-path.js';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** Per-connection protocol state that handlers read and change. */
export interface SessionState {
  /** Name given by USER, waiting for PASS. */
  pendingUser: string | undefined;
  account: Account | undefined;
  loginFailures: number;
  cwd: VirtualPath;
  /** PBSZ received after TLS (RFC 4217 requires it before PROT). */
  pbszDone: boolean;
  /** PROT P: data connections are TLS. */
  protectData: boolean;
  transferType: 'A' | 'I';
  /** REST offset for the next RETR/STOR. */
  restartOffset: number;
  /** RNFR source, waiting for RNTO. */
  renameFrom: VirtualPath | undefined;
  /** After EPSV ALL only EPSV may set up data connections (RFC 2428 §4). */
  epsvAll: boolean;
  /** MLST facts the client asked for with OPTS MLST. */
  mlstFacts: readonly string[];
}

/** Metadata the FEAT and HELP replies are derived from. */
export interface CommandCatalog {
  featureLines(): readonly string[];
  verbs(): readonly string[];
}

/** Set-up for data connections (passive listeners, active connects) of this session. */
export interface DataConnections {
  /** Opens a passive listener; replaces (and frees) any earlier pending channel. */
  passive(): Promise<Endpoint>;
  /** Remembers an active-mode target; replaces any earlier pending channel. */
  active(target: Endpoint): void;
  /** Takes the pending channel for one transfer; undefined when the client set none up. */
  take(): PendingDataChannel | undefined;
}

/** What a command handler sees of its session. Handlers return replies; they never touch sockets. */
export interface CommandContext {
  readonly config: Config;
  readonly log: Logger;
  /** Transfers are counted where they are logged (transfer.ts). */
  readonly metrics: Pick<Metrics, 'transfer'>;
  readonly state: SessionState;
  readonly catalog: CommandCatalog;
  readonly data: DataConnections;
  /** The control connection is TLS protected (after AUTH, or implicit mode). */
  readonly controlSecure: boolean;
  readonly peer: Endpoint;
  readonly local: Endpoint;
  /** The logged-in user's storage; throws FtpError 530 before login. */
  storage(): StorageBackend;
  /** `password` as the client's bytes. */
  authenticate(user: string, password: Buffer): Promise<AuthResult>;
  login(account: Account): Promise<void>;
  /**
   * Spools an event for EVENT_WEBHOOK_URL (when set), adding the user, the client's address and the session id;
   * never waits for its delivery.
   */
  event(fields: EventFields): void;
  /** Sends a 1xx reply now, ahead of the handler's final reply. */
  sendPreliminary(r: Reply): void;
  /** After the handler's reply is sent: upgrade the control connection to TLS. */
  upgradeToTlsAfterReply(): void;
  /** After the handler's reply is sent: close the connection. */
  closeAfterReply(): void;
  /** Marks a data transfer as running; ABOR aborts the returned signal. */
  beginTransfer(): AbortSignal;
  /** Aborts the running transfer; resolves once its final reply has been sent. False when none ran. */
  abortTransfer(): Promise<boolean>;
  /** A finished transfer's data connection, until the client has read it all: shutdown waits for it. */
  lingerUntil(closed: Promise<void>): void;
  /** A data transfer is running (the command that began it has not replied yet). */
  readonly transferInProgress: boolean;
  /** One line of text about the session for STAT. */
  statusLines(): readonly string[];
}
