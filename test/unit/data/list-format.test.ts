import { describe, expect, it } from 'vitest';
import { formatListLine, formatMdtm, formatMlsxFacts, parseMfmtTime } from '../../../src/data/list-format.js';
import type { FileStat } from '../../../src/storage/storage.js';

const now = new Date('2026-11-24T18:00:00Z');
const file = (over: Partial<FileStat> = {}): FileStat => ({
  name: 'name',
  type: 'file',
  size: 1234,
  mtime: new Date('2026-11-24T17:05:01Z'),
  mode: 0o644,
  ...over,
});

describe('formatListLine', () => {
  it.each<[string, Partial<FileStat>, string]>([
    ['a recent file', {}, '-rw-r--r-- 1 ftp ftp      1234 Nov 24 17:05 name'],
    ['a directory', { type: 'dir', mode: 0o755, size: 4096, name: 'docs' }, 'drwxr-xr-x 1 ftp ftp      4096 Nov 24 17:05 docs'],
    ['a symlink', { type: 'symlink', mode: 0o777, size: 7, name: 'lnk' }, 'lrwxrwxrwx 1 ftp ftp         7 Nov 24 17:05 lnk'],
    ['odd permission bits', { mode: 0o4751 }, '-rwxr-x--x 1 ftp ftp      1234 Nov 24 17:05 name'],
    ['a one-digit day', { mtime: new Date('2026-11-04T09:03:00Z') }, '-rw-r--r-- 1 ftp ftp      1234 Nov  4 09:03 name'],
    ['an old file', { mtime: new Date('2024-02-29T23:59:00Z') }, '-rw-r--r-- 1 ftp ftp      1234 Feb 29  2024 name'],
    ['a file in the future', { mtime: new Date('2027-01-05T00:00:00Z') }, '-rw-r--r-- 1 ftp ftp      1234 Jan  5  2027 name'],
    ['a size wider than the column', { size: 12345678901 }, '-rw-r--r-- 1 ftp ftp 12345678901 Nov 24 17:05 name'],
    ['an empty file', { size: 0 }, '-rw-r--r-- 1 ftp ftp         0 Nov 24 17:05 name'],
    ['a name with spaces', { name: 'my file .txt' }, '-rw-r--r-- 1 ftp ftp      1234 Nov 24 17:05 my file .txt'],
  ])('%s', (_label, over, expected) => {
    expect(formatListLine(file(over), now)).toBe(expected);
  });

  it('switches to the year exactly at 180 days', () => {
    const day = 24 * 60 * 60 * 1000;
    const justInside = new Date(now.getTime() - 180 * day + 60_000);
    const justOutside = new Date(now.getTime() - 180 * day);
    expect(formatListLine(file({ mtime: justInside }), now)).toContain('May 28 18:01 name');
    expect(formatListLine(file({ mtime: justOutside }), now)).toContain('May 28  2026 name');
  });

  it('uses UTC, whatever the local time zone', () => {
    // 23:30 UTC on the 31st is already the 1st in most of Europe and Asia.
    expect(formatListLine(file({ mtime: new Date('2026-10-31T23:30:00Z') }), now)).toContain('Oct 31 23:30 name');
  });
});

describe('formatMlsxFacts', () => {
  it('lists a writable file', () => {
    expect(formatMlsxFacts(file({ mtime: new Date('2026-11-24T17:05:01Z') }), { writable: true })).toBe(
      'type=file;size=1234;modify=20261124170501;perm=adfrw;unix.mode=0644; name',
    );
  });

  it('offers only read on a read-only file', () => {
    expect(formatMlsxFacts(file({ mode: 0o400 }), { writable: false })).toBe(
      'type=file;size=1234;modify=20261124170501;perm=r;unix.mode=0400; name',
    );
  });

  it.each<[{ isCwd?: boolean; isParent?: boolean; writable: boolean }, string]>([
    [{ writable: true }, 'type=dir;modify=20261124170501;perm=cdeflmp;unix.mode=0755; docs'],
    [{ writable: false }, 'type=dir;modify=20261124170501;perm=el;unix.mode=0755; docs'],
    [{ isCwd: true, writable: true }, 'type=cdir;modify=20261124170501;perm=cdeflmp;unix.mode=0755; docs'],
    [{ isParent: true, writable: false }, 'type=pdir;modify=20261124170501;perm=el;unix.mode=0755; docs'],
  ])('lists a directory with %o', (opts, expected) => {
    expect(formatMlsxFacts(file({ type: 'dir', mode: 0o755, name: 'docs' }), opts)).toBe(expected);
  });

  it('marks a link that cannot be followed', () => {
    expect(formatMlsxFacts(file({ type: 'symlink', mode: 0o777, size: 4 }), { writable: true })).toMatch(/^type=OS\.unix=slink;size=4;/);
  });
});

describe('formatMdtm', () => {
  it.each([
    ['2026-11-24T17:05:01.999Z', '20261124170501'],
    ['1970-01-01T00:00:00Z', '19700101000000'],
    ['0999-12-31T23:59:59Z', '09991231235959'],
  ])('%s → %s', (iso, expected) => {
    expect(formatMdtm(new Date(iso))).toBe(expected);
  });
});

describe('parseMfmtTime', () => {
  it.each([
    ['20261124170501', '2026-11-24T17:05:01.000Z'],
    ['20240229000000', '2024-02-29T00:00:00.000Z'],
    ['20261124170501.5', '2026-11-24T17:05:01.500Z'],
    ['20261124170501.123', '2026-11-24T17:05:01.123Z'],
    ['20261124170501.123999', '2026-11-24T17:05:01.123Z'],
    ['00500101000000', '0050-01-01T00:00:00.000Z'],
  ])('%s → %s', (input, iso) => {
    expect(parseMfmtTime(input)?.toISOString()).toBe(iso);
  });

  it.each([
    '',
    '2026112417050',
    '202611241705011',
    '20261324170501',
    '20261100170501',
    '20230229000000',
    '20260431000000',
    '20261124240000',
    '20261124176001',
    '20261124170560',
    '20261124170501.',
    '20261124170501Z',
    ' 20261124170501',
    '2026-11-24 17:05',
    '２0261124170501',
  ])('rejects %j', (input) => {
    expect(parseMfmtTime(input)).toBeUndefined();
  });

  it('round-trips with formatMdtm', () => {
    expect(formatMdtm(parseMfmtTime('19991231235959') ?? new Date(Number.NaN))).toBe('19991231235959');
  });
});
