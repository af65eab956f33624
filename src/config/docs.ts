import { describeVariables } from './describe.js';
import { variablesSchema } from './schema.js';
import { definition, GROUPS, type VariableName } from './variables.js';

/**
 * What users read about the variables, rendered from their definitions: the README's configuration table,
 * .env.example and the short list of `--help`. `npm run docs:config` writes the first two; a unit test
 * fails while the files in the repository differ from what this renders.
 */

export const README_TABLE_START = '<!-- config-table:start (npm run docs:config) -->';
export const README_TABLE_END = '<!-- config-table:end -->';

/** Every variable's value in an empty environment: plain and computed defaults applied. */
const DEFAULTS = variablesSchema.parse({});

/** Variables documented together (`documentedWith`): one README row, one .env.example comment. */
function documentedGroups(names: readonly VariableName[]): VariableName[][] {
  const rows: VariableName[][] = [];
  for (const name of names) {
    const { documentedWith } = definition(name);
    const previous = rows.at(-1);
    if (documentedWith === undefined) rows.push([name]);
    else if (previous?.includes(documentedWith as VariableName)) previous.push(name);
    else throw new Error(`${name}: documentedWith ${documentedWith} must name a variable just above it`);
  }
  return rows;
}

/** The default as the README shows it (Markdown): `shown` when given, else the value, else a dash. */
export function defaultCell(name: VariableName): string {
  const { shown, default: fallback } = definition(name);
  if (shown !== undefined) return shown;
  return fallback === undefined ? '—' : `\`${definition(name).type.format(DEFAULTS[name])}\``;
}

/** One cell for several variables: their defaults joined by " / ", or once when they are all the same. */
function defaultsCell(names: readonly VariableName[]): string {
  const cells = names.map(defaultCell);
  return cells.every((cell) => cell === cells[0]) ? cells[0]! : cells.join(' / ');
}

/** The description of a row: every member's `doc` (only the first has one). */
function docOf(names: readonly VariableName[]): string {
  const doc = definition(names[0]!).doc;
  if (doc === undefined) throw new Error(`${names[0]}: no doc`);
  return doc;
}

const plain = (markdown: string): string => markdown.replace(/[`*]/g, '');
// A bare "|" would end the table cell.
const cell = (markdown: string): string => markdown.replaceAll('|', '\\|');

export function readmeTable(): string {
  const rows = documentedGroups(GROUPS.flatMap((g) => Object.keys(g.variables) as VariableName[])).map(
    (names) => `| ${names.map((n) => `\`${n}\``).join(' / ')} | ${cell(defaultsCell(names))} | ${cell(docOf(names))} |`,
  );
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** `readme` with the text between the markers replaced by the table. */
export function withReadmeTable(readme: string): string {
  const start = readme.indexOf(README_TABLE_START);
  const end = readme.indexOf(README_TABLE_END);
  if (start < 0 || end < start) throw new Error(`README.md: the markers ${README_TABLE_START} … ${README_TABLE_END} are missing`);
  return `${readme.slice(0, start + README_TABLE_START.length)}\n${readmeTable()}\n${readme.slice(end)}`;
}

const ENV_EXAMPLE_HEADER = `# ftps-gateway configuration. Every line shows the default; uncomment to change it.
# The real environment wins over this file, and an empty value counts as unset.
# Any variable X may instead be given as X_FILE=/path/to/file (e.g. a Docker or Kubernetes
# secret); the file's content, less one trailing newline, is the value. Setting both is an error.
# Booleans: true/false/1/0/yes/no. Check the result with \`ftps-gateway check-config\`.
# Generated from src/config/variables.ts by \`npm run docs:config\`.`;

const COMMENT_WIDTH = 110;

/** The .env.example comment of a row: the description as a sentence, what unset means, what is secret. */
function envComment(names: readonly VariableName[]): string {
  // A default that is not a value (none, or computed) is explained; a value is on the NAME=value line.
  const explained = names.filter((n) => {
    const { shown, default: fallback } = definition(n);
    return shown !== undefined && (fallback === undefined || typeof fallback === 'function');
  });
  const secrets = names.filter((n) => definition(n).secret);
  const doc = docOf(names);
  // A description that starts with a value (`json`, …) keeps its spelling.
  let sentence = doc.startsWith('`') ? plain(doc) : plain(doc[0]!.toUpperCase() + doc.slice(1));
  if (explained.length > 0) sentence += `; unset means ${plain(defaultsCell(explained))}`;
  if (secrets.length > 0) sentence += names.length === 1 ? ' (secret)' : ` (${secrets.join(', ')}: secret)`;
  return wrap(`${sentence}.`).map((line) => `# ${line}`).join('\n');
}

function wrap(text: string): string[] {
  const lines = [''];
  for (const word of text.split(' ')) {
    const last = lines.at(-1)!;
    if (last !== '' && last.length + 1 + word.length > COMMENT_WIDTH - 2) lines.push(word);
    else lines[lines.length - 1] = last === '' ? word : `${last} ${word}`;
  }
  return lines;
}

export function envExample(): string {
  const sections = GROUPS.map((group) => {
    const rows = documentedGroups(Object.keys(group.variables) as VariableName[]).map((names) =>
      [envComment(names), describeVariables(DEFAULTS, names).split('\n').map((line) => `# ${line}`).join('\n')].join('\n'),
    );
    return [`# --- ${group.title} ---`, ...rows].join('\n');
  });
  return `${[ENV_EXAMPLE_HEADER, ...sections].join('\n\n')}\n`;
}

/** `--help`'s list: each variable and its default, by section; the README explains them. */
export function variablesHelp(): string {
  const width = Math.max(...GROUPS.flatMap((g) => Object.keys(g.variables).map((n) => n.length)));
  return GROUPS.map((group) =>
    [group.title, ...(Object.keys(group.variables) as VariableName[]).map((name) => {
      const value = plain(defaultCell(name));
      const secret = definition(name).secret ? ' (secret)' : '';
      return `  ${name.padEnd(width)}  ${value === '—' ? '' : value}${secret}`.trimEnd();
    })].join('\n'),
  ).join('\n\n');
}
