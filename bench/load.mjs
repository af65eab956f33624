// npm run load — many honest FTPS clients and a crowd of password guessers against one server, with figures.
//
// Starts the built server (dist/main.js) as a child process on 127.0.0.1 (bench/lib.mjs), then at once:
//   - LOAD_CLIENTS (200) honest clients from 127.0.0.1, basic-ftp over explicit FTPS (AUTH TLS, PBSZ 0, PROT P,
//     data connections resuming the control TLS session), each in a directory of its own: LOAD_ROUNDS (3) rounds of
//     uploading LOAD_FILES (2) random files of 64–512 KiB, listing them (names and sizes), downloading them and
//     comparing SHA-256;
//   - LOAD_GUESSERS (50) password guessers, each from its own loopback address (127.0.0.2, 127.0.0.3, …): a raw TLS
//     client that connects, sends AUTH TLS, USER and a wrong PASS, again and again, reconnecting whenever the server
//     closes, until the server refuses it (421 before the greeting, or no connection at all) — the server bans an
//     address after LOGIN_BAN_THRESHOLD failed logins.
// Prints transfers, corrupt files, failed honest sessions, the guessers' outcomes, the server's peak RSS and peak
// open file descriptors (/proc/<pid>/fd, sampled every 100 ms) and wall time. Exits 1 if a file came back corrupt,
// an honest session failed, or a guesser was never refused. A watchdog (LOAD_TIMEOUT_SECONDS, 300) ends the run
// whatever happens; the server and its temporary files are removed on every way out.
//
// Environment: LOAD_CLIENTS, LOAD_ROUNDS, LOAD_FILES, LOAD_GUESSERS, LOAD_BAN_THRESHOLD (10), LOAD_TIMEOUT_SECONDS.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Readable, Writable } from 'node:stream';
import { Client } from 'basic-ftp';
import {
  cleanupAll,
  envInt,
  fdLimit,
  fix,
  HOST,
  machineLine,
  MiB,
  PASSWORD,
  ReplyReader,
  rssBytes,
  startServer,
  tempDir,
  USER,
} from './lib.mjs';

const CLIENTS = envInt('LOAD_CLIENTS', 200, 1);
const ROUNDS = envInt('LOAD_ROUNDS', 3, 1);
const FILES = envInt('LOAD_FILES', 2, 1);
const GUESSERS = envInt('LOAD_GUESSERS', 50, 0);
const BAN_THRESHOLD = envInt('LOAD_BAN_THRESHOLD', 10, 1);
const TIMEOUT_SECONDS = envInt('LOAD_TIMEOUT_SECONDS', 300, 10);
const MIN_BYTES = 64 * 1024;
const MAX_BYTES = 512 * 1024;
// A guesser that is never refused gives up after this many connections (the ban needs BAN_THRESHOLD / 3 of them).
const MAX_GUESSER_CONNECTIONS = Math.ceil(BAN_THRESHOLD / 3) * 4 + 4;

if (GUESSERS > 253) throw new Error('LOAD_GUESSERS: at most 253 (127.0.0.2 … 127.0.0.254)');

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const honest = { sessionsDone: 0, failedSessions: 0, uploads: 0, downloads: 0, listings: 0, bytesUp: 0, bytesDown: 0, corrupt: 0, errors: [] };
const guessers = [];
let stopping = false;

async function main() {
  const wanted = CLIENTS * 2 + GUESSERS * 2 + 64;
  const limit = fdLimit();
  if (limit !== undefined && limit < wanted * 2) {
    console.warn(`warning: the open-file limit (${limit}) is low for ${CLIENTS} clients; raise it with ulimit -n`);
  }
  const root = await tempDir('ftps-load-root-');
  const server = await startServer({
    root,
    label: 'server',
    env: {
      MAX_CONNECTIONS: String(CLIENTS + GUESSERS + 100),
      MAX_CONNECTIONS_PER_IP: String(CLIENTS + 50),
      PASV_MIN_PORT: '31000',
      PASV_MAX_PORT: '31999',
      LOGIN_BAN_THRESHOLD: String(BAN_THRESHOLD),
      LOGIN_BAN_WINDOW_SECONDS: '600',
      LOGIN_BAN_SECONDS: '900',
      // Failed logins and bans are logged at warn: thousands of lines. Errors still show.
      LOG_LEVEL: 'error',
    },
  });
  const watchdog = setTimeout(() => {
    stopping = true;
    console.error(`\nwatchdog: still running after ${TIMEOUT_SECONDS} s — figures so far:`);
    report(server, sampler.stop(), (performance.now() - started) / 1000, undefined);
    void cleanupAll().then(() => process.exit(1));
  }, TIMEOUT_SECONDS * 1000);

  console.log(machineLine());
  console.log(
    `load: ${CLIENTS} honest clients × ${ROUNDS} rounds × ${FILES} files of 64–512 KiB (upload, list, download, SHA-256), ` +
      `${GUESSERS} password guessers from 127.0.0.2–127.0.0.${GUESSERS + 1}; LOGIN_BAN_THRESHOLD=${BAN_THRESHOLD}; ` +
      `server pid ${server.pid}, port ${server.port}`,
  );
  const sampler = sampleServer(server.pid);
  const started = performance.now();
  let honestSeconds;
  await Promise.all([
    Promise.all(Array.from({ length: CLIENTS }, (_, i) => honestClient(server.port, i))).then(() => {
      honestSeconds = (performance.now() - started) / 1000;
    }),
    Promise.all(Array.from({ length: GUESSERS }, (_, j) => guesser(server.port, j))),
  ]);
  const wall = (performance.now() - started) / 1000;
  const peaks = sampler.stop();
  clearTimeout(watchdog);
  const leftovers = await countTempFiles(root);
  const ok = report(server, peaks, wall, honestSeconds, leftovers);
  await server.stop();
  await cleanupAll();
  process.exit(ok ? 0 : 1);
}

