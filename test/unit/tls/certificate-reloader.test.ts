/*
 * CertificateReloader over real files: the kubelet's `..data` swap, a certificate directory that appears only
 * later (generated certificate first), files that vanish, a separate data pair, and the expiry warnings.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Config } from '../../../src/config/config.js';
import { loadConfig } from '../../../src/config/load.js';
import { StateDir } from '../../../src/state/state-dir.js';
import { loadTlsMaterial } from '../../../src/tls/certificates.js';
import { CertificateReloader } from '../../../src/tls/certificate-reloader.js';
import { TlsContextFactory } from '../../../src/tls/session-contexts.js';
import { pemPair, SecretMount } from '../../support/certificates.js';
import { afterThisTest, captureLog, tempDir } from '../../support/fixtures.js';

const DAY_MS = 86_400_000;

function testConfig(dir: string, env: Record<string, string>): Config {
  return loadConfig({ FTP_ROOT: path.join(dir, 'root'), STATE_DIR: path.join(dir, 'state'), LOG_LEVEL: 'silent', ...env }, { dotenvPath: path.join(dir, 'no.env') });
}

const explicitPaths = (mount: SecretMount): Config =>
  testConfig(mount.dir, { TLS_CERT_PATH: mount.certPath, TLS_KEY_PATH: mount.keyPath });

/** What createServer does: load, a factory, a reloader on it; closed after the test. */
async function start(config: Config, pollIntervalMs?: number) {
  const { log, lines } = captureLog();
  const contexts = new TlsContextFactory(await loadTlsMaterial(config, await StateDir.open(config, log)), config.tls);
  const reloader = new CertificateReloader({ config, log, contexts, pollIntervalMs });
  afterThisTest(() => reloader.close());
  return { contexts, reloader, lines };
}

const waitFor = (check: () => void) => vi.waitFor(check, { timeout: 5_000, interval: 10 });

afterEach(() => {
  vi.useRealTimers();
});

describe('CertificateReloader', () => {
  it('puts a pair swapped in by the kubelet in use, and logs its fingerprint, expiry and file', async () => {
    const [a, b] = await Promise.all([pemPair('a.example'), pemPair('b.example')]);
    const mount = await SecretMount.create(await tempDir(), SecretMount.tls(a));
    const { contexts, lines } = await start(explicitPaths(mount));
    const loaded = { msg: 'certificate loaded', channel: 'control', fingerprint256: a.fingerprint256, file: mount.certPath };
    expect(lines).toContainEqual(expect.objectContaining(loaded));

    await mount.update(SecretMount.tls(b));
    // The directory watch: the 30 s poll is far beyond this timeout.
    await waitFor(() => expect(contexts.current.control.fingerprint256).toBe(b.fingerprint256));
    expect(contexts.current.data).toBe(contexts.current.control);
    const reloaded = lines.filter((l) => l.msg === 'certificate reloaded');
    expect(reloaded).toEqual([expect.objectContaining({ level: 30, fingerprint256: b.fingerprint256 })]);
    expect(new Date(reloaded[0]!.validTo as string).getTime()).toBe(contexts.current.control.validTo.getTime());
  });

  it('loads the default files once they appear, and never goes back to a generated certificate', async () => {
    const root = await tempDir();
    // Default paths (not explicit) in a directory that does not exist yet: only the poll can notice them.
    const certs = path.join(root, 'certs');
    const base = testConfig(root, {});
    const config: Config = {
      ...base,
      tls: { ...base.tls, certPath: path.join(certs, 'tls.crt'), keyPath: path.join(certs, 'tls.key'), pathsExplicit: false },
    };
    const { contexts, reloader, lines } = await start(config, 50);
    expect(contexts.current.control.selfSigned).toBe(true);
    const generated = contexts.current.control.fingerprint256;

    await reloader.reload({ force: true });
    expect(lines.at(-1)).toMatchObject({ msg: 'no certificate files: keeping the generated self-signed certificate' });
    expect(contexts.current.control.fingerprint256).toBe(generated);

    const a = await pemPair('a.example');
    await mkdir(certs);
    await writeFile(config.tls.certPath, a.cert);
    const problems = () => lines.filter((l) => l.level === 50).map((l) => l.msg);
    const keyMissing = `TLS_KEY_PATH: cannot read ${config.tls.keyPath} (ENOENT)`;
    await waitFor(() => expect(problems()).toEqual([expect.stringContaining(keyMissing)]));
    expect(contexts.current.control.fingerprint256).toBe(generated);

    await writeFile(config.tls.keyPath, a.key);
    await waitFor(() => expect(contexts.current.control).toMatchObject({ fingerprint256: a.fingerprint256, selfSigned: false }));

    await rm(certs, { recursive: true });
    await waitFor(() => expect(problems()).toHaveLength(2));
    expect(problems()[1]).toContain(`TLS_CERT_PATH: cannot read ${config.tls.certPath} (ENOENT)`);
    expect(contexts.current.control.fingerprint256).toBe(a.fingerprint256);
  });

  it('reloads a separate DATA_TLS_* pair on its own', async () => {
    const [a, b, c] = await Promise.all([pemPair('control.example'), pemPair('data-1.example'), pemPair('data-2.example')]);
    const control = await SecretMount.create(await tempDir(), SecretMount.tls(a));
    const data = await SecretMount.create(await tempDir(), SecretMount.tls(b));
    const { contexts, lines } = await start(
      testConfig(control.dir, {
        TLS_CERT_PATH: control.certPath,
        TLS_KEY_PATH: control.keyPath,
        DATA_TLS_CERT_PATH: data.certPath,
        DATA_TLS_KEY_PATH: data.keyPath,
      }),
    );
    await data.update(SecretMount.tls(c));
    await waitFor(() => expect(contexts.current.data.fingerprint256).toBe(c.fingerprint256));
    expect(contexts.current.control.fingerprint256).toBe(a.fingerprint256);
    const reloaded = { msg: 'certificate reloaded', channel: 'data', fingerprint256: c.fingerprint256, file: data.certPath };
    expect(lines).toContainEqual(expect.objectContaining(reloaded));
  });

  it('warns at load and then daily while a certificate that expires within 14 days is in use', async () => {
    const [soon, later] = await Promise.all([pemPair('soon.example', 5.5), pemPair('later.example', 90)]);
    const mount = await SecretMount.create(await tempDir(), SecretMount.tls(soon));
    const config = explicitPaths(mount);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    // No poll during the days advanced (a period beyond 2^31 ms would mean 1 ms to Node).
    const { reloader, lines } = await start(config, 20 * DAY_MS);
    const warnings = () => lines.filter((l) => l.msg === 'certificate expires soon' || l.msg === 'certificate has expired');
    expect(warnings()).toEqual([expect.objectContaining({ level: 40, daysLeft: 5, fingerprint256: soon.fingerprint256 })]);

    vi.advanceTimersByTime(DAY_MS);
    expect(warnings().map((l) => l.daysLeft)).toEqual([5, 4]);
    vi.advanceTimersByTime(5 * DAY_MS);
    expect(warnings().at(-1)).toMatchObject({ level: 50, msg: 'certificate has expired', daysLeft: -1 });

    // Renewed: the daily check finds nothing to say.
    await mount.update(SecretMount.tls(later));
    await reloader.reload();
    const count = warnings().length;
    vi.advanceTimersByTime(3 * DAY_MS);
    expect(warnings()).toHaveLength(count);
  });
});
