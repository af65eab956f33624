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
export class NetworkAsciiDecoder {
  #heldCr = false;

  decode(chunk: Buffer): Buffer {
    const out: number[] = [];
    for (const b of chunk) {
      if (this.#heldCr && b !== LF) out.push(CR);
      this.#heldCr = b === CR;
      if (!this.#heldCr) out.push(b);
    }
    return Buffer.from(out);
  }

  /** The end of the upload: a CR still held was not part of a CRLF. */
  end(): Buffer {
    const rest = this.#heldCr ? Buffer.from([CR]) : Buffer.alloc(0);
    this.#heldCr = false;
    return rest;
  }
}

/** NetworkAsciiDecoder as a stream. */
export function fromNetworkAscii(): Transform {
  const decoder = new NetworkAsciiDecoder();
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      done(null, decoder.decode(chunk));
    },
    flush(done) {
      const rest = decoder.end();
      done(null, rest.length > 0 ? rest : null);
    },
  });
}
