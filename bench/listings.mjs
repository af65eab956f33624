// npm run bench (second part) — huge directory listings: memory and what other sessions feel meanwhile.
//
// Starts the built server (the image's Node flags) on a directory of BENCH_LIST_ENTRIES (default 100,000) empty
// files and runs BENCH_LIST_PARALLEL (default 8) listings at once with curl (half LIST, half MLSD, explicit
// FTPS, PROT P), while a separate logged-in session sends NOOP every 20 ms. Prints the server's RSS growth and
// the NOOP latencies (p50/p99/max), against the targets: RSS growth < 64 MiB, NOOP p99 < 100 ms.
//
// Environment: BENCH_LIST_ENTRIES, BENCH_LIST_PARALLEL, BENCH_RUNS (default 3), BENCH_TMPDIR, BENCH_SERVER.
import { execFile, execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  HOST,
  PASSWORD,
  ReplyReader,
  USER,
  cleanupAll,
  envInt,
  fix,
  machineLine,
  median,
  mib,
  openSession,
  printTable,
  sampleRss,
  startServer,
  tempDir,
  runBenchmark,
} from './lib.mjs';

await runBenchmark(main);

async function main() {
  const entries = envInt('BENCH_LIST_ENTRIES', 100_000, 1);
  const parallel = envInt('BENCH_LIST_PARALLEL', 8, 1);
  const runs = envInt('BENCH_RUNS', 3, 1);
  console.log(`ftps-gateway listing benchmark — ${machineLine()}`);
  const root = await tempDir('ftps-bench-list-');
  const dir = path.join(root, 'huge');
  await mkdir(dir);
  const t0 = performance.now();
  execFileSync('sh', ['-c', `cd "${dir}" && seq -f 'file-%06g.dat' 1 ${entries} | xargs touch`]);
  console.log(`${entries} entries created in ${fix((performance.now() - t0) / 1000, 1)} s; ${parallel} listings at once, ${runs} run(s)\n`);

  const rows = [];
  for (let run = 1; run <= runs; run++) {
    // A fresh server per run, so each growth figure starts from the same state.
    const server = await startServer({ root, env: { PASV_MAX_PER_IP: String(parallel + 2), LOG_LEVEL: 'warn' } });
    const probe = await noopProbe(server.port);
    const rss = sampleRss(server.pid, 50);
    const started = performance.now();
    const lines = await Promise.all(Array.from({ length: parallel }, (_, i) => curlListing(server.port, i % 2 ? 'MLSD' : 'LIST')));
    const seconds = (performance.now() - started) / 1000;
    const memory = rss.stop();
    const latencies = await probe.stop();
    await server.stop();
    const complete = lines.every((n) => n === entries);
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
    rows.push({ run, seconds, growth: memory.peak - memory.before, before: memory.before, p50: q(0.5), p99: q(0.99), max: sorted.at(-1), complete });
  }
  printTable(
    ['run', 'seconds', 'RSS before', 'RSS growth', 'target', 'NOOP p50', 'NOOP p99', 'target', 'NOOP max', 'all entries'],
    rows.map((r) => [
      r.run,
      `${fix(r.seconds, 1)} s`,
      `${fix(mib(r.before), 0)} MiB`,
      `${fix(mib(r.growth), 1)} MiB`,
      '< 64 MiB',
      `${fix(r.p50, 1)} ms`,
      `${fix(r.p99, 1)} ms`,
      '< 100 ms',
      `${fix(r.max, 1)} ms`,
      r.complete ? 'yes' : 'NO',
    ]),
  );
  console.log(`\nmedian RSS growth ${fix(mib(median(rows.map((r) => r.growth))), 1)} MiB, median NOOP p99 ${fix(median(rows.map((r) => r.p99)), 1)} ms`);
  await cleanupAll();
}

/** One listing with curl (a separate process, so it does not disturb the NOOP probe); resolves with its line count. */
function curlListing(port, verb) {
  const args = ['--ssl-reqd', '-k', '-s', '-S', '--user', `${USER}:${PASSWORD}`, '-X', verb, `ftp://${HOST}:${port}/huge/`];
  return new Promise((resolve, reject) => {
    const child = execFile('curl', args, { maxBuffer: 512 * 1024 * 1024, encoding: 'buffer' }, (err, stdout) => {
      if (err) return reject(new Error(`curl ${verb}: ${err.message}`));
      let lines = 0;
      for (let i = stdout.indexOf(0x0a); i !== -1; i = stdout.indexOf(0x0a, i + 1)) lines++;
      resolve(lines);
    });
    child.stdin?.end();
  });
}

/** A logged-in session sending NOOP every 20 ms; stop() resolves with the latencies in ms. */
async function noopProbe(port) {
  const socket = await openSession(port);
  const reader = new ReplyReader();
  reader.attach(socket);
  const latencies = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const sent = performance.now();
      socket.write('NOOP\r\n');
      await reader.next(30_000);
      latencies.push(performance.now() - sent);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      socket.destroy();
      return latencies;
    },
  };
}
