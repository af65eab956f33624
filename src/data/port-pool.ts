/**
 * The passive port range, shared by all sessions. A port is lent to one listener at a time, and one client
 * address (the holder) may hold at most `maxPerHolder` ports at once, so a few sessions from one address cannot
 * hold the whole range.
 */
export class PortPool {
  private readonly free: number[] = [];
  /** Port → the address holding it. */
  private readonly inUse = new Map<number, string>();
  private readonly perHolder = new Map<string, number>();

  constructor(
    min: number,
    max: number,
    private readonly maxPerHolder = Number.POSITIVE_INFINITY,
  ) {
    for (let p = min; p <= max; p++) this.free.push(p);
  }

  /** True when `holder` holds as many ports as it may. */
  atLimit(holder: string): boolean {
    return (this.perHolder.get(holder) ?? 0) >= this.maxPerHolder;
  }

  /**
   * Lends a free port to `holder`; undefined when the range is exhausted or the holder is at its limit.
   * Round-robin, so a just-freed port rests.
   */
  acquire(holder = ''): number | undefined {
    if (this.atLimit(holder)) return undefined;
    const port = this.free.shift();
    if (port === undefined) return undefined;
    this.inUse.set(port, holder);
    this.perHolder.set(holder, (this.perHolder.get(holder) ?? 0) + 1);
    return port;
  }

  release(port: number): void {
    const holder = this.inUse.get(port);
    if (holder === undefined) return;
    this.inUse.delete(port);
    const held = (this.perHolder.get(holder) ?? 1) - 1;
    if (held === 0) this.perHolder.delete(holder);
    else this.perHolder.set(holder, held);
    this.free.push(port);
  }

  get freeCount(): number {
    return this.free.length;
  }

  get usedCount(): number {
    return this.inUse.size;
  }
}
