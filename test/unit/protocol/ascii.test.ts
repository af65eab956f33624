/* src/data/ascii.ts: TYPE A line-ending conversion, which must not depend on where chunks happen to split. */
import fc from 'fast-check';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { fromNetworkAscii, toNetworkAscii } from '../../../src/data/ascii.js';

/** Runs the chunks through a fresh transform, as a transfer would, and returns what comes out. */
async function run(make: () => Transform, chunks: readonly (string | Buffer)[]): Promise<string> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks.map((c) => Buffer.from(c as string, 'latin1'))),
    make(),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  return Buffer.concat(out).toString('latin1');
}

/** Splits `text` at the given (sorted, deduplicated) offsets. */
function split(text: string, cuts: number[]): string[] {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const parts: string[] = [];
  let from = 0;
  for (const c of at) {
    parts.push(text.slice(from, c));
    from = c;
  }
  parts.push(text.slice(from));
  return parts;
}

describe('toNetworkAscii (download: LF → CRLF)', () => {
  it.each<[string, string[], string]>([
    ['LF', ['a\nb'], 'a\r\nb'],
    ['CRLF stays', ['a\r\nb'], 'a\r\nb'],
    ['consecutive LFs', ['\n\n'], '\r\n\r\n'],
    ['a bare CR stays', ['a\rb'], 'a\rb'],
    ['CR CR LF', ['\r\r\n'], '\r\r\n'],
    ['CR at a chunk end, LF at the next start: not doubled', ['a\r', '\nb'], 'a\r\nb'],
    ['LF at a chunk start after a plain byte', ['a', '\nb'], 'a\r\nb'],
    ['LF alone in a chunk', ['a', '\n', '\n'], 'a\r\n\r\n'],
    ['CR alone in a chunk, LF in the next', ['\r', '\n'], '\r\n'],
    ['empty chunks between', ['a\r', '', '\n'], 'a\r\n'],
    ['no data', [], ''],
    ['a trailing LF', ['end\n'], 'end\r\n'],
  ])('%s', async (_label, chunks, expected) => {
    expect(await run(toNetworkAscii, chunks)).toBe(expected);
  });
});

describe('fromNetworkAscii (upload: CRLF → LF)', () => {
  it.each<[string, string[], string]>([
    ['CRLF', ['a\r\nb'], 'a\nb'],
    ['a bare LF stays', ['a\nb'], 'a\nb'],
    ['a bare CR stays', ['a\rb'], 'a\rb'],
    ['CR CR LF', ['\r\r\n'], '\r\n'],
    ['CRLF split across chunks', ['a\r', '\nb'], 'a\nb'],
    ['CR at a chunk end, not followed by LF', ['a\r', 'b'], 'a\rb'],
    ['CR at a chunk end, CR at the next start', ['a\r', '\r\n'], 'a\r\n'],
    ['CR alone in chunks', ['\r', '\r', '\n'], '\r\n'],
    ['a CR at the very end is flushed', ['end\r'], 'end\r'],
    ['a CR at the very end after empty chunks is flushed', ['end\r', '', ''], 'end\r'],
    ['empty chunks between CR and LF', ['a\r', '', '\n'], 'a\n'],
    ['no data', [], ''],
    ['binary bytes around', ['\x00\xff\r\n\x80'], '\x00\xff\n\x80'],
  ])('%s', async (_label, chunks, expected) => {
    expect(await run(fromNetworkAscii, chunks)).toBe(expected);
  });
});

describe('properties', () => {
  const bytes = fc.string({ unit: fc.constantFrom('a', 'b', '\r', '\n', '\x00', '\xff'), maxLength: 60 });
  const cuts = fc.array(fc.nat(100), { maxLength: 8 });

  it('the output does not depend on where the input was split into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(bytes, cuts, async (text, at) => {
        const chunks = split(text, at);
        expect(await run(toNetworkAscii, chunks)).toBe(await run(toNetworkAscii, [text]));
        expect(await run(fromNetworkAscii, chunks)).toBe(await run(fromNetworkAscii, [text]));
      }),
      { seed: 959, numRuns: 300 },
    );
  });

  it('download: every LF goes out preceded by CR; nothing but CRs is added', async () => {
    await fc.assert(
      fc.asyncProperty(bytes, cuts, async (text, at) => {
        const out = await run(toNetworkAscii, split(text, at));
        expect(out).not.toMatch(/(^|[^\r])\n/);
        expect(out.replaceAll('\r', '')).toBe(text.replaceAll('\r', ''));
      }),
      { seed: 959, numRuns: 300 },
    );
  });

  it('a text file without CR survives download then upload unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(bytes.map((t) => t.replaceAll('\r', '')), cuts, cuts, async (text, at1, at2) => {
        const network = await run(toNetworkAscii, split(text, at1));
        expect(await run(fromNetworkAscii, split(network, at2))).toBe(text);
      }),
      { seed: 959, numRuns: 300 },
    );
  });
});
