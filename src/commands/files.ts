import { formatMdtm, formatMlsxFacts, parseMfmtTime } from '../data/list-format.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply } from '../protocol/replies.js';
import { baseName } from '../storage/virtual-path.js';
import type { CommandContext } from './context.js';
import { quotePath, requireWritable, resolvePath } from './paths.js';
import { defineCommand, type CommandSpec } from './registry.js';

export const dele = defineCommand({
  verb: 'DELE',
  access: 'authenticated',
  arg: 'required',
  help: 'DELE file: delete a file',
  async handle(ctx, arg) {
    requireWritable(ctx);
    const file = resolvePath(ctx, arg);
    await ctx.storage().remove(file, 'file');
    ctx.event({ type: 'delete', path: file, result: 'ok' });
    return reply(Code.FileActionOk, 'File deleted');
  },
});

const mkdSpec = (verb: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'required',
    help: `${verb} dir: make a directory`,
    async handle(ctx, arg) {
      requireWritable(ctx);
      const dir = resolvePath(ctx, arg);
      await ctx.storage().mkdir(dir);
      ctx.event({ type: 'mkdir', path: dir, result: 'ok' });
      return reply(Code.PathCreated, `${quotePath(dir)} created`);
    },
  });

const rmdSpec = (verb: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'required',
    help: `${verb} dir: remove an empty directory`,
    async handle(ctx, arg) {
      requireWritable(ctx);
      const dir = resolvePath(ctx, arg);
      await ctx.storage().remove(dir, 'dir');
      ctx.event({ type: 'rmdir', path: dir, result: 'ok' });
      return reply(Code.FileActionOk, 'Directory removed');
    },
  });

export const rnfr = defineCommand({
  verb: 'RNFR',
  access: 'authenticated',
  arg: 'required',
  help: 'RNFR path: rename from',
  async handle(ctx, arg) {
    requireWritable(ctx);
    const from = resolvePath(ctx, arg);
    await ctx.storage().stat(from);
    ctx.state.renameFrom = from;
    return reply(Code.FileActionPending, 'Ready for RNTO');
  },
});

export const rnto = defineCommand({
  verb: 'RNTO',
  access: 'authenticated',
  arg: 'required',
  help: 'RNTO path: rename to',
  async handle(ctx, arg) {
    const from = ctx.state.renameFrom;
    ctx.state.renameFrom = undefined;
    if (from === undefined) return reply(Code.BadSequence, 'Send RNFR first');
    requireWritable(ctx);
    const to = resolvePath(ctx, arg);
    await ctx.storage().rename(from, to);
    ctx.event({ type: 'rename', path: from, newPath: to, result: 'ok' });
    return reply(Code.FileActionOk, 'Rename successful');
  },
});

async function regularFile(ctx: CommandContext, arg: string | undefined) {
  const stat = await ctx.storage().stat(resolvePath(ctx, arg));
  if (stat.type !== 'file') throw new FtpError(Code.FileUnavailable, 'Not a regular file');
  return stat;
}

export const size = defineCommand({
  verb: 'SIZE',
  access: 'authenticated',
  arg: 'required',
  help: 'SIZE file: size in bytes',
  feat: ['SIZE'],
  async handle(ctx, arg) {
    return reply(Code.FileStatus, String((await regularFile(ctx, arg)).size));
  },
});

export const mdtm = defineCommand({
  verb: 'MDTM',
  access: 'authenticated',
  arg: 'required',
  help: 'MDTM file: modification time (UTC)',
  feat: ['MDTM'],
  async handle(ctx, arg) {
    return reply(Code.FileStatus, formatMdtm((await regularFile(ctx, arg)).mtime));
  },
});

export const mfmt = defineCommand({
  verb: 'MFMT',
  access: 'authenticated',
  arg: 'required',
  help: 'MFMT YYYYMMDDHHMMSS file: set modification time',
  feat: ['MFMT'],
  async handle(ctx, arg) {
    const match = /^(\S+) (.+)$/.exec(arg!);
    const time = match ? parseMfmtTime(match[1]!) : undefined;
    if (!match || !time) return reply(Code.ArgumentSyntaxError, 'Usage: MFMT YYYYMMDDHHMMSS path');
    requireWritable(ctx);
    const target = resolvePath(ctx, match[2]);
    await ctx.storage().setModifiedTime(target, time);
    return reply(Code.FileStatus, `Modify=${formatMdtm(time)}; ${baseName(target)}`);
  },
});

export const mlst = defineCommand({
  verb: 'MLST',
  access: 'authenticated',
  arg: 'optional',
  help: 'MLST [path]: facts about one file',
  feat: (): readonly string[] => [`MLST type*;size*;modify*;perm*;unix.mode*;`],
  async handle(ctx, arg) {
    const target = resolvePath(ctx, arg);
    const stat = await ctx.storage().stat(target);
    const facts = formatMlsxFacts(
      { ...stat, name: target },
      { writable: ctx.state.account?.writable ?? false, facts: ctx.state.mlstFacts },
    );
    return reply(Code.FileActionOk, `Listing ${target}`, ` ${facts}`, 'End');
  },
});

export const fileCommands: readonly CommandSpec[] = [
  dele,
  mkdSpec('MKD'),
  mkdSpec('XMKD'),
  rmdSpec('RMD'),
  rmdSpec('XRMD'),
  rnfr,
  rnto,
  size,
  mdtm,
  mfmt,
  mlst,
];
