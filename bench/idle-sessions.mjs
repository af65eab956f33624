// npm run bench:idle — server memory per idle, logged-in TLS control session.
//
// Starts the built server (dist/main.js) as a child process on 127.0.0.1 and opens BENCH_SESSIONS (default
// 1000) control connections from this process: connect, 220, AUTH TLS, 234, TLS handshake, USER, 331,
// PASS, 230 — then leaves them idle. The server's VmRSS is read before, half-way and after (each after a
// settle pause); KB per session = growth / sessions (1 KB = 1024 bytes, as /proc reports kB).
// Runs twice: TLS_REQUIRE_SESSION_REUSE=true (the default; data connections must resume their control
// session, which costs per-session TLS state) and =false (one shared TLS context).
// Target ≤ 40 KB per session; reference vsftpd ~900 KB, ftp-srv 44 KB.
//
// Environment:
//   BENCH_SESSIONS=1000      sessions to open (scaled down, and said so, if the open-files limit is too low)
//   BENCH_SETTLE_MS=3000     pause before each RSS reading
//   BENCH_CONCURRENCY=50     logins in flight at once
//   BENCH_TLS_MAX=TLSv1.2    highest TLS version the client offers (default: Node's, TLSv1.3)
//   BENCH_SERVER=path        another build's main.js; BENCH_SERVER_ENV="K=V K=V" extra server variables
import {
  ReplyReader,
  cleanupAll,
  cpuSeconds,
  envInt,
  fdLimit,
  fix,
  expectReply,
  machineLine,
  openMany,
  printTable,
  rssBytes,
  sleep,
  startServer,
  tempDir,
  runBenchmark,
  watchdog,
} from './lib.mjs';

const KiB = 1024;
const TARGET_KB = 40;

/** RSS after a settle pause: the median of five readings 100 ms apart. */
async function settledRss(pid, settleMs) {
  await sleep(settleMs);
  const values = [];
  for (let i = 0; i < 5; i++) {
    values.push(rssBytes(pid));
    await sleep(100);
  }
  values.sort((a, b) => a - b);
  return values[2];
}

async function closeAll(sockets) {
  await Promise.all(
    sockets.splice(0).map(
      (s) =>
        new Promise((resolve) => {
          s.once('close', resolve);
          s.destroy();
        }),
    ),
  );
}

async function measure({ label, reuse, sessions, settleMs, concurrency, root, tlsOptions }) {
  const server = await startServer({
    root,
    label,
    env: {
      MAX_CONNECTIONS: String(Math.max(2000, sessions + 50)),
      MAX_CONNECTIONS_PER_IP: String(Math.max(2000, sessions + 50)),
      IDLE_TIMEOUT_SECONDS: '900',
      TLS_REQUIRE_SESSION_REUSE: String(reuse),
    },
  });
  const open = [];
  try {
    // Warm-up: a few logins load the code paths involved, then go away.
    await openMany(server.port, 10, 10, open, tlsOptions);
    await closeAll(open);
    const before = await settledRss(server.pid, settleMs);
    const half = Math.floor(sessions / 2);
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    await openMany(server.port, half, concurrency, open, tlsOptions);
    const tHalf = performance.now();
    const cpuHalf = cpuSeconds(server.pid);
    const mid = await settledRss(server.pid, settleMs);
    const t1 = performance.now();
    const cpu1 = cpuSeconds(server.pid);
    await openMany(server.port, sessions - half, concurrency, open, tlsOptions);
    // Time and server CPU of the logins only, not of the settle pauses.
    const seconds = (tHalf - t0 + performance.now() - t1) / 1000;
    const cpu = cpuHalf - cpu0 + cpuSeconds(server.pid) - cpu1;
    const after = await settledRss(server.pid, settleMs);
    if (open.length !== sessions) throw new Error(`only ${open.length} of ${sessions} sessions open`);
    // Still alive and logged in? One NOOP on the last session.
    const last = open.at(-1);
    const check = new ReplyReader();
    last.removeAllListeners('data');
    check.attach(last);
    last.write('NOOP\r\n');
    await expectReply(check, 200, 'NOOP after idling');
    return {
      label,
      sessions,
      before,
      mid,
      after,
      perSession: (after - before) / sessions,
      marginal: (after - mid) / (sessions - half),
      loginsPerSecond: sessions / seconds,
      cpuMsPerLogin: (cpu / sessions) * 1000,
    };
  } finally {
    await closeAll(open);
    await server.stop();
  }
}

