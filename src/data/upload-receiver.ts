import type { Duplex } from 'node:stream';
import { FtpError } from '../protocol/errors.js';
import { Code } from '../protocol/replies.js';
import type { UploadTarget } from '../storage/storage.js';
import { NetworkAsciiDecoder } from './ascii.js';

/** Bytes gathered before a write: TLS delivers 16 KiB records, the disk wants few large writes. */
const WRITE_AT_LEAST = 256 * 1024;
/** Bytes held while a write is still running before the connection is paused (backpressure to the client). */
const HOLD_AT_MOST = 2 * 1024 * 1024;

export interface ReceiveOptions {
  readonly signal: AbortSignal;
  /** TYPE A: CRLF from the network becomes LF on disk. */
  readonly ascii: boolean;
  /** The most bytes this upload may write (MAX_UPLOAD_BYTES less what the file keeps); undefined = no limit. */
  readonly limit: number | undefined;
  /** Network bytes as they arrive (metrics, logs). */
  readonly onBytes: (bytes: number) => void;
}

/**
 * Reads an upload's data connection to its end and writes it to `target`: chunks are gathered into writes of at
 * least WRITE_AT_LEAST bytes (one writev each), one write at a time, and the connection is paused while
 * HOLD_AT_MOST bytes wait, so memory stays bounded whatever the client sends. Resolves once every byte is
 * written. Rejects with the target's StorageError, FtpError 552 beyond `limit`, the abort reason, or the
 * connection's error (a truncated TLS stream, a reset, a close without end).
 */
export function receiveUpload(socket: Duplex, target: Pick<UploadTarget, 'write'>, o: ReceiveOptions): Promise<number> {
  const decoder = o.ascii ? new NetworkAsciiDecoder() : undefined;
  return new Promise<number>((resolve, reject) => {
    let held: Buffer[] = [];
    let heldBytes = 0;
    let received = 0;
    let writing = false;
    let ended = false;
    let settled = false;

    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', settle);
      socket.off('close', onClose);
      o.signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve(received);
      else reject(err);
    };
    const hold = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      held.push(chunk);
      heldBytes += chunk.length;
    };
    const writeHeld = () => {
      const chunks = held;
      held = [];
      heldBytes = 0;
      writing = true;
      target.write(chunks).then(() => {
        writing = false;
        if (settled) return;
        if (ended) return heldBytes > 0 ? writeHeld() : settle();
        if (heldBytes >= WRITE_AT_LEAST) writeHeld();
        socket.resume();
      }, settle);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      o.onBytes(chunk.length);
      if (o.limit !== undefined && received > o.limit) {
        settle(new FtpError(Code.ExceededStorage, 'Upload exceeds the size limit (MAX_UPLOAD_BYTES)'));
        return;
      }
      hold(decoder ? decoder.decode(chunk) : chunk);
      if (writing) {
        if (heldBytes >= HOLD_AT_MOST) socket.pause();
      } else if (heldBytes >= WRITE_AT_LEAST) {
        writeHeld();
      }
    };
    const onEnd = () => {
      ended = true;
      if (decoder) hold(decoder.end());
      if (writing) return;
      if (heldBytes > 0) writeHeld();
      else settle();
    };
    const onClose = () => {
      if (!ended) settle(new Error('Data connection closed during the transfer'));
    };
    const onAbort = () => settle(o.signal.reason);

    if (o.signal.aborted) return onAbort();
    o.signal.addEventListener('abort', onAbort, { once: true });
    // An empty upload may have ended before anyone listened (its 'end' needs no reader when nothing is buffered).
    if (socket.readableEnded) return onEnd();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', settle);
    socket.once('close', onClose);
  });
}
