export interface CommandLine {
  /** Upper-cased verb, e.g. "RETR". */
  readonly verb: string;
  /** Everything after the first space, unchanged (file names may contain leading/trailing spaces). */
  readonly arg: string | undefined;
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

/** Parses one command line (without its CRLF). Returns undefined for a blank line. */
export function parseCommand(line: string): CommandLine | undefined {
  if (line.trim() === '') return undefined;
  const space = line.indexOf(' ');
  const verb = (space === -1 ? line : line.slice(0, space)).trim().toUpperCase();
  if (!/^[A-Z]{3,4}$/.test(verb)) return { verb: INVALID_VERB, arg: undefined };
  const arg = space === -1 ? undefined : line.slice(space + 1);
  return { verb, arg: arg === '' ? undefined : arg };
}