/** One honest user: own directory, ROUNDS × (upload FILES, list, download and compare each). */
async function honestClient(port, i) {
  const client = new Client(60_000);
  try {
    await client.access({ host: HOST, port, user: USER, password: PASSWORD, secure: true, secureOptions: { rejectUnauthorized: false } });
    await client.ensureDir(`client-${i}`);
    for (let round = 0; round < ROUNDS && !stopping; round++) {
      const files = [];
      for (let f = 0; f < FILES; f++) {
        const content = randomBytes(randomInt(MIN_BYTES, MAX_BYTES + 1));
        const name = `r${round}-f${f}.bin`;
        await client.uploadFrom(Readable.from([content]), name);
        honest.uploads++;
        honest.bytesUp += content.length;
        files.push({ name, content });
      }
      const listing = new Map((await client.list()).map((e) => [e.name, e.size]));
      honest.listings++;
      for (const { name, content } of files) {
        if (listing.get(name) !== content.length) throw new Error(`${name}: listed with ${listing.get(name)} bytes, uploaded ${content.length}`);
      }
      for (const { name, content } of files) {
        const back = await download(client, name);
        honest.downloads++;
        honest.bytesDown += back.length;
        if (sha256(back) !== sha256(content)) {
          honest.corrupt++;
          honest.errors.push(`client ${i}: ${name} came back different (${back.length} of ${content.length} bytes)`);
        }
      }
    }
    honest.sessionsDone++;
  } catch (err) {
    honest.failedSessions++;
    honest.errors.push(`client ${i}: ${err?.code ?? ''} ${err?.message ?? err}`);
  } finally {
    client.close();
  }
}

async function download(client, name) {
  const chunks = [];
  await client.downloadTo(
    new Writable({
      write(chunk, _enc, done) {
        chunks.push(chunk);
        done();
      },
    }),
    name,
  );
  return Buffer.concat(chunks);
}

/**
 * A password guesser from 127.0.0.(j+2): connections with wrong passwords until the server refuses it.
 * Counts 530 replies, 421 refusals before any greeting, connections that failed or closed without a greeting.
 */
async function guesser(port, j) {
  const address = `127.0.0.${j + 2}`;
  const g = { address, connections: 0, wrong530: 0, refused421: 0, refusedOther: 0, otherReplies: 0, failuresBeforeRefusal: undefined, note: '' };
  guessers.push(g);
  for (let n = 0; n < MAX_GUESSER_CONNECTIONS && !stopping; n++) {
    g.connections++;
    const outcome = await guessingSession(port, address, g);
    if (outcome === 'refused') {
      g.failuresBeforeRefusal = g.wrong530;
      return;
    }
  }
  g.note = `never refused after ${g.connections} connections`;
}

/** One connection: 'refused' (421 at connect, or no connection), else 'closed' once the server hung up. */
async function guessingSession(port, localAddress, g) {
  const raw = net.connect({ host: HOST, port, localAddress });
  raw.setNoDelay(true);
  const plain = new ReplyReader();
  plain.attach(raw);
  const connected = await new Promise((resolve) => {
    raw.once('connect', () => resolve(true));
    raw.once('error', (err) => resolve(err));
  });
  if (connected !== true) {
    g.refusedOther++;
    g.note = `connect: ${connected.code ?? connected.message}`;
    return 'refused';
  }
  try {
    let greeting;
    try {
      greeting = await plain.next(20_000);
    } catch {
      g.refusedOther++;
      return 'refused';
    }
    if (greeting.code === 421) {
      g.refused421++;
      return 'refused';
    }
    if (greeting.code !== 220) {
      g.otherReplies++;
      return 'closed';
    }
    raw.write('AUTH TLS\r\n');
    const auth = await plain.next(20_000);
    if (auth.code !== 234) {
      g.otherReplies++;
      return 'closed';
    }
    plain.detach(raw);
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    secure.on('error', () => undefined);
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const reader = new ReplyReader();
    reader.attach(secure);
    for (let attempt = 0; !stopping; attempt++) {
      secure.write(`USER ${USER}\r\n`);
      const user = await reader.next(20_000);
      if (user.code !== 331) {
        g.otherReplies++;
        return 'closed';
      }
      secure.write(`PASS not-the-password-${attempt}\r\n`);
      const pass = await reader.next(20_000);
      if (pass.code === 530) g.wrong530++;
      else g.otherReplies++;
    }
    return 'closed';
  } catch {
    // The server closed the connection (LOGIN_MAX_ATTEMPTS reached, or the failure that completed a ban).
    return 'closed';
  } finally {
    raw.destroy();
  }
}

