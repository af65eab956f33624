import net from 'node:net';

/**
 * One spelling per client, as sessions compare and log it: "::ffff:10.0.0.1" and "10.0.0.1" are the same client
 * (IPv4-mapped addresses become IPv4), and IPv6 is written as RFC 5952 has it (a PROXY header may spell it out).
 */
export function normalizeAddress(address: string): string {
  const text = net.isIPv6(address) ? new net.SocketAddress({ address, family: 'ipv6' }).address : address;
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text)?.[1] ?? text.toLowerCase();
}

export const sameHost = (a: string, b: string): boolean => normalizeAddress(a) === normalizeAddress(b);

export const isIPv6 = (address: string): boolean => net.isIPv6(normalizeAddress(address));
