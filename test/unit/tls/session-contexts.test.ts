import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TlsMaterial } from '../../../src/tls/certificates.js';
import { TlsContextFactory, type SessionTlsContexts } from '../../../src/tls/session-contexts.js';

async function material(commonName: string, passphrase?: string): Promise<TlsMaterial> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    passphrase,
  });
  const x509 = new X509Certificate(pems.cert);
  return {
    cert: pems.cert,
    key: pems.private,
    passphrase,
    fingerprint256: x509.fingerprint256,
    subject: x509.subject,
    validTo: x509.validToDate,
    selfSigned: true,
  };
}

interface Handshake {
  /** What the server saw: did this connection resume a session? */
  readonly reused: boolean;
  readonly protocol: string | null;
  /** The SHA-256 fingerprint of the certificate the client was shown. */
  readonly certificate: string | undefined;
}

/** One TLS connection over loopback: raw TCP accepted, then wrapped server-side as the FTP server does. */
async function handshake(
  secureContext: tls.SecureContext,
  client: { maxVersion: tls.SecureVersion; session: Buffer },
): Promise<Handshake>;
/** Without a session to resume, also returns the first session (ticket) the client received. */
async function handshake(
  secureContext: tls.SecureContext,
  client: { maxVersion: tls.SecureVersion },
): Promise<Handshake & { session: Buffer }>;
async function handshake(
  secureContext: tls.SecureContext,
  client: { maxVersion: tls.SecureVersion; session?: Buffer },
): Promise<Handshake & { session?: Buffer }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const serverSide = new Promise<tls.TLSSocket>((resolve, reject) => {
      server.once('connection', (raw) => {
        const socket = new tls.TLSSocket(raw, { isServer: true, secureContext });
        socket.once('secure', () => resolve(socket));
        socket.once('error', reject);
      });
    });
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...client });
    const failed = new Promise<never>((_resolve, reject) => socket.once('error', reject));
    // TLS 1.3 tickets arrive after the handshake, so wait for the event rather than the connection.
    // A resumed connection need not get a new one.
    const session =
      client.session === undefined ? new Promise<Buffer>((resolve) => socket.once('session', resolve)) : undefined;
    const connected = new Promise<void>((resolve) => socket.once('secureConnect', resolve));
    const [accepted, ticket] = await Promise.race([failed, Promise.all([serverSide, session, connected])]);
    const result = {
      reused: accepted.isSessionReused(),
      protocol: socket.getProtocol(),
      certificate: socket.getPeerX509Certificate()?.fingerprint256,
      session: ticket,
    };
    socket.destroy();
    accepted.destroy();
    return result;
  } finally {
    server.close();
  }
}

let controlMaterial: TlsMaterial;
let dataMaterial: TlsMaterial;

beforeAll(async () => {
  [controlMaterial, dataMaterial] = await Promise.all([material('control'), material('data')]);
});

describe.each([
  { maxVersion: 'TLSv1.3' as const, sameCertificate: true },
  { maxVersion: 'TLSv1.3' as const, sameCertificate: false },
  { maxVersion: 'TLSv1.2' as const, sameCertificate: true },
  { maxVersion: 'TLSv1.2' as const, sameCertificate: false },
])('with session reuse required, $maxVersion, same data certificate: $sameCertificate', ({ maxVersion, sameCertificate }) => {
  let a: SessionTlsContexts;
  let b: SessionTlsContexts;
  let ticketA: Buffer;

  beforeAll(async () => {
    const factory = new TlsContextFactory(
      { control: controlMaterial, data: sameCertificate ? controlMaterial : dataMaterial },
      { minVersion: 'TLSv1.2', requireSessionReuse: true },
    );
    a = factory.forSession();
    b = factory.forSession();
    const control = await handshake(a.control, { maxVersion });
    expect(control.protocol).toBe(maxVersion);
    expect(control.reused).toBe(false);
    ticketA = control.session;
  });

  it("resumes its own control connection's session on its data context", async () => {
    expect((await handshake(a.data, { maxVersion, session: ticketA })).reused).toBe(true);
  });

  it("does not resume another control connection's session", async () => {
    expect((await handshake(b.data, { maxVersion, session: ticketA })).reused).toBe(false);
  });

  it('reports a fresh handshake as not reused', async () => {
    expect((await handshake(a.data, { maxVersion })).reused).toBe(false);
  });
});

