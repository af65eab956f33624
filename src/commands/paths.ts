import { FtpError } from '../protocol/errors.js';
import { Code } from '../protocol/replies.js';
import { resolveVirtualPath, type VirtualPath } from '../storage/virtual-path.js';
import type { CommandContext } from './context.js';

/** The one way handlers turn a client's path argument into a path in the user's tree. */
export function resolvePath(ctx: CommandContext, arg: string | undefined): VirtualPath {
  return resolveVirtualPath(ctx.state.cwd, arg ?? '.');
}

export function requireWritable(ctx: CommandContext): void {
  if (!ctx.state.account?.writable) throw new FtpError(Code.FileUnavailable, 'Permission denied');
}

/** RFC 959 §7 quoting for 257 replies: the path in double quotes, embedded quotes doubled. */
export const quotePath = (p: string): string => `"${p.replaceAll('"', '""')}"`;
