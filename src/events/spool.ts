import { closeSync, fdatasync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/** One spooled record and where the next one begins (what ack() takes). */
export interface SpoolRecord {
  readonly line: string;
  readonly next: Position;
}

export interface Position {
  readonly segment: number;
  readonly offset: number;
}

export interface SpoolOptions {
  readonly dir: string;
  /** EVENT_SPOOL_MAX_BYTES: beyond it the oldest segment is dropped. */
  readonly maxBytes: number;
  /** fdatasync at most this long after an append… */
  readonly syncIntervalMs: number;
  /** …or as soon as this many appends wait for it. */
  readonly syncEvery: number;
  /** Records lost: a full spool dropped its oldest segment, or an append failed. */
  readonly onDropped: (records: number, reason: 'spool_full' | 'spool_error', err?: unknown) => void;
  /** A sync failed (the records stay written; only a power loss could lose them). */
  readonly onSyncError: (err: unknown) => void;
}

const SEGMENT_NAME = /^(\d{16})\.ndjson$/;
const POSITION_FILE = 'delivered.json';
const READ_CHUNK = 64 * 1024;

/**
 * An append-only spool of one-line JSON records in segment files (`<number>.ndjson`), with the position up to
 * which records were delivered in `delivered.json`.
 *
 * - append() writes the record to the kernel at once (writeSync): an event appended before the reply is sent
 *   survives a kill -9 of the process, whatever the sync schedule. fdatasync is batched (syncIntervalMs or
 *   syncEvery), so a power loss can lose at most that window.
 * - A record is a line; a crash mid-write leaves a tail without its newline, cut off at the next open.
 * - The delivered position is saved by rename (atomic, not synced): after a crash the last records may be
 *   delivered again — at least once, never lost.
 * - Segments rotate at a quarter of maxBytes (at most 1 MiB); delivered segments are deleted; when the spool is
 *   over maxBytes the oldest segment is dropped, undelivered records included.
 */
export class Spool {
  private readonly segments: number[] = [];
  private readonly sizes = new Map<number, number>();
  private fd: number;
  private readPos: Position;
  private unsynced = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  /** The descriptor an fdatasync is running on: closed by its callback, not under it. */
  private syncingFd: number | undefined;
  private waiters: Array<() => void> = [];
  private readonly segmentBytes: number;
  private closed = false;

  constructor(private readonly o: SpoolOptions) {
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    this.segmentBytes = Math.max(4096, Math.min(1024 * 1024, Math.floor(o.maxBytes / 4)));
    for (const name of readdirSync(o.dir).sort()) {
      const m = SEGMENT_NAME.exec(name);
      if (!m) continue;
      const n = Number(m[1]);
      this.segments.push(n);
      this.sizes.set(n, statSync(this.file(n)).size);
    }
    if (this.segments.length === 0) this.segments.push(1);
    const last = this.segments.at(-1)!;
    this.fd = openSync(this.file(last), 'a+');
    this.cutTornTail(last);
    this.readPos = this.loadPosition();
  }

  /** Bytes of every segment on disk. */
  get bytes(): number {
    let total = 0;
    for (const s of this.segments) total += this.sizes.get(s) ?? 0;
    return total;
  }

  /** Appends one record (a JSON text without line breaks). Never throws: a failure is reported and the record dropped. */
  append(json: string): void {
    if (this.closed) return;
    const data = Buffer.from(`${json}\n`);
    try {
      if (data.length > this.segmentBytes) throw new Error(`record of ${data.length} bytes exceeds the spool segment size`);
      let current = this.segments.at(-1)!;
      if ((this.sizes.get(current) ?? 0) + data.length > this.segmentBytes) current = this.rotate();
      const size = this.sizes.get(current) ?? 0;
      const written = writeSync(this.fd, data);
      if (written !== data.length) {
        // A short write (disk full): no half record may stay for the next one to be glued to.
        ftruncateSync(this.fd, size);
        throw new Error(`short write to the event spool (${written} of ${data.length} bytes)`);
      }
      this.sizes.set(current, size + data.length);
    } catch (err) {
      this.o.onDropped(1, 'spool_error', err);
      return;
    }
    this.enforceBound();
    this.scheduleSync();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Up to `max` records after the delivered position, in order. */
  peek(max: number): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    let { segment, offset } = this.readPos;
    while (out.length < max) {
      const size = this.sizes.get(segment) ?? 0;
      if (offset >= size) {
        const next = this.segments.find((s) => s > segment);
        if (next === undefined) break;
        segment = next;
        offset = 0;
        continue;
      }
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - offset));
      const fd = openSync(this.file(segment), 'r');
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, offset);
      } finally {
        closeSync(fd);
      }
      let start = 0;
      for (let i = buf.indexOf(10, 0); i !== -1 && i < n && out.length < max; i = buf.indexOf(10, start)) {
        offset += i + 1 - start;
        out.push({ line: buf.toString('utf8', start, i), next: { segment, offset } });
        start = i + 1;
      }
      // A record longer than READ_CHUNK cannot happen: the segment size bounds records, and READ_CHUNK ≥ it.
      if (start === 0) break;
    }
    return out;
  }

  /** Records up to `pos` are delivered (or given up): saved, and fully delivered segments deleted. */
  ack(pos: Position): void {
    this.readPos = pos;
    while (this.segments.length > 1 && this.segments[0]! < pos.segment) this.deleteSegment(this.segments[0]!);
    try {
      const tmp = path.join(this.o.dir, `${POSITION_FILE}.tmp`);
      writeFileSync(tmp, JSON.stringify(pos));
      renameSync(tmp, path.join(this.o.dir, POSITION_FILE));
    } catch (err) {
      // The position on disk stays older: those records would be delivered again after a restart.
      this.o.onSyncError(err);
    }
  }

  /** Resolves at the next append (or close). */
  waitForAppend(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Syncs what was appended and closes the current segment. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.syncTimer);
    try {
      fsyncSync(this.fd);
    } catch (err) {
      this.o.onSyncError(err);
    }
    this.release(this.fd);
    for (const wake of this.waiters) wake();
    this.waiters = [];
  }

  private file(segment: number): string {
    return path.join(this.o.dir, `${String(segment).padStart(16, '0')}.ndjson`);
  }

  /** A crash mid-append leaves a record without its newline: it was never acknowledged to anyone, cut it. */
  private cutTornTail(segment: number): void {
    const size = this.sizes.get(segment) ?? 0;
    if (size === 0) return;
    const tail = Buffer.alloc(Math.min(size, this.segmentBytes + 1));
    readSync(this.fd, tail, 0, tail.length, size - tail.length);
    const keep = size - tail.length + tail.lastIndexOf(10) + 1;
    if (keep === size) return;
    ftruncateSync(this.fd, keep);
    this.sizes.set(segment, keep);
  }

  private loadPosition(): Position {
    const first = { segment: this.segments[0]!, offset: 0 };
    let saved: Position;
    try {
      saved = JSON.parse(readFileSync(path.join(this.o.dir, POSITION_FILE), 'utf8')) as Position;
    } catch {
      return first;
    }
    // Segments before the saved one were delivered; a saved segment that was dropped meanwhile: start at the oldest.
    if (!this.sizes.has(saved.segment)) return first;
    return { segment: saved.segment, offset: Math.min(saved.offset, this.sizes.get(saved.segment)!) };
  }

  private rotate(): number {
    fsyncSync(this.fd);
    this.release(this.fd);
    const next = this.segments.at(-1)! + 1;
    this.segments.push(next);
    this.sizes.set(next, 0);
    this.fd = openSync(this.file(next), 'a+');
    return next;
  }

  private enforceBound(): void {
    while (this.bytes > this.o.maxBytes && this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const from = this.readPos.segment === oldest ? this.readPos.offset : this.readPos.segment > oldest ? Infinity : 0;
      const lost = from === Infinity ? 0 : this.countLines(oldest, from);
      this.deleteSegment(oldest);
      if (this.readPos.segment <= oldest) this.readPos = { segment: this.segments[0]!, offset: 0 };
      if (lost > 0) this.o.onDropped(lost, 'spool_full');
    }
  }

  private countLines(segment: number, from: number): number {
    const data = readFileSync(this.file(segment));
    let lines = 0;
    for (let i = data.indexOf(10, from); i !== -1; i = data.indexOf(10, i + 1)) lines++;
    return lines;
  }

  private deleteSegment(segment: number): void {
    this.segments.splice(this.segments.indexOf(segment), 1);
    this.sizes.delete(segment);
    try {
      unlinkSync(this.file(segment));
    } catch (err) {
      this.o.onSyncError(err);
    }
  }

  /** Closes a segment's descriptor, unless an fdatasync runs on it (its callback closes it). */
  private release(fd: number): void {
    if (fd !== this.syncingFd) closeSync(fd);
  }

  private scheduleSync(): void {
    this.unsynced++;
    if (this.unsynced >= this.o.syncEvery) this.sync();
    else this.syncTimer ??= setTimeout(() => this.sync(), this.o.syncIntervalMs);
  }

  private sync(): void {
    // A sync under way re-arms the timer when it ends.
    if (this.syncingFd !== undefined || this.closed) return;
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    const fd = this.fd;
    this.syncingFd = fd;
    this.unsynced = 0;
    fdatasync(fd, (err) => {
      this.syncingFd = undefined;
      if (err) this.o.onSyncError(err);
      // Rotated or closed meanwhile: the descriptor was left open for this sync.
      if (fd !== this.fd || this.closed) closeSync(fd);
      if (this.unsynced > 0 && !this.closed) this.syncTimer ??= setTimeout(() => this.sync(), this.o.syncIntervalMs);
    });
  }
}
