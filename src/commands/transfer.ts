import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fromNetworkAscii, toNetworkAscii } from '../data/ascii.js';
import type { DataConnection, PendingDataChannel } from '../data/data-channel.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply, type Reply } from '../protocol/replies.js';
import { mapFsError, StorageError, type UploadTarget } from '../storage/storage.js';
import type { CommandContext } from './context.js';

export type TransferBody =
  | { readonly direction: 'download'; readonly source: Readable; readonly ascii: boolean }
  | { readonly direction: 'upload'; readonly target: UploadTarget; readonly ascii: boolean };

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
export async function transferWith(ctx: CommandContext, prepare: () => Promise<PreparedTransfer>): Promise<Reply> {
  const pending = claimDataChannel(ctx);
  let prepared: PreparedTransfer;
  try {
    prepared = await prepare();
  } catch (err) {
    pending.dispose();
    throw err;
  }
  return runTransfer(ctx, pending, prepared.what, prepared.body);
}

/**
 * The 150 → 226/426/425 sequence shared by every transfer: connect, announce, (TLS), stream with
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
  let connection: DataConnection | undefined;
  let bytes = 0;
  let storageFailure: unknown;
  // pipeline() destroys every stream with the first error, so a reset data connection also makes the
  // storage stream emit it: only a storage error that came first is a storage failure (451/452), else 426.
  let networkFailed = false;
  const storageStream = body.direction === 'download' ? body.source : body.target.stream;
  storageStream.once('error', (err) => {
    if (!networkFailed) storageFailure ??= err;
  });
  try {
    connection = await pending.connect(signal);
    ctx.sendPreliminary(reply(Code.FileStatusOk, what.opening));
    const socket = await connection.ready();
    socket.once('error', () => {
      if (storageFailure === undefined) networkFailed = true;
    });
    if (body.direction === 'download') {
      body.source.on('data', (chunk: Buffer) => (bytes += chunk.length));
      await (body.ascii
        ? pipeline(body.source, toNetworkAscii(), socket, { signal })
        : pipeline(body.source, socket, { signal }));
    } else {
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      await (body.ascii
        ? pipeline(socket, fromNetworkAscii(), body.target.stream, { signal })
        : pipeline(socket, body.target.stream, { signal }));
      await body.target.commit();
    }
    await connection.finish();
    logTransfer(ctx, what.label, body.direction, bytes, started, connection.protected, 'ok');
    return reply(Code.ClosingData, what.success);
  } catch (err) {
    connection?.destroy();
    if (body.direction === 'download') body.source.destroy();
    else await body.target.abort().catch(() => undefined);
    const result = signal.aborted ? 'aborted' : 'failed';
    logTransfer(ctx, what.label, body.direction, bytes, started, connection?.protected ?? false, result, err);
    if (signal.aborted) return reply(Code.TransferAborted, 'Transfer aborted');
    if (storageFailure !== undefined) throw storageFailure instanceof StorageError ? storageFailure : mapFsError(storageFailure);
    if (err instanceof FtpError || err instanceof StorageError) throw err;
    return reply(Code.TransferAborted, 'Data connection closed; transfer aborted');
  } finally {
    pending.dispose();
  }
}

function logTransfer(
  ctx: CommandContext,
  path: string,
  direction: 'download' | 'upload',
  bytes: number,
  started: number,
  protectedData: boolean,
  result: 'ok' | 'aborted' | 'failed',
  err?: unknown,
): void {
  const seconds = (performance.now() - started) / 1000;
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
}
