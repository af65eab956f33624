export interface PeerInfo {
  readonly address: string;
}

/** What a logged-in user may do and where their files are. */
export interface Account {
  readonly name: string;
  /** Absolute directory on the server that is the user's "/". */
  readonly homeDir: string;
  readonly writable: boolean;
}

/** Why a login failed: for the server's log only, the client always gets the same reply. */
export type AuthFailure = 'unknown-user' | 'wrong-password' | 'address-not-allowed' | 'address-banned';

export type AuthResult =
  | { readonly ok: true; readonly account: Account }
  | { readonly ok: false; readonly reason: AuthFailure };

/** Source of users. Implementations must take the same time for unknown users and wrong passwords. */
export interface UserStore {
  authenticate(name: string, password: string, peer: PeerInfo): Promise<AuthResult>;
  /** Re-reads the users' source now (SIGHUP); never rejects: problems are logged and the current users stay. */
  reload?(): Promise<void>;
  /** Stops background work such as watching a users file. */
  close?(): void;
}
