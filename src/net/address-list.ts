import net from 'node:net';

/** One IPv4/IPv6 address or CIDR, e.g. "10.0.0.0/8", "fd00::/8", "192.0.2.7". */
export interface AddressRange {
  readonly address: string;
  /** undefined: the single address. */
  readonly prefix: number | undefined;
  readonly family: 'ipv4' | 'ipv6';
}

/** Parses one address or CIDR; undefined when it is neither. */
export function parseAddressRange(text: string): AddressRange | undefined {
  const [address = '', prefix, extra] = text.trim().split('/');
  const version = net.isIP(address);
  const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128));
  if (version === 0 || extra !== undefined || !prefixOk) return undefined;
  return { address, prefix: prefix === undefined ? undefined : Number(prefix), family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function blockListOf(ranges: readonly AddressRange[]): net.BlockList {
  const list = new net.BlockList();
  for (const { address, prefix, family } of ranges) {
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return list;
}

/** Whether `address` (IPv4-mapped IPv6 already shortened, as sessions report it) is on the list. */
export function isListed(list: net.BlockList, address: string): boolean {
  const version = net.isIP(address);
  return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
}

export const formatRange = (r: AddressRange): string => (r.prefix === undefined ? r.address : `${r.address}/${r.prefix}`);
