// Shared helpers for the benchmark scripts: run the built server as a child process, sample its RSS and
// CPU time from /proc, format tables. Plain Node ESM; nothing here is imported by the server.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** BENCH_SERVER=/other/checkout/dist/main.js compares another build with the same script. */
export const SERVER_ENTRY = path.resolve(process.env.BENCH_SERVER ?? path.join(REPO, 'dist/main.js'));
export const HOST = '127.0.0.1';
export const USER = 'bench';
export const PASSWORD = 'bench-password';
export const MiB = 1024 * 1024;

/** A whole-number environment variable, or `fallback` when unset. */
export function envInt(name, fallback, min = 0) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}, got ${raw}`);
  return n;
}

// --- temporary files, removed on every way out ---

// A reader that went away (`npm run bench | head`) must not leave a server and its files behind.
process.stdout.on('error', () => process.exit(1));

const cleanups = [];
/** Registers an async clean-up step; cleanupAll() runs them in reverse order, once (also on Ctrl-C). */
export function onCleanup(fn) {
  if (cleanups.length === 0) {
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: stopping the server and removing temporary files…\n`);
        void cleanupAll().then(() => process.exit(130));
      });
    }
  }
  cleanups.push(fn);
}
// Last resort when the process ends abruptly (an uncaught error, a closed stdout): synchronous clean-up.
const liveChildren = new Set();
const liveDirs = new Set();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/** Kills `child` if this process ends before it does. */
export function trackChild(child) {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

let cleaning;
export function cleanupAll() {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  })();
  return cleaning;
}

/** Ends a benchmark still running after `minutes`, whatever it waits for; clearTimeout() it when done. */
export function watchdog(minutes) {
  const timer = setTimeout(() => {
    console.error(`benchmark watchdog: ${minutes} minutes passed, giving up`);
    void cleanupAll().then(() => process.exit(1));
  }, minutes * 60_000);
  timer.unref();
  return timer;
}

/** Runs a benchmark's main(): a failure is one line, then the servers and files are cleaned up, exit code 1. */
export async function runBenchmark(main) {
  await main().catch(async (err) => {
    console.error(`benchmark failed: ${err instanceof Error ? err.message : String(err)}`);
    await cleanupAll();
    process.exit(1);
  });
}

/** Where temporary directories go: BENCH_TMPDIR, else os.tmpdir(). */
export const TMP_BASE = path.resolve(process.env.BENCH_TMPDIR ?? os.tmpdir());

/** A temporary directory under TMP_BASE, removed at the end. */
export async function tempDir(prefix) {
  const dir = await mkdtemp(path.join(TMP_BASE, prefix));
  liveDirs.add(dir);
  onCleanup(async () => {
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  });
  return dir;
}

/** Says whether `dir` is on the repository's filesystem (a tmpfs /tmp would make uploads look faster). */
export function filesystemNote(dir) {
  const same = statSync(dir).dev === statSync(REPO).dev;
  return same
    ? `${dir} (same filesystem as the repository)`
    : `${dir} (NOT the repository's filesystem — set BENCH_TMPDIR to a directory on the disk you want to measure)`;
}

