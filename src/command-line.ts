import { readFileSync } from 'node:fs';
import { variablesHelp } from './config/docs.js';

/** The program's name in usage lines: what the image's ENTRYPOINT and package.json's `bin` run. */
const PROGRAM = 'ftps-gateway';
const DEFAULT_COMMAND = 'serve';

/** A sub-command as `--help` describes it. */
export interface CommandHelp {
  /** One line: what it does, for the command list. */
  readonly summary: string;
  /** More about it, for its own `--help`. */
  readonly details: string;
  /** Whether it reads the configuration (then its help points at the variables). */
  readonly configured: boolean;
}

export type CommandLine =
  | { readonly action: 'run'; readonly command: string }
  | { readonly action: 'help'; readonly command: string | undefined }
  | { readonly action: 'version' }
  | { readonly action: 'usage-error'; readonly message: string };

/**
 * `[command] [--help|-h] [--version|-V]`, nothing else: no command means serve. `--help` wins over
 * `--version`. Anything unknown is a usage error naming it, so that a typo never starts a server.
 */
export function parseCommandLine(args: readonly string[], commands: readonly string[]): CommandLine {
  const [first, ...rest] = args;
  const named = first !== undefined && !first.startsWith('-');
  const command = named ? first : undefined;
  if (command !== undefined && !commands.includes(command)) {
    return { action: 'usage-error', message: `${PROGRAM}: unknown command ${JSON.stringify(command)} (see ${PROGRAM} --help)` };
  }
  const options = named ? rest : args;
  const unknown = options.find((o) => !['--help', '-h', '--version', '-V'].includes(o));
  if (unknown !== undefined) {
    const help = command === undefined ? `${PROGRAM} --help` : `${PROGRAM} ${command} --help`;
    return { action: 'usage-error', message: `${PROGRAM}: unknown argument ${JSON.stringify(unknown)} (see ${help})` };
  }
  if (options.some((o) => o === '--help' || o === '-h')) return { action: 'help', command };
  if (options.some((o) => o === '--version' || o === '-V')) return { action: 'version' };
  return { action: 'run', command: command ?? DEFAULT_COMMAND };
}

/** `ftps-gateway 1.2.3`, from the package.json beside dist/ (and src/): the image copies it to /app. */
export function versionText(): string {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `${PROGRAM} ${version}`;
}

/** The whole program's help (command undefined) or one command's. */
export function helpText(commands: Readonly<Record<string, CommandHelp>>, command: string | undefined): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const variables = [
    'Environment variables and their defaults (any X may be given as X_FILE, a file holding the value, and',
    'a .env file in the working directory is read too). README.md explains each; `check-config` prints the',
    'values in effect.',
    '',
    variablesHelp(),
  ];
  if (command === undefined) {
    return [
      `Usage: ${PROGRAM} [command] [--help] [--version]`,
      '',
      'Commands:',
      ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
      '',
      `Without a command: ${DEFAULT_COMMAND}. \`${PROGRAM} <command> --help\` describes one command.`,
      '',
      ...variables,
    ].join('\n');
  }
  const { summary, details, configured } = commands[command]!;
  return [
    `Usage: ${PROGRAM} ${command} [--help] [--version]`,
    '',
    `${summary[0]!.toUpperCase()}${summary.slice(1)}.`,
    ...(details === '' ? [] : ['', details]),
    ...(configured && command !== DEFAULT_COMMAND ? ['', `Configured like the server: see \`${PROGRAM} --help\`.`] : []),
    ...(command === DEFAULT_COMMAND ? ['', ...variables] : []),
  ].join('\n');
}
