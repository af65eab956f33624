import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INVALID_VERB, parseCommand as parseBytes, stripTelnet } from '../../../src/protocol/parse-command.js';

/** Verb and text argument of a line given as text. */
function parseCommand(line: string): { verb: string; arg: string | undefined } | undefined {
  const parsed = parseBytes(Buffer.from(line, 'utf8'));
  return parsed && { verb: parsed.verb, arg: parsed.arg };
}

describe('parseCommand', () => {
  it.each<[string, string, { verb: string; arg: string | undefined } | undefined]>([
    ['a bare verb', 'NOOP', { verb: 'NOOP', arg: undefined }],
    ['a lowercase verb', 'noop', { verb: 'NOOP', arg: undefined }],
    ['a mixed-case verb', 'rEtR x', { verb: 'RETR', arg: 'x' }],
    ['a three-letter verb', 'PWD', { verb: 'PWD', arg: undefined }],
    ['an argument', 'RETR file.txt', { verb: 'RETR', arg: 'file.txt' }],
    ['an argument with spaces', 'STOR my file .txt', { verb: 'STOR', arg: 'my file .txt' }],
    ['leading spaces of the argument kept', 'RETR  two', { verb: 'RETR', arg: ' two' }],
    ['trailing spaces of the argument kept', 'RETR file ', { verb: 'RETR', arg: 'file ' }],
    ['only a space after the verb: no argument', 'RETR ', { verb: 'RETR', arg: undefined }],
    ['two spaces: an argument of one space', 'RETR  ', { verb: 'RETR', arg: ' ' }],
    ['a UTF-8 argument', 'MKD grüße 日本', { verb: 'MKD', arg: 'grüße 日本' }],
    ['a NUL in the argument, kept for the path check', 'RETR a\0b', { verb: 'RETR', arg: 'a\0b' }],
    ['a tab before the verb', '\tNOOP', { verb: 'NOOP', arg: undefined }],
    ['an unknown but well-formed verb', 'XCRC file', { verb: 'XCRC', arg: 'file' }],
    ['an empty line', '', undefined],
    ['a blank line', '   ', undefined],
    ['a tab only', '\t', undefined],
    ['a leading space', ' NOOP', { verb: INVALID_VERB, arg: undefined }],
    ['a tab as separator', 'PASS\tsecret', { verb: INVALID_VERB, arg: undefined }],
    ['no separator', 'PASSsecret', { verb: INVALID_VERB, arg: undefined }],
    ['a two-letter verb', 'AB', { verb: INVALID_VERB, arg: undefined }],
    ['a five-letter verb', 'ABCDE x', { verb: INVALID_VERB, arg: undefined }],
    ['digits in the verb', 'XSHA1 file', { verb: INVALID_VERB, arg: undefined }],
    ['a non-ASCII verb', 'ÉTAT', { verb: INVALID_VERB, arg: undefined }],
    ['a NUL in the verb', 'NO\0P', { verb: INVALID_VERB, arg: undefined }],
  ])('%s: %j', (_label, line, expected) => {
    expect(parseCommand(line)).toEqual(expected);
  });

  it('keeps the argument\'s bytes as sent: invalid UTF-8 passwords stay distinct', () => {
    const a = parseBytes(Buffer.from([0x50, 0x41, 0x53, 0x53, 0x20, 0xff, 0x61]));
    const b = parseBytes(Buffer.from([0x50, 0x41, 0x53, 0x53, 0x20, 0xfe, 0x61]));
    expect(a?.arg).toBe(b?.arg);
    expect(a?.rawArg).toEqual(Buffer.from([0xff, 0x61]));
    expect(b?.rawArg).toEqual(Buffer.from([0xfe, 0x61]));
    expect(parseBytes(Buffer.from('NOOP'))?.rawArg).toBeUndefined();
  });

  it('INVALID_VERB can never be a real verb', () => {
    expect(INVALID_VERB).not.toMatch(/^[A-Z]{3,4}$/);
  });

  it('splits verb and argument at the first space, for any verb and argument', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z]{3,4}$/), fc.string({ unit: 'grapheme', maxLength: 40 }), (verb, arg) => {
        expect(parseCommand(`${verb} ${arg}`)).toEqual({ verb: verb.toUpperCase(), arg: arg === '' ? undefined : arg });
      }),
      { seed: 959, numRuns: 300 },
    );
  });

  it('never throws; a verb is RFC 959 shaped or INVALID_VERB, and never carries the line text otherwise', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (line) => {
        const parsed = parseCommand(line);
        if (parsed === undefined) expect(line.trim()).toBe('');
        else if (parsed.verb !== INVALID_VERB) expect(parsed.verb).toMatch(/^[A-Z]{3,4}$/);
        else expect(parsed.arg).toBeUndefined();
      }),
      { seed: 959, numRuns: 500 },
    );
  });
});

