import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** Reading deployment YAML (compose files, Kubernetes manifests) with failures that name the path. */

export const ROOT = path.resolve(import.meta.dirname, '../../..');

export type Obj = Record<string, unknown>;

export const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The value at a dotted path, failing with the path when a step is missing or not an object. */
export function at(value: unknown, dotted: string): unknown {
  let current = value;
  for (const key of dotted.split('.')) {
    if (!isObj(current)) throw new Error(`${dotted}: "${key}" is not inside an object`);
    current = current[key];
  }
  return current;
}

export function objAt(value: unknown, dotted: string): Obj {
  const found = at(value, dotted);
  if (!isObj(found)) throw new Error(`${dotted}: expected an object, found ${JSON.stringify(found)}`);
  return found;
}

export function listAt(value: unknown, dotted: string): Obj[] {
  const found = at(value, dotted);
  if (!Array.isArray(found)) throw new Error(`${dotted}: expected a list, found ${JSON.stringify(found)}`);
  return found as Obj[];
}

/** Every document of a file (merge keys on, as Compose reads them); parse errors and warnings fail the test. */
export function load(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { prettyErrors: true, merge: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: no YAML documents`);
  const problems = docs.flatMap((d) => [...d.errors, ...d.warnings]).map((e) => e.message);
  if (problems.length > 0) throw new Error(`${path.relative(ROOT, file)}:\n${problems.join('\n')}`);
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}
