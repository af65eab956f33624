/**
 * The scale-out deployments hold together without a Docker engine or a cluster: docker/scale-out
 * (compose.yml + haproxy/haproxy.cfg) and docker/k8s/scale-out (StatefulSet, per-pod Services, HAProxy).
 * Above all: every replica has its own passive slice, the slices are disjoint, and the load balancer sends
 * each slice — and nothing else — to the replica that owns it, with PROXY protocol v2 on both ends.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadVariables } from '../../../src/config/load.js';
import { variablesSchema } from '../../../src/config/schema.js';
import { at, isObj, kustomize, listAt, load, objAt, ROOT, type Obj } from './yaml-support.js';

const COMPOSE_DIR = path.join(ROOT, 'docker/scale-out');
const K8S_DIR = path.join(ROOT, 'docker/k8s/scale-out');
/** The server's defaults (an empty environment). */
const DEFAULTS = variablesSchema.parse({});

type Range = { min: number; max: number };

const range = ({ min, max }: Range) => Array.from({ length: max - min + 1 }, (_, i) => min + i);

function expectDisjoint(slices: Range[]): void {
  const sorted = [...slices].sort((a, b) => a.min - b.min);
  for (const [i, s] of sorted.entries()) {
    expect(s.max, `slice ${s.min}-${s.max}`).toBeGreaterThanOrEqual(s.min);
    if (i > 0) expect(s.min, `slice ${s.min}-${s.max} overlaps the one before`).toBeGreaterThan(sorted[i - 1]!.max);
  }
}

// --- haproxy.cfg ---------------------------------------------------------------------------------

type Section = { kind: string; name: string; lines: string[][] };

/** Sections and their lines as words, comments dropped. */
function parseHaproxy(file: string): Section[] {
  const sections: Section[] = [];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const words = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    if (/^\S/.test(raw)) sections.push({ kind: words[0]!, name: words[1] ?? '', lines: [] });
    else sections.at(-1)!.lines.push(words);
  }
  return sections;
}

/** The value after `keyword` on a line (server options: `check port 8080` → option('port') = '8080'). */
const after = (line: string[], keyword: string) => {
  const i = line.indexOf(keyword);
  return i < 0 ? undefined : line[i + 1];
};

function haproxyView(file: string) {
  const sections = parseHaproxy(file);
  const find = (kind: string, name: string) => sections.find((s) => s.kind === kind && s.name === name);
  const defaults = sections.find((s) => s.kind === 'defaults')!;
  const seconds = (key: string) => {
    const value = defaults.lines.find((l) => l[0] === 'timeout' && l[1] === key)?.[2] ?? '';
    const m = /^(\d+)(ms|s|m|h)?$/.exec(value);
    expect(m, `timeout ${key} ${value}`).not.toBeNull();
    const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
    return Number(m![1]) * unit[m![2] ?? 'ms']!;
  };
  /** frontend → its binds (port ranges) and the servers of its default backend. */
  const frontends = sections
    .filter((s) => s.kind === 'frontend')
    .map((f) => {
      const binds = f.lines
        .filter((l) => l[0] === 'bind')
        .map((l) => {
          const [a, b = a] = l[1]!.replace(/^.*:/, '').split('-').map(Number);
          return { min: a!, max: b! };
        });
      const backendName = f.lines.find((l) => l[0] === 'default_backend')?.[1];
      const backend = backendName === undefined ? undefined : find('backend', backendName);
      const servers = (backend?.lines ?? [])
        .filter((l) => l[0] === 'server')
        .map((l) => {
          const [host, port] = l[2]!.split(':');
          return { name: l[1]!, host: host!, port, line: l };
        });
      return { name: f.name, mode: f.lines.find((l) => l[0] === 'mode')?.[1] ?? 'tcp', binds, backend, servers };
    });
  return { sections, defaults, seconds, frontends, find };
}

/**
 * A draining replica (/readyz 404: listener closed, transfers running) keeps its sessions: disable-on-404 puts it in
 * drain instead of down (on every backend: a tracking server must share the option), a refused connection only brings
 * the next check forward (mark-down would cut the running transfers), and each passive backend picks its one server
 * by use-server, which also takes a draining server (a balancer would skip it and refuse the data connection).
 */
function expectDrainKeepsSessions(cfg: ReturnType<typeof haproxyView>) {
  expect(cfg.defaults.lines).toContainEqual(['http-check', 'disable-on-404']);
  const [control, ...passive] = cfg.frontends.filter((f) => f.mode === 'tcp').sort((a, b) => a.binds[0]!.min - b.binds[0]!.min);
  for (const s of control!.servers) expect(after(s.line, 'on-error'), s.name).toBe('fastinter');
  for (const f of passive) expect(f.backend!.lines, f.name).toContainEqual(['use-server', f.servers[0]!.name, 'if', 'TRUE']);
  for (const section of cfg.sections) expect(section.lines.flat(), section.name).not.toContain('mark-down');
}