async function main() {
  let sessions = envInt('BENCH_SESSIONS', 1000, 2);
  const settleMs = envInt('BENCH_SETTLE_MS', 3000, 0);
  const concurrency = envInt('BENCH_CONCURRENCY', 50, 1);
  const tlsOptions = process.env.BENCH_TLS_MAX ? { maxVersion: process.env.BENCH_TLS_MAX } : {};
  const timer = watchdog(10);

  console.log(`ftps-gateway idle-session memory benchmark — ${machineLine()}`);
  // This process holds one descriptor per session and so does the server (which inherits our limit).
  const limit = fdLimit();
  const needed = sessions + 100;
  let note = `open-files limit ${limit === Infinity ? 'unlimited' : limit}, enough for ${sessions} sessions`;
  if (limit !== undefined && limit < needed) {
    const scaled = Math.max(2, limit - 100);
    note =
      `open-files limit ${limit} is below the ${needed} needed: opening ${scaled} sessions instead of ${sessions} ` +
      `(KB per session does not depend on the count; run \`ulimit -n ${needed + 100}\` first for the full number)`;
    sessions = scaled;
  }
  console.log(note);
  console.log(
    `${sessions} sessions per run, ${concurrency} logins in flight, RSS read ${settleMs} ms after each step, ` +
      `client TLS ≤ ${tlsOptions.maxVersion ?? 'TLSv1.3'}\n`,
  );

  const root = await tempDir('ftps-bench-idle-');
  const results = [];
  for (const reuse of [true, false]) {
    const label = `TLS_REQUIRE_SESSION_REUSE=${reuse}`;
    process.stdout.write(`${label}: opening ${sessions} sessions… `);
    const r = await measure({ label, reuse, sessions, settleMs, concurrency, root, tlsOptions });
    console.log(`done (${fix(r.loginsPerSecond, 0)} logins/s)`);
    results.push(r);
  }

  console.log('');
  const kb = (bytes) => bytes / KiB;
  printTable(
    ['server setting', 'sessions', 'RSS before', 'RSS half', 'RSS after', 'KB/session', 'marginal KB', 'target', 'logins/s', 'CPU ms/login'],
    results.map((r) => [
      r.label,
      r.sessions,
      `${fix(r.before / 2 ** 20, 1)} MiB`,
      `${fix(r.mid / 2 ** 20, 1)} MiB`,
      `${fix(r.after / 2 ** 20, 1)} MiB`,
      fix(kb(r.perSession), 1),
      fix(kb(r.marginal), 1),
      `≤ ${TARGET_KB}${kb(r.perSession) <= TARGET_KB ? ' ok' : ' MISS'}`,
      fix(r.loginsPerSecond, 0),
      fix(r.cpuMsPerLogin, 2),
    ]),
  );
  console.log('');
  console.log('KB/session = (RSS after − RSS before) / sessions; marginal KB = (RSS after − RSS half) / second half;');
  console.log('1 KB = 1024 bytes. RSS = server VmRSS (median of 5 readings after the settle pause).');
  console.log('logins/s and CPU ms/login: TCP connect + AUTH TLS + handshake + USER/PASS, server CPU time per login.');
  console.log('Reference: vsftpd ~900 KB per idle session, ftp-srv 44 KB.');
  clearTimeout(timer);
  await cleanupAll();
}

await runBenchmark(main);
