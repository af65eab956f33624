/*
 * Finding 5 and the log-flood part of finding 8: ten anonymous sessions from one address held the whole default
 * 10-port passive range by re-sending PASV, and every foreign connection to a passive port wrote a warning.
 * Now a session holds one pending passive listener, an address at most PASV_MAX_PER_IP (a quarter of the range
 * by default), an exhausted pool is counted and logged, and repeated warnings are summed up per address per minute.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { afterThisTest } from '../support/fixtures.js';
import { freePort } from '../support/ports.js';
import { RawFtpClient } from '../support/raw-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

/** A logged-in protected session from `localAddress` (anything in 127.0.0.0/8 reaches the server). */
async function sessionFrom(srv: RunningServer, localAddress: string): Promise<RawFtpClient> {
  const c = await RawFtpClient.connect(srv.port, { localAddress });
  afterThisTest(() => c.close());
  expect((await c.read()).code).toBe(220);
  expect((await c.upgrade()).code).toBe(234);
  expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
  expect((await c.send('PBSZ 0')).code).toBe(200);
  expect((await c.send('PROT P')).code).toBe(200);
  return c;
}

/** The server with a range of the default size, 10 ports (PASV_MAX_PER_IP then defaults to 2). */
const withTenPorts = (env: Record<string, string>, use: (srv: RunningServer) => Promise<void>) => withServer(env, use, { pasvPorts: 10 });

const epsvCode = async (c: RawFtpClient): Promise<number> => (await c.send('EPSV')).code;

describe('passive port starvation', () => {
  it('one address cannot hold the range: its sessions get 2 of 10 ports, another address still gets one', async () => {
    await withTenPorts({}, async (srv) => {
      const crowd = await Promise.all(Array.from({ length: 10 }, () => sessionFrom(srv, '127.0.0.1')));
      const codes: number[] = [];
      for (let round = 0; round < 3; round++) for (const c of crowd) codes.push(await epsvCode(c));
      expect(srv.server.stats.passivePortsInUse).toBe(2);
      expect(codes.filter((code) => code === 229).length).toBeGreaterThan(0);
      expect(codes.filter((code) => code === 425).length).toBeGreaterThan(20);
      const other = await sessionFrom(srv, '127.0.0.2');
      expect(await epsvCode(other)).toBe(229);
    });
  });

  it('a session re-sending PASV holds one port: each new one frees the last', async () => {
    await withTenPorts({}, async (srv) => {
      const c = await sessionFrom(srv, '127.0.0.1');
      for (let i = 0; i < 100; i++) expect((await c.send('PASV')).code).toBe(227);
      expect(srv.server.stats.passivePortsInUse).toBe(1);
    });
  });

  it('an exhausted pool answers 425, counts the refusal and logs it once per window', async () => {
    const httpPort = await freePort();
    await withTenPorts({ HTTP_PORT: String(httpPort) }, async (srv) => {
      for (let host = 2; host <= 6; host++) {
        const c = await sessionFrom(srv, `127.0.0.${host}`);
        const d = await sessionFrom(srv, `127.0.0.${host}`);
        expect([await epsvCode(c), await epsvCode(d)]).toEqual([229, 229]);
      }
      const late = await sessionFrom(srv, '127.0.0.7');
      for (let i = 0; i < 20; i++) expect(await epsvCode(late)).toBe(425);
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      expect(metrics).toMatch(/ftps_passive_refusals_total\{reason="exhausted"\} 20/);
      expect(srv.logs.filter((l) => l.msg === 'no passive port for a client')).toHaveLength(1);
    });
  });
});

describe('log flood through foreign data connections', () => {
  it('200 connections from a foreign address to a passive port: refused, one warning', async () => {
    await withServer({}, async (srv) => {
      const victim = await sessionFrom(srv, '127.0.0.1');
      const r = await victim.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(r.text)?.[1]);
      for (let i = 0; i < 200; i++) {
        await new Promise<void>((resolve) => {
          const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
          s.on('error', () => resolve());
          s.on('close', () => resolve());
        });
      }
      const warnings = srv.logs.filter((l) => l.msg === 'refused data connection from a foreign address');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ from: '127.0.0.9', port });
      // The victim's own connection still works.
      expect((await victim.send('NOOP')).code).toBe(200);
    });
  });
});
