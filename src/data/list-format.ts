import type { FileStat } from '../storage/storage.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
const SIX_MONTHS_MS = 180 * 24 * 60 * 60 * 1000;
const TYPE_CHAR: Readonly<Record<FileStat['type'], string>> = { file: '-', dir: 'd', symlink: 'l', other: '-' };

const pad2 = (n: number): string => String(n).padStart(2, '0');

function permissionString(stat: FileStat): string {
  if (stat.type === 'symlink') return 'rwxrwxrwx';
  let out = '';
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = stat.mode >> shift;
    out += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
  }
  return out;
}

/**
 * One `ls -l` line, the format FileZilla, WinSCP and curl parse:
 * `-rw-r--r-- 1 ftp ftp      1234 Nov 24 17:05 name`. Owner and group are fixed: real ids mean nothing to clients.
 */
export function formatListLine(stat: FileStat, now: Date): string {
  const t = stat.mtime;
  const age = now.getTime() - t.getTime();
  // Like ls: the time of day for the last six months, the year for anything older or in the future.
  const timeOrYear =
    age >= 0 && age < SIX_MONTHS_MS ? `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}` : ` ${t.getUTCFullYear()}`;
  const date = `${MONTHS[t.getUTCMonth()]} ${String(t.getUTCDate()).padStart(2)} ${timeOrYear}`;
  // Separator plus size make a right-aligned column of at least 10, so big sizes still get a space.
  const size = String(stat.size).padStart(9);
  return `${TYPE_CHAR[stat.type]}${permissionString(stat)} 1 ftp ftp ${size} ${date} ${stat.name}`;
}

/** RFC 3659 time-val: YYYYMMDDHHMMSS in UTC. */
export function formatMdtm(date: Date): string {
  return (
    String(date.getUTCFullYear()).padStart(4, '0') +
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds())
  );
}

/** Parses an MFMT time-val (YYYYMMDDHHMMSS[.fraction], UTC); undefined for anything malformed or impossible. */
export function parseMfmtTime(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?$/.exec(s);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  // Date rolls overflowing fields over (Feb 30 -> Mar 2); a changed field means the input was impossible.
  const valid =
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second;
  return valid ? date : undefined;
}

const PERMS = {
  file: { writable: 'adfrw', readOnly: 'r' },
  dir: { writable: 'cdeflmp', readOnly: 'el' },
} as const;

function mlsxType(stat: FileStat, opts: { isCwd?: boolean; isParent?: boolean }): string {
  if (stat.type === 'dir') return opts.isCwd ? 'cdir' : opts.isParent ? 'pdir' : 'dir';
  // The name pure-ftpd and proFTPD use; clients treat it as "maybe a directory".
  return stat.type === 'symlink' ? 'OS.unix=slink' : 'file';
}

/** One MLSD/MLST entry: `type=file;size=1234;modify=20261124170501;perm=adfrw;unix.mode=0644; name`. */
export function formatMlsxFacts(
  stat: FileStat,
  opts: { isCwd?: boolean; isParent?: boolean; writable: boolean; facts?: readonly string[] },
): string {
  const perms = PERMS[stat.type === 'dir' ? 'dir' : 'file'];
  const facts = [
    `type=${mlsxType(stat, opts)}`,
    // RFC 3659 defines size as the transfer size of a file; a directory has none.
    ...(stat.type === 'dir' ? [] : [`size=${stat.size}`]),
    `modify=${formatMdtm(stat.mtime)}`,
    `perm=${opts.writable ? perms.writable : perms.readOnly}`,
    `unix.mode=${(stat.mode & 0o7777).toString(8).padStart(4, '0')}`,
  ];
  // OPTS MLST narrows the facts a client receives (RFC 3659 §7.9).
  const wanted = opts.facts ? facts.filter((f) => opts.facts!.includes(f.slice(0, f.indexOf('=')))) : facts;
  return `${wanted.join(';')}; ${stat.name}`;
}
