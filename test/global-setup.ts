/*
 * Runs once per test run in vitest's main process, before any test file:
 * 1. the machine has what the tests drive (scripts/test-setup.sh --check); if not, one line naming the fix, exit 1;
 * 2. testcontainers is told what this engine needs (no reaper where its image cannot be had, 127.0.0.1 where the
 *    engine runs on this machine), unless the environment says so already; the worker processes inherit it;
 * 3. the container suites' images are built on first request, once, and removed when the run ends
 *    (test/container/images.ts);
 * 4. so is the one S3 server (Ceph RGW) every S3 suite makes its buckets on (test/container/shared-rgw.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getReaperImage } from 'testcontainers/build/reaper/reaper.js';
import { IMAGE_SERVICE_ENV, isTestImageName, TEST_RUN_ENV, TestImages } from './container/images.js';
import { SharedRgw } from './container/shared-rgw.js';

const run = promisify(execFile);
const SETUP_SCRIPT = fileURLToPath(new URL('../scripts/test-setup.sh', import.meta.url));
const say = (line: string) => process.stdout.write(`test setup: ${line}\n`);

function requireMachine(containers: boolean): void {
  const check = spawnSync('bash', [SETUP_SCRIPT, '--check', ...(containers ? [] : ['--no-docker'])], { encoding: 'utf8' });
  if (check.status === 0) return;
  const finding = `${check.stdout}${check.stderr}`.trim().replace(/^test-setup: /, '');
  process.stderr.write(`\nThis machine is not ready for the tests: ${finding}. Run scripts/test-setup.sh (installs the clients, checks Node and Docker).\n\n`);
  process.exit(1);
}

/** The reaper (Ryuk) can run if its image is here or can be pulled now. */
async function reaperAvailable(): Promise<boolean> {
  const image = getReaperImage();
  const ok = (args: string[]) => run('docker', args, { timeout: 60_000 }).then(() => true, () => false);
  return (await ok(['image', 'inspect', image])) || (await ok(['pull', '-q', image]));
}

/**
 * In a container (/.dockerenv) testcontainers addresses a local-socket engine through the bridge gateway, which is
 * right for an engine on the host; when that gateway is one of this machine's own addresses, the engine runs here
 * and publishes its ports on 127.0.0.1 too, which passive FTP (PASV_ADDRESS=127.0.0.1) needs.
 */
async function engineRunsHereInContainer(): Promise<boolean> {
  if (!existsSync('/.dockerenv') || (process.env.DOCKER_HOST && !process.env.DOCKER_HOST.startsWith('unix:'))) return false;
  const gateway = await run('docker', ['network', 'inspect', 'bridge', '--format', '{{range .IPAM.Config}}{{.Gateway}} {{end}}']).then(
    ({ stdout }) => stdout.split(/\s+/).filter(Boolean),
    () => [],
  );
  for (const ip of gateway) if (await isOwnAddress(ip)) return true;
  return false;
}

/** Binding succeeds only on this machine's own addresses (also of an interface that is down, as docker0 is when idle). */
function isOwnAddress(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, ip, () => probe.close(() => resolve(true)));
  });
}

async function configureTestcontainers(): Promise<void> {
  if (process.env.TESTCONTAINERS_RYUK_DISABLED === undefined && !(await reaperAvailable())) {
    process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
    say(`TESTCONTAINERS_RYUK_DISABLED=true (${getReaperImage()} is not here and cannot be pulled; the suites remove their containers)`);
  }
  if (process.env.TESTCONTAINERS_HOST_OVERRIDE === undefined && (await engineRunsHereInContainer())) {
    process.env.TESTCONTAINERS_HOST_OVERRIDE = '127.0.0.1';
    say('TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (the Docker engine runs on this machine)');
  }
}

/**
 * GET /<name> answers the image's tag once it is built; GET /rgw the shared S3 server's endpoint (JSON) once it
 * serves. 500 with the reason if that failed.
 */
async function serveTestResources(images: TestImages, rgw: SharedRgw): Promise<http.Server> {
  const answer = (res: http.ServerResponse, work: Promise<string>) =>
    work.then(
      (body) => res.writeHead(200).end(body),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    if (name === 'rgw') return void answer(res, rgw.endpoint().then((e) => JSON.stringify(e)));
    if (!isTestImageName(name)) return void res.writeHead(404).end(`no test image "${name}" in test/container/images.ts`);
    return void answer(res, images.image(name));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

export default async function setup(): Promise<() => Promise<void>> {
  const containers = process.env.SKIP_CONTAINER_TESTS !== '1';
  requireMachine(containers);
  if (containers) await configureTestcontainers();
  const runId = randomBytes(4).toString('hex');
  const images = new TestImages(runId);
  const rgw = new SharedRgw(images, runId);
  const server = await serveTestResources(images, rgw);
  process.env[TEST_RUN_ENV] = runId;
  process.env[IMAGE_SERVICE_ENV] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return async () => {
    server.close();
    // Before the images: a running container would keep its image from being removed.
    if (await rgw.stop().catch((err: Error) => void say(`could not remove the shared RGW container: ${err.message}`))) {
      say('removed the shared RGW container');
    }
    const removed = await images.removeAll().catch((err: Error & { stderr?: string }) => {
      say(`could not remove this run's images: ${err.stderr?.trim() ?? err.message}`);
      return [];
    });
    if (removed.length > 0) say(`removed the images this run built: ${removed.join(' ')}`);
  };
}
