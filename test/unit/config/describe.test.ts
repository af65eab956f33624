import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../../src/config/describe.js';
import { envSchema, VARIABLE_NAMES } from '../../../src/config/schema.js';

describe('describeConfig', () => {
  it('lists every variable once, in VARIABLE=value form', () => {
    const lines = describeConfig(envSchema.parse({})).split('\n');
    expect(lines.map((line) => line.slice(0, line.indexOf('=')))).toStrictEqual(VARIABLE_NAMES);
    expect(lines).toContain('FTPS_PORT=21');
    expect(lines).toContain('FTPS_BANNER=ftps-gateway ready');
    expect(lines).toContain('FTPS_BIND_ADDRESS=');
    expect(lines).toContain('ACTIVE_MODE=true');
    expect(lines).toContain('LOG_LEVEL=info');
  });

  it('shows resolved values', () => {
    const lines = describeConfig(envSchema.parse({ FTPS_IMPLICIT_SSL: 'yes', LOG_LEVEL: 'DEBUG', FTP_ROOT: '/srv' })).split('\n');
    expect(lines).toEqual(expect.arrayContaining(['FTPS_IMPLICIT_SSL=true', 'FTPS_PORT=990', 'LOG_LEVEL=debug', 'FTP_ROOT=/srv']));
  });

  it('redacts secrets that are set and leaves unset ones empty', () => {
    const withSecrets = describeConfig(
      envSchema.parse({ FTP_USER: 'alice', FTP_PASSWORD: 'hunter2', TLS_KEY_PASSPHRASE: 'open-sesame' }),
    );
    expect(withSecrets).not.toContain('hunter2');
    expect(withSecrets).not.toContain('open-sesame');
    expect(withSecrets.split('\n')).toEqual(
      expect.arrayContaining(['FTP_USER=alice', 'FTP_PASSWORD=[redacted]', 'TLS_KEY_PASSPHRASE=[redacted]']),
    );
    expect(describeConfig(envSchema.parse({})).split('\n')).toEqual(
      expect.arrayContaining(['FTP_PASSWORD=', 'TLS_KEY_PASSPHRASE=']),
    );
  });
});

describe('.env.example', () => {
  const example = readFileSync(join(import.meta.dirname, '../../../.env.example'), 'utf8');
  // "# NAME=value" lines; explanations never contain "=".
  const documented = [...example.matchAll(/^# ([A-Z_]+)=(.*)$/gm)].map(([, name, value]) => `${name}=${value}`);

  it('documents every variable with its real default', () => {
    expect(documented).toStrictEqual(describeConfig(envSchema.parse({})).split('\n'));
  });
});
