import { pino, type Logger } from 'pino';
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
  if (destination) return pino(options, destination);
  if (config.log.format === 'pretty') {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'UTC:isoDateTime' } } });
  }
  return pino(options);
}