/** A free TCP port on 127.0.0.1 (asked from the OS, then released for the server to take). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Extra server variables for experiments: BENCH_SERVER_ENV="TLS_CIPHERS=AES128-GCM-SHA256 TLS_MIN_VERSION=TLSv1.2". */
export function extraServerEnv() {
  const out = {};
  for (const pair of (process.env.BENCH_SERVER_ENV ?? '').split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq > 0) out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Starts `node dist/main.js` with a clean environment (no FTP variables inherited from the caller; the cwd
 * is a temporary directory so no .env is read) and waits until its control port answers 220.
 * The certificate: TLS_CERT_PATH/TLS_KEY_PATH are left unset, so the server generates its self-signed
 * pair (unless /certs/tls.crt and /certs/tls.key exist on this machine; then it uses those).
 */
/** The Node flags the container image runs the server with (Dockerfile ENTRYPOINT), so figures match it. */
export const IMAGE_NODE_ARGS = ['--max-semi-space-size=4'];

export async function startServer({ root, env = {}, nodeArgs = IMAGE_NODE_ARGS, label = 'server' }) {
  const port = await freePort();
  const cwd = await tempDir('ftps-bench-cwd-');
  const childEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}),
    FTPS_PORT: String(port),
    FTPS_BIND_ADDRESS: HOST,
    FTP_ROOT: root,
    FTP_USER: USER,
    FTP_PASSWORD: PASSWORD,
    STATE_DIR: `${cwd}/state`,
    PASV_MIN_PORT: '31000',
    PASV_MAX_PORT: '31040',
    LOG_LEVEL: 'warn',
    // No HTTP endpoint: 8080 may be taken, and the figures are about FTP.
    HTTP_PORT: '0',
    ...env,
    ...extraServerEnv(),
  };
  const child = spawn(process.execPath, [...nodeArgs, SERVER_ENTRY], {
    cwd,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Log lines (LOG_LEVEL=warn, JSON on stdout) are echoed, except the expected self-signed notice.
  let selfSigned = false;
  let pendingOut = '';
  child.stdout.on('data', (c) => {
    pendingOut += c;
    const lines = pendingOut.split('\n');
    pendingOut = lines.pop();
    for (const l of lines) {
      if (/using a generated self-signed certificate/.test(l)) selfSigned = true;
      else if (l.trim()) process.stderr.write(`[${label}] ${l}\n`);
    }
  });
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
    process.stderr.write(`[${label}] ${c}`);
  });
  trackChild(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stopped = false;
  const stop = async () => {
    if (stopped) return exited;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    return exited;
  };
  onCleanup(stop);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}`);
    }
    if (await answers220(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error('server did not answer within 30 s');
    }
    await sleep(100);
  }
  return {
    pid: child.pid,
    port,
    env: childEnv,
    child,
    stop,
    exited,
    get selfSigned() {
      return selfSigned;
    },
  };
}

function answers220(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once('error', () => done(false));
    s.once('data', (d) => {
      s.end('QUIT\r\n');
      setTimeout(() => done(d.toString().startsWith('220')), 50);
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- files and curl ---

/**
 * Writes `size` bytes: one 1 MiB random block repeated (TLS does not compress, so repetition costs nothing), each
 * copy starting with its number, so that bytes stored at the wrong offset change the file's checksum; and syncs them.
 */
export async function createFile(file, size) {
  const block = randomBytes(MiB);
  const handle = await open(file, 'w');
  try {
    for (let written = 0; written < size; written += MiB) {
      block.writeUInt32BE(written / MiB, 0);
      await handle.write(block, 0, Math.min(MiB, size - written));
    }
    // Flushed to disk now, so that kernel writeback does not compete with the measurements.
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Runs curl (through `sh -c 'curl …; times'`, which also reports curl's CPU time); resolves
 * { speed (bytes/s), bytes, seconds, cpu (curl's user+sys seconds) }. Fails on a non-zero exit or a short transfer.
 */
export async function curl(args, expectBytes, what) {
  const fmt = '%{speed_download} %{speed_upload} %{size_download} %{size_upload} %{time_total}\\n';
  const child = spawn('sh', ['-c', 'curl "$@"; rc=$?; times; exit $rc', 'sh', ...args, '-w', fmt], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { code, out, err } = await outputOf(child);
  if (code !== 0) throw new Error(`curl ${what} failed (exit ${code}): ${err.trim()}`);
  const lines = out.trim().split('\n');
  const [down, up, sizeDown, sizeUp, total] = lines[0].trim().split(/\s+/).map(Number);
  // `times`: the shell's own user/sys, then its children's (curl's), as 0m1.234s.
  const cpu = (lines.at(-1).match(/(\d+)m([\d.]+)s/g) ?? [])
    .map((t) => /(\d+)m([\d.]+)s/.exec(t))
    .reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
  const bytes = Math.max(sizeDown, sizeUp);
  if (expectBytes !== undefined && bytes !== expectBytes) throw new Error(`curl ${what}: ${bytes} bytes, expected ${expectBytes}`);
  return { speed: Math.max(down, up), bytes, seconds: total, cpu };
}

/** A child's whole stdout and stderr: resolves { code, out, err } when it closes; rejects if it cannot start. */
export function outputOf(child) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out, err }));
  });
}

/** Busy and total jiffies of all CPUs, from /proc/stat. */
export async function cpuTotals() {
  const first = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = first[3] + (first[4] ?? 0);
  const total = first.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

// --- /proc sampling ---

/** VmRSS of a process in bytes (undefined once it has gone). */
export function rssBytes(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds a process has used so far. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Samples RSS every `intervalMs` until stop(); returns { before, peak, after, samples }. */
export function sampleRss(pid, intervalMs = 100) {
  const before = rssBytes(pid) ?? 0;
  let peak = before;
  let samples = 1;
  const timer = setInterval(() => {
    const v = rssBytes(pid);
    if (v === undefined) return;
    samples++;
    if (v > peak) peak = v;
  }, intervalMs);
  return {
    before,
    stop() {
      clearInterval(timer);
      const after = rssBytes(pid) ?? 0;
      if (after > peak) peak = after;
      return { before, peak, after, samples };
    },
  };
}

/** The soft limit on open files of this process (children inherit it). */
export function fdLimit() {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}

// --- formatting ---

export const mb = (bytes) => bytes / 1e6;
export const mib = (bytes) => bytes / MiB;
export const fix = (n, d = 1) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

/** Prints rows (arrays of cells) as an aligned text table; numbers right-aligned. */
export function printTable(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const numeric = (s) => /^[-+<>≥≤~]?[\d.,]+( ?%| ?MiB| ?KB| ?s)?$/.test(s) || s === '-';
  const line = (r) =>
    r.map((c, i) => (i > 0 && numeric(c) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  console.log(line(all[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of all.slice(1)) console.log(line(r));
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One line describing where and how we measured. */
export function machineLine() {
  const cpus = os.cpus();
  const server = path.relative(process.cwd(), SERVER_ENTRY) || SERVER_ENTRY;
  const memory = `${fix(os.totalmem() / 2 ** 30, 1)} GiB RAM`;
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${memory}, Node ${process.version}, server ${server}`;
}