describe('TlsContextFactory', () => {
  it('gives every session its own contexts when reuse is required, one shared pair otherwise', () => {
    const material = { control: controlMaterial, data: dataMaterial };
    const isolated = new TlsContextFactory(material, { minVersion: 'TLSv1.2', requireSessionReuse: true });
    expect(isolated.forSession().control).not.toBe(isolated.forSession().control);
    const shared = new TlsContextFactory(material, { minVersion: 'TLSv1.2', requireSessionReuse: false });
    expect(shared.forSession()).toBe(shared.forSession());
  });

  it('uses one context for both channels when they share the certificate', () => {
    const contexts = new TlsContextFactory(
      { control: controlMaterial, data: controlMaterial },
      { minVersion: 'TLSv1.2', requireSessionReuse: true },
    ).forSession();
    expect(contexts.data).toBe(contexts.control);
  });

  it("lets any session resume any other's when reuse is not required", async () => {
    const factory = new TlsContextFactory(
      { control: controlMaterial, data: dataMaterial },
      { minVersion: 'TLSv1.2', requireSessionReuse: false },
    );
    const { session } = await handshake(factory.forSession().control, { maxVersion: 'TLSv1.3' });
    expect((await handshake(factory.forSession().data, { maxVersion: 'TLSv1.3', session })).reused).toBe(true);
  });

  it('serves an encrypted key', async () => {
    const encrypted = await material('encrypted', 'correct horse');
    const factory = new TlsContextFactory(
      { control: encrypted, data: encrypted },
      { minVersion: 'TLSv1.3', requireSessionReuse: true },
    );
    const contexts = factory.forSession();
    const { session } = await handshake(contexts.control, { maxVersion: 'TLSv1.3' });
    expect((await handshake(contexts.data, { maxVersion: 'TLSv1.3', session })).reused).toBe(true);
  });

  it('applies minVersion and ciphers', async () => {
    const factory = new TlsContextFactory(
      { control: controlMaterial, data: controlMaterial },
      { minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', requireSessionReuse: true },
    );
    const contexts = factory.forSession();
    await expect(handshake(contexts.control, { maxVersion: 'TLSv1.2' })).resolves.toMatchObject({ protocol: 'TLSv1.2' });
    const tls13Only = new TlsContextFactory(
      { control: controlMaterial, data: controlMaterial },
      { minVersion: 'TLSv1.3', requireSessionReuse: true },
    );
    await expect(handshake(tls13Only.forSession().control, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
  });
});

describe.each([{ requireSessionReuse: true }, { requireSessionReuse: false }])(
  'TlsContextFactory.replace, session reuse required: $requireSessionReuse',
  ({ requireSessionReuse }) => {
    it('gives new sessions the new certificate while a session holding its contexts keeps the old one', async () => {
      const factory = new TlsContextFactory(
        { control: controlMaterial, data: controlMaterial },
        { minVersion: 'TLSv1.2', requireSessionReuse },
      );
      const running = factory.forSession();
      const { session, certificate } = await handshake(running.control, { maxVersion: 'TLSv1.3' });
      expect(certificate).toBe(controlMaterial.fingerprint256);

      const next = { control: dataMaterial, data: dataMaterial };
      factory.replace(next);
      expect(factory.current).toBe(next);
      const fresh = await handshake(factory.forSession().control, { maxVersion: 'TLSv1.3' });
      expect(fresh.certificate).toBe(dataMaterial.fingerprint256);
      // The running session's data connections still resume its control session (a resumption shows no
      // certificate), and its contexts still hold the old one.
      expect((await handshake(running.data, { maxVersion: 'TLSv1.3', session })).reused).toBe(true);
      expect((await handshake(running.data, { maxVersion: 'TLSv1.3' })).certificate).toBe(controlMaterial.fingerprint256);
    });
  },
);