// --- docker/scale-out ----------------------------------------------------------------------------

// compose.yml shares a volume; compose.s3.yml shares nothing but a bucket. Both use haproxy/ as it is.
describe.each([
  ['compose.yml', 'volume'],
  ['compose.s3.yml', 's3'],
] as const)('docker/scale-out/%s with haproxy/haproxy.cfg', (composeFile, storage) => {
  const [compose] = load(path.join(COMPOSE_DIR, composeFile));
  const services = objAt(compose, 'services');
  const gatewayNames = Object.keys(services).filter((n) => at(services[n], 'image') === 'ftps-gateway:latest');
  const envOf = (name: string) => {
    const env = objAt(services[name], 'environment') as Record<string, string>;
    for (const [k, v] of Object.entries(env)) expect(typeof v, `${name}: ${k} must be a string`).toBe('string');
    return env;
  };
  /** ${VAR:-default} → default. */
  const withDefault = (v: string | undefined) => v?.replace(/\$\{[A-Z0-9_]+:?-([^}]*)\}/g, '$1');
  const replicas = gatewayNames.map((name) => {
    const env = envOf(name);
    return { name, env, slice: { min: Number(env.PASV_MIN_PORT), max: Number(env.PASV_MAX_PORT) } };
  });
  const haproxy = objAt(services, 'haproxy');
  const haproxyIp = String(at(haproxy, 'networks.ftps.ipv4_address'));
  const cfg = haproxyView(path.join(COMPOSE_DIR, 'haproxy/haproxy.cfg'));

  it('runs 3 replicas of the gateway image and HAProxy built from haproxy/', () => {
    expect(gatewayNames).toEqual(['ftps-1', 'ftps-2', 'ftps-3']);
    expect(Object.keys(services).sort()).toEqual([...gatewayNames, 'haproxy'].sort());
    for (const name of gatewayNames) expect(at(services[name], 'build')).toBe('../..');
    expect(haproxy.build).toBe('./haproxy');
    const dockerfile = readFileSync(path.join(COMPOSE_DIR, 'haproxy/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:24-bookworm-slim$/m);
    expect(dockerfile).toMatch(/apt-get install [^\n]*\bhaproxy\b/);
    expect(dockerfile).toMatch(/^COPY haproxy\.cfg /m);
    expect(dockerfile).toMatch(/^USER [1-9]/m);
  });

  it('gives each replica its own passive slice, disjoint from the others', () => {
    for (const r of replicas) expect(Number.isInteger(r.slice.min) && Number.isInteger(r.slice.max), r.name).toBe(true);
    expectDisjoint(replicas.map((r) => r.slice));
  });

  it('shares each replica\'s one passive port among its sessions (two ports per replica)', () => {
    for (const r of replicas) {
      expect(r.slice.max - r.slice.min + 1, r.name).toBe(1);
      expect(r.env.PASV_PORT_SHARING, r.name).toBe('true');
    }
  });

  const mountsOf = (name: string) => ((at(services[name], 'volumes') ?? []) as string[]).map((v) => String(v).split(':'));

  it.runIf(storage === 'volume')('mounts one volume at /data on every replica', () => {
    const sources = replicas.map((r) => {
      const mount = mountsOf(r.name).find((v) => v[1] === '/data');
      expect(mount, `${r.name}: a mount at /data`).toBeDefined();
      return mount![0]!;
    });
    expect(new Set(sources).size).toBe(1);
    expect(Object.keys(objAt(compose, 'volumes'))).toContain(sources[0]);
  });

  it.runIf(storage === 's3')('shares no volume: the same bucket everywhere, required from the shell, only read-only configuration mounted', () => {
    expect(at(compose, 'volumes')).toBeUndefined();
    for (const r of replicas) {
      expect(r.env.STORAGE_BACKEND, r.name).toBe('s3');
      // Bind mounts of configuration only, read-only; no named volume, nothing at FTP_ROOT or STATE_DIR.
      for (const [source, target, mode] of mountsOf(r.name)) {
        expect(source, `${r.name}: ${target}`).toMatch(/^\.\//);
        expect(mode, `${r.name}: ${target}`).toBe('ro');
        expect([r.env.FTP_ROOT ?? DEFAULTS.FTP_ROOT, r.env.STATE_DIR ?? DEFAULTS.STATE_DIR]).not.toContain(target);
      }
      // The image declares FTP_ROOT (/data) a VOLUME: a tmpfs there, or Docker makes an anonymous volume per replica.
      const tmpfs = (at(services[r.name], 'tmpfs') as string[]).map((t) => t.split(':')[0]);
      expect(tmpfs, r.name).toContain(r.env.FTP_ROOT ?? DEFAULTS.FTP_ROOT);
    }
    const s3Names = Object.keys(replicas[0]!.env).filter((k) => k.startsWith('S3_'));
    for (const key of ['STORAGE_BACKEND', ...s3Names]) expect(new Set(replicas.map((r) => r.env[key])).size, key).toBe(1);
    expect(replicas[0]!.env.S3_BUCKET).toMatch(/^\$\{S3_BUCKET:\?[^}]*\}$/);
    // Every S3 setting from the shell (.env), with the server's own default where it has one.
    for (const key of s3Names.filter((k) => k !== 'S3_BUCKET')) {
      const m = /^\$\{([A-Z0-9_]+):-([^}]*)\}$/.exec(replicas[0]!.env[key]!);
      expect(m?.[1], key).toBe(key);
      const fallback = m![2]!;
      const serverDefault = (DEFAULTS as Record<string, unknown>)[key];
      expect(fallback, `${key}'s fallback is the server's default`).toBe(serverDefault === undefined ? '' : String(serverDefault));
    }
  });

  it.runIf(storage === 's3')('gives every replica the same certificate from a read-only mount, and fails without it', () => {
    for (const r of replicas) {
      // Set explicitly: a missing file stops the replica instead of each one making its own self-signed pair.
      for (const key of ['TLS_CERT_PATH', 'TLS_KEY_PATH'] as const) {
        const file = r.env[key];
        expect(file, `${r.name}: ${key}`).toMatch(/^\//);
        const mount = mountsOf(r.name).find(([, target]) => file!.startsWith(`${target}/`));
        expect(mount?.[2], `${r.name}: ${key} in a read-only mount`).toBe('ro');
      }
    }
  });

  it('sets the same account and PASV address everywhere, the password required from the shell', () => {
    for (const key of ['PASV_ADDRESS', 'FTP_USER', 'FTP_PASSWORD']) {
      expect(new Set(replicas.map((r) => r.env[key])).size, key).toBe(1);
    }
    expect(withDefault(replicas[0]!.env.PASV_ADDRESS)).toMatch(/\S/);
    // A random password per replica would be useless: ${FTP_PASSWORD:?…} makes Compose refuse to start without one.
    expect(replicas[0]!.env.FTP_PASSWORD).toMatch(/^\$\{FTP_PASSWORD:\?[^}]*\}$/);
  });

  it('speaks PROXY v2 on both ends, trusting only HAProxy\'s pinned address inside the pinned subnet', () => {
    const subnet = String(listAt(compose, 'networks.ftps.ipam.config')[0]!.subnet);
    const [base, bits] = subnet.split('/');
    expect(Number(bits)).toBeGreaterThanOrEqual(16);
    const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
    const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
    expect((toInt(haproxyIp) & mask) >>> 0, `${haproxyIp} in ${subnet}`).toBe((toInt(base!) & mask) >>> 0);
    for (const r of replicas) {
      expect(r.env.PROXY_PROTOCOL, r.name).toBe('v2');
      expect(r.env.PROXY_TRUSTED_CIDRS, r.name).toBe(`${haproxyIp}/32`);
      expect(Object.keys(objAt(services[r.name], 'networks'))).toEqual(['ftps']);
    }
    const servers = cfg.frontends.flatMap((f) => f.servers);
    expect(servers.length).toBeGreaterThan(0);
    for (const s of servers) expect(s.line, `server ${s.name}`).toContain('send-proxy-v2');
    // Health checks go to the HTTP port without a PROXY header (check-send-proxy would add one).
    for (const s of servers) expect(s.line).not.toContain('check-send-proxy');
  });

  it('spreads control connections over every replica on its control port, checked on /readyz at HTTP_PORT', () => {
    const control = cfg.frontends.find((f) => f.binds.some((b) => b.min === 21));
    expect(control, 'a frontend on port 21').toBeDefined();
    expect(control!.binds).toEqual([{ min: 21, max: 21 }]);
    expect(control!.servers.map((s) => s.host).sort()).toEqual(gatewayNames);
    for (const s of control!.servers) {
      const env = replicas.find((r) => r.name === s.host)!.env;
      expect(Number(s.port), s.name).toBe(Number(env.FTPS_PORT ?? DEFAULTS.FTPS_PORT));
      expect(s.line).toContain('check');
      expect(Number(after(s.line, 'port')), `${s.name} check port`).toBe(Number(env.HTTP_PORT ?? DEFAULTS.HTTP_PORT));
    }
    const backend = control!.backend!.lines;
    expect(['leastconn', 'roundrobin']).toContain(backend.find((l) => l[0] === 'balance')?.[1]);
    expect(backend).toContainEqual(['option', 'httpchk', 'GET', '/readyz']);
  });

  it('keeps the sessions of a draining replica (docker stop), and cuts those of one marked down', () => {
    expectDrainKeepsSessions(cfg);
    expect(cfg.defaults.lines.find((l) => l[0] === 'default-server')).toEqual(expect.arrayContaining(['on-marked-down', 'shutdown-sessions']));
  });

  it('sends each passive slice to the replica that owns it, on the same port, and nothing else', () => {
    const passive = cfg.frontends.filter((f) => f.binds.every((b) => b.min >= 1024));
    expect(passive.map((f) => f.binds).sort((a, b) => a[0]!.min - b[0]!.min)).toEqual(
      replicas.map((r) => [r.slice]).sort((a, b) => a[0]!.min - b[0]!.min),
    );
    for (const f of passive) {
      const owner = replicas.find((r) => r.slice.min === f.binds[0]!.min)!;
      expect(f.servers.map((s) => s.host), f.name).toEqual([owner.name]);
      // No port: HAProxy connects to the port the client connected to.
      expect(f.servers[0]!.port, f.name).toBeUndefined();
      expect(after(f.servers[0]!.line, 'track'), f.name).toMatch(new RegExp(`/${owner.name}$`));
    }
  });

  it('publishes 21 and every slice 1:1 on HAProxy, and nothing on the replicas', () => {
    const published = (at(haproxy, 'ports') as string[]).map(String).flatMap((p) => {
      const [host, container] = p.split(':').map((part) => part.split('-').map(Number));
      return range({ min: container![0]!, max: container![1] ?? container![0]! }).map((c, i) => ({ host: host![0]! + i, container: c }));
    });
    const expected = [21, ...replicas.flatMap((r) => range(r.slice))].map((p) => ({ host: p, container: p }));
    expect(published.sort((a, b) => a.container - b.container)).toEqual(expected.sort((a, b) => a.container - b.container));
    for (const r of replicas) expect(at(services[r.name], 'ports'), r.name).toBeUndefined();
  });

  it('keeps FTP sessions longer than the gateway\'s idle timeout', () => {
    for (const key of ['client', 'server']) {
      expect(cfg.seconds(key), `timeout ${key}`).toBeGreaterThanOrEqual(Number(DEFAULTS.IDLE_TIMEOUT_SECONDS));
    }
    expect(cfg.defaults.lines).toContainEqual(['mode', 'tcp']);
  });

  it('hardens every container and lets the gateway\'s grace period run', () => {
    for (const name of [...gatewayNames, 'haproxy']) {
      const s = objAt(services, name);
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toContain('ALL');
      expect(s.security_opt, name).toContain('no-new-privileges:true');
      expect(s.restart, name).toBe('unless-stopped');
      // README "Stopping": SHUTDOWN_GRACE_SECONDS plus 10 s, everywhere.
      expect(Number(/^(\d+)s$/.exec(String(s.stop_grace_period))?.[1]), name).toBe(Number(DEFAULTS.SHUTDOWN_GRACE_SECONDS) + 10);
    }
    for (const name of gatewayNames) expect(at(services[name], 'tmpfs'), name).toContain('/tmp');
  });
});

