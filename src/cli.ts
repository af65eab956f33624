import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { createUserStore } from './auth/create-user-store.js';
import { hashPassword } from './auth/password-hash.js';
import type { Config } from './config/config.js';
import { describeVariables } from './config/describe.js';
import type { Values } from './config/variables.js';
import { createLogger } from './observability/logger.js';
import { StateDir } from './state/state-dir.js';
import { loadTlsMaterial } from './tls/certificates.js';

const HEALTHCHECK_TIMEOUT_MS = 5_000;
/** Longer than any password an FTP command line (4096 bytes) could carry. */
const MAX_PASSWORD_BYTES = 4096;

/**
 * `check-config`: the resolved configuration, secrets redacted, after the checks a start makes on files
 * (certificates, client CA, users file); their problems are thrown as ConfigErrors.
 */
export async function checkConfig(config: Config, values: Values): Promise<string> {
  const log = createLogger({ log: { level: 'silent', format: 'json' } });
  // Read-only: checking must not create the password or certificate that the server's first start announces.
  const state = await StateDir.open(config, log, { readOnly: true });
  await loadTlsMaterial(config, state);
  const users = await createUserStore(config, log, { state, announce: () => {} });
  users.close?.();
  return describeVariables(values);
}

/**
 * `healthcheck` (the image's HEALTHCHECK): GET /readyz on the HTTP endpoint, so that "healthy" means able to
 * serve (storage writable too); with HTTP_PORT=0, the FTP greeting. Returns a one-line verdict; `healthy`
 * tells the exit code.
 */
export async function healthcheck(config: Config): Promise<{ healthy: boolean; message: string }> {
  return config.operations.httpPort === 0 ? greetingCheck(config) : readinessCheck(config);
}

async function readinessCheck(config: Config): Promise<{ healthy: boolean; message: string }> {
  const { httpPort: port, httpBindAddress } = config.operations;
  try {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const options = { host: httpBindAddress ?? '127.0.0.1', port, path: '/readyz', signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS) };
      const request = http.get(options, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      });
      request.on('error', reject);
    });
    const text = body.trim().split('\n').join('; ');
    return status === 200 ? { healthy: true, message: `healthy: ${text}` } : { healthy: false, message: `unhealthy: HTTP ${status}: ${text}` };
  } catch (err) {
    return { healthy: false, message: `unhealthy: ${(err as Error).message}` };
  }
}

/** Connects to the control port as a client would (TLS first in implicit mode) and expects the 220 greeting. */
async function greetingCheck(config: Config): Promise<{ healthy: boolean; message: string }> {
  const host = config.ftps.bindAddress ?? '127.0.0.1';
  const { port } = config.ftps;
  const socket = config.ftps.implicit
    ? tls.connect({ host, port, rejectUnauthorized: false })
    : net.connect({ host, port });
  try {
    const greeting = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no greeting within ${HEALTHCHECK_TIMEOUT_MS} ms`)), HEALTHCHECK_TIMEOUT_MS);
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('\n')) {
          clearTimeout(timer);
          resolve(text.slice(0, text.indexOf('\n')).trim());
        }
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    socket.write('QUIT\r\n');
    return greeting.startsWith('220 ')
      ? { healthy: true, message: `healthy: ${greeting}` }
      : { healthy: false, message: `unhealthy: unexpected greeting "${greeting}"` };
  } catch (err) {
    return { healthy: false, message: `unhealthy: ${(err as Error).message}` };
  } finally {
    socket.end();
    setTimeout(() => socket.destroy(), 200).unref();
  }
}

/**
 * `hash-password`: the password is the one line of `input` (never an argument, which `ps` would show), a
 * trailing newline dropped. Returns the scrypt hash for FTP_USERS_FILE, or why there is none.
 */
export async function hashPasswordFrom(
  input: AsyncIterable<Buffer | string>,
): Promise<{ ok: true; hash: string } | { ok: false; message: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const bytes = Buffer.from(chunk);
    chunks.push(bytes);
    size += bytes.length;
    if (size > MAX_PASSWORD_BYTES) return { ok: false, message: `input longer than ${MAX_PASSWORD_BYTES} bytes` };
  }
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (/[\r\n]/.test(password)) return { ok: false, message: 'expected one line (the password) on standard input' };
  if (password === '') return { ok: false, message: 'empty password on standard input' };
  return { ok: true, hash: await hashPassword(password) };
}
