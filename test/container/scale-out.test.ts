/*
 * docker/scale-out as it ships: three gateway replicas on one shared directory behind HAProxy (the image
 * built from docker/scale-out/haproxy with its haproxy.cfg unchanged), each replica with the environment
 * of docker/scale-out/compose.yml (one shared passive port per replica). 30 FTPS clients from one address
 * upload and download through HAProxy with SHA-256
 * checks while one replica is killed; afterwards every file is checked on every replica.
 *
 * No host ports are published: the clients reach HAProxy at its address on a test network (a Linux
 * host routes to its bridge networks), so HAProxy listens on 21 and 30000–30002 exactly as in the
 * compose stack without colliding with the other container tests' host ports. The clients' address, as
 * HAProxy and the replicas' logs see it, is the network's gateway (the host's end of the bridge).
 *
 * The Kubernetes variant (docker/k8s/scale-out) gets the same treatment without a cluster: its pods' start
 * script and its haproxy.cfg, with containers named like the pods and reachable under the per-pod Services'
 * DNS names.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { Client, enterPassiveModeIPv4 } from 'basic-ftp';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerFixture, IMAGE, run, sha256, skipContainers, testImage } from './support.js';

const SCALE_OUT = path.resolve('docker/scale-out');
const USER = 'scale';
const PASSWORD = 'scale-out secret 789';
const TEMP_NAME = /^\.ftps-upload-[0-9a-f]{16}\.tmp$/;
const CLIENTS = 30;
const ROUNDS = 3;
const KiB = 1024;
/** Uploads are paced (CHUNK every PACE_MS) so that transfers are still running when a replica is killed. */
const CHUNK = 32 * KiB;
const PACE_MS = 15;

const fixture = new ContainerFixture();

type Replica = { name: string; slice: { min: number; max: number }; env: Record<string, string>; id?: string };

/** The replicas of compose.yml: name, passive slice and environment, ${VAR:-default} taken as its default. */
function composeReplicas(): Replica[] {
  const compose = parse(readFileSync(path.join(SCALE_OUT, 'compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; environment?: Record<string, string> }>;
  };
  return Object.entries(compose.services)
    .filter(([, s]) => s.image === 'ftps-gateway:latest')
    .map(([name, s]) => {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.environment ?? {})) {
        const value = String(v);
        if (/\$\{[A-Z0-9_]+:\?/.test(value)) continue; // required from the shell: set by the test below
        env[k] = value.replace(/\$\{[A-Z0-9_]+:?-([^}]*)\}/g, '$1');
      }
      return { name, slice: { min: Number(env.PASV_MIN_PORT), max: Number(env.PASV_MAX_PORT) }, env };
    });
}

/** A /24 on 172.30.100–199, retried when Docker reports an overlap with an existing network. */
async function createNetwork(name: string): Promise<{ subnet: string; gateway: string; haproxy: string }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const prefix = `172.30.${100 + Math.floor(Math.random() * 100)}`;
    const net = { subnet: `${prefix}.0/24`, gateway: `${prefix}.1`, haproxy: `${prefix}.10` };
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `probe` returns a value, failing with `what` after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

async function dockerLogs(id: string): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', id], { maxBuffer: 64 * 1024 * 1024 });
  return stdout + stderr;
}

