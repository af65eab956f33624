/*
 * Race-free confinement of a user to their home directory.
 *
 * The threat: a path checked with realpath() and then opened by its string can be changed in between. With a
 * symlink leading out of the home anywhere in it (put there by anything else sharing the volume), a rename
 * racing the check let a user with FTP commands only read, write and delete outside the home, within a second.
 *
 * The mechanism: nothing here ever acts on a path string below the home. Every operation opens the home and
 * then each directory on the way one component at a time, each with O_NOFOLLOW relative to the handle of its
 * parent: `/proc/self/fd/<parent fd>/<name>` is Linux's way to get openat() semantics from Node (the magic link
 * jumps to the directory the descriptor holds, whatever it is called now, and only `name` is looked up in it).
 * The final step (open, unlink, rename, mkdir, …) names one entry in the handle of its directory in the same way.
 * A symlink met on the way is never followed by the kernel: with FOLLOW_SYMLINKS its target is read and walked
 * the same way, component by component, from the home (absolute targets) or from where the link is (relative
 * ones), and refused as soon as it would leave the home; without FOLLOW_SYMLINKS every symlink is refused. A
 * rename racing a walk can only make it fail, never lead it out.
 *
 * The cost: one open and close per path component per operation (a few microseconds each), and one file
 * descriptor per directory level while an operation runs.
 */
