import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Code, formatReply, isPositivePreliminary, reply, type ReplyCode } from '../../../src/protocol/replies.js';

describe('reply', () => {
  it.each<[string, string[], string[]]>([
    ['no text', [], ['']],
    ['one line', ['ok'], ['ok']],
    ['several lines', ['a', 'b', 'c'], ['a', 'b', 'c']],
    ['a line with LF', ['a\nb'], ['a', 'b']],
    ['a line with CRLF', ['a\r\nb'], ['a', 'b']],
    ['a line with a bare CR', ['a\rb'], ['a', 'b']],
    ['an empty line among others', ['a', '', 'b'], ['a', '', 'b']],
  ])('%s', (_label, lines, expected) => {
    expect(reply(Code.Ok, ...lines).lines).toEqual(expected);
  });

  it('is frozen, lines included', () => {
    const r = reply(Code.Ok, 'a', 'b');
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.lines)).toBe(true);
  });
});

describe('formatReply', () => {
  it.each<[string, ReplyCode, string[], string]>([
    ['a single line', 200, ['Command okay'], '200 Command okay\r\n'],
    ['an empty single line', 200, [], '200 \r\n'],
    ['two lines', 211, ['Features:', 'End'], '211-Features:\r\n211 End\r\n'],
    ['middle lines as they are', 211, ['Features:', ' UTF8', 'MDTM', 'End'], '211-Features:\r\n UTF8\r\nMDTM\r\n211 End\r\n'],
    ['a middle line that looks like a final line, indented', 214, ['Help:', '214 fake end', 'Help OK'], '214-Help:\r\n 214 fake end\r\n214 Help OK\r\n'],
    ['any digit-leading middle line, indented', 213, ['Status:', '1 file', '550 no', '42', 'End'], '213-Status:\r\n 1 file\r\n 550 no\r\n 42\r\n213 End\r\n'],
    ['a digit-leading first or last line, as it is', 257, ['1st', '2nd'], '257-1st\r\n257 2nd\r\n'],
    ['text that had a line break, split into lines', 250, ['one\r\n250 two'], '250-one\r\n250 250 two\r\n'],
    ['a line break in the middle, the forged part indented', 250, ['x', 'a\n221 bye', 'z'], '250-x\r\na\r\n 221 bye\r\n250 z\r\n'],
  ])('%s', (_label, code, lines, wire) => {
    expect(formatReply(reply(code, ...lines))).toBe(wire);
  });

  const codes = fc.constantFrom(...(Object.values(Code) as ReplyCode[]));
  const text = fc.string({ unit: 'grapheme', maxLength: 30 });

  it('whatever the text, the wire form is one reply a client cannot misread', () => {
    fc.assert(
      fc.property(codes, fc.array(fc.oneof(text, fc.constantFrom('\r', '\n', '\r\n', '200 ok', '999-x', '5')), { maxLength: 8 }), (code, lines) => {
        const wire = formatReply(reply(code, ...lines));
        expect(wire.endsWith('\r\n')).toBe(true);
        const out = wire.slice(0, -2).split('\r\n');
        // No CR or LF other than the line terminators.
        for (const l of out) expect(l).not.toMatch(/[\r\n]/);
        if (out.length === 1) {
          expect(out[0]!.startsWith(`${code} `)).toBe(true);
          return;
        }
        expect(out[0]!.startsWith(`${code}-`)).toBe(true);
        expect(out.at(-1)!.startsWith(`${code} `)).toBe(true);
        // RFC 959 §4.2: only the last line may start with the code and a space; we go further, no digit at all.
        for (const middle of out.slice(1, -1)) expect(middle).not.toMatch(/^\d/);
      }),
      { seed: 4217, numRuns: 500 },
    );
  });
});

describe('isPositivePreliminary', () => {
  it.each<[ReplyCode, boolean]>([
    [110, true],
    [150, true],
    [200, false],
    [226, false],
    [425, false],
  ])('%i → %s', (code, expected) => {
    expect(isPositivePreliminary(reply(code, 'x'))).toBe(expected);
  });
});
