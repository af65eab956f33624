import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { IMAGE_SERVICE_ENV, TEST_RUN_ENV, testImageTag, type TestImageName } from './images.js';

export const run = promisify(execFile);

/**
 * An image from test/container/images.ts, built once per test run whichever suites ask for it, and removed when the
 * run ends. Call it in beforeAll (a build takes a minute or two: give the hook 600 s); it resolves with the tag.
 * A new test image (e.g. test/images/openldap): add its recipe to TEST_IMAGES there, then
 * `beforeAll(() => testImage('openldap'), 600_000)` here and run it by the tag this resolves with.
 */
export function testImage(name: TestImageName): Promise<string> {
  return askTestSetup(name);
}

/** GET /<resource> from test/global-setup.ts (an image's tag, or `rgw`): the body once it is ready. */
export function askTestSetup(resource: string): Promise<string> {
  const service = process.env[IMAGE_SERVICE_ENV];
  if (!service) return Promise.reject(new Error(`${IMAGE_SERVICE_ENV} is not set: run the tests through vitest.config.ts (test/global-setup.ts)`));
  return new Promise((resolve, reject) => {
    http
      .get(`${service}/${resource}`, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`test ${resource}: ${body}`))));
      })
      .on('error', reject);
  });
}

/** The gateway's tag in this run (built by `testImage('gateway')`). */
export const IMAGE = testImageTag('gateway', process.env[TEST_RUN_ENV] ?? 'unset');
export const skipContainers = process.env.SKIP_CONTAINER_TESTS === '1';
export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The container user of the image (node). */
export const CONTAINER_UID = 1000;

/**
 * The image as users run it hardened: read-only root filesystem (testcontainers has no option for it), a small
 * /tmp, no capabilities; started once the server logs that it listens.
 */
export class HardenedContainer extends GenericContainer {
  constructor(image: string) {
    super(image);
    this.hostConfig.ReadonlyRootfs = true;
    this.withTmpFs({ '/tmp': 'rw,size=16m' })
      .withDroppedCapabilities('ALL')
      .withWaitStrategy(Wait.forLogMessage(/"msg":"listening"/))
      .withStartupTimeout(30_000);
  }
}

/** Passive ports published 1:1: the server tells clients the port number it listens on. */
export const passivePortBindings = (min: number, max: number) =>
  Array.from({ length: max - min + 1 }, (_, i) => ({ container: min + i, host: min + i }));

export async function logsOf(c: StartedTestContainer): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', c.getId()]);
  return stdout + stderr;
}

/** The containers and temporary directories of one test file, removed whatever state a failed test left. */
export class ContainerFixture {
  private readonly containers: StartedTestContainer[] = [];
  /** Containers and networks made with the docker CLI (by id or name), for what testcontainers cannot set up. */
  private readonly containerIds: string[] = [];
  private readonly networks: string[] = [];
  private readonly dirs: string[] = [];

  track(container: StartedTestContainer): StartedTestContainer {
    this.containers.push(container);
    return container;
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  /** A host directory for /data, owned by the container user like a provisioned volume. */
  async dataDir(): Promise<string> {
    const dir = await this.tempDir('ftps-data-');
    await chown(dir, CONTAINER_UID, CONTAINER_UID);
    return dir;
  }

  /** A container started with `docker run` (its id or name), removed with the others. */
  trackId(id: string): string {
    this.containerIds.push(id);
    return id;
  }

  /** A network made with `docker network create`, removed after the containers in cleanup(). */
  trackNetwork(name: string): string {
    this.networks.push(name);
    return name;
  }

  /** By id with `docker rm -f`: works for running, stopped and half-started containers alike. */
  async removeContainers(): Promise<void> {
    const ids = [...this.containers.splice(0).map((c) => c.getId()), ...this.containerIds.splice(0)];
    if (ids.length > 0) await run('docker', ['rm', '-f', ...ids]).catch(() => undefined);
  }

  async cleanup(): Promise<void> {
    await this.removeContainers();
    for (const network of this.networks.splice(0)) await run('docker', ['network', 'rm', network]).catch(() => undefined);
    for (const dir of this.dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  }
}
