import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNames, loggedIn } from '../support/raw-client.js';
import { startServer, type RunningServer } from '../support/server.js';
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
    const c = await loggedIn(srv.port);
    expect(await listNames(c)).toEqual(['hello.txt', '']);
    c.close();
  });
});