/** The replica's JSON log lines. */
async function logLines(id: string): Promise<Array<Record<string, unknown>>> {
  return (await dockerLogs(id))
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Files (not hidden) and their SHA-256 as the replica itself sees /data. */
async function filesSeenBy(id: string): Promise<Map<string, string>> {
  const { stdout } = await run('docker', ['exec', id, 'sh', '-c', 'cd /data && find . -maxdepth 1 -type f ! -name ".*" -exec sha256sum {} +'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return new Map(
    stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [hash, name] = line.split(/\s+\.\//);
        return [name!, hash!];
      }),
  );
}

function sink(chunks: Buffer[]): Writable {
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

/** docker/k8s/scale-out: namespace, pod count, the pods' start script and environment, HAProxy's configuration. */
function k8sVariant() {
  const dir = path.resolve('docker/k8s/scale-out');
  const docs = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as K8sObject));
  const statefulSet = docs.find((d) => d.kind === 'StatefulSet')!;
  const container = statefulSet.spec!.template!.spec!.containers![0]!;
  const script = container.args![0]!;
  const [, base, size] = /SLICE_BASE=(\d+) SLICE_SIZE=(\d+)/.exec(script)!;
  return {
    namespace: String((parse(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as { namespace: string }).namespace),
    pods: statefulSet.spec!.replicas!,
    podName: (n: number) => `${statefulSet.metadata!.name!}-${n}`,
    slice: (n: number) => ({ min: Number(base) + n * Number(size), max: Number(base) + (n + 1) * Number(size) - 1 }),
    script,
    env: docs.find((d) => d.kind === 'ConfigMap' && d.metadata!.name === container.envFrom![0]!.configMapRef!.name)!.data!,
    haproxyCfg: path.join(dir, 'haproxy.cfg'),
  };
}

type K8sObject = {
  kind?: string;
  metadata?: { name?: string };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    template?: { spec?: { containers?: Array<{ args?: string[]; envFrom?: Array<{ configMapRef?: { name?: string } }> }> } };
  };
};

/** basic-ftp over explicit FTPS, logged in at host:port; the replica is read from the greeting's "(name)". */
async function ftpsSession(host: string, port: number, pasv: boolean): Promise<{ client: Client; replica: string }> {
  const client = new Client(30_000);
  try {
    const welcome = await client.access({ host, port, user: USER, password: PASSWORD, secure: true, secureOptions: { rejectUnauthorized: false } });
    // PASV clients connect to the address of the 227 reply (PASV_ADDRESS); the others use EPSV.
    if (pasv) client.prepareTransfer = enterPassiveModeIPv4;
    return { client, replica: /\(([a-z0-9-]+)\)/.exec(welcome.message)?.[1] ?? 'unknown' };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** The passive port a PASV reply names, after checking its address. */
async function pasvPort(client: Client, address: string): Promise<number> {
  const reply = await client.send('PASV');
  const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(reply.message)!;
  expect(m.slice(1, 5).join('.')).toBe(address);
  return Number(m[5]) * 256 + Number(m[6]);
}

describe.skipIf(skipContainers)('scale-out: 3 replicas behind HAProxy on shared storage (docker/scale-out)', () => {
  const replicas = composeReplicas();
  const tag = randomBytes(3).toString('hex');
  let net: { subnet: string; gateway: string; haproxy: string };
  let haproxyId: string;
  let haproxyImage: string;
  let data: string;

  beforeAll(async () => {
    [, haproxyImage] = await Promise.all([testImage('gateway'), testImage('haproxy')]);
  }, 600_000);

  afterAll(() => fixture.cleanup());

  it('compose.yml describes 3 replicas with disjoint slices and PROXY protocol v2', () => {
    expect(replicas.map((r) => r.name)).toEqual(['ftps-1', 'ftps-2', 'ftps-3']);
    for (const r of replicas) expect(r.env.PROXY_PROTOCOL).toBe('v2');
  });

  it('30 clients through HAProxy, one replica killed mid-run: survivors finish, nothing corrupt, real client addresses logged', async () => {
    const started = Date.now();
    net = await createNetwork(`ftps-scale-out-${tag}`);
    data = await fixture.dataDir();

    for (const r of replicas) {
      const env = {
        ...r.env,
        // The address the test's clients reach HAProxy at, and HAProxy's address on this network.
        PASV_ADDRESS: net.haproxy,
        PROXY_TRUSTED_CIDRS: `${net.haproxy}/32`,
        FTP_USER: USER,
        FTP_PASSWORD: PASSWORD,
        // The greeting names the replica, so a client knows where HAProxy sent it.
        FTPS_BANNER: `ftps-gateway ready (${r.name})`,
      };
      const { stdout } = await run('docker', [
        'run', '-d', '--name', `ftps-scale-out-${tag}-${r.name}`, '--network', `ftps-scale-out-${tag}`, '--network-alias', r.name,
        '--read-only', '--tmpfs', '/tmp:rw,size=16m', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
        '-v', `${data}:/data`, ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), IMAGE,
      ]);
      r.id = fixture.trackId(stdout.trim());
    }
    const { stdout: hid } = await run('docker', [
      'run', '-d', '--name', `ftps-scale-out-${tag}-haproxy`, '--network', `ftps-scale-out-${tag}`, '--ip', net.haproxy,
      '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true', haproxyImage,
    ]);
    haproxyId = fixture.trackId(hid.trim());
    for (const r of replicas) {
      await until(`${r.name} listening`, 30_000, async () => ((await dockerLogs(r.id!)).includes('"msg":"listening"') ? true : undefined));
    }

    type Session = { client: Client; replica: string };
    const sessionsPerReplica = new Map<string, number>(replicas.map((r) => [r.name, 0]));
    /** A logged-in session through HAProxy; the replica is read from the greeting. */
    const connect = async (pasv: boolean): Promise<Session> => {
      const session = await ftpsSession(net.haproxy, 21, pasv);
      sessionsPerReplica.set(session.replica, (sessionsPerReplica.get(session.replica) ?? 0) + 1);
      return session;
    };

    // All three replicas take sessions before the run (HAProxy's health checks have marked them up).
    await until('a session on every replica', 60_000, async () => {
      const probes = await Promise.allSettled(replicas.map(() => connect(false)));
      const seen = new Set<string>();
      for (const p of probes) {
        if (p.status === 'fulfilled') {
          seen.add(p.value.replica);
          p.value.client.close();
        }
      }
      return seen.size === replicas.length ? true : undefined;
    });
    for (const r of replicas) sessionsPerReplica.set(r.name, 0);

    // Expected content of every final name; a sampler checks, all along, that whatever is visible under
    // a final name on the shared directory is complete.
    const expected = new Map<string, { content: Buffer; hash: string }>();
    const violations: string[] = [];
    const verified = new Map<string, string>();
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      // Bounded, and quiet when a failed test has already removed the directory.
      while (sampling && Date.now() - started < 300_000) {
        for (const name of await readdir(data).catch(() => [])) {
          if (TEMP_NAME.test(name)) continue;
          const want = expected.get(name);
          if (!want) {
            violations.push(`unexpected file ${name}`);
            continue;
          }
          const s = await stat(path.join(data, name)).catch(() => undefined);
          if (!s) continue;
          const key = `${s.ino}:${s.size}:${s.mtimeMs}`;
          if (verified.get(name) === key) continue;
          const hash = sha256(await readFile(path.join(data, name)));
          if (hash !== want.hash) violations.push(`${name}: ${s.size} of ${want.content.length} bytes, wrong content`);
          else verified.set(name, key);
        }
        samples++;
        await sleep(100);
      }
    })();

    /** Set at the kill: the replica whose sessions may fail. */
    const kill: { victim?: string; at?: number } = {};
    const failures: string[] = [];
    const interrupted: Array<{ client: number; round: number; replica: string; phase: string; sent: number }> = [];
    /** Where the cut sessions' clients landed next, and how long after the kill they were logged in again. */
    const reconnectedTo: Array<{ replica: string; ms: number }> = [];
    const inUpload = new Map<number, { replica: string; progress: { sent: number }; size: number }>();
    let finishedRound0 = 0;
    let bytes = 0;

    const runClient = async (i: number): Promise<void> => {
      const pasv = i % 2 === 0;
      let session = await connect(pasv);
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const name = `c${String(i).padStart(2, '0')}-r${round}.bin`;
          const content = randomBytes(128 * KiB + Math.floor(Math.random() * 896 * KiB));
          const hash = sha256(content);
          expected.set(name, { content, hash });
          for (let attempt = 0; ; attempt++) {
            const progress = { sent: 0 };
            const chunks: Buffer[] = [];
            let phase = 'upload';
            try {
              inUpload.set(i, { replica: session.replica, progress, size: content.length });
              await session.client.uploadFrom(paced(content, progress), name);
              inUpload.delete(i);
              phase = 'download';
              await session.client.downloadTo(sink(chunks), name);
            } catch (err) {
              inUpload.delete(i);
              // Only the sessions of the killed replica may fail, and each gets a new session elsewhere.
              if (kill.victim === undefined || session.replica !== kill.victim || attempt > 0) {
                throw new Error(`client ${i} on ${session.replica}, ${name} ${phase}: ${String(err)}`, { cause: err });
              }
              interrupted.push({ client: i, round, replica: session.replica, phase, sent: progress.sent });
              session.client.close();
              session = await until(`client ${i} reconnected`, 60_000, () => connect(pasv));
              reconnectedTo.push({ replica: session.replica, ms: Date.now() - kill.at! });
              continue;
            }
            if (sha256(Buffer.concat(chunks)) !== hash) throw new Error(`client ${i}: ${name} downloaded with other content`);
            bytes += 2 * content.length;
            break;
          }
          if (round === 0) finishedRound0++;
        }
      } finally {
        session.client.close();
      }
    };

    const clients = Array.from({ length: CLIENTS }, (_, i) => runClient(i).catch((err: Error) => void failures.push(err.message)));

    // The kill: once every client has a file on the shared directory, the replica with the most
    // uploads in progress is killed while they run.
    await until('every client past its first round', 120_000, async () => (finishedRound0 === CLIENTS || failures.length > 0 ? true : undefined));
    expect(failures, 'before the kill').toEqual([]);
    const midUpload = await until('uploads in progress', 30_000, async () => {
      const running = [...inUpload.values()].filter((u) => u.progress.sent > 0 && u.progress.sent < u.size);
      return running.length > 0 ? running : undefined;
    });
    const counts = new Map<string, number>();
    for (const u of midUpload) counts.set(u.replica, (counts.get(u.replica) ?? 0) + 1);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const victimReplica = replicas.find((r) => r.name === victim)!;
    const sessionsAtKill = new Map(sessionsPerReplica);
    const killedAt = Date.now();
    Object.assign(kill, { victim, at: killedAt });
    await run('docker', ['kill', victimReplica.id!]);
    await Promise.all(clients);
    const runSeconds = (Date.now() - killedAt) / 1000;
    sampling = false;
    await sampler;

    expect(failures, failures.join('\n')).toEqual([]);
    expect(interrupted.length, 'sessions cut by the kill').toBeGreaterThan(0);
    for (const r of interrupted) expect(r.replica).toBe(victim);
    for (const r of reconnectedTo) expect(r.replica, 'new sessions land on the survivors').not.toBe(victim);
    expect(violations, violations.join('\n')).toEqual([]);

    // Every final name holds its complete content; what the kill left behind is hidden temporary files.
    const onDisk = await readdir(data);
    const finals = onDisk.filter((n) => !TEMP_NAME.test(n)).sort();
    expect(finals).toEqual([...expected.keys()].sort());
    for (const name of finals) expect(sha256(await readFile(path.join(data, name))), name).toBe(expected.get(name)!.hash);
    const debris = onDisk.filter((n) => TEMP_NAME.test(n));
    expect(debris.length).toBeLessThanOrEqual(interrupted.filter((r) => r.phase === 'upload').length);

    const survivors = replicas.filter((r) => r.name !== victim);
    /** Every file listed and downloaded intact through a session on `replica`, and in its own view of /data. */
    const checkReplica = async (replica: Replica) => {
      const seen = await filesSeenBy(replica.id!);
      expect(new Map([...seen].sort()), `${replica.name}'s /data`).toEqual(new Map([...expected].map(([n, e]) => [n, e.hash] as const).sort()));
      const session = await until(`a session on ${replica.name}`, 60_000, async () => {
        const s = await connect(false);
        if (s.replica === replica.name) return s;
        // Keep the others open for a moment so leastconn moves on to the replica we want.
        setTimeout(() => s.client.close(), 3000);
        return undefined;
      });
      try {
        const listing = await session.client.list();
        expect(new Map(listing.map((f) => [f.name, f.size] as const).sort())).toEqual(
          new Map([...expected].map(([n, e]) => [n, e.content.length] as const).sort()),
        );
        for (const [name, want] of expected) {
          const chunks: Buffer[] = [];
          await session.client.downloadTo(sink(chunks), name);
          expect(sha256(Buffer.concat(chunks)), `${name} from ${replica.name}`).toBe(want.hash);
        }
        // PASV names HAProxy's address and a port of this replica's own slice.
        const port = await pasvPort(session.client, net.haproxy);
        expect(port).toBeGreaterThanOrEqual(replica.slice.min);
        expect(port).toBeLessThanOrEqual(replica.slice.max);
      } finally {
        session.client.close();
      }
    };
    for (const r of survivors) await checkReplica(r);

    // The killed replica comes back, HAProxy sends sessions to it again, and it sees every file.
    await run('docker', ['start', victimReplica.id!]);
    await checkReplica(victimReplica);

    // Logs: every session's address is the clients' (the network gateway, from PROXY v2), never HAProxy's.
    const perReplica: Record<string, { logins: number; transfers: number; remotes: string[] }> = {};
    for (const r of replicas) {
      const lines = await logLines(r.id!);
      const remotes = [...new Set(lines.filter((l) => typeof l.remote === 'string').map((l) => String(l.remote)))];
      perReplica[r.name] = {
        logins: lines.filter((l) => l.msg === 'login').length,
        transfers: lines.filter((l) => l.msg === 'transfer').length,
        remotes,
      };
      expect(perReplica[r.name]!.logins, `${r.name} logins`).toBeGreaterThan(0);
      expect(remotes, `${r.name}: addresses of its sessions`).toEqual([net.gateway]);
      expect(lines.filter((l) => l.msg === 'refused data connection from a foreign address')).toEqual([]);
    }
    const haproxyLog = await dockerLogs(haproxyId);

    console.log(
      [
        `scale-out: ${CLIENTS} clients × ${ROUNDS} files, ${expected.size} files, ${(bytes / 1024 / 1024).toFixed(1)} MiB moved through HAProxy ` +
          `(upload + download), ${((Date.now() - started) / 1000).toFixed(1)} s in all, ${runSeconds.toFixed(1)} s from the kill to the last client`,
        `sessions per replica at the kill: ${JSON.stringify(Object.fromEntries(sessionsAtKill))}; in all: ${JSON.stringify(Object.fromEntries(sessionsPerReplica))}`,
        `killed ${victim} with ${midUpload.filter((u) => u.replica === victim).length} uploads in flight: ${interrupted.length} sessions cut ` +
          `(${JSON.stringify(interrupted)}), reconnected to ${JSON.stringify(reconnectedTo)}; hidden temporary files left: ${debris.length}; ` +
          `${CLIENTS - new Set(interrupted.map((r) => r.client)).size} clients never lost their session`,
        `shared directory sampled ${samples} times: ${violations.length} partial or wrong files under a final name`,
        `replica logs: ${JSON.stringify(perReplica)}; HAProxy state changes: ${haproxyLog.split('\n').filter((l) => /^\[WARNING\].*Server ftp_control\//.test(l)).map((l) => l.replace(/^\[WARNING\]\s+\(\d+\) : /, '')).join(' | ')}`,
      ].join('\n'),
    );
  }, 300_000);

  it('docker/k8s/scale-out: the pods\' start script and HAProxy\'s configuration route each slice to its pod', async () => {
    const k8s = k8sVariant();
    const name = `ftps-k8s-${tag}`;
    const knet = await createNetwork(name);
    const kdata = await fixture.dataDir();
    const pods: Array<{ name: string; id: string }> = [];
    for (let n = 0; n < k8s.pods; n++) {
      const pod = k8s.podName(n);
      const env = {
        ...k8s.env,
        PASV_ADDRESS: knet.haproxy,
        // The pod network, as in the ConfigMap: here the test network.
        PROXY_TRUSTED_CIDRS: knet.subnet,
        FTP_PASSWORD: PASSWORD,
        FTP_USER: USER,
        FTPS_BANNER: `ftps-gateway ready (${pod})`,
      };
      // The pod's host name and its Service's cluster DNS name, which haproxy.cfg connects to.
      const { stdout } = await run('docker', [
        'run', '-d', '--name', `${name}-${n}`, '--hostname', pod, '--network', name, '--network-alias', `${pod}.${k8s.namespace}.svc.cluster.local`,
        '--read-only', '--tmpfs', '/tmp:rw,size=16m', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true', '-v', `${kdata}:/data`,
        ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), '--entrypoint', '/bin/sh', IMAGE, '-c', k8s.script,
      ]);
      pods.push({ name: pod, id: fixture.trackId(stdout.trim()) });
    }
    const { stdout: hid } = await run('docker', [
      'run', '-d', '--name', `${name}-haproxy`, '--network', name, '--ip', knet.haproxy, '--read-only', '--cap-drop', 'ALL',
      '--security-opt', 'no-new-privileges:true', '-v', `${k8s.haproxyCfg}:/usr/local/etc/haproxy/haproxy.cfg:ro`, haproxyImage,
    ]);
    fixture.trackId(hid.trim());
    for (const p of pods) {
      await until(`${p.name} listening`, 30_000, async () => ((await dockerLogs(p.id)).includes('"msg":"listening"') ? true : undefined));
    }
    // HAProxy's own readiness endpoint (the Deployment's probes).
    const monitor = () => fetch(`http://${knet.haproxy}:8404/healthz`).then((r) => r.status);
    await until('HAProxy ready', 30_000, async () => ((await monitor()) === 200 ? true : undefined));

    // One session on each pod (HAProxy's control port 2121, which service-lb.yaml publishes as 21).
    const sessions = new Map<string, Client>();
    const extra: Client[] = [];
    try {
      await until('a session on every pod', 60_000, async () => {
        const s = await ftpsSession(knet.haproxy, 2121, true);
        if (sessions.has(s.replica)) extra.push(s.client);
        else sessions.set(s.replica, s.client);
        return sessions.size === k8s.pods ? true : undefined;
      });
      const contents = new Map(pods.map((p) => [p.name, randomBytes(200 * KiB)]));
      for (const [n, p] of pods.entries()) {
        const client = sessions.get(p.name)!;
        const port = await pasvPort(client, knet.haproxy);
        expect(port).toBeGreaterThanOrEqual(k8s.slice(n).min);
        expect(port).toBeLessThanOrEqual(k8s.slice(n).max);
        await client.uploadFrom(Readable.from([contents.get(p.name)!]), `${p.name}.bin`);
      }
      // Every file through every pod: one volume.
      for (const p of pods) {
        for (const [file, content] of contents) {
          const chunks: Buffer[] = [];
          await sessions.get(p.name)!.downloadTo(sink(chunks), `${file}.bin`);
          expect(sha256(Buffer.concat(chunks)), `${file}.bin through ${p.name}`).toBe(sha256(content));
        }
      }
    } finally {
      for (const c of [...sessions.values(), ...extra]) c.close();
    }
    for (const p of pods) {
      const remotes = new Set((await logLines(p.id)).filter((l) => typeof l.remote === 'string').map((l) => l.remote));
      expect([...remotes], `${p.name}: addresses of its sessions`).toEqual([knet.gateway]);
    }
    // No gateway pod left: HAProxy reports itself not ready.
    await run('docker', ['stop', '-t', '2', ...pods.map((p) => p.id)]);
    await until('HAProxy not ready', 30_000, async () => ((await monitor()) === 503 ? true : undefined));
  }, 180_000);
});
