import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from '../config/config.js';

export type { Logger };

/** Keys that may hold secrets anywhere in a log object; pino replaces their values. */
const REDACTED_PATHS = [
  'password',
  'passphrase',
  'pass',
  '*.password',
  '*.passphrase',
  '*.pass',
  'env.FTP_PASSWORD',
  'env.TLS_KEY_PASSPHRASE',
];

export function createLogger(config: Pick<Config, 'log'>, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.log.level,
    base: { service: 'ftps-gateway' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (config.log.format === 'pretty') {
    // In process rather than as a transport (a worker thread that resolves the module by name at run time), and
    // fed epoch times: pino-pretty formats a number; an ISO string it would run through the pattern as a date.
    const stream = pretty({
      translateTime: "UTC:yyyy-mm-dd HH:MM:ss.l'Z'",
      ignore: 'service',
      singleLine: true,
      colorize: destination === undefined && process.stdout.isTTY,
      destination: destination ?? 1,
      sync: true,
    });
    return pino({ ...options, timestamp: pino.stdTimeFunctions.epochTime }, stream);
  }
  return destination ? pino(options, destination) : pino(options);
}
