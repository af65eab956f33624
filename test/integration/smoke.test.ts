import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, RawFtpClient } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

let srv: RunningServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(() => srv.stop());

describe('smoke', () => {
  it('logs in over TLS and lists with PROT P resuming the session', async () => {
    await writeFile(path.join(srv.root, 'hello.txt'), 'hi');
    const c = await RawFtpClient.connect(srv.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.upgrade()).code).toBe(234);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
    const data = await c.openPassive({ tls: true });
    expect((await c.send('NLST')).code).toBe(150);
    expect((await readAll(data)).toString()).toBe('hello.txt\r\n');
    expect((await c.read()).code).toBe(226);
    c.close();
  });
});
