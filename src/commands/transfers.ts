import { formatListLine, formatMlsxFacts } from '../data/list-format.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply } from '../protocol/replies.js';
import type { FileStat } from '../storage/storage.js';
import { baseName, type VirtualPath } from '../storage/virtual-path.js';
import type { CommandContext } from './context.js';
import { requireWritable, resolvePath } from './paths.js';
import { defineCommand, type CommandSpec } from './registry.js';
import { transferWith } from './transfer.js';

const isAscii = (ctx: CommandContext) => ctx.state.transferType === 'A';
const modeName = (ctx: CommandContext) => (isAscii(ctx) ? 'ASCII' : 'BINARY');

/** Takes the REST offset: it applies to the next transfer only. */
function takeRestartOffset(ctx: CommandContext): number {
  const offset = ctx.state.restartOffset;
  ctx.state.restartOffset = 0;
  return offset;
}

export const retr = defineCommand({
  verb: 'RETR',
  access: 'authenticated',
  arg: 'required',
  help: 'RETR file: download',
  async handle(ctx, arg) {
    const start = takeRestartOffset(ctx);
    return transferWith(ctx, async () => {
      const path = resolvePath(ctx, arg);
      const stat = await ctx.storage().stat(path);
      if (stat.type !== 'file') throw new FtpError(Code.FileUnavailable, 'Not a regular file');
      if (start > stat.size) throw new FtpError(Code.InvalidRestart, 'Restart offset is beyond the end of the file');
      return {
        what: {
          label: path,
          opening: `Opening ${modeName(ctx)} mode data connection for ${baseName(path)} (${stat.size - start} bytes)`,
          success: 'Transfer complete',
        },
        body: { kind: 'file', file: await ctx.storage().openRead(path), start, size: stat.size, ascii: isAscii(ctx) },
      };
    });
  },
});

type UploadMode = 'STOR' | 'APPE' | 'STOU';

const uploadSpec = (verb: UploadMode, help: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: verb === 'STOU' ? 'optional' : 'required',
    help,
    async handle(ctx, arg) {
      const start = takeRestartOffset(ctx);
      const refused = (err: unknown) => refusedUpload(ctx, arg, err);
      try {
        requireWritable(ctx);
      } catch (err) {
        refused(err);
        throw err;
      }
      return transferWith(ctx, async () => {
        const { path, target } = await openUpload(ctx, verb, arg, start);
        const name = baseName(path);
        return {
          what: {
            label: path,
            // RFC 1123 §4.1.2.9: STOU announces the name it chose.
            opening: verb === 'STOU' ? `FILE: ${name}` : `Opening ${modeName(ctx)} mode data connection for ${name}`,
            success: verb === 'STOU' ? `Transfer complete (unique file name: ${name})` : 'Transfer complete',
          },
          body: { kind: 'upload', target, ascii: isAscii(ctx), maxBytes: ctx.config.storage.maxUploadBytes },
        };
      }, refused);
    },
  });

/** An upload refused before any byte moved (read-only account, no data channel, a path it may not write). */
function refusedUpload(ctx: CommandContext, arg: string | undefined, err: unknown): void {
  let path = arg;
  try {
    path = resolvePath(ctx, arg);
  } catch {
    // A path the resolver refuses is reported as the client gave it.
  }
  ctx.event({ type: 'upload_failed', path, result: 'refused', reason: err instanceof Error ? err.message : String(err) });
}

/**
 * The upload's target. REST before STOR resumes at that offset, before APPE it must not lie beyond the end; an
 * offset beyond the end of the file is refused (554) instead of making a sparse file of any apparent size.
 */
async function openUpload(ctx: CommandContext, verb: UploadMode, arg: string | undefined, start: number) {
  const storage = ctx.storage();
  if (verb === 'STOU') return storage.openUnique(ctx.state.cwd, arg ?? 'file');
  const path = resolvePath(ctx, arg);
  const target = await storage.openWrite(path, { mode: verb === 'APPE' ? 'append' : start > 0 ? 'resume' : 'replace', start });
  if (verb === 'APPE' && start > target.startSize) {
    await target.abort();
    throw new FtpError(Code.InvalidRestart, 'Restart offset is beyond the end of the file');
  }
  return { path, target };
}

/** "LIST -la dir": clients pass ls options we ignore; what follows is the path. */
function stripListOptions(arg: string | undefined): string | undefined {
  const rest = arg?.replace(/^(\s*-[a-zA-Z]+)+\s*/, '');
  return rest === '' ? undefined : rest;
}

type ListKind = 'LIST' | 'NLST' | 'MLSD';

function formatEntry(ctx: CommandContext, kind: ListKind, now: Date): (e: FileStat) => string {
  const writable = ctx.state.account?.writable ?? false;
  switch (kind) {
    case 'LIST':
      return (e) => formatListLine(e, now);
    case 'NLST':
      return (e) => e.name;
    case 'MLSD':
      return (e) => formatMlsxFacts(e, { writable, facts: ctx.state.mlstFacts });
  }
}

