import net from 'node:net';
import { normalizeAddress } from './peer-address.js';
import { readStart } from './read-start.js';
import { blockListOf, isListed, parseAddressRange, type AddressRange } from './address-list.js';

/*
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a load balancer puts one header in
 * front of the bytes it relays, naming the client it relays for. Parsed strictly — anything that does not
 * match the specification exactly ends the connection — and boundedly: a header is at most 107 bytes (v1)
 * or 16 + MAX_V2_BODY bytes (v2), so no more is ever buffered.
 */

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

export type ProxyVersion = 1 | 2;

export interface ProxyHeader {
  readonly version: ProxyVersion;
  /**
   * The client the proxy relays for. Undefined when the header names none: a v2 LOCAL connection (the
   * proxy's own, e.g. a health check), v1 UNKNOWN, or a v2 family other than TCP over IPv4/IPv6; the
   * specification then says to use the connection's own endpoints.
   */
  readonly source: ProxyEndpoint | undefined;
  /** Bytes the header occupies at the start of the stream. */
  readonly length: number;
}

export type HeaderScan =
  | { readonly kind: 'header'; readonly header: ProxyHeader }
  /** A prefix of a header: more bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  /** The stream does not start with a PROXY signature at all. */
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly reason: string };

const V1_SIGNATURE = Buffer.from('PROXY', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** The longest v1 line the specification allows, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). */
export const MAX_V1_LENGTH = 107;
/**
 * Addresses plus TLVs after the 16 fixed bytes of a v2 header. The largest address block (AF_UNIX) is 216
 * bytes; HAProxy's TLVs (SSL details, unique ID ≤ 128, authority ≤ 255) and cloud balancers' (endpoint IDs)
 * stay well below 1 KiB. A larger announced length is refused at once instead of being waited for.
 */
export const MAX_V2_BODY = 2048;
const V2_FIXED = 16;

/** Which header the bytes begin, as far as they go. */
export function proxySignature(buf: Buffer): ProxyVersion | 'absent' | 'incomplete' {
  for (const [version, signature] of [[1, V1_SIGNATURE], [2, V2_SIGNATURE]] as const) {
    const n = Math.min(buf.length, signature.length);
    if (buf.subarray(0, n).equals(signature.subarray(0, n))) return n === signature.length ? version : 'incomplete';
  }
  return 'absent';
}

/** Scans the start of a stream for a header: a pure function of the bytes received so far. */
export function parseProxyHeader(buf: Buffer): HeaderScan {
  const signature = proxySignature(buf);
  if (signature === 'absent' || signature === 'incomplete') return { kind: signature };
  return signature === 1 ? parseV1(buf) : parseV2(buf);
}

const invalid = (reason: string): HeaderScan => ({ kind: 'invalid', reason });
const INCOMPLETE: HeaderScan = { kind: 'incomplete' };

