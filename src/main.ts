#!/usr/bin/env node
import { checkConfig, hashPasswordFrom, healthcheck } from './cli.js';
import { ConfigError, type Config } from './config/config.js';
import { loadConfig } from './config/load.js';
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

function configOrExit(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    failOnConfig(err);
  }
}

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

const commands: Record<string, () => Promise<void>> = {
  serve,
  'check-config': async () => {
    process.stdout.write(`${await checkConfig(configOrExit()).catch(failOnConfig)}\n`);
  },
  healthcheck: async () => {
    const { healthy, message } = await healthcheck(configOrExit());
    process.stdout.write(`${message}\n`);
    process.exit(healthy ? 0 : 1);
  },
  'hash-password': async () => {
    // Typed at a terminal the password shows; a pipe (printf '%s' "$PASSWORD" | …) keeps it off the screen.
    if (process.stdin.isTTY) process.stderr.write('Password, then Enter and Ctrl-D: ');
    const result = await hashPasswordFrom(process.stdin);
    if (!result.ok) {
      process.stderr.write(`hash-password: ${result.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${result.hash}\n`);
  },
};

const name = process.argv[2] ?? 'serve';
const command = commands[name];
if (!command) {
  process.stderr.write(`Unknown command "${name}". Commands: ${Object.keys(commands).join(', ')}\n`);
  process.exit(2);
}
await command();
