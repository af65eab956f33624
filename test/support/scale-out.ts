/*
 * The scale-out stacks of test/container/scale-out*.test.ts: gateway replicas with the environment of a compose
 * file behind HAProxy on a test network, FTPS clients through HAProxy, and the kill-a-replica run whose result both
 * storage backends must meet: an upload is stored whole under its name once its client got 226, and never
 * partially; the sessions of the other replicas go on.
 *
 * No host ports are published: the clients reach HAProxy at its address on the test network (a Linux host routes to
 * its bridge networks), so HAProxy listens on 21 and 30000–30002 exactly as in the compose stack without colliding
 * with the other container tests' host ports. The clients' address, as HAProxy and the replicas' logs see it, is the
 * network's gateway (the host's end of the bridge).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { Client, enterPassiveModeIPv4 } from 'basic-ftp';
import { expect } from 'vitest';
import { parse } from 'yaml';
import { IMAGE, run, sha256, type ContainerFixture } from '../container/support.js';
import { fingerprintOf } from './certificates.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const SCALE_OUT_USER = 'scale';
export const SCALE_OUT_PASSWORD = 'scale-out secret 789';
/** Uploads are paced (CHUNK every PACE_MS) so that transfers are still running when a replica is killed. */
const CHUNK = 32 * KiB;
const PACE_MS = 15;

export type Replica = { name: string; slice: { min: number; max: number }; env: Record<string, string>; id?: string };

/** The gateway replicas of a compose file: name, passive slice and environment, ${VAR:-default} taken as its default. */
export function composeReplicas(file: string): Replica[] {
  const compose = parse(readFileSync(file, 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; environment?: Record<string, string> }>;
  };
  return Object.entries(compose.services)
    .filter(([, s]) => s.image === 'ftps-gateway:latest')
    .map(([name, s]) => {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.environment ?? {})) {
        const value = String(v);
        if (/\$\{[A-Z0-9_]+:\?/.test(value)) continue; // required from the shell: set by the test
        env[k] = value.replace(/\$\{[A-Z0-9_]+:?-([^}]*)\}/g, '$1');
      }
      return { name, slice: { min: Number(env.PASV_MIN_PORT), max: Number(env.PASV_MAX_PORT) }, env };
    });
}

export type TestNetwork = { name: string; subnet: string; gateway: string; haproxy: string; address: (host: number) => string };

/** A /24 on 172.30.100–199 (HAProxy at .10), retried when Docker reports an overlap with an existing network. */
export async function createNetwork(fixture: ContainerFixture, name: string): Promise<TestNetwork> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const prefix = `172.30.${100 + Math.floor(Math.random() * 100)}`;
    const address = (host: number) => `${prefix}.${host}`;
    const net = { name, subnet: `${prefix}.0/24`, gateway: address(1), haproxy: address(10), address };
    const created = await run('docker', ['network', 'create', '--subnet', net.subnet, '--gateway', net.gateway, name]).then(
      () => true,
      (err: { stderr?: string }) => {
        if (/overlap/i.test(err.stderr ?? '')) return false;
        throw err;
      },
    );
    if (created) {
      fixture.trackNetwork(name);
      return net;
    }
  }
  throw new Error('no free 172.30.x.0/24 for the test network');
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `probe` returns a value, failing with `what` after `timeoutMs`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

export async function dockerLogs(id: string): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', id], { maxBuffer: 64 * 1024 * 1024 });
  return stdout + stderr;
}

