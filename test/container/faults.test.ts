/*
 * The built image under faults a process cannot prevent: a full disk (ENOSPC on a tmpfs /data), `docker stop`
 * and `docker kill` in the middle of an upload. What must survive: the previous content of the file being
 * replaced, byte for byte, and a tree without visible debris. Real containers, real files, real TLS clients.
 *
 * Passive ports 30100–30109 (mapped 1:1), so that this file can run beside image.test.ts (30000–30009).
 */
import { randomBytes } from 'node:crypto';
import { chown, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { connectData, RawFtpClient, type FtpReply } from '../support/raw-client.js';
import { ContainerFixture, HardenedContainer, IMAGE, logsOf, passivePortBindings, run, sha256, skipContainers, testImage } from './support.js';

const PASV_MIN = 30100;
const PASV_MAX = 30109;
const USER = 'tester';
const PASSWORD = 'fault injection 456';
const MiB = 1024 * 1024;
const TEMP_NAME = /^\.ftps-upload-[0-9a-f]{16}\.tmp$/;

const fixture = new ContainerFixture();

/** /data is either a bind-mounted host directory or a tmpfs of `tmpfsSize` owned by uid 1000. */
type DataVolume = { readonly bind: string } | { readonly tmpfsSize: string };

async function startGateway(data: DataVolume, env: Record<string, string> = {}): Promise<StartedTestContainer> {
  let container = new HardenedContainer(IMAGE)
    .withEnvironment({
      PASV_ADDRESS: '127.0.0.1',
      PASV_MIN_PORT: String(PASV_MIN),
      PASV_MAX_PORT: String(PASV_MAX),
      FTP_USER: USER,
      FTP_PASSWORD: PASSWORD,
      ...env,
    })
    .withExposedPorts(21, ...passivePortBindings(PASV_MIN, PASV_MAX));
  if ('bind' in data) {
    container = container.withBindMounts([{ source: data.bind, target: '/data', mode: 'rw' }]);
  } else {
    container = container.withTmpFs({ '/data': `rw,size=${data.tmpfsSize},uid=1000,gid=1000,mode=0755` });
  }
  const gateway = await container.start();
  return fixture.track(gateway);
}

/** Containers answer more slowly than the in-process server: a longer client timeout. */
const login = (gateway: StartedTestContainer): Promise<Client> => ftpsLogin(gateway.getMappedPort(21), USER, PASSWORD, 20_000);

async function download(client: Client, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await client.downloadTo(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        done();
      },
    }),
    name,
  );
  return Buffer.concat(chunks);
}

/** An upload that never ends on its own: 64 KiB every 20 ms; `sent` counts what the client has produced. */
function endlessUpload(client: Client, name: string): { progress: () => number; result: Promise<unknown> } {
  let sent = 0;
  const source = new Readable({
    read() {
      setTimeout(() => {
        sent += 65_536;
        this.push(randomBytes(65_536));
      }, 20);
    },
  });
  return { progress: () => sent, result: client.uploadFrom(source, name).catch((err: unknown) => err) };
}

/** Names in a listing of the root by LIST, NLST and MLSD (basic-ftp uses MLSD when offered; NLST by hand). */
async function everyListing(gateway: StartedTestContainer): Promise<Record<string, string[]>> {
  const client = await login(gateway);
  try {
    const mlsd = (await client.list()).map((f) => f.name).sort();
    const nlst = await rawListing(gateway, 'NLST');
    const list = (await rawListing(gateway, 'LIST')).map((l) => l.split(/\s+/).at(-1)!);
    return { MLSD: mlsd, NLST: nlst.sort(), LIST: list.sort() };
  } finally {
    client.close();
  }
}

