#!/usr/bin/env node
import { ConfigError } from './config/config.js';
import { describeConfig } from './config/describe.js';
import { loadConfig } from './config/load.js';
import { createLogger } from './observability/logger.js';
import { createServer } from './server/create-server.js';

/** Running transfers may finish this long after SIGTERM/SIGINT. */
const SHUTDOWN_GRACE_MS = 30_000;

/** Configuration problems: one line each, no stack trace, exit code 1. */
function failOnConfig(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`Invalid configuration:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
    process.exit(1);
  }
  throw err;
}

async function checkConfig(): Promise<void> {
  try {
    process.stdout.write(`${describeConfig(loadConfig(process.env))}\n`);
  } catch (err) {
    failOnConfig(err);
  }
}

async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    failOnConfig(err);
  }
  const log = createLogger(config);
  const server = await createServer(config, log).catch(failOnConfig);
  await server.listen().catch((err: NodeJS.ErrnoException) => {
    log.fatal({ code: err.code }, `cannot listen on port ${config.ftps.port}`);
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    void server.stop(SHUTDOWN_GRACE_MS).then(() => {
      log.info('stopped');
      log.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const commands: Record<string, () => Promise<void>> = { serve, 'check-config': checkConfig };
const name = process.argv[2] ?? 'serve';
const command = commands[name];
if (!command) {
  process.stderr.write(`Unknown command "${name}". Commands: ${Object.keys(commands).join(', ')}\n`);
  process.exit(2);
}
await command();