// --- a minimal FTPS control client (idle-session benchmark) ---

/** Reads FTP replies from a stream: next() resolves with the next complete reply { code, text }. */
export class ReplyReader {
  #buffer = '';
  #lines = [];
  #waiting = [];
  #replies = [];
  #error;

  attach(stream) {
    stream.on('data', (chunk) => this.#feed(chunk.toString('latin1')));
    stream.on('error', (err) => this.#fail(err));
    stream.on('close', () => this.#fail(new Error('connection closed')));
  }

  detach(stream) {
    stream.removeAllListeners('data');
    stream.removeAllListeners('error');
    stream.removeAllListeners('close');
  }

  next(timeoutMs = 15_000) {
    if (this.#replies.length) return Promise.resolve(this.#replies.shift());
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a reply')), timeoutMs);
      this.#waiting.push({
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  #feed(chunk) {
    this.#buffer += chunk;
    let nl;
    while ((nl = this.#buffer.indexOf('\n')) !== -1) {
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      this.#lines.push(line);
      // A reply ends with "ddd " (a multi-line one starts with "ddd-" and ends with the same code and a space).
      if (/^\d{3}( |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: this.#lines.join('\n') };
        this.#lines = [];
        const w = this.#waiting.shift();
        if (w) w.resolve(reply);
        else this.#replies.push(reply);
      }
    }
  }

  #fail(err) {
    this.#error ??= err;
    for (const w of this.#waiting.splice(0)) w.reject(err);
  }
}

export async function expectReply(reader, code, what) {
  const r = await reader.next();
  if (r.code !== code) throw new Error(`${what}: expected ${code}, got ${r.text}`);
}

/** One logged-in, idle TLS control session. Resolves with its TLS socket. */
export async function openSession(port, tlsOptions = {}) {
  const raw = net.connect({ host: HOST, port });
  raw.setNoDelay(true);
  const plain = new ReplyReader();
  plain.attach(raw);
  await expectReply(plain, 220, 'greeting');
  raw.write('AUTH TLS\r\n');
  await expectReply(plain, 234, 'AUTH TLS');
  plain.detach(raw);
  const secure = tls.connect({ ...tlsOptions, socket: raw, rejectUnauthorized: false });
  await new Promise((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  const reader = new ReplyReader();
  reader.attach(secure);
  secure.write(`USER ${USER}\r\n`);
  await expectReply(reader, 331, 'USER');
  secure.write(`PASS ${PASSWORD}\r\n`);
  await expectReply(reader, 230, 'PASS');
  return secure;
}

/** Opens `count` sessions, `concurrency` logins at a time. */
export async function openMany(port, count, concurrency, into, tlsOptions = {}) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      into.push(await openSession(port, tlsOptions));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
