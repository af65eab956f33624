/*
 * PROXY protocol headers (HAProxy's proxy-protocol.txt): the pure parser on tables of valid and broken
 * headers and on every prefix of them, then the socket reader on real loopback connections, byte-by-byte
 * delivery and a TLS handshake on the bytes after the header included.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { pemPair } from '../../support/certificates.js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_V1_LENGTH,
  MAX_V2_BODY,
  ProxyPolicy,
  detectProxySignature,
  directOrigin,
  parseProxyHeader,
  readProxyHeader,
} from '../../../src/net/proxy-protocol.js';

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: `body` is the address block and TLVs; `length` overrides the announced body length. */
function v2(o: { verCmd?: number; fam?: number; body?: Buffer; length?: number }): Buffer {
  const body = o.body ?? Buffer.alloc(0);
  const fixed = Buffer.alloc(4);
  fixed[0] = o.verCmd ?? 0x21;
  fixed[1] = o.fam ?? 0x11;
  fixed.writeUInt16BE(o.length ?? body.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

function ports(src: number, dst: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(src, 0);
  b.writeUInt16BE(dst, 2);
  return b;
}

const ipv4 = (a: string) => Buffer.from(a.split('.').map(Number));
function ipv6(a: string): Buffer {
  const [head = '', tail = ''] = a.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(all.map((g) => g.padStart(4, '0')).join(''), 'hex');
}

const tcp4 = (src: string, dst: string, sport: number, dport: number, extra = Buffer.alloc(0)) =>
  v2({ fam: 0x11, body: Buffer.concat([ipv4(src), ipv4(dst), ports(sport, dport), extra]) });
const tcp6 = (src: string, dst: string, sport: number, dport: number) =>
  v2({ fam: 0x21, body: Buffer.concat([ipv6(src), ipv6(dst), ports(sport, dport)]) });
const tlv = (type: number, value: Buffer) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value]);

const text = (s: string) => Buffer.from(s, 'latin1');
const FULL_V6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';

describe('parseProxyHeader: valid headers', () => {
  const cases: Array<[string, Buffer, { address: string; port: number } | undefined]> = [
    ['v1 TCP4', text('PROXY TCP4 192.0.2.10 198.51.100.1 56324 21\r\n'), { address: '192.0.2.10', port: 56324 }],
    ['v1 TCP4, port 0 and 65535', text('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'), { address: '0.0.0.0', port: 0 }],
    ['v1 TCP6', text('PROXY TCP6 2001:db8::7 2001:db8::1 4000 21\r\n'), { address: '2001:db8::7', port: 4000 }],
    ['v1 TCP6, long form made canonical', text('PROXY TCP6 2001:0DB8:0:0:0:0:0:7 ::1 4000 21\r\n'), { address: '2001:db8::7', port: 4000 }],
    ['v1 TCP6, IPv4-mapped: plain IPv4', text('PROXY TCP6 ::ffff:192.0.2.10 ::1 4000 21\r\n'), { address: '192.0.2.10', port: 4000 }],
    ['v1 UNKNOWN, short form', text('PROXY UNKNOWN\r\n'), undefined],
    ['v1 UNKNOWN, the longest line', text(`PROXY UNKNOWN ${FULL_V6} ${FULL_V6} 65535 65535\r\n`), undefined],
    ['v1 UNKNOWN, anything after it ignored', text('PROXY UNKNOWN whatever \x01 the sender wrote\r\n'), undefined],
    ['v2 PROXY TCP4', tcp4('192.0.2.10', '198.51.100.1', 56324, 21), { address: '192.0.2.10', port: 56324 }],
    ['v2 PROXY TCP6', tcp6('2001:db8::7', '2001:db8::1', 4000, 21), { address: '2001:db8::7', port: 4000 }],
    ['v2 PROXY TCP6, IPv4-mapped: plain IPv4', tcp6('::ffff:c000:20a', '::1', 4000, 21), { address: '192.0.2.10', port: 4000 }],
    ['v2 LOCAL, no addresses (HAProxy health checks)', v2({ verCmd: 0x20, fam: 0x00 }), undefined],
    ['v2 LOCAL, address block ignored', v2({ verCmd: 0x20, fam: 0x11, body: Buffer.from('anything at all') }), undefined],
    ['v2 PROXY UNSPEC', v2({ fam: 0x00 }), undefined],
    ['v2 PROXY UDP4: no TCP client', v2({ fam: 0x12, body: Buffer.concat([ipv4('192.0.2.10'), ipv4('192.0.2.1'), ports(1, 2)]) }), undefined],
    ['v2 PROXY AF_UNIX', v2({ fam: 0x31, body: Buffer.alloc(216) }), undefined],
    [
      'v2 with TLVs skipped',
      tcp4('192.0.2.10', '198.51.100.1', 1234, 21, Buffer.concat([tlv(0x05, Buffer.from('unique-id')), tlv(0x04, Buffer.alloc(0)), tlv(0xea, Buffer.alloc(300))])),
      { address: '192.0.2.10', port: 1234 },
    ],
    ['v2 at the length limit', tcp4('192.0.2.10', '198.51.100.1', 1, 21, tlv(0x04, Buffer.alloc(MAX_V2_BODY - 12 - 3))), { address: '192.0.2.10', port: 1 }],
  ];

  it.each(cases)('%s', (_name, header, source) => {
    expect(parseProxyHeader(header)).toEqual({
      kind: 'header',
      header: { version: header[0] === 0x50 ? 1 : 2, source, length: header.length },
    });
  });

  it.each(cases)('%s: every shorter prefix is incomplete, and bytes after it are not part of it', (_name, header) => {
    for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n))).toEqual({ kind: 'incomplete' });
    const scan = parseProxyHeader(Buffer.concat([header, text('USER alice\r\n')]));
    expect(scan.kind === 'header' && scan.header.length).toBe(header.length);
  });

  it('the longest v1 line is exactly the limit', () => {
    expect(text(`PROXY UNKNOWN ${FULL_V6} ${FULL_V6} 65535 65535\r\n`).length).toBe(MAX_V1_LENGTH);
  });
});

