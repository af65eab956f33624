/*
 * AUTH_HOOK_URL end to end: a real HTTP hook in this process, the real server, real TLS logins and real files.
 * Each test has its own hook and server, and cleans up after itself (`defer`), so they run concurrently.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { json, oneUser, startHook, type Answer, type Defer } from '../support/auth-hook.js';
import { pemPair } from '../support/certificates.js';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { freePort } from '../support/ports.js';
import { RawFtpClient } from '../support/raw-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

/** The server with the hook as its only user source, answers never cached unless a test says so. */
function withHook<T>(url: string, env: Record<string, string>, use: (srv: RunningServer) => Promise<T>): Promise<T> {
  return withServer({ FTP_USER: '', FTP_PASSWORD: '', AUTH_HOOK_URL: url, AUTH_HOOK_CACHE_SECONDS: '0', ...env }, use);
}

/** The reply to USER/PASS over TLS, from `localAddress`. */
async function loginReply(defer: Defer, srv: RunningServer, user: string, password: string, localAddress?: string): Promise<number> {
  const c = await RawFtpClient.connect(srv.port, { localAddress });
  defer(() => c.close());
  await c.read();
  await c.upgrade();
  return (await c.login(user, password)).code;
}

const refusals = (srv: RunningServer) => srv.logs.filter((l) => l.msg === 'auth hook unavailable: login refused');

