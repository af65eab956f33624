import { definition, VARIABLE_NAMES, type VariableName, type Values } from './variables.js';

/** Variables as `VARIABLE=value` lines (check-config, .env.example); unset is empty, secrets are redacted. */
export function describeVariables(values: Values, names: readonly VariableName[] = VARIABLE_NAMES): string {
  return names.map((name) => `${name}=${shown(name, values[name])}`).join('\n');
}

function shown(name: VariableName, value: unknown): string {
  if (value === undefined) return '';
  const { secret, type } = definition(name);
  return secret ? '[redacted]' : type.format(value);
}
