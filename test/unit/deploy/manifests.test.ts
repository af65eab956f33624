/**
 * The deployment files (docker-compose.yml, docker/**\/*.yml|yaml) parse, and hold together the way
 * `kubectl apply --dry-run=client` and `docker compose config` would need — without a cluster or a
 * Docker engine. Above all: the passive ports are published 1:1 and agree with PASV_MIN/MAX_PORT.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VARIABLES } from '../../../src/config/variables.js';
import { at, isObj, listAt, load, objAt, ROOT, type Obj } from './yaml-support.js';

const K8S_DIR = path.join(ROOT, 'docker/k8s');
const HEALTHCHECK = ['node', '/app/dist/main.js', 'healthcheck'];
/** The server's defaults, used where a file does not set the variable. */
const DEFAULT_PASV = { min: VARIABLES.PASV_MIN_PORT.default, max: VARIABLES.PASV_MAX_PORT.default };
const SHUTDOWN_GRACE_DEFAULT_SECONDS = VARIABLES.SHUTDOWN_GRACE_SECONDS.default;
const HTTP_PORT_DEFAULT = VARIABLES.HTTP_PORT.default;
/**
 * README "Stopping": whatever stops the container waits SHUTDOWN_GRACE_SECONDS plus this before SIGKILL
 * (docker run --stop-timeout, compose stop_grace_period, terminationGracePeriodSeconds): one number, 40 s.
 */
const STOP_MARGIN_SECONDS = 10;
const STOP_TIMEOUT_SECONDS = SHUTDOWN_GRACE_DEFAULT_SECONDS + STOP_MARGIN_SECONDS;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

function range(min: number, max: number): number[] {
  return Array.from({ length: max - min + 1 }, (_, i) => min + i);
}

const ALL_YAML = [path.join(ROOT, 'docker-compose.yml'), ...yamlFiles(path.join(ROOT, 'docker'))];

describe('every YAML file', () => {
  it('is found', () => {
    const names = ALL_YAML.map((f) => path.relative(ROOT, f));
    expect(names).toEqual(expect.arrayContaining([
      'docker-compose.yml',
      'docker/compose.implicit.yml',
      'docker/compose.dartftp.yml',
      'docker/k8s/deployment.yaml',
      'docker/k8s/service.yaml',
      'docker/k8s/configmap.yaml',
      'docker/k8s/pvc.yaml',
      'docker/k8s/secret.example.yaml',
      'docker/k8s/kustomization.yaml',
    ]));
  });

  it.each(ALL_YAML.map((f) => [path.relative(ROOT, f), f]))('%s parses without errors or warnings', (_name, file) => {
    expect(load(file).length).toBeGreaterThan(0);
  });
});

// --- Kubernetes --------------------------------------------------------------------------------

const KUSTOMIZATION = path.join(K8S_DIR, 'kustomization.yaml');
const SECRET_EXAMPLE = path.join(K8S_DIR, 'secret.example.yaml');
// The single-replica manifests: the files directly in docker/k8s (scale-out/ has test/unit/deploy/scale-out.test.ts).
const k8sFiles = yamlFiles(K8S_DIR).filter((f) => f !== KUSTOMIZATION && path.dirname(f) === K8S_DIR);
const k8sDocs = k8sFiles.flatMap((file) => load(file).map((doc) => ({ file: path.relative(ROOT, file), doc })));

function only(kind: string, file?: string): Obj {
  const found = k8sDocs.filter((d) => at(d.doc, 'kind') === kind && (file === undefined || d.file.endsWith(file)));
  expect(found.map((d) => d.file), `exactly one ${kind}`).toHaveLength(1);
  return found[0]!.doc as Obj;
}

const deployment = only('Deployment');
const service = only('Service');
const configMap = only('ConfigMap');
const pvc = only('PersistentVolumeClaim');
const secrets = k8sDocs.filter((d) => at(d.doc, 'kind') === 'Secret' && d.file.endsWith('secret.example.yaml')).map((d) => d.doc as Obj);
const podSpec = objAt(deployment, 'spec.template.spec');
const containers = listAt(podSpec, 'containers').map((c) => c as Obj);
const container = containers[0]!;
const containerPorts = listAt(container, 'ports').map((p) => p as Obj);

