/*
 * Client certificates on the control connection (TLS_CLIENT_CA_PATH, TLS_CLIENT_AUTH), explicit and implicit:
 * who gets past the handshake or AUTH, what the log says about them, and that data connections still need no
 * certificate of their own. A CA, a client certificate it signed, and a second CA with its own client.
 */
import { constants, createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { Client } from 'basic-ftp';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, RawFtpClient } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';
import { ftpsAccess } from '../support/ftps-client.js';

interface Credentials {
  readonly cert: string;
  readonly key: string;
}

/** A CA and a client certificate it signed, for TLS client authentication. */
async function authority(name: string, client: string): Promise<{ ca: Credentials; client: Credentials }> {
  const ca = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const signed = await generate([{ name: 'commonName', value: client }, { name: 'organizationName', value: 'Example' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { ca: { cert: ca.cert, key: ca.private }, client: { cert: signed.cert, key: signed.private } };
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

let trusted: { ca: Credentials; client: Credentials };
let foreign: { ca: Credentials; client: Credentials };
let caDir: string;
let caPath: string;
const servers = new Map<string, RunningServer>();

beforeAll(async () => {
  [trusted, foreign] = await Promise.all([authority('Test Client CA', 'backup-job'), authority('Other CA', 'intruder')]);
  caDir = await mkdtemp(path.join(os.tmpdir(), 'ftps-client-ca-'));
  caPath = path.join(caDir, 'clients-ca.pem');
  await writeFile(caPath, trusted.ca.cert);
});
afterAll(async () => {
  await Promise.all([...servers.values()].map((s) => s.stop()));
  await rm(caDir, { recursive: true, force: true });
});

/** One server per mode, started on first use. */
async function server(clientAuth: 'none' | 'optional' | 'required', implicit = false): Promise<RunningServer> {
  const key = `${clientAuth}/${implicit}`;
  let srv = servers.get(key);
  if (!srv) {
    srv = await startServer({ TLS_CLIENT_AUTH: clientAuth, TLS_CLIENT_CA_PATH: caPath, FTPS_IMPLICIT_SSL: String(implicit) });
    servers.set(key, srv);
  }
  return srv;
}

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** 220, then AUTH TLS presenting `credentials` (or none). */
async function explicit(srv: RunningServer, credentials?: Credentials, more: tls.ConnectionOptions = {}): Promise<RawFtpClient> {
  const c = await RawFtpClient.connect(srv.port);
  expect((await c.read()).code).toBe(220);
  const options: tls.ConnectionOptions = { ...more, ...(credentials && { cert: credentials.cert, key: credentials.key }) };
  // A handshake the server ends rejects here (TLS 1.2); over TLS 1.3 the client finishes its side first and
  // learns only afterwards. Either way, the tests go on to watch what the server does next.
  const reply = await c.upgrade(options).catch(() => undefined);
  if (reply) expect(reply.code).toBe(234);
  return c;
}

/** The latest login's log line: it carries the session's child-logger fields. */
function loginLine(srv: RunningServer): Record<string, unknown> | undefined {
  return srv.logs.findLast((l) => l.msg === 'login');
}

function refusals(srv: RunningServer): Array<Record<string, unknown>> {
  return srv.logs.filter((l) => l.msg === 'client certificate refused');
}

/** basic-ftp over implicit TLS, presenting `credentials` (or none). */
async function implicitClient(srv: RunningServer, credentials?: Credentials): Promise<Client> {
  return (await ftpsAccess(srv.port, TEST_USER, TEST_PASSWORD, { implicit: true, secureOptions: credentials, timeoutMs: 5000 })).client;
}

describe('TLS_CLIENT_AUTH=required, explicit (AUTH TLS)', () => {
  it('a certificate from the CA logs in and transfers over PROT P; the log names it; data needs no certificate', async () => {
    const srv = await server('required');
    const content = randomBytes(64 * 1024);
    await writeFile(path.join(srv.root, 'report.bin'), content);
    const c = await explicit(srv, trusted.client);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
    // The data connection presents no certificate: it resumes the control session instead.
    const data = await c.openPassive({ tls: true });
    const body = readAll(data);
    expect((await c.send('RETR report.bin')).code).toBe(150);
    expect(sha256(await body)).toBe(sha256(content));
    expect((await c.read()).code).toBe(226);
    c.close();

    expect(loginLine(srv)).toMatchObject({
      user: TEST_USER,
      clientCert: { subject: 'CN=backup-job, O=Example', fingerprint256: fingerprint(trusted.client.cert) },
    });
    expect(srv.logs.findLast((l) => l.msg === 'transfer')).toMatchObject({ clientCert: { subject: 'CN=backup-job, O=Example' } });
  });

  it('over TLS 1.2 with session IDs only (curl): the data connection still resumes the control session', async () => {
    const srv = await server('required');
    await writeFile(path.join(srv.root, 'small.txt'), 'by session ID');
    const tls12Ids: tls.ConnectionOptions = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET };
    const c = await explicit(srv, trusted.client, tls12Ids);
    expect((c.socket as tls.TLSSocket).getProtocol()).toBe('TLSv1.2');
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
    const epsv = await c.send('EPSV');
    const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
    const data = tls.connect({ port, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false, ...tls12Ids });
    const body = readAll(data);
    expect((await c.send('RETR small.txt')).code).toBe(150);
    expect((await body).toString()).toBe('by session ID');
    expect((await c.read()).code).toBe(226);
    c.close();
  });

  it('without a certificate: the handshake fails, no command is answered, and the refusal is logged', async () => {
    const srv = await server('required');
    const before = refusals(srv).length;
    const c = await explicit(srv);
    c.writeRaw(`USER ${TEST_USER}\r\n`);
    await expect(c.read()).rejects.toThrow('connection closed');
    expect(refusals(srv).slice(before)).toEqual([expect.objectContaining({ level: 40, reason: 'no certificate presented' })]);
  });

  it('a certificate from another CA: 421, closed, and logged with its subject', async () => {
    const srv = await server('required');
    const before = refusals(srv).length;
    const c = await explicit(srv, foreign.client);
    const r = await c.read();
    expect(r.code).toBe(421);
    expect(r.text).toMatch(/certificate not accepted/);
    await expect(c.read()).rejects.toThrow('connection closed');
    expect(refusals(srv).slice(before)).toEqual([
      expect.objectContaining({
        level: 40,
        reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        clientCert: { subject: 'CN=intruder, O=Example', fingerprint256: fingerprint(foreign.client.cert) },
      }),
    ]);
  });

  it('the CA certificate itself is no client certificate', async () => {
    const srv = await server('required');
    const c = await explicit(srv, trusted.ca);
    expect((await c.read()).code).toBe(421);
  });
});

describe('TLS_CLIENT_AUTH=optional, explicit', () => {
  it('no certificate is fine, and the log names none', async () => {
    const srv = await server('optional');
    const c = await explicit(srv);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    c.close();
    expect(loginLine(srv)).not.toHaveProperty('clientCert');
  });

  it('a certificate from the CA is logged', async () => {
    const srv = await server('optional');
    const c = await explicit(srv, trusted.client);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    c.close();
    expect(loginLine(srv)).toMatchObject({ clientCert: { fingerprint256: fingerprint(trusted.client.cert) } });
  });

  it('a certificate presented but not trusted is refused with 421', async () => {
    const srv = await server('optional');
    const c = await explicit(srv, foreign.client);
    expect((await c.read()).code).toBe(421);
    await expect(c.read()).rejects.toThrow('connection closed');
    expect(refusals(srv).at(-1)).toMatchObject({ clientCert: { subject: 'CN=intruder, O=Example' } });
  });
});

describe('TLS_CLIENT_AUTH=none', () => {
  it('asks for no certificate: a client that has one logs in, and nothing is checked or logged', async () => {
    const srv = await server('none');
    const c = await explicit(srv, foreign.client);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    c.close();
    expect(loginLine(srv)).not.toHaveProperty('clientCert');
    expect(refusals(srv)).toEqual([]);
  });
});

describe('implicit FTPS', () => {
  it('required: basic-ftp with a certificate from the CA uploads and downloads over PROT P', async () => {
    const srv = await server('required', true);
    const client = await implicitClient(srv, trusted.client);
    const content = randomBytes(256 * 1024 + 3);
    expect((await client.uploadFrom(Readable.from([content]), 'up.bin')).code).toBe(226);
    expect(sha256(await readFile(path.join(srv.root, 'up.bin')))).toBe(sha256(content));
    const local = path.join(caDir, 'down.bin');
    expect((await client.downloadTo(local, 'up.bin')).code).toBe(226);
    expect(sha256(await readFile(local))).toBe(sha256(content));
    client.close();
    expect(loginLine(srv)).toMatchObject({ clientCert: { subject: 'CN=backup-job, O=Example' } });
  });

  it('required: without a certificate, or with one from another CA, basic-ftp never gets a 220', async () => {
    const srv = await server('required', true);
    const logins = () => srv.logs.filter((l) => l.msg === 'login').length;
    const [loginsBefore, refusalsBefore] = [logins(), refusals(srv).length];
    await expect(implicitClient(srv)).rejects.toThrow();
    await expect(implicitClient(srv, foreign.client)).rejects.toThrow(/421/);
    expect(refusals(srv).slice(refusalsBefore).map((l) => l.reason)).toEqual([
      'no certificate presented',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    ]);
    expect(logins()).toBe(loginsBefore);
  });

  it('optional: no certificate is fine', async () => {
    const srv = await server('optional', true);
    const client = await implicitClient(srv);
    expect(await client.pwd()).toBe('/');
    client.close();
  });
});
