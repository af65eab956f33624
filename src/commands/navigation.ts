import { FtpError } from '../protocol/errors.js';
import { Code, reply } from '../protocol/replies.js';
import { parentOf } from '../storage/virtual-path.js';
import type { CommandContext } from './context.js';
import { quotePath, resolvePath } from './paths.js';
import { defineCommand, type CommandSpec } from './registry.js';

async function changeDirectory(ctx: CommandContext, arg: string | undefined) {
  const target = resolvePath(ctx, arg);
  const stat = await ctx.storage().stat(target);
  if (stat.type !== 'dir') throw new FtpError(Code.FileUnavailable, 'Not a directory');
  ctx.state.cwd = target;
  return reply(Code.FileActionOk, `Directory changed to ${quotePath(target)}`);
}

const pwdSpec = (verb: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'none',
    help: `${verb}: print working directory`,
    async handle(ctx) {
      return reply(Code.PathCreated, `${quotePath(ctx.state.cwd)} is the current directory`);
    },
  });

const cwdSpec = (verb: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'required',
    help: `${verb} path: change working directory`,
    handle: changeDirectory,
  });

const cdupSpec = (verb: string): CommandSpec =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'none',
    help: `${verb}: change to the parent directory`,
    handle: (ctx) => changeDirectory(ctx, parentOf(ctx.state.cwd)),
  });

export const navigationCommands: readonly CommandSpec[] = [
  pwdSpec('PWD'),
  pwdSpec('XPWD'),
  cwdSpec('CWD'),
  cwdSpec('XCWD'),
  cdupSpec('CDUP'),
  cdupSpec('XCUP'),
];
