import { StorageError } from './storage.js';

declare const virtualPathBrand: unique symbol;

/** A path as the client sees it: absolute, normalized POSIX, no trailing slash except the root itself. */
export type VirtualPath = string & { readonly [virtualPathBrand]: true };

export const ROOT = '/' as VirtualPath;

/**
 * Resolves a client-supplied path against the current directory. `..` at the root stays at the root,
 * so no input can name anything above it. Backslashes are ordinary file-name characters.
 */
export function resolveVirtualPath(cwd: VirtualPath, input: string): VirtualPath {
  if (input.includes('\0')) throw new StorageError('invalid-name');
  const parts = input.startsWith('/') ? [] : cwd.split('/').filter(Boolean);
  for (const part of input.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '' && part !== '.') parts.push(part);
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
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new StorageError('invalid-name');
  }
  return (dir === ROOT ? `/${name}` : `${dir}/${name}`) as VirtualPath;
}
