/*
 * Certificate hot reload: cert-manager renews a secret every few weeks and the kubelet swaps the mounted files
 * in place, so the files are watched and a valid new pair is used for every new handshake without a restart.
 *
 * The kubelet never rewrites tls.crt itself: tls.crt -> ..data/tls.crt, and an update renames a new `..data_tmp`
 * symlink over `..data`. The file's inode never changes, so the directories are watched, not the files; a
 * content-hash poll covers volumes without change notifications (NFS, single-file bind mounts). A broken or
 * mismatched pair is refused with the problems loadTlsMaterial names, and the current pair stays.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { loadTlsMaterial, type TlsMaterial, type TlsPair } from './certificates.js';
import type { TlsContextFactory } from './session-contexts.js';

/** A kubelet update is several renames in a row: read once they have settled. */
const SETTLE_MS = 100;
/** The fallback re-read; the kubelet itself takes up to a minute or two to propagate a secret. */
const POLL_MS = 30_000;
const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;
/** What a default certificate file holds when the pair was generated: nothing. */
const ABSENT = '!ENOENT';

interface WatchedFile {
  readonly path: string;
  /** The text this file had when `pair` was read from it (loadTlsMaterial keeps the PEM text as it was). */
  readonly textIn: (pair: TlsPair) => string;
}

export interface CertificateReloaderOptions {
  readonly config: Config;
  readonly log: Logger;
  /** Holds the pair loaded at start; gets every valid new one. */
  readonly contexts: TlsContextFactory;
  /** Re-read period for volumes where change notifications never come. */
  readonly pollIntervalMs?: number;
}

const digest = (texts: readonly string[]): string => createHash('sha256').update(texts.join('\0')).digest('hex');

/**
 * TLS_CERT_PATH/TLS_KEY_PATH, DATA_TLS_* when set, and the client CA when client certificates are asked for
 * (cert-manager puts ca.crt in the same secret).
 */
function watchedFiles({ tls, data }: Config): WatchedFile[] {
  const generated = (m: TlsMaterial, text: string) => (m.selfSigned ? ABSENT : text);
  const files: WatchedFile[] = [
    { path: tls.certPath, textIn: (p) => generated(p.control, p.control.cert) },
    { path: tls.keyPath, textIn: (p) => generated(p.control, p.control.key) },
  ];
  if (data.tlsCertPath !== undefined && data.tlsKeyPath !== undefined) {
    files.push({ path: data.tlsCertPath, textIn: (p) => p.data.cert }, { path: data.tlsKeyPath, textIn: (p) => p.data.key });
  }
  if (tls.clientAuth !== 'none' && tls.clientCaPath !== undefined) {
    files.push({ path: tls.clientCaPath, textIn: (p) => p.control.clientCa ?? ABSENT });
  }
  return files;
}

/** Both channels, the data one only when it has a pair of its own. */
function channels(pair: TlsPair): Array<['control' | 'data', TlsMaterial]> {
  return pair.data === pair.control ? [['control', pair.control]] : [['control', pair.control], ['data', pair.data]];
}

/**
 * Watches the certificate files, logs every pair it puts in use (fingerprint, expiry) and warns daily about
 * one that expires within 14 days. A pair generated at start because the default files were absent is
 * replaced once they appear; a loaded pair is never replaced by a generated one.
 */
export class CertificateReloader {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #contexts: TlsContextFactory;
  readonly #files: readonly WatchedFile[];
  /** The file contents last looked at: unchanged files are not loaded (and a broken pair not reported) again. */
  #seen: string;
  #reloading = Promise.resolve();
  #closed = false;
  readonly #watchers: FSWatcher[] = [];
  readonly #poller: NodeJS.Timeout;
  readonly #daily: NodeJS.Timeout;
  #settle: NodeJS.Timeout | undefined;

