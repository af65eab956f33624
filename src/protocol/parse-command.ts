export interface CommandLine {
  /** Upper-cased verb, e.g. "RETR". */
  readonly verb: string;
  /** Everything after the first space, unchanged (file names may contain leading/trailing spaces). */
  readonly arg: string | undefined;
  /** The argument as the client's bytes: invalid UTF-8 would collapse to U+FFFD in `arg`. */
  readonly rawArg: Buffer | undefined;
}

const TELNET_IAC = 0xff;

/**
 * Removes Telnet IAC sequences (RFC 854), which clients send before ABOR as "interrupt process" and
 * "data mark"; IAC IAC stands for a literal 0xFF byte.
 */
export function stripTelnet(line: Buffer): Buffer {
  if (!line.includes(TELNET_IAC)) return line;
  const out: number[] = [];
  for (let i = 0; i < line.length; i++) {
    const b = line[i]!;
    if (b !== TELNET_IAC) {
      out.push(b);
      continue;
    }
    const next = line[i + 1];
    if (next === TELNET_IAC) out.push(TELNET_IAC);
    // WILL/WONT/DO/DONT carry an option byte.
    else if (next !== undefined && next >= 0xfb && next <= 0xfe) i++;
    i++;
  }
  return Buffer.from(out);
}

/**
 * The verb of a line that has none RFC 959 could name (not 3-4 letters, e.g. " NOOP" or "PASS\tsecret"): no
 * command has it, so the line is answered 502. The text itself is dropped: it may hold anything, a password too,
 * and verbs are logged.
 */
export const INVALID_VERB = '<invalid>';

const SPACE = 0x20;

/** Parses one command line (its bytes without CRLF). Returns undefined for a blank line. */
export function parseCommand(bytes: Buffer): CommandLine | undefined {
  const line = bytes.toString('utf8');
  if (line.trim() === '') return undefined;
  // UTF-8 leaves ASCII bytes as they are, so the first space is at the same place in both forms.
  const space = bytes.indexOf(SPACE);
  const verb = (space === -1 ? line : bytes.subarray(0, space).toString('utf8')).trim().toUpperCase();
  if (!/^[A-Z]{3,4}$/.test(verb)) return { verb: INVALID_VERB, arg: undefined, rawArg: undefined };
  const rawArg = space === -1 || space === bytes.length - 1 ? undefined : bytes.subarray(space + 1);
  return { verb, arg: rawArg?.toString('utf8'), rawArg };
}
