/*
 * What a client sees when the object store refuses or cannot be reached (STORAGE_BACKEND=s3): a refusal of the
 * store (wrong credentials) is 550, an unreachable store 451, the session goes on either way, the user's objects
 * stay as they were, and the secret key reaches no log line. And what /readyz says: not ready when the bucket refuses
 * this replica, ready (with a warning) when the store, which every replica shares, cannot be reached.
 */
import { Readable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { describe, expect, it } from 'vitest';
import { afterThisTest } from '../support/fixtures.js';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { freePort } from '../support/ports.js';
import { skipS3 } from '../support/s3.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

const WRONG_SECRET = 'not-the-secret-0123456789abcdef';

/** The server's /readyz on HTTP_PORT `port`. */
async function readyz(port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
}

async function login(srv: RunningServer): Promise<Client> {
  const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
  afterThisTest(() => client.close());
  return client;
}

/** LIST, RETR, STOR, DELE and MKD each get `code`; NOOP still works after them. */
async function expectEveryOperation(client: Client, code: number): Promise<void> {
  await expect(client.list()).rejects.toMatchObject({ code });
  await expect(downloadText(client, 'kept.txt')).rejects.toMatchObject({ code });
  await expect(client.uploadFrom(Readable.from([Buffer.from('new')]), 'new.txt')).rejects.toMatchObject({ code });
  await expect(client.remove('kept.txt')).rejects.toMatchObject({ code });
  await expect(client.send('MKD made')).rejects.toMatchObject({ code });
  expect((await client.send('NOOP')).code).toBe(200);
}

describe.skipIf(skipS3)('S3 errors as FTP replies', () => {
  it('a store that refuses the credentials: 550 for every operation, nothing changed, the secret in no log line', async () => {
    await withServer(
      { S3_SECRET_ACCESS_KEY: WRONG_SECRET },
      async (srv) => {
        await srv.tree.put('kept.txt', 'kept');
        await expectEveryOperation(await login(srv), 550);
        expect(await srv.tree.names()).toEqual(['kept.txt']);
        expect((await srv.tree.read('kept.txt')).toString()).toBe('kept');
        expect(JSON.stringify(srv.logs)).not.toContain(WRONG_SECRET);
      },
      { backend: 's3' },
    );
  }, 600_000);

  it('a store that cannot be reached: 451 for every operation, and the session goes on', async () => {
    const closed = await freePort();
    await withServer(
      { S3_ENDPOINT: `http://127.0.0.1:${closed}` },
      async (srv) => {
        await srv.tree.put('kept.txt', 'kept');
        await expectEveryOperation(await login(srv), 451);
        expect(await srv.tree.names()).toEqual(['kept.txt']);
        expect(srv.logs).toContainEqual(expect.objectContaining({ msg: 'storage refused an operation' }));
        expect(JSON.stringify(srv.logs)).not.toContain(srv.config.storage.s3?.credentials?.secretAccessKey ?? 'unset');
      },
      { backend: 's3' },
    );
  }, 600_000);

  it('/readyz: ready on a bucket that answers; not ready when the bucket is missing or refuses the keys, naming why', async () => {
    for (const [env, expected] of [
      [{}, { status: 200, body: 'ready\n' }],
      [{ S3_BUCKET: 'no-such-bucket-here' }, { status: 503, body: expect.stringMatching(/^not ready: the bucket no-such-bucket-here refused this replica \(S3 HeadBucket: .*404/) }],
      [{ S3_SECRET_ACCESS_KEY: WRONG_SECRET }, { status: 503, body: expect.stringMatching(/refused this replica \(S3 HeadBucket: .*403/) }],
    ] as const) {
      const httpPort = await freePort();
      await withServer(
        { HTTP_PORT: String(httpPort), HTTP_BIND_ADDRESS: '127.0.0.1', ...env },
        async (srv) => {
          expect(await readyz(httpPort)).toEqual(expected);
          expect(JSON.stringify(srv.logs)).not.toContain(WRONG_SECRET);
        },
        { backend: 's3' },
      );
    }
  }, 600_000);

  it('/readyz stays ready while the store cannot be reached (every replica shares it), with one warning a minute', async () => {
    const [httpPort, closed] = [await freePort(), await freePort()];
    await withServer(
      { HTTP_PORT: String(httpPort), HTTP_BIND_ADDRESS: '127.0.0.1', S3_ENDPOINT: `http://127.0.0.1:${closed}` },
      async (srv) => {
        expect(await readyz(httpPort)).toEqual({ status: 200, body: 'ready\n' });
        // Past the probe's 1 s cache: a second probe, and still one warning.
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        expect(await readyz(httpPort)).toEqual({ status: 200, body: 'ready\n' });
        const warnings = srv.logs.filter((l) => l.msg === 'the S3 store is slow or unreachable (readiness unchanged: every replica shares it)');
        expect(warnings).toHaveLength(1);
      },
      { backend: 's3' },
    );
  }, 600_000);
});
