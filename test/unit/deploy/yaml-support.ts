import { readFileSync, statSync } from 'node:fs';
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

/** Strategic-merge keys of the lists the patches here touch (Kubernetes' patchMergeKey for each field). */
const MERGE_KEYS: Record<string, string> = { containers: 'name', env: 'name', volumes: 'name', volumeMounts: 'mountPath' };

/** `patch` laid over `base` as a strategic merge patch: maps merged, keyed lists merged by key, `$patch: delete` removes. */
function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in out ? strategicMerge(out[k], v, k) : withoutDirectives(v);
    return out;
  }
  const key = MERGE_KEYS[field];
  if (key && Array.isArray(base) && Array.isArray(patch)) {
    let out = [...(base as Obj[])];
    const added: unknown[] = [];
    for (const item of patch as Obj[]) {
      const i = out.findIndex((b) => b[key] === item[key]);
      if (item.$patch === 'delete') {
        if (i < 0) throw new Error(`patch deletes ${field} ${String(item[key])}, which does not exist`);
        out = out.filter((_, j) => j !== i);
      } else if (i >= 0) out[i] = strategicMerge(out[i], item) as Obj;
      else added.push(withoutDirectives(item));
    }
    // kubectl puts new items first.
    return [...added, ...out];
  }
  return withoutDirectives(patch);
}

function withoutDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDirectives);
  if (!isObj(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== '$patch').map(([k, v]) => [k, withoutDirectives(v)]));
}

/**
 * What `kubectl kustomize dir` makes of the kustomizations in docker/k8s, for the parts they use: resources (files
 * and other kustomizations), strategic-merge patches by kind and name (`omitPatches` leaves some out, as a user
 * may), configMapGenerator from files (without kustomize's hash suffix) and the namespace. So the overlays are
 * checked where kubectl is missing; where it is present, a test compares this with kubectl's rendering.
 */
export function kustomize(dir: string, omitPatches: readonly string[] = []): Obj[] {
  const [k] = load(path.join(dir, 'kustomization.yaml'));
  let docs: Obj[] = [];
  for (const resource of (k!.resources ?? []) as string[]) {
    const file = path.join(dir, resource);
    docs.push(...(statSync(file).isDirectory() ? kustomize(file) : load(file)));
  }
  for (const generator of (k!.configMapGenerator ?? []) as Array<{ name: string; files: string[] }>) {
    const data = Object.fromEntries(generator.files.map((f) => [path.basename(f), readFileSync(path.join(dir, f), 'utf8')]));
    docs.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data });
  }
  for (const { path: file } of (k!.patches ?? []) as Array<{ path: string }>) {
    if (omitPatches.includes(file)) continue;
    for (const patch of load(path.join(dir, file))) {
      const target = docs.findIndex((d) => d.kind === patch.kind && at(d, 'metadata.name') === at(patch, 'metadata.name'));
      if (target < 0) throw new Error(`${file}: no ${String(patch.kind)} ${String(at(patch, 'metadata.name'))} to patch`);
      if (patch.$patch === 'delete') docs = docs.filter((_, i) => i !== target);
      else docs[target] = strategicMerge(docs[target], patch) as Obj;
    }
  }
  if (typeof k!.namespace === 'string') {
    for (const d of docs) if (d.kind !== 'Namespace') (d.metadata as Obj).namespace = k!.namespace;
  }
  return docs;
}
