/** MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP. admit() returns why a connection is refused, if it is. */
export class ConnectionLimiter {
  private total = 0;
  private readonly perIp = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerIp: number,
  ) {}

  admit(ip: string): string | undefined {
    if (this.total >= this.maxTotal) return 'Too many connections';
    const current = this.perIp.get(ip) ?? 0;
    if (current >= this.maxPerIp) return 'Too many connections from your address';
    this.total++;
    this.perIp.set(ip, current + 1);
    return undefined;
  }

  release(ip: string): void {
    const current = this.perIp.get(ip);
    if (current === undefined) return;
    this.total--;
    if (current <= 1) this.perIp.delete(ip);
    else this.perIp.set(ip, current - 1);
  }
}
