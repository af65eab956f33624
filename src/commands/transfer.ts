import { createHash, type Hash } from 'node:crypto';
import type net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { toNetworkAscii } from '../data/ascii.js';
import type { DataConnection, PendingDataChannel } from '../data/data-channel.js';
import { bufferSizeFor, copyFileToSocket, LinesReader, readerToStream } from '../data/file-copy.js';
import { TlsTruncatedError } from '../data/raw-feed.js';
import { receiveUpload } from '../data/upload-receiver.js';
import type { TransferDirection, TransferResult } from '../observability/metrics.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply, type Reply } from '../protocol/replies.js';
import { mapFsError, StorageError, type FileReader, type UploadTarget } from '../storage/storage.js';
import type { CommandContext } from './context.js';

/** Listing bytes per write to the data connection (two such buffers per listing). */
const LISTING_BUFFER = 64 * 1024;

/** What a transfer moves. `file` and `target` belong to the transfer from then on: it closes or settles them. */
export type TransferBody =
  | {
      readonly kind: 'file';
      readonly file: FileReader;
      readonly start: number;
      /** The file's size when the transfer began (sizes the copy buffers). */
      readonly size: number;
      readonly ascii: boolean;
    }
  | { readonly kind: 'listing'; readonly lines: AsyncIterable<string>; readonly release: () => Promise<void> }
  | {
      readonly kind: 'upload';
      readonly target: UploadTarget;
      readonly ascii: boolean;
      /** MAX_UPLOAD_BYTES: the largest the file may become. */
      readonly maxBytes: number | undefined;
    };

/**
 * Takes the data channel the client set up, enforcing the protection policy. Called before the file is
 * opened, so a refused transfer touches nothing.
 */
function claimDataChannel(ctx: CommandContext): PendingDataChannel {
  const pending = ctx.data.take();
  if (!pending) throw new FtpError(Code.CannotOpenDataConnection, 'Use PASV, EPSV, PORT or EPRT first');
  if (ctx.config.ftps.requireProtP && !ctx.config.data.implicitTls && !ctx.state.protectData) {
    pending.dispose();
    throw new FtpError(Code.ProtectionRequired, 'Data connections must be protected: send PBSZ 0 and PROT P');
  }
  return pending;
}

export interface PreparedTransfer {
  readonly what: { readonly label: string; readonly opening: string; readonly success: string };
  readonly body: TransferBody;
}

/**
 * A transfer command: claims the data channel, lets `prepare` open the file (its errors, e.g. 550, come
 * before any 150 and free the channel), then runs the transfer.
 */
export async function transferWith(
  ctx: CommandContext,
  prepare: () => Promise<PreparedTransfer>,
  onRefused?: (err: unknown) => void,
): Promise<Reply> {
  let pending: PendingDataChannel | undefined;
  let prepared: PreparedTransfer;
  try {
    pending = claimDataChannel(ctx);
    prepared = await prepare();
  } catch (err) {
    pending?.dispose();
    onRefused?.(err);
    throw err;
  }
  return runTransfer(ctx, pending, prepared.what, prepared.body);
}

/**
 * The 150 → 226/426/425 sequence shared by every transfer: connect, announce, (TLS), move the bytes with
 * backpressure, close gracefully, then the final reply. ABOR aborts the signal.
 */
async function runTransfer(
  ctx: CommandContext,
  pending: PendingDataChannel,
  what: { readonly label: string; readonly opening: string; readonly success: string },
  body: TransferBody,
): Promise<Reply> {
  const signal = ctx.beginTransfer();
  const started = performance.now();
  const direction = body.kind === 'upload' ? 'upload' : body.kind === 'file' ? 'download' : 'listing';
  let connection: DataConnection | undefined;
  let bytes = 0;
  // Only of a whole file: the SHA-256 of an appended or resumed part would describe no file.
  const hash = body.kind === 'upload' && body.target.startSize === 0 && ctx.config.events.webhook && ctx.config.events.uploadSha256
    ? createHash('sha256')
    : undefined;
  try {
    const announcedFirst = pending.replyBeforeConnect?.() ?? false;
    if (announcedFirst) ctx.sendPreliminary(reply(Code.FileStatusOk, what.opening));
    connection = await pending.connect(signal, body.kind === 'upload' ? 'upload' : 'download');
    // Belt and braces to PROT closing pending channels: the level is the one in force when the transfer starts.
    if (connection.protected !== (ctx.state.protectData || ctx.config.data.implicitTls)) {
      throw new FtpError(Code.CannotOpenDataConnection, 'Data connection was opened under another protection level; open a new one');
    }
    if (!announcedFirst) ctx.sendPreliminary(reply(Code.FileStatusOk, what.opening));
    const socket = await connection.ready();
    await move(body, socket, signal, (n) => (bytes += n), hash);
    await connection.finish();
    ctx.lingerUntil(connection.closed);
    recordTransfer(ctx, what.label, direction, bytes, started, connection.protected, 'ok', undefined, hash?.digest('hex'));
    return reply(Code.ClosingData, what.success);
  } catch (err) {
    connection?.destroy();
    if (body.kind === 'upload') await body.target.abort().catch(() => undefined);
    const result = signal.aborted ? 'aborted' : 'failed';
    recordTransfer(ctx, what.label, direction, bytes, started, connection?.protected ?? false, result, err);
    if (signal.aborted) return reply(Code.TransferAborted, 'Transfer aborted');
    if (err instanceof FtpError || err instanceof StorageError) throw err;
    if (err instanceof TlsTruncatedError) {
      return reply(Code.TransferAborted, 'Data connection ended without TLS close_notify; upload not stored');
    }
    return reply(Code.TransferAborted, 'Data connection closed; transfer aborted');
  } finally {
    pending.dispose();
    if (body.kind === 'file') {
      await body.file.close().catch((err: unknown) => ctx.log.warn({ err }, 'closing a downloaded file failed'));
    } else if (body.kind === 'listing') {
      await body.release().catch((err: unknown) => ctx.log.warn({ err }, 'closing a listed directory failed'));
    }
  }
}

