import { setTimeout as sleep } from 'node:timers/promises';
import { FtpError } from '../protocol/errors.js';
import { Code, reply, type Reply } from '../protocol/replies.js';
import type { CommandContext } from './context.js';
import { defineCommand, type CommandSpec } from './registry.js';

/** Delay before answering a failed login: slows guessing, same for unknown user and wrong password. */
export const LOGIN_FAILURE_DELAY_MS = 1000;

const tlsRequired = (ctx: CommandContext): boolean => ctx.config.ftps.requireTls && !ctx.controlSecure;

/** A command whose answer never varies (an argument, where allowed, is ignored). */
const fixedReply = (spec: Pick<CommandSpec, 'verb' | 'access' | 'arg' | 'help'>, answer: Reply) =>
  defineCommand({ ...spec, handle: async () => answer });

export const auth = defineCommand({
  verb: 'AUTH',
  access: 'any',
  arg: 'required',
  help: 'AUTH TLS|SSL: upgrade the control connection to TLS',
  feat: (config) => (config.ftps.implicit ? [] : ['AUTH TLS', 'AUTH SSL']),
  async handle(ctx, arg) {
    const mechanism = arg!.trim().toUpperCase();
    if (ctx.controlSecure) return reply(Code.BadSequence, 'TLS is already active');
    // RFC 4217 names TLS; SSL and TLS-C/TLS-P are the same request from older clients.
    if (!['TLS', 'SSL', 'TLS-C', 'TLS-P'].includes(mechanism)) {
      return reply(Code.ParameterNotImplemented, 'Unsupported security mechanism; use AUTH TLS');
    }
    ctx.upgradeToTlsAfterReply();
    return reply(Code.SecurityExchangeOk, `AUTH ${mechanism} successful`);
  },
});

/**
 * A data connection set up under the other protection level is closed: a passive connection opened in clear text
 * before PROT P must not carry the next transfer in clear text after it.
 */
function setProtection(ctx: CommandContext, protect: boolean): void {
  if (ctx.state.protectData !== protect) ctx.data.take()?.dispose();
  ctx.state.protectData = protect;
}

export const pbsz = defineCommand({
  verb: 'PBSZ',
  access: 'any',
  arg: 'required',
  help: 'PBSZ 0: protection buffer size (always 0 for TLS)',
  feat: ['PBSZ'],
  async handle(ctx, arg) {
    if (!ctx.controlSecure) return reply(Code.BadSequence, 'PBSZ needs a TLS control connection (AUTH TLS first)');
    if (!/^\d+$/.test(arg!.trim())) return reply(Code.ArgumentSyntaxError, 'PBSZ needs a number');
    ctx.state.pbszDone = true;
    return reply(Code.Ok, 'PBSZ=0');
  },
});

export const prot = defineCommand({
  verb: 'PROT',
  access: 'any',
  arg: 'required',
  help: 'PROT P|C: protect data connections (P) or not (C)',
  feat: ['PROT'],
  async handle(ctx, arg) {
    if (!ctx.controlSecure) return reply(Code.BadSequence, 'PROT needs a TLS control connection (AUTH TLS first)');
    const level = arg!.trim().toUpperCase();
    if (level === 'P') {
      setProtection(ctx, true);
      return reply(Code.Ok, 'Data connections will be protected');
    }
    if (level === 'C') {
      if (ctx.config.ftps.requireProtP && !ctx.config.data.implicitTls) {
        return reply(Code.ProtLevelNotSupported, 'PROT C refused: data connections must be protected');
      }
      setProtection(ctx, false);
      return reply(Code.Ok, 'Data connections will not be protected');
    }
    if (level === 'S' || level === 'E') return reply(Code.ProtLevelNotSupported, `PROT ${level} is not supported`);
    return reply(Code.ParameterNotImplemented, 'Unknown protection level');
  },
});

export const ccc = fixedReply(
  { verb: 'CCC', access: 'any', arg: 'none', help: 'CCC: refused, the control connection stays protected' },
  reply(Code.PolicyRequiresTls, 'CCC refused: the control connection stays protected'),
);

export const user = defineCommand({
  verb: 'USER',
  access: 'any',
  arg: 'required',
  help: 'USER name: start a login',
  async handle(ctx, arg) {
    if (ctx.state.account) return reply(Code.BadSequence, 'Already logged in');
    if (tlsRequired(ctx)) {
      return reply(Code.NotLoggedIn, 'TLS required: send AUTH TLS before logging in (or use implicit FTPS)');
    }
    ctx.state.pendingUser = arg!;
    return reply(Code.NeedPassword, 'Password required');
  },
});

export const pass = defineCommand({
  verb: 'PASS',
  access: 'any',
  arg: 'optional',
  help: 'PASS password: finish a login',
  async handle(ctx, _arg, raw) {
    if (ctx.state.account) return reply(Code.NotImplementedSuperfluous, 'Already logged in');
    if (tlsRequired(ctx)) {
      return reply(Code.NotLoggedIn, 'TLS required: send AUTH TLS before logging in (or use implicit FTPS)');
    }
    const name = ctx.state.pendingUser;
    if (name === undefined) return reply(Code.BadSequence, 'Send USER first');
    ctx.state.pendingUser = undefined;
    const result = await ctx.authenticate(name, raw ?? Buffer.alloc(0));
    if (result.ok) {
      await ctx.login(result.account);
      ctx.log.info('login');
      ctx.event({ type: 'login', result: 'ok' });
      return reply(Code.LoggedIn, 'Login successful');
    }
    ctx.state.loginFailures++;
    ctx.log.warn({ user: name, failures: ctx.state.loginFailures, reason: result.reason }, 'login failed');
    ctx.event({ type: 'login_failed', user: name, result: 'refused', reason: result.reason });
    await sleep(LOGIN_FAILURE_DELAY_MS);
    if (ctx.state.loginFailures >= ctx.config.auth.loginMaxAttempts) {
      throw new FtpError(Code.NotLoggedIn, 'Login incorrect; too many failures, closing connection', {
        closeSession: true,
      });
    }
    return reply(Code.NotLoggedIn, 'Login incorrect');
  },
});

