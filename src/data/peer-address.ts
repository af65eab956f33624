import net from 'node:net';

/** "::ffff:10.0.0.1" and "10.0.0.1" are the same client: compare IPv4-mapped addresses as IPv4. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address.toLowerCase();
}

export const sameHost = (a: string, b: string): boolean => normalizeAddress(a) === normalizeAddress(b);

export const isIPv6 = (address: string): boolean => net.isIPv6(normalizeAddress(address));