import { constants, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { StorageError } from './storage.js';

/** Linux, like the kernel's own limit on symlinks in one lookup (MAXSYMLINKS). */
const MAX_LINK_HOPS = 40;
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export const isErrno = (err: unknown, ...codes: string[]): boolean =>
  codes.includes((err as NodeJS.ErrnoException | null)?.code ?? '');

/** A symlink on the way leads out of the home, or symlinks are not followed at all. */
const refused = (): StorageError => new StorageError('outside-root');

/** An open directory inside the home and where it is, as real components from the home. */
export interface DirRef {
  readonly handle: FileHandle;
  /** Real (symlink-free) path components from the home; [] for the home itself. */
  readonly components: readonly string[];
}

/** The path through which the kernel acts on `name` inside `dir`, without following anything but `dir`'s descriptor. */
export const entryPath = (dir: DirRef | FileHandle, name?: string): string => {
  const fd = 'handle' in dir ? dir.handle.fd : dir.fd;
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
};

/**
 * One operation's walk. The directories it hands out stay open until close(); directories passed on the way are
 * closed as soon as the walk has moved past them, so a deep path holds one descriptor per level at most briefly.
 */
export class Walk {
  /** Handed out by directory()/entry(): closed by close(). */
  readonly #results: FileHandle[] = [];
  #hops = 0;

  private constructor(
    private readonly root: DirRef,
    private readonly realRoot: () => Promise<string>,
    private readonly followSymlinks: boolean,
    private readonly ownsRoot: boolean,
  ) {}

  /** Opens the home (its own path is the administrator's and may contain symlinks) for one operation. */
  static async begin(home: string, realRoot: () => Promise<string>, followSymlinks: boolean): Promise<Walk> {
    const handle = await fs.open(home, constants.O_RDONLY | constants.O_DIRECTORY);
    return new Walk({ handle, components: [] }, realRoot, followSymlinks, true);
  }

  /** A walk from the same home whose directories close separately (one listed entry among thousands). */
  fork(): Walk {
    return new Walk(this.root, this.realRoot, this.followSymlinks, false);
  }

  async close(): Promise<void> {
    const handles = this.#results.splice(0);
    if (this.ownsRoot) handles.push(this.root.handle);
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }

  /** The directory that `components` (relative to the home, no `.` or `..`) names, every symlink checked. */
  async directory(components: readonly string[]): Promise<DirRef> {
    return this.#keep(await this.#walk(this.root, [...components]));
  }

  /**
   * The directory holding the entry `components` names, and the entry's name. With `follow`, an entry that is
   * a symlink is replaced by its target (checked like any path) until it is none or does not exist. The home
   * itself has no entry here (the caller's operation would act on the home).
   */
  async entry(components: readonly string[], follow: boolean): Promise<{ dir: DirRef; name: string }> {
    let base = this.root;
    const queue = [...components];
    for (;;) {
      let dir: DirRef;
      let name: string;
      if (queue.length === 0 || queue[queue.length - 1] === '..') {
        // A link to `..` or to the home: the entry is the directory it ends on, named from its parent.
        const target = this.#keep(await this.#walk(base, queue));
        if (target.components.length === 0) throw new StorageError('permission');
        dir = this.#keep(await this.#walk(this.root, target.components.slice(0, -1)));
        name = target.components[target.components.length - 1]!;
      } else {
        name = queue.pop()!;
        dir = this.#keep(await this.#walk(base, queue));
      }
      if (!follow || !(await lstatOrUndefined(entryPath(dir, name)))?.isSymbolicLink()) return { dir, name };
      const target = await this.#linkTarget(dir, name);
      base = target.base;
      queue.splice(0, queue.length, ...target.rest);
    }
  }

  /** lstat of an entry, its symlink followed when allowed (a dangling or refused link shows as the link itself). */
  async statEntry(dir: DirRef, name: string): Promise<Stats> {
    const own = await fs.lstat(entryPath(dir, name));
    if (!own.isSymbolicLink() || !this.followSymlinks) return own;
    const walk = this.fork();
    try {
      const target = await walk.entry([...dir.components, name], true);
      return await fs.lstat(entryPath(target.dir, target.name));
    } catch (err) {
      if (err instanceof StorageError || isErrno(err, 'ENOENT', 'ENOTDIR', 'ELOOP')) return own;
      throw err;
    } finally {
      await walk.close();
    }
  }

  #keep(dir: DirRef): DirRef {
    if (dir.handle !== this.root.handle && !this.#results.includes(dir.handle)) this.#results.push(dir.handle);
    return dir;
  }

  /**
   * Walks `queue` from `start`; `..` (only in link targets) goes up one real level, never above the home.
   * Returns a directory the caller must #keep (or `start`/the root); closes every other one it opened.
   */
  async #walk(start: DirRef, queue: string[]): Promise<DirRef> {
    const passed = new Set<FileHandle>();
    let dir = start;
    const move = (next: DirRef) => {
      if (next.handle !== dir.handle && passed.has(dir.handle)) {
        passed.delete(dir.handle);
        void dir.handle.close().catch(() => undefined);
      }
      dir = next;
    };
    try {
      while (queue.length > 0) {
        const name = queue.shift()!;
        if (name === '..') {
          if (dir.components.length === 0) throw refused();
          const up = await this.#walk(this.root, dir.components.slice(0, -1));
          if (up.handle !== this.root.handle) passed.add(up.handle);
          move(up);
          continue;
        }
        const child = await this.#openChild(dir, name);
        if (child) {
          passed.add(child.handle);
          move(child);
          continue;
        }
        const target = await this.#linkTarget(dir, name);
        queue.unshift(...target.rest);
        move(target.base);
      }
      passed.delete(dir.handle);
      return dir;
    } finally {
      await Promise.all([...passed].map((h) => h.close().catch(() => undefined)));
    }
  }

  /** Opens a subdirectory without following it; undefined when it is a symlink (to be resolved by the caller). */
  async #openChild(dir: DirRef, name: string): Promise<DirRef | undefined> {
    try {
      const handle = await fs.open(entryPath(dir, name), OPEN_DIR);
      return { handle, components: [...dir.components, name] };
    } catch (err) {
      // O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR (or ELOOP): look at what is there.
      if (!isErrno(err, 'ENOTDIR', 'ELOOP')) throw err;
      const st = await fs.lstat(entryPath(dir, name));
      if (!st.isSymbolicLink()) throw err;
      return undefined;
    }
  }

  /**
   * Where a symlink points, as components to walk (may contain `..`): an absolute target from the home
   * (refused when outside it), a relative one from the link's directory.
   */
  async #linkTarget(dir: DirRef, name: string): Promise<{ base: DirRef; rest: string[] }> {
    if (!this.followSymlinks || ++this.#hops > MAX_LINK_HOPS) throw refused();
    const target = await fs.readlink(entryPath(dir, name));
    const parts = (text: string) => text.split('/').filter((c) => c !== '' && c !== '.');
    if (!path.isAbsolute(target)) return { base: dir, rest: parts(target) };
    const rel = path.relative(await this.realRoot(), path.normalize(target));
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) throw refused();
    return { base: this.root, rest: parts(rel) };
  }
}

/** lstat, or undefined when nothing is there. */
export async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}