describe('parseProxyHeader: anything else', () => {
  it.each([
    ['an FTP command', text('USER alice\r\n')],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])],
    ['an HTTP request', text('GET / HTTP/1.1\r\n')],
    ['a near miss of the v2 signature', Buffer.concat([V2_SIGNATURE.subarray(0, 11), Buffer.from([0x0b, 0x21, 0x11])])],
  ])('%s: absent', (_name, bytes) => {
    expect(parseProxyHeader(bytes)).toEqual({ kind: 'absent' });
  });

  it.each([
    ['v1 LF alone', 'PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n'],
    ['v1 CR alone', 'PROXY TCP4 192.0.2.10 198.51.100.1 1 2\rX'],
    ['v1 CR CR LF', 'PROXY TCP4 192.0.2.10 198.51.100.1 1 2\r\r\n'],
    ['v1 "PROXY" without a space', 'PROXYTCP4 192.0.2.10 198.51.100.1 1 2\r\n'],
    ['v1 unknown protocol', 'PROXY TCP5 192.0.2.10 198.51.100.1 1 2\r\n'],
    ['v1 lower-case protocol', 'PROXY tcp4 192.0.2.10 198.51.100.1 1 2\r\n'],
    ['v1 two spaces', 'PROXY TCP4  192.0.2.10 198.51.100.1 1 2\r\n'],
    ['v1 missing port', 'PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n'],
    ['v1 extra field', 'PROXY TCP4 192.0.2.10 198.51.100.1 1 2 3\r\n'],
    ['v1 trailing space', 'PROXY TCP4 192.0.2.10 198.51.100.1 1 2 \r\n'],
    ['v1 octal-looking address', 'PROXY TCP4 192.0.2.010 198.51.100.1 1 2\r\n'],
    ['v1 address out of range', 'PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n'],
    ['v1 IPv6 under TCP4', 'PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n'],
    ['v1 IPv4 under TCP6', 'PROXY TCP6 192.0.2.10 2001:db8::1 1 2\r\n'],
    ['v1 IPv6 with a zone', 'PROXY TCP6 fe80::1%eth0 2001:db8::1 1 2\r\n'],
    ['v1 host name', 'PROXY TCP4 example.org 198.51.100.1 1 2\r\n'],
    ['v1 port with a leading zero', 'PROXY TCP4 192.0.2.10 198.51.100.1 080 21\r\n'],
    ['v1 port above 65535', 'PROXY TCP4 192.0.2.10 198.51.100.1 65536 21\r\n'],
    ['v1 negative port', 'PROXY TCP4 192.0.2.10 198.51.100.1 -1 21\r\n'],
    ['v1 no CRLF within 107 bytes', `PROXY UNKNOWN ${'x'.repeat(200)}\r\n`],
  ])('%s: invalid', (_name, line) => {
    expect(parseProxyHeader(text(line))).toMatchObject({ kind: 'invalid' });
  });

  it('v1: a line that cannot end within 107 bytes is refused as soon as 107 bytes are there', () => {
    expect(parseProxyHeader(text(`PROXY TCP4 ${'1'.repeat(MAX_V1_LENGTH - 12)}`))).toEqual({ kind: 'incomplete' });
    expect(parseProxyHeader(text(`PROXY TCP4 ${'1'.repeat(MAX_V1_LENGTH - 11)}`))).toMatchObject({ kind: 'invalid' });
  });

  it.each([
    ['version 1', v2({ verCmd: 0x11, body: Buffer.alloc(12) })],
    ['version 3', v2({ verCmd: 0x31, body: Buffer.alloc(12) })],
    ['command 2', v2({ verCmd: 0x22, body: Buffer.alloc(12) })],
    ['family 4', v2({ fam: 0x41, body: Buffer.alloc(12) })],
    ['protocol 3', v2({ fam: 0x13, body: Buffer.alloc(12) })],
    ['TCP4 address block too short', v2({ fam: 0x11, body: Buffer.alloc(8) })],
    ['TCP6 address block too short', v2({ fam: 0x21, body: Buffer.alloc(12) })],
    ['TLV running past the end', tcp4('192.0.2.10', '198.51.100.1', 1, 2, Buffer.from([0x05, 0x00, 0x09, 0x41]))],
    ['TLV header cut short', tcp4('192.0.2.10', '198.51.100.1', 1, 2, Buffer.from([0x05, 0x00]))],
  ])('v2 %s: invalid', (_name, header) => {
    expect(parseProxyHeader(header)).toMatchObject({ kind: 'invalid' });
  });

  it('v2: an announced length over the limit is refused from the 16 fixed bytes alone', () => {
    const fixed = v2({ length: MAX_V2_BODY + 1 });
    expect(fixed.length).toBe(16);
    expect(parseProxyHeader(fixed)).toEqual({ kind: 'invalid', reason: `v2 header longer than ${16 + MAX_V2_BODY} bytes` });
  });
});

