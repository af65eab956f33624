// npm run load:shared — many sessions through ONE shared passive port (PASV_PORT_SHARING), with figures.
//
// Starts the built server (dist/main.js) three times, one after the other:
//   1. shared: one passive port, every session from 127.0.0.1 (all clients behind one NAT address);
//   2. shared: one passive port, sessions spread over SHARED_ADDRESSES loopback addresses (127.0.0.10, …);
//   3. unshared: a passive range of one port per session (PASV_MAX_PER_IP as large), the same spread: the baseline.
// Each run: SHARED_SESSIONS (500) concurrent basic-ftp sessions over explicit FTPS (PROT P, data connections
// resuming the control session), each uploading SHARED_TRANSFERS (5) random files of SHARED_FILE_KIB (64) KiB and
// downloading them again, SHA-256 compared. Prints per run: transfers, misrouted (a file that came back with
// another's bytes), failed transfers, refusals the server logged on its shared port, wall time and throughput;
// then the shared runs' throughput against the baseline, and the server's CPU time (the clients run in this one
// process on the same cores, so throughput also measures them). SHARED_ROUNDS (3) repeats the three runs in a
// rotating order and the verdict compares medians: single runs on 2 cores moved by ±30% with the machine's load.
// Exits 1 on any misrouted or failed transfer. A watchdog (SHARED_TIMEOUT_MINUTES, 15) ends it whatever happens.
//
// basic-ftp cannot choose its local address: the spread runs bind every socket the process opens to the address of
// the session that opens it (net.Socket#connect wrapped, the session found with AsyncLocalStorage).
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import { cleanupAll, cpuSeconds, envInt, fix, HOST, machineLine, median, MiB, PASSWORD, runBenchmark, startServer, tempDir, USER, watchdog } from './lib.mjs';

const SESSIONS = envInt('SHARED_SESSIONS', 500, 1);
const TRANSFERS = envInt('SHARED_TRANSFERS', 5, 1);
const FILE_BYTES = envInt('SHARED_FILE_KIB', 64, 1) * 1024;
const ADDRESSES = envInt('SHARED_ADDRESSES', 50, 1);
const ROUNDS = envInt('SHARED_ROUNDS', 3, 1);
const TIMEOUT_MINUTES = envInt('SHARED_TIMEOUT_MINUTES', 15, 1);
// Below the kernel's ephemeral range (32768–60999), where the clients' own sockets would take passive ports.
const PASV_BASE = 24_000;
if (ADDRESSES > 240) throw new Error('SHARED_ADDRESSES: at most 240 (127.0.0.10 … 127.0.0.249)');

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const localAddress = new AsyncLocalStorage();
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (options, ...rest) {
  const address = localAddress.getStore();
  if (address && typeof options === 'object' && options !== null && !Array.isArray(options)) {
    return connect.call(this, { ...options, localAddress: address }, ...rest);
  }
  return connect.call(this, options, ...rest);
};

/** CPU-seconds all cores spent idle since boot (/proc/stat), to tell a CPU-bound run from one waiting on latency. */
function machineIdleSeconds() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/);
  return Number(fields[4]) / 100;
}

async function session(port, index, result) {
  const client = new Client(30_000);
  try {
    await client.access({ host: HOST, port, user: USER, password: PASSWORD, secure: true, secureOptions: { rejectUnauthorized: false } });
    const files = Array.from({ length: TRANSFERS }, (_, i) => ({ name: `s${index}-f${i}.bin`, content: randomBytes(FILE_BYTES) }));
    for (const f of files) {
      await client.uploadFrom(Readable.from([f.content]), f.name);
      result.transfers++;
      result.bytes += f.content.length;
    }
    for (const f of files) {
      const chunks = [];
      await client.downloadTo(new Writable({ write: (c, _e, done) => done(void chunks.push(c)) }), f.name);
      result.transfers++;
      result.bytes += f.content.length;
      if (sha256(Buffer.concat(chunks)) !== sha256(f.content)) result.misrouted++;
    }
  } catch (err) {
    result.failed++;
    if (result.errors.length < 5) result.errors.push(String(err.message ?? err));
  } finally {
    client.close();
  }
}