function parseV1(buf: Buffer): HeaderScan {
  const window = buf.subarray(0, MAX_V1_LENGTH);
  const lf = window.indexOf(0x0a);
  const cr = window.indexOf(0x0d);
  // Only CRLF ends the line: a CR must be followed by LF, and an LF must follow a CR.
  if (lf === -1) {
    if (cr !== -1 && cr < window.length - 1) return invalid('v1 line not ended by CRLF');
    return buf.length >= MAX_V1_LENGTH ? invalid(`v1 line longer than ${MAX_V1_LENGTH} bytes`) : INCOMPLETE;
  }
  if (cr !== lf - 1) return invalid('v1 line not ended by CRLF');
  const line = window.subarray(0, cr).toString('latin1');
  const fields = line.split(' ');
  const length = lf + 1;
  // UNKNOWN: the sender could not fill the line; whatever follows the keyword is to be ignored.
  if (fields[0] === 'PROXY' && fields[1] === 'UNKNOWN') return { kind: 'header', header: { version: 1, source: undefined, length } };
  const [proxy, protocol, src = '', dst = '', srcPort = '', dstPort = ''] = fields;
  if (proxy !== 'PROXY' || (protocol !== 'TCP4' && protocol !== 'TCP6') || fields.length !== 6) {
    return invalid('v1 line is not "PROXY TCP4|TCP6|UNKNOWN <src> <dst> <sport> <dport>"');
  }
  const isAddress = protocol === 'TCP4' ? net.isIPv4 : (a: string) => /^[0-9a-f:.]+$/i.test(a) && net.isIPv6(a);
  if (!isAddress(src) || !isAddress(dst)) return invalid(`v1 addresses are not ${protocol === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const port = /^(0|[1-9]\d{0,4})$/;
  if (!port.test(srcPort) || !port.test(dstPort) || Number(srcPort) > 65535 || Number(dstPort) > 65535) {
    return invalid('v1 ports are not decimal numbers from 0 to 65535');
  }
  return { kind: 'header', header: { version: 1, source: { address: normalizeAddress(src), port: Number(srcPort) }, length } };
}

/** Address block sizes by family (high nibble of byte 14): AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX. */
const V2_ADDRESS_BYTES = [0, 12, 36, 216] as const;

function parseV2(buf: Buffer): HeaderScan {
  if (buf.length < V2_FIXED) return INCOMPLETE;
  const versionCommand = buf[12]!;
  const familyProtocol = buf[13]!;
  const bodyLength = buf.readUInt16BE(14);
  if (versionCommand >> 4 !== 2) return invalid('v2 version is not 2');
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('v2 command is neither LOCAL nor PROXY');
  const family = familyProtocol >> 4;
  const protocol = familyProtocol & 0x0f;
  if (family > 3 || protocol > 2) return invalid('v2 address family or protocol unknown');
  if (bodyLength > MAX_V2_BODY) return invalid(`v2 header longer than ${V2_FIXED + MAX_V2_BODY} bytes`);
  const length = V2_FIXED + bodyLength;
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: the proxy's own connection; the whole block, family included, is to be ignored.
  if (command === 0) return { kind: 'header', header: { version: 2, source: undefined, length } };
  const body = buf.subarray(V2_FIXED, length);
  const addressBytes = V2_ADDRESS_BYTES[family as 0 | 1 | 2 | 3];
  if (body.length < addressBytes) return invalid('v2 address block shorter than its family needs');
  if (!validTlvs(body.subarray(addressBytes))) return invalid('v2 TLVs do not fill the header exactly');
  // Only TCP carries a client we can use; UDP, AF_UNIX and UNSPEC fall back to the connection's endpoints.
  if (protocol !== 1 || (family !== 1 && family !== 2)) return { kind: 'header', header: { version: 2, source: undefined, length } };
  const source =
    family === 1
      ? { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) }
      : { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) };
  return { kind: 'header', header: { version: 2, source: { ...source, address: normalizeAddress(source.address) }, length } };
}

/** Type (1 byte), length (2 bytes), value: TLVs are skipped, but they must tile the rest of the header. */
function validTlvs(tlvs: Buffer): boolean {
  let offset = 0;
  while (offset < tlvs.length) {
    if (offset + 3 > tlvs.length) return false;
    offset += 3 + tlvs.readUInt16BE(offset + 1);
  }
  return offset === tlvs.length;
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

export class ProxyHeaderError extends Error {
  constructor(
    readonly reason: string,
    /** The peer closed without sending a byte: a port probe (a TCP health check), not worth a warning. */
    readonly probe = false,
  ) {
    super(reason);
    this.name = 'ProxyHeaderError';
  }
}

/** Reads the header the connection must start with; the bytes after it stay in the socket. */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<ProxyHeader> {
  return readStart(socket, 'PROXY header', timeoutMs, (buf) => {
    const scan = parseProxyHeader(buf);
    if (scan.kind === 'incomplete') return undefined;
    if (scan.kind === 'absent') throw new ProxyHeaderError('no PROXY header');
    if (scan.kind === 'invalid') throw new ProxyHeaderError(`malformed PROXY header: ${scan.reason}`);
    return { result: scan.header, consumed: scan.header.length };
  }, headerError);
}

const headerError = (reason: string, probe: boolean) => new ProxyHeaderError(reason, probe);

/** Whether the connection starts with a PROXY signature; consumes nothing. Rejects on timeout or close. */
export function detectProxySignature(socket: net.Socket, timeoutMs: number): Promise<ProxyVersion | undefined> {
  return readStart(socket, 'first bytes', timeoutMs, (buf) => {
    const signature = proxySignature(buf);
    if (signature === 'incomplete') return undefined;
    return { result: signature === 'absent' ? undefined : signature, consumed: 0 };
  }, headerError);
}

/** Who a connection is from. */
export interface Origin {
  /** The client: the source a trusted proxy's header carried, else the socket's peer. */
  readonly peer: ProxyEndpoint;
  /** The proxy's address when the connection came with a header; undefined for a direct connection. */
  readonly via: string | undefined;
}

/**
 * The socket's own peer, for a connection straight from its client. Undefined when the connection was reset
 * before it was accepted (HAProxy's health checks end with a reset): there is no one to serve.
 */
export function directOrigin(socket: net.Socket): Origin | undefined {
  const { remoteAddress, remotePort } = socket;
  if (remoteAddress === undefined) return undefined;
  return { peer: { address: normalizeAddress(remoteAddress), port: remotePort ?? 0 }, via: undefined };
}

/**
 * Who a new connection is from: its own peer, or — when that is a trusted proxy — the client the proxy's header
 * names, read first (rejects with a ProxyHeaderError). Undefined as for directOrigin.
 */
export async function originOf(socket: net.Socket, proxy: ProxyPolicy | undefined): Promise<Origin | undefined> {
  const direct = directOrigin(socket);
  return direct && proxy?.trusts(direct.peer.address) ? proxy.readOrigin(socket, direct) : direct;
}

export interface ProxyPolicyOptions {
  /** PROXY_PROTOCOL, not 'off'. */
  readonly versions: 'v1' | 'v2' | 'any';
  /** PROXY_TRUSTED_CIDRS, normalized address/CIDR strings. */
  readonly trustedCidrs: readonly string[];
  readonly timeoutMs: number;
}

/**
 * PROXY_PROTOCOL and PROXY_TRUSTED_CIDRS: a connection from a trusted proxy must start with a header of an
 * accepted version and is then the client's it names; any other connection is its own client's. The
 * specification forbids guessing whether a header is present, so there is no "header if any".
 */
export class ProxyPolicy {
  private readonly trusted: net.BlockList;

  constructor(private readonly o: ProxyPolicyOptions) {
    this.trusted = blockListOf(o.trustedCidrs.map((c) => parseAddressRange(c)).filter((r): r is AddressRange => r !== undefined));
  }

  /** Whether connections from `address` (canonical, as Origin has it) must carry a header. */
  trusts(address: string): boolean {
    return isListed(this.trusted, address);
  }

  /** Reads the header of a trusted proxy at `direct`; rejects with a ProxyHeaderError naming what was wrong. */
  async readOrigin(socket: net.Socket, direct: Origin): Promise<Origin> {
    const header = await readProxyHeader(socket, this.o.timeoutMs);
    if (this.o.versions !== 'any' && this.o.versions !== `v${header.version}`) {
      throw new ProxyHeaderError(`PROXY protocol v${header.version} header, but PROXY_PROTOCOL=${this.o.versions}`);
    }
    return { peer: header.source ?? direct.peer, via: direct.peer.address };
  }
}
