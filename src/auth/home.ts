import path from 'node:path';

export interface HomeRules {
  /** FTP_ROOT: homes are relative to it and must stay inside it. */
  readonly root: string;
  /** FTP_ANONYMOUS_ROOT when anonymous access is on: no home may lie inside it, or anonymous would read it. */
  readonly anonymousRoot?: string | undefined;
}

/**
 * A home as a user source gives it (relative to FTP_ROOT; "." is FTP_ROOT itself) → its absolute directory, or
 * why it is refused. Without ".." segments a relative path cannot leave the root; the storage layer confines
 * everything below it.
 */
export function resolveHome(home: string, { root, anonymousRoot }: HomeRules): { homeDir: string } | { problem: string } {
  const quoted = JSON.stringify(home);
  if (home === '' || path.isAbsolute(home) || home.split('/').includes('..') || home.includes('\0')) {
    return { problem: `home ${quoted} must be a relative path inside FTP_ROOT (no "..")` };
  }
  const homeDir = path.resolve(root, home);
  if (anonymousRoot !== undefined && isWithin(anonymousRoot, homeDir)) {
    return { problem: `home ${quoted} (${homeDir}) is inside FTP_ANONYMOUS_ROOT (${anonymousRoot}): anonymous users could read it` };
  }
  return { homeDir };
}

/** `inner` is `dir` or lies below it (path.relative, not a string prefix: /data/pub2 is not in /data/pub). */
export function isWithin(dir: string, inner: string): boolean {
  const rel = path.relative(dir, inner);
  return rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
