import { describe, expect, it } from 'vitest';
import { baseName, joinVirtual, parentOf, resolveVirtualPath, ROOT, type VirtualPath } from '../../../src/storage/virtual-path.js';

const vp = (s: string): VirtualPath => s as VirtualPath;
const invalidName = expect.objectContaining({ name: 'StorageError', kind: 'invalid-name' });

describe('resolveVirtualPath', () => {
  it.each([
    ['/', '', '/'],
    ['/a/b', '', '/a/b'],
    ['/', 'a', '/a'],
    ['/a', 'b/c', '/a/b/c'],
    ['/a', '/x/y', '/x/y'],
    ['/a/b', '..', '/a'],
    ['/a/b', '../..', '/'],
    ['/', '..', '/'],
    ['/', '../../..', '/'],
    ['/a', '../../../etc/passwd', '/etc/passwd'],
    ['/a', '/../../etc', '/etc'],
    ['/a', './b/./c/', '/a/b/c'],
    ['/a', 'b//c///', '/a/b/c'],
    ['/a', '//', '/'],
    ['/a', '.', '/a'],
    ['/a', 'b/../c', '/a/c'],
    ['/a', 'x\\..\\y', '/a/x\\..\\y'],
    ['/a', '...', '/a/...'],
    ['/a', '..b', '/a/..b'],
    ['/a', ' spaced name ', '/a/ spaced name '],
  ])('%s + %j → %s', (cwd, input, expected) => {
    expect(resolveVirtualPath(vp(cwd), input)).toBe(expected);
  });

  it('refuses a NUL byte', () => {
    expect(() => resolveVirtualPath(ROOT, 'a\0b')).toThrow(invalidName);
  });
});

describe('parentOf / baseName / joinVirtual', () => {
  it.each([
    ['/', '/', ''],
    ['/a', '/', 'a'],
    ['/a/b/c', '/a/b', 'c'],
  ])('%s', (p, parent, base) => {
    expect(parentOf(vp(p))).toBe(parent);
    expect(baseName(vp(p))).toBe(base);
  });

  it('joins one name', () => {
    expect(joinVirtual(ROOT, 'a')).toBe('/a');
    expect(joinVirtual(vp('/a/b'), 'c.txt')).toBe('/a/b/c.txt');
  });

  it.each(['', '.', '..', 'a/b', '/a', 'a\0'])('refuses %j as a name', (name) => {
    expect(() => joinVirtual(vp('/a'), name)).toThrow(invalidName);
  });
});