// --- the reader, on real loopback connections ---

const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A loopback server; resolves with the client socket and the server's side of the connection. */
async function connection(): Promise<{ client: net.Socket; server: net.Socket }> {
  const srv = net.createServer();
  servers.push(srv);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  const [[server]] = await Promise.all([accepted, once(client, 'connect')]);
  server.on('error', () => undefined);
  return { client, server };
}

/** What arrives on `socket` once it is read again (it comes back paused). */
function rest(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= bytes) resolve(got);
    });
    socket.resume();
  });
}

describe('readProxyHeader', () => {
  it.each([
    ['v1', text('PROXY TCP4 192.0.2.10 198.51.100.1 56324 21\r\n')],
    ['v2 with a TLV', tcp4('192.0.2.10', '198.51.100.1', 56324, 21, tlv(0x05, Buffer.from('id')))],
  ])('%s delivered one byte at a time, with the following bytes kept', async (_name, header) => {
    const { client, server } = await connection();
    client.setNoDelay(true);
    let chunks = 0;
    server.on('data', () => chunks++);
    const reading = readProxyHeader(server, 2000);
    const stream = Buffer.concat([header, text('USER alice\r\n')]);
    for (const byte of stream) {
      client.write(Buffer.from([byte]));
      await sleep(1);
    }
    expect(await reading).toMatchObject({ source: { address: '192.0.2.10', port: 56324 }, length: header.length });
    expect(chunks).toBeGreaterThan(1);
    expect((await rest(server, 12)).toString()).toBe('USER alice\r\n');
    client.destroy();
  });

  it('keeps the bytes sent in the same segment as the header', async () => {
    const { client, server } = await connection();
    client.write(Buffer.concat([tcp6('2001:db8::7', '::1', 4000, 21), text('AUTH TLS\r\nPBSZ 0\r\n')]));
    expect((await readProxyHeader(server, 2000)).source).toEqual({ address: '2001:db8::7', port: 4000 });
    expect((await rest(server, 18)).toString()).toBe('AUTH TLS\r\nPBSZ 0\r\n');
    client.destroy();
  });

  it.each([
    ['v1', text('PROXY TCP4 192.0.2.10 198.51.100.1 56324 21\r\n')],
    ['v2', tcp4('192.0.2.10', '198.51.100.1', 56324, 21)],
  ])('a TLS server socket created after a %s header handshakes on the bytes that followed it', async (_name, header) => {
    const { client, server } = await connection();
    const pems = await pemPair('localhost');
    // Header and ClientHello as the proxy relays them: the hello arrives before the reader has finished.
    client.write(header);
    const secureClient = tls.connect({ socket: client, rejectUnauthorized: false });
    await sleep(50);
    await readProxyHeader(server, 2000);
    const secureServer = new tls.TLSSocket(server, { isServer: true, secureContext: tls.createSecureContext({ key: pems.key, cert: pems.cert }) });
    secureServer.on('data', (d: Buffer) => secureServer.end(`echo ${d.toString()}`));
    secureClient.write('over TLS');
    const [reply] = await Promise.all([rest(secureClient, 13), once(secureServer, 'secure')]);
    expect(reply.toString()).toBe('echo over TLS');
    secureClient.destroy();
  });

  it.each([
    ['garbage', text('GET / HTTP/1.1\r\n'), 'no PROXY header'],
    ['a malformed v1 line', text('PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n'), 'malformed PROXY header: v1 ports are not decimal numbers from 0 to 65535'],
    ['an oversized v2 header', v2({ length: 60_000 }), `malformed PROXY header: v2 header longer than ${16 + MAX_V2_BODY} bytes`],
  ])('refuses %s', async (_name, bytes, reason) => {
    const { client, server } = await connection();
    client.write(bytes);
    await expect(readProxyHeader(server, 2000)).rejects.toMatchObject({ reason });
    client.destroy();
  });

  it('gives up after the timeout, and when the connection closes half-way', async () => {
    const silent = await connection();
    const started = Date.now();
    await expect(readProxyHeader(silent.server, 200)).rejects.toMatchObject({ reason: 'no PROXY header within 200 ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    silent.client.destroy();

    const partial = await connection();
    partial.client.end(tcp4('192.0.2.10', '198.51.100.1', 1, 2).subarray(0, 20));
    await expect(readProxyHeader(partial.server, 2000)).rejects.toMatchObject({ reason: 'connection closed before its PROXY header', probe: false });

    // Connected and closed without a byte, as TCP health checks do: a probe, which callers do not warn about.
    const probe = await connection();
    probe.client.end();
    await expect(readProxyHeader(probe.server, 2000)).rejects.toMatchObject({ reason: 'connection closed before its PROXY header', probe: true });
  });
});

describe('detectProxySignature', () => {
  it.each([
    ['a v1 header', text('PROXY TCP4 192.0.2.10 198.51.100.1 1 2\r\n'), 1],
    ['a v2 header', tcp4('192.0.2.10', '198.51.100.1', 1, 2), 2],
    ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), undefined],
    ['a command', text('USER alice\r\n'), undefined],
  ])('%s: %s, and every byte stays in the socket', async (_name, bytes, version) => {
    const { client, server } = await connection();
    client.write(bytes);
    expect(await detectProxySignature(server, 2000)).toBe(version);
    expect(await rest(server, bytes.length)).toEqual(bytes);
    client.destroy();
  });
});