/** Peak VmRSS and peak open descriptors of the server, sampled every 100 ms. */
function sampleServer(pid) {
  const fds = () => {
    try {
      return readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      return undefined;
    }
  };
  const before = { rss: rssBytes(pid) ?? 0, fds: fds() ?? 0 };
  const peak = { ...before };
  const sample = () => {
    const rss = rssBytes(pid);
    const open = fds();
    if (rss !== undefined && rss > peak.rss) peak.rss = rss;
    if (open !== undefined && open > peak.fds) peak.fds = open;
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { before, peak, after: { rss: rssBytes(pid) ?? 0, fds: fds() ?? 0 } };
    },
  };
}

async function countTempFiles(root) {
  let count = 0;
  const walk = async (dir) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(dir, e.name));
      else if (e.name.startsWith('.ftps-upload-')) count++;
    }
  };
  await walk(root);
  return count;
}

/** Prints the figures; true when the run met its promises. */
function report(server, mem, wall, honestSeconds, leftovers) {
  const expected = CLIENTS * ROUNDS * FILES;
  const refused = guessers.filter((g) => g.failuresBeforeRefusal !== undefined);
  const failures = refused.map((g) => g.failuresBeforeRefusal);
  const sum = (key) => guessers.reduce((s, g) => s + g[key], 0);
  const mbps = honestSeconds ? (honest.bytesUp + honest.bytesDown) / 1e6 / honestSeconds : undefined;
  console.log('');
  console.log('honest clients');
  console.log(`  sessions completed       ${honest.sessionsDone} of ${CLIENTS}`);
  console.log(`  failed sessions          ${honest.failedSessions}   (must be 0)`);
  console.log(`  uploads                  ${honest.uploads} of ${expected}, ${fix(honest.bytesUp / MiB, 1)} MiB`);
  console.log(`  listings                 ${honest.listings}`);
  console.log(`  downloads (SHA-256 kept) ${honest.downloads} of ${expected}, ${fix(honest.bytesDown / MiB, 1)} MiB`);
  console.log(`  corrupt files            ${honest.corrupt}   (must be 0)`);
  if (honestSeconds) console.log(`  time                     ${fix(honestSeconds, 1)} s, ${fix(mbps, 1)} MB/s up + down together`);
  for (const e of honest.errors.slice(0, 10)) console.log(`  ! ${e}`);
  console.log(`password guessers (${GUESSERS}, one address each)`);
  console.log(`  refused in the end       ${refused.length} of ${GUESSERS}`);
  console.log(`  530 replies (wrong PASS) ${sum('wrong530')}`);
  console.log(`  421 at connect (banned)  ${sum('refused421')}`);
  console.log(`  other refusals           ${sum('refusedOther')}   (connection failed or closed before a greeting)`);
  console.log(`  other replies            ${sum('otherReplies')}`);
  console.log(`  connections              ${sum('connections')}`);
  if (failures.length) {
    console.log(`  failed logins until refused: min ${Math.min(...failures)}, max ${Math.max(...failures)} (LOGIN_BAN_THRESHOLD=${BAN_THRESHOLD})`);
  }
  for (const g of guessers.filter((x) => x.note)) console.log(`  ! ${g.address}: ${g.note}`);
  console.log('server');
  console.log(`  RSS                      ${fix(mem.before.rss / MiB, 1)} MiB before, peak ${fix(mem.peak.rss / MiB, 1)} MiB, ${fix(mem.after.rss / MiB, 1)} MiB after`);
  console.log(`  open descriptors         ${mem.before.fds} before, peak ${mem.peak.fds}, ${mem.after.fds} after (/proc/${server.pid}/fd)`);
  if (leftovers !== undefined) console.log(`  temporary upload files   ${leftovers} left`);
  console.log(`wall time                  ${fix(wall, 1)} s`);
  return (
    honest.failedSessions === 0 &&
    honest.corrupt === 0 &&
    honest.downloads === expected &&
    refused.length === GUESSERS &&
    (leftovers ?? 0) === 0
  );
}

main().catch(async (err) => {
  console.error(err);
  await cleanupAll();
  process.exit(1);
});
