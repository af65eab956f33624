/*
 * parseClientHello on real ClientHellos: Node's TLS client (OpenSSL) connecting to a real TLS server, first fresh,
 * then resuming its session by TLS 1.3 ticket, TLS 1.2 ticket and TLS 1.2 session ID, each captured by a proxy
 * socket in between; and the same bytes split, cut short or replaced by something else.
 */
import net from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClientHello, type ClientHelloParse } from '../../../src/tls/client-hello.js';

let server: tls.Server;
const ticketKeys = Buffer.alloc(48, 7);

beforeAll(async () => {
  const pems = await generate([{ name: 'commonName', value: 'hello' }], { keyType: 'ec', algorithm: 'sha256' });
  server = tls.createServer({ cert: pems.cert, key: pems.private, ticketKeys }, (s) => s.end('x'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Connects through a relay that records the client's first bytes; returns them and the session the client got. */
async function capture(o: tls.ConnectionOptions): Promise<{ hello: Buffer; session: Buffer | undefined }> {
  const chunks: Buffer[] = [];
  const relay = net.createServer((inbound) => {
    const outbound = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    inbound.on('data', (c: Buffer) => chunks.push(c));
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  let session: Buffer | undefined;
  const client = tls.connect({ port: (relay.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, ...o });
  client.on('session', (s: Buffer) => (session = s));
  client.resume();
  await new Promise((resolve) => client.on('close', resolve));
  relay.close();
  return { hello: Buffer.concat(chunks), session };
}

const offerOf = (p: ClientHelloParse) => (p.kind === 'client-hello' ? p.offer : undefined);
const KEY_NAME = ticketKeys.toString('hex', 0, 16);

describe('parseClientHello', () => {
  it.each([
    { label: 'TLS 1.3 (pre_shared_key)', options: { maxVersion: 'TLSv1.3' } },
    { label: 'TLS 1.2 (SessionTicket)', options: { maxVersion: 'TLSv1.2' } },
  ] as const)('finds the ticket key name of a resumed $label, none in a fresh hello', async ({ options }) => {
    const fresh = await capture(options);
    expect(offerOf(parseClientHello(fresh.hello))?.ticketKeyNames).toEqual([]);
    const resumed = await capture({ ...options, session: fresh.session });
    expect(offerOf(parseClientHello(resumed.hello))?.ticketKeyNames).toEqual([KEY_NAME]);
  });

  it('reports the session ID of a TLS 1.2 hello that resumes, none in a fresh one', async () => {
    const fresh = await capture({ maxVersion: 'TLSv1.2' });
    expect(offerOf(parseClientHello(fresh.hello))?.sessionId).toBeUndefined();
    const resumed = parseClientHello((await capture({ maxVersion: 'TLSv1.2', session: fresh.session })).hello);
    expect(offerOf(resumed)?.sessionId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reassembles a hello split over records and reads it from any chunking; asks for more while cut short', async () => {
    const captured = (await capture({ maxVersion: 'TLSv1.3' })).hello;
    // The client's first record only (the relay saw its later ones too).
    const hello = captured.subarray(0, 5 + captured.readUInt16BE(3));
    const body = hello.subarray(5);
    const split = Buffer.concat([
      Buffer.from([22, 3, 1, 0, 40]),
      body.subarray(0, 40),
      Buffer.from([22, 3, 1, (body.length - 40) >> 8, (body.length - 40) & 0xff]),
      body.subarray(40),
    ]);
    expect(parseClientHello(split)).toEqual(parseClientHello(hello));
    for (const cut of [0, 3, 5, 50, hello.length - 1]) expect(parseClientHello(hello.subarray(0, cut)).kind).toBe('incomplete');
  });

  it.each([
    ['an FTP upload', Buffer.from('PK\x03\x04 some zip bytes')],
    ['an alert record', Buffer.from([21, 3, 3, 0, 2, 2, 40])],
    ['a handshake that is no ClientHello', Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0])],
    ['a hello whose lengths run past its end', Buffer.from([22, 3, 3, 0, 8, 1, 0, 0, 4, 3, 3, 0xff, 0xff])],
    ['a record claiming more than 16 KiB', Buffer.from([22, 3, 3, 0x50, 0x00])],
  ])('refuses %s as not TLS', (_label, bytes) => {
    expect(parseClientHello(bytes).kind).toBe('not-tls');
  });
});
