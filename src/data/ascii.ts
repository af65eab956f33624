import { Transform } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;

/** TYPE A download: bare LF becomes CRLF (RFC 959 NVT-ASCII line endings). */
export function toNetworkAscii(): Transform {
  let previous = -1;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const out: number[] = [];
      for (const b of chunk) {
        if (b === LF && previous !== CR) out.push(CR);
        out.push(b);
        previous = b;
      }
      done(null, Buffer.from(out));
    },
  });
}

/** TYPE A upload: CRLF becomes LF. A CR at a chunk's end waits to see the next byte. */
export function fromNetworkAscii(): Transform {
  let heldCr = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const out: number[] = [];
      for (const b of chunk) {
        if (heldCr && b !== LF) out.push(CR);
        heldCr = b === CR;
        if (!heldCr) out.push(b);
      }
      done(null, Buffer.from(out));
    },
    flush(done) {
      done(null, heldCr ? Buffer.from([CR]) : null);
    },
  });
}