/** The container's environment: its ConfigMaps (envFrom) overlaid by its literal env entries. */
function containerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of listAt(container, 'envFrom')) {
    const name = at(source, 'configMapRef.name');
    const map = k8sDocs.find((d) => at(d.doc, 'kind') === 'ConfigMap' && at(d.doc, 'metadata.name') === name);
    expect(map, `ConfigMap ${String(name)} referenced by envFrom`).toBeDefined();
    Object.assign(env, objAt(map!.doc, 'data'));
  }
  for (const entry of (at(container, 'env') ?? []) as Obj[]) {
    if (typeof entry.value === 'string') env[String(entry.name)] = entry.value;
  }
  return env;
}
const env = containerEnv();
const pasv = { min: Number(env.PASV_MIN_PORT ?? DEFAULT_PASV.min), max: Number(env.PASV_MAX_PORT ?? DEFAULT_PASV.max) };

/** A Service targetPort (a number or a container port's name) → the container port number. */
function resolveTargetPort(target: unknown): number | undefined {
  const match = containerPorts.find((p) => (typeof target === 'number' ? p.containerPort === target : p.name === target));
  return match === undefined ? undefined : Number(match.containerPort);
}

describe('Kubernetes manifests', () => {
  it.each(k8sDocs.map((d) => [`${d.file} ${String(at(d.doc, 'kind'))}`, d.doc]))('%s has apiVersion, kind and a valid metadata.name', (_n, doc) => {
    expect(at(doc, 'apiVersion')).toMatch(/^([a-z0-9.-]+\/)?v\d+(alpha\d+|beta\d+)?$/);
    expect(at(doc, 'kind')).toMatch(/^[A-Z][A-Za-z]+$/);
    const name = at(doc, 'metadata.name');
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(String(name).length).toBeLessThanOrEqual(63);
  });

  it('kustomization.yaml lists every manifest but the example Secrets, and only existing files', () => {
    const [kustomization] = load(KUSTOMIZATION);
    expect(at(kustomization, 'kind')).toBe('Kustomization');
    const resources = listAt(kustomization, 'resources').map(String);
    const expected = k8sFiles.filter((f) => f !== SECRET_EXAMPLE).map((f) => path.relative(K8S_DIR, f));
    expect([...resources].sort()).toEqual([...expected].sort());
    expect(resources).not.toContain('secret.example.yaml');
  });

  it('the Deployment runs one pod, replaced with Recreate, selected by its own labels', () => {
    expect(at(deployment, 'spec.replicas')).toBe(1);
    expect(at(deployment, 'spec.strategy.type')).toBe('Recreate');
    const labels = objAt(deployment, 'spec.template.metadata.labels');
    const selector = objAt(deployment, 'spec.selector.matchLabels');
    expect(Object.keys(selector).length).toBeGreaterThan(0);
    expect(labels).toMatchObject(selector);
    const serviceSelector = objAt(service, 'spec.selector');
    expect(Object.keys(serviceSelector).length).toBeGreaterThan(0);
    expect(labels, 'the Service selects the pod').toMatchObject(serviceSelector);
    expect(containers).toHaveLength(1);
  });

  it('container ports have unique, valid names', () => {
    const names = containerPorts.map((p) => String(p.name));
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^(?=.*[a-z])[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/);
    for (const p of containerPorts) expect(p.protocol ?? 'TCP').toBe('TCP');
  });

  it('every Service targetPort exists on the container', () => {
    for (const port of listAt(service, 'spec.ports').map((p) => p as Obj)) {
      expect(resolveTargetPort(port.targetPort ?? port.port), `Service port ${String(port.name)}`).toBeDefined();
    }
  });

  it('the Service publishes control port 21 to FTPS_PORT, a port a non-root user may bind', () => {
    expect(Number(env.FTPS_PORT)).toBeGreaterThanOrEqual(1024);
    const control = listAt(service, 'spec.ports').map((p) => p as Obj).find((p) => p.port === 21);
    expect(control).toBeDefined();
    expect(resolveTargetPort(control!.targetPort)).toBe(Number(env.FTPS_PORT));
  });

  it('the Service is a LoadBalancer that keeps the client IP', () => {
    expect(at(service, 'spec.type')).toBe('LoadBalancer');
    expect(at(service, 'spec.externalTrafficPolicy')).toBe('Local');
  });

  it('the passive range is set once, with PASV_ADDRESS, and nowhere overridden differently', () => {
    expect(env.PASV_ADDRESS, 'PASV_ADDRESS').toMatch(/\S/);
    expect(pasv.max).toBeGreaterThanOrEqual(pasv.min);
    const configData = objAt(configMap, 'data');
    for (const name of ['PASV_MIN_PORT', 'PASV_MAX_PORT', 'FTPS_PORT']) {
      if (configData[name] !== undefined) expect(env[name], name).toBe(configData[name]);
    }
  });

  it('every passive port is a container port and a Service port, mapped 1:1, and no other', () => {
    const expected = range(pasv.min, pasv.max);
    const containerInRange = containerPorts.map((p) => Number(p.containerPort)).filter((n) => n >= pasv.min && n <= pasv.max);
    expect(containerInRange.sort((a, b) => a - b)).toEqual(expected);
    const servicePorts = listAt(service, 'spec.ports').map((p) => p as Obj).filter((p) => p.port !== 21);
    expect(servicePorts.map((p) => Number(p.port)).sort((a, b) => a - b)).toEqual(expected);
    for (const p of servicePorts) {
      expect(resolveTargetPort(p.targetPort ?? p.port), `Service port ${String(p.port)}`).toBe(p.port);
      expect(p.protocol ?? 'TCP').toBe('TCP');
    }
  });

  it('the pod and container securityContext are restricted', () => {
    expect(objAt(podSpec, 'securityContext')).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(objAt(container, 'securityContext')).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(listAt(container, 'securityContext.capabilities.drop')).toContain('ALL');
    expect(at(container, 'securityContext.privileged') ?? false).toBe(false);
  });

  it('every volumeMount has a volume, and the volumes lead to the PVC, the TLS Secret and an emptyDir /tmp', () => {
    const volumes = new Map(listAt(podSpec, 'volumes').map((v) => [String(at(v, 'name')), v as Obj]));
    const mounts = listAt(container, 'volumeMounts').map((m) => m as Obj);
    for (const m of mounts) expect(volumes.has(String(m.name)), `volume ${String(m.name)}`).toBe(true);
    const volumeAt = (mountPath: string) => {
      const mount = mounts.find((m) => m.mountPath === mountPath);
      expect(mount, `a mount at ${mountPath}`).toBeDefined();
      return { mount: mount!, volume: volumes.get(String(mount!.name))! };
    };
    expect(at(volumeAt('/data').volume, 'persistentVolumeClaim.claimName')).toBe(at(pvc, 'metadata.name'));
    const certs = volumeAt('/certs');
    expect(certs.mount.readOnly).toBe(true);
    const tlsSecret = secrets.find((s) => at(s, 'metadata.name') === at(certs.volume, 'secret.secretName'));
    expect(tlsSecret, 'the /certs Secret in secret.example.yaml').toBeDefined();
    expect(at(tlsSecret, 'type')).toBe('kubernetes.io/tls');
    expect(isObj(volumeAt('/tmp').volume.emptyDir)).toBe(true);
  });

  it('secret volumes are readable by the pod group, not by others', () => {
    for (const v of listAt(podSpec, 'volumes').filter((v) => isObj(at(v, 'secret')))) {
      const mode = Number(at(v, 'secret.defaultMode'));
      expect(mode & 0o040, `${String(at(v, 'name'))} group-readable`).toBe(0o040);
      expect(mode & 0o007, `${String(at(v, 'name'))} not world-readable`).toBe(0);
    }
  });

  it('the password comes from a Secret file under a read-only mount, not from the ConfigMap', () => {
    expect(objAt(configMap, 'data').FTP_PASSWORD).toBeUndefined();
    expect(env.FTP_USER, 'FTP_USER is required with a password').toMatch(/\S/);
    const file = env.FTP_PASSWORD_FILE;
    expect(file).toBeDefined();
    const mount = listAt(container, 'volumeMounts').map((m) => m as Obj).find((m) => file!.startsWith(`${String(m.mountPath)}/`));
    expect(mount, `a mount holding ${file}`).toBeDefined();
    expect(mount!.readOnly).toBe(true);
    const volume = listAt(podSpec, 'volumes').find((v) => at(v, 'name') === mount!.name);
    const secret = secrets.find((s) => at(s, 'metadata.name') === at(volume, 'secret.secretName'));
    expect(secret, 'the password Secret in secret.example.yaml').toBeDefined();
    const items = (at(volume, 'secret.items') ?? []) as Obj[];
    const fileName = path.posix.relative(String(mount!.mountPath), file!);
    const key = items.length > 0 ? items.find((i) => i.path === fileName)?.key : fileName;
    expect(key, `a Secret key mounted as ${fileName}`).toBeDefined();
    expect(objAt(secret, 'stringData')[String(key)]).toBeDefined();
  });

  it('liveness GETs /healthz and readiness /readyz on the container port serving HTTP_PORT', () => {
    const httpPort = Number(env.HTTP_PORT ?? HTTP_PORT_DEFAULT);
    expect(httpPort, 'HTTP_PORT=0 would leave the probes nothing to ask').toBeGreaterThan(0);
    for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
      expect(at(container, `${probe}.httpGet.path`), probe).toBe(path);
      expect(resolveTargetPort(at(container, `${probe}.httpGet.port`)), probe).toBe(httpPort);
      // /readyz waits up to 2 s for its storage probe before it answers 503.
      expect(Number(at(container, `${probe}.timeoutSeconds`)), probe).toBeGreaterThan(2);
    }
  });

  it('the HTTP port (metrics) is not published by the LoadBalancer Service', () => {
    const httpPort = Number(env.HTTP_PORT ?? HTTP_PORT_DEFAULT);
    for (const port of listAt(service, 'spec.ports').map((p) => p as Obj)) {
      expect(resolveTargetPort(port.targetPort ?? port.port), `Service port ${String(port.name)}`).not.toBe(httpPort);
    }
  });

  it('resources, /tmp and the termination grace period fit the server', () => {
    for (const key of ['requests.cpu', 'requests.memory', 'limits.memory']) {
      expect(at(container, `resources.${key}`), key).toBeDefined();
    }
    const grace = Number(env.SHUTDOWN_GRACE_SECONDS ?? SHUTDOWN_GRACE_DEFAULT_SECONDS);
    expect(Number(at(podSpec, 'terminationGracePeriodSeconds'))).toBe(grace + STOP_MARGIN_SECONDS);
    expect(at(podSpec, 'enableServiceLinks')).toBe(false);
  });
});

