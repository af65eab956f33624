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

export type AuthResult = { readonly ok: true; readonly account: Account } | { readonly ok: false };

/** Source of users. Implementations must take the same time for unknown users and wrong passwords. */
export interface UserStore {
  authenticate(name: string, password: string, peer: PeerInfo): Promise<AuthResult>;
}
