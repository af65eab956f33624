/*
 * src/tls/client-certificates.ts over real loopback handshakes, with the contexts TlsContextFactory makes: which
 * client certificates pass, what is refused and why, and that session resumption survives client authentication.
 */
import { constants, X509Certificate } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TlsMaterial } from '../../../src/tls/certificates.js';
import {
  ClientCertificateRefused,
  clientAuthOptions,
  verifyClientCertificate,
  type ClientAuth,
  type CertificateIdentity,
} from '../../../src/tls/client-certificates.js';
import { TlsContextFactory, type SessionTlsContexts } from '../../../src/tls/session-contexts.js';

interface Pem {
  readonly cert: string;
  readonly key: string;
}

const DAY = 86_400_000;

async function ca(name: string): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, critical: true },
    ],
  });
  return { cert: p.cert, key: p.private };
}

async function client(name: string, issuer: Pem, validity?: { notBeforeDate: Date; notAfterDate: Date }): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: issuer.key, cert: issuer.cert },
    extensions: [{ name: 'extKeyUsage', clientAuth: true }],
    ...validity,
  });
  return { cert: p.cert, key: p.private };
}

let contexts: SessionTlsContexts;
let material: TlsMaterial;
let trusted: Pem;
let untrusted: Pem;
let expired: Pem;

beforeAll(async () => {
  const [trustedCa, otherCa, server] = await Promise.all([
    ca('Trusted CA'),
    ca('Other CA'),
    generate([{ name: 'commonName', value: 'server' }], { keyType: 'ec', algorithm: 'sha256' }),
  ]);
  const long = Date.now() - 30 * DAY;
  [trusted, untrusted, expired] = await Promise.all([
    client('trusted-client', trustedCa),
    client('untrusted-client', otherCa),
    client('expired-client', trustedCa, { notBeforeDate: new Date(long), notAfterDate: new Date(long + DAY) }),
  ]);
  const x509 = new X509Certificate(server.cert);
  material = {
    cert: server.cert,
    key: server.private,
    fingerprint256: x509.fingerprint256,
    subject: x509.subject,
    validTo: x509.validToDate,
    selfSigned: true,
    clientCa: trustedCa.cert,
  };
  contexts = new TlsContextFactory({ control: material, data: material }, { minVersion: 'TLSv1.2', requireSessionReuse: true }).forSession();
});

type Outcome = { identity: CertificateIdentity | undefined } | { refused: string } | { handshakeFailed: string };

/** A TLSSocket wrapped by hand, as the control connection's, and the check after its handshake. */
function controlSide(raw: net.Socket, mode: ClientAuth, on: SessionTlsContexts): Promise<Outcome> {
  const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: on.control, server: on.controlSessionIds, ...clientAuthOptions(mode) });
  return new Promise<Outcome>((resolve) => {
    secure.on('error', (err: NodeJS.ErrnoException) => resolve({ handshakeFailed: err.code ?? err.message }));
    secure.once('secure', () => {
      try {
        resolve({ identity: verifyClientCertificate(secure, mode) });
      } catch (err) {
        resolve({ refused: (err as ClientCertificateRefused).reason });
      }
    });
  });
}

interface Listener<T> {
  readonly port: number;
  /** What `accept` returned for the index-th connection, once it has arrived. */
  accepted(index: number): Promise<T>;
  close(): void;
}

