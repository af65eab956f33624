import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envExample, README_TABLE_END, README_TABLE_START, readmeTable, withReadmeTable } from '../../../src/config/docs.js';
import { VARIABLE_NAMES } from '../../../src/config/variables.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const FIX = 'out of date with src/config/variables.ts: run `npm run docs:config`';

describe('documentation rendered from the variable definitions', () => {
  it('README.md holds the configuration table as rendered', () => {
    const readme = read('README.md');
    expect(readme.slice(readme.indexOf(README_TABLE_START), readme.indexOf(README_TABLE_END)), `README.md ${FIX}`).toBe(
      `${README_TABLE_START}\n${readmeTable()}\n`,
    );
  });

  it('.env.example is as rendered', () => {
    expect(read('.env.example'), `.env.example ${FIX}`).toBe(envExample());
  });

  it('names every variable once in each, in definition order', () => {
    const firstCells = readmeTable().split('\n').slice(2).map((row) => row.split(' | ')[0]!);
    const inTable = firstCells.flatMap((c) => [...c.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]));
    const inExample = [...envExample().matchAll(/^# ([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]);
    expect(inTable).toStrictEqual(VARIABLE_NAMES);
    expect(inExample).toStrictEqual(VARIABLE_NAMES);
  });

  it('escapes "|" inside a table cell, so every row keeps three cells', () => {
    for (const row of readmeTable().split('\n')) expect(row.split(/(?<!\\)\|/)).toHaveLength(5);
  });

  it('refuses to rewrite a README without its markers rather than appending a table somewhere', () => {
    expect(() => withReadmeTable('# A README\n\nno table here\n')).toThrow(/markers/);
    expect(() => withReadmeTable(`${README_TABLE_END}\n${README_TABLE_START}\n`)).toThrow(/markers/);
  });

  it('rewrites only the text between the markers', () => {
    const readme = `before\n${README_TABLE_START}\nstale\n${README_TABLE_END}\nafter\n`;
    expect(withReadmeTable(readme)).toBe(`before\n${README_TABLE_START}\n${readmeTable()}\n${README_TABLE_END}\nafter\n`);
  });
});