async function run(label, { shared, spread }) {
  const root = await tempDir('ftps-shared-root-');
  const ports = shared ? 1 : SESSIONS;
  const server = await startServer({
    root,
    label,
    env: {
      PASV_PORT_SHARING: String(shared),
      PASV_MIN_PORT: String(PASV_BASE),
      PASV_MAX_PORT: String(PASV_BASE + ports - 1),
      PASV_MAX_PER_IP: String(ports),
      MAX_CONNECTIONS: String(SESSIONS * 2),
      MAX_CONNECTIONS_PER_IP: String(SESSIONS * 2),
      UPLOAD_FSYNC: 'false',
    },
  });
  let refusals = 0;
  server.child.stdout.on('data', (c) => (refusals += String(c).split('shared passive port: data connection refused').length - 1));
  const result = { transfers: 0, bytes: 0, misrouted: 0, failed: 0, errors: [] };
  const clientCpuBefore = process.cpuUsage();
  const idleBefore = machineIdleSeconds();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, (_, i) =>
      localAddress.run(spread ? `127.0.0.${10 + (i % ADDRESSES)}` : undefined, () => session(server.port, i, result)),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const serverCpu = cpuSeconds(server.pid);
  const clientUsage = process.cpuUsage(clientCpuBefore);
  const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
  const idle = (machineIdleSeconds() - idleBefore) / (seconds * os.cpus().length);
  await server.stop();
  return { label, ...result, refusals, seconds, serverCpu, clientCpu, idle, mbPerSecond: result.bytes / 1e6 / seconds };
}

async function main() {
  const timer = watchdog(TIMEOUT_MINUTES);
  console.log(machineLine());
  console.log(`${SESSIONS} sessions × ${TRANSFERS} uploads + ${TRANSFERS} downloads of ${FILE_BYTES / 1024} KiB, PROT P, TLS 1.3, ${ROUNDS} round(s)`);
  const configurations = [
    { label: 'shared, 1 port, 1 address', shared: true, spread: false },
    { label: `shared, 1 port, ${ADDRESSES} addresses`, shared: true, spread: true },
    { label: `unshared, ${SESSIONS} ports, ${ADDRESSES} addresses`, shared: false, spread: true },
  ];
  const runs = configurations.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    // Rotated, so that no configuration always runs first (or last) in a round.
    for (let k = 0; k < configurations.length; k++) {
      const c = (round + k) % configurations.length;
      const r = await run(configurations[c].label, configurations[c]);
      runs[c].push(r);
      console.log(
        `round ${round + 1}  ${r.label.padEnd(36)} transfers ${r.transfers}  misrouted ${r.misrouted}  failed sessions ${r.failed}  ` +
          `refused ${r.refusals}  ${fix(r.seconds)} s  ${fix(r.mbPerSecond)} MB/s  server CPU ${fix(r.serverCpu)} s  client CPU ${fix(r.clientCpu)} s  machine idle ${fix(r.idle * 100, 0)}%`,
      );
      for (const e of r.errors) console.log(`  error: ${e}`);
    }
  }
  clearTimeout(timer);
  const baseline = median(runs[2].map((r) => r.mbPerSecond));
  const baselineCpu = median(runs[2].map((r) => r.serverCpu));
  console.log('medians:');
  for (const [c, list] of runs.entries()) {
    const mbPerSecond = median(list.map((r) => r.mbPerSecond));
    const cpu = median(list.map((r) => r.serverCpu));
    console.log(
      `  ${configurations[c].label.padEnd(36)} ${fix(mbPerSecond)} MB/s (${fix((mbPerSecond / baseline) * 100, 0)}% of unshared)  ` +
        `server CPU ${fix(cpu)} s (${fix((cpu / baselineCpu) * 100, 0)}% of unshared)`,
    );
  }
  console.log(`data per run ${fix(runs[0][0].bytes / MiB)} MiB`);
  await cleanupAll();
  const broken = runs.flat().some((r) => r.misrouted > 0 || r.failed > 0);
  if (broken) throw new Error('misrouted or failed transfers (see above)');
}

await runBenchmark(main);
