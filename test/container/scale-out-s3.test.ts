/*
 * docker/scale-out/compose.s3.yml: three stateless gateway replicas whose only shared thing is a bucket on a real
 * S3 server (Ceph RGW, test/images/ceph-rgw, reached by its network alias as S3_ENDPOINT), behind the HAProxy of
 * docker/scale-out. The certificate reaches every replica as a read-only mount, the account through the environment.
 *
 * The kill-a-replica run of test/support/scale-out.ts (shared with the shared-volume variant): FTPS clients upload
 * small files (one PUT) and files of more than one part (multipart) while the replica with the most multipart
 * uploads in flight is SIGKILLed. Checked from outside through the S3 API: every object's SHA-256 is what a client
 * sent, no object exists for an upload that was cut before its client had sent everything, and the only multipart
 * uploads left open are those of the killed replica.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, NoSuchKey, paginateListObjectsV2, S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pemPair, SecretMount } from '../support/certificates.js';
import {
  composeReplicas, createNetwork, describeRun, dockerLogs, dockerRun, KiB, killOneReplicaUnderLoad, MiB, ScaleOutStack, until,
  type StorageView,
} from '../support/scale-out.js';
import { ContainerFixture, run, skipContainers, testImage } from './support.js';

const COMPOSE = path.resolve('docker/scale-out/compose.s3.yml');
const BUCKET = 'ftps-scale-out';
/** FTP_ROOT (the account's home) is this prefix: nothing may land outside it. */
const PREFIX = 'gateway/';
const KEYS = { accessKeyId: 'scale-out-access', secretAccessKey: 'scale-out-s3-secret' };
/** The smallest part S3 allows; files of round 1 are larger, so their uploads are multipart. */
const PART = 5 * MiB;
const random = (min: number, spread: number) => min + Math.floor(Math.random() * spread);
const RUN = {
  clients: 12,
  rounds: 2,
  size: (_i: number, round: number) => (round === 0 ? random(128 * KiB, 384 * KiB) : random(PART + MiB, MiB)),
  // The kill comes when uploads are past their first part: multipart uploads are open on the victim.
  killPastBytes: PART + 512 * KiB,
};

const fixture = new ContainerFixture();

/**
 * The sweep every replica runs hourly (S3StorageProvider.sweepAbandonedUploads), run in a replica with its own
 * configuration and image: first with the real age limit, then as if that day had passed (age 0).
 */
const SWEEP = `
const { loadConfig } = await import('/app/dist/config/load.js');
const { Metrics } = await import('/app/dist/observability/metrics.js');
const { createLogger } = await import('/app/dist/observability/logger.js');
const { ABANDONED_UPLOAD_AGE_MS, S3StorageProvider } = await import('/app/dist/storage/s3/s3-provider.js');
const config = loadConfig(process.env);
const provider = S3StorageProvider.create(config, config.storage.s3, new Metrics({ processMetrics: false }), createLogger({ log: { ...config.log, level: 'silent' } }));
const young = await provider.sweepAbandonedUploads(ABANDONED_UPLOAD_AGE_MS);
const old = await provider.sweepAbandonedUploads(0);
provider.close();
console.log(JSON.stringify({ young, old }));
`;

