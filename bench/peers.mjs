// npm run bench:peers — ftps-gateway side by side with pure-ftpd and vsftpd (optionally proftpd): same client,
// same certificate, equivalent configuration, interleaved rounds, one table.
//
// The peers come from Debian without touching the system's packages: `apt-get download` + `dpkg -x` into
// bench/.cache/peers/<server>/root (PEERS_CACHE_DIR), together with the shared-library packages they depend on
// that are not installed here (from the packages' Depends, recursively; checked with ldd). They run from that
// tree (LD_LIBRARY_PATH) as child processes in the foreground on 127.0.0.1, free ports.
//
// Every server: one user (ftpbench; a random password, given to the peers as a SHA-512 crypt hash) whose home
// is the same FTP root; TLS required before login and on every data connection (PROT P); data TLS must resume
// the control connection's session where the server can require it (gateway: default; vsftpd:
// require_ssl_reuse=YES; proftpd: default) — pure-ftpd cannot (only a compile-time switch, and it issues no TLS
// 1.3 tickets); passive mode on a range of its own; one self-signed certificate (RSA-2048; PEERS_KEY=p256).
// What each server really enforces is probed and printed before the rounds. vsftpd authenticates local users
// through PAM only, so it needs a system account: a temporary `ftpbench` system user (no home, no shell) is
// created for the run and deleted at the end. The peers need root (each session switches to the user's uid).
//
// Workloads, in interleaved rounds (each round runs every workload on every server, the order rotating):
//   down   curl download of PEERS_SIZE_MIB (1024) MiB — MB/s over the transfer (time_total − time_pretransfer)
//   up     curl upload of the same file — stored size checked, SHA-256 too in the first PEERS_SHA_ROUNDS (1) round(s)
//   par    PEERS_PARALLEL (8) curl downloads at once of PEERS_PARALLEL_MIB (size/4) MiB — all bytes / the time
//          during which at least one of them was transferring
//   small  PEERS_SMALL_FILES (1000) uploads of PEERS_SMALL_KIB (4) KiB over PEERS_SMALL_CLIENTS (4) sessions —
//          files/s over the wall time; every file's size and SHA-256 checked. The client is a minimal Node FTPS
//          client, not curl (see nodeUploads for why); PEERS_SMALL_CLIENT=curl uses curl with many -T/URL pairs.
// curl is `curl --ssl-reqd -k` (explicit FTPS, AUTH TLS, PBSZ 0 + PROT P, EPSV). Every measurement starts after
// `sync` (no dirty pages left by the one before). For every measurement: the
// server's CPU time, utime+stime+cutime+cstime over its whole process tree (see treeTicks: exact for forking
// servers too), the 1-minute load average before it, and the CPU share used meanwhile by anything else.
//
// Environment:
//   PEERS_SIZE_MIB=64 PEERS_ROUNDS=1   a quick run (defaults 1024 and 3)
//   PEERS_SERVERS=gateway,gateway-nofsync,pure-ftpd,vsftpd[,proftpd]   which servers (default the first four;
//                                      gateway-nofsync: UPLOAD_FSYNC=false, what syncing uploads costs)
//   PEERS_WORKLOADS=down,up,par,small  which workloads (default all)
//   PEERS_PARALLEL, PEERS_PARALLEL_MIB, PEERS_SMALL_FILES, PEERS_SMALL_KIB, PEERS_SMALL_CLIENTS, PEERS_SHA_ROUNDS
//   PEERS_SMALL_CLIENT=node|curl, PEERS_SMALL_TLS=1.3|1.2 (default 1.3 for node, 1.2 for curl)
//   PEERS_RETRIES=1                    a failed measurement is retried this often (and listed), then the run fails
//   PEERS_KEY=rsa2048|p256             certificate key (default rsa2048)
//   PEERS_CURL_ARGS="--tls-max 1.2"    extra curl arguments
//   PEERS_CACHE_DIR=dir                where the extracted packages are kept (default bench/.cache/peers)
//   BENCH_TMPDIR=dir                   where the FTP root is created (default os.tmpdir())
//   BENCH_SERVER=path, BENCH_SERVER_ENV="K=V …"   another gateway build / extra gateway variables (as bench/lib.mjs)
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  HOST,
  IMAGE_NODE_ARGS,
  MiB,
  REPO,
  ReplyReader,
  SERVER_ENTRY,
  cleanupAll,
  envInt,
  filesystemNote,
  fix,
  machineLine,
  mb,
  median,
  onCleanup,
  outputOf,
  printTable,
  sleep,
  startServer,
  tempDir,
  trackChild,
  runBenchmark,
  watchdog,
} from './lib.mjs';

const GiB = 1024 * MiB;
const KNOWN_SERVERS = ['gateway', 'gateway-nofsync', 'pure-ftpd', 'vsftpd', 'proftpd'];
/** Our own servers: the gateway at its defaults, and with UPLOAD_FSYNC=false (what it costs to sync uploads). */
const OWN = new Set(['gateway', 'gateway-nofsync']);
const KNOWN_WORKLOADS = ['down', 'up', 'par', 'small'];
const FTP_USER = 'ftpbench';
/** GECOS of the temporary system user, so that a user left behind by a killed run is recognised as ours. */
const USER_MARKER = 'ftps-gateway bench-peers temporary user';
const IS_ROOT = process.getuid?.() === 0;
const CACHE_DIR = path.resolve(process.env.PEERS_CACHE_DIR ?? path.join(REPO, 'bench/.cache/peers'));
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

function listEnv(name, fallback, known) {
  const items = (process.env[name] || fallback).split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!known.includes(item)) throw new Error(`${name}: unknown "${item}" (known: ${known.join(', ')})`);
  }
  return [...new Set(items)];
}

// --- configuration ---

const SIZE_MIB = envInt('PEERS_SIZE_MIB', 1024, 1);
const ROUNDS = envInt('PEERS_ROUNDS', 3, 1);
const PARALLEL = envInt('PEERS_PARALLEL', 8, 1);
const PAR_MIB = envInt('PEERS_PARALLEL_MIB', Math.max(1, Math.round(SIZE_MIB / 4)), 1);
const SMALL_FILES = envInt('PEERS_SMALL_FILES', 1000, 1);
const SMALL_KIB = envInt('PEERS_SMALL_KIB', 4, 1);
const SMALL_CLIENTS = envInt('PEERS_SMALL_CLIENTS', 4, 1);
const SHA_ROUNDS = envInt('PEERS_SHA_ROUNDS', 1, 0);
const KEY_TYPE = process.env.PEERS_KEY || 'rsa2048';
const SMALL_CLIENT = process.env.PEERS_SMALL_CLIENT || 'node';
const SMALL_TLS = process.env.PEERS_SMALL_TLS || (SMALL_CLIENT === 'curl' ? '1.2' : '1.3');
const RETRIES = envInt('PEERS_RETRIES', 1, 0);
const EXTRA_CURL = (process.env.PEERS_CURL_ARGS ?? '').split(/\s+/).filter(Boolean);
const SIZE = SIZE_MIB * MiB;
const PAR_SIZE = PAR_MIB * MiB;
const SMALL_SIZE = SMALL_KIB * 1024;

// --- peers: Debian packages extracted into the cache ---