/**
 * The lines of a listing: a directory's entries, streamed from storage as they are read, or the file itself.
 * Errors about the path (550) come from here, before any reply; `release` frees the directory.
 */
async function listingOf(
  ctx: CommandContext,
  kind: ListKind,
  path: VirtualPath,
): Promise<{ lines: AsyncIterable<string>; release: () => Promise<void> }> {
  const format = formatEntry(ctx, kind, new Date());
  const stat = await ctx.storage().stat(path);
  if (stat.type !== 'dir') {
    if (kind === 'MLSD') throw new FtpError(Code.FileUnavailable, 'Not a directory');
    return { lines: single(format({ ...stat, name: baseName(path) })), release: async () => undefined };
  }
  const listing = await ctx.storage().list(path);
  return { lines: mapAsync(listing, format), release: () => listing.close() };
}

async function* single<T>(item: T): AsyncIterable<T> {
  yield item;
}

async function* mapAsync<T, R>(source: AsyncIterable<T>, fn: (item: T) => R): AsyncIterable<R> {
  for await (const item of source) yield fn(item);
}

const listSpec = (verb: ListKind, help: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'optional',
    help,
    async handle(ctx, arg) {
      return transferWith(ctx, async () => {
        const path = resolvePath(ctx, verb === 'MLSD' ? arg : stripListOptions(arg));
        return {
          what: { label: path, opening: 'Here comes the directory listing', success: 'Directory send OK' },
          body: { kind: 'listing', ...(await listingOf(ctx, verb, path)) },
        };
      });
    },
  });

export const rest = defineCommand({
  verb: 'REST',
  access: 'authenticated',
  arg: 'required',
  help: 'REST offset: restart the next RETR/STOR at this byte',
  feat: ['REST STREAM'],
  async handle(ctx, arg) {
    const text = arg!.trim();
    if (!/^\d{1,15}$/.test(text)) return reply(Code.ArgumentSyntaxError, 'REST needs a byte offset');
    ctx.state.restartOffset = Number(text);
    return reply(Code.FileActionPending, `Restarting at ${text}. Send STOR or RETR`);
  },
});

export const allo = defineCommand({
  verb: 'ALLO',
  access: 'authenticated',
  arg: 'required',
  help: 'ALLO bytes: is there room for an upload of this size?',
  async handle(ctx, arg) {
    // RFC 959: ALLO <size> [R <record size>]; only the size matters for a file system.
    const size = /^\s*(\d{1,18})(\s+R\s+\d+)?\s*$/i.exec(arg!)?.[1];
    if (size === undefined) return reply(Code.ArgumentSyntaxError, 'Usage: ALLO bytes');
    requireWritable(ctx);
    const bytes = Number(size);
    const max = ctx.config.storage.maxUploadBytes;
    if (max !== undefined && bytes > max) return reply(Code.ExceededStorage, `An upload may have at most ${max} bytes`);
    const free = await ctx.storage().freeSpace(ctx.state.cwd);
    if (free === undefined) return reply(Code.NotImplementedSuperfluous, 'ALLO not needed, space is not reserved');
    if (bytes > free) return reply(Code.InsufficientStorage, 'Insufficient storage space');
    return reply(Code.Ok, `${bytes} bytes fit (space is not reserved)`);
  },
});

export const abor = defineCommand({
  verb: 'ABOR',
  access: 'authenticated',
  arg: 'none',
  duringTransfer: true,
  help: 'ABOR: abort the running transfer',
  async handle(ctx) {
    const aborted = await ctx.abortTransfer();
    ctx.data.take()?.dispose();
    return aborted
      ? reply(Code.ClosingData, 'ABOR successful')
      : reply(Code.DataConnectionOpenNoTransfer, 'No transfer to abort');
  },
});

export const stat = defineCommand({
  verb: 'STAT',
  access: 'any',
  arg: 'optional',
  duringTransfer: true,
  help: 'STAT [path]: session status, or a listing over the control connection',
  async handle(ctx, arg) {
    // RFC 959: during a transfer STAT reports on the transfer; a listing then would let a client that never reads
    // stack up replies while its data connection is pending.
    if (arg === undefined || !ctx.state.account || ctx.transferInProgress) {
      return reply(Code.SystemStatus, 'ftps-gateway status:', ...ctx.statusLines().map((l) => ` ${l}`), 'End of status');
    }
    const path = resolvePath(ctx, stripListOptions(arg));
    const { lines, release } = await listingOf(ctx, 'LIST', path);
    return { code: Code.FileStatus, first: `Status of ${path}:`, lines: mapAsync(lines, (l) => ` ${l}`), last: 'End of status', release };
  },
});

export const transferCommands: readonly CommandSpec[] = [
  retr,
  uploadSpec('STOR', 'STOR file: upload (replaces atomically)'),
  uploadSpec('APPE', 'APPE file: append'),
  uploadSpec('STOU', 'STOU: upload under a unique name'),
  listSpec('LIST', 'LIST [path]: directory listing (ls -l form)'),
  listSpec('NLST', 'NLST [path]: names only'),
  listSpec('MLSD', 'MLSD [dir]: machine-readable listing'),
  rest,
  allo,
  abor,
  stat,
];
