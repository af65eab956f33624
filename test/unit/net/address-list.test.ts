import { describe, expect, it } from 'vitest';
import { blockListOf, formatRange, isListed, parseAddressRange } from '../../../src/net/address-list.js';

describe('parseAddressRange', () => {
  it('reads addresses and CIDRs of both families', () => {
    expect(parseAddressRange('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseAddressRange(' fd00::7 ')).toEqual({ address: 'fd00::7', prefix: undefined, family: 'ipv6' });
    expect(formatRange(parseAddressRange('2001:db8::/32')!)).toBe('2001:db8::/32');
  });

  it('refuses what is not an address or CIDR', () => {
    for (const bad of ['', 'host.example', '10.0.0.0/33', 'fd00::/129', '10.0.0.1/8/1', '10.0.0.256', '10.0.0.0/x']) {
      expect(parseAddressRange(bad), bad).toBeUndefined();
    }
  });
});

describe('isListed', () => {
  it('matches single addresses and subnets of their own family only', () => {
    const list = blockListOf([parseAddressRange('127.0.0.0/8')!, parseAddressRange('fd00::7')!]);
    expect(isListed(list, '127.0.0.2')).toBe(true);
    expect(isListed(list, 'fd00::7')).toBe(true);
    expect(isListed(list, '128.0.0.1')).toBe(false);
    expect(isListed(list, 'fd00::8')).toBe(false);
    expect(isListed(list, 'not an address')).toBe(false);
  });
});
