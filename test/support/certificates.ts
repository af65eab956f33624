import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { generate } from 'selfsigned';

export interface PemPair {
  readonly cert: string;
  readonly key: string;
  /** As the server logs it and a TLS client sees it: `X509Certificate#fingerprint256`. */
  readonly fingerprint256: string;
}

/** A P-256 certificate for `commonName` valid for `days` (the key is the pair's own). */
export async function pemPair(commonName: string, days = 90): Promise<PemPair> {
  const p = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + days * 86_400_000),
  });
  return { cert: p.cert, key: p.private, fingerprint256: new X509Certificate(p.cert).fingerprint256 };
}

/** The fingerprint of the certificate a server showed this TLS socket (none on a resumed session). */
export const fingerprintOf = (socket: net.Socket): string | undefined =>
  (socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256;

/**
 * A directory laid out as the kubelet mounts a secret: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`.
 * Updates follow the kubelet's AtomicWriter: a new timestamped directory, a `..data_tmp` symlink renamed over
 * `..data`, then the old directory removed. Everything is world-readable, as the kubelet's default mode 0644,
 * so the container user (uid 1000) can read a host directory mounted into a container.
 */
export class SecretMount {
  private version = 0;
  private current: string | undefined;

  private constructor(readonly dir: string) {}

  static async create(dir: string, files: Record<string, string>): Promise<SecretMount> {
    await chmod(dir, 0o755);
    const mount = new SecretMount(dir);
    await mount.update(files);
    return mount;
  }

  get certPath(): string {
    return path.join(this.dir, 'tls.crt');
  }

  get keyPath(): string {
    return path.join(this.dir, 'tls.key');
  }

  /** Swaps in a new version holding `files` (name → content), as one atomic rename. */
  async update(files: Record<string, string>): Promise<void> {
    const name = `..2026_01_01_00_00_${String(this.version++).padStart(2, '0')}.000000000`;
    const versionDir = path.join(this.dir, name);
    await mkdir(versionDir, { mode: 0o755 });
    for (const [file, content] of Object.entries(files)) {
      await writeFile(path.join(versionDir, file), content, { mode: 0o644 });
    }
    await symlink(name, path.join(this.dir, '..data_tmp'));
    await rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const file of Object.keys(files)) {
      await symlink(path.join('..data', file), path.join(this.dir, file)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    if (this.current) await rm(path.join(this.dir, this.current), { recursive: true });
    this.current = name;
  }

  /** The files of a TLS secret (kubernetes.io/tls). */
  static tls(pair: Pick<PemPair, 'cert' | 'key'>): Record<string, string> {
    return { 'tls.crt': pair.cert, 'tls.key': pair.key };
  }
}