export const quit = defineCommand({
  verb: 'QUIT',
  access: 'any',
  arg: 'none',
  help: 'QUIT: close the connection',
  async handle(ctx) {
    ctx.closeAfterReply();
    return reply(Code.ClosingControl, 'Goodbye');
  },
});

export const noop = fixedReply({ verb: 'NOOP', access: 'any', arg: 'none', help: 'NOOP: do nothing' }, reply(Code.Ok, 'NOOP ok'));

export const syst = fixedReply({ verb: 'SYST', access: 'any', arg: 'none', help: 'SYST: system type' }, reply(Code.SystemType, 'UNIX Type: L8'));

export const feat = defineCommand({
  verb: 'FEAT',
  access: 'any',
  arg: 'none',
  help: 'FEAT: list extensions',
  async handle(ctx) {
    const lines = ctx.catalog.featureLines().map((l) => (l.startsWith('MLST ') ? markSelectedFacts(l, ctx.state.mlstFacts) : l));
    return reply(Code.SystemStatus, 'Features:', ...lines.map((l) => ` ${l}`), 'End');
  },
});

/** RFC 3659 §7.8: in the MLST feature line, '*' marks the facts currently selected (OPTS MLST changes them). */
function markSelectedFacts(line: string, selected: readonly string[]): string {
  return line.replace(/([^ ;*]+)\*?;/g, (_all, fact: string) => (selected.includes(fact.toLowerCase()) ? `${fact}*;` : `${fact};`));
}

export const opts = defineCommand({
  verb: 'OPTS',
  access: 'any',
  arg: 'required',
  help: 'OPTS UTF8 ON | OPTS MLST facts',
  feat: ['UTF8'],
  async handle(ctx, arg) {
    const [option = '', ...rest] = arg!.trim().split(/\s+/);
    const value = rest.join(' ');
    switch (option.toUpperCase()) {
      case 'UTF8':
      case 'UTF-8':
        // Paths are always UTF-8 here; OFF cannot be honoured.
        return value.toUpperCase() === 'OFF'
          ? reply(Code.ParameterNotImplemented, 'UTF8 cannot be turned off')
          : reply(Code.Ok, 'UTF8 mode always enabled');
      case 'MLST': {
        const known = ['type', 'size', 'modify', 'perm', 'unix.mode'];
        const wanted = value.split(';').filter((f) => known.includes(f.toLowerCase()));
        ctx.state.mlstFacts = wanted.map((f) => f.toLowerCase());
        return reply(Code.Ok, `MLST OPTS ${wanted.map((f) => `${f};`).join('')}`);
      }
      default:
        return reply(Code.ArgumentSyntaxError, 'Unknown option');
    }
  },
});

export const help = defineCommand({
  verb: 'HELP',
  access: 'any',
  arg: 'optional',
  help: 'HELP [command]: this text',
  async handle(ctx) {
    const verbs = ctx.catalog.verbs();
    const rows: string[] = [];
    for (let i = 0; i < verbs.length; i += 8) rows.push(` ${verbs.slice(i, i + 8).join(' ')}`);
    return reply(Code.HelpMessage, 'The following commands are recognized:', ...rows, 'Help OK');
  },
});

export const host = defineCommand({
  verb: 'HOST',
  access: 'any',
  arg: 'required',
  help: 'HOST name: virtual host (RFC 7151); one host is served',
  feat: ['HOST'],
  async handle(ctx) {
    // RFC 7151: HOST comes before login. One host is served, so every name is accepted.
    if (ctx.state.account) return reply(Code.BadSequence, 'HOST must come before login');
    return reply(Code.ServiceReady, ctx.config.ftps.banner);
  },
});

export const type = defineCommand({
  verb: 'TYPE',
  access: 'authenticated',
  arg: 'required',
  help: 'TYPE A|I: transfer type',
  async handle(ctx, arg) {
    const [t = '', form] = arg!.trim().toUpperCase().split(/\s+/);
    if (t === 'I' || (t === 'L' && form === '8')) {
      ctx.state.transferType = 'I';
      return reply(Code.Ok, 'Switching to Binary mode');
    }
    if (t === 'A' && (form === undefined || form === 'N')) {
      ctx.state.transferType = 'A';
      return reply(Code.Ok, 'Switching to ASCII mode');
    }
    return reply(Code.ParameterNotImplemented, 'Only TYPE A and TYPE I are supported');
  },
});

/** MODE and STRU: RFC 959 parameters of which only the stream/file values make sense today. */
const onlyValue = (verb: string, value: string, meaning: string) =>
  defineCommand({
    verb,
    access: 'authenticated',
    arg: 'required',
    help: `${verb} ${value}: ${meaning} only`,
    async handle(_ctx, arg) {
      return arg!.trim().toUpperCase() === value
        ? reply(Code.Ok, `${verb} set to ${value}`)
        : reply(Code.ParameterNotImplemented, `Only ${verb} ${value} is supported`);
    },
  });

export const mode = onlyValue('MODE', 'S', 'stream mode');
export const stru = onlyValue('STRU', 'F', 'file structure');

