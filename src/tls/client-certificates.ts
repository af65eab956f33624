import type { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import type { Config } from '../config/config.js';

/** TLS_CLIENT_AUTH */
export type ClientAuth = Config['tls']['clientAuth'];

/** Who a certificate names; the session log carries the client's. */
export interface CertificateIdentity {
  /** The subject's RDNs joined by ', ', e.g. 'CN=backup-job, O=Example'. */
  readonly subject: string;
  /** Colon-separated hex, as `X509Certificate#fingerprint256`. */
  readonly fingerprint256: string;
}

/** A client certificate that was presented but is not trusted, or is missing where one is required. */
export class ClientCertificateRefused extends Error {
  constructor(
    /** OpenSSL's verification error code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED. */
    readonly reason: string,
    readonly certificate: CertificateIdentity | undefined,
  ) {
    super(`client certificate refused: ${reason}`);
    this.name = 'ClientCertificateRefused';
  }
}

export function identityOf(x509: X509Certificate): CertificateIdentity {
  return { subject: x509.subject.split('\n').join(', '), fingerprint256: x509.fingerprint256 };
}

/**
 * The control connection's TLSSocket options. `required` makes OpenSSL end a handshake without a certificate;
 * the CA the certificate is checked against is in the control context (`secureContextOptions`). Data
 * connections never ask: they prove their identity by resuming the control connection's session.
 */
export function clientAuthOptions(mode: ClientAuth): Pick<tls.TLSSocketOptions, 'requestCert' | 'rejectUnauthorized'> {
  return { requestCert: mode !== 'none', rejectUnauthorized: mode === 'required' };
}

interface VerifyingHandle {
  verifyError(): (Error & { code?: string }) | null;
}

/**
 * After the handshake: the trusted client certificate, or undefined when none was asked for or (optional) none
 * was presented. Throws ClientCertificateRefused otherwise.
 *
 * Node decides whether a client certificate is trusted only for sockets a tls.Server accepted
 * (onServerSocketSecure in lib/_tls_wrap.js). On a TLSSocket wrapped by hand, as for AUTH TLS and for the
 * per-session contexts, `authorized` stays false and an untrusted certificate completes the handshake. OpenSSL
 * has recorded its verdict all the same; this reads it from the handle as Node itself does, and refuses the
 * certificate if that internal method is ever gone.
 */
export function verifyClientCertificate(socket: tls.TLSSocket, mode: ClientAuth): CertificateIdentity | undefined {
  if (mode === 'none') return undefined;
  const x509 = socket.getPeerX509Certificate();
  if (x509 === undefined) {
    if (mode === 'required') throw new ClientCertificateRefused('no certificate presented', undefined);
    return undefined;
  }
  const certificate = identityOf(x509);
  const handle = (socket as unknown as { _handle?: Partial<VerifyingHandle> | null })._handle;
  if (typeof handle?.verifyError !== 'function') throw new ClientCertificateRefused('cannot verify', certificate);
  const error = handle.verifyError();
  if (error) throw new ClientCertificateRefused(error.code ?? error.message, certificate);
  return certificate;
}
