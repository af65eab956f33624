/*
 * Reads into one buffer of ours instead of a fresh allocation per read.
 *
 * Why: an upload arrives as TLS records of up to 16 KiB, and Node hands each to JavaScript in a newly allocated
 * buffer: 65,536 allocations per GiB, whose garbage collection cost more CPU than the decryption itself (1 GiB over
 * TLS 1.3: 1.2–1.35 CPU-seconds with fresh buffers, 0.45 with one reused buffer, same machine and run). Node offers
 * this for the sockets it connects (`onread`) but not for accepted or server-side TLS sockets, though the mechanism
 * is the same: the stream handle's useUserBuffer() and two properties the read callback looks at. Their symbols
 * are private, so they are taken from a socket made with the public `onread` option. Should a Node version lack
 * them, uploads fall back to 'data' events: slower, equally correct.
 */
import net from 'node:net';

interface UserBufferSymbols {
  readonly buffer: symbol;
  readonly callback: symbol;
}

const SYMBOLS: UserBufferSymbols | undefined = (() => {
  const probe = new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } });
  const own = Object.getOwnPropertySymbols(probe);
  probe.destroy();
  const buffer = own.find((s) => s.description === 'kBuffer');
  const callback = own.find((s) => s.description === 'kBufferCb');
  return buffer && callback ? { buffer, callback } : undefined;
})();

interface StreamHandle {
  useUserBuffer?: (buffer: Uint8Array) => void;
}

/**
 * From now on, the bytes `socket` reads (decrypted ones, for a TLS socket) are copied into `buffer` and handed to
 * `onBytes` as a view of it, valid only during the call; returning false pauses the socket (resume() to go on). The
 * socket must not be flowing yet, nor have bytes buffered. False when this Node does not allow it.
 */
export function readIntoBuffer(socket: net.Socket, buffer: Buffer, onBytes: (bytes: Buffer) => boolean): boolean {
  const handle = (socket as unknown as { _handle: StreamHandle | null })._handle;
  if (!SYMBOLS || typeof handle?.useUserBuffer !== 'function') return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[SYMBOLS.buffer] = buffer;
  fields[SYMBOLS.callback] = (bytes: number) => onBytes(buffer.subarray(0, bytes));
  handle.useUserBuffer(buffer);
  return true;
}