// --- Docker Compose ----------------------------------------------------------------------------

type PortPair = { host: number; container: number };

/** Expands a Compose port entry ("21", "21:21", "127.0.0.1:30000-30009:30000-30009/tcp", long syntax). */
function expandPorts(entry: unknown): PortPair[] {
  if (isObj(entry)) {
    const target = Number(entry.target);
    return [{ host: Number(entry.published ?? target), container: target }];
  }
  const spec = String(entry).replace(/\/tcp$/, '');
  const parts = spec.split(':');
  const containerPart = parts.pop()!;
  const hostPart = parts.pop() ?? containerPart;
  const bounds = (s: string) => {
    const [a, b = a] = s.split('-').map(Number);
    return range(a!, b!);
  };
  const hosts = bounds(hostPart);
  const targets = bounds(containerPart);
  expect(hosts.length, `port entry ${spec}`).toBe(targets.length);
  return targets.map((c, i) => ({ host: hosts[i]!, container: c }));
}

/** Compose environment, as a map (it may be written as a list of NAME=value). */
function composeEnv(service: Obj): Record<string, string> {
  const raw = service.environment;
  if (raw === undefined) return {};
  if (Array.isArray(raw)) {
    return Object.fromEntries(raw.map((e) => String(e).split(/=(.*)/s)).map(([k, v]) => [k!, v ?? '']));
  }
  const map = objAt(service, 'environment');
  for (const [name, value] of Object.entries(map)) {
    // docker-compose v1 refuses booleans; Compose v2 would turn true into "True".
    if (value !== null) expect(typeof value, `environment.${name} must be a string`).toBe('string');
  }
  return map as Record<string, string>;
}

