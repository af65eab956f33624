import { describe, expect, it } from 'vitest';
import { describeVariables } from '../../../src/config/describe.js';
import { SECRET_VARIABLES, variablesSchema, VARIABLE_NAMES } from '../../../src/config/schema.js';

const described = (env: Record<string, string>) => describeVariables(variablesSchema.parse(env)).split('\n');

describe('describeVariables', () => {
  it('lists every variable once, in VARIABLE=value form', () => {
    const lines = described({});
    expect(lines.map((line) => line.slice(0, line.indexOf('=')))).toStrictEqual(VARIABLE_NAMES);
    expect(lines).toContain('FTPS_PORT=21');
    expect(lines).toContain('FTPS_BANNER=ftps-gateway ready');
    expect(lines).toContain('FTPS_BIND_ADDRESS=');
    expect(lines).toContain('ACTIVE_MODE=true');
    expect(lines).toContain('LOG_LEVEL=info');
  });

  it('shows resolved values, computed defaults included, in the form the variable accepts', () => {
    const lines = described({
      FTPS_IMPLICIT_SSL: 'yes',
      LOG_LEVEL: 'DEBUG',
      FTP_ROOT: '/srv',
      PASV_MIN_PORT: '40000',
      PASV_MAX_PORT: '40039',
      PROXY_TRUSTED_CIDRS: '10.0.0.0/8, 192.0.2.7',
      PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5; 192.168.0.0/16=192.168.0.5',
    });
    expect(lines).toEqual(expect.arrayContaining([
      'FTPS_IMPLICIT_SSL=true', 'FTPS_PORT=990', 'LOG_LEVEL=debug', 'FTP_ROOT=/srv', 'FTP_ANONYMOUS_ROOT=/srv/pub', 'PASV_MAX_PER_IP=10',
      'PROXY_TRUSTED_CIDRS=10.0.0.0/8,192.0.2.7', 'PASV_ADDRESS_OVERRIDES=10.0.0.0/8=10.0.0.5;192.168.0.0/16=192.168.0.5',
    ]));
  });

  it('prints what reads back as the same values (check-config output works as a .env file)', () => {
    const values = variablesSchema.parse({
      FTPS_IMPLICIT_SSL: 'YES', PASV_ADDRESS: 'ftp.example.com', MAX_UPLOAD_BYTES: '1048576', TLS_CLIENT_AUTH: 'Optional',
      TLS_CLIENT_CA_PATH: '/ca.pem', PROXY_PROTOCOL: 'v2', PROXY_TRUSTED_CIDRS: '10.0.0.0/8, 2001:db8::/32',
      TLS_SESSION_REUSE_EXEMPT_CIDRS: '192.0.2.7', PASV_ADDRESS_OVERRIDES: '10.0.0.0/8=10.0.0.5',
    });
    const env = Object.fromEntries(describeVariables(values).split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2)));
    expect(variablesSchema.parse(env)).toStrictEqual(values);
  });

  it('knows which variables are secret from their definitions', () => {
    expect(SECRET_VARIABLES).toStrictEqual(['TLS_KEY_PASSPHRASE', 'S3_SECRET_ACCESS_KEY', 'FTP_PASSWORD', 'AUTH_HOOK_SECRET', 'LDAP_BIND_PASSWORD', 'EVENT_WEBHOOK_SECRET']);
  });

  it('redacts secrets that are set and leaves unset ones empty', () => {
    const withSecrets = described({ FTP_USER: 'alice', FTP_PASSWORD: 'hunter2', TLS_KEY_PASSPHRASE: 'open-sesame' });
    expect(withSecrets.join('\n')).not.toContain('hunter2');
    expect(withSecrets.join('\n')).not.toContain('open-sesame');
    expect(withSecrets).toEqual(expect.arrayContaining(['FTP_USER=alice', 'FTP_PASSWORD=[redacted]', 'TLS_KEY_PASSPHRASE=[redacted]']));
    expect(described({})).toEqual(expect.arrayContaining(['FTP_PASSWORD=', 'TLS_KEY_PASSPHRASE=']));
  });
});
