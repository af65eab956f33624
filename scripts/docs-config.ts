/** `npm run docs:config`: rewrites the README's configuration table and .env.example from src/config/variables.ts. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { envExample, withReadmeTable } from '../src/config/docs.js';

const root = path.resolve(import.meta.dirname, '..');
const readme = path.join(root, 'README.md');
writeFileSync(readme, withReadmeTable(readFileSync(readme, 'utf8')));
writeFileSync(path.join(root, '.env.example'), envExample());
process.stdout.write('README.md (configuration table) and .env.example rewritten\n');
