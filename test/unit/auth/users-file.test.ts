import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { isListed } from '../../../src/net/address-list.js';
import { parseUsersFile, type UsersFileOptions } from '../../../src/auth/users-file.js';

const ROOT = '/srv/ftp';
const HASH = bcrypt.hashSync('secret', 4);
const SCRYPT = '$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5';
const options: UsersFileOptions = { root: ROOT, claimedBy: (name) => (name === 'admin' ? 'FTP_USER' : undefined) };

const parse = (...lines: string[]) => parseUsersFile(lines.join('\n'), options);

describe('parseUsersFile: valid files', () => {
  it('reads each field, skipping comments and blank lines', () => {
    const { users, problems } = parse(
      '# name:hash:home:permissions[:allowed-cidrs]',
      '',
      `alice:${HASH}:alice:rw`,
      `  bob:${SCRYPT}:shared/bob:ro  `,
      '   # indented comment',
      `root-view:${HASH}:.:ro`,
    );
    expect(problems).toEqual([]);
    expect([...users.keys()]).toEqual(['alice', 'bob', 'root-view']);
    expect(users.get('alice')).toMatchObject({
      account: { name: 'alice', homeDir: '/srv/ftp/alice', writable: true },
      hash: { kind: 'bcrypt' },
      allowedFrom: undefined,
    });
    expect(users.get('bob')).toMatchObject({ account: { homeDir: '/srv/ftp/shared/bob', writable: false }, hash: { kind: 'scrypt' } });
    expect(users.get('root-view')!.account.homeDir).toBe(ROOT);
  });

  it('reads the session-reuse option after the permissions; required is the default', () => {
    const { users, problems } = parse(
      `java:${HASH}:java:rw,reuse=optional:10.0.0.0/8`,
      `strict:${HASH}:strict:ro,reuse=required`,
      `plain:${HASH}:plain:ro`,
    );
    expect(problems).toEqual([]);
    expect(users.get('java')!.account).toMatchObject({ writable: true, sessionReuseExempt: true });
    expect(isListed(users.get('java')!.allowedFrom!, '10.1.1.1')).toBe(true);
    expect(users.get('strict')!.account).toMatchObject({ writable: false });
    expect(users.get('strict')!.account.sessionReuseExempt).toBeFalsy();
    expect(users.get('plain')!.account.sessionReuseExempt).toBeFalsy();
  });

  it('accepts CRLF line ends and a byte-order mark', () => {
    const { users, problems } = parseUsersFile(`\uFEFFalice:${HASH}:a:rw\r\n# c\r\nbob:${HASH}:b:ro\r\n`, options);
    expect(problems).toEqual([]);
    expect(users.get('alice')!.account.homeDir).toBe('/srv/ftp/a');
    expect(users.get('bob')!.account.writable).toBe(false);
  });

  it('reads allowed-cidrs with IPv4 and IPv6 entries, colons and all', () => {
    const { users, problems } = parse(`carol:${HASH}:carol:rw:10.0.0.0/8, 192.168.1.7,2001:db8::/32,::1`);
    expect(problems).toEqual([]);
    const list = users.get('carol')!.allowedFrom!;
    for (const inside of ['10.1.2.3', '192.168.1.7', '2001:db8:ffff::1', '::1']) expect(isListed(list, inside)).toBe(true);
    for (const outside of ['11.0.0.1', '192.168.1.8', '2001:db9::1', '::2', '']) expect(isListed(list, outside)).toBe(false);
  });
});

describe('parseUsersFile: each bad line is reported with its number, and no hash', () => {
  it.each([
    ['too few fields', `alice:${HASH}:alice`, /expected name:\[!\]password-hash:home:rw\|ro\[,reuse=optional\]\[:allowed-cidrs\]/],
    ['an empty name', `:${HASH}:x:rw`, /user name "" is empty/],
    ['a name with a space', `al ice:${HASH}:x:rw`, /user name "al ice" .*white space/],
    ['a name FTP_USER already has', `admin:${HASH}:x:rw`, /user "admin" is already defined by FTP_USER/],
    ['a plain-text password', 'alice:hunter2:alice:rw', /neither bcrypt/],
    ['an absolute home', `alice:${HASH}:/etc:rw`, /home "\/etc" must be a relative path inside FTP_ROOT/],
    ['a home that climbs out', `alice:${HASH}:a/../../etc:rw`, /home "a\/..\/..\/etc" must be a relative path/],
    ['an empty home', `alice:${HASH}::rw`, /home "" must be/],
    ['unknown permissions', `alice:${HASH}:alice:rx`, /^unknown permissions "rx" \(rw or ro\)$/],
    ['an unknown option', `alice:${HASH}:alice:rw,reuse=never`, /^unknown option "reuse=never" \(reuse=optional or reuse=required\)$/],
    ['an option without permissions', `alice:${HASH}:alice:reuse=optional`, /^unknown permissions "reuse=optional"/],
    ['an empty address list', `alice:${HASH}:alice:rw:`, /empty allowed-cidrs/],
    ['a prefix too long for IPv4', `alice:${HASH}:alice:rw:10.0.0.0/33`, /"10.0.0.0\/33" is not an IPv4\/IPv6 address or CIDR/],
    ['a prefix too long for IPv6', `alice:${HASH}:alice:rw:2001:db8::/129`, /"2001:db8::\/129" is not/],
    ['a host name', `alice:${HASH}:alice:rw:example.com`, /"example.com" is not/],
    ['a trailing comma', `alice:${HASH}:alice:rw:10.0.0.1,`, /"" is not/],
  ])('%s', (_case, line, message) => {
    const { users, problems } = parse('# users', '', line);
    expect(users.size).toBe(0);
    expect(problems).toEqual([{ line: 3, message: expect.stringMatching(message) }]);
    expect(problems[0]!.message).not.toContain(HASH);
  });

  it('reports every bad line of a file, and a duplicate name against its first line', () => {
    const { users, problems } = parse(`alice:${HASH}:a:rw`, 'bob:x:b:rw', `alice:${HASH}:a2:ro`, `carol:${HASH}:c:rwx`);
    expect(users.has('alice')).toBe(true);
    expect(problems).toEqual([
      { line: 2, message: expect.stringMatching(/neither bcrypt/) },
      { line: 3, message: 'user "alice" is already defined on line 1' },
      { line: 4, message: 'unknown permissions "rwx" (rw or ro)' },
    ]);
  });

  it('counts CRLF lines like LF lines', () => {
    const { problems } = parseUsersFile(`# a\r\n\r\nalice:${HASH}:a:rx\r\n`, options);
    expect(problems).toEqual([{ line: 3, message: 'unknown permissions "rx" (rw or ro)' }]);
  });
});