describe('ProxyPolicy', () => {
  const policy = (versions: 'v1' | 'v2' | 'any') => new ProxyPolicy({ versions, trustedCidrs: ['127.0.0.0/8', 'fd00::/8'], timeoutMs: 2000 });

  it('trusts the listed networks only', () => {
    const p = policy('any');
    expect([p.trusts('127.0.0.1'), p.trusts('fd00::5'), p.trusts('10.0.0.1'), p.trusts('::1')]).toEqual([true, true, false, false]);
  });

  it('names the carried client, the proxy as `via`, and the proxy itself for LOCAL', async () => {
    const proxied = await connection();
    proxied.client.write(tcp4('192.0.2.10', '198.51.100.1', 4000, 21));
    expect(await policy('v2').readOrigin(proxied.server, directOrigin(proxied.server)!)).toEqual({ peer: { address: '192.0.2.10', port: 4000 }, via: '127.0.0.1' });

    const local = await connection();
    local.client.write(v2({ verCmd: 0x20, fam: 0x00 }));
    expect(await policy('any').readOrigin(local.server, directOrigin(local.server)!)).toEqual({
      peer: { address: '127.0.0.1', port: local.client.localPort },
      via: '127.0.0.1',
    });
  });

  it('refuses a header of a version PROXY_PROTOCOL does not accept', async () => {
    const { client, server } = await connection();
    client.write(tcp4('192.0.2.10', '198.51.100.1', 4000, 21));
    await expect(policy('v1').readOrigin(server, directOrigin(server)!)).rejects.toMatchObject({ reason: 'PROXY protocol v2 header, but PROXY_PROTOCOL=v1' });
  });
});

it('decodes a header as HAProxy sends it (send-proxy-v2, TCP over IPv4)', () => {
  const captured = Buffer.from('0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050', 'hex');
  expect(parseProxyHeader(captured)).toEqual({
    kind: 'header',
    header: { version: 2, source: { address: '172.19.0.1', port: 42578 }, length: 28 },
  });
});