const PEERS = {
  'pure-ftpd': { packages: ['pure-ftpd'], binary: 'usr/sbin/pure-ftpd' },
  vsftpd: { packages: ['vsftpd'], binary: 'usr/sbin/vsftpd' },
  // mod_tls is a DSO in proftpd-mod-crypto.
  proftpd: { packages: ['proftpd-core', 'proftpd-mod-crypto'], binary: 'usr/sbin/proftpd' },
};

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-4).join(' | ');
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${tail}`);
  }
  return r.stdout ?? '';
}

let aptUpdated = false;
/** `apt-get download` into `dir`; as root, an `apt-get update` once when the package lists do not know a name. */
function aptDownload(names, dir) {
  // As root apt would try to drop to the _apt user, who cannot write here (and says so in a warning).
  const args = [...(IS_ROOT ? ['-o', 'APT::Sandbox::User=root'] : []), '-q', 'download', ...names];
  try {
    run('apt-get', args, { cwd: dir });
  } catch (err) {
    if (!IS_ROOT || aptUpdated || !/locate package|installation candidate|Can't select|not available/i.test(err.message)) {
      throw new Error(`${err.message}${IS_ROOT ? '' : ' (run `apt-get update` as root if the package lists are missing)'}`, {
        cause: err,
      });
    }
    console.log('  apt-get update (the package lists do not know these packages)…');
    run('apt-get', ['-q', 'update']);
    aptUpdated = true;
    run('apt-get', args, { cwd: dir });
  }
}

const debField = (deb, field) => run('dpkg-deb', ['-f', deb, field]).trim();

function isInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${db:Status-Status}\\n', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.split('\n').includes('installed');
}

/** Depends + Pre-Depends of a .deb as alternatives groups: [['libc6'], ['debconf', 'debconf-2.0'], …]. */
function dependencyGroups(deb) {
  const text = [debField(deb, 'Pre-Depends'), debField(deb, 'Depends')].filter(Boolean).join(', ');
  return text
    .split(',')
    .map((group) => group.split('|').map((alt) => alt.trim().replace(/\s*\(.*\)\s*$/, '').replace(/:\w+$/, '')))
    .filter((g) => g[0]);
}

/** Directories of the extracted tree that hold shared libraries (for LD_LIBRARY_PATH). */
function libraryDirs(tree) {
  const out = [];
  for (const base of ['lib', 'usr/lib']) {
    const dir = path.join(tree, base);
    if (!existsSync(dir)) continue;
    for (const sub of ['', ...readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)]) {
      const d = path.join(dir, sub);
      if (readdirSync(d).some((f) => /\.so(\.|$)/.test(f))) out.push(d);
    }
  }
  return out;
}

function missingLibraries(binary, tree) {
  const r = spawnSync('ldd', [binary], {
    encoding: 'utf8',
    env: { ...process.env, LD_LIBRARY_PATH: libraryDirs(tree).join(':') },
  });
  return [...`${r.stdout}${r.stderr}`.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]);
}

/**
 * Makes sure bench/.cache/peers/<name>/root holds the peer's package and the library packages it depends on
 * that are not installed on this machine (recursively). Returns { tree, binary, libPath, version, packages }.
 */
function ensurePeer(name) {
  const spec = PEERS[name];
  const dir = path.join(CACHE_DIR, name);
  const tree = path.join(dir, 'root');
  const stamp = path.join(dir, 'installed.json');
  const binary = path.join(tree, spec.binary);
  if (existsSync(stamp) && existsSync(binary) && missingLibraries(binary, tree).length === 0) {
    const info = JSON.parse(readFileSync(stamp, 'utf8'));
    if (String(info.wanted) === String(spec.packages)) return { ...info, tree, binary, libPath: libraryDirs(tree).join(':') };
  }
  console.log(`installing ${name} into ${path.relative(process.cwd(), tree) || tree} (apt-get download + dpkg -x)…`);
  spawnSync('rm', ['-rf', dir]);
  const debs = path.join(dir, 'debs');
  run('mkdir', ['-p', debs, tree]);
  const fetched = new Map();
  let wanted = [...spec.packages];
  while (wanted.length) {
    aptDownload(wanted, debs);
    const files = readdirSync(debs);
    for (const pkg of wanted) {
      const file = files.find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (!file) throw new Error(`apt-get download ${pkg} left no .deb in ${debs}`);
      fetched.set(pkg, path.join(debs, file));
    }
    // Only shared-library packages matter for running the binary; debconf, adduser, lsb-base… are install-time.
    const next = new Set();
    for (const pkg of wanted) {
      for (const group of dependencyGroups(fetched.get(pkg))) {
        if (group.some((alt) => fetched.has(alt) || isInstalled(alt))) continue;
        const lib = group.find((alt) => alt.startsWith('lib'));
        if (lib) next.add(lib);
      }
    }
    wanted = [...next];
  }
  for (const deb of fetched.values()) run('dpkg', ['-x', deb, tree]);
  const missing = missingLibraries(binary, tree);
  if (missing.length) throw new Error(`${name}: still missing after extraction: ${missing.join(', ')}`);
  const info = {
    wanted: spec.packages,
    version: debField(fetched.get(spec.packages[0]), 'Version'),
    packages: [...fetched].map(([pkg, deb]) => `${pkg} ${debField(deb, 'Version')}`),
  };
  writeFileSync(stamp, `${JSON.stringify(info, null, 2)}\n`);
  console.log(`  extracted ${info.packages.join(', ')}`);
  return { ...info, tree, binary, libPath: libraryDirs(tree).join(':') };
}

// --- process-tree CPU accounting ---

/** { ppid, own: utime+stime, reaped: cutime+cstime } of a process, in clock ticks (undefined once gone). */
function readStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

/**
 * CPU ticks of a server's whole process tree: Σ over the root and all its live descendants of
 * utime+stime (their own) + cutime+cstime (what their children that they reaped had used, recursively).
 *
 * Why this is exact for forking servers: the kernel adds a child's utime+stime+cutime+cstime to its parent's
 * cutime/cstime when the parent reaps it (wait). So a finished session is in its reaper's cutime — provided the
 * reaper is inside the tree. That is not always so: a vsftpd session process can exit while its own child is
 * still running (or a zombie), and the orphan would be re-parented to init, its CPU lost. Hence every peer runs
 * under a small wrapper that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans are re-parented to the
 * wrapper, which reaps them, so their time lands in the wrapper's cutime. (The server itself cannot be the
 * subreaper: vsftpd's listener crashes on reaping a pid it does not know.)
 * Reading is only race-free while nothing exits between two reads, so measurements are taken when the tree is
 * back to its idle shape (settle()): then the sum is the root's counters plus the listener's.
 */
function treeTicks(rootPid) {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(entry);
    if (s) table.set(Number(entry), s);
  }
  const members = new Set([rootPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, s] of table) {
      if (!members.has(pid) && members.has(s.ppid)) {
        members.add(pid);
        grew = true;
      }
    }
  }
  let ticks = 0;
  for (const pid of members) {
    const s = table.get(pid);
    if (s) ticks += s.own + s.reaped;
  }
  return { ticks, size: members.size };
}

/** Waits until the server's tree has no more processes than when idle (sessions gone and reaped). */
async function settle(server, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t = treeTicks(server.pid);
    if (t.size <= server.idleSize || Date.now() > deadline) return { ...t, settled: t.size <= server.idleSize };
    await sleep(25);
  }
}

/** Busy and total jiffies of all CPUs (/proc/stat), and this process's own and reaped-children ticks. */
function systemTicks() {
  const first = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = first.slice(0, 8).reduce((a, b) => a + b, 0);
  const self = readStat(process.pid);
  return { busy: total - first[3] - (first[4] ?? 0), total, client: self.own + self.reaped };
}

const loadavg1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

// --- servers ---

// The wrapper every peer runs under: a child subreaper (see treeTicks) that forwards SIGTERM/SIGINT, exits
// once the server and every orphan it adopted have gone, and dies with the benchmark (PR_SET_PDEATHSIG) — so
// does the server (PR_SET_PDEATHSIG SIGKILL in the child before exec). vsftpd writes start-up errors to fd 0,
// so fd 0 can be made a copy of stderr. Perl because perl-base is on every Debian machine.
const WRAPPER = String.raw`
use strict;
my ($nr, $stdin_to_stderr) = (shift @ARGV, shift @ARGV);
syscall($nr, 36, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_CHILD_SUBREAPER): $!\n";
syscall($nr, 1, 15, 0, 0, 0);
my $pid = fork() // die "fork: $!\n";
if ($pid == 0) {
  syscall($nr, 1, 9, 0, 0, 0);
  open(STDIN, '>&', \*STDERR) if $stdin_to_stderr;
  exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";
}
$SIG{TERM} = $SIG{INT} = sub { kill 'TERM', $pid };
my $status = 0;
while (1) {
  my $w = wait();
  if ($w == -1) { last if $!{ECHILD}; next; }
  $status = $? if $w == $pid;
}
exit(($status & 127) ? 128 + ($status & 127) : ($status >> 8));
`;
const PRCTL_SYSCALL = { x64: 157, arm64: 167, riscv64: 167, loong64: 167, ia32: 172, ppc64: 171, s390x: 172 }[process.arch];

// Process groups of running peers: killed on any way out (the lib's exit hook only kills the wrapper itself).
const livePeerGroups = new Set();
process.on('exit', () => {
  for (const pgid of livePeerGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Resolves true once `port` greets with 220. */
function greets(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    let answered = false;
    const done = (ok) => {
      if (answered) return;
      answered = true;
      if (ok) s.end('QUIT\r\n');
      setTimeout(() => s.destroy(), 50);
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.on('error', () => done(false));
    let text = '';
    s.on('data', (d) => {
      text += d;
      // Multi-line greetings (pure-ftpd) end with "220 ".
      if (/^220 /m.test(text)) done(true);
      else if (/^\d{3} /m.test(text)) done(false);
    });
  });
}

async function startPeer({ name, peer, args, port, stdinToStderr = false }) {
  if (PRCTL_SYSCALL === undefined) throw new Error(`no prctl syscall number known for ${process.arch}`);
  const child = spawn('perl', ['-e', WRAPPER, '--', String(PRCTL_SYSCALL), stdinToStderr ? '1' : '', peer.binary, ...args], {
    detached: true, // its own process group, killed as a whole on the way out
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, LANG: 'C', LD_LIBRARY_PATH: peer.libPath },
  });
  trackChild(child);
  livePeerGroups.add(child.pid);
  let output = '';
  const echo = (c) => {
    output = (output + c).slice(-4000);
    for (const line of String(c).split('\n')) if (line.trim()) process.stderr.write(`[${name}] ${line}\n`);
  };
  child.stdout.on('data', echo);
  child.stderr.on('data', echo);
  // The wrapper exits only once the server and every process it adopted are gone (wait() until ECHILD).
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      livePeerGroups.delete(child.pid);
      resolve({ code, signal });
    }),
  );
  let stopped;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM'); // forwarded to the server
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL'); // the whole group: wrapper, server, sessions
          } catch {
            // gone meanwhile
          }
        }, 10_000);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopped;
  };
  onCleanup(stop);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}): ${output.trim() || 'no output'}`);
    }
    if (await greets(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not greet on port ${port} within 20 s: ${output.trim()}`);
    }
    await sleep(100);
  }
  return { name, pid: child.pid, port, stop, version: peer.version };
}

const EPHEMERAL_LOW = (() => {
  try {
    return Math.max(12000, Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]));
  } catch {
    return 32768;
  }
})();

/** `count` consecutive free ports on 127.0.0.1, not overlapping `taken`. */
async function portBlock(count, taken) {
  const isFree = (port) =>
    new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, HOST, () => srv.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below the ephemeral range, so that no client socket takes a passive port meanwhile.
    const base = 10000 + Math.floor(Math.random() * (EPHEMERAL_LOW - 10000 - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((p) => taken.has(p))) continue;
    let ok = true;
    for (const p of ports) if (!(ok = await isFree(p))) break;
    if (!ok) continue;
    for (const p of ports) taken.add(p);
    return ports;
  }
  throw new Error('no block of free ports found');
}

// pure-ftpd allows at most half as many clients as it has passive ports.
const PASV_PORTS = Math.max(32, 2 * (Math.max(PARALLEL, SMALL_CLIENTS) + 4));

async function startGateway(ctx, name = 'gateway', env = {}) {
  const pasv = await portBlock(PASV_PORTS, ctx.taken);
  // startServer picks the control port itself (a free one) and waits for its 220.
  const server = await startServer({
    root: ctx.root,
    label: 'gateway',
    env: {
      FTP_USER,
      FTP_PASSWORD: ctx.account.password,
      TLS_CERT_PATH: ctx.cert,
      TLS_KEY_PATH: ctx.key,
      PASV_MIN_PORT: String(pasv[0]),
      PASV_MAX_PORT: String(pasv.at(-1)),
      // The peers log nothing either; warn would print every refusal the probes provoke on purpose.
      LOG_LEVEL: 'error',
      ...env,
    },
  });
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  return {
    name,
    pid: server.pid,
    port: server.port,
    stop: server.stop,
    version: `${pkg.version} (${path.relative(process.cwd(), SERVER_ENTRY) || SERVER_ENTRY})`,
    config: `FTP_USER/FTP_PASSWORD, FTP_ROOT, TLS_CERT_PATH/TLS_KEY_PATH, PASV_MIN_PORT/PASV_MAX_PORT ${pasv[0]}-${pasv.at(-1)}, HTTP_PORT=0, LOG_LEVEL=error, ${Object.entries(env).map(([k, v]) => `${k}=${v}, `).join('')}node ${IMAGE_NODE_ARGS.join(' ')}; defaults otherwise (TLS before login, PROT P and session reuse required, TLS_STRICT_EOF=true${'UPLOAD_FSYNC' in env ? '' : ', UPLOAD_FSYNC=true'})`,
  };
}

async function startPureFtpd(ctx) {
  const peer = ensurePeer('pure-ftpd');
  const [port] = await portBlock(1, ctx.taken);
  const pasv = await portBlock(PASV_PORTS, ctx.taken);
  // A virtual user in a PureDB, mapped to the account's uid/gid; "/./" = chrooted to the FTP root.
  const passwd = path.join(ctx.etc, 'pureftpd.passwd');
  const pdb = path.join(ctx.etc, 'pureftpd.pdb');
  const home = IS_ROOT ? `${ctx.root}/./` : ctx.root;
  await fs.writeFile(passwd, `${FTP_USER}:${ctx.account.hash}:${ctx.account.uid}:${ctx.account.gid}::${home}::::::::::::\n`, { mode: 0o600 });
  run(path.join(peer.tree, 'usr/bin/pure-pw'), ['mkdb', pdb, '-f', passwd]);
  const args = [
    ...['-S', `${HOST},${port}`], // bind address,port
    ...['-p', `${pasv[0]}:${pasv.at(-1)}`], // passive port range
    ...['-Y', '3'], // TLS required on the control connection (no cleartext login) and on data connections (PROT P)
    ...['-2', `${ctx.cert},${ctx.key}`], // certificate, key
    ...['-l', `puredb:${pdb}`], // virtual users only
    '-E', // no anonymous logins
    '-H', // no reverse DNS
    ...['-u', '1'], // lowest uid allowed to log in (the mapped uid may be a system one)
    ...['-c', '64', '-C', '64'], // clients in total / per IP
    ...['-f', 'none'], // no syslog
  ];
  const server = await startPeer({ name: 'pure-ftpd', peer, args, port });
  return { ...server, config: `pure-ftpd ${args.join(' ')}` };
}

async function startVsftpd(ctx) {
  const peer = ensurePeer('vsftpd');
  const [port] = await portBlock(1, ctx.taken);
  const pasv = await portBlock(PASV_PORTS, ctx.taken);
  const empty = path.join(ctx.etc, 'vsftpd-empty');
  await fs.mkdir(empty, { mode: 0o755 });
  const settings = {
    listen: 'YES',
    listen_ipv6: 'NO',
    listen_address: HOST,
    listen_port: port,
    background: 'NO',
    anonymous_enable: 'NO',
    local_enable: 'YES',
    write_enable: 'YES',
    local_umask: '022',
    local_root: ctx.root,
    chroot_local_user: 'YES',
    allow_writeable_chroot: 'YES',
    secure_chroot_dir: empty,
    // No /etc/pam.d file of this name: PAM uses "other" (Debian: common-auth → pam_unix, /etc/shadow).
    pam_service_name: 'ftps-bench-peers',
    ssl_enable: 'YES',
    rsa_cert_file: ctx.cert,
    rsa_private_key_file: ctx.key,
    force_local_logins_ssl: 'YES',
    force_local_data_ssl: 'YES',
    require_ssl_reuse: 'YES',
    ssl_request_cert: 'NO',
    ssl_ciphers: 'HIGH',
    pasv_enable: 'YES',
    pasv_min_port: pasv[0],
    pasv_max_port: pasv.at(-1),
    max_clients: 0,
    max_per_ip: 0,
    xferlog_enable: 'NO',
    // Sandboxing that needs kernel features a container may lack; it does not touch the data path.
    seccomp_sandbox: 'NO',
    isolate: 'NO',
    isolate_network: 'NO',
  };
  const conf = path.join(ctx.etc, 'vsftpd.conf');
  await fs.writeFile(conf, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  const server = await startPeer({ name: 'vsftpd', peer, args: [conf], port, stdinToStderr: true });
  return { ...server, config: `vsftpd.conf: ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(' ')}` };
}

async function startProftpd(ctx) {
  const peer = ensurePeer('proftpd');
  const [port] = await portBlock(1, ctx.taken);
  const pasv = await portBlock(PASV_PORTS, ctx.taken);
  const passwd = path.join(ctx.etc, 'proftpd.passwd');
  const group = path.join(ctx.etc, 'proftpd.group');
  await fs.writeFile(passwd, `${FTP_USER}:${ctx.account.hash}:${ctx.account.uid}:${ctx.account.gid}::${ctx.root}:/bin/false\n`, { mode: 0o600 });
  await fs.writeFile(group, `${FTP_USER}:x:${ctx.account.gid}:\n`, { mode: 0o600 });
  const runAs = IS_ROOT ? ['User nobody', `Group ${groupName(65534)}`] : [];
  const lines = [
    'ServerType standalone',
    'ServerName "proftpd"',
    'UseIPv6 off',
    `DefaultAddress ${HOST}`,
    'SocketBindTight on',
    `Port ${port}`,
    ...runAs,
    `PidFile ${ctx.etc}/proftpd.pid`,
    `ScoreboardFile ${ctx.etc}/proftpd.scoreboard`,
    'DelayEngine off',
    'WtmpLog off',
    'UseReverseDNS off',
    'UseLastlog off',
    `SystemLog ${ctx.etc}/proftpd.log`,
    'TransferLog none',
    'MaxInstances 128',
    `PassivePorts ${pasv[0]} ${pasv.at(-1)}`,
    `ModulePath ${path.join(peer.tree, 'usr/lib/proftpd')}`,
    'LoadModule mod_tls.c',
    'AuthOrder mod_auth_file.c',
    `AuthUserFile ${passwd}`,
    `AuthGroupFile ${group}`,
    'RequireValidShell off',
    'DefaultRoot ~',
    'Umask 022',
    'AllowOverwrite on',
    'TLSEngine on',
    'TLSRequired on', // control and data connections (PROT P)
    'TLSProtocol TLSv1.2 TLSv1.3',
    `TLSRSACertificateFile ${ctx.cert}`,
    `TLSRSACertificateKeyFile ${ctx.key}`,
    'TLSVerifyClient off',
    // Data connections must resume the control session: proftpd's default (no NoSessionReuseRequired).
    'TLSSessionTickets on',
  ];
  const conf = path.join(ctx.etc, 'proftpd.conf');
  await fs.writeFile(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
  const server = await startPeer({ name: 'proftpd', peer, args: ['-n', '-q', '-c', conf], port });
  return { ...server, config: `proftpd -n -c proftpd.conf: ${lines.filter((l) => /^(TLS|Pass|Auth|Default|Require)/.test(l)).join('; ')}` };
}

function groupName(gid) {
  const line = spawnSync('getent', ['group', String(gid)], { encoding: 'utf8' }).stdout.trim();
  return line.split(':')[0] || String(gid);
}

const STARTERS = {
  gateway: (ctx) => startGateway(ctx),
  'gateway-nofsync': (ctx) => startGateway(ctx, 'gateway-nofsync', { UPLOAD_FSYNC: 'false' }),
  'pure-ftpd': startPureFtpd,
  vsftpd: startVsftpd,
  proftpd: startProftpd,
};

// --- the account ---

/**
 * One user for every server: FTP_USER with a random password. The peers get its SHA-512 crypt hash (cheap to
 * check, so that no server spends seconds of CPU on a login: pure-pw's default argon2id takes ~2 s here).
 * vsftpd needs a real system account (PAM); then, as root, a temporary one is created and removed at the end.
 */
function setupAccount(root, needSystemUser) {
  const password = randomBytes(12).toString('hex');
  const hash = run('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n` }).trim();
  const getent = (db, key) => spawnSync('getent', [db, key], { encoding: 'utf8' }).stdout.trim();
  if (!needSystemUser) {
    const [uid, gid] = IS_ROOT ? [65534, 65534] : [process.getuid(), process.getgid()];
    return { password, hash, uid, gid, note: IS_ROOT ? 'virtual user mapped to nobody' : 'virtual user mapped to the current user' };
  }
  const existing = getent('passwd', FTP_USER);
  if (existing && existing.split(':')[4] !== USER_MARKER) {
    throw new Error(`a user "${FTP_USER}" exists that this benchmark did not create: leave vsftpd out of PEERS_SERVERS`);
  }
  const shell = existsSync('/usr/sbin/nologin') ? '/usr/sbin/nologin' : '/bin/false';
  if (existing) run('usermod', ['-d', root, FTP_USER]);
  else run('useradd', ['--system', '--no-create-home', '--home-dir', root, '--shell', shell, '--comment', USER_MARKER, FTP_USER]);
  const remove = () => spawnSync('userdel', [FTP_USER], { stdio: 'ignore' });
  process.on('exit', remove); // after the peers' process groups are killed (registered earlier)
  run('chpasswd', ['-e'], { input: `${FTP_USER}:${hash}\n` });
  const [, , uid, gid] = getent('passwd', FTP_USER).split(':');
  return {
    password,
    hash,
    uid: Number(uid),
    gid: Number(gid),
    note: `temporary system user ${FTP_USER} (uid ${uid}, ${existing ? 'left by an earlier run, ' : ''}deleted at the end)`,
    remove,
  };
}

