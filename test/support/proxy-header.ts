import net from 'node:net';

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/**
 * A PROXY protocol header as a load balancer writes it (HAProxy's proxy-protocol.txt), for a client at
 * `client`:`port` relayed to the server at 127.0.0.1:21.
 */
export function proxyHeader(version: 1 | 2, client: string, port = 50_000): Buffer {
  if (!net.isIPv4(client)) throw new Error('proxyHeader builds TCP over IPv4 headers only');
  if (version === 1) return Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${port} 21\r\n`, 'latin1');
  const body = Buffer.alloc(12);
  Buffer.from(client.split('.').map(Number)).copy(body, 0);
  Buffer.from([127, 0, 0, 1]).copy(body, 4);
  body.writeUInt16BE(port, 8);
  body.writeUInt16BE(21, 10);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, body.length]), body]);
}

/** v2 LOCAL: the proxy's own connection, as HAProxy's health checks with send-proxy-v2 send it. */
export const PROXY_V2_LOCAL = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
