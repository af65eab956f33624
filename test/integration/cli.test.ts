import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePasswordHash, verifyPassword } from '../../src/auth/password-hash.js';
import { VARIABLE_NAMES } from '../../src/config/variables.js';
import { freePort } from '../support/ports.js';
import { RawFtpClient } from '../support/raw-client.js';

// The built entry point, as the container runs it (npm test builds first).
const MAIN = path.resolve('dist/main.js');
const run = promisify(execFile);


/** `node dist/main.js hash-password` with `input` on standard input. */
function hashPasswordProcess(input: string): Promise<{ stdout: string; stderr: string }> {
  const running = run(process.execPath, [MAIN, 'hash-password'], { env: { PATH: process.env.PATH ?? '' } });
  running.child.stdin!.end(input);
  return running;
}

async function baseEnv(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-cli-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return {
    PATH: process.env.PATH ?? '',
    FTP_ROOT: path.join(dir, 'data'),
    FTPS_BIND_ADDRESS: '127.0.0.1',
    FTPS_PORT: String(await freePort()),
    PASV_MIN_PORT: '39900',
    PASV_MAX_PORT: '39909',
    // The default 8080 would collide between servers; the test of the HTTP healthcheck sets a free port.
    HTTP_PORT: '0',
    // Absent certificate files: the server generates a self-signed certificate.
    TLS_CERT_PATH: '',
    STATE_DIR: path.join(dir, 'state'),
    ...extra,
  };
}

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Starts `node dist/main.js` and resolves once it logs that it listens. */
async function startProcess(env: Record<string, string>): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [MAIN], { env, cwd: os.tmpdir() });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (output.includes('"msg":"listening"')) resolve();
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)));
  });
  return { child, output: () => output };
}

