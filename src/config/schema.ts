import { z } from 'zod';
import { toConfig } from './config.js';
import { definition, VARIABLE_NAMES, type VariableName, type Values, type VARIABLES } from './variables.js';

export { INTERMEDIATE_TLS12_CIPHERS } from './variables.js';
export { SECRET_VARIABLES, VARIABLE_NAMES, type VariableName } from './variables.js';

/** Drops unset entries. An empty value counts as unset, so `X=` in a compose file or .env means "use the default". */
export function withoutUnset(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
  );
}

/** What the rules see: defaults that are values are applied, defaults computed from other variables not yet. */
type Parsed = {
  readonly [K in VariableName]: (typeof VARIABLES)[K] extends { readonly default: (values: never) => unknown } ? Values[K] | undefined : Values[K];
};

/** Each variable's schema; zod applies the plain defaults. Typed by `Parsed`, which the definitions determine. */
const variables = z.object(
  Object.fromEntries(
    VARIABLE_NAMES.map((name) => {
      const { type, default: fallback } = definition(name);
      const schema = type.schema.optional();
      return [name, fallback === undefined || typeof fallback === 'function' ? schema : schema.default(fallback)];
    }),
  ),
) as unknown as z.ZodType<Parsed, Record<string, string>>;

/** Applies the computed defaults in definition order, so each may read the variables above it. */
function withComputedDefaults(parsed: Parsed): Values {
  const values: Record<string, unknown> = { ...parsed };
  for (const name of VARIABLE_NAMES) {
    const fallback = definition(name).default;
    if (values[name] === undefined && typeof fallback === 'function') values[name] = fallback(values as Values);
  }
  return values as Values;
}

/**
 * A rule across variables. It runs whenever the variables it reads parsed, even if others failed,
 * so that one run reports every problem.
 */
function rule(reads: readonly VariableName[], check: (vars: Parsed, ctx: z.RefinementCtx<Parsed>) => void) {
  const names: readonly PropertyKey[] = reads;
  return z.superRefine(check, { when: (payload) => !payload.issues.some((issue) => names.includes(issue.path?.[0] ?? '')) });
}

function bothOrNeither(a: VariableName, b: VariableName) {
  return rule([a, b], (vars, ctx) => {
    for (const [set, missing] of [[a, b], [b, a]] as const) {
      if (vars[set] !== undefined && vars[missing] === undefined) {
        ctx.addIssue({ code: 'custom', path: [missing], message: `required when ${set} is set` });
      }
    }
  });
}

const clientAuthNeedsCa = rule(['TLS_CLIENT_AUTH', 'TLS_CLIENT_CA_PATH'], (vars, ctx) => {
  if (vars.TLS_CLIENT_AUTH !== 'none' && vars.TLS_CLIENT_CA_PATH === undefined) {
    ctx.addIssue({ code: 'custom', path: ['TLS_CLIENT_CA_PATH'], message: `required when TLS_CLIENT_AUTH is ${vars.TLS_CLIENT_AUTH}` });
  }
});

const pasvRange = rule(['PASV_MIN_PORT', 'PASV_MAX_PORT'], ({ PASV_MIN_PORT: min, PASV_MAX_PORT: max }, ctx) => {
  if (min > max) {
    ctx.addIssue({ code: 'custom', path: ['PASV_MIN_PORT'], message: `must not be greater than PASV_MAX_PORT (${min} > ${max})` });
  }
});

const tlsVersions = rule(['TLS_MIN_VERSION', 'TLS_MAX_VERSION'], ({ TLS_MIN_VERSION: min, TLS_MAX_VERSION: max }, ctx) => {
  if (min > max) ctx.addIssue({ code: 'custom', path: ['TLS_MIN_VERSION'], message: `must not be above TLS_MAX_VERSION (${min} > ${max})` });
});

const proxyNeedsTrust = rule(['PROXY_PROTOCOL', 'PROXY_TRUSTED_CIDRS'], (vars, ctx) => {
  if (vars.PROXY_PROTOCOL !== 'off' && vars.PROXY_TRUSTED_CIDRS === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['PROXY_TRUSTED_CIDRS'],
      message: `required when PROXY_PROTOCOL is ${vars.PROXY_PROTOCOL} (the load balancers' addresses)`,
    });
  }
});

const ldapNeeds = rule(['LDAP_URL', 'LDAP_USER_BASE', 'LDAP_RW_GROUP', 'LDAP_RO_GROUP'], (vars, ctx) => {
  if (vars.LDAP_URL === undefined) return;
  if (vars.LDAP_USER_BASE === undefined) ctx.addIssue({ code: 'custom', path: ['LDAP_USER_BASE'], message: 'required when LDAP_URL is set' });
  if (vars.LDAP_RW_GROUP === undefined && vars.LDAP_RO_GROUP === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['LDAP_RW_GROUP'],
      message: 'LDAP_RW_GROUP or LDAP_RO_GROUP is required when LDAP_URL is set (users in neither group are refused)',
    });
  }
});

const s3Needs = rule(['STORAGE_BACKEND', 'S3_BUCKET'], (vars, ctx) => {
  if (vars.STORAGE_BACKEND === 's3' && vars.S3_BUCKET === undefined) {
    ctx.addIssue({ code: 'custom', path: ['S3_BUCKET'], message: 'required when STORAGE_BACKEND is s3' });
  }
});

/** The variables checked one by one and across; unset entries dropped first. */
const checked = z.preprocess(
  withoutUnset,
  variables.check(
    bothOrNeither('DATA_TLS_CERT_PATH', 'DATA_TLS_KEY_PATH'),
    bothOrNeither('FTP_USER', 'FTP_PASSWORD'),
    bothOrNeither('LDAP_BIND_DN', 'LDAP_BIND_PASSWORD'),
    bothOrNeither('EVENT_WEBHOOK_URL', 'EVENT_WEBHOOK_SECRET'),
    bothOrNeither('S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'),
    ldapNeeds,
    s3Needs,
    pasvRange,
    tlsVersions,
    clientAuthNeedsCa,
    proxyNeedsTrust,
  ),
);

/** Environment variables → every variable's value, defaults applied (check-config, .env.example). */
export const variablesSchema = checked.transform(withComputedDefaults);

/**
 * Environment variables → Config. Unknown variables are ignored; issue paths name the variable.
 * X_FILE indirection and the .env file are load.ts's business: this sees plain values.
 */
export const envSchema = checked.transform((parsed) => toConfig(withComputedDefaults(parsed), (name) => parsed[name] !== undefined));
