/*
 * The images the container suites run: built at most once per test run, shared by every suite, and removed when
 * the run ends. test/global-setup.ts owns a TestImages (in vitest's main process) and serves it to the suites'
 * worker processes over a loopback HTTP port (support.ts: testImage()); the first suite that asks for an image
 * makes the build happen, later ones wait for that same build.
 *
 * Everything built carries the label `org.ftps-gateway.test-run=<run id>` and a tag ending in the run id, so the
 * teardown removes exactly those images, also on an engine other runs share. A crashed run's leftovers are found with
 *   docker images --filter label=org.ftps-gateway.test-run
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TEST_RUN_LABEL = 'org.ftps-gateway.test-run';
/** Set by test/global-setup.ts for the worker processes: this run's id, and where to ask for images. */
export const TEST_RUN_ENV = 'FTPS_TEST_RUN';
export const IMAGE_SERVICE_ENV = 'FTPS_TEST_IMAGES_URL';

interface ImageRecipe {
  readonly repository: string;
  /** The build context (and its Dockerfile), relative to the repository root. */
  readonly context: string;
  /**
   * Stages of a multi-stage Dockerfile built and tagged first: the legacy builder keeps each stage's result as an
   * untagged image (517 MB for the gateway's build stage) that no label reaches; tagged, it is removed with its tag.
   */
  readonly stages?: readonly string[];
}

/** To add a test image (e.g. test/images/openldap): one entry here, then `await testImage('openldap')` in beforeAll. */
export const TEST_IMAGES = {
  gateway: { repository: 'ftps-gateway', context: '.', stages: ['build'] },
  haproxy: { repository: 'ftps-gateway-haproxy', context: 'docker/scale-out/haproxy' },
  openldap: { repository: 'ftps-gateway-test/openldap', context: 'test/images/openldap' },
  'ceph-rgw': { repository: 'ftps-gateway-test/ceph-rgw', context: 'test/images/ceph-rgw' },
} as const satisfies Record<string, ImageRecipe>;

export type TestImageName = keyof typeof TEST_IMAGES;

export const isTestImageName = (name: string): name is TestImageName => Object.hasOwn(TEST_IMAGES, name);

/** The tag an image (or one of its stages) has in the run `runId`. */
export function testImageTag(name: TestImageName, runId: string, stage?: string): string {
  return `${TEST_IMAGES[name].repository}:test-${runId}${stage ? `-${stage}` : ''}`;
}

export class TestImages {
  private readonly builds = new Map<TestImageName, Promise<string>>();
  private readonly tags: string[] = [];

  constructor(private readonly runId: string) {}

  /** The image's tag once it is built; one build per name, whoever asks. */
  image(name: TestImageName): Promise<string> {
    let build = this.builds.get(name);
    if (!build) {
      build = this.build(name);
      this.builds.set(name, build);
    }
    return build;
  }

  private async build(name: TestImageName): Promise<string> {
    const recipe: ImageRecipe = TEST_IMAGES[name];
    for (const stage of recipe.stages ?? []) await this.dockerBuild(testImageTag(name, this.runId, stage), recipe.context, stage);
    const tag = testImageTag(name, this.runId);
    await this.dockerBuild(tag, recipe.context);
    return tag;
  }

  private async dockerBuild(tag: string, context: string, target?: string): Promise<void> {
    const args = ['build', '-q', '--label', `${TEST_RUN_LABEL}=${this.runId}`, '-t', tag, ...(target ? ['--target', target] : []), context];
    // Recorded before the build: a build that fails half-way may still have tagged an image.
    this.tags.push(tag);
    try {
      await run('docker', args, { maxBuffer: 64 * 1024 * 1024 });
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      throw new Error(`docker ${args.join(' ')} failed: ${stderr.trim().split('\n').slice(-5).join(' | ')}`, { cause: err });
    }
  }

  /** Removes every image this run built (their untagged stage layers go with them); returns the tags removed. */
  async removeAll(): Promise<string[]> {
    await Promise.allSettled(this.builds.values());
    const present = await Promise.all(this.tags.map((tag) => run('docker', ['image', 'inspect', tag]).then(() => tag, () => undefined)));
    const tags = present.filter((tag) => tag !== undefined);
    if (tags.length > 0) await run('docker', ['rmi', ...tags]);
    return tags;
  }
}
