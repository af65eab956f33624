// npm run bench — FTPS transfer throughput and server memory, with curl as the client.
//
// Starts the built server (dist/main.js) as a child process on 127.0.0.1 (a fresh one per phase) and
// measures with `curl --ssl-reqd -k` (explicit FTPS, AUTH TLS + PROT P, EPSV, data TLS resuming the control
// session):
//   1. single-stream download of a BENCH_SIZE_MIB file (default 1024 MiB = 1 GiB),
//   2. single-stream upload of the same size (STOR, -T), plus the disk's own write speed for reference,
//   3. BENCH_PARALLEL (default 8) parallel downloads: aggregate = total bytes / wall time,
// sampling the server's VmRSS every 100 ms (before, peak, growth per phase) and its CPU time.
// 1 MB = 10^6 bytes; memory in MiB. Prints a table, stops the server, removes its temporary files.
//
// Environment:
//   BENCH_SIZE_MIB=64        smaller file for a quick run (default 1024)
//   BENCH_RUNS=3             runs per phase; the table shows median and best (default 3)
//   BENCH_PARALLEL=8         streams in the parallel phase (0 skips it)
//   BENCH_PHASES=down,up,par which phases to run (default all three)
//   BENCH_BASELINE=1         also measure a minimal Node HTTPS server with the same curl: GET piping
//                            fs.createReadStream (as the FTP server does), GET through two reused buffers,
//                            PUT into fs.createWriteStream — what Node itself reaches on this machine
//   BENCH_HWM_KIB=256        highWaterMark of the baseline's file streams
//   BENCH_TMPDIR=dir         where FTP_ROOT is created (default os.tmpdir(); use the disk you want to measure)
//   BENCH_SERVER=path        another build's main.js; BENCH_SERVER_ENV="K=V K=V" extra server variables
//   BENCH_CURL_ARGS="..."    extra curl arguments (e.g. "--tls-max 1.2")
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  HOST,
  MiB,
  PASSWORD,
  USER,
  cleanupAll,
  cpuSeconds,
  cpuTotals,
  createFile,
  curl,
  envInt,
  filesystemNote,
  fix,
  freePort,
  machineLine,
  mb,
  median,
  mib,
  onCleanup,
  printTable,
  SERVER_ENTRY,
  sampleRss,
  sleep,
  startServer,
  tempDir,
  trackChild,
  runBenchmark,
  watchdog,
} from './lib.mjs';

