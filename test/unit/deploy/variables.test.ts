/**
 * The deployment files name only variables that exist, and the defaults their comments state are the
 * defaults of src/config/variables.ts: a renamed variable or a changed default fails here, not in a
 * user's cluster.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultCell } from '../../../src/config/docs.js';
import { VARIABLE_NAMES, type VariableName } from '../../../src/config/variables.js';
import { ROOT } from './yaml-support.js';

/** docker-compose.yml, docker/**\/*.yml|yaml and every file under docker/k8s. */
function deploymentFiles(): string[] {
  const docker = path.join(ROOT, 'docker');
  const files = readdirSync(docker, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .filter((f) => /\.ya?ml$/.test(f) || f.startsWith(path.join(docker, 'k8s') + path.sep));
  return [path.join(ROOT, 'docker-compose.yml'), ...files].map((f) => path.relative(ROOT, f)).sort();
}

/** Upper-case names with an underscore that are not the gateway's, each with where it comes from. */
const OTHER_NAMES = new Set([
  'SLICE_BASE', 'SLICE_SIZE', // shell variables of the StatefulSet's start script
  'FOO_SERVICE_HOST', 'FOO_PORT', // the pattern of Kubernetes' service-link variables
  'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', // the AWS SDK's own, set by EKS for IRSA
]);

const NAME = /\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b(\*)?/g;
const KNOWN = new Set<string>(VARIABLE_NAMES);

/** What a name refers to: a variable, its X_FILE form, or (`LOGIN_BAN_*`) every variable with the prefix. */
function variablesNamed(name: string, wildcard: boolean): VariableName[] {
  if (wildcard) return VARIABLE_NAMES.filter((v) => v.startsWith(`${name}_`));
  const base = name.endsWith('_FILE') && KNOWN.has(name.slice(0, -'_FILE'.length)) ? name.slice(0, -'_FILE'.length) : name;
  return KNOWN.has(base) ? [base as VariableName] : [];
}

/** The prose of a file: comments in YAML and haproxy.cfg, every line of Markdown. */
function proseLines(file: string, text: string): { line: number; prose: string }[] {
  return text.split('\n').flatMap((raw, i) => {
    const prose = file.endsWith('.md') ? raw : raw.match(/(?:^|\s)#(.*)$/)?.[1];
    return prose === undefined ? [] : [{ line: i + 1, prose }];
  });
}

/** "NAME (30", "NAME (300 s)", "NAME, 8080:", "NAME defaults to 990": a number stated as NAME's default. */
const STATED_DEFAULT = /\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?: \(|, | defaults to | \(default )(\d+)\b/g;

const files = deploymentFiles();

describe('variables named by the deployment files', () => {
  it('covers compose files, the overrides and the Kubernetes manifests', () => {
    expect(files).toEqual(expect.arrayContaining(['docker-compose.yml', 'docker/compose.implicit.yml', 'docker/k8s/configmap.yaml', 'docker/k8s/README.md']));
  });

  it.each(files)('%s names only variables that exist', (file) => {
    const unknown = readFileSync(path.join(ROOT, file), 'utf8').split('\n').flatMap((text, i) =>
      [...text.matchAll(NAME)]
        .filter(([name, star]) => !OTHER_NAMES.has(name) && variablesNamed(name.replace(/\*$/, ''), star !== undefined).length === 0)
        .map(([name]) => `${file}:${i + 1}: ${name}`),
    );
    expect(unknown, 'no such variable in src/config/variables.ts').toStrictEqual([]);
  });

  it.each(files)('%s states the defaults the definitions have', (file) => {
    const wrong = proseLines(file, readFileSync(path.join(ROOT, file), 'utf8')).flatMap(({ line, prose }) =>
      [...prose.matchAll(STATED_DEFAULT)]
        .filter(([, name]) => KNOWN.has(name!))
        .filter(([, name, value]) => !defaultNumbers(name as VariableName).includes(value!))
        .map(([, name, value]) => `${file}:${line}: ${name} ${value}, but its default is ${defaultCell(name as VariableName)}`),
    );
    expect(wrong).toStrictEqual([]);
  });
});

/** The numbers in a default as the README shows it: "`21` (`990` when implicit)" → 21, 990. */
function defaultNumbers(name: VariableName): string[] {
  return defaultCell(name).match(/\d+/g) ?? [];
}

describe('the checks themselves', () => {
  it('find an unknown name, a stated default that differs, and accept X_FILE and prefix forms', () => {
    expect(variablesNamed('FTP_PASSWORD_FILE', false)).toStrictEqual(['FTP_PASSWORD']);
    expect(variablesNamed('LOGIN_BAN', true)).toStrictEqual(['LOGIN_BAN_THRESHOLD', 'LOGIN_BAN_WINDOW_SECONDS', 'LOGIN_BAN_SECONDS']);
    expect(variablesNamed('FTP_PASWORD', false)).toStrictEqual([]);
    expect(variablesNamed('NOPE_FILE', false)).toStrictEqual([]);
    const stated = [...'# lets transfers run for SHUTDOWN_GRACE_SECONDS (45 s); HTTP_PORT, 8080: health'.matchAll(STATED_DEFAULT)];
    expect(stated.map(([, name, value]) => [name, value, defaultNumbers(name as VariableName).includes(value!)])).toStrictEqual([
      ['SHUTDOWN_GRACE_SECONDS', '45', false],
      ['HTTP_PORT', '8080', true],
    ]);
  });
});
