/** The passive port range, shared by all sessions. A port is lent to one listener at a time. */
export class PortPool {
  private readonly free: number[] = [];
  private readonly inUse = new Set<number>();

  constructor(min: number, max: number) {
    for (let p = min; p <= max; p++) this.free.push(p);
  }

  /** Lends a free port; undefined when the range is exhausted. Round-robin so a just-freed port rests. */
  acquire(): number | undefined {
    const port = this.free.shift();
    if (port !== undefined) this.inUse.add(port);
    return port;
  }

  release(port: number): void {
    if (this.inUse.delete(port)) this.free.push(port);
  }

  get freeCount(): number {
    return this.free.length;
  }

  get usedCount(): number {
    return this.inUse.size;
  }
}