// --- files ---

/** Writes `size` random bytes (each MiB fresh random data), syncs, returns the SHA-256. */
async function randomFile(file, size) {
  const handle = await fs.open(file, 'w', 0o644);
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(MiB);
  try {
    for (let written = 0; written < size; written += MiB) {
      const chunk = block.subarray(0, Math.min(MiB, size - written));
      randomFillSync(chunk);
      hash.update(chunk);
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

async function sha256(file) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: MiB })) hash.update(chunk);
  return hash.digest('hex');
}

// --- curl ---

const FORMAT = '%{response_code} %{size_download} %{size_upload} %{time_pretransfer} %{time_total}\\n';

/** Runs one curl process; resolves { transfers: [{ code, down, up, pre, total }], t0, t1 } (ms, performance.now). */
async function curl(server, extraArgs, what, maxTime) {
  const args = [
    ...['--ssl-reqd', '-k', '-s', '-S', '--user', `${FTP_USER}:${server.password}`],
    ...['--max-time', String(maxTime)],
    ...EXTRA_CURL,
    ...['-w', FORMAT],
    ...extraArgs,
  ];
  const t0 = performance.now();
  const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const { code, out, err } = await outputOf(child);
  const t1 = performance.now();
  if (code !== 0) throw new Error(`${server.name}: curl ${what} failed (exit ${code}): ${err.trim()}`);
  const transfers = out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .map(([c, down, up, pre, total]) => ({ code: c, down, up, pre, total }));
  const bad = transfers.find((t) => t.code !== 226);
  if (bad) throw new Error(`${server.name}: curl ${what}: final reply ${bad.code}, expected 226`);
  return { transfers, t0, t1 };
}

