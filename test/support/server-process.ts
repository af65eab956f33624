import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { TEST_PASSWORD, TEST_USER } from './server.js';

/** The Node flags of the image's ENTRYPOINT (Dockerfile), so that memory figures match what ships. */
export const IMAGE_NODE_ARGS: readonly string[] = ['--max-semi-space-size=4'];
/** The heap limit the Kubernetes manifests' memory limit implies: a process that would need more dies. */
export const K8S_HEAP_LIMIT = '--max-old-space-size=512';

// A passive range per process, apart from startServer's (20000+), from other test files running in parallel, and
// below the kernel's ephemeral ports (32768+), which the tests' own client sockets take.
let nextPasvBase = 10000 + (process.pid % 100) * 100;

/** The build under test; FTPS_GATEWAY_MAIN=/other/checkout/dist/main.js runs these tests against another one. */
export const MAIN = process.env.FTPS_GATEWAY_MAIN ?? fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  readonly child: ChildProcess;
  /** Every JSON log line the process wrote to stdout so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Resident memory now, in bytes (from /proc). */
  rss(): number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

/**
 * The built server (dist/main.js) as its own process, for tests that measure its memory or need several
 * gateways on one volume: a clean environment (no .env: the cwd is a temporary directory), the test user, a
 * self-signed certificate (the default certificate paths, /certs/tls.*, are absent here), a free port (ready once
 * it greets), no HTTP endpoint.
 * `nodeArgs` default to the image's.
 */
export async function startServerProcess(
  env: Record<string, string>,
  o: { nodeArgs?: readonly string[] } = {},
): Promise<ServerProcess> {
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'ftps-proc-'));
  const port = await freePort();
  const pasvMin = nextPasvBase;
  nextPasvBase += 20;
  const child = spawn(process.execPath, [...(o.nodeArgs ?? IMAGE_NODE_ARGS), MAIN], {
    cwd,
    env: {
      PATH: process.env.PATH,
      FTPS_PORT: String(port),
      FTPS_BIND_ADDRESS: '127.0.0.1',
      HTTP_PORT: '0',
      FTP_USER: TEST_USER,
      FTP_PASSWORD: TEST_PASSWORD,
      PASV_MIN_PORT: String(pasvMin),
      PASV_MAX_PORT: String(pasvMin + 19),
      STATE_DIR: path.join(cwd, 'state'),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let pending = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  let gone = false;
  void exited.then(() => (gone = true));
  while (!(await answers220(port))) {
    if (gone) throw new Error(`server exited before listening: ${stderr.trim()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(cwd, { recursive: true, force: true });
  };
  return { pid: child.pid!, port, child, logs, rss: () => rssOf(child.pid!), stop };
}

function answers220(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('error', () => done(false));
    socket.once('data', (d: Buffer) => done(d.toString().startsWith('220')));
  });
}

/** VmRSS of a process in bytes; 0 once it is gone. */
export function rssOf(pid: number): number {
  try {
    const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? 0 : Number(kib) * 1024;
  } catch {
    return 0;
  }
}