  constructor(options: CertificateReloaderOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#contexts = options.contexts;
    this.#files = watchedFiles(options.config);
    // From the loaded texts, not a fresh read: a change between loading and now is then not missed.
    this.#seen = this.#digestOf(options.contexts.current);
    this.#announce(options.contexts.current, 'certificate loaded');
    const pollMs = options.pollIntervalMs ?? POLL_MS;
    this.#poller = setInterval(() => void this.reload(), pollMs).unref();
    this.#daily = setInterval(() => this.#warnIfExpiring(), DAY_MS).unref();
    for (const dir of new Set(this.#files.map((f) => path.dirname(f.path)))) this.#watch(dir, pollMs);
  }

  /**
   * Re-reads the files now (what the watchers, the poll and SIGHUP call). Runs one at a time and never rejects:
   * problems are logged and the current pair stays. `force` loads unchanged files too, and logs the pair again.
   */
  reload(o: { force?: boolean } = {}): Promise<void> {
    this.#reloading = this.#reloading
      .then(() => this.#check(o.force ?? false))
      .catch((err: unknown) => this.#log.error({ err }, 'certificate reload failed'));
    return this.#reloading;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    clearInterval(this.#poller);
    clearInterval(this.#daily);
    clearTimeout(this.#settle);
  }

  async #check(force: boolean): Promise<void> {
    if (this.#closed) return;
    const seen = digest(
      await Promise.all(
        this.#files.map((f) => readFile(f.path, 'utf8').catch((err: NodeJS.ErrnoException) => `!${err.code ?? 'error'}`)),
      ),
    );
    if (seen === this.#seen && !force) return;
    if (seen === this.#seen && this.#contexts.current.control.selfSigned) {
      this.#log.info('no certificate files: keeping the generated self-signed certificate');
      return;
    }
    this.#seen = seen;
    let pair: TlsPair;
    try {
      // Files that vanish are an error like any other: a loaded certificate never turns into a generated one.
      pair = await loadTlsMaterial({ ...this.#config, tls: { ...this.#config.tls, pathsExplicit: true } });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.#log.error(
        { problems: err.problems },
        `certificates not reloaded, keeping the current ones: ${err.problems.join('; ')}`,
      );
      return;
    }
    if (this.#closed) return;
    this.#contexts.replace(pair);
    // The files may have changed again while loading; then the next check loads them.
    this.#seen = this.#digestOf(pair);
    this.#announce(pair, 'certificate reloaded');
  }

  #digestOf(pair: TlsPair): string {
    return digest(this.#files.map((f) => f.textIn(pair)));
  }

  #announce(pair: TlsPair, msg: string): void {
    const files = { control: this.#config.tls.certPath, data: this.#config.data.tlsCertPath };
    for (const [channel, m] of channels(pair)) {
      const entry = { channel, fingerprint256: m.fingerprint256, subject: m.subject, validTo: m.validTo.toISOString() };
      if (m.selfSigned) this.#log.warn(entry, 'no certificate found: using a generated self-signed certificate');
      else this.#log.info({ ...entry, file: files[channel] }, msg);
    }
    this.#warnIfExpiring();
  }

  /** At every load and then daily, for as long as the pair is in use. */
  #warnIfExpiring(): void {
    for (const [channel, m] of channels(this.#contexts.current)) {
      const daysLeft = Math.floor((m.validTo.getTime() - Date.now()) / DAY_MS);
      if (daysLeft >= EXPIRY_WARNING_DAYS) continue;
      const entry = { channel, fingerprint256: m.fingerprint256, validTo: m.validTo.toISOString(), daysLeft };
      if (m.validTo.getTime() <= Date.now()) this.#log.error(entry, 'certificate has expired');
      else this.#log.warn(entry, 'certificate expires soon');
    }
  }

  #watch(dir: string, pollMs: number): void {
    const onFailure = (err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      // No directory yet (nothing mounted, a generated certificate in use): the poll notices when files appear.
      const level = code === 'ENOENT' ? 'debug' : 'warn';
      this.#log[level]({ dir, code }, `cannot watch ${dir} for certificate changes; checking every ${pollMs / 1000} s`);
    };
    try {
      const watcher = watch(dir, { persistent: false }, () => {
        // Shows which of watch and poll noticed a change (the poll logs nothing until the pair differs).
        this.#log.debug({ dir }, 'certificate directory changed');
        clearTimeout(this.#settle);
        this.#settle = setTimeout(() => void this.reload(), SETTLE_MS).unref();
      });
      watcher.on('error', (err) => {
        onFailure(err);
        watcher.close();
      });
      this.#watchers.push(watcher);
    } catch (err) {
      onFailure(err);
    }
  }
}
