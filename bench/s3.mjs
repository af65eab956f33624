// npm run bench (third part) — the S3 backend against a real S3 server: the gateway vs the AWS SDK directly.
//
// Starts one Ceph RGW container (test/images/ceph-rgw, built if missing; removed at the end, also on failure or
// Ctrl-C), makes a bucket, starts the built server with STORAGE_BACKEND=s3 on it, then runs BENCH_RUNS interleaved
// rounds of four transfers of one BENCH_S3_SIZE_MIB file (default 1024 MiB):
//   upload through the gateway    curl -T, explicit FTPS, PROT P → STOR → multipart upload (S3_PART_SIZE parts)
//   upload directly               @aws-sdk/lib-storage Upload of a file stream, same part size and parts in flight
//   download through the gateway  curl → RETR → one streamed GetObject
//   download directly             GetObject streamed to /dev/null
// and prints medians, gateway ÷ direct (target ≥ 0.8), the gateway's RSS growth during each 1 GiB upload (target
// < 128 MiB) and the CPU of the gateway, the client (curl or this process) and RGW (its container's processes).
// Prints one line and exits 0 when no Docker engine answers.
//
// Environment: BENCH_S3_SIZE_MIB (default 1024), BENCH_RUNS (rounds, default 3), BENCH_PHASES=up,down (which
// directions), BENCH_TMPDIR (where the local file is), BENCH_SERVER / BENCH_SERVER_ENV (another build, extra server
// variables such as S3_PART_SIZE; the direct upload uses the same part size), NODE_OPTIONS (reaches the server and
// this process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": the later-started profile is the gateway's).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  HOST,
  MiB,
  PASSWORD,
  REPO,
  USER,
  cleanupAll,
  cpuSeconds,
  cpuTotals,
  createFile,
  curl,
  envInt,
  extraServerEnv,
  fix,
  machineLine,
  mb,
  median,
  mib,
  onCleanup,
  printTable,
  runBenchmark,
  sampleRss,
  startServer,
  tempDir,
  watchdog,
} from './lib.mjs';

const run = promisify(execFile);

const RGW_IMAGE = 'ftps-gateway-test/ceph-rgw:dev';
const RGW_CONTEXT = path.join(REPO, 'test/images/ceph-rgw');
const ACCESS_KEY = 'testaccess';
const SECRET_KEY = 'testsecret';
const BUCKET = 'ftps-bench';
/** The gateway's FTP_ROOT; the direct transfers use keys outside it. */
const PREFIX = 'ftp/';
/** The gateway's defaults (S3_PART_SIZE, PARTS_IN_FLIGHT in src/storage/s3/s3-upload.ts), for the direct upload. */
const DEFAULT_PART_SIZE = 8 * MiB;
const PARTS_IN_FLIGHT = 4;
const UPLOAD_RSS_TARGET_MIB = 128;
const RATIO_TARGET = 0.8;

await runBenchmark(main);

