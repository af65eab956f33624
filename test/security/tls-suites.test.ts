/*
 * Finding 8, TLS: TLS 1.2 accepted static-RSA key exchange and CBC-SHA1 suites. The default is now Mozilla's
 * "intermediate" profile without DHE: ECDHE with AEAD suites only; TLS_CIPHERS still overrides.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { describe, expect, it } from 'vitest';
import { secureClient, RawFtpClient } from '../support/raw-client.js';
import { withServer } from '../support/server.js';

/** AUTH TLS with the client limited to `ciphers` over TLS 1.2: the suite agreed, or the handshake's failure. */
async function negotiate(port: number, ciphers: string): Promise<string> {
  const c = await RawFtpClient.connect(port);
  try {
    await c.read();
    await c.upgrade({ maxVersion: 'TLSv1.2', ciphers });
    return (c.socket as tls.TLSSocket).getCipher().name;
  } catch {
    return 'refused';
  } finally {
    c.close();
  }
}

describe('TLS 1.2 cipher suites', () => {
  it('with an RSA certificate: refuses static RSA and CBC suites, agrees on ECDHE with AEAD', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-rsa-'));
    try {
      const pems = await generate([{ name: 'commonName', value: 'rsa' }], { keySize: 2048, algorithm: 'sha256' });
      await writeFile(path.join(dir, 'tls.crt'), pems.cert);
      await writeFile(path.join(dir, 'tls.key'), pems.private);
      await withServer({ TLS_CERT_PATH: path.join(dir, 'tls.crt'), TLS_KEY_PATH: path.join(dir, 'tls.key') }, async (srv) => {
        expect(await negotiate(srv.port, 'AES128-SHA:AES256-SHA:AES128-GCM-SHA256:AES256-SHA256')).toBe('refused');
        expect(await negotiate(srv.port, 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA256')).toBe('refused');
        expect(await negotiate(srv.port, 'ECDHE-RSA-AES128-GCM-SHA256')).toBe('ECDHE-RSA-AES128-GCM-SHA256');
        expect(await negotiate(srv.port, 'ECDHE-RSA-CHACHA20-POLY1305')).toBe('ECDHE-RSA-CHACHA20-POLY1305');
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with the generated (EC) certificate: refuses CBC, agrees on AEAD; TLS 1.3 unchanged; TLS_CIPHERS overrides', async () => {
    await withServer({}, async (srv) => {
      expect(await negotiate(srv.port, 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384')).toBe('refused');
      expect(await negotiate(srv.port, 'ECDHE-ECDSA-AES256-GCM-SHA384')).toBe('ECDHE-ECDSA-AES256-GCM-SHA384');
      const c = await secureClient(srv.port);
      expect((c.socket as tls.TLSSocket).getProtocol()).toBe('TLSv1.3');
      c.close();
    });
    await withServer({ TLS_CIPHERS: 'ECDHE-ECDSA-AES128-SHA' }, async (srv) => {
      expect(await negotiate(srv.port, 'ECDHE-ECDSA-AES128-SHA')).toBe('ECDHE-ECDSA-AES128-SHA');
    });
  });
});