const url = (server, name) => `ftp://${HOST}:${server.port}/${name}`;
const maxTimeFor = (bytes) => Math.max(120, Math.ceil(bytes / 5e6));

// --- workloads: each returns { value, bytes, files?, detail } and leaves the root as it found it ---

const WORKLOADS = {
  down: {
    row: `download 1 × ${SIZE_MIB} MiB`,
    unit: 'MB/s',
    async run(server) {
      const { transfers } = await curl(server, ['-o', '/dev/null', url(server, 'big.bin')], 'download', maxTimeFor(SIZE));
      const [t] = transfers;
      if (t.down !== SIZE) throw new Error(`${server.name}: download delivered ${t.down} bytes, expected ${SIZE}`);
      return { value: SIZE / (t.total - t.pre), bytes: SIZE, detail: `setup ${fix(t.pre, 2)} s` };
    },
  },
  up: {
    row: `upload 1 × ${SIZE_MIB} MiB`,
    unit: 'MB/s',
    async run(server, ctx, round) {
      const name = `up-${server.name}-r${round}.bin`;
      const target = path.join(ctx.root, name);
      const { transfers } = await curl(server, ['-T', ctx.bigFile, url(server, name)], 'upload', maxTimeFor(SIZE));
      const [t] = transfers;
      const st = await fs.stat(target);
      if (st.size !== SIZE || t.up !== SIZE) throw new Error(`${server.name}: upload stored ${st.size} bytes (curl sent ${t.up}), expected ${SIZE}`);
      let checked = 'size ok';
      if (round <= SHA_ROUNDS) {
        if ((await sha256(target)) !== ctx.bigHash) throw new Error(`${server.name}: uploaded file's SHA-256 differs`);
        checked = 'size + SHA-256 ok';
      }
      await fs.rm(target);
      return { value: SIZE / (t.total - t.pre), bytes: SIZE, detail: `setup ${fix(t.pre, 2)} s, ${checked}` };
    },
  },
  par: {
    row: `download ${PARALLEL} × ${PAR_MIB} MiB parallel`,
    unit: 'MB/s (sum)',
    async run(server) {
      const runs = await Promise.all(
        Array.from({ length: PARALLEL }, () => curl(server, ['-o', '/dev/null', url(server, 'par.bin')], 'parallel download', maxTimeFor(PAR_SIZE * PARALLEL))),
      );
      for (const r of runs) {
        if (r.transfers[0].down !== PAR_SIZE) throw new Error(`${server.name}: parallel download delivered ${r.transfers[0].down} bytes`);
      }
      // Each transfer's interval on one clock, from its start (after login and data-connection set-up, where
      // curl may stall on a timer: see nodeUploads) to its end; aggregate = all bytes / the time during which at
      // least one transfer was running (the union of the intervals).
      const intervals = runs
        .map((r) => [r.t0 + r.transfers[0].pre * 1000, r.t0 + r.transfers[0].total * 1000])
        .sort((a, b) => a[0] - b[0]);
      let busy = 0;
      let [from, to] = intervals[0];
      for (const [a, b] of intervals.slice(1)) {
        if (a > to) {
          busy += to - from;
          [from, to] = [a, b];
        } else to = Math.max(to, b);
      }
      busy += to - from;
      const sum = intervals.reduce((acc, [a, b]) => acc + (b - a), 0);
      const bytes = PAR_SIZE * PARALLEL;
      return {
        value: bytes / (busy / 1000),
        bytes,
        detail: `${fix(sum / busy, 1)} streams at once on average; streams ${runs.map((r) => fix(mb(PAR_SIZE / (r.transfers[0].total - r.transfers[0].pre)), 0)).join('/')} MB/s`,
      };
    },
  },
  small: {
    row: `upload ${SMALL_FILES} × ${SMALL_KIB} KiB (${SMALL_CLIENTS} × ${SMALL_CLIENT}${SMALL_TLS === '1.3' ? '' : `, TLS ${SMALL_TLS}`})`,
    unit: 'files/s',
    async run(server, ctx, round) {
      const names = ctx.smallFiles.map((_, i) => `s-${server.name}-r${round}-${String(i).padStart(5, '0')}.bin`);
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: SMALL_CLIENTS }, (_, c) => {
          const mine = [];
          for (let i = c; i < names.length; i += SMALL_CLIENTS) mine.push(i);
          if (SMALL_CLIENT === 'node') return nodeUploads(server, mine.map((i) => ({ name: names[i], data: ctx.smallFiles[i].data })));
          const args = SMALL_TLS === '1.3' ? [] : ['--tls-max', SMALL_TLS];
          for (const i of mine) args.push('-T', ctx.smallFiles[i].file, url(server, names[i]));
          return curl(server, args, 'small uploads', 600);
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      for (let i = 0; i < names.length; i++) {
        const target = path.join(ctx.root, names[i]);
        const data = await fs.readFile(target);
        if (data.length !== SMALL_SIZE || createHash('sha256').update(data).digest('hex') !== ctx.smallFiles[i].hash) {
          throw new Error(`${server.name}: small upload ${names[i]} differs from its source (${data.length} bytes)`);
        }
      }
      await Promise.all(names.map((n) => fs.rm(path.join(ctx.root, n))));
      return { value: names.length / seconds, bytes: names.length * SMALL_SIZE, files: names.length, detail: 'sizes + SHA-256 ok' };
    },
  },
};

