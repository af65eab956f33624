import { StorageError } from './storage.js';

declare const virtualPathBrand: unique symbol;

/** A path as the client sees it: absolute, normalized POSIX, no trailing slash except the root itself. */
export type VirtualPath = string & { readonly [virtualPathBrand]: true };

export const ROOT = '/' as VirtualPath;

/**
 * Names a client may not use: the server's own temporary upload files start like this (listings hide them and
 * a sweep removes old ones, so a user's file of that name would vanish).
 */
export const RESERVED_PREFIX = '.ftps-upload-';

/**
 * A name no client may create or address: NUL cannot be in a file name, CR and LF would split listing and
 * reply lines (RFC 959 has no escape for them that clients agree on), reserved names belong to the server.
 */
export const isClientName = (name: string): boolean => !/[\0\r\n]/.test(name) && !name.startsWith(RESERVED_PREFIX);

/**
 * Resolves a client-supplied path against the current directory. `..` at the root stays at the root,
 * so no input can name anything above it. Backslashes are ordinary file-name characters.
 */
export function resolveVirtualPath(cwd: VirtualPath, input: string): VirtualPath {
  const parts = input.startsWith('/') ? [] : cwd.split('/').filter(Boolean);
  for (const part of input.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '' && part !== '.') {
      if (!isClientName(part)) throw new StorageError('invalid-name');
      parts.push(part);
    }
  }
  return `/${parts.join('/')}` as VirtualPath;
}

export function parentOf(p: VirtualPath): VirtualPath {
  return (p.slice(0, p.lastIndexOf('/')) || '/') as VirtualPath;
}

/** The last component; '' for the root. */
export function baseName(p: VirtualPath): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Appends one directory entry name; anything that is not a single plain name is refused. */
export function joinVirtual(dir: VirtualPath, name: string): VirtualPath {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || !isClientName(name)) {
    throw new StorageError('invalid-name');
  }
  return (dir === ROOT ? `/${name}` : `${dir}/${name}`) as VirtualPath;
}

/** The names from the root down; [] for the root. */
export const componentsOf = (p: VirtualPath): string[] => p.split('/').filter(Boolean);