// --- docker/k8s/scale-out --------------------------------------------------------------------------

describe('docker/k8s/scale-out', () => {
  const kustomization = load(path.join(K8S_DIR, 'kustomization.yaml'))[0]!;
  const files = readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
  const docs = files.flatMap((f) => load(path.join(K8S_DIR, f)).map((doc) => ({ file: f, doc })));
  const all = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc);
  const named = (kind: string, name: string) => {
    const found = all(kind).filter((d) => at(d, 'metadata.name') === name);
    expect(found, `${kind} ${name}`).toHaveLength(1);
    return found[0]!;
  };
  const namespace = String(kustomization.namespace);
  const [statefulSet] = all('StatefulSet');
  const podSpec = objAt(statefulSet, 'spec.template.spec');
  const container = listAt(podSpec, 'containers')[0]!;
  const configMap = named('ConfigMap', String(at(listAt(container, 'envFrom')[0], 'configMapRef.name')));
  const env = objAt(configMap, 'data') as Record<string, string>;
  const replicas = Number(at(statefulSet, 'spec.replicas'));
  const podName = (n: number) => `${String(at(statefulSet, 'metadata.name'))}-${n}`;
  const containerPort = (c: Obj, name: string) => listAt(c, 'ports').find((p) => p.name === name)?.containerPort;
  const cfg = haproxyView(path.join(K8S_DIR, 'haproxy.cfg'));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'slice-script-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs the container's start script as the pod `hostname` would, with a `node` that prints the slice. */
  function runStartScript(hostname: string): { status: number | null; stdout: string; stderr: string; argv: string } {
    const command = at(container, 'command') as string[];
    const args = at(container, 'args') as string[];
    expect(command).toEqual(['/bin/sh', '-c']);
    writeFileSync(path.join(tmp, 'node'), '#!/bin/sh\necho "$PASV_MIN_PORT $PASV_MAX_PORT"\necho "node $*" >&2\n');
    chmodSync(path.join(tmp, 'node'), 0o755);
    const r = spawnSync('/bin/sh', ['-c', args[0]!], { env: { PATH: `${tmp}:/usr/bin:/bin`, HOSTNAME: hostname }, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, argv: r.stderr.trim() };
  }
  const slices = Array.from({ length: replicas }, (_, n) => {
    const [min, max] = runStartScript(podName(n)).stdout.trim().split(' ').map(Number);
    return { pod: podName(n), min: min!, max: max! };
  });

  it('kustomization.yaml lists every manifest, in its own namespace, and generates the HAProxy ConfigMap from haproxy.cfg', () => {
    expect([...(kustomization.resources as string[])].sort()).toEqual([...files].sort());
    expect(named('Namespace', namespace)).toBeDefined();
    const generated = listAt(kustomization, 'configMapGenerator');
    expect(generated).toContainEqual({ name: 'ftps-gateway-haproxy', files: ['haproxy.cfg'] });
    for (const f of generated.flatMap((g) => g.files as string[])) expect(existsSync(path.join(K8S_DIR, f)), f).toBe(true);
    // Not the single-replica namespace: the two variants must not select each other's pods.
    expect(namespace).not.toBe('ftps-gateway');
  });

  it('runs 3 pods of a StatefulSet on one ReadWriteMany claim', () => {
    expect(replicas).toBe(3);
    expect(at(statefulSet, 'spec.volumeClaimTemplates')).toBeUndefined();
    const data = listAt(podSpec, 'volumes').find((v) => v.name === listAt(container, 'volumeMounts').find((m) => m.mountPath === '/data')?.name);
    const pvc = named('PersistentVolumeClaim', String(at(data, 'persistentVolumeClaim.claimName')));
    expect(at(pvc, 'spec.accessModes')).toEqual(['ReadWriteMany']);
    const governing = named('Service', String(at(statefulSet, 'spec.serviceName')));
    expect(at(governing, 'spec.clusterIP')).toBe('None');
  });

  it('each pod computes its one shared passive port from its ordinal, and refuses a name without one', () => {
    expect(slices.map((s) => s.max - s.min + 1)).toEqual([1, 1, 1]);
    expect(env.PASV_PORT_SHARING).toBe('true');
    expectDisjoint(slices);
    expect(slices[0]!.min).toBe(30_000);
    const bad = runStartScript('ftps-gateway');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('cannot read the pod ordinal');
    expect(env.PASV_MIN_PORT).toBeUndefined();
    expect(env.PASV_MAX_PORT).toBeUndefined();
  });

  it('the start script ends in the image\'s own ENTRYPOINT and CMD', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const json = (key: string) => JSON.parse(new RegExp(`^${key} (\\[.*\\])$`, 'm').exec(dockerfile)![1]!) as string[];
    expect(runStartScript(podName(0)).argv).toBe([...json('ENTRYPOINT'), ...json('CMD')].join(' '));
  });

  it('one Service per pod publishes its control port, HTTP port and exactly its slice, 1:1', () => {
    for (const s of slices) {
      const service = named('Service', s.pod);
      expect(at(service, 'spec.type') ?? 'ClusterIP').toBe('ClusterIP');
      expect(objAt(service, 'spec.selector')).toMatchObject({ 'statefulset.kubernetes.io/pod-name': s.pod });
      const ports = listAt(service, 'spec.ports');
      const byName = (n: string) => ports.find((p) => p.name === n);
      expect(containerPort(container, String(byName('ftp')?.targetPort))).toBe(Number(env.FTPS_PORT));
      expect(containerPort(container, String(byName('http')?.targetPort))).toBe(Number(env.HTTP_PORT ?? DEFAULTS.HTTP_PORT));
      const passive = ports.filter((p) => p.name !== 'ftp' && p.name !== 'http');
      expect(passive.map((p) => Number(p.port)).sort((a, b) => a - b)).toEqual(range(s));
      for (const p of passive) expect(p.targetPort, `${s.pod} port ${String(p.port)}`).toBe(p.port);
    }
  });

  it('HAProxy sends control connections to every pod and each slice to its pod\'s Service, with PROXY v2', () => {
    const fqdn = (service: string) => `${service}.${namespace}.svc.cluster.local`;
    const control = cfg.frontends.find((f) => f.servers.some((s) => s.line.includes('check')) && f.mode === 'tcp')!;
    expect(control.servers.map((s) => s.host)).toEqual(slices.map((s) => fqdn(s.pod)));
    for (const s of control.servers) {
      expect(Number(s.port)).toBe(Number(env.FTPS_PORT));
      expect(Number(after(s.line, 'port'))).toBe(Number(env.HTTP_PORT ?? DEFAULTS.HTTP_PORT));
      expect(s.line).toContain('send-proxy-v2');
    }
    expect(control.backend!.lines).toContainEqual(['option', 'httpchk', 'GET', '/readyz']);
    const passive = cfg.frontends.filter((f) => f !== control && f.mode === 'tcp');
    expect(passive.map((f) => f.binds[0]).sort((a, b) => a!.min - b!.min)).toEqual(slices.map(({ min, max }) => ({ min, max })));
    for (const f of passive) {
      const owner = slices.find((s) => s.min === f.binds[0]!.min)!;
      expect(f.servers.map((s) => [s.host, s.port])).toEqual([[fqdn(owner.pod), undefined]]);
      expect(f.servers[0]!.line).toContain('send-proxy-v2');
    }
    for (const key of ['client', 'server']) expect(cfg.seconds(key)).toBeGreaterThanOrEqual(Number(DEFAULTS.IDLE_TIMEOUT_SECONDS));
  });

  it('a draining pod keeps its sessions: HAProxy drains it, and its Service keeps it while it is not ready', () => {
    expectDrainKeepsSessions(cfg);
    for (const s of slices) expect(at(named('Service', s.pod), 'spec.publishNotReadyAddresses'), s.pod).toBe(true);
  });

  it('the external Service is HAProxy\'s: 21 to its control port and every slice 1:1, client IP kept', () => {
    const [haproxy] = all('Deployment');
    const haproxyContainer = listAt(haproxy, 'spec.template.spec.containers')[0]!;
    const lb = all('Service').find((s) => at(s, 'spec.type') === 'LoadBalancer')!;
    expect(at(lb, 'spec.externalTrafficPolicy')).toBe('Local');
    expect(objAt(haproxy, 'spec.template.metadata.labels')).toMatchObject(objAt(lb, 'spec.selector'));
    const ports = listAt(lb, 'spec.ports');
    const control = ports.find((p) => p.port === 21)!;
    const controlPort = containerPort(haproxyContainer, String(control.targetPort));
    expect(cfg.frontends.some((f) => f.binds.some((b) => b.min === controlPort && b.max === controlPort))).toBe(true);
    const passive = ports.filter((p) => p !== control);
    expect(passive.map((p) => Number(p.port)).sort((a, b) => a - b)).toEqual(slices.flatMap(range));
    for (const p of passive) expect(p.targetPort).toBe(p.port);
    // The configuration is the generated ConfigMap, mounted where the image reads it.
    const volume = listAt(haproxy, 'spec.template.spec.volumes').find((v) => at(v, 'configMap.name') === 'ftps-gateway-haproxy');
    expect(volume).toBeDefined();
    expect(listAt(haproxyContainer, 'volumeMounts').find((m) => m.name === volume!.name)?.mountPath).toBe('/usr/local/etc/haproxy');
  });

  it('the gateway pods trust PROXY v2 headers, and only HAProxy\'s pods reach their FTP ports', () => {
    expect(env.PROXY_PROTOCOL).toBe('v2');
    expect(env.PROXY_TRUSTED_CIDRS).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    expect(env.PASV_ADDRESS).toMatch(/\S/);
    const [policy] = all('NetworkPolicy');
    expect(objAt(policy, 'spec.podSelector.matchLabels')).toEqual(objAt(statefulSet, 'spec.selector.matchLabels'));
    const ftpRule = listAt(policy, 'spec.ingress').find((r) => listAt(r, 'ports').some((p) => p.port === Number(env.FTPS_PORT)))!;
    const [haproxy] = all('Deployment');
    expect(objAt(haproxy, 'spec.template.metadata.labels')).toMatchObject(objAt(listAt(ftpRule, 'from')[0], 'podSelector.matchLabels'));
    const passiveRule = listAt(ftpRule, 'ports').find((p) => p.endPort !== undefined)!;
    expect({ min: passiveRule.port, max: passiveRule.endPort }).toEqual({ min: slices[0]!.min, max: slices.at(-1)!.max });
  });

  it('probes use the HTTP endpoint: /healthz for liveness, /readyz for readiness', () => {
    const httpPort = containerPort(container, 'http');
    expect(httpPort).toBe(Number(env.HTTP_PORT ?? DEFAULTS.HTTP_PORT));
    expect(objAt(container, 'livenessProbe.httpGet')).toMatchObject({ path: '/healthz', port: 'http' });
    expect(objAt(container, 'readinessProbe.httpGet')).toMatchObject({ path: '/readyz', port: 'http' });
    expect(Number(at(podSpec, 'terminationGracePeriodSeconds'))).toBe(Number(env.SHUTDOWN_GRACE_SECONDS ?? DEFAULTS.SHUTDOWN_GRACE_SECONDS) + 10);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)('kubectl kustomize renders it (skipped without kubectl)', () => {
    const rendered = parseAllDocuments(execFileSync('kubectl', ['kustomize', K8S_DIR], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
    expect(rendered.length).toBe(docs.length + 1);
    for (const d of rendered.filter((r) => r.kind !== 'Namespace')) expect(at(d, 'metadata.namespace')).toBe(namespace);
    const cm = rendered.find((r) => r.kind === 'ConfigMap' && String(at(r, 'metadata.name')).startsWith('ftps-gateway-haproxy-'));
    expect(at(cm, 'data')).toEqual({ 'haproxy.cfg': readFileSync(path.join(K8S_DIR, 'haproxy.cfg'), 'utf8') });
    // The generated name (with its hash) is what the Deployment mounts after rendering.
    const haproxy = rendered.find((r) => r.kind === 'Deployment')!;
    expect(listAt(haproxy, 'spec.template.spec.volumes').map((v) => at(v, 'configMap.name'))).toContain(at(cm, 'metadata.name'));
  });
});


// --- docker/k8s/scale-out-s3 ---------------------------------------------------------------------

describe('docker/k8s/scale-out-s3: the same pods on a bucket, no volume', () => {
  const OVERLAY = path.join(ROOT, 'docker/k8s/scale-out-s3');
  const STATIC_KEYS = 'static-keys.yaml';
  const base = kustomize(K8S_DIR);
  const rendered = kustomize(OVERLAY);
  const idOf = (d: Obj) => `${String(d.kind)}/${String(at(d, 'metadata.name'))}`;
  const find = (docs: Obj[], kind: string, name?: string) => {
    const found = docs.filter((d) => d.kind === kind && (name === undefined || at(d, 'metadata.name') === name));
    expect(found.map(idOf), `one ${kind} ${name ?? ''}`).toHaveLength(1);
    return found[0]!;
  };
  /** The pods' container, its environment (ConfigMap, then literal values and X_FILE paths) and its pod spec. */
  const gateway = (docs: Obj[]) => {
    const podSpec = objAt(find(docs, 'StatefulSet'), 'spec.template.spec');
    const container = listAt(podSpec, 'containers')[0]!;
    const configMap = find(docs, 'ConfigMap', String(at(listAt(container, 'envFrom')[0], 'configMapRef.name')));
    const env: Record<string, string> = { ...(objAt(configMap, 'data') as Record<string, string>) };
    for (const e of (at(container, 'env') ?? []) as Obj[]) env[String(e.name)] = String(e.value);
    const volumes = listAt(podSpec, 'volumes');
    const mounts = listAt(container, 'volumeMounts');
    return { podSpec, container, env, volumes, mounts };
  };
  /** The variables as the server would load them: each X_FILE read from a mounted Secret stands for X. */
  const loadAsServer = (env: Record<string, string>) =>
    loadVariables(Object.fromEntries(Object.entries(env).map(([k, v]) => (k.endsWith('_FILE') ? [k.slice(0, -5), 'from a Secret'] : [k, v]))), {
      dotenvPath: path.join(OVERLAY, 'no.env'),
    });

  it('is docker/k8s/scale-out plus patches, in its namespace, every file of the directory used', () => {
    const [k] = load(path.join(OVERLAY, 'kustomization.yaml'));
    expect(k!.namespace).toBe(load(path.join(K8S_DIR, 'kustomization.yaml'))[0]!.namespace);
    expect(k!.resources).toContain('../scale-out');
    const used = [...(k!.resources as string[]), ...listAt(k, 'patches').map((p) => String(p.path))].filter((f) => !f.startsWith('..'));
    expect(used.sort()).toEqual(readdirSync(OVERLAY).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort());
    for (const d of rendered.filter((d) => d.kind !== 'Namespace')) expect(at(d, 'metadata.namespace'), idOf(d)).toBe(k!.namespace);
  });

  it('has no volume claim and no volume at FTP_ROOT or STATE_DIR: only Secrets, ConfigMaps and /tmp', () => {
    expect(rendered.filter((d) => d.kind === 'PersistentVolumeClaim').map(idOf)).toEqual([]);
    const { podSpec, env, volumes, mounts } = gateway(rendered);
    expect(at(find(rendered, 'StatefulSet'), 'spec.volumeClaimTemplates')).toBeUndefined();
    const values = loadAsServer(env);
    for (const m of mounts) {
      expect([values.FTP_ROOT, values.STATE_DIR], String(m.name)).not.toContain(m.mountPath);
      expect(volumes.map((v) => v.name), `volume ${String(m.name)}`).toContain(m.name);
    }
    for (const v of volumes) {
      const source = Object.keys(v).find((k) => k !== 'name')!;
      expect(['secret', 'configMap', 'emptyDir'], `volume ${String(v.name)}`).toContain(source);
      if (source !== 'emptyDir') expect(mounts.find((m) => m.name === v.name)?.readOnly, `${String(v.name)} read-only`).toBe(true);
    }
    expect(at(podSpec, 'securityContext.runAsNonRoot')).toBe(true);
  });

  it('configures the S3 backend in the ConfigMap, valid for the server, with the keys from a Secret\'s files', () => {
    const { env, volumes, mounts } = gateway(rendered);
    const values = loadAsServer(env);
    expect(values.STORAGE_BACKEND).toBe('s3');
    expect(values.S3_BUCKET).toMatch(/\S/);
    for (const key of ['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY']) {
      expect(env[key], `${key} not in the ConfigMap`).toBeUndefined();
      const file = env[`${key}_FILE`]!;
      const mount = mounts.find((m) => file.startsWith(`${String(m.mountPath)}/`));
      expect(mount?.readOnly, `${key}_FILE in a read-only mount`).toBe(true);
      const volume = volumes.find((v) => v.name === mount!.name)!;
      const items = listAt(volume, 'secret.items');
      expect(items.map((i) => i.path), `${key}_FILE is an item of Secret ${String(at(volume, 'secret.secretName'))}`).toContain(
        path.posix.relative(String(mount!.mountPath), file),
      );
      const mode = Number(at(volume, 'secret.defaultMode'));
      expect(mode & 0o007, 'not world-readable').toBe(0);
    }
  });

  it('without static-keys.yaml (IRSA, instance roles) no key is set, so the SDK\'s default chain finds the credentials', () => {
    const { env, volumes } = gateway(kustomize(OVERLAY, [STATIC_KEYS]));
    expect(Object.keys(env).filter((k) => /^S3_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)/.test(k))).toEqual([]);
    expect(volumes.filter((v) => isObj(v.secret) && v.secret.secretName === 'ftps-gateway-s3')).toEqual([]);
    expect(loadAsServer(env).STORAGE_BACKEND).toBe('s3');
    // The pods run as a ServiceAccount of their own, the one to annotate with an IAM role.
    const { podSpec } = gateway(rendered);
    const account = find(rendered, 'ServiceAccount', String(podSpec.serviceAccountName));
    expect(account.automountServiceAccountToken).toBe(false);
    expect(podSpec.automountServiceAccountToken).toBe(false);
  });

  it('changes nothing else: the passive slices, Services, HAProxy and NetworkPolicy are the base\'s', () => {
    const changed = new Set(['StatefulSet/ftps-gateway', 'ConfigMap/ftps-gateway-config', 'PersistentVolumeClaim/ftps-gateway-shared', 'ServiceAccount/ftps-gateway']);
    const strip = (d: Obj) => ({ ...d, metadata: { ...(d.metadata as Obj), namespace: undefined } });
    const unchanged = (docs: Obj[]) => new Map(docs.filter((d) => !changed.has(idOf(d))).map((d) => [idOf(d), strip(d)]));
    expect(unchanged(rendered)).toEqual(unchanged(base));
    // The pods' start script and ports too; the base's ConfigMap settings stay, the S3 ones are added.
    const [before, after] = [gateway(base), gateway(rendered)];
    for (const key of ['command', 'args', 'ports', 'readinessProbe', 'livenessProbe', 'securityContext', 'envFrom']) {
      expect(after.container[key], key).toEqual(before.container[key]);
    }
    expect(after.env).toMatchObject(before.env);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)('kubectl kustomize renders what these checks read (skipped without kubectl)', () => {
    const byKubectl = parseAllDocuments(execFileSync('kubectl', ['kustomize', OVERLAY], { encoding: 'utf8' })).map((d) => d.toJS() as Obj);
    // kustomize's hash suffix on the generated ConfigMap's name, wherever it is named.
    const generated = byKubectl.map((d) => String(at(d, 'metadata.name'))).find((n) => /^ftps-gateway-haproxy-[a-z0-9]{10}$/.test(n))!;
    /** Lists of named things in name order: kubectl and the checks' rendering order new list items alike, but not necessarily. */
    const canonical = (docs: Obj[]) =>
      JSON.parse(JSON.stringify(docs.sort((a, b) => idOf(a).localeCompare(idOf(b)))).replaceAll(generated, 'ftps-gateway-haproxy'), (_k, v: unknown) =>
        Array.isArray(v) && v.every((i) => isObj(i) && (typeof i.name === 'string' || typeof i.mountPath === 'string'))
          ? [...(v as Obj[])].sort((a, b) => String(a.name ?? a.mountPath).localeCompare(String(b.name ?? b.mountPath)))
          : v,
      ) as unknown;
    expect(canonical(rendered)).toEqual(canonical(byKubectl));
  });
});