/**
 * The small-file client (PEERS_SMALL_CLIENT=node, the default): one explicit-FTPS session (AUTH TLS, PBSZ 0,
 * PROT P, TYPE I), then per file EPSV, STOR and a data connection that resumes the session ticket the CONTROL
 * connection received (as FileZilla and lftp do). Why not curl here: curl 7.88 starts the data connection's TLS
 * handshake before it sends STOR and then sits in a poll for up to 1 s when the server answers the handshake
 * only after STOR (pure-ftpd, vsftpd; the gateway too on some transfers), so curl's files/s measure that
 * timeout; and with TLS 1.3 curl resumes the next data connection from the PREVIOUS data connection's ticket
 * (refused by the gateway) and loses small uploads to servers that send tickets on data connections (vsftpd:
 * curl issue 6149). Node reads those tickets, and sends STOR before its handshake, so nothing waits on a timer.
 */
async function nodeUploads(server, files) {
  const { raw, reader } = await controlConnection(server.port);
  let secure;
  try {
    await expectCode(reader.next(), 220, 'greeting');
    await expectCode(command(raw, reader, 'AUTH TLS'), 234, 'AUTH TLS');
    reader.detach(raw);
    const tlsOptions = { rejectUnauthorized: false, ...(SMALL_TLS === '1.3' ? {} : { maxVersion: `TLSv${SMALL_TLS}` }) };
    // host: no SNI, as on the data connections (to 127.0.0.1): OpenSSL offers a ticket only under the same SNI.
    secure = tls.connect({ ...tlsOptions, socket: raw, host: HOST });
    let ticket;
    secure.on('session', (s) => (ticket = s));
    await new Promise((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const r = new ReplyReader();
    r.attach(secure);
    await expectCode(command(secure, r, `USER ${FTP_USER}`), 331, 'USER');
    await expectCode(command(secure, r, `PASS ${server.password}`), 230, 'PASS');
    for (const [line, code] of [['TYPE I', 200], ['PBSZ 0', 200], ['PROT P', 200]]) await expectCode(command(secure, r, line), code, line);
    for (const file of files) {
      const epsv = await expectCode(command(secure, r, 'EPSV'), 229, 'EPSV');
      const port = Number(/\(\|\|\|(\d+)\|\)/.exec(epsv.text)?.[1]);
      secure.write(`STOR ${file.name}\r\n`);
      const data = tls.connect({ ...tlsOptions, host: HOST, port, session: ticket });
      const closed = new Promise((resolve, reject) => data.once('close', resolve).once('error', reject));
      await new Promise((resolve, reject) => data.once('secureConnect', resolve).once('error', reject));
      data.end(file.data);
      const first = await r.next(15_000);
      if (first.code >= 400) throw new Error(`STOR ${file.name}: ${first.text}`);
      await closed;
      if (first.code < 200) await expectCode(r.next(15_000), 226, `STOR ${file.name}`);
    }
    await command(secure, r, 'QUIT').catch(() => undefined);
  } catch (err) {
    throw new Error(`${server.name}: small uploads (node client): ${err.message}`, { cause: err });
  } finally {
    (secure ?? raw).destroy();
  }
}

async function expectCode(promise, code, what) {
  const reply = await promise;
  if (reply.code !== code) throw new Error(`${what}: ${reply.text}`);
  return reply;
}

/**
 * Runs one workload on one server, with the server's tree CPU and the machine's other CPU around it. Each starts
 * with no dirty pages (sync): otherwise the previous server's 1 GiB upload is written back during the next
 * measurement, slowing it and, for a server that syncs its uploads (the gateway), charging it the writeback.
 */
async function measure(server, workload, ctx, round) {
  spawnSync('sync');
  const before = await settle(server);
  const load = loadavg1();
  const sys0 = systemTicks();
  const t0 = performance.now();
  const result = await workload.run(server, ctx, round);
  const after = await settle(server);
  const wall = (performance.now() - t0) / 1000;
  const sys1 = systemTicks();
  const serverTicks = after.ticks - before.ticks;
  const clientTicks = sys1.client - sys0.client; // curl processes (reaped by us) + this process
  const allBusy = ((sys1.busy - sys0.busy) / (sys1.total - sys0.total)) * os.cpus().length; // cores
  const cpu = serverTicks / CLK_TCK;
  return {
    ...result,
    cpu,
    load,
    // Whatever else kept the CPUs busy meanwhile, in % of one core: other processes on the machine (noise).
    other: Math.max(0, allBusy - (serverTicks + clientTicks) / CLK_TCK / wall) * 100,
    settled: after.settled,
  };
}

// --- what each server enforces (checked, not assumed) ---

function controlConnection(port) {
  return new Promise((resolve, reject) => {
    const raw = net.connect({ host: HOST, port }, () => resolve({ raw, reader }));
    raw.setNoDelay(true);
    const reader = new ReplyReader();
    reader.attach(raw);
    raw.once('error', reject);
  });
}

async function command(socket, reader, line) {
  socket.write(`${line}\r\n`);
  return reader.next(10_000);
}

/** Sends NLST on an EPSV data connection opened with `openData(port)`; resolves the final reply code. */
async function listWith(secure, reader, openData) {
  const epsv = await command(secure, reader, 'EPSV');
  const m = /\(\|\|\|(\d+)\|\)/.exec(epsv.text);
  if (!m) return epsv.code;
  secure.write('NLST\r\n');
  const data = openData(Number(m[1]));
  data.on('error', () => undefined);
  data.resume();
  let reply = await reader.next(10_000);
  while (reply.code < 200) reply = await reader.next(10_000);
  data.destroy();
  return reply.code;
}

async function probe(server) {
  const out = {};
  const { raw: plain, reader: plainReader } = await controlConnection(server.port);
  try {
    await plainReader.next();
    let r = await command(plain, plainReader, `USER ${FTP_USER}`);
    if (r.code === 331) r = await command(plain, plainReader, `PASS ${server.password}`);
    out.login = r.code === 230 ? 'ALLOWED' : `refused (${r.code})`;
  } finally {
    plain.destroy();
  }
  const { raw, reader } = await controlConnection(server.port);
  let secure;
  try {
    await reader.next();
    let r = await command(raw, reader, 'AUTH TLS');
    if (r.code !== 234) throw new Error(`AUTH TLS: ${r.text}`);
    reader.detach(raw);
    secure = tls.connect({ socket: raw, host: HOST, rejectUnauthorized: false });
    await new Promise((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const tlsReader = new ReplyReader();
    tlsReader.attach(secure);
    await command(secure, tlsReader, `USER ${FTP_USER}`);
    r = await command(secure, tlsReader, `PASS ${server.password}`);
    if (r.code !== 230) throw new Error(`login: ${r.text}`);
    await command(secure, tlsReader, 'TYPE I');
    await command(secure, tlsReader, 'PBSZ 0');
    r = await command(secure, tlsReader, 'PROT C');
    if (r.code >= 400) out.protC = `refused (${r.code} to PROT C)`;
    else {
      const code = await listWith(secure, tlsReader, (port) => net.connect({ host: HOST, port }));
      out.protC = code === 226 ? 'ALLOWED' : `refused (${code})`;
    }
    r = await command(secure, tlsReader, 'PROT P');
    if (r.code !== 200) throw new Error(`PROT P: ${r.text}`);
    // A data connection with a full TLS handshake, not resuming the control connection's session.
    const code = await listWith(secure, tlsReader, (port) => tls.connect({ host: HOST, port, rejectUnauthorized: false }));
    out.reuse = code === 226 ? 'not required' : `required (${code})`;
  } catch (err) {
    out.error = err.message;
  } finally {
    (secure ?? raw).destroy();
  }
  return out;
}

/** TLS versions and ciphers of the control and data connections as curl sees them, and whether data resumed. */
function negotiated(server) {
  return new Promise((resolve) => {
    const args = ['--ssl-reqd', '-k', '-v', '--user', `${FTP_USER}:${server.password}`, ...EXTRA_CURL, '-o', '/dev/null', url(server, 'warm.bin')];
    const child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.once('close', (code) => {
      const used = [...new Set([...err.matchAll(/SSL connection using (.+)/g)].map((m) => m[1].trim()))].join('; ');
      const resumed = /SSL re-using session ID/.test(err) ? 'data connection resumed the session' : 'data connection: full handshake (no resumption)';
      resolve(code === 0 ? `${used}, ${resumed}` : `(curl -v failed with exit ${code})`);
    });
  });
}

/** Whether a server accepts curl's second transfer on the same control connection (default TLS version). */
function severalTransfers(server) {
  return new Promise((resolve) => {
    const target = url(server, 'warm.bin');
    const args = ['--ssl-reqd', '-k', '-v', '--user', `${FTP_USER}:${server.password}`, ...EXTRA_CURL, '-o', '/dev/null', target, '-o', '/dev/null', target];
    const child = spawn('curl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    trackChild(child);
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.once('close', (code) => {
      const refusal = [...err.matchAll(/^< ([45]\d\d .*)$/gm)].at(-1)?.[1]?.trim();
      resolve(code === 0 ? 'ok' : `2nd transfer refused (${refusal ?? `curl exit ${code}`})`);
    });
  });
}

// --- main ---


// Set on Ctrl-C / SIGTERM: bench/lib.mjs then stops the servers and removes the files; the rounds stop here.
let aborting = false;
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => (aborting = true));
const haltIfAborting = () => (aborting ? new Promise(() => undefined) : undefined);

async function main() {
  const servers = listEnv('PEERS_SERVERS', 'gateway,gateway-nofsync,pure-ftpd,vsftpd', KNOWN_SERVERS);
  const workloads = listEnv('PEERS_WORKLOADS', 'down,up,par,small', KNOWN_WORKLOADS);
  if (!['rsa2048', 'p256'].includes(KEY_TYPE)) throw new Error('PEERS_KEY must be rsa2048 or p256');
  const timer = watchdog(60);

  console.log(`ftps-gateway vs peers — ${machineLine()}`);
  console.log(
    `${servers.join(', ')}; ${ROUNDS} interleaved round(s); ${workloads.join(', ')}; client curl (explicit FTPS, EPSV, PROT P)${EXTRA_CURL.length ? ` ${EXTRA_CURL.join(' ')}` : ''}`,
  );

  // Refuse early rather than half-way.
  const peersWanted = servers.filter((s) => !OWN.has(s));
  if (!IS_ROOT && peersWanted.length) {
    throw new Error(
      `${peersWanted.join(', ')} need root here (each session switches to the FTP user's uid; vsftpd also needs a system account); run as root or PEERS_SERVERS=gateway`,
    );
  }
  // Install before anything is started: that may take a while the first time.
  for (const name of servers) if (PEERS[name]) ensurePeer(name);

  const base = await tempDir('ftps-peers-');
  await fs.chmod(base, 0o755); // the peers' sessions run as the FTP user and must reach the root below
  const root = path.join(base, 'root');
  const etc = path.join(base, 'etc');
  const smallDir = path.join(base, 'small-src');
  await Promise.all([fs.mkdir(root), fs.mkdir(etc, { mode: 0o755 }), fs.mkdir(smallDir)]);

  const cert = path.join(etc, 'cert.pem');
  const key = path.join(etc, 'key.pem');
  const keyArgs = KEY_TYPE === 'p256' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  run('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);

  const account = setupAccount(root, servers.includes('vsftpd'));
  if (account.remove) onCleanup(account.remove); // runs after the servers have stopped (registered before them)
  await fs.chown(root, account.uid, account.gid);

  const t0 = performance.now();
  const bigFile = path.join(root, 'big.bin');
  const bigHash = await randomFile(bigFile, SIZE);
  if (workloads.includes('par')) await randomFile(path.join(root, 'par.bin'), PAR_SIZE);
  await randomFile(path.join(root, 'warm.bin'), MiB);
  const smallFiles = [];
  if (workloads.includes('small')) {
    for (let i = 0; i < SMALL_FILES; i++) {
      const file = path.join(smallDir, `f${i}.bin`);
      const data = randomBytes(SMALL_SIZE);
      await fs.writeFile(file, data);
      smallFiles.push({ file, data, hash: createHash('sha256').update(data).digest('hex') });
    }
  }
  console.log(`FTP root ${filesystemNote(root)}; files created in ${fix((performance.now() - t0) / 1000, 1)} s`);
  console.log(`account: ${FTP_USER}, ${account.note}; certificate ${KEY_TYPE === 'p256' ? 'ECDSA P-256' : 'RSA-2048'}, self-signed, shared by all`);

  const ctx = { root, etc, cert, key, account, bigFile, bigHash, smallFiles, taken: new Set() };
  const running = [];
  for (const name of servers) {
    const server = await STARTERS[name](ctx);
    server.password = account.password;
    // The idle shape of its process tree (wrapper + listener for the peers), once the start-up probe's session is gone.
    await sleep(300);
    server.idleSize = (await settle({ pid: server.pid, idleSize: 2 })).size;
    running.push(server);
  }

  console.log('');
  for (const server of running) {
    // Warm-up (untimed): a 1 MiB transfer each way, also a first check that login and PROT P work. The upload
    // may be retried: curl < 8.9 loses small TLS 1.3 uploads to servers that send session tickets on data
    // connections (see the note printed at the end).
    await curl(server, ['-o', '/dev/null', url(server, 'warm.bin')], 'warm-up download', 60);
    for (let attempt = 1; ; attempt++) {
      try {
        await curl(server, ['-T', path.join(root, 'warm.bin'), url(server, `warm-${server.name}.bin`)], 'warm-up upload', 60);
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
    await fs.rm(path.join(root, `warm-${server.name}.bin`));
    const p = await probe(server);
    p.multi = await severalTransfers(server);
    console.log(`${server.name} ${server.version} (pid ${server.pid}, port ${server.port})`);
    console.log(`  config: ${server.config}`);
    console.log(`  TLS: ${await negotiated(server)}`);
    console.log(
      `  enforced: login without TLS ${p.login}; PROT C transfer ${p.protC ?? '?'}; data TLS without session reuse: ${p.reuse ?? '?'}${p.error ? `; probe error: ${p.error}` : ''}`,
    );
    console.log(`  curl, 2 downloads on one control connection (default TLS): ${p.multi}`);
  }

  // results[workload][server] = [measurement per round]
  const failures = [];
  const results = Object.fromEntries(workloads.map((w) => [w, Object.fromEntries(running.map((s) => [s.name, []]))]));
  console.log('');
  for (let round = 1; round <= ROUNDS; round++) {
    const order = running.map((_, i) => running[(i + round - 1) % running.length]);
    console.log(`round ${round}/${ROUNDS} (order ${order.map((s) => s.name).join(', ')})`);
    for (const w of workloads) {
      for (const server of order) {
        let m;
        for (let attempt = 0; !m; attempt++) {
          await haltIfAborting();
          try {
            m = await measure(server, WORKLOADS[w], ctx, round);
          } catch (err) {
            await haltIfAborting();
            // A failed transfer never counts; it is retried (PEERS_RETRIES times) and reported under the table.
            failures.push(`round ${round} ${w} ${server.name}: ${err.message.split('\n')[0]}`);
            console.log(`  ${w.padEnd(5)} ${server.name.padEnd(9)} FAILED: ${err.message.split('\n')[0]}`);
            if (attempt >= RETRIES) throw err;
            await sleep(1000);
          }
        }
        await haltIfAborting();
        results[w][server.name].push(m);
        const value = w === 'small' ? `${fix(m.value, 0)} files/s` : `${fix(mb(m.value), 0)} MB/s`;
        const cpu = w === 'small' ? `${fix((m.cpu / m.files) * 1000, 2)} ms/file` : `${fix(m.cpu / (m.bytes / GiB), 2)} s/GiB`;
        console.log(
          `  ${w.padEnd(5)} ${server.name.padEnd(9)} ${value.padStart(13)}  CPU ${fix(m.cpu, 2)} s (${cpu})  load1 ${fix(m.load, 2)}  other ${fix(m.other, 0)}%  ${m.detail}${m.settled ? '' : '  (server tree did not settle: CPU approximate)'}`,
        );
      }
    }
  }

  for (const server of [...running].reverse()) await server.stop();

  // --- the table ---
  const names = running.map((s) => s.name);
  const peers = names.filter((n) => !OWN.has(n));
  const hasGateway = names.includes('gateway');
  const rows = [];
  const addRow = (label, unit, w, valueOf, digits, withNoise) => {
    const med = Object.fromEntries(names.map((n) => [n, median(results[w][n].map(valueOf))]));
    const all = names.flatMap((n) => results[w][n]);
    const loads = all.map((m) => m.load);
    rows.push([
      label,
      unit,
      ...names.map((n) => fix(med[n], digits)),
      ...(hasGateway ? peers.map((p) => fix(med.gateway / med[p], 2)) : []),
      withNoise ? `${fix(Math.min(...loads), 2)}–${fix(Math.max(...loads), 2)}` : '',
      withNoise ? `${fix(Math.max(...all.map((m) => m.other)), 0)}%` : '',
    ]);
  };
  const labels = {
    down: WORKLOADS.down.row,
    up: WORKLOADS.up.row,
    par: WORKLOADS.par.row,
    small: WORKLOADS.small.row,
  };
  for (const w of workloads) {
    if (w === 'small') addRow(labels[w], 'files/s', w, (m) => m.value, 0, true);
    else addRow(labels[w], 'MB/s', w, (m) => mb(m.value), 0, true);
  }
  for (const w of workloads) {
    if (w === 'small') addRow(`server CPU, ${labels[w]}`, 'ms/file', w, (m) => (m.cpu / m.files) * 1000, 2, false);
    else addRow(`server CPU, ${labels[w]}`, 'CPU-s/GiB', w, (m) => m.cpu / (m.bytes / GiB), 2, false);
  }
  console.log('');
  console.log(`median of ${ROUNDS} round(s) — ${machineLine()}`);
  printTable(
    ['workload', 'unit', ...names, ...(hasGateway ? peers.map((p) => `gateway/${p}`) : []), 'load1 before', 'other CPU'],
    rows,
  );
  console.log('');
  console.log('MB/s = 10^6 bytes/s over the transfer (curl time_total − time_pretransfer: login and TLS set-up excluded);');
  console.log('parallel: all bytes / time during which ≥ 1 of the transfers ran (set-up excluded); files/s: files / wall time incl. logins.');
  console.log('gateway/peer > 1: the gateway is faster (throughput rows) or needs MORE CPU (CPU rows).');
  console.log('server CPU = utime+stime+cutime+cstime of the whole process tree (forked sessions included) per GiB moved');
  console.log('or per file. load1 = 1-minute load average before each measurement (includes the benchmark itself);');
  console.log(`other CPU = the highest CPU share (100% = one core of ${os.cpus().length}) used meanwhile by anything but the server and curl.`);
  console.log(
    `verified: every transfer's byte count, every upload's stored size, SHA-256 of the ${SIZE_MIB} MiB uploads in round(s) ≤ ${SHA_ROUNDS}, SHA-256 of every small upload.`,
  );
  if (workloads.includes('small') && SMALL_CLIENT === 'node') {
    console.log(
      `small uploads: a minimal Node FTPS client (${SMALL_CLIENTS} sessions, TLS ${SMALL_TLS}, data connections resume the control session), not curl:`,
    );
    console.log('curl 7.88 stalls up to 1 s per data connection there (see nodeUploads in bench/peers.mjs); PEERS_SMALL_CLIENT=curl to compare.');
  } else if (workloads.includes('small') && SMALL_TLS !== '1.3') {
    console.log(
      `small uploads use curl --tls-max ${SMALL_TLS} (PEERS_SMALL_TLS=1.3 to change): with TLS 1.3, curl's 2nd and later transfers on one control`,
    );
    console.log(
      'connection resume a ticket issued on the previous data connection, which the gateway refuses (522), and curl < 8.9 loses',
    );
    console.log("small uploads to servers that send tickets on data connections (vsftpd: intermittent 426, curl issue 6149).");
  }
  console.log(failures.length ? `failed attempts (retried, not counted): ${failures.join('; ')}` : 'failed attempts: none');
  clearTimeout(timer);
  await cleanupAll();
}

await runBenchmark(main);
