export interface PeerInfo {
  readonly address: string;
  /** SHA-256 fingerprint of the client certificate the control connection presented (TLS_CLIENT_AUTH), if any. */
  readonly clientCertificate?: string | undefined;
}

/** What a logged-in user may do and where their files are. */
export interface Account {
  readonly name: string;
  /** Absolute directory on the server that is the user's "/". */
  readonly homeDir: string;
  readonly writable: boolean;
  /** Its data connections need not resume the control TLS session (reuse-policy.ts); absent = the server's rule. */
  readonly sessionReuseExempt?: boolean;
  /**
   * The account as its source has it now (a reloaded users file): the same object while unchanged, undefined once
   * removed or disabled. Sessions ask before every command. Absent for sources whose accounts never change.
   */
  readonly current?: () => Account | undefined;
}

/** Why a login failed: for the server's log only, the client always gets the same reply. */
export type AuthFailure =
  | 'unknown-user'
  | 'wrong-password'
  | 'account-disabled'
  | 'address-not-allowed'
  | 'address-banned'
  /** The user is known but in no group that grants access (LDAP). */
  | 'not-permitted'
  /** The source could not answer (hook or LDAP down, slow, or answering nonsense): refused, never let in. */
  | 'source-unavailable';

/** A password as the client sent it: bytes (a string stands for its UTF-8 bytes). */
export type Password = Buffer | string;

export const passwordBytes = (password: Password): Buffer =>
  typeof password === 'string' ? Buffer.from(password, 'utf8') : password;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The password as text for sources that take text (JSON, LDAP); undefined when its bytes are not UTF-8. */
export function passwordText(password: Password): string | undefined {
  if (typeof password === 'string') return password;
  try {
    return strictUtf8.decode(password);
  } catch {
    return undefined;
  }
}

export type AuthResult =
  | { readonly ok: true; readonly account: Account }
  | { readonly ok: false; readonly reason: AuthFailure };

/** Source of users. Implementations must take the same time for unknown users and wrong passwords. */
export interface UserStore {
  authenticate(name: string, password: Password, peer: PeerInfo): Promise<AuthResult>;
  /** Re-reads the users' source now (SIGHUP); never rejects: problems are logged and the current users stay. */
  reload?(): Promise<void>;
  /** Stops background work such as watching a users file. */
  close?(): void;
}