if (process.argv[2] === '--serve-baseline') {
  await serveBaseline(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
} else {
  await runBenchmark(main);
}

async function main() {
  const sizeMiB = envInt('BENCH_SIZE_MIB', 1024, 1);
  const runs = envInt('BENCH_RUNS', 3, 1);
  const parallel = envInt('BENCH_PARALLEL', 8, 0);
  const baseline = ['1', 'true', 'yes'].includes((process.env.BENCH_BASELINE ?? '').toLowerCase());
  const extraCurl = (process.env.BENCH_CURL_ARGS ?? '').split(/\s+/).filter(Boolean);
  const only = new Set((process.env.BENCH_PHASES ?? 'down,up,par').split(',').map((p) => p.trim()));
  const size = sizeMiB * MiB;
  // A whole run must end by itself, whatever happens.
  const timer = watchdog(30);

  console.log(`ftps-gateway throughput benchmark — ${machineLine()}`);
  console.log(
    `file ${sizeMiB} MiB, ${runs} run(s) per phase, ${parallel} parallel streams, client curl (explicit FTPS, PROT P)\n`,
  );

  const root = await tempDir('ftps-bench-root-');
  const file = path.join(root, 'big.bin');
  const t0 = performance.now();
  await createFile(file, size);
  await createFile(path.join(root, 'warm.bin'), MiB);
  console.log(`FTP_ROOT ${filesystemNote(root)}`);
  const took = fix((performance.now() - t0) / 1000, 2);
  console.log(`created big.bin (${sizeMiB} MiB, a 1 MiB random block repeated, numbered, synced) in ${took} s`);

  const curlBase = ['--ssl-reqd', '-k', '-s', '-S', '--user', `${USER}:${PASSWORD}`, ...extraCurl];
  const maxTime = String(Math.max(120, Math.ceil(size / 5e6)));
  const url = (server, name) => `ftp://${HOST}:${server.port}/${name}`;
  const download = (server) => () =>
    curl([...curlBase, '--max-time', maxTime, '-o', '/dev/null', url(server, 'big.bin')], size, 'download');
  let uploads = 0;
  const upload = (server) => async () => {
    const name = `upload-${uploads++}.bin`;
    const r = await curl([...curlBase, '--max-time', maxTime, '-T', file, url(server, name)], size, 'upload');
    const st = await fs.stat(path.join(root, name));
    if (st.size !== size) throw new Error(`upload stored ${st.size} bytes, expected ${size}`);
    await fs.rm(path.join(root, name));
    return r;
  };
  const plan = [
    { key: 'down', name: 'download, 1 stream', target: 800, fn: download },
    { key: 'up', name: 'upload, 1 stream', target: 500, fn: upload },
    {
      key: 'par',
      name: `download, ${parallel} parallel (aggregate)`,
      fn: (server) => () => parallelDownloads(download(server), parallel, size),
    },
  ].filter((p) => only.has(p.key) && (p.key !== 'par' || parallel > 0));

  // Each phase gets a fresh server, so that its RSS growth does not depend on the phases before it.
  const phases = [];
  let diskWrite;
  for (const p of plan) {
    const server = await startServer({
      root,
      env: { MAX_CONNECTIONS: '64', MAX_CONNECTIONS_PER_IP: '64', DATA_TIMEOUT_SECONDS: '60' },
    });
    if (phases.length === 0) {
      console.log(
        `server ${path.relative(process.cwd(), SERVER_ENTRY)} on ${HOST}, passive ports ` +
          `${server.env.PASV_MIN_PORT}-${server.env.PASV_MAX_PORT}, ` +
          `${server.selfSigned ? 'generated self-signed certificate' : 'certificate from /certs'}`,
      );
      console.log(`TLS as negotiated by curl: ${await negotiated([...curlBase, '-v', '-o', '/dev/null', url(server, '')])}`);
    }
    // Warm-up: a small transfer each way loads the code paths once.
    await curl([...curlBase, '-o', '/dev/null', url(server, 'warm.bin')], MiB, 'warm-up download');
    await curl([...curlBase, '-T', path.join(root, 'warm.bin'), url(server, 'warm-up.bin')], MiB, 'warm-up upload');
    await sleep(500);
    process.stdout.write(`${p.name}: ${runs} run(s)… `);
    const result = await phase(server.pid, runs, p.fn(server));
    console.log(result.speeds.map((v) => `${fix(mb(v), 0)} MB/s`).join(', '));
    phases.push({ name: p.name, target: p.target, ...result });
    await server.stop();
    if (p.key === 'up') diskWrite = await diskWriteSpeeds(root, size, runs);
  }

  if (baseline) phases.push(...(await runBaseline(file, size, runs, curlBase.filter((a) => a !== '--ssl-reqd'), root)));

  console.log('');
  printTable(
    [
      ...['phase', 'MB/s median', 'MB/s best', 'target', 'server CPU', 'CPU s/GB', 'curl CPU', 'other CPU'],
      ...['RSS before', 'RSS peak', 'growth', 'RSS target'],
    ],
    phases.map(row),
  );
  console.log('');
  if (diskWrite) {
    console.log(
      `local disk write without network (1 MiB writes to a new file in FTP_ROOT, as an upload does): median ` +
        `${fix(mb(median(diskWrite)), 0)} MB/s (runs ${diskWrite.map((v) => fix(mb(v), 0)).join(', ')}) — a ceiling for uploads`,
    );
  }
  for (const p of phases.filter((x) => x.perStream.length)) {
    console.log(`${p.name}: single streams ${p.perStream.map((v) => fix(mb(v), 0)).join(', ')} MB/s`);
  }
  console.log('');
  console.log('MB/s = 10^6 bytes/s (curl %{speed_download}/%{speed_upload}; parallel: total bytes / wall time).');
  console.log('CPU = CPU time / wall time, 100% = one core busy: the server process (all its threads), the curl');
  console.log(
    `client(s), and everything else on this ${os.cpus().length}-core machine (other CPU > ~20% means the numbers are noisy).`,
  );
  console.log('CPU s/GB = server CPU seconds per 10^9 bytes transferred (lower is better; the least noisy figure).');
  console.log('RSS = server VmRSS sampled every 100 ms; each phase runs on a fresh server (after a 1 MiB warm-up');
  console.log('transfer each way); growth = peak during the phase − before it; MiB.');
  console.log('Reference (same 2-core machine, curl): pure-ftpd 860/537, vsftpd 482/164, ftp-srv 530/262 MB/s down/up;');
  console.log("Node's TLS loopback ceiling ~1.1 GB/s.");
  clearTimeout(timer);
  await cleanupAll();
}

/** Page-cache write speed of FTP_ROOT's disk: `size` bytes in 1 MiB writes to a new file, then removed. */
async function diskWriteSpeeds(root, size, runs) {
  const block = Buffer.alloc(MiB, 0x5a);
  const speeds = [];
  for (let i = 0; i < runs; i++) {
    const target = path.join(root, `disk-write-${i}.bin`);
    const start = performance.now();
    const handle = await fs.open(target, 'w');
    for (let written = 0; written < size; written += MiB) await handle.write(block, 0, Math.min(MiB, size - written));
    await handle.close();
    speeds.push(size / ((performance.now() - start) / 1000));
    await fs.rm(target);
  }
  return speeds;
}

async function negotiated(args) {
  return new Promise((resolve) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.once('close', (code) => {
      const lines = [...new Set([...err.matchAll(/SSL connection using (.+)/g)].map((m) => m[1].trim()))];
      const reused = /SSL re-using session ID/.test(err) ? ', data connection resumed the session' : '';
      resolve(code === 0 ? `${lines.join('; ')}${reused}` : `(curl -v failed with exit ${code})`);
    });
  });
}