async function main() {
  if (!(await dockerAnswers())) {
    console.log('S3 benchmark skipped: no Docker engine answers (`docker info` failed)');
    return;
  }
  const sizeMiB = envInt('BENCH_S3_SIZE_MIB', 1024, 1);
  const rounds = envInt('BENCH_RUNS', 3, 1);
  const phases = new Set((process.env.BENCH_PHASES ?? 'up,down').split(',').map((p) => p.trim()));
  const size = sizeMiB * MiB;
  const partSize = Number(extraServerEnv().S3_PART_SIZE ?? DEFAULT_PART_SIZE);
  // The image build (~1 min) and RGW start included; a transfer at 10 MB/s still fits.
  const timer = watchdog(Math.max(20, Math.ceil((rounds * 4 * size) / 10e6 / 60) + 5));
  const maxSeconds = Math.max(120, Math.ceil(size / 5e6));

  console.log(`ftps-gateway S3 benchmark — ${machineLine()}`);
  console.log(
    `file ${sizeMiB} MiB, ${rounds} interleaved round(s); gateway: curl (explicit FTPS, PROT P) → STORAGE_BACKEND=s3; ` +
      `direct: AWS SDK in this process; both ${fix(mib(partSize), 0)} MiB parts, ${PARTS_IN_FLIGHT} in flight\n`,
  );

  const dir = await tempDir('ftps-bench-s3-');
  const file = path.join(dir, 'big.bin');
  const warmFile = path.join(dir, 'warm.bin');
  await createFile(file, size);
  await createFile(warmFile, MiB);

  const rgw = await startRgw(sizeMiB);
  console.log(`RGW ${RGW_IMAGE} (Ceph ${rgw.version}) at ${rgw.endpoint}, ready in ${fix(rgw.readySeconds, 1)} s, memstore ${rgw.memstoreMiB} MiB`);
  const s3 = new S3Client({
    endpoint: rgw.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  onCleanup(() => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const t0 = performance.now();
  await sdkUpload(s3, file, `${PREFIX}source.bin`, partSize, maxSeconds);
  console.log(`source object ${PREFIX}source.bin (${sizeMiB} MiB) stored in ${fix((performance.now() - t0) / 1000, 1)} s`);
  await sdkUpload(s3, warmFile, `${PREFIX}warm.bin`, partSize, maxSeconds);

  const server = await startServer({
    root: await tempDir('ftps-bench-s3-root-'),
    env: {
      STORAGE_BACKEND: 's3',
      S3_BUCKET: BUCKET,
      S3_PREFIX: PREFIX,
      S3_ENDPOINT: rgw.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: ACCESS_KEY,
      S3_SECRET_ACCESS_KEY: SECRET_KEY,
      DATA_TIMEOUT_SECONDS: '60',
    },
  });
  // A failed transfer says whether the gateway itself had gone.
  const gatewayCurl = (args, bytes, what) =>
    curl(args, bytes, what).catch((err) => {
      const { exitCode, signalCode } = server.child;
      if (exitCode === null && signalCode === null) throw err;
      throw new Error(`${err.message} (the gateway had exited: ${exitCode ?? signalCode})`, { cause: err });
    });
  const curlBase = ['--ssl-reqd', '-k', '-s', '-S', '--user', `${USER}:${PASSWORD}`, '--max-time', String(maxSeconds)];
  const url = (name) => `ftp://${HOST}:${server.port}/${name}`;
  const etag = await expectedEtag(file, partSize);
  const checkAndDelete = async (key) => {
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    if (head.ContentLength !== size || head.ETag !== etag) {
      throw new Error(`${key}: ${head.ContentLength} bytes, ETag ${head.ETag} stored; expected ${size} bytes, ETag ${etag}`);
    }
    // Deleted at once: memstore holds every byte in RAM.
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  };

  let uploads = 0;
  const transfers = {
    gatewayUp: {
      name: 'upload, gateway (curl → STOR)',
      run: async () => {
        const name = `up-${uploads++}.bin`;
        const r = await gatewayCurl([...curlBase, '-T', file, url(name)], size, 'gateway upload');
        return { ...r, verify: () => checkAndDelete(`${PREFIX}${name}`) };
      },
    },
    directUp: {
      name: 'upload, direct (SDK lib-storage)',
      run: async () => {
        const key = `direct/up-${uploads++}.bin`;
        const r = await clientCpu(() => sdkUpload(s3, file, key, partSize, maxSeconds));
        return { ...r, verify: () => checkAndDelete(key) };
      },
    },
    gatewayDown: {
      name: 'download, gateway (curl ← RETR)',
      run: () => gatewayCurl([...curlBase, '-o', '/dev/null', url('source.bin')], size, 'gateway download'),
    },
    directDown: {
      name: 'download, direct (SDK GetObject)',
      run: () => clientCpu(() => sdkDownload(s3, `${PREFIX}source.bin`, size, maxSeconds)),
    },
  };

  // Warm-up: a 1 MiB transfer each way on both paths loads the code and opens the connections once.
  await gatewayCurl([...curlBase, '-o', '/dev/null', url('warm.bin')], MiB, 'warm-up download');
  await gatewayCurl([...curlBase, '-T', warmFile, url('warm-up.bin')], MiB, 'warm-up upload');
  await sdkDownload(s3, `${PREFIX}warm.bin`, MiB, maxSeconds);
  await sdkUpload(s3, warmFile, 'direct/warm-up.bin', partSize, maxSeconds);

  const plan = [
    ['up', ['gatewayUp', 'directUp']],
    ['down', ['gatewayDown', 'directDown']],
  ]
    .filter(([phase]) => phases.has(phase))
    .map(([, pair]) => pair);
  const pids = { server: server.pid, rgw: rgw.pids };
  const results = Object.fromEntries(Object.keys(transfers).map((k) => [k, []]));
  for (let round = 1; round <= rounds; round++) {
    // Who goes first alternates, so that a slow moment of the machine does not always fall on one side.
    const pairs = plan.map((pair) => (round % 2 ? pair : [...pair].reverse()));
    const line = [];
    for (const key of pairs.flat()) {
      const r = await measure(pids, transfers[key].run);
      results[key].push(r);
      line.push(`${key} ${fix(mb(r.speed), 0)}`);
    }
    console.log(`round ${round}: ${line.join(', ')} MB/s`);
  }

  const table = plan.flatMap(([gateway, direct]) => {
    const ratio = median(results[gateway].map((r) => r.speed)) / median(results[direct].map((r) => r.speed));
    return [row(transfers[gateway].name, results[gateway], ratio), row(transfers[direct].name, results[direct])];
  });
  console.log('');
  printTable(
    [
      ...['transfer', 'MB/s median', 'runs MB/s', 'gw ÷ direct', 'target'],
      ...['gateway CPU', 'CPU s/GB', 'client CPU', 'RGW CPU', 'other CPU', 'gw RSS growth', 'RSS target'],
    ],
    table,
  );
  console.log('');
  console.log('MB/s = 10^6 bytes/s: curl %{speed_*} for the gateway; bytes / time from first request to the end for the SDK.');
  console.log('gw ÷ direct = median gateway MB/s ÷ median direct MB/s, same direction, same RGW, same run.');
  console.log('CPU = CPU time / wall time, 100% = one core: the gateway process; the client (curl, or this Node process');
  console.log('for the direct SDK transfers); RGW = every process of its container (mon, OSD, radosgw); other = the rest');
  console.log(`of this ${os.cpus().length}-core machine (> ~20% means noisy figures). CPU s/GB = gateway CPU seconds per 10^9 bytes.`);
  console.log('gw RSS growth = the gateway\'s VmRSS peak during the transfer − before it (100 ms samples), worst round, MiB;');
  console.log('the same gateway process serves every round (after a 1 MiB warm-up transfer each way).');
  clearTimeout(timer);
  await cleanupAll();
}

/** One table row: median speed, the runs, the ratio against its direct twin, CPU shares, the gateway's RSS growth. */
function row(name, runs, ratio) {
  const med = (pick) => median(runs.map(pick));
  const growth = Math.max(...runs.map((r) => r.rss.peak - r.rss.before));
  const isUpload = name.startsWith('upload');
  const gateway = ratio !== undefined;
  return [
    name,
    fix(mb(med((r) => r.speed)), 0),
    runs.map((r) => fix(mb(r.speed), 0)).join(' '),
    gateway ? fix(ratio, 2) : '',
    gateway ? `≥ ${RATIO_TARGET}${ratio >= RATIO_TARGET ? ' ok' : ' MISS'}` : '',
    `${fix(med((r) => r.serverCpu) * 100, 0)}%`,
    gateway ? `${fix(med((r) => r.serverCpuPerGB), 2)} s` : '',
    `${fix(med((r) => r.clientCpu) * 100, 0)}%`,
    `${fix(med((r) => r.rgwCpu) * 100, 0)}%`,
    `${fix(med((r) => r.other) * 100, 0)}%`,
    gateway ? fix(mib(growth), 1) : '',
    gateway && isUpload ? `< ${UPLOAD_RSS_TARGET_MIB}${mib(growth) < UPLOAD_RSS_TARGET_MIB ? ' ok' : ' MISS'}` : '',
  ];
}

/** Runs one transfer while sampling the gateway's RSS and the CPU of the gateway, the client and RGW. */
async function measure(pids, transfer) {
  const rgwCpu = () => pids.rgw.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
  const rss = sampleRss(pids.server);
  const server0 = cpuSeconds(pids.server);
  const rgw0 = rgwCpu();
  const all0 = await cpuTotals();
  const t0 = performance.now();
  const r = await transfer();
  const wall = (performance.now() - t0) / 1000;
  const all1 = await cpuTotals();
  const memory = rss.stop();
  const server = cpuSeconds(pids.server) - server0;
  const rgw = rgwCpu() - rgw0;
  // Verified (and deleted) after the measurement: a HEAD and a DELETE are no part of the transfer.
  await r.verify?.();
  const allCores = ((all1.busy - all0.busy) / (all1.total - all0.total)) * os.cpus().length;
  return {
    speed: r.speed,
    serverCpu: server / wall,
    serverCpuPerGB: server / (r.bytes / 1e9),
    clientCpu: r.cpu / wall,
    rgwCpu: rgw / wall,
    other: Math.max(0, allCores - (server + r.cpu + rgw) / wall),
    rss: memory,
  };
}

/**
 * The ETag S3 gives `file` uploaded in parts of `partSize` (as both the gateway and the direct upload do): the MD5
 * of the parts' MD5s and their count, or the file's MD5 when it fits one PUT. A stored byte out of place changes it.
 */
async function expectedEtag(file, partSize) {
  const parts = [];
  const whole = createHash('md5');
  for await (const part of createReadStream(file, { highWaterMark: partSize })) {
    parts.push(createHash('md5').update(part).digest());
    whole.update(part);
  }
  if (parts.length === 1) return `"${whole.digest('hex')}"`;
  return `"${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}"`;
}

/** Runs `fn` (an SDK transfer in this process) and adds the CPU seconds this process spent meanwhile. */
async function clientCpu(fn) {
  const before = process.cpuUsage();
  const r = await fn();
  const used = process.cpuUsage(before);
  return { ...r, cpu: (used.user + used.system) / 1e6 };
}

/** A file stream into `key` with lib-storage, as an application using the SDK would; resolves { speed, bytes }. */
async function sdkUpload(s3, file, key, partSize, maxSeconds) {
  const started = performance.now();
  const body = createReadStream(file);
  const upload = new Upload({ client: s3, params: { Bucket: BUCKET, Key: key, Body: body }, partSize, queueSize: PARTS_IN_FLIGHT });
  const timer = setTimeout(() => void upload.abort(), maxSeconds * 1000);
  try {
    await upload.done();
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  return { speed: body.bytesRead / seconds, bytes: body.bytesRead };
}

/** GetObject of `key` streamed to /dev/null; resolves { speed, bytes }, fails on a short body. */
async function sdkDownload(s3, key, size, maxSeconds) {
  const started = performance.now();
  const signal = AbortSignal.timeout(maxSeconds * 1000);
  const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }), { abortSignal: signal });
  let bytes = 0;
  out.Body.on('data', (c) => (bytes += c.length));
  await pipeline(out.Body, createWriteStream('/dev/null'), { signal });
  if (bytes !== size) throw new Error(`GetObject ${key}: ${bytes} bytes, expected ${size}`);
  return { speed: bytes / ((performance.now() - started) / 1000), bytes };
}

// --- the RGW container ---

async function dockerAnswers() {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Builds the image if missing and starts one RGW container on a random loopback port; resolves once it has printed
 * its ready line. Memstore keeps objects in RAM: the source object, one upload at a time and deleted data its
 * garbage collection (30 s) has not freed yet.
 */
async function startRgw(sizeMiB) {
  if (!(await run('docker', ['image', 'inspect', RGW_IMAGE]).then(() => true, () => false))) {
    console.log(`building ${RGW_IMAGE} from ${path.relative(process.cwd(), RGW_CONTEXT)} (about a minute)…`);
    await run('docker', ['build', '-q', '-t', RGW_IMAGE, RGW_CONTEXT], { maxBuffer: 64 * MiB });
  }
  const name = `ftps-bench-rgw-${process.pid}`;
  const memstoreMiB = 5 * sizeMiB + 1024;
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    await run('docker', ['rm', '-f', name]).catch(() => undefined);
  };
  onCleanup(remove);
  // Last resort when this process ends abruptly: synchronous removal.
  process.on('exit', () => {
    if (!removed) spawnSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  });
  const started = performance.now();
  await run('docker', ['run', '-d', '--name', name, '-p', `${HOST}::7480`, '-e', `MEMSTORE_SIZE_MB=${memstoreMiB}`, RGW_IMAGE]);
  await waitForReadyLine(name, 120_000);
  const readySeconds = (performance.now() - started) / 1000;
  const port = (await run('docker', ['port', name, '7480/tcp'])).stdout.trim().split('\n')[0].split(':').pop();
  // The container's processes (mon, OSD, radosgw, the entrypoint) as PIDs of this machine, for their CPU time.
  const top = (await run('docker', ['top', name, '-eo', 'pid'])).stdout.trim().split('\n').slice(1);
  const version = (await run('docker', ['exec', name, 'ceph-mon', '--version'])).stdout.match(/ceph version (\S+)/)?.[1] ?? '?';
  return { endpoint: `http://${HOST}:${port}`, pids: top.map(Number), readySeconds, memstoreMiB, version };
}

function waitForReadyLine(name, timeoutMs) {
  return new Promise((resolve, reject) => {
    const logs = spawn('docker', ['logs', '-f', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const timer = setTimeout(() => finish(new Error(`RGW not ready within ${timeoutMs / 1000} s`)), timeoutMs);
    const finish = (err) => {
      clearTimeout(timer);
      logs.kill();
      if (err) reject(err);
      else resolve();
    };
    const watch = (chunk) => {
      seen += chunk;
      if (/^RGW READY/m.test(seen)) finish();
    };
    logs.stdout.on('data', watch);
    logs.stderr.on('data', (c) => (seen += c));
    logs.once('close', () => finish(new Error(`RGW container ended before it was ready:\n${seen.trim().split('\n').slice(-15).join('\n')}`)));
  });
}
