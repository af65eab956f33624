import { RawFtpClient } from './raw-client.js';
import { rssOf } from './server-process.js';

export const MiB = 1024 * 1024;

/** The value below which `q` (0..1) of the sorted samples lie. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Samples a process's RSS every `intervalMs` until stop(); reports the baseline and the peak. */
export function sampleRss(pid: number, intervalMs = 50): { stop(): { before: number; peak: number; growth: number } } {
  const before = rssOf(pid);
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rssOf(pid))), intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssOf(pid));
      return { before, peak, growth: peak - before };
    },
  };
}

/**
 * Another user's experience meanwhile: a logged-in session that sends NOOP every `intervalMs` and records each
 * reply's latency. stop() ends it and returns the latencies (ms) and how many NOOPs went unanswered.
 */
export async function noopProbe(
  connect: () => Promise<RawFtpClient>,
  intervalMs = 20,
): Promise<{ stop(): Promise<{ latencies: number[]; unanswered: number }> }> {
  const client = await connect();
  const latencies: number[] = [];
  let unanswered = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const sent = performance.now();
      try {
        const r = await client.send('NOOP', 10_000);
        if (r.code === 200) latencies.push(performance.now() - sent);
        else unanswered++;
      } catch {
        unanswered++;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      client.close();
      return { latencies, unanswered };
    },
  };
}

/** One line of figures for the test log, so a run shows what it measured. */
export function report(label: string, figures: Record<string, number | string>): void {
  const text = Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(1)) : v}`)
    .join(' ');
  process.stdout.write(`[figures] ${label}: ${text}\n`);
}
