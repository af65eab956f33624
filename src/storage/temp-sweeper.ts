import type { Dir } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { TEMP_NAME } from './local-fs.js';

const HOUR_MS = 60 * 60 * 1000;
/** Directory entries handled between two turns of the event loop. */
const ENTRIES_PER_TURN = 256;
/** Warnings per sweep: a volume full of undeletable files must not flood the log; the summary counts them all. */
const MAX_WARNINGS = 10;

/**
 * How old a temporary upload file must be to be a dead process's leftover. Only `replace` uploads use one
 * (REST+STOR and APPE write in place), and a live one is written at least every 3 × DATA_TIMEOUT_SECONDS:
 * before the first byte, the data connection may take that long to open, its TLS handshake as long again and
 * the first byte as long again; after it, a transfer stalled that long is aborted and its file removed.
 * Four times leaves a margin; the hour covers clock skew and NFS attribute caches between replicas on one volume.
 */
export function safeAgeMs(dataTimeoutSeconds: number): number {
  return Math.max(HOUR_MS, 4 * dataTimeoutSeconds * 1000);
}

export interface SweepOptions {
  readonly root: string;
  /** Files whose mtime is older than this are removed. */
  readonly olderThanMs: number;
  readonly log: Logger;
  /** Stops the walk at the next directory entry. */
  readonly signal: AbortSignal;
}

export interface SweepSummary {
  readonly removed: number;
  readonly bytes: number;
  /** Directories read, the root included. */
  readonly directories: number;
  /** Files that could not be removed and directories that could not be read. */
  readonly failures: number;
  readonly durationMs: number;
  readonly aborted: boolean;
}

const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;

/**
 * Walks `root` without following symlinks and removes regular files named exactly like a temporary upload
 * file and older than `olderThanMs`; logs one summary line. Never rejects on file system errors: they are
 * logged and counted. Other replicas may sweep the same volume at the same time: whatever vanishes under us
 * (their work, or an upload's own rename) is simply skipped.
 */
export async function sweepTempFiles({ root, olderThanMs, log, signal }: SweepOptions): Promise<SweepSummary> {
  const started = performance.now();
  let removed = 0;
  let bytes = 0;
  let directories = 0;
  let failures = 0;
  let sinceTurn = 0;
  const fail = (err: unknown, at: string, msg: string) => {
    if (++failures <= MAX_WARNINGS) log.warn({ err, path: at }, msg);
  };

  const removeIfStale = async (file: string): Promise<void> => {
    try {
      // lstat, not the directory entry's type: the name may have been replaced since the directory was read.
      const st = await fs.lstat(file);
      if (!st.isFile() || Date.now() - st.mtimeMs <= olderThanMs) return;
      await fs.unlink(file);
      removed++;
      bytes += st.size;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) fail(err, file, 'cannot remove a stale temporary upload file');
    }
  };

  // Depth first with an explicit stack: only directory paths wait in memory, never a directory's entries.
  const pending = [root];
  for (let dir = pending.pop(); dir !== undefined && !signal.aborted; dir = pending.pop()) {
    let handle: Dir;
    try {
      handle = await fs.opendir(dir);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) fail(err, dir, 'cannot read a directory while sweeping temporary upload files');
      continue;
    }
    directories++;
    try {
      // One file system request at a time: the sweep holds at most one of the thread pool's threads that transfers use too.
      for await (const entry of handle) {
        if (signal.aborted) break;
        if (++sinceTurn === ENTRIES_PER_TURN) {
          sinceTurn = 0;
          await nextTurn();
        }
        const full = path.join(dir, entry.name);
        // Dirent types come from lstat semantics: a symlink is neither, so it is never followed nor removed.
        if (entry.isDirectory()) pending.push(full);
        else if (entry.isFile() && TEMP_NAME.test(entry.name)) await removeIfStale(full);
      }
    } catch (err) {
      fail(err, dir, 'cannot read a directory while sweeping temporary upload files');
    }
  }

  const summary = {
    removed,
    bytes,
    directories,
    failures,
    durationMs: Math.round(performance.now() - started),
    aborted: signal.aborted,
  };
  log.info({ root, olderThanSeconds: olderThanMs / 1000, ...summary }, 'temporary upload files swept');
  return summary;
}

/**
 * Sweeps FTP_ROOT at start and again every safe age until `signal` aborts. Once at start would miss the
 * very leftovers it is for: a replica killed and restarted at once finds its own debris too young to remove,
 * and a replica that dies for good may not be followed by any start. Never rejects.
 */
export async function sweepPeriodically(o: {
  readonly root: string;
  readonly dataTimeoutSeconds: number;
  readonly log: Logger;
  readonly signal: AbortSignal;
}): Promise<void> {
  const safeAge = safeAgeMs(o.dataTimeoutSeconds);
  while (!o.signal.aborted) {
    await sweepTempFiles({ root: o.root, olderThanMs: safeAge, log: o.log, signal: o.signal }).catch((err: unknown) =>
      o.log.error({ err }, 'sweeping temporary upload files failed'),
    );
    // Unreferenced: the wait alone must not keep the process alive; abort ends it at once.
    await sleep(safeAge, undefined, { signal: o.signal, ref: false }).catch(() => undefined);
  }
}