describe.concurrent('AUTH_HOOK_URL', () => {
  it('logs in the user the hook accepts, in the home it names, and sends it what the documentation says', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'homes/hooked', permissions: 'rw' }));
    await withHook(hook.url, { AUTH_HOOK_SECRET: 'hook-secret' }, async (srv) => {
      const client = await ftpsLogin(srv.port, 'hooked', 'hook-pass');
      defer(() => client.close());
      await client.uploadFrom(Readable.from([Buffer.from('via the hook')]), 'up.txt');
      expect(await downloadText(client, 'up.txt')).toBe('via the hook');
      expect(await readdir(path.join(srv.root, 'homes/hooked'))).toEqual(['up.txt']);
      expect(hook.requests).toEqual([
        { body: { user: 'hooked', password: 'hook-pass', clientAddress: '127.0.0.1', protocol: 'ftps' }, authorization: 'Bearer hook-secret' },
      ]);
      // The secret and the password reach no log line.
      expect(JSON.stringify(srv.logs)).not.toMatch(/hook-secret|hook-pass/);
    });
  });

  it('tells the hook the fingerprint of the client certificate the connection presented', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'cert', permissions: 'rw' }));
    // A self-signed client certificate is its own CA.
    const client = await pemPair('backup-job');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-hook-ca-'));
    defer(() => rm(dir, { recursive: true, force: true }));
    const caPath = path.join(dir, 'ca.pem');
    await writeFile(caPath, client.cert);
    await withHook(hook.url, { TLS_CLIENT_AUTH: 'optional', TLS_CLIENT_CA_PATH: caPath }, async (srv) => {
      const c = await RawFtpClient.connect(srv.port);
      defer(() => c.close());
      await c.read();
      await c.upgrade({ cert: client.cert, key: client.key });
      expect((await c.login('hooked', 'hook-pass')).code).toBe(230);
      expect(hook.requests.map((r) => r.body.clientCertificate)).toEqual([client.fingerprint256]);
    });
  });

  it('refuses a wrong password (401) and a 403 with 530, and a 404 is an unknown user', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, (req, res) => json(req.body.user === 'blocked' ? 403 : req.body.user === 'hooked' ? 401 : 404, {})(req, res));
    await withHook(hook.url, { LOGIN_MAX_ATTEMPTS: '5' }, async (srv) => {
      expect(await loginReply(defer, srv, 'hooked', 'wrong')).toBe(530);
      expect(await loginReply(defer, srv, 'blocked', 'any')).toBe(530);
      expect(await loginReply(defer, srv, 'stranger', 'any')).toBe(530);
      expect(srv.logs.filter((l) => l.msg === 'login failed').map((l) => l.reason)).toEqual(['wrong-password', 'wrong-password', 'unknown-user']);
      expect(refusals(srv)).toEqual([]);
    });
  });

  it('maps permissions "ro" to a read-only account', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'ro-home', permissions: 'ro' }));
    await withHook(hook.url, {}, async (srv) => {
      const client = await ftpsLogin(srv.port, 'hooked', 'hook-pass');
      defer(() => client.close());
      expect(await client.list()).toEqual([]);
      await expect(client.uploadFrom(Readable.from([Buffer.from('x')]), 'no.txt')).rejects.toMatchObject({ code: 550 });
      await expect(client.ensureDir('sub')).rejects.toMatchObject({ code: 550 });
    });
  });

  it('lets the user in only from allowedCidrs', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'cidr', permissions: 'rw', allowedCidrs: ['127.0.0.2/32', '::1'] }));
    await withHook(hook.url, {}, async (srv) => {
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass', '127.0.0.1')).toBe(530);
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass', '127.0.0.2')).toBe(230);
      expect(srv.logs.filter((l) => l.msg === 'login failed').map((l) => l.reason)).toEqual(['address-not-allowed']);
    });
  });

  it('fails closed when the hook is down: 530, one clear log line, a metric', async ({ onTestFinished: defer }) => {
    const down = `http://127.0.0.1:${await freePort()}/auth`;
    const httpPort = await freePort();
    await withHook(down, { HTTP_PORT: String(httpPort), HTTP_BIND_ADDRESS: '127.0.0.1' }, async (srv) => {
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass')).toBe(530);
      expect(refusals(srv)).toEqual([expect.objectContaining({ level: 50, user: 'hooked', problem: 'request failed (ECONNREFUSED)' })]);
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      expect(metrics).toContain('ftps_logins_total{result="source_unavailable"} 1');
    });
  });

  it('refuses a login when the hook does not answer within AUTH_HOOK_TIMEOUT_SECONDS', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, () => undefined);
    await withHook(hook.url, { AUTH_HOOK_TIMEOUT_SECONDS: '1' }, async (srv) => {
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass')).toBe(530);
      expect(refusals(srv)).toEqual([expect.objectContaining({ problem: 'no answer within 1 s' })]);
    });
  });

  it('refuses on a 5xx, a redirect, garbage, a wrong shape and an oversized answer, without following anything', async ({ onTestFinished: defer }) => {
    const followed: string[] = [];
    const answers: Record<string, Answer> = {
      e500: json(500, { home: 'x', permissions: 'rw' }),
      redirect: (_req, res) => res.writeHead(307, { location: '/elsewhere' }).end(),
      garbage: (_req, res) => res.writeHead(200).end('<html>not json'),
      shape: json(200, { home: 'x', permissions: 'admin' }),
      huge: json(200, { home: 'x', permissions: 'rw', padding: 'x'.repeat(200_000) }),
    };
    const hook = await startHook(defer, (req, res) => {
      const answer = answers[String(req.body.user)];
      if (answer) answer(req, res);
      else followed.push(String(req.body.user));
    });
    await withHook(hook.url, { LOGIN_MAX_ATTEMPTS: '10', LOGIN_BAN_THRESHOLD: '100' }, async (srv) => {
      for (const user of Object.keys(answers)) expect(await loginReply(defer, srv, user, 'pw')).toBe(530);
      expect(refusals(srv).map((l) => l.problem)).toEqual([
        'answered HTTP 500',
        'answered HTTP 307',
        'answered 200 with a body that is not JSON',
        'answered 200 with invalid fields: permissions',
        'answered with more than 65536 bytes',
      ]);
      expect(hook.requests).toHaveLength(5);
      expect(followed).toEqual([]);
      expect(await readdir(srv.root)).toEqual([]);
    });
  });

  it('refuses homes outside FTP_ROOT and creates nothing', async ({ onTestFinished: defer }) => {
    const homes: Record<string, unknown> = { up: '../outside', abs: '/etc', nested: 'a/../../b', empty: '', nul: 'a\u0000b' };
    const hook = await startHook(defer, (req, res) => json(200, { home: homes[String(req.body.user)], permissions: 'rw' })(req, res));
    await withHook(hook.url, { LOGIN_MAX_ATTEMPTS: '10', LOGIN_BAN_THRESHOLD: '100' }, async (srv) => {
      for (const user of Object.keys(homes)) expect(await loginReply(defer, srv, user, 'pw')).toBe(530);
      expect(refusals(srv)).toHaveLength(5);
      expect(refusals(srv)[0]!.problem).toMatch(/must be a relative path inside FTP_ROOT/);
      expect(await readdir(srv.root)).toEqual([]);
      await expect(stat(path.join(srv.root, '..', 'outside'))).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });

  it('asks the hook once for two logins within AUTH_HOOK_CACHE_SECONDS, and for every failed one', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'cached', permissions: 'rw' }));
    await withHook(hook.url, { AUTH_HOOK_CACHE_SECONDS: '60', LOGIN_MAX_ATTEMPTS: '10' }, async (srv) => {
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass')).toBe(230);
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass')).toBe(230);
      expect(hook.requests).toHaveLength(1);
      // A wrong password, twice: not answered from the cache, and its refusal is not cached either.
      expect(await loginReply(defer, srv, 'hooked', 'wrong')).toBe(530);
      expect(await loginReply(defer, srv, 'hooked', 'wrong')).toBe(530);
      // Another client address is another key.
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass', '127.0.0.3')).toBe(230);
      expect(hook.requests.map((r) => r.body.password)).toEqual(['hook-pass', 'wrong', 'wrong', 'hook-pass']);
    });
  });

  it('bans the address after repeated refusals, and then stops asking the hook', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'banned', permissions: 'rw' }));
    await withHook(hook.url, { LOGIN_BAN_THRESHOLD: '3', LOGIN_MAX_ATTEMPTS: '10' }, async (srv) => {
      const c = await RawFtpClient.connect(srv.port);
      defer(() => c.close());
      await c.read();
      await c.upgrade();
      for (const guess of ['guess-1', 'guess-2', 'guess-3']) expect((await c.login('hooked', guess)).code).toBe(530);
      await expect(c.read()).rejects.toThrow('connection closed');
      expect(srv.logs.filter((l) => l.msg === 'address banned after repeated login failures')).toHaveLength(1);
      const other = await RawFtpClient.connect(srv.port);
      defer(() => other.close());
      expect((await other.read()).code).toBe(421);
      expect(hook.requests).toHaveLength(3);
    });
  });

  it('comes after the local users: their names never reach the hook, unknown names do', async ({ onTestFinished: defer }) => {
    const hook = await startHook(defer, oneUser({ home: 'after', permissions: 'rw' }));
    // startServer's FTP_USER stays: alice is local.
    await withServer({ AUTH_HOOK_URL: hook.url, LOGIN_MAX_ATTEMPTS: '10' }, async (srv) => {
      expect(await loginReply(defer, srv, TEST_USER, TEST_PASSWORD)).toBe(230);
      expect(await loginReply(defer, srv, TEST_USER, 'wrong')).toBe(530);
      expect(hook.requests).toEqual([]);
      expect(await loginReply(defer, srv, 'hooked', 'hook-pass')).toBe(230);
      expect(hook.requests.map((r) => r.body.user)).toEqual(['hooked']);
    });
  });
});