/** A container's JSON log lines. */
export async function logLines(id: string): Promise<Array<Record<string, unknown>>> {
  return (await dockerLogs(id))
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `docker run -d` of a container removed with the fixture; resolves with its id. */
export async function dockerRun(fixture: ContainerFixture, args: string[]): Promise<string> {
  const { stdout } = await run('docker', ['run', '-d', ...args]);
  return fixture.trackId(stdout.trim());
}

/** The image as users run it hardened: read-only root, a small /tmp, no capabilities. */
export const HARDENED = ['--read-only', '--tmpfs', '/tmp:rw,size=16m', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true'];

export const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);

export function sink(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
}

/** `content` as a stream of CHUNK-sized pieces, one every PACE_MS; `sent` counts what has been handed over. */
function paced(content: Buffer, progress: { sent: number }): Readable {
  let offset = 0;
  return new Readable({
    read() {
      setTimeout(() => {
        const piece = content.subarray(offset, offset + CHUNK);
        offset += piece.length;
        progress.sent = offset;
        this.push(piece.length > 0 ? piece : null);
      }, PACE_MS);
    },
  });
}

export type Session = { client: Client; replica: string; fingerprint?: string };

/** basic-ftp over explicit FTPS, logged in at host:port; the replica is read from the greeting's "(name)". */
export async function ftpsSession(host: string, port: number, pasv: boolean): Promise<Session> {
  const client = new Client(30_000);
  try {
    const welcome = await client.access({
      host, port, user: SCALE_OUT_USER, password: SCALE_OUT_PASSWORD, secure: true, secureOptions: { rejectUnauthorized: false },
    });
    // PASV clients connect to the address of the 227 reply (PASV_ADDRESS); the others use EPSV.
    if (pasv) client.prepareTransfer = enterPassiveModeIPv4;
    return { client, replica: /\(([a-z0-9-]+)\)/.exec(welcome.message)?.[1] ?? 'unknown', fingerprint: fingerprintOf(client.ftp.socket) };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** The passive port a PASV reply names, after checking its address. */
export async function pasvPort(client: Client, address: string): Promise<number> {
  const reply = await client.send('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.message)!;
  expect(m.slice(1, 5).join('.')).toBe(address);
  return Number(m[5]) * 256 + Number(m[6]);
}

/** The shared storage as seen from outside the gateways (the volume's directory, the bucket). */
export interface StorageView {
  /** Names visible under their final name now, each with a version that changes whenever its content may have. */
  list(): Promise<Array<{ name: string; version: string }>>;
  /** The content under `name`, or undefined when it is gone. */
  read(name: string): Promise<Buffer | undefined>;
}

/** What the scale-out stack runs: replicas of a compose file, each given `replicaEnv` and `replicaArgs`, and HAProxy. */
export interface StackOptions {
  replicaEnv?: (r: Replica) => Record<string, string>;
  /** docker run arguments of every replica (mounts). */
  replicaArgs?: string[];
  haproxyImage: string;
}

/** Gateway replicas and HAProxy on one test network; sessions through HAProxy counted per replica. */
export class ScaleOutStack {
  readonly sessionsPerReplica = new Map<string, number>();
  /** The certificates the replicas showed (SHA-256 fingerprints). */
  readonly fingerprints = new Set<string>();
  haproxyId = '';

  constructor(
    private readonly fixture: ContainerFixture,
    readonly net: TestNetwork,
    readonly replicas: Replica[],
  ) {
    this.resetCounts();
  }

  resetCounts(): void {
    for (const r of this.replicas) this.sessionsPerReplica.set(r.name, 0);
  }

  /** Starts the replicas and HAProxy, and returns once a session has reached every replica. */
  async start(o: StackOptions): Promise<void> {
    for (const r of this.replicas) {
      const env = {
        ...r.env,
        // The address the test's clients reach HAProxy at, and HAProxy's address on this network.
        PASV_ADDRESS: this.net.haproxy,
        PROXY_TRUSTED_CIDRS: `${this.net.haproxy}/32`,
        FTP_USER: SCALE_OUT_USER,
        FTP_PASSWORD: SCALE_OUT_PASSWORD,
        // The greeting names the replica, so a client knows where HAProxy sent it.
        FTPS_BANNER: `ftps-gateway ready (${r.name})`,
        ...o.replicaEnv?.(r),
      };
      r.id = await dockerRun(this.fixture, [
        '--name', `${this.net.name}-${r.name}`, '--network', this.net.name, '--network-alias', r.name, ...HARDENED,
        ...(o.replicaArgs ?? []), ...envArgs(env), IMAGE,
      ]);
    }
    this.haproxyId = await dockerRun(this.fixture, [
      '--name', `${this.net.name}-haproxy`, '--network', this.net.name, '--ip', this.net.haproxy,
      '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true', o.haproxyImage,
    ]);
    for (const r of this.replicas) {
      await until(`${r.name} listening`, 30_000, async () => ((await dockerLogs(r.id!)).includes('"msg":"listening"') ? true : undefined));
    }
    // All replicas take sessions before the run (HAProxy's health checks have marked them up).
    await until('a session on every replica', 60_000, async () => {
      const probes = await Promise.allSettled(this.replicas.map(() => this.connect(false)));
      const seen = new Set<string>();
      for (const p of probes) {
        if (p.status === 'fulfilled') {
          seen.add(p.value.replica);
          p.value.client.close();
        }
      }
      return seen.size === this.replicas.length ? true : undefined;
    });
    this.resetCounts();
  }

  /** A logged-in session through HAProxy; the replica is read from the greeting. */
  async connect(pasv: boolean): Promise<Session> {
    const session = await ftpsSession(this.net.haproxy, 21, pasv);
    this.sessionsPerReplica.set(session.replica, (this.sessionsPerReplica.get(session.replica) ?? 0) + 1);
    if (session.fingerprint) this.fingerprints.add(session.fingerprint);
    return session;
  }

  /** A session on `replica`: others that HAProxy hands out meanwhile stay open a moment so leastconn moves on. */
  sessionOn(replica: Replica): Promise<Session> {
    return until(`a session on ${replica.name}`, 60_000, async () => {
      const s = await this.connect(false);
      if (s.replica === replica.name) return s;
      setTimeout(() => s.client.close(), 3000);
      return undefined;
    });
  }

  /** Every stored file listed and downloaded intact through a session on `replica`; PASV names one of its ports. */
  async checkThrough(replica: Replica, files: ReadonlyMap<string, Buffer>): Promise<void> {
    const session = await this.sessionOn(replica);
    try {
      const listing = await session.client.list();
      expect(new Map(listing.map((f) => [f.name, f.size] as const).sort()), `listing through ${replica.name}`).toEqual(
        new Map([...files].map(([n, c]) => [n, c.length] as const).sort()),
      );
      for (const [name, content] of files) {
        const chunks: Buffer[] = [];
        await session.client.downloadTo(sink(chunks), name);
        expect(sha256(Buffer.concat(chunks)), `${name} from ${replica.name}`).toBe(sha256(content));
      }
      const port = await pasvPort(session.client, this.net.haproxy);
      expect(port).toBeGreaterThanOrEqual(replica.slice.min);
      expect(port).toBeLessThanOrEqual(replica.slice.max);
    } finally {
      session.client.close();
    }
  }

  /** Logs: every session's address is the clients' (the network gateway, from PROXY v2), never HAProxy's. */
  async checkLogs(): Promise<Record<string, { logins: number; transfers: number }>> {
    const perReplica: Record<string, { logins: number; transfers: number }> = {};
    for (const r of this.replicas) {
      const lines = await logLines(r.id!);
      const remotes = [...new Set(lines.filter((l) => typeof l.remote === 'string').map((l) => String(l.remote)))];
      perReplica[r.name] = { logins: lines.filter((l) => l.msg === 'login').length, transfers: lines.filter((l) => l.msg === 'transfer').length };
      expect(perReplica[r.name]!.logins, `${r.name} logins`).toBeGreaterThan(0);
      expect(remotes, `${r.name}: addresses of its sessions`).toEqual([this.net.gateway]);
      expect(lines.filter((l) => l.msg === 'refused data connection from a foreign address')).toEqual([]);
    }
    return perReplica;
  }

  /** Each replica's state and its last warnings and errors, to tell a replica that died from one that was cut off. */
  async diagnose(): Promise<string> {
    const lines: string[] = [`HAProxy: ${await this.haproxyStateChanges()}`];
    for (const r of this.replicas) {
      const { stdout } = await run('docker', ['inspect', '-f', '{{.State.Status}} exit={{.State.ExitCode}} oom={{.State.OOMKilled}}', r.id!]);
      const problems = (await logLines(r.id!)).filter((l) => Number(l.level) >= 40).slice(-5).map((l) => JSON.stringify(l));
      lines.push(`${r.name}: ${stdout.trim()}`, ...problems);
    }
    return lines.join('\n');
  }

  /** HAProxy's server state changes, one line each. */
  async haproxyStateChanges(): Promise<string> {
    return (await dockerLogs(this.haproxyId))
      .split('\n')
      .filter((l) => /^\[WARNING\].*Server ftp_control\//.test(l))
      .map((l) => l.replace(/^\[WARNING\]\s+\(\d+\) : /, ''))
      .join(' | ');
  }
}

export interface KillRunOptions {
  clients: number;
  rounds: number;
  /** Bytes of client `i`'s file in `round`. */
  size: (i: number, round: number) => number;
  /** The kill waits for uploads that have sent more than this (S3: past the first part, so a multipart upload is open). */
  killPastBytes: number;
  storage: StorageView;
}

export interface KillRunResult {
  victim: Replica;
  clients: number;
  rounds: number;
  /** Content of every name whose upload got 226. */
  stored: Map<string, Buffer>;
  /** What the storage holds after the run (checked): the stored uploads, and any cut one that arrived whole. */
  finals: Map<string, Buffer>;
  /** Uploads that got no 226 (cut by the kill), by name. */
  cut: Map<string, { replica: string; sent: number; size: number }>;
  interrupted: Array<{ client: number; round: number; replica: string; phase: string; sent: number }>;
  reconnectedTo: Array<{ replica: string; ms: number }>;
  uploadsInFlightOnVictim: number;
  sessionsAtKill: Map<string, number>;
  bytes: number;
  samples: number;
  runSeconds: number;
}

/**
 * `clients` FTPS clients (half PASV, half EPSV) upload paced files through HAProxy and download them again, `rounds`
 * files each. Once every client is past its first round, the replica with the most uploads in flight is SIGKILLed.
 * Its clients get a new session elsewhere and upload again under a new name (a name is never reused, so a cut upload
 * has a name of its own that must stay empty); the other clients must not notice. All along, whatever `storage` shows
 * under a final name must be a complete upload.
 */
export async function killOneReplicaUnderLoad(stack: ScaleOutStack, o: KillRunOptions): Promise<KillRunResult> {
  const attempted = new Map<string, Buffer>();
  const stored = new Map<string, Buffer>();
  const cut = new Map<string, { replica: string; sent: number; size: number }>();
  const violations: string[] = [];
  const verified = new Map<string, string>();
  let sampling = true;
  let samples = 0;
  const started = Date.now();
  const sampler = (async () => {
    // Bounded, and quiet when a failed test has already removed the storage.
    while (sampling && Date.now() - started < 300_000) {
      for (const { name, version } of await o.storage.list().catch(() => [])) {
        const want = attempted.get(name);
        if (!want) {
          violations.push(`unexpected name ${name}`);
          continue;
        }
        if (verified.get(name) === version) continue;
        const content = await o.storage.read(name);
        if (content === undefined) continue;
        if (sha256(content) !== sha256(want)) violations.push(`${name}: ${content.length} of ${want.length} bytes, wrong content`);
        else verified.set(name, version);
      }
      samples++;
      await sleep(100);
    }
  })();

  /** Set at the kill: the replica whose sessions may fail. */
  const kill: { victim?: string; at?: number } = {};
  const failures: string[] = [];
  const interrupted: KillRunResult['interrupted'] = [];
  const reconnectedTo: KillRunResult['reconnectedTo'] = [];
  const inUpload = new Map<number, { replica: string; progress: { sent: number }; size: number }>();
  let finishedRound0 = 0;
  let bytes = 0;

  const runClient = async (i: number): Promise<void> => {
    const pasv = i % 2 === 0;
    let session = await stack.connect(pasv);
    try {
      for (let round = 0; round < o.rounds; round++) {
        for (let attempt = 0; ; attempt++) {
          const name = `c${String(i).padStart(2, '0')}-r${round}-a${attempt}.bin`;
          const content = randomBytes(o.size(i, round));
          attempted.set(name, content);
          const progress = { sent: 0 };
          const chunks: Buffer[] = [];
          let phase = 'upload';
          try {
            inUpload.set(i, { replica: session.replica, progress, size: content.length });
            await session.client.uploadFrom(paced(content, progress), name);
            stored.set(name, content);
            inUpload.delete(i);
            phase = 'download';
            await session.client.downloadTo(sink(chunks), name);
          } catch (err) {
            inUpload.delete(i);
            // Only the sessions of the killed replica may fail, and each gets a new session elsewhere.
            if (kill.victim === undefined || session.replica !== kill.victim || attempt > 0) {
              throw new Error(`client ${i} on ${session.replica}, ${name} ${phase}: ${String(err)}`, { cause: err });
            }
            if (phase === 'upload') cut.set(name, { replica: session.replica, sent: progress.sent, size: content.length });
            interrupted.push({ client: i, round, replica: session.replica, phase, sent: progress.sent });
            session.client.close();
            session = await until(`client ${i} reconnected`, 60_000, () => stack.connect(pasv));
            reconnectedTo.push({ replica: session.replica, ms: Date.now() - kill.at! });
            continue;
          }
          if (sha256(Buffer.concat(chunks)) !== sha256(content)) throw new Error(`client ${i}: ${name} downloaded with other content`);
          bytes += 2 * content.length;
          break;
        }
        if (round === 0) finishedRound0++;
      }
    } finally {
      session.client.close();
    }
  };

  const clients = Array.from({ length: o.clients }, (_, i) => runClient(i).catch((err: Error) => void failures.push(err.message)));

  // The kill: once every client has stored a file, the replica with the most uploads in flight is killed while they run.
  await until('every client past its first round', 120_000, async () => (finishedRound0 === o.clients || failures.length > 0 ? true : undefined));
  expect(failures, 'before the kill').toEqual([]);
  const midUpload = await until('uploads in flight', 60_000, async () => {
    const running = [...inUpload.values()].filter((u) => u.progress.sent > o.killPastBytes && u.progress.sent < u.size);
    return running.length > 0 ? running : undefined;
  });
  const counts = new Map<string, number>();
  for (const u of midUpload) counts.set(u.replica, (counts.get(u.replica) ?? 0) + 1);
  const victimName = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const victim = stack.replicas.find((r) => r.name === victimName)!;
  const sessionsAtKill = new Map(stack.sessionsPerReplica);
  const killedAt = Date.now();
  Object.assign(kill, { victim: victimName, at: killedAt });
  await run('docker', ['kill', victim.id!]);
  await Promise.all(clients);
  const runSeconds = (Date.now() - killedAt) / 1000;
  sampling = false;
  await sampler;

  // HAProxy's view of the replicas says whether a failure was a replica marked down (and its sessions cut).
  if (failures.length > 0) failures.push(await stack.diagnose());
  expect(failures, failures.join('\n')).toEqual([]);
  expect(interrupted.length, 'sessions cut by the kill').toBeGreaterThan(0);
  for (const r of interrupted) expect(r.replica).toBe(victimName);
  for (const r of reconnectedTo) expect(r.replica, 'new sessions land on the survivors').not.toBe(victimName);
  expect(violations, violations.join('\n')).toEqual([]);

  // Afterwards: every upload that got 226 is there, whole; a cut upload left nothing under its name, unless the
  // replica had received all of it and died between storing it and sending 226 (then it must be whole too).
  const finals = new Map<string, Buffer>();
  for (const { name } of await o.storage.list()) finals.set(name, (await o.storage.read(name)) ?? Buffer.alloc(0));
  for (const [name, content] of stored) expect(finals.has(name) && sha256(finals.get(name)!) === sha256(content), `${name} stored whole`).toBe(true);
  for (const [name, content] of finals) {
    if (stored.has(name)) continue;
    const c = cut.get(name);
    expect(c, `${name} exists, but its upload got no 226 and was not cut by the kill`).toBeDefined();
    expect(c!.sent, `${name} exists, but its client had sent ${c!.sent} of ${c!.size} bytes and got no 226`).toBe(c!.size);
    expect(sha256(content), `${name} (no 226) is whole`).toBe(sha256(attempted.get(name)!));
  }

  return {
    victim, clients: o.clients, rounds: o.rounds, stored, finals, cut, interrupted, reconnectedTo, sessionsAtKill, bytes, samples, runSeconds,
    uploadsInFlightOnVictim: midUpload.filter((u) => u.replica === victimName).length,
  };
}

/** The numbers of a run, printed by the tests. */
export function describeRun(stack: ScaleOutStack, r: KillRunResult): string {
  return [
    `${r.clients} clients × ${r.rounds} files, ${r.stored.size} uploads stored (${r.finals.size - r.stored.size} more whole without 226), ${(r.bytes / MiB).toFixed(1)} MiB moved through HAProxy ` +
      `(upload + download), ${r.runSeconds.toFixed(1)} s from the kill to the last client`,
    `sessions per replica at the kill: ${JSON.stringify(Object.fromEntries(r.sessionsAtKill))}; in all: ${JSON.stringify(Object.fromEntries(stack.sessionsPerReplica))}`,
    `killed ${r.victim.name} with ${r.uploadsInFlightOnVictim} uploads in flight: ${r.interrupted.length} sessions cut ` +
      `(${JSON.stringify(r.interrupted)}), reconnected to ${JSON.stringify(r.reconnectedTo)}; ` +
      `${r.clients - new Set(r.interrupted.map((i) => i.client)).size} clients never lost their session`,
    `storage sampled ${r.samples} times: no partial or foreign content under a final name`,
  ].join('\n');
}

/**
 * A sink that takes `bytesPerSecond` at most until it has `slowUntil` bytes, so that the sender's transfer runs as
 * long as the client reads; the rest at once. A client still writing its last chunk when a stopping server's 421
 * follows the 226 gets the download failed by basic-ftp, though every byte arrived: this one is done first.
 */
function slowSink(chunks: Buffer[], bytesPerSecond: number, slowUntil: number, progress: { received: number }): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      progress.received += chunk.length;
      if (progress.received < slowUntil) setTimeout(done, (chunk.length / bytesPerSecond) * 1000);
      else done();
    },
  });
}

export interface DrainRunResult {
  drained: Replica;
  /** From `docker stop` to each transfer's 226, and to the replica's exit. */
  uploadMs: number;
  downloadMs: number;
  stopMs: number;
  /** Where the sessions opened during the drain landed. */
  newSessions: string[];
  haproxy: string;
}

/**
 * A graceful stop of `replica` (docker stop, as a rolling update does) while it runs a paced upload and a slowly read
 * download through HAProxy: both get 226 with their content, the sessions opened meanwhile land on the other
 * replicas and are held open (so that leastconn would pick the draining replica, which has fewer, if it were still
 * in rotation), and the replica exits 0. `size` bytes each way: the upload moves about 2 MiB/s (paced), the
 * download is read at 2 MiB/s but its last MiB, so both run for several seconds after the stop.
 */
export async function drainOneReplica(stack: ScaleOutStack, replica: Replica, size: number): Promise<DrainRunResult> {
  const [up, down] = [randomBytes(size), randomBytes(size)];
  const seed = await stack.connect(false);
  await seed.client.uploadFrom(Readable.from([down]), 'drain-download.bin').finally(() => seed.client.close());
  const uploader = await stack.sessionOn(replica);
  const downloader = await stack.sessionOn(replica);
  const held: Session[] = [];
  try {
    const sent = { sent: 0 };
    const received = { received: 0 };
    const chunks: Buffer[] = [];
    const ended = (what: string, p: Promise<{ code: number }>) =>
      p.then(
        ({ code }) => ({ code, at: Date.now() }),
        (err: unknown) => {
          throw new Error(`${what} on ${replica.name} (sent ${sent.sent}, received ${received.received} of ${size}): ${String(err)}`, { cause: err });
        },
      );
    const upload = ended('upload', uploader.client.uploadFrom(paced(up, sent), 'drain-upload.bin'));
    const download = ended('download', downloader.client.downloadTo(slowSink(chunks, 2 * MiB, size - MiB, received), 'drain-download.bin'));
    let done = false;
    void Promise.allSettled([upload, download]).then(() => (done = true));
    await until('both transfers under way', 30_000, async () => ((sent.sent > MiB && received.received > MiB) || done ? true : undefined));

    const stopAt = Date.now();
    const stopped = run('docker', ['stop', '-t', '30', replica.id!]).then(() => Date.now());
    // New sessions while the replica drains: the first ones may reach it before HAProxy's next check (its closed
    // listener refuses them, and HAProxy retries them elsewhere); none may land on it, none may fail.
    while (!done) {
      held.push(await stack.connect(false));
      await sleep(500);
    }
    const [u, d] = await Promise.all([upload, download]);
    expect(u.code, 'upload on the draining replica').toBe(226);
    expect(d.code, 'download on the draining replica').toBe(226);
    expect(sha256(Buffer.concat(chunks)), 'downloaded content').toBe(sha256(down));
    // Before 404 meant drain, HAProxy cut the replica's sessions about 3 s into a stop: the run must outlast that.
    expect(Math.min(u.at, d.at) - stopAt, 'transfers still running 3 s into the stop').toBeGreaterThan(3000);
    const newSessions = held.map((s) => s.replica);
    expect(newSessions.length).toBeGreaterThan(0);
    expect(newSessions.filter((r) => r === replica.name), `sessions opened during the drain: ${newSessions.join(', ')}`).toEqual([]);

    const stopMs = (await stopped) - stopAt;
    const { stdout } = await run('docker', ['inspect', '-f', '{{.State.ExitCode}}', replica.id!]);
    expect(stdout.trim(), `${replica.name}'s exit code`).toBe('0');
    // The upload is stored whole: read back through a survivor.
    const check = held[0]!;
    const back: Buffer[] = [];
    await check.client.downloadTo(sink(back), 'drain-upload.bin');
    expect(sha256(Buffer.concat(back)), 'uploaded content, read through another replica').toBe(sha256(up));
    return { drained: replica, uploadMs: u.at - stopAt, downloadMs: d.at - stopAt, stopMs, newSessions, haproxy: await stack.haproxyStateChanges() };
  } finally {
    for (const s of [uploader, downloader, ...held]) s.client.close();
  }
}
