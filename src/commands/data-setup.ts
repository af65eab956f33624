import net from 'node:net';
import { isIPv6, sameHost } from '../net/peer-address.js';
import { FtpError } from '../protocol/errors.js';
import { Code, reply } from '../protocol/replies.js';
import type { CommandContext, Endpoint } from './context.js';
import { defineCommand, type CommandSpec } from './registry.js';

const epsvAllInEffect = () => new FtpError(Code.BadSequence, 'EPSV ALL is in effect, use EPSV');

export const pasv = defineCommand({
  verb: 'PASV',
  access: 'authenticated',
  arg: 'none',
  help: 'PASV: passive data connection (IPv4)',
  async handle(ctx) {
    if (ctx.state.epsvAll) throw epsvAllInEffect();
    const { address, port } = await ctx.data.passive();
    if (!net.isIPv4(address)) {
      ctx.data.take()?.dispose();
      return reply(Code.CannotOpenDataConnection, 'PASV needs an IPv4 address, use EPSV');
    }
    const h = address.replaceAll('.', ',');
    return reply(Code.EnteringPassive, `Entering Passive Mode (${h},${port >> 8},${port & 0xff}).`);
  },
});

export const epsv = defineCommand({
  verb: 'EPSV',
  access: 'authenticated',
  arg: 'optional',
  help: 'EPSV [ALL|1|2]: extended passive data connection',
  feat: ['EPSV'],
  async handle(ctx, arg) {
    const option = arg?.trim().toUpperCase();
    if (option === 'ALL') {
      ctx.state.epsvAll = true;
      return reply(Code.Ok, 'EPSV ALL ok');
    }
    // The data connection uses the control connection's address family.
    const family = isIPv6(ctx.local.address) ? '2' : '1';
    if (option !== undefined && option !== family) {
      return reply(Code.NetworkProtocolNotSupported, `Network protocol not supported, use (${family})`);
    }
    const { port } = await ctx.data.passive();
    return reply(Code.EnteringExtendedPassive, `Entering Extended Passive Mode (|||${port}|)`);
  },
});

/** The anti-bounce rule: connect back only to the client itself, and never to a privileged port. */
function checkActiveTarget(ctx: CommandContext, target: Endpoint): void {
  if (!sameHost(target.address, ctx.peer.address)) {
    ctx.log.warn({ target: target.address }, 'refused active data connection to a foreign address');
    throw new FtpError(Code.ParameterNotImplemented, 'Data connections to another address than yours are refused');
  }
  if (target.port < 1024) throw new FtpError(Code.ParameterNotImplemented, 'Data connections to privileged ports are refused');
}

function parsePortArgument(arg: string): Endpoint | undefined {
  const parts = arg.trim().split(',');
  if (parts.length !== 6 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  const n = parts.map(Number);
  return { address: n.slice(0, 4).join('.'), port: n[4]! * 256 + n[5]! };
}

/** RFC 2428: EPRT |af|address|port| with any printable delimiter. */
export function parseEprtArgument(arg: string): Endpoint | 'unsupported-family' | undefined {
  const d = arg[0];
  if (d === undefined || !/^[!-~]$/.test(d)) return undefined;
  const fields = arg.split(d);
  if (fields.length !== 5 || fields[0] !== '' || fields[4] !== '') return undefined;
  const [, af, address = '', port = ''] = fields;
  if (af !== '1' && af !== '2') return 'unsupported-family';
  const validAddress = af === '1' ? net.isIPv4(address) : net.isIPv6(address);
  if (!validAddress || !/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return undefined;
  return { address, port: Number(port) };
}

const activeEnabled = (config: { data: { activeMode: boolean } }) => config.data.activeMode;

export const port = defineCommand({
  verb: 'PORT',
  access: 'authenticated',
  arg: 'required',
  help: 'PORT h1,h2,h3,h4,p1,p2: active data connection',
  enabled: activeEnabled,
  async handle(ctx, arg) {
    if (ctx.state.epsvAll) throw epsvAllInEffect();
    const target = parsePortArgument(arg!);
    if (!target || target.port === 0) return reply(Code.ArgumentSyntaxError, 'Usage: PORT h1,h2,h3,h4,p1,p2');
    checkActiveTarget(ctx, target);
    ctx.data.active(target);
    return reply(Code.Ok, 'PORT command successful');
  },
});

export const eprt = defineCommand({
  verb: 'EPRT',
  access: 'authenticated',
  arg: 'required',
  help: 'EPRT |af|address|port|: extended active data connection',
  feat: (config) => (config.data.activeMode ? ['EPRT'] : []),
  enabled: activeEnabled,
  async handle(ctx, arg) {
    if (ctx.state.epsvAll) throw epsvAllInEffect();
    const target = parseEprtArgument(arg!.trim());
    if (target === 'unsupported-family') return reply(Code.NetworkProtocolNotSupported, 'Network protocol not supported, use (1,2)');
    if (!target) return reply(Code.ArgumentSyntaxError, 'Usage: EPRT |1|address|port| or |2|address|port|');
    checkActiveTarget(ctx, target);
    ctx.data.active(target);
    return reply(Code.Ok, 'EPRT command successful');
  },
});

export const dataSetupCommands: readonly CommandSpec[] = [pasv, epsv, port, eprt];