/** The value a ${VAR:-default} expression gives when VAR is unset. */
function withDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:?-([^}]*)\}/g, '$1');
}

function seconds(duration: unknown): number {
  const m = /^(\d+)(s|m)$/.exec(String(duration));
  expect(m, `duration ${String(duration)}`).not.toBeNull();
  return Number(m![1]) * (m![2] === 'm' ? 60 : 1);
}

const [compose] = load(path.join(ROOT, 'docker-compose.yml'));
const ftps = objAt(compose, 'services.ftps');
const ftpsEnv = composeEnv(ftps);

describe('docker-compose.yml', () => {
  it('builds the image from the Dockerfile', () => {
    expect(ftps.build).toBe('.');
    expect(ftps.image).toBe('ftps-gateway:latest');
  });

  it('publishes 21 and the passive range 1:1', () => {
    const pairs = listAt(ftps, 'ports').flatMap(expandPorts);
    expect(pairs).toContainEqual({ host: 21, container: 21 });
    const min = Number(withDefaults(ftpsEnv.PASV_MIN_PORT ?? String(DEFAULT_PASV.min)));
    const max = Number(withDefaults(ftpsEnv.PASV_MAX_PORT ?? String(DEFAULT_PASV.max)));
    const passive = pairs.filter((p) => p.container >= min && p.container <= max);
    expect(passive.map((p) => p.container).sort((a, b) => a - b)).toEqual(range(min, max));
    for (const p of passive) expect(p.host, `passive port ${p.container}`).toBe(p.container);
  });

  it('sets PASV_ADDRESS, with a default, and passes the account through', () => {
    expect(withDefaults(ftpsEnv.PASV_ADDRESS ?? '')).toMatch(/\S/);
    expect(Object.keys(ftpsEnv)).toEqual(expect.arrayContaining(['FTP_USER', 'FTP_PASSWORD']));
    // Pass-through, never a password written into the file.
    expect(ftpsEnv.FTP_PASSWORD ?? '').toMatch(/^(\$\{FTP_PASSWORD(:?-)?\})?$/);
  });

  it('mounts /data on a volume the container user can write', () => {
    const mounts = listAt(ftps, 'volumes').map((v) => (isObj(v) ? { source: String(v.source), target: String(v.target) } : {
      source: String(v).split(':')[0]!,
      target: String(v).split(':')[1]!,
    }));
    const data = mounts.find((m) => m.target === '/data');
    expect(data, 'a mount at /data').toBeDefined();
    // A bind mount of a missing directory would be created by Docker as root, unwritable for uid 1000.
    expect(data!.source, 'a named volume').toMatch(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
    expect(Object.keys(objAt(compose, 'volumes'))).toContain(data!.source);
    // Nothing may require a directory a fresh checkout does not have.
    expect(mounts.filter((m) => m.source.startsWith('./certs'))).toEqual([]);
  });

  it('is hardened and restarts, with a healthcheck and a stop grace above the server\'s', () => {
    expect(ftps.restart).toBe('unless-stopped');
    expect(ftps.read_only).toBe(true);
    expect(listAt(ftps, 'tmpfs').map(String).some((t) => t.split(':')[0] === '/tmp')).toBe(true);
    expect(listAt(ftps, 'cap_drop')).toContain('ALL');
    expect(listAt(ftps, 'security_opt')).toContain('no-new-privileges:true');
    expect(listAt(ftps, 'healthcheck.test')).toEqual(['CMD', ...HEALTHCHECK]);
    expect(seconds(ftps.stop_grace_period)).toBe(STOP_TIMEOUT_SECONDS);
  });

  it('keeps STATE_DIR on a named volume of its own', () => {
    const mounts = listAt(ftps, 'volumes').map(String);
    const state = mounts.find((m) => m.split(':')[1] === '/var/lib/ftps-gateway');
    expect(state, 'a mount at /var/lib/ftps-gateway').toBeDefined();
    expect(Object.keys(objAt(compose, 'volumes'))).toContain(state!.split(':')[0]);
  });
});

describe('README.md docker run one-liner', () => {
  // The command and its continuation lines.
  const command = /docker run -d --name ftps (?:[^\n]*\\\n)+[^\n]*/.exec(readFileSync(path.join(ROOT, 'README.md'), 'utf8'))?.[0] ?? '';

  it('waits the stop timeout, keeps the state and the files on named volumes', () => {
    expect(command).toContain(`--stop-timeout ${STOP_TIMEOUT_SECONDS} `);
    expect(command).toMatch(/-v ftps-state:\/var\/lib\/ftps-gateway /);
    expect(command).toMatch(/-v ftps-data:\/data /);
  });
});

describe.each([
  { file: 'docker/compose.implicit.yml', vars: { FTPS_IMPLICIT_SSL: 'true' }, absent: ['DATA_IMPLICIT_SSL'] },
  { file: 'docker/compose.dartftp.yml', vars: { FTPS_IMPLICIT_SSL: 'true', DATA_IMPLICIT_SSL: 'true' }, absent: [] },
])('$file', ({ file, vars, absent }) => {
  const [override] = load(path.join(ROOT, file));

  it('overrides only the ftps service', () => {
    expect(Object.keys(objAt(override, 'services'))).toEqual(['ftps']);
  });

  it('sets the variables it is for', () => {
    const overrideEnv = composeEnv(objAt(override, 'services.ftps'));
    expect(overrideEnv).toMatchObject(vars);
    for (const name of absent) expect(overrideEnv[name], name).toBeUndefined();
    // The control port follows FTPS_IMPLICIT_SSL (990) unless set: it must not be pinned elsewhere.
    expect(overrideEnv.FTPS_PORT ?? '990').toBe('990');
  });

  it('publishes port 990 1:1', () => {
    const pairs = listAt(override, 'services.ftps.ports').flatMap(expandPorts);
    expect(pairs).toContainEqual({ host: 990, container: 990 });
  });
});
