/*
 * The one Ceph RADOS Gateway (test/images/ceph-rgw) of a test run, shared by every S3 suite: started in vitest's main
 * process (test/global-setup.ts) when the first suite asks for it, served to the worker processes over the same
 * loopback HTTP port as the images (GET /rgw), and removed when the run ends. Each suite makes its own buckets on it
 * (test/support/s3.ts), so suites running in parallel never see each other's objects.
 *
 * The container carries the run's label like the images do; a crashed run's leftover is found with
 *   docker ps -a --filter label=org.ftps-gateway.test-run
 */
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { TEST_RUN_LABEL, type TestImages } from './images.js';

/**
 * The OSD's capacity, held in RAM (memstore): the container's memory grows with what the suites store and keep
 * (buckets are never emptied). A whole run peaked at ~270 MiB of container RAM (test/images/ceph-rgw/README.md);
 * the margin matters because a full memstore makes RGW writes hang instead of failing.
 */
export const RGW_MEMSTORE_MB = 768;
/** Keys of the S3 user the image creates (test data, loopback only). */
const ACCESS_KEY = 'ftps-test-access';
const SECRET_KEY = 'ftps-test-secret';
const RGW_PORT = 7480;

/** What GET /rgw answers (JSON), and test/support/s3.ts reads. */
export interface RgwEndpoint {
  /** From this machine: the published port. */
  readonly endpoint: string;
  /** From other containers on Docker's default bridge network (container suites); absent on an engine without one. */
  readonly bridgeEndpoint?: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export class SharedRgw {
  #started: Promise<StartedTestContainer> | undefined;

  constructor(
    private readonly images: TestImages,
    private readonly runId: string,
  ) {}

  /** Starts the gateway on the first call (building its image if no suite has yet); later calls wait for the same start. */
  async endpoint(): Promise<RgwEndpoint> {
    const rgw = await (this.#started ??= this.#start());
    return {
      endpoint: `http://${rgw.getHost()}:${rgw.getMappedPort(RGW_PORT)}`,
      ...(rgw.getNetworkNames().includes('bridge') && { bridgeEndpoint: `http://${rgw.getIpAddress('bridge')}:${RGW_PORT}` }),
      region: 'us-east-1',
      accessKeyId: ACCESS_KEY,
      secretAccessKey: SECRET_KEY,
    };
  }

  /** Removes the container if one was started (also one whose start failed half-way: testcontainers removes that). */
  async stop(): Promise<boolean> {
    if (!this.#started) return false;
    const rgw = await this.#started.catch(() => undefined);
    await rgw?.stop({ remove: true, timeout: 2_000 });
    return rgw !== undefined;
  }

  async #start(): Promise<StartedTestContainer> {
    return new GenericContainer(await this.images.image('ceph-rgw'))
      .withLabels({ [TEST_RUN_LABEL]: this.runId })
      .withEnvironment({ MEMSTORE_SIZE_MB: String(RGW_MEMSTORE_MB), S3_ACCESS_KEY: ACCESS_KEY, S3_SECRET_KEY: SECRET_KEY })
      .withExposedPorts(RGW_PORT)
      .withWaitStrategy(Wait.forLogMessage(/^RGW READY/m))
      .withStartupTimeout(120_000)
      .start();
  }
}
