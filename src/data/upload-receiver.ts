import type { Hash } from 'node:crypto';
import type net from 'node:net';
import { FtpError } from '../protocol/errors.js';
import { Code } from '../protocol/replies.js';
import type { UploadTarget } from '../storage/storage.js';
import { NetworkAsciiDecoder } from './ascii.js';
import { readIntoBuffer } from './user-buffer.js';

/** Bytes per write to storage: TLS delivers 16 KiB records, the disk wants few large writes. */
const WRITE_SIZE = 512 * 1024;
/**
 * The first buffer's size: most uploads of a busy server are small, and every buffer allocated is memory V8 counts
 * towards its next full collection (512 KiB per upload made 1,000 uploads of 4 KiB cost 75 of them).
 */
const FIRST_WRITE_SIZE = 64 * 1024;
/** Full buffers waiting for their write before the connection is paused (backpressure to the client). */
const QUEUED_AT_MOST = 2;
/** What one read hands over at most (the TLS layer decrypts into it; a TLS record holds 16 KiB at most). */
const READ_SIZE = 32 * 1024;

export interface ReceiveOptions {
  readonly signal: AbortSignal;
  /** TYPE A: CRLF from the network becomes LF on disk. */
  readonly ascii: boolean;
  /** The most bytes this upload may write (MAX_UPLOAD_BYTES less what the file keeps); undefined = no limit. */
  readonly limit: number | undefined;
  /** Network bytes as they arrive (metrics, logs). */
  readonly onBytes: (bytes: number) => void;
  /** UPLOAD_SHA256: fed the bytes as they are stored (after any ASCII conversion). */
  readonly hash?: Hash | undefined;
}

/**
 * Reads an upload's data connection to its end and writes it to `target`. Bytes are read into one reused buffer
 * (user-buffer.ts), copied into WRITE_SIZE buffers (the first one smaller), and each full buffer is written with one call, one write at a
 * time; a few buffers are reused over and over, and the connection is paused while QUEUED_AT_MOST wait, so memory
 * stays bounded (about 1.5 MiB) whatever the client sends. Resolves once every byte is written. Rejects with the
 * target's StorageError, FtpError 552 beyond `limit`, the abort reason, or the connection's error (a truncated TLS
 * stream, a reset, a close without end).
 */
export function receiveUpload(socket: net.Socket, target: Pick<UploadTarget, 'write'>, o: ReceiveOptions): Promise<number> {
  const decoder = o.ascii ? new NetworkAsciiDecoder() : undefined;
  return new Promise<number>((resolve, reject) => {
    const free: Buffer[] = [];
    const queued: Buffer[] = [];
    let filling: Buffer = Buffer.allocUnsafeSlow(FIRST_WRITE_SIZE);
    let used = 0;
    let received = 0;
    let writing = false;
    let ended = false;
    let paused = false;
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
    const writeNext = () => {
      const next = queued.shift();
      if (next === undefined) {
        if (ended) settle();
        return;
      }
      writing = true;
      target.write([next]).then(() => {
        writing = false;
        if (settled) return;
        if (next.length === WRITE_SIZE) free.push(next);
        if (paused && queued.length < QUEUED_AT_MOST) {
          paused = false;
          socket.resume();
        }
        writeNext();
      }, settle);
    };
    const queue = (buffer: Buffer) => {
      queued.push(buffer);
      if (!writing) writeNext();
    };
    /** Takes the bytes of one read (valid only during the call); false asks for a pause. */
    const accept = (bytes: Buffer): boolean => {
      if (settled) return false;
      received += bytes.length;
      o.onBytes(bytes.length);
      if (o.limit !== undefined && received > o.limit) {
        settle(new FtpError(Code.ExceededStorage, 'Upload exceeds the size limit (MAX_UPLOAD_BYTES)'));
        return false;
      }
      const data = decoder ? decoder.decode(bytes) : bytes;
      o.hash?.update(data);
      for (let offset = 0; offset < data.length; ) {
        const n = data.copy(filling, used, offset);
        used += n;
        offset += n;
        if (used === filling.length) {
          queue(filling);
          filling = free.pop() ?? Buffer.allocUnsafeSlow(WRITE_SIZE);
          used = 0;
        }
      }
      // The TLS layer may still hand over what it has decrypted after a pause: the buffers then grow by one.
      paused ||= queued.length >= QUEUED_AT_MOST;
      return !paused;
    };
    const onData = (chunk: Buffer) => {
      if (!accept(chunk)) socket.pause();
    };
    const onEnd = () => {
      if (settled) return;
      ended = true;
      if (decoder) accept(decoder.end());
      if (used > 0) queue(filling.subarray(0, used));
      used = 0;
      if (!writing) writeNext();
    };
    const onClose = () => {
      if (!ended) settle(new Error('Data connection closed during the transfer'));
    };
    const onAbort = () => settle(o.signal.reason);

    if (o.signal.aborted) return onAbort();
    o.signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', settle);
    socket.once('close', onClose);
    // Bytes that arrived before this (the socket was paused) come first; an empty upload may even have ended.
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) accept(chunk);
    if (socket.readableEnded) return onEnd();
    socket.once('end', onEnd);
    if (!readIntoBuffer(socket, Buffer.allocUnsafeSlow(READ_SIZE), accept)) socket.on('data', onData);
    if (!paused) socket.resume();
  });
}
