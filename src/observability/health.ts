/** A /readyz burst (several probes, a load balancer) costs one write per second at most. */
const STORAGE_PROBE_CACHE_MS = 1_000;
/** A hung volume (NFS) must not hang /readyz: the answer is "not ready" while the probe waits. */
const STORAGE_PROBE_TIMEOUT_MS = 2_000;

export interface ReadinessSources {
  /** The control listener accepts connections: listening, and not shutting down. */
  readonly accepting: () => boolean;
  /** The certificates new handshakes use. */
  readonly certificates: () => { readonly control: { readonly validTo: Date }; readonly data: { readonly validTo: Date } };
  /** Why the storage cannot take a file now, undefined when it can (StorageProvider.probe). */
  readonly storage: () => Promise<string | undefined>;
}

/** What /readyz reports: draining (shutting down, transfers still running), and the other reasons it cannot serve now. */
export type ReadinessState = { readonly draining: boolean; readonly problems: readonly string[] };

/** What /readyz answers: the reasons the server cannot serve a client now, none when it can. */
export class Readiness {
  readonly #storage: StorageProbe;

  constructor(private readonly sources: ReadinessSources) {
    this.#storage = new StorageProbe(sources.storage);
  }

  async state(): Promise<ReadinessState> {
    const problems: string[] = [];
    const now = Date.now();
    // Every client would refuse an expired certificate; a replica whose reload failed is better out of rotation.
    for (const [channel, { validTo }] of Object.entries(this.sources.certificates())) {
      if (validTo.getTime() <= now) problems.push(`the ${channel} certificate expired at ${validTo.toISOString()}`);
    }
    const storage = await this.#storage.check();
    if (storage) problems.push(storage);
    return { draining: !this.sources.accepting(), problems };
  }
}

/** The storage's own probe, cached briefly and bounded in time. */
class StorageProbe {
  #last: { readonly at: number; readonly problem: string | undefined } | undefined;
  #running: Promise<string | undefined> | undefined;

  constructor(private readonly probe: () => Promise<string | undefined>) {}

  /** Undefined when the storage can take a file; at most one probe runs at a time, even if one hangs. */
  async check(): Promise<string | undefined> {
    if (this.#last && performance.now() - this.#last.at < STORAGE_PROBE_CACHE_MS) return this.#last.problem;
    this.#running ??= this.probe().then((problem) => {
      this.#last = { at: performance.now(), problem };
      this.#running = undefined;
      return problem;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(resolve, STORAGE_PROBE_TIMEOUT_MS, `the storage did not answer within ${STORAGE_PROBE_TIMEOUT_MS} ms`);
    });
    try {
      return await Promise.race([this.#running, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