describe('command line', () => {
  it('check-config names every bad variable, exits 1, and prints no stack trace', async () => {
    const env = await baseEnv({ FTPS_IMPLICIT_SSL: 'maybe', PASV_MIN_PORT: '70000', FTP_USER: 'bob' });
    const failure = await run(process.execPath, [MAIN, 'check-config'], { env }).catch((e: { code: number; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 1 });
    const stderr = (failure as { stderr: string }).stderr;
    expect(stderr).toContain('FTPS_IMPLICIT_SSL: expected true/false/1/0/yes/no, got "maybe"');
    expect(stderr).toContain('PASV_MIN_PORT');
    expect(stderr).toContain('FTP_PASSWORD: required when FTP_USER is set');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('check-config prints the resolved configuration with secrets redacted', async () => {
    const env = await baseEnv({ FTP_USER: 'bob', FTP_PASSWORD: 's3cret-value' });
    const { stdout } = await run(process.execPath, [MAIN, 'check-config'], { env });
    expect(stdout).toContain('FTP_USER=bob');
    expect(stdout).toContain('FTP_PASSWORD=[redacted]');
    expect(stdout).not.toContain('s3cret-value');
  });

  it('serve refuses an invalid configuration with exit code 1', async () => {
    const env = await baseEnv({ FTPS_IMPLICIT_SSL: 'maybe' });
    const failure = await run(process.execPath, [MAIN], { env }).catch((e: { code: number; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain('FTPS_IMPLICIT_SSL');
  });

  it('without a configured user, creates "ftp" with a random password shown once, which logs in', async () => {
    const env = await baseEnv({ FTPS_REQUIRE_TLS: 'true' });
    const { output } = await startProcess(env);
    const password = /^Generated password for FTP user "ftp": (\S+)$/m.exec(output())?.[1];
    expect(password).toMatch(/^[\w-]{16}$/);
    const client = await RawFtpClient.connect(Number(env.FTPS_PORT));
    cleanups.push(() => client.close());
    await client.read();
    await client.upgrade();
    expect((await client.login('ftp', password!)).code).toBe(230);
  });

  it.each([
    ['explicit', {}],
    ['implicit', { FTPS_IMPLICIT_SSL: 'true' }],
  ])('healthcheck reports a serving %s-mode server healthy and a stopped one unhealthy', async (_mode, extra) => {
    const env = await baseEnv(extra);
    await startProcess(env);
    const { stdout } = await run(process.execPath, [MAIN, 'healthcheck'], { env });
    expect(stdout).toMatch(/^healthy: 220 /);
    const down = await baseEnv(extra);
    const failure = await run(process.execPath, [MAIN, 'healthcheck'], { env: down }).catch((e: { code: number; stdout: string }) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stdout: string }).stdout).toMatch(/^unhealthy: /);
  });

  it('with HTTP_PORT, healthcheck asks /readyz: healthy when ready, unhealthy with the reason, or when nothing answers', async () => {
    const env = await baseEnv({ HTTP_PORT: String(await freePort()), HTTP_BIND_ADDRESS: '127.0.0.1' });
    await startProcess(env);
    expect((await run(process.execPath, [MAIN, 'healthcheck'], { env })).stdout).toBe('healthy: ready\n');
    // The storage root replaced by a file: /readyz (which caches its storage probe for 1 s) answers 503 and says why.
    await rename(env.FTP_ROOT!, `${env.FTP_ROOT!}.aside`);
    await writeFile(env.FTP_ROOT!, '');
    const healthcheck = () => run(process.execPath, [MAIN, 'healthcheck'], { env }).catch((e: { code: number; stdout: string }) => e);
    await expect.poll(healthcheck, { timeout: 10_000, interval: 300 }).toMatchObject({
      code: 1,
      stdout: `unhealthy: HTTP 503: not ready: the storage root ${env.FTP_ROOT!} is not writable (ENOTDIR)\n`,
    });
    const down = await baseEnv({ HTTP_PORT: String(await freePort()) });
    const failure = await run(process.execPath, [MAIN, 'healthcheck'], { env: down }).catch((e: { code: number; stdout: string }) => e);
    expect(failure).toMatchObject({ code: 1, stdout: expect.stringMatching(/^unhealthy: .*ECONNREFUSED/) });
  });

  it('SIGTERM on an idle server: the client gets 421 and the process exits 0 without waiting out the grace period', async () => {
    // A grace period no test outlasts: an exit at all shows the server did not wait for it.
    const env = await baseEnv({ SHUTDOWN_GRACE_SECONDS: '3600' });
    const { child, output } = await startProcess(env);
    const client = await RawFtpClient.connect(Number(env.FTPS_PORT));
    cleanups.push(() => client.close());
    expect((await client.read()).code).toBe(220);
    // 'close': the exit code once the output is read to its end.
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    child.kill('SIGTERM');
    expect((await client.read()).code).toBe(421);
    expect(await exited).toBe(0);
    expect(output()).toContain('"msg":"stopped"');
    expect(output()).not.toContain('grace period over');
  });

  it('hash-password reads the password from standard input and prints a hash that logs in through FTP_USERS_FILE', async () => {
    const { stdout, stderr } = await hashPasswordProcess('pass phrase with spaces\n');
    const hash = stdout.trim();
    expect(hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(stderr).toBe('');
    const parsed = parsePasswordHash(hash);
    if (!('hash' in parsed)) throw new Error(parsed.problem);
    // The newline ends the line; it is not part of the password.
    expect(await verifyPassword(parsed.hash, Buffer.from('pass phrase with spaces'))).toBe(true);

    const env = await baseEnv();
    const usersFile = path.join(path.dirname(env.FTP_ROOT!), 'users');
    await writeFile(usersFile, `# made by hash-password\r\nzoe:${hash}:zoe:rw\r\n`);
    await startProcess({ ...env, FTP_USERS_FILE: usersFile });
    const client = await RawFtpClient.connect(Number(env.FTPS_PORT));
    cleanups.push(() => client.close());
    await client.read();
    await client.upgrade();
    expect((await client.login('zoe', 'pass phrase with spaces')).code).toBe(230);
  });

  it.each([
    ['nothing', '', 'empty password'],
    ['an empty line', '\n', 'empty password'],
    ['two lines', 'one\ntwo\n', 'expected one line'],
  ])('hash-password refuses %s on standard input with exit code 1', async (_case, input, message) => {
    const failure = await hashPasswordProcess(input).catch((e: { code: number; stdout: string; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 1, stdout: '' });
    expect((failure as { stderr: string }).stderr).toContain(`hash-password: ${message}`);
  });

  it.each([
    ['serve', []],
    ['check-config', ['check-config']],
  ])('%s refuses a users file with bad lines: exit code 1, each line number, no hash', async (_command, args) => {
    const env = await baseEnv();
    const usersFile = path.join(path.dirname(env.FTP_ROOT!), 'users');
    const hash = '$2y$05$clGbfFgP3w84.BxeAH0e8OPXBSqf/k8EEMe9xKMvd9VbYvVb8nkvS';
    await writeFile(usersFile, `# users\nalice:${hash}:alice:rw\nbob:${hash}:bob:rx\ncarol:plaintext:carol:ro\n`);
    const failure = await run(process.execPath, [MAIN, ...args], { env: { ...env, FTP_USERS_FILE: usersFile } }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failure).toMatchObject({ code: 1 });
    const stderr = (failure as { stderr: string }).stderr;
    expect(stderr).toContain('FTP_USERS_FILE: line 3: unknown permissions "rx" (rw or ro)');
    expect(stderr).toContain('FTP_USERS_FILE: line 4: password hash is neither bcrypt');
    expect(stderr).not.toContain(hash);
    expect(stderr).not.toContain('plaintext');
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

/** `node dist/main.js ...args`: exit code and output, whether it succeeded or not. */
async function invoke(args: string[], env: Record<string, string> = { PATH: process.env.PATH ?? '' }) {
  return run(process.execPath, [MAIN, ...args], { env, cwd: os.tmpdir(), timeout: 20_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('command-line arguments', () => {
  const COMMANDS = ['serve', 'check-config', 'healthcheck', 'hash-password'];
  const VERSION = (JSON.parse(readFileSync(path.resolve('package.json'), 'utf8')) as { version: string }).version;

  const invocations: [string, string[]][] = [['ftps-gateway', []], ...COMMANDS.map((c): [string, string[]] => [`ftps-gateway ${c}`, [c]])];
  it.each(invocations)('%s --version and -V print the version from package.json', async (_name, command) => {
    for (const flag of ['--version', '-V']) {
      expect(await invoke([...command, flag])).toStrictEqual({ code: 0, stdout: `ftps-gateway ${VERSION}\n`, stderr: '' });
    }
  });

  it('--help lists every command and every variable with its default, and points at README and check-config', async () => {
    const { code, stdout, stderr } = await invoke(['--help']);
    expect({ code, stderr }).toStrictEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^Usage: ftps-gateway \[command\] \[--help\] \[--version\]\n/);
    for (const command of COMMANDS) expect(stdout).toMatch(new RegExp(`^  ${command} +\\S`, 'm'));
    for (const name of VARIABLE_NAMES) expect(stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    expect(stdout).toMatch(/^ {2}FTPS_PORT +21 \(990 when implicit\)$/m);
    expect(stdout).toMatch(/^ {2}FTP_PASSWORD +random \(secret\)$/m);
    expect(stdout).toContain('README.md');
    expect(stdout).toContain('check-config');
    expect((await invoke(['-h'])).stdout).toBe(stdout);
  });

  it.each(COMMANDS)('%s --help describes the command and exits 0 without reading the configuration', async (command) => {
    // An invalid configuration would stop every command with exit code 1: --help must not get that far.
    const { code, stdout, stderr } = await invoke([command, '--help'], { PATH: process.env.PATH ?? '', FTPS_IMPLICIT_SSL: 'maybe' });
    expect({ code, stderr }).toStrictEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(new RegExp(`^Usage: ftps-gateway ${command} \\[--help\\] \\[--version\\]\\n\\n\\S`));
    // The server's help carries the variables; the others point at it or need none.
    expect(stdout.includes('FTPS_IMPLICIT_SSL')).toBe(command === 'serve');
  });

  it('an unknown command is a usage error: exit 2, one line naming it and pointing at --help', async () => {
    expect(await invoke(['start'])).toStrictEqual({
      code: 2,
      stdout: '',
      stderr: 'ftps-gateway: unknown command "start" (see ftps-gateway --help)\n',
    });
  });

  it.each([
    [['--port=21'], 'unknown argument "--port=21" (see ftps-gateway --help)'],
    [['serve', '--port', '21'], 'unknown argument "--port" (see ftps-gateway serve --help)'],
    [['check-config', 'extra'], 'unknown argument "extra" (see ftps-gateway check-config --help)'],
    [['healthcheck', '--verbose'], 'unknown argument "--verbose" (see ftps-gateway healthcheck --help)'],
    [['hash-password', 'hunter2'], 'unknown argument "hunter2" (see ftps-gateway hash-password --help)'],
    [['serve', '--help', '--bogus'], 'unknown argument "--bogus" (see ftps-gateway serve --help)'],
  ])('%j is a usage error (exit 2, one line), and nothing starts', async (args, message) => {
    const env = await baseEnv();
    expect(await invoke(args, env)).toStrictEqual({ code: 2, stdout: '', stderr: `ftps-gateway: ${message}\n` });
  });

  it('an argument carrying terminal escapes or line breaks is quoted, so the error stays one inert line', async () => {
    const { code, stderr } = await invoke(['serve', '\u001b[2J\r\nfake: line']);
    expect(code).toBe(2);
    expect(stderr).toBe('ftps-gateway: unknown argument "\\u001b[2J\\r\\nfake: line" (see ftps-gateway serve --help)\n');
  });
});
