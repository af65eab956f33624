import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Config } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer } from '../../src/server/create-server.js';
import type { FtpServer } from '../../src/server/ftp-server.js';
import { afterAll, beforeAll, describe } from 'vitest';
import { localTree, STORAGE_BACKENDS, type BackendName, type UserTree } from './user-tree.js';

export const TEST_USER = 'alice';
export const TEST_PASSWORD = 'correct horse battery staple';

/** A log line the server wrote, parsed. */
export type LogEntry = Record<string, unknown>;

export interface RunningServer {
  readonly port: number;
  /** FTP_ROOT: with the S3 backend it holds no files (they are in `tree`). */
  readonly root: string;
  /** The FTP_USER's files, behind the server's back: FTP_ROOT on disk, or the bucket under S3_PREFIX. */
  readonly tree: UserTree;
  readonly config: Config;
  readonly server: FtpServer;
  /** Every log line the server wrote, parsed. */
  readonly logs: LogEntry[];
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Passive ports of this server (at most 20). */
  readonly pasvPorts?: number;
  /** `s3`: a fresh bucket on the run's RGW (test/support/s3.ts), under a key prefix; `env` may override its S3_*. */
  readonly backend?: BackendName;
}

/** The S3 suites' key prefix of FTP_ROOT: keys outside it must stay untouched. */
const S3_TEST_PREFIX = 'gateway/';

// Below Linux's ephemeral port range (32768+), so outgoing connections never occupy a passive port.
let nextPasvBase = 20000 + (process.pid % 100) * 100;

/**
 * The real server, in process, on an ephemeral loopback port, with a fresh temporary FTP_ROOT and a
 * self-signed certificate. `env` overrides any variable; a test that needs files in place before start
 * passes its own temporary FTP_ROOT, which stop() removes like a fresh one. Each server gets its own passive
 * range (20 ports, or the first `pasvPorts` of them) so test files running in parallel do not compete for ports.
 */
export async function startServer(env: Record<string, string> = {}, o: StartOptions = {}): Promise<RunningServer> {
  const root = env.FTP_ROOT ?? (await mkdtemp(path.join(os.tmpdir(), 'ftps-root-')));
  let tree: UserTree = localTree(root);
  if (o.backend === 's3') {
    // Loaded only here: the AWS SDK is not needed by the local suites.
    const { s3TestBucket, s3Tree } = await import('./s3.js');
    const bucket = await s3TestBucket({ prefix: S3_TEST_PREFIX });
    env = { ...bucket.env, ...env };
    tree = s3Tree(bucket.client, bucket.settings.bucket, env.S3_PREFIX ?? S3_TEST_PREFIX);
  }
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'ftps-nocert-'));
  const pasvMin = nextPasvBase;
  nextPasvBase += 20;
  const config = loadConfig(
    {
      FTPS_PORT: '0',
      FTPS_BIND_ADDRESS: '127.0.0.1',
      // Tests that need the HTTP endpoint set a free port; 8080 would collide between parallel servers.
      HTTP_PORT: '0',
      FTP_ROOT: root,
      FTP_USER: TEST_USER,
      FTP_PASSWORD: TEST_PASSWORD,
      PASV_MIN_PORT: String(pasvMin),
      PASV_MAX_PORT: String(pasvMin + Math.min(o.pasvPorts ?? 20, 20) - 1),
      // Default paths that do not exist: the server generates a self-signed certificate.
      TLS_CERT_PATH: path.join(certDir, 'tls.crt'),
      TLS_KEY_PATH: path.join(certDir, 'tls.key'),
      STATE_DIR: path.join(certDir, 'state'),
      LOG_LEVEL: 'debug',
      // TEST_PASV_PORT_SHARING=true runs every in-process suite over shared passive ports (a compatibility run).
      ...(process.env.TEST_PASV_PORT_SHARING && { PASV_PORT_SHARING: process.env.TEST_PASV_PORT_SHARING }),
      ...env,
    },
    { dotenvPath: path.join(certDir, 'no.env') },
  );
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger(config, sink);
  const server = await createServer(
    { ...config, tls: { ...config.tls, pathsExplicit: env.TLS_CERT_PATH !== undefined } },
    log,
  );
  const { port } = await server.listen();
  return {
    port,
    root,
    tree,
    config,
    server,
    logs,
    async stop() {
      await server.stop(1000);
      await rm(root, { recursive: true, force: true });
      await rm(certDir, { recursive: true, force: true });
    },
  };
}

/** Runs `use` against a server started with `env`, and stops the server however `use` ends. */
export async function withServer<T>(
  env: Record<string, string>,
  use: (srv: RunningServer) => Promise<T>,
  o: StartOptions = {},
): Promise<T> {
  const srv = await startServer(env, o);
  try {
    return await use(srv);
  } finally {
    await srv.stop();
  }
}

/** The first S3 server of a run waits for the RGW image to build. */
const SERVER_START_TIMEOUT_MS = 600_000;

/**
 * The server of the enclosing suite: started before its tests, stopped after them. The object returned is filled
 * in once the server has started, so the suite's tests use it as they would `await startServer(env, o)`.
 */
export function suiteServer(env: Record<string, string> = {}, o: StartOptions = {}): RunningServer {
  const srv = {} as RunningServer;
  beforeAll(async () => {
    Object.assign(srv, await startServer(env, o));
  }, SERVER_START_TIMEOUT_MS);
  afterAll(async () => {
    if ('stop' in srv) await srv.stop();
  });
  return srv;
}

/** The `transfer` log lines of `remotePath` (`/name`, from the user's root), in order. */
export const transfersOf = (srv: RunningServer, remotePath: string): LogEntry[] =>
  srv.logs.filter((l) => l.msg === 'transfer' && l.path === remotePath);

/** Direction, result and protection of each transfer log line: what most client tests assert. */
export const outcomesOf = (transfers: LogEntry[]): unknown[][] => transfers.map((t) => [t.direction, t.result, t.protection]);

/** The commands (verb and argument) of the session that logged `entry`, in order. */
export const commandsOf = (srv: RunningServer, entry: LogEntry): string[] =>
  srv.logs
    .filter((l) => l.session === entry.session && l.msg === 'command')
    .map((l) => (l.argument === undefined ? String(l.verb) : `${String(l.verb)} ${String(l.argument)}`));

/**
 * The suite `body` once per storage backend (`title [local storage]`, `title [s3 storage]`); it starts its servers
 * with `suiteServer(env, { backend })` and checks files through `srv.tree`.
 */
export function describeEachBackend(title: string, body: (backend: BackendName) => void): void {
  for (const { backend, skip } of STORAGE_BACKENDS) describe.skipIf(skip)(`${title} [${backend} storage]`, () => body(backend));
}
