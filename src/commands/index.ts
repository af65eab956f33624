import * as connection from './connection.js';
import { dataSetupCommands } from './data-setup.js';
import { fileCommands } from './files.js';
import { navigationCommands } from './navigation.js';
import type { CommandSpec } from './registry.js';
import { transferCommands } from './transfers.js';

/** Every command the server implements. FEAT and HELP are derived from this table. */
export const allCommands: readonly CommandSpec[] = [
  ...Object.values(connection).filter((v): v is CommandSpec => typeof v === 'object' && 'verb' in v),
  ...navigationCommands,
  ...fileCommands,
  ...dataSetupCommands,
  ...transferCommands,
];