async function parallelDownloads(download, n, size) {
  const start = performance.now();
  const each = await Promise.all(Array.from({ length: n }, () => download()));
  const seconds = (performance.now() - start) / 1000;
  const cpu = each.reduce((sum, r) => sum + r.cpu, 0);
  return { speed: (n * size) / seconds, bytes: n * size, seconds, cpu, perStream: each.map((r) => r.speed) };
}

/** Runs `fn` `runs` times while sampling the server's RSS and CPU. */
async function phase(pid, runs, fn) {
  const speeds = [];
  const rss = sampleRss(pid);
  const cpu0 = cpuSeconds(pid);
  const sys0 = await cpuTotals();
  const t0 = performance.now();
  const extra = [];
  let clientCpu = 0;
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const r = await fn();
    speeds.push(r.speed);
    clientCpu += r.cpu;
    bytes += r.bytes;
    if (r.perStream) extra.push(...r.perStream);
  }
  const wall = (performance.now() - t0) / 1000;
  const sys1 = await cpuTotals();
  const mem = rss.stop();
  const serverCpuSeconds = cpuSeconds(pid) - cpu0;
  const serverCpu = serverCpuSeconds / wall;
  const allCores = ((sys1.busy - sys0.busy) / (sys1.total - sys0.total)) * os.cpus().length;
  await sleep(300);
  return {
    speeds,
    perStream: extra,
    cpu: serverCpu,
    // CPU seconds the server spends per GB moved: its efficiency, less sensitive to other load than MB/s.
    cpuPerGB: serverCpuSeconds / (bytes / 1e9),
    clientCpu: clientCpu / wall,
    // Whatever else kept the CPUs busy meanwhile (other processes, unattributed kernel work): noise.
    other: Math.max(0, allCores - serverCpu - clientCpu / wall),
    ...mem,
  };
}

/** One table row: speeds against the target, CPU shares, RSS before/peak/growth against < 64 MiB. */
function row(p) {
  const med = mb(median(p.speeds));
  const growth = mib(p.peak - p.before);
  return [
    p.name,
    fix(med, 0),
    fix(mb(Math.max(...p.speeds)), 0),
    p.target === undefined ? '' : `≥ ${p.target}${med >= p.target ? ' ok' : ' MISS'}`,
    `${fix(p.cpu * 100, 0)}%`,
    `${fix(p.cpuPerGB, 2)} s`,
    `${fix(p.clientCpu * 100, 0)}%`,
    `${fix(p.other * 100, 0)}%`,
    fix(mib(p.before), 1),
    fix(mib(p.peak), 1),
    fix(growth, 1),
    p.baseline ? '' : `< 64${growth < 64 ? ' ok' : ' MISS'}`,
  ];
}

// --- baseline: a minimal Node TLS server piping the file, same client ---