/**
 * Moves the body's bytes over the data socket; `count` sees file bytes (before any ASCII conversion).
 * Rejects with a StorageError when the file or upload target failed, with anything else when the network did.
 */
async function move(body: TransferBody, socket: net.Socket, signal: AbortSignal, count: (bytes: number) => void, hash: Hash | undefined): Promise<void> {
  switch (body.kind) {
    case 'listing': {
      await copyFileToSocket(new LinesReader(body.lines), 0, socket, signal, count, LISTING_BUFFER);
      await endAndFlush(socket, signal);
      return;
    }
    case 'file': {
      if (!body.ascii) {
        await copyFileToSocket(body.file, body.start, socket, signal, count, bufferSizeFor(body.size - body.start));
        await endAndFlush(socket, signal);
        return;
      }
      const source = readerToStream(body.file, body.start);
      source.on('data', (chunk: Buffer) => count(chunk.length));
      await blamingStorage(source, socket, () => pipeline(source, toNetworkAscii(), socket, { signal }));
      return;
    }
    case 'upload': {
      const limit = body.maxBytes === undefined ? undefined : Math.max(0, body.maxBytes - body.target.startSize);
      await receiveUpload(socket, body.target, { signal, ascii: body.ascii, limit, onBytes: count, hash });
      await body.target.commit();
      return;
    }
  }
}

/** As pipeline() would: ends the socket and waits until everything, close_notify included, is written. */
async function endAndFlush(socket: Duplex, signal: AbortSignal): Promise<void> {
  socket.end();
  await finished(socket, { readable: false, signal });
}

/**
 * Runs a pipeline between a storage stream and the data socket. pipeline() destroys every stream with the
 * first error, so a reset data connection also makes the storage stream emit it: only a storage error that
 * came first is a storage failure (451/452), rejected as StorageError.
 */
async function blamingStorage(storage: Readable, socket: Duplex, run: () => Promise<void>): Promise<void> {
  let storageFailure: unknown;
  let networkFailed = false;
  storage.once('error', (err) => {
    if (!networkFailed) storageFailure ??= err;
  });
  socket.once('error', () => {
    if (storageFailure === undefined) networkFailed = true;
  });
  try {
    await run();
  } catch (err) {
    throw storageFailure === undefined ? err : mapFsError(storageFailure);
  }
}

/**
 * The transfer's log line, its metrics and its event. An upload's `ok` comes after commit() (the file is durable),
 * before its 226.
 */
function recordTransfer(
  ctx: CommandContext,
  path: string,
  direction: TransferDirection,
  bytes: number,
  started: number,
  protectedData: boolean,
  result: TransferResult,
  err?: unknown,
  sha256?: string,
): void {
  const seconds = (performance.now() - started) / 1000;
  ctx.metrics.transfer(direction, result, bytes, seconds);
  const entry = {
    direction,
    path,
    bytes,
    durationMs: Math.round(seconds * 1000),
    mbPerSecond: seconds > 0 ? Number((bytes / 1e6 / seconds).toFixed(1)) : 0,
    protection: protectedData ? 'tls' : 'clear',
    result,
    ...(err === undefined ? {} : { reason: err instanceof Error ? err.message : String(err) }),
  };
  if (result === 'ok') ctx.log.info(entry, 'transfer');
  else ctx.log.warn(entry, 'transfer');
  if (direction === 'listing') return;
  ctx.event({
    type: direction === 'download' ? 'download' : result === 'ok' ? 'upload' : 'upload_failed',
    path,
    bytes,
    durationMs: entry.durationMs,
    result,
    reason: err instanceof TlsTruncatedError ? 'truncated: no TLS close_notify' : entry.reason,
    sha256,
  });
}
