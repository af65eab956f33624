/*
 * docker/scale-out as it ships: three gateway replicas on one shared directory behind HAProxy (the image
 * built from docker/scale-out/haproxy with its haproxy.cfg unchanged), each replica with the environment
 * of docker/scale-out/compose.yml (one shared passive port per replica). 30 FTPS clients from one address
 * upload and download through HAProxy with SHA-256 checks while one replica is killed
 * (test/support/scale-out.ts, shared with the S3 variant); afterwards every file is checked on every replica.
 * On the same stack, one replica is then stopped gracefully (docker stop) mid-upload and mid-download: HAProxy
 * drains it (/readyz 404), its transfers finish, new sessions go to the others.
 *
 * The Kubernetes variant (docker/k8s/scale-out) gets the same treatment without a cluster: its pods' start
 * script and its haproxy.cfg, with containers named like the pods and reachable under the per-pod Services'
 * DNS names.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  composeReplicas, createNetwork, describeRun, dockerLogs, dockerRun, drainOneReplica, envArgs, ftpsSession, HARDENED, KiB,
  killOneReplicaUnderLoad, logLines, MiB, pasvPort, SCALE_OUT_PASSWORD, SCALE_OUT_USER, ScaleOutStack, sink, until, type Replica, type StorageView,
} from '../support/scale-out.js';
import { ContainerFixture, IMAGE, run, sha256, skipContainers, testImage } from './support.js';

const SCALE_OUT = path.resolve('docker/scale-out');
const TEMP_NAME = /^\.ftps-upload-[0-9a-f]{16}\.tmp$/;
const RUN = { clients: 30, rounds: 3, size: () => 128 * KiB + Math.floor(Math.random() * 896 * KiB), killPastBytes: 0 };

const fixture = new ContainerFixture();

/**
 * The shared directory as the host sees it: final names only, not the server's hidden files (uploads' temporary
 * files, /readyz's probe files).
 */
function directoryView(dir: string): StorageView {
  return {
    async list() {
      const names = (await readdir(dir)).filter((n) => !n.startsWith('.'));
      const entries = await Promise.all(names.map(async (name) => {
        const s = await stat(path.join(dir, name)).catch(() => undefined);
        return s && { name, version: `${s.ino}:${s.size}:${s.mtimeMs}` };
      }));
      return entries.filter((e) => e !== undefined);
    },
    read: (name) => readFile(path.join(dir, name)).catch(() => undefined),
  };
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

describe.skipIf(skipContainers)('scale-out: 3 replicas behind HAProxy on shared storage (docker/scale-out)', () => {
  const replicas = composeReplicas(path.join(SCALE_OUT, 'compose.yml'));
  const tag = randomBytes(3).toString('hex');
  let haproxyImage: string;
  /** The stack of the kill run, reused by the drain run. */
  let killRunStack: ScaleOutStack | undefined;

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
    const stack = new ScaleOutStack(fixture, await createNetwork(fixture, `ftps-scale-out-${tag}`), replicas);
    killRunStack = stack;
    const data = await fixture.dataDir();
    await stack.start({ replicaArgs: ['-v', `${data}:/data`], haproxyImage });

    const result = await killOneReplicaUnderLoad(stack, { ...RUN, storage: directoryView(data) });

    // What the kill left behind is hidden temporary files, at most one per cut upload.
    const debris = (await readdir(data)).filter((n) => TEMP_NAME.test(n));
    expect(debris.length).toBeLessThanOrEqual(result.cut.size);

    /** Every replica's own view of /data has every stored file, and serves each intact. */
    const checkReplica = async (replica: Replica) => {
      const seen = await filesSeenBy(replica.id!);
      expect(new Map([...seen].sort()), `${replica.name}'s /data`).toEqual(new Map([...result.finals].map(([n, c]) => [n, sha256(c)] as const).sort()));
      await stack.checkThrough(replica, result.finals);
    };
    for (const r of replicas.filter((r) => r !== result.victim)) await checkReplica(r);
    // The killed replica comes back, HAProxy sends sessions to it again, and it sees every file.
    await run('docker', ['start', result.victim.id!]);
    await checkReplica(result.victim);

    const perReplica = await stack.checkLogs();
    console.log(
      [
        `scale-out: ${((Date.now() - started) / 1000).toFixed(1)} s in all`,
        describeRun(stack, result),
        `hidden temporary files left: ${debris.length}`,
        `replica logs: ${JSON.stringify(perReplica)}; HAProxy state changes: ${await stack.haproxyStateChanges()}`,
      ].join('\n'),
    );
  }, 300_000);

  it('a replica stopped gracefully (docker stop) finishes its running upload and download through HAProxy, new sessions go elsewhere', async () => {
    expect(killRunStack, 'the stack of the kill run').toBeDefined();
    const started = Date.now();
    const r = await drainOneReplica(killRunStack!, replicas[0]!, 12 * MiB);
    console.log(
      [
        `drain: ${((Date.now() - started) / 1000).toFixed(1)} s in all; docker stop of ${r.drained.name}: upload 226 after ${r.uploadMs} ms, ` +
          `download 226 after ${r.downloadMs} ms, exit 0 after ${r.stopMs} ms`,
        `sessions opened meanwhile: ${r.newSessions.join(', ')}`,
        `HAProxy state changes: ${r.haproxy}`,
      ].join('\n'),
    );
  }, 120_000);

  it('docker/k8s/scale-out: the pods\' start script and HAProxy\'s configuration route each slice to its pod', async () => {
    const k8s = k8sVariant();
    const name = `ftps-k8s-${tag}`;
    const knet = await createNetwork(fixture, name);
    const kdata = await fixture.dataDir();
    const pods: Array<{ name: string; id: string }> = [];
    for (let n = 0; n < k8s.pods; n++) {
      const pod = k8s.podName(n);
      const env = {
        ...k8s.env,
        PASV_ADDRESS: knet.haproxy,
        // The pod network, as in the ConfigMap: here the test network.
        PROXY_TRUSTED_CIDRS: knet.subnet,
        FTP_PASSWORD: SCALE_OUT_PASSWORD,
        FTP_USER: SCALE_OUT_USER,
        FTPS_BANNER: `ftps-gateway ready (${pod})`,
      };
      // The pod's host name and its Service's cluster DNS name, which haproxy.cfg connects to.
      const id = await dockerRun(fixture, [
        '--name', `${name}-${n}`, '--hostname', pod, '--network', name, '--network-alias', `${pod}.${k8s.namespace}.svc.cluster.local`,
        ...HARDENED, '-v', `${kdata}:/data`, ...envArgs(env), '--entrypoint', '/bin/sh', IMAGE, '-c', k8s.script,
      ]);
      pods.push({ name: pod, id });
    }
    await dockerRun(fixture, [
      '--name', `${name}-haproxy`, '--network', name, '--ip', knet.haproxy, '--read-only', '--cap-drop', 'ALL',
      '--security-opt', 'no-new-privileges:true', '-v', `${k8s.haproxyCfg}:/usr/local/etc/haproxy/haproxy.cfg:ro`, haproxyImage,
    ]);
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
