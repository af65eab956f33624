import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { GenericContainer, getContainerRuntimeClient, Wait, type StartedTestContainer } from 'testcontainers';

export const run = promisify(execFile);
/** One tag for every container test file: whichever builds second finds every layer cached. */
export const IMAGE = 'ftps-gateway:container-test';
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

  /** Fails with one clear line when no engine is reachable, then builds the image from the Dockerfile. */
  async buildImage(): Promise<void> {
    try {
      await getContainerRuntimeClient();
    } catch {
      throw new Error(
        'No Docker engine is reachable: start one (../shared/ci/docker-engine.sh) or set SKIP_CONTAINER_TESTS=1 to skip the container suite on purpose',
      );
    }
    await GenericContainer.fromDockerfile(path.resolve('.')).build(IMAGE, { deleteOnExit: false });
  }

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