/** A listing command over a raw TLS session (PROT P, data session resumed), its lines. */
async function rawListing(gateway: StartedTestContainer, command: string): Promise<string[]> {
  const c = await RawFtpClient.connect(gateway.getMappedPort(21));
  try {
    expect((await c.read()).code).toBe(220);
    expect((await c.upgrade()).code).toBe(234);
    expect((await c.login(USER, PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
    const data = await c.openPassive({ tls: true });
    const text = new Promise<string>((resolve) => {
      let t = '';
      data.on('data', (chunk: Buffer) => (t += chunk.toString('utf8')));
      data.once('close', () => resolve(t));
    });
    expect((await c.send(command)).code).toBe(150);
    const lines = (await text).split('\r\n').filter(Boolean);
    expect((await c.read()).code).toBe(226);
    return lines;
  } finally {
    c.close();
  }
}

describe.skipIf(skipContainers)('container faults', () => {
  beforeAll(() => testImage('gateway'), 600_000);
  afterEach(() => fixture.removeContainers());
  afterAll(() => fixture.cleanup());

  it('ENOSPC: a 20 MiB upload over an existing file on an 8 MiB /data gets 452, the old file and the free space survive', async () => {
    const gateway = await startGateway({ tmpfsSize: '8m' });
    const client = await login(gateway);
    const kept = randomBytes(MiB);
    try {
      await client.uploadFrom(Readable.from([kept]), 'keep.bin');
      expect(sha256(await download(client, 'keep.bin'))).toBe(sha256(kept));
    } finally {
      client.close();
    }

    // The replacement: 20 MiB into the 7 MiB left, over a raw TLS session to see the exact final reply.
    const c = await RawFtpClient.connect(gateway.getMappedPort(21));
    let final: FtpReply | undefined;
    try {
      expect((await c.read()).code).toBe(220);
      expect((await c.upgrade()).code).toBe(234);
      expect((await c.login(USER, PASSWORD)).code).toBe(230);
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT P')).code).toBe(200);
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]);
      const data = await connectData(port, { tls: true, session: c.tlsSession });
      data.on('error', () => undefined);
      expect((await c.send('STOR keep.bin')).code).toBe(150);
      let sent = 0;
      let broken = false;
      data.once('close', () => (broken = true));
      while (sent < 20 * MiB && !broken) {
        const ok = await new Promise<boolean>((resolve) => data.write(randomBytes(256 * 1024), (err) => resolve(!err)));
        if (!ok) break;
        sent += 256 * 1024;
      }
      if (!broken) data.end();
      final = await c.read(30_000);
      data.destroy();
      // The server gave up before the client had sent everything: it did not read 20 MiB into nowhere.
      expect(sent).toBeLessThan(20 * MiB);
    } finally {
      c.close();
    }
    expect(final?.code, final?.text).toBe(452);
    expect(final?.text).toMatch(/^452 Insufficient storage space/);

    // No temporary file left, the old content intact, and the space it took is free again: a new upload fits.
    const ls = await gateway.exec(['ls', '-a', '/data']);
    expect(ls.output.split('\n').filter(Boolean).sort()).toEqual(['.', '..', 'keep.bin']);
    const after = await login(gateway);
    try {
      expect(sha256(await download(after, 'keep.bin'))).toBe(sha256(kept));
      const fits = randomBytes(6 * MiB);
      await after.uploadFrom(Readable.from([fits]), 'fits.bin');
      expect(sha256(await download(after, 'fits.bin'))).toBe(sha256(fits));
      expect((await after.list()).map((f) => f.name).sort()).toEqual(['fits.bin', 'keep.bin']);
    } finally {
      after.close();
    }
    const logs = await logsOf(gateway);
    expect(logs).not.toMatch(/"level":(50|60)/);
  }, 180_000);

  for (const how of ['stop', 'kill'] as const) {
    it(`docker ${how} mid-upload on a bind-mounted directory: a new container on it serves the old content byte for byte`, async () => {
      const data = await fixture.dataDir();
      const original = randomBytes(512 * 1024 + 7);
      await writeFile(path.join(data, 'target.bin'), original);
      await chown(path.join(data, 'target.bin'), 1000, 1000);

      const first = await startGateway({ bind: data }, { SHUTDOWN_GRACE_SECONDS: '1' });
      const client = await login(first);
      const upload = endlessUpload(client, 'target.bin');
      // Mid-upload for sure: more than 1 MiB sent, and the temporary file exists beside the target.
      await expect.poll(upload.progress, { timeout: 20_000 }).toBeGreaterThan(MiB);
      await expect.poll(async () => (await readdir(data)).filter((n) => TEMP_NAME.test(n)).length, { timeout: 10_000 }).toBe(1);

      if (how === 'stop') {
        // SIGTERM, then SIGKILL after 10 s (testcontainers' timeout is in milliseconds).
        await first.stop({ remove: false, timeout: 10_000 });
      } else {
        await run('docker', ['kill', first.getId()]);
      }
      expect(await upload.result).toBeInstanceOf(Error);
      client.close();
      const logs = await logsOf(first);
      // The next container needs the same host ports.
      await fixture.removeContainers();

      const entries = await readdir(data);
      expect(sha256(await readFile(path.join(data, 'target.bin'))), logs).toBe(sha256(original));
      if (how === 'stop') {
        // SIGTERM: the cut transfer removed its temporary file before the process exited.
        expect(entries, logs).toEqual(['target.bin']);
        expect(logs).toContain('"signal":"SIGTERM"');
      } else {
        // SIGKILL: nobody is left to clean up, so the partial upload stays on disk as a hidden temporary file.
        const leftovers = entries.filter((n) => n !== 'target.bin');
        console.log(`after docker kill mid-upload, left on disk: ${leftovers.join(', ') || 'nothing'}`);
        expect(leftovers).toHaveLength(1);
        expect(leftovers[0]).toMatch(TEMP_NAME);
      }

      // A new container on the same directory: the old content, byte for byte, and no temporary file in sight.
      const second = await startGateway({ bind: data });
      const reader = await login(second);
      try {
        expect(sha256(await download(reader, 'target.bin'))).toBe(sha256(original));
      } finally {
        reader.close();
      }
      expect(await everyListing(second)).toEqual({ MLSD: ['target.bin'], NLST: ['target.bin'], LIST: ['target.bin'] });
      // The leftover of a kill does not stop the file from being replaced later.
      const writer = await login(second);
      try {
        const replacement = randomBytes(100_000);
        await writer.uploadFrom(Readable.from([replacement]), 'target.bin');
        expect(sha256(await download(writer, 'target.bin'))).toBe(sha256(replacement));
      } finally {
        writer.close();
      }
    }, 180_000);
  }
});
