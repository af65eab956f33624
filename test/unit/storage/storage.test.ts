import { describe, expect, it } from 'vitest';
import { mapFsError, StorageError } from '../../../src/storage/storage.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, open '/srv/data/alice/secret.txt'`), { code });
}

describe('mapFsError', () => {
  it.each([
    ['ENOENT', 'not-found'],
    ['EEXIST', 'exists'],
    ['ENOTDIR', 'not-a-directory'],
    ['EISDIR', 'is-a-directory'],
    ['ENOTEMPTY', 'not-empty'],
    ['EACCES', 'permission'],
    ['EPERM', 'permission'],
    ['EROFS', 'permission'],
    ['ENOSPC', 'no-space'],
    ['EDQUOT', 'quota'],
    ['ENAMETOOLONG', 'invalid-name'],
    ['EIO', 'io'],
    ['EXDEV', 'io'],
    ['constructor', 'io'],
  ])('%s → %s', (code, kind) => {
    const original = errno(code);
    const mapped = mapFsError(original);
    expect(mapped).toBeInstanceOf(StorageError);
    expect(mapped.kind).toBe(kind);
    expect(mapped.cause).toBe(original);
    expect(mapped.message).not.toContain('/srv');
    expect(mapped.message).not.toContain(code);
  });

  it('maps values that are not errno errors to io', () => {
    expect(mapFsError(new Error('boom')).kind).toBe('io');
    expect(mapFsError('boom').kind).toBe('io');
    expect(mapFsError(undefined).kind).toBe('io');
  });

  it('passes a StorageError through unchanged', () => {
    const err = new StorageError('outside-root');
    expect(mapFsError(err)).toBe(err);
    expect(err.message).toBe('Permission denied');
    expect(err.name).toBe('StorageError');
  });
});