describe('stripTelnet', () => {
  const IAC = 0xff;
  const b = (...parts: Array<number | string>): Buffer =>
    Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : Buffer.from(p, 'latin1'))));

  it.each<[string, Buffer, Buffer]>([
    ['no IAC: unchanged', b('ABOR'), b('ABOR')],
    ['IAC IP, IAC DM before ABOR (RFC 959 §4.1.3)', b(IAC, 0xf4, IAC, 0xf2, 'ABOR'), b('ABOR')],
    ['IAC IAC is a literal 0xFF', b('a', IAC, IAC, 'b'), b('a', IAC, 'b')],
    ['IAC WILL option', b(IAC, 0xfb, 0x01, 'X'), b('X')],
    ['IAC WONT option', b(IAC, 0xfc, 0x01, 'X'), b('X')],
    ['IAC DO option', b(IAC, 0xfd, 0x18, 'X'), b('X')],
    ['IAC DONT option', b(IAC, 0xfe, 0x18, 'X'), b('X')],
    ['IAC WILL, option byte that is itself 0xFF', b(IAC, 0xfb, IAC, 'X'), b('X')],
    ['IAC NOP / AYT / AO', b(IAC, 0xf1, IAC, 0xf6, IAC, 0xf5, 'X'), b('X')],
    ['a lone IAC at the end', b('NOOP', IAC), b('NOOP')],
    ['IAC WILL at the end without its option', b('NOOP', IAC, 0xfb), b('NOOP')],
    ['IAC in the middle of an argument', b('RETR a', IAC, 0xf4, 'b'), b('RETR ab')],
    ['only Telnet commands', b(IAC, 0xf4, IAC, 0xf2), b()],
    ['UTF-8 bytes are not IAC', b(0xc3, 0xa9), b(0xc3, 0xa9)],
  ])('%s', (_label, input, expected) => {
    expect(stripTelnet(input)).toEqual(expected);
  });

  it('returns the very buffer when there is nothing to strip', () => {
    const line = Buffer.from('RETR file');
    expect(stripTelnet(line)).toBe(line);
  });

  it('undoes IAC doubling for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const escaped = Buffer.from([...bytes].flatMap((x) => (x === IAC ? [IAC, IAC] : [x])));
        expect(stripTelnet(escaped)).toEqual(Buffer.from(bytes));
      }),
      { seed: 854, numRuns: 500 },
    );
  });

  it('never leaves a Telnet command in the output, and never grows the input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const out = stripTelnet(Buffer.from(bytes));
        expect(out.length).toBeLessThanOrEqual(bytes.length);
        // Each 0xFF left stands for an escaped IAC IAC: at most half of the input's 0xFF bytes survive.
        expect(out.filter((x) => x === IAC).length * 2).toBeLessThanOrEqual(bytes.filter((x) => x === IAC).length);
      }),
      { seed: 854, numRuns: 500 },
    );
  });
});