/** A loopback listener that hands each connection to `accept`. */
async function listen<T>(accept: (raw: net.Socket, index: number) => T): Promise<Listener<T>> {
  const sockets: net.Socket[] = [];
  const results: T[] = [];
  const arrivals = new EventEmitter();
  const server = net.createServer((raw) => {
    sockets.push(raw);
    results.push(accept(raw, results.length));
    arrivals.emit('connection');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async accepted(index) {
      while (results.length <= index) await once(arrivals, 'connection');
      return results[index]!;
    },
    close() {
      for (const raw of sockets) raw.destroy();
      server.close();
    },
  };
}

function connect(port: number, options: tls.ConnectionOptions): tls.TLSSocket {
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
  socket.on('error', () => undefined);
  return socket;
}

/** One control handshake by a client presenting `credentials` (or none); the server's verdict. */
async function control(mode: ClientAuth, credentials: Pem | undefined, client: tls.ConnectionOptions = {}): Promise<Outcome> {
  const listener = await listen((raw) => controlSide(raw, mode, contexts));
  const socket = connect(listener.port, { ...credentials, ...client });
  try {
    return await listener.accepted(0);
  } finally {
    socket.destroy();
    listener.close();
  }
}

describe.each(['TLSv1.3', 'TLSv1.2'] as const)('verifyClientCertificate over %s', (maxVersion) => {
  it('required: accepts a certificate the CA signed and names it', async () => {
    expect(await control('required', trusted, { maxVersion })).toEqual({
      identity: { subject: 'CN=trusted-client', fingerprint256: new X509Certificate(trusted.cert).fingerprint256 },
    });
  });

  it.each(['required', 'optional'] as const)('%s: refuses a certificate from another CA', async (mode) => {
    expect(await control(mode, untrusted, { maxVersion })).toEqual({ refused: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it('refuses an expired certificate from the CA', async () => {
    expect(await control('optional', expired, { maxVersion })).toEqual({ refused: 'CERT_HAS_EXPIRED' });
  });

  it('required: OpenSSL ends the handshake of a client without a certificate', async () => {
    expect(await control('required', undefined, { maxVersion })).toEqual({
      handshakeFailed: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
    });
  });

  it('optional: no certificate is no identity', async () => {
    expect(await control('optional', undefined, { maxVersion })).toEqual({ identity: undefined });
  });

  it('none: asks for nothing, so even an untrusted certificate is never seen', async () => {
    expect(await control('none', untrusted, { maxVersion })).toEqual({ identity: undefined });
  });
});

describe('verifyClientCertificate', () => {
  it('refuses a certificate it cannot verify, should Node ever drop the internal check it relies on', () => {
    const x509 = new X509Certificate(trusted.cert);
    const socket = { getPeerX509Certificate: () => x509, _handle: {} } as unknown as tls.TLSSocket;
    expect(() => verifyClientCertificate(socket, 'optional')).toThrow(ClientCertificateRefused);
  });
});

/** A first connection presenting `credentials`, then a second that presents none and resumes the first's session. */
async function resumption<A, B>(
  credentials: Pem,
  client: tls.ConnectionOptions,
  first: (raw: net.Socket) => A,
  second: (raw: net.Socket) => B,
): Promise<{ reused: boolean; first: A; second: B }> {
  const listener = await listen<A | B>((raw, index) => (index === 0 ? first(raw) : second(raw)));
  const initial = connect(listener.port, { ...client, ...credentials });
  const session = await new Promise<Buffer>((resolve) => initial.once('session', resolve));
  const resuming = connect(listener.port, { ...client, session });
  try {
    const reused = await new Promise<boolean>((resolve) => resuming.once('secureConnect', () => resolve(resuming.isSessionReused())));
    return { reused, first: (await listener.accepted(0)) as A, second: (await listener.accepted(1)) as B };
  } finally {
    initial.destroy();
    resuming.destroy();
    listener.close();
  }
}

describe('with a client certificate, data connections resume the control session', () => {
  it.each([
    ['TLS 1.3 tickets', { maxVersion: 'TLSv1.3' }],
    ['TLS 1.2 tickets', { maxVersion: 'TLSv1.2' }],
    ['TLS 1.2 session IDs (curl)', { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }],
  ] as const)('%s', async (_label, client) => {
    const { reused, first } = await resumption(
      trusted,
      client,
      (raw) => controlSide(raw, 'required', contexts),
      // A data connection: it asks for no certificate.
      (raw) => new tls.TLSSocket(raw, { isServer: true, secureContext: contexts.data, server: contexts.dataSessionIds }).on('error', () => undefined),
    );
    expect(await first).toMatchObject({ identity: { subject: 'CN=trusted-client' } });
    expect(reused).toBe(true);
  });
});

describe('with shared contexts (TLS_REQUIRE_SESSION_REUSE=false), a control connection may resume another', () => {
  it.each([
    ['a trusted certificate keeps its identity', () => trusted, { identity: expect.objectContaining({ subject: 'CN=trusted-client' }) }],
    ['an untrusted certificate stays refused', () => untrusted, { refused: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }],
  ])('%s', async (_label, credentials, verdict) => {
    const shared = new TlsContextFactory({ control: material, data: material }, { minVersion: 'TLSv1.2', requireSessionReuse: false });
    const check = (raw: net.Socket) => controlSide(raw, 'optional', shared.forSession());
    const { reused, first, second } = await resumption(credentials(), {}, check, check);
    expect(reused).toBe(true);
    expect(await first).toEqual(verdict);
    expect(await second).toEqual(verdict);
  });
});
