/* parseEprtArgument (src/commands/data-setup.ts): RFC 2428 §2 EPRT |af|address|port|. */
import { describe, expect, it } from 'vitest';
import { parseEprtArgument } from '../../../src/commands/data-setup.js';

describe('parseEprtArgument', () => {
  it.each<[string, string, ReturnType<typeof parseEprtArgument>]>([
    ['IPv4', '|1|132.235.1.2|6275|', { address: '132.235.1.2', port: 6275 }],
    ['IPv6', '|2|1080::8:800:200C:417A|5282|', { address: '1080::8:800:200C:417A', port: 5282 }],
    ['IPv6 loopback', '|2|::1|5282|', { address: '::1', port: 5282 }],
    ['IPv4-mapped IPv6', '|2|::ffff:127.0.0.1|5282|', { address: '::ffff:127.0.0.1', port: 5282 }],
    ['another printable delimiter', '!1!127.0.0.1!2000!', { address: '127.0.0.1', port: 2000 }],
    ['port 1', '|1|127.0.0.1|1|', { address: '127.0.0.1', port: 1 }],
    ['port 65535', '|1|127.0.0.1|65535|', { address: '127.0.0.1', port: 65535 }],
    ['unknown address family 3', '|3|x|2000|', 'unsupported-family'],
    ['port 0', '|1|127.0.0.1|0|', undefined],
    ['port 65536', '|1|127.0.0.1|65536|', undefined],
    ['a six-digit port', '|1|127.0.0.1|000080|', undefined],
    ['a negative port', '|1|127.0.0.1|-1|', undefined],
    ['a port with a sign', '|1|127.0.0.1|+80|', undefined],
    ['no port', '|1|127.0.0.1||', undefined],
    ['an IPv6 address with af 1', '|1|::1|2000|', undefined],
    ['an IPv4 address with af 2', '|2|127.0.0.1|2000|', undefined],
    ['a host name', '|1|localhost|2000|', undefined],
    ['an IPv4 address out of range', '|1|256.0.0.1|2000|', undefined],
    ['an IPv4 address with leading zeros', '|1|127.000.000.001|2000|', undefined],
    ['a short IPv4 address', '|1|127.1|2000|', undefined],
    ['a missing final delimiter', '|1|127.0.0.1|2000', undefined],
    ['an extra field', '|1|127.0.0.1|2000|x|', undefined],
    ['text after the final delimiter', '|1|127.0.0.1|2000|x', undefined],
    ['mixed delimiters', '|1!127.0.0.1|2000|', undefined],
    ['a space as delimiter', ' 1 127.0.0.1 2000 ', undefined],
    ['a non-ASCII delimiter', '§1§127.0.0.1§2000§', undefined],
    ['empty', '', undefined],
    ['PORT syntax', '127,0,0,1,7,208', undefined],
  ])('%s: %j', (_label, arg, expected) => {
    expect(parseEprtArgument(arg)).toEqual(expected);
  });
});
