#!/usr/bin/env node
import { checkConfig, hashPasswordFrom, healthcheck } from './cli.js';
import { helpText, parseCommandLine, versionText, type CommandHelp } from './command-line.js';
import { ConfigError, type Config } from './config/config.js';
import { loadConfig, loadVariables } from './config/load.js';
import { createLogger } from './observability/logger.js';
import { createServer } from './server/create-server.js';

/** Configuration problems: one line each, no stack trace, exit code 1. */
function failOnConfig(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`Invalid configuration:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
    process.exit(1);
  }
  throw err;
}

function orExit<T>(load: (env: NodeJS.ProcessEnv) => T): T {
  try {
    return load(process.env);
  } catch (err) {
    failOnConfig(err);
  }
}

const configOrExit = (): Config => orExit(loadConfig);

async function serve(): Promise<void> {
  const config = configOrExit();
  const log = createLogger(config);
  const server = await createServer(config, log, (line) => process.stdout.write(`${line}\n`)).catch(failOnConfig);
  await server.listen().catch((err: NodeJS.ErrnoException) => {
    // The message names the address and port: FTPS_PORT's or HTTP_PORT's.
    log.fatal({ code: err.code }, `cannot listen (${err.message})`);
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    void server.stop(config.limits.shutdownGraceSeconds * 1000).then(() => {
      log.info('stopped');
      log.flush();
      process.exit(0);
    });
  };
  // PID 1 in a container gets no default signal handling: without these, docker stop would wait 10 s.
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Without a handler SIGHUP would end the process; here it re-reads the certificates and the users file.
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading certificates and users');
    void server.reload();
  });
}

interface Command extends CommandHelp {
  run(): Promise<void>;
}

const commands: Record<string, Command> = {
  serve: {
    summary: 'run the FTPS server',
    details: 'SIGTERM/SIGINT stop it gracefully (SHUTDOWN_GRACE_SECONDS); SIGHUP re-reads the certificates and the users file.',
    configured: true,
    run: serve,
  },
  'check-config': {
    summary: 'print the configuration in effect, secrets redacted, after the checks a start makes',
    details: 'Exit code 1 and one line per problem when the configuration is invalid or a file cannot be used.',
    configured: true,
    run: async () => {
      const config = configOrExit();
      process.stdout.write(`${await checkConfig(config, orExit(loadVariables)).catch(failOnConfig)}\n`);
    },
  },
  healthcheck: {
    summary: "ask the running server whether it is ready (the image's HEALTHCHECK)",
    details: 'GET /readyz on HTTP_PORT, or the 220 greeting of the control port when HTTP_PORT=0. Exit code 0 when healthy, 1 otherwise.',
    configured: true,
    run: async () => {
      const { healthy, message } = await healthcheck(configOrExit());
      process.stdout.write(`${message}\n`);
      process.exit(healthy ? 0 : 1);
    },
  },
  'hash-password': {
    summary: 'print the scrypt hash of the password read from standard input, for FTP_USERS_FILE',
    details: "The password is never an argument (ps would show it): printf '%s' \"$PASSWORD\" | ftps-gateway hash-password",
    configured: false,
    run: async () => {
      // Typed at a terminal the password shows; a pipe (printf '%s' "$PASSWORD" | …) keeps it off the screen.
      if (process.stdin.isTTY) process.stderr.write('Password, then Enter and Ctrl-D: ');
      const result = await hashPasswordFrom(process.stdin);
      if (!result.ok) {
        process.stderr.write(`hash-password: ${result.message}\n`);
        process.exit(1);
      }
      process.stdout.write(`${result.hash}\n`);
    },
  },
};

const commandLine = parseCommandLine(process.argv.slice(2), Object.keys(commands));
switch (commandLine.action) {
  case 'usage-error':
    process.stderr.write(`${commandLine.message}\n`);
    process.exit(2);
    break;
  case 'help':
    process.stdout.write(`${helpText(commands, commandLine.command)}\n`);
    break;
  case 'version':
    process.stdout.write(`${versionText()}\n`);
    break;
  case 'run':
    await commands[commandLine.command]!.run();
}
