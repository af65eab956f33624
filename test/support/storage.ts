/* Driving a StorageBackend directly, as the commands do: the storage contract suite and the local-disk suite. */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { FileReader, FileStat, StorageBackend, StorageErrorKind, UploadTarget } from '../../src/storage/storage.js';
import { resolveVirtualPath, ROOT, type VirtualPath } from '../../src/storage/virtual-path.js';

/** A client path, resolved as the session resolves it from the root. */
export const vp = (input: string): VirtualPath => resolveVirtualPath(ROOT, input);

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Rejects with a StorageError of that kind (or one of those kinds: the ones the commands answer alike). */
export async function expectKind(promise: Promise<unknown>, kind: StorageErrorKind | readonly StorageErrorKind[]): Promise<void> {
  const kinds: readonly StorageErrorKind[] = typeof kind === 'string' ? [kind] : kind;
  await expect(promise).rejects.toMatchObject({ name: 'StorageError', kind: expect.toBeOneOf([...kinds]) });
}

/** Everything from `start` to the end of the file, in reads of `chunk` bytes; closes the reader. */
export async function readToEnd(reader: FileReader, start = 0, chunk = 100_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for (let position = start; ; ) {
      const buffer = Buffer.alloc(chunk);
      const bytesRead = await reader.read(buffer, position);
      if (bytesRead === 0) return Buffer.concat(chunks);
      chunks.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await reader.close();
  }
}

/** Every entry of a listing. */
export async function listAll(backend: StorageBackend, p: VirtualPath): Promise<FileStat[]> {
  const entries: FileStat[] = [];
  for await (const entry of await backend.list(p)) entries.push(entry);
  return entries;
}

/** Writes `data` (in `chunk`-byte writes, like a data connection delivers it) and commits. */
export async function upload(target: UploadTarget, data: string | Buffer, chunk = 64 * 1024): Promise<void> {
  const bytes = Buffer.from(data);
  for (let at = 0; at < bytes.length; at += chunk) await target.write([bytes.subarray(at, at + chunk)]);
  await target.commit();
}

/** Writes without committing. */
export const writeChunk = (target: UploadTarget, data: string | Buffer): Promise<void> => target.write([Buffer.from(data)]);
