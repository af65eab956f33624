import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { ConfigError, type Config } from '../config/config.js';
import type { StateDir } from '../state/state-dir.js';
import { identityOf } from './client-certificates.js';
import { secureContextOptions, type TlsContextOptions } from './session-contexts.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  passphrase?: string;
  /** Colon-separated hex, as `X509Certificate#fingerprint256`. */
  fingerprint256: string;
  /** The subject's RDNs joined by ', ', e.g. 'CN=ftps-gateway'. */
  subject: string;
  validTo: Date;
  selfSigned: boolean;
  /**
   * Control material only, when TLS_CLIENT_AUTH is optional or required: the PEM CA certificates
   * (TLS_CLIENT_CA_PATH) that client certificates must chain to.
   */
  clientCa?: string;
}

/** The control pair and the data pair, which is the same object unless DATA_TLS_* are set. */
export interface TlsPair {
  readonly control: TlsMaterial;
  readonly data: TlsMaterial;
}

interface PairSource {
  readonly certVar: string;
  readonly keyVar: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** Only for the default control paths: what to use when neither file exists. */
  readonly fallback?: () => Promise<{ cert: string; key: string }>;
}

type Checks = Pick<TlsContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'> & { readonly passphrase: string | undefined };

/**
 * Reads and validates the control certificate and key (a self-signed pair when the default files are absent),
 * with the client CA when client certificates are asked for, and the data pair, which is the control pair
 * itself unless DATA_TLS_* are set.
 * The self-signed pair is kept in `state` (STATE_DIR), so clients that trusted it once keep trusting it; without
 * `state` (reloads) no pair is generated.
 * Every problem found becomes one line of the ConfigError; the passphrase never appears in one.
 */
export async function loadTlsMaterial(config: Config, state?: StateDir): Promise<TlsPair> {
  const problems: string[] = [];
  const checks: Checks = {
    minVersion: config.tls.minVersion,
    maxVersion: config.tls.maxVersion,
    ciphers: checkedCiphers(config.tls, problems),
    passphrase: config.tls.keyPassphrase,
  };
  const pair = await loadPair(
    {
      certVar: 'TLS_CERT_PATH',
      keyVar: 'TLS_KEY_PATH',
      certPath: config.tls.certPath,
      keyPath: config.tls.keyPath,
      fallback: config.tls.pathsExplicit || state === undefined ? undefined : () => rememberedSelfSigned(state),
    },
    checks,
    problems,
  );
  const clientCa = config.tls.clientAuth === 'none' ? undefined : await loadClientCa(config.tls.clientCaPath, problems);
  const control = pair && clientCa !== undefined ? { ...pair, clientCa } : pair;
  const { tlsCertPath, tlsKeyPath } = config.data;
  if ((tlsCertPath === undefined) !== (tlsKeyPath === undefined)) {
    problems.push('DATA_TLS_CERT_PATH/DATA_TLS_KEY_PATH: set both or neither');
  }
  const data =
    tlsCertPath === undefined || tlsKeyPath === undefined
      ? control
      : await loadPair(
          { certVar: 'DATA_TLS_CERT_PATH', keyVar: 'DATA_TLS_KEY_PATH', certPath: tlsCertPath, keyPath: tlsKeyPath },
          checks,
          problems,
        );
  if (problems.length > 0 || control === undefined || data === undefined) throw new ConfigError(problems);
  return { control, data };
}

/** The configured ciphers when OpenSSL accepts them; otherwise a problem, and the pairs are checked without. */
function checkedCiphers(config: Config['tls'], problems: string[]): string | undefined {
  try {
    tls.createSecureContext({ minVersion: config.minVersion, ciphers: config.ciphers });
    return config.ciphers;
  } catch (error) {
    problems.push(`TLS_CIPHERS: ${config.ciphers} is refused by OpenSSL (${reason(error)})`);
    return undefined;
  }
}

async function loadPair(source: PairSource, checks: Checks, problems: string[]): Promise<TlsMaterial | undefined> {
  const [cert, key] = await Promise.all([readPem(source.certPath), readPem(source.keyPath)]);
  if (source.fallback && cert.code === 'ENOENT' && key.code === 'ENOENT') {
    const generated = await source.fallback();
    return inspect(source, generated.cert, generated.key, { ...checks, passphrase: undefined }, true, problems);
  }
  // A missing file here, with a fallback, means the other default file exists: a half-provisioned pair is a mistake.
  const hint = (code: string) => (source.fallback && code === 'ENOENT' ? '; the default certificate and key files must both exist, or neither' : '');
  if (cert.code !== undefined) problems.push(`${source.certVar}: cannot read ${source.certPath} (${cert.code})${hint(cert.code)}`);
  if (key.code !== undefined) problems.push(`${source.keyVar}: cannot read ${source.keyPath} (${key.code})${hint(key.code)}`);
  if (cert.text === undefined || key.text === undefined) return undefined;
  return inspect(source, cert.text, key.text, checks, false, problems);
}

