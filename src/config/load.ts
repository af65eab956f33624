import { readFileSync } from 'node:fs';
import { parse } from 'dotenv';
import type { z } from 'zod';
import { ConfigError, type Config } from './config.js';
import { envSchema, VARIABLE_NAMES, variablesSchema, withoutUnset } from './schema.js';
import type { Values } from './variables.js';

/**
 * Resolves the configuration once at start-up. `env` (the caller passes process.env) wins over the
 * .env file; any variable X may be given as X_FILE, a path to read it from (Docker/Kubernetes secrets).
 * Throws a ConfigError listing every problem, one line each, never a secret's value.
 */
export function loadConfig(env: Record<string, string | undefined>, opts: LoadOptions = {}): Readonly<Config> {
  return load(envSchema, env, opts);
}

/** The same resolution, giving every variable's value rather than the Config (check-config prints them). */
export function loadVariables(env: Record<string, string | undefined>, opts: LoadOptions = {}): Readonly<Values> {
  return load(variablesSchema, env, opts);
}

interface LoadOptions {
  readonly dotenvPath?: string;
}

function load<T extends object>(schema: z.ZodType<T, unknown>, env: Record<string, string | undefined>, opts: LoadOptions): Readonly<T> {
  const problems: string[] = [];
  const vars = { ...readDotenv(opts.dotenvPath ?? '.env', problems), ...withoutUnset(env) };
  const failed = resolveFiles(vars, problems);
  const result = schema.safeParse(vars);
  for (const issue of result.error?.issues ?? []) {
    const name = String(issue.path[0]);
    // Such a variable is missing, so a rule may trip over it; its own problem already says why.
    if (!failed.has(name)) problems.push(`${name}: ${issue.message}`);
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(result.data);
}

/** A missing file is normal: containers pass the real environment. */
function readDotenv(path: string, problems: string[]): Record<string, string> {
  try {
    return withoutUnset(parse(readFileSync(path)));
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') problems.push(`${path}: cannot read the .env file (${errorCode(err)})`);
    return {};
  }
}

/** Replaces each X_FILE by X, the file's content less one trailing newline. Returns the variables that failed. */
function resolveFiles(vars: Record<string, string>, problems: string[]): Set<string> {
  const failed = new Set<string>();
  for (const name of VARIABLE_NAMES) {
    const file = vars[`${name}_FILE`];
    if (file === undefined) continue;
    if (vars[name] !== undefined) {
      problems.push(`${name}: set either ${name} or ${name}_FILE, not both`);
      failed.add(name);
      continue;
    }
    try {
      vars[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${JSON.stringify(file)} (${errorCode(err)})`);
      failed.add(name);
    }
  }
  return failed;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

function deepFreeze<T extends object>(value: T): Readonly<T> {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}
