import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../src/config/config.js';
import { envSchema } from '../../../src/config/schema.js';
import { PasvAddresses, type Resolve4 } from '../../../src/data/pasv-address.js';
import { captureLog } from '../../support/fixtures.js';

function setup(env: Record<string, string>) {
  return { config: envSchema.parse(env), ...captureLog() };
}

/** A name server whose answer the test changes: what dynamic DNS does between two resolutions. */
function changingDns(first: string) {
  const dns = { answer: first as string | Error, asked: 0 };
  const resolve: Resolve4 = async () => {
    dns.asked++;
    if (dns.answer instanceof Error) throw dns.answer;
    return dns.answer;
  };
  return { dns, resolve };
}

describe('PasvAddresses', () => {
  it('picks the override of the client network, first match first, else PASV_ADDRESS', async () => {
    const { config, log } = setup({
      PASV_ADDRESS: '203.0.113.9',
      PASV_ADDRESS_OVERRIDES: '10.1.0.0/16=10.1.0.5;10.0.0.0/8=10.0.0.5;fd00::/8=192.168.7.7',
    });
    const pasv = await PasvAddresses.create(config, log);
    expect(pasv.addressFor('10.1.2.3')).toBe('10.1.0.5');
    expect(pasv.addressFor('10.200.0.1')).toBe('10.0.0.5');
    expect(pasv.addressFor('fd00::42')).toBe('192.168.7.7');
    expect(pasv.addressFor('198.51.100.1')).toBe('203.0.113.9');
    pasv.close();
  });

  it('leaves the choice to the control connection when nothing matches and PASV_ADDRESS is unset', async () => {
    const { config, log } = setup({ PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5' });
    const pasv = await PasvAddresses.create(config, log);
    expect(pasv.addressFor('192.0.2.1')).toBeUndefined();
    pasv.close();
  });

  it('refuses to start when the host name does not resolve', async () => {
    const { config, log } = setup({ PASV_ADDRESS: 'ftp.example.invalid' });
    const { dns, resolve } = changingDns('');
    dns.answer = Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    await expect(PasvAddresses.create(config, log, resolve)).rejects.toThrow(ConfigError);
  });

  it('follows a host name to its new address and keeps the last one while DNS fails', async () => {
    const { config, log, lines } = setup({ PASV_ADDRESS: 'ftp.example.net', PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5' });
    const { dns, resolve } = changingDns('198.51.100.1');
    const pasv = await PasvAddresses.create(config, log, resolve);
    expect(pasv.addressFor('192.0.2.1')).toBe('198.51.100.1');

    dns.answer = '198.51.100.2';
    await pasv.refresh();
    expect(pasv.addressFor('192.0.2.1')).toBe('198.51.100.2');
    expect(pasv.addressFor('10.0.0.1')).toBe('10.0.0.5');

    dns.answer = Object.assign(new Error('queryA ETIMEOUT'), { code: 'ETIMEOUT' });
    await pasv.refresh();
    await pasv.refresh();
    expect(pasv.addressFor('192.0.2.1')).toBe('198.51.100.2');
    // One warning for the whole failure streak.
    expect(lines.filter((l) => l.msg === 'PASV_ADDRESS cannot be resolved, keeping the last address')).toHaveLength(1);

    dns.answer = '198.51.100.3';
    await pasv.refresh();
    expect(pasv.addressFor('192.0.2.1')).toBe('198.51.100.3');
    expect(lines.map((l) => l.msg)).toContain('PASV_ADDRESS resolves again');
    pasv.close();
  });

  it('resolves again every PASV_ADDRESS_RESOLVE_SECONDS, and only for a host name', async () => {
    const { config, log } = setup({ PASV_ADDRESS: 'ftp.example.net', PASV_ADDRESS_RESOLVE_SECONDS: '1' });
    const { dns, resolve } = changingDns('198.51.100.1');
    const pasv = await PasvAddresses.create(config, log, resolve);
    dns.answer = '198.51.100.2';
    await vi.waitFor(() => expect(pasv.addressFor('192.0.2.1')).toBe('198.51.100.2'), { timeout: 5000 });
    expect(dns.asked).toBe(2);
    pasv.close();

    const fixed = setup({ PASV_ADDRESS: '192.0.2.50', PASV_ADDRESS_RESOLVE_SECONDS: '1' });
    const counting = changingDns('unused');
    const literal = await PasvAddresses.create(fixed.config, fixed.log, counting.resolve);
    await new Promise((r) => setTimeout(r, 1100));
    expect(counting.dns.asked).toBe(0);
    literal.close();
  });
});