/**
 * What Node itself achieves on this machine with the same client: a tiny HTTPS server (curl https://…).
 * GET /big.bin streams the file with fs.createReadStream → response (highWaterMark BENCH_HWM_KIB), as the
 * FTP server does; GET /big.bin?pooled copies it through two reused 512 KiB buffers (read, write, wait for the
 * write callback, reuse) instead; PUT pipes the request into fs.createWriteStream.
 */
async function runBaseline(file, size, runs, curlBase, root) {
  const port = await freePort();
  const hwm = envInt('BENCH_HWM_KIB', 256, 1) * 1024;
  const child = spawn(process.execPath, [process.argv[1], '--serve-baseline', root, port, hwm], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  trackChild(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  onCleanup(stop);
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (code) => reject(new Error(`baseline server exited (${code})`)));
  });
  const base = `https://${HOST}:${port}`;
  const maxTime = String(Math.max(120, Math.ceil(size / 5e6)));
  console.log(`baseline: minimal Node HTTPS server (pid ${child.pid}), file streams highWaterMark ${hwm / 1024} KiB`);
  console.log(`baseline TLS: ${await negotiated([...curlBase, '-v', '-o', '/dev/null', '-r', '0-0', `${base}/big.bin`])}`);
  const download = (query) => () =>
    curl([...curlBase, '--max-time', maxTime, '-o', '/dev/null', `${base}/big.bin${query}`], size, 'baseline download');
  const upload = async () => {
    const r = await curl([...curlBase, '--max-time', maxTime, '-T', file, `${base}/up.bin`], size, 'baseline upload');
    await fs.rm(path.join(root, 'up.bin'), { force: true });
    return r;
  };
  await curl([...curlBase, '-o', '/dev/null', '-r', '0-1048575', `${base}/big.bin`], undefined, 'baseline warm-up');
  const out = [];
  for (const [name, fn] of [
    ['baseline Node HTTPS, download, stream pipe', download('')],
    ['baseline Node HTTPS, download, 2 reused buffers', download('?pooled')],
    ['baseline Node HTTPS, upload, stream pipe', upload],
  ]) {
    process.stdout.write(`${name}: ${runs} run(s)… `);
    const result = await phase(child.pid, runs, fn);
    console.log(result.speeds.map((v) => `${fix(mb(v), 0)} MB/s`).join(', '));
    out.push({ name, baseline: true, ...result });
  }
  await stop();
  return out;
}

/** The baseline server (a child process): see runBaseline. */
async function serveBaseline(root, port, hwm) {
  const https = await import('node:https');
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  const server = https.createServer({ cert: pems.cert, key: pems.private }, (req, res) => {
    const [pathname, query] = req.url.split('?');
    const target = path.join(root, path.basename(decodeURIComponent(pathname)));
    if (req.method === 'GET') {
      const range = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      void fs.stat(target).then(
        (st) => {
          const end = range ? Number(range[2]) : st.size - 1;
          res.writeHead(range ? 206 : 200, { 'content-length': end - start + 1 });
          const copy = query === 'pooled' ? pooledCopy(target, start, end + 1, res) : streamCopy(target, start, end, hwm, res);
          copy.catch(() => res.destroy());
        },
        () => res.writeHead(404).end(),
      );
    } else if (req.method === 'PUT') {
      pipeline(req, createWriteStream(target, { highWaterMark: hwm })).then(
        () => res.writeHead(201).end(),
        () => res.writeHead(500).end(),
      );
    } else res.writeHead(405).end();
  });
  server.listen(port, HOST, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

function streamCopy(target, start, end, hwm, res) {
  return pipeline(createReadStream(target, { start, end, highWaterMark: hwm }), res);
}

/** Reads into two reused 512 KiB buffers; a buffer is refilled only once its write has completed. */
async function pooledCopy(target, start, end, res) {
  const size = 512 * 1024;
  const buffers = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  const inflight = [undefined, undefined];
  const handle = await fs.open(target, 'r');
  try {
    let position = start;
    for (let i = 0; position < end; i ^= 1) {
      await inflight[i];
      const { bytesRead } = await handle.read(buffers[i], 0, Math.min(size, end - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      const chunk = buffers[i].subarray(0, bytesRead);
      inflight[i] = new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())));
      inflight[i].catch(() => undefined);
    }
    await Promise.all(inflight);
    res.end();
  } finally {
    await handle.close();
  }
}