/** The bucket below PREFIX as an S3 client sees it; directory markers (keys ending in /) are no files. */
function bucketView(s3: S3Client): StorageView {
  return {
    async list() {
      const found: Array<{ name: string; version: string }> = [];
      for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: PREFIX })) {
        for (const o of page.Contents ?? []) {
          if (o.Key!.endsWith('/')) continue;
          found.push({ name: o.Key!.slice(PREFIX.length), version: `${o.ETag}:${o.Size}:${o.LastModified?.getTime()}` });
        }
      }
      return found;
    },
    async read(name) {
      try {
        const { Body } = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}${name}` }));
        return Buffer.from(await Body!.transformToByteArray());
      } catch (err) {
        if (err instanceof NoSuchKey) return undefined;
        throw err;
      }
    },
  };
}

describe.skipIf(skipContainers)('scale-out on S3: 3 stateless replicas sharing one bucket behind HAProxy (docker/scale-out/compose.s3.yml)', () => {
  const replicas = composeReplicas(COMPOSE);
  const tag = randomBytes(3).toString('hex');
  let haproxyImage: string;
  let rgwImage: string;

  beforeAll(async () => {
    [, haproxyImage, rgwImage] = await Promise.all([testImage('gateway'), testImage('haproxy'), testImage('ceph-rgw')]);
  }, 600_000);

  afterAll(() => fixture.cleanup());

  it('one replica killed while uploads are in flight: every object whole, none for a cut upload, only its multipart uploads left', async () => {
    const started = Date.now();
    const net = await createNetwork(fixture, `ftps-s3-${tag}`);
    // RGW at a fixed address for the test's own S3 client; the replicas use its network alias, like a service name.
    const rgwAddress = net.address(20);
    const rgw = await dockerRun(fixture, [
      '--name', `${net.name}-rgw`, '--network', net.name, '--network-alias', 'rgw', '--ip', rgwAddress,
      '-e', `S3_ACCESS_KEY=${KEYS.accessKeyId}`, '-e', `S3_SECRET_KEY=${KEYS.secretAccessKey}`, '-e', 'MEMSTORE_SIZE_MB=512', rgwImage,
    ]);
    await until('RGW ready', 60_000, async () => ((await dockerLogs(rgw)).includes('RGW READY') ? true : undefined));
    const s3 = new S3Client({
      endpoint: `http://${rgwAddress}:7480`, region: 'us-east-1', forcePathStyle: true, credentials: KEYS,
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

    const certificate = await pemPair('ftps.scale-out.test');
    const certs = await SecretMount.create(await fixture.tempDir('ftps-certs-'), SecretMount.tls(certificate));
    const stack = new ScaleOutStack(fixture, net, replicas);
    await stack.start({
      haproxyImage,
      // As compose.s3.yml: the certificate read-only, a tmpfs instead of the image's /data volume.
      replicaArgs: ['-v', `${certs.dir}:/certs:ro`, '--tmpfs', '/data:size=1m'],
      replicaEnv: () => ({
        S3_BUCKET: BUCKET, S3_PREFIX: PREFIX, S3_ENDPOINT: 'http://rgw:7480', S3_FORCE_PATH_STYLE: 'true',
        S3_ACCESS_KEY_ID: KEYS.accessKeyId, S3_SECRET_ACCESS_KEY: KEYS.secretAccessKey, S3_PART_SIZE: String(PART),
      }),
    });

    const result = await killOneReplicaUnderLoad(stack, { ...RUN, storage: bucketView(s3) });

    const survivors = replicas.filter((r) => r !== result.victim);
    // The multipart uploads still open are the killed replica's cut ones: the survivors completed or aborted theirs.
    const open = (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [];
    const cutOnVictim = [...result.cut].filter(([, c]) => c.replica === result.victim.name).map(([name]) => `${PREFIX}${name}`);
    for (const u of open) expect(cutOnVictim, `open multipart upload ${u.Key}`).toContain(u.Key);
    expect(open.length, 'multipart uploads the kill left open').toBeGreaterThan(0);
    // A survivor's sweep leaves them while they are younger than a day (they could be another replica's running
    // uploads), and aborts them all once they are older.
    const { stdout: swept } = await run('docker', ['exec', survivors[0]!.id!, 'node', '--input-type=module', '-e', SWEEP]);
    expect(JSON.parse(swept.trim().split('\n').at(-1)!)).toEqual({ young: 0, old: open.length });
    expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [], 'open after the sweep').toEqual([]);

    // Nothing on the replicas' disks: the bucket is all they share, and all they keep.
    for (const r of survivors) {
      const { stdout } = await run('docker', ['exec', r.id!, 'find', '/tmp', '/data', '/var/lib/ftps-gateway', '-type', 'f']);
      expect(stdout.trim(), `files on ${r.name}`).toBe('');
    }

    for (const r of survivors) await stack.checkThrough(r, result.finals);
    // The killed replica comes back with nothing of its own and serves the same files.
    await run('docker', ['start', result.victim.id!]);
    await stack.checkThrough(result.victim, result.finals);
    // One certificate, the mounted one, whichever replica answered.
    expect([...stack.fingerprints]).toEqual([certificate.fingerprint256]);

    s3.destroy();
    const perReplica = await stack.checkLogs();
    console.log(
      [
        `scale-out on S3: ${((Date.now() - started) / 1000).toFixed(1)} s in all`,
        describeRun(stack, result),
        `open multipart uploads after the run: ${open.length} (${result.cut.size} uploads cut on ${result.victim.name}), all aborted by the sweep`,
        `replica logs: ${JSON.stringify(perReplica)}; HAProxy state changes: ${await stack.haproxyStateChanges()}`,
      ].join('\n'),
    );
  }, 300_000);
});
