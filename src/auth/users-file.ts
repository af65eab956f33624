import net from 'node:net';
import { blockListOf, parseAddressRange } from '../net/address-list.js';
import { resolveHome, type HomeRules } from './home.js';
import { parsePasswordHash, type PasswordHash } from './password-hash.js';
import type { Account } from './user-store.js';

export interface FileUser {
  readonly account: Account;
  readonly hash: PasswordHash;
  /** The hash was prefixed with `!` (as in /etc/shadow): no login, open sessions are closed. */
  readonly disabled: boolean;
  /** Client addresses the user may log in from; undefined = any. */
  readonly allowedFrom: net.BlockList | undefined;
}

export interface LineProblem {
  readonly line: number;
  readonly message: string;
}

export interface UsersFileOptions extends HomeRules {
  /** The source (e.g. "FTP_USER") that already provides `name`, if any: a name belongs to one source only. */
  readonly claimedBy: (name: string) => string | undefined;
}

export const USERS_FILE_FORMAT = 'name:[!]password-hash:home:rw|ro[,reuse=optional][:allowed-cidrs]';

/** Thrown by the field parsers; one per line, reported with the line number. */
class BadLine extends Error {}

const quote = (s: string): string => JSON.stringify(s);

/**
 * `name:password-hash:home:rw|ro[,options][:allowed-cidrs]` per line; `#` comments and blank lines are skipped,
 * CRLF is fine. Everything after the fourth colon is the address list, so IPv6 entries need no escaping.
 * Problem texts never contain a hash.
 */
export function parseUsersFile(
  text: string,
  options: UsersFileOptions,
): { users: ReadonlyMap<string, FileUser>; problems: readonly LineProblem[] } {
  const users = new Map<string, FileUser>();
  const definedOn = new Map<string, number>();
  const problems: LineProblem[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      try {
        const user = parseLine(line, options);
        const earlier = definedOn.get(user.account.name);
        if (earlier !== undefined) throw new BadLine(`user ${quote(user.account.name)} is already defined on line ${earlier}`);
        definedOn.set(user.account.name, index + 1);
        users.set(user.account.name, user);
      } catch (err) {
        if (!(err instanceof BadLine)) throw err;
        problems.push({ line: index + 1, message: err.message });
      }
    });
  return { users, problems };
}

function parseLine(line: string, options: UsersFileOptions): FileUser {
  const [nameField, hashField, homeField, permissionsField, ...rest] = line.split(':');
  if (permissionsField === undefined) throw new BadLine(`expected ${USERS_FILE_FORMAT}`);
  // Checked in field order, so the reported problem is the first one on the line.
  const name = parseName(nameField!, options);
  const disabled = hashField!.startsWith('!');
  const hash = parseHash(disabled ? hashField!.slice(1) : hashField!);
  const homeDir = parseHome(homeField!, options);
  const { writable, sessionReuseExempt } = parseOptions(permissionsField);
  const allowedFrom = rest.length === 0 ? undefined : parseAllowList(rest.join(':'));
  return { account: { name, homeDir, writable, ...(sessionReuseExempt && { sessionReuseExempt }) }, hash, disabled, allowedFrom };
}

function parseName(name: string, options: UsersFileOptions): string {
  if (!/^[^\s\p{Cc}]+$/u.test(name)) throw new BadLine(`user name ${quote(name)} is empty or contains white space`);
  const owner = options.claimedBy(name);
  if (owner !== undefined) throw new BadLine(`user ${quote(name)} is already defined by ${owner}`);
  return name;
}

function parseHash(text: string): PasswordHash {
  const parsed = parsePasswordHash(text);
  if ('problem' in parsed) throw new BadLine(parsed.problem);
  return parsed.hash;
}

function parseHome(home: string, options: UsersFileOptions): string {
  const resolved = resolveHome(home, options);
  if ('problem' in resolved) throw new BadLine(resolved.problem);
  return resolved.homeDir;
}

/** `rw` or `ro`, then options: `reuse=optional` exempts the user's data connections from session reuse. */
function parseOptions(text: string): { writable: boolean; sessionReuseExempt: boolean } {
  const [permissions, ...options] = text.split(',');
  if (permissions !== 'rw' && permissions !== 'ro') throw new BadLine(`unknown permissions ${quote(permissions!)} (rw or ro)`);
  let sessionReuseExempt = false;
  for (const option of options) {
    if (option === 'reuse=optional') sessionReuseExempt = true;
    else if (option !== 'reuse=required') throw new BadLine(`unknown option ${quote(option)} (reuse=optional or reuse=required)`);
  }
  return { writable: permissions === 'rw', sessionReuseExempt };
}

/** Comma-separated addresses and CIDRs, IPv4 and IPv6. */
function parseAllowList(text: string): net.BlockList {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.every((e) => e === '')) throw new BadLine('empty allowed-cidrs (leave the field out to allow any address)');
  return blockListOf(
    entries.map((entry) => {
      const range = parseAddressRange(entry);
      if (!range) throw new BadLine(`allowed-cidrs: ${quote(entry)} is not an IPv4/IPv6 address or CIDR`);
      return range;
    }),
  );
}