/** readFile follows symlinks, so Kubernetes secret mounts (`tls.crt -> ..data/tls.crt`) need nothing special. */
async function readPem(path: string): Promise<{ text?: string; code?: string }> {
  try {
    return { text: await readFile(path, 'utf8') };
  } catch (error) {
    return { code: (error as NodeJS.ErrnoException).code ?? reason(error) };
  }
}

function inspect(
  source: PairSource,
  cert: string,
  key: string,
  checks: Checks,
  selfSigned: boolean,
  problems: string[],
): TlsMaterial | undefined {
  const pair = `${source.certVar}/${source.keyVar}`;
  let x509: X509Certificate | undefined;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    problems.push(`${source.certVar}: ${source.certPath} is not a valid PEM certificate (${reason(error)})`);
  }
  let privateKey: KeyObject | undefined;
  try {
    privateKey = createPrivateKey({ key, passphrase: checks.passphrase });
  } catch (error) {
    problems.push(keyProblem(source, key, checks.passphrase, error));
  }
  if (x509 === undefined || privateKey === undefined) return undefined;
  if (!x509.checkPrivateKey(privateKey)) {
    problems.push(`${pair}: the private key ${source.keyPath} does not match the certificate ${source.certPath}`);
    return undefined;
  }
  const material: TlsMaterial = {
    cert,
    key,
    passphrase: checks.passphrase,
    ...identityOf(x509),
    validTo: x509.validToDate,
    selfSigned,
  };
  // OpenSSL applies rules of its own on top, e.g. its security level refuses a 1024-bit RSA key.
  try {
    tls.createSecureContext(secureContextOptions(material, checks));
  } catch (error) {
    problems.push(`${pair}: ${source.certPath} with ${source.keyPath} refused by OpenSSL (${reason(error)})`);
    return undefined;
  }
  return material;
}

function keyProblem(source: PairSource, key: string, passphrase: string | undefined, error: unknown): string {
  // Both PKCS#8 ('BEGIN ENCRYPTED PRIVATE KEY') and legacy ('Proc-Type: 4,ENCRYPTED') keys say so in clear.
  if (!key.includes('ENCRYPTED')) {
    return `${source.keyVar}: ${source.keyPath} is not a valid PEM private key (${reason(error)})`;
  }
  return passphrase === undefined
    ? `TLS_KEY_PASSPHRASE: not set, but ${source.keyPath} (${source.keyVar}) is encrypted`
    : `TLS_KEY_PASSPHRASE: does not decrypt ${source.keyPath} (${source.keyVar})`;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** The CA bundle as it is, once every certificate in it parses and OpenSSL accepts it as trust anchors. */
async function loadClientCa(path: string | undefined, problems: string[]): Promise<string | undefined> {
  // The schema requires the path whenever client certificates are asked for.
  if (path === undefined) return undefined;
  const { text, code } = await readPem(path);
  if (text === undefined) {
    problems.push(`TLS_CLIENT_CA_PATH: cannot read ${path} (${code})`);
    return undefined;
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    problems.push(`TLS_CLIENT_CA_PATH: ${path} holds no PEM certificate`);
    return undefined;
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      problems.push(`TLS_CLIENT_CA_PATH: certificate ${i + 1} in ${path} is not valid (${reason(error)})`);
      return undefined;
    }
  }
  try {
    tls.createSecureContext({ ca: text });
  } catch (error) {
    problems.push(`TLS_CLIENT_CA_PATH: ${path} is refused by OpenSSL (${reason(error)})`);
    return undefined;
  }
  return text;
}

/** OpenSSL's reason without its prefix: 'error:0A0000B9:SSL routines::no cipher match' → 'no cipher match'. */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('::').pop() ?? message;
}

/** In STATE_DIR: the generated certificate, then its key. */
const SELF_SIGNED_FILE = 'self-signed.pem';
/** A stored pair this close to expiry is replaced at start, before clients see it expire. */
const SELF_SIGNED_RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]+-----END [A-Z ]*PRIVATE KEY-----/;

async function rememberedSelfSigned(state: StateDir): Promise<{ cert: string; key: string }> {
  const created = async () => {
    const { cert, key } = await generateSelfSigned();
    return `${cert.trim()}\n${key.trim()}\n`;
  };
  const { text } = await state.remember(SELF_SIGNED_FILE, created, (stored) => splitPair(stored) !== undefined);
  return splitPair(text)!;
}

/** The pair in a stored file, if it is whole and not about to expire. */
function splitPair(text: string): { cert: string; key: string } | undefined {
  const cert = new RegExp(PEM_CERTIFICATE.source).exec(text)?.[0];
  const key = PEM_PRIVATE_KEY.exec(text)?.[0];
  if (cert === undefined || key === undefined) return undefined;
  try {
    if (new X509Certificate(cert).validToDate.getTime() - Date.now() < SELF_SIGNED_RENEW_BEFORE_MS) return undefined;
  } catch {
    return undefined;
  }
  return { cert: `${cert}\n`, key: `${key}\n` };
}

async function generateSelfSigned(): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: 'ftps-gateway' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 365 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
