import type { Config } from '../config/config.js';
import type { AnyReply } from '../protocol/replies.js';
import type { CommandCatalog, CommandContext } from './context.js';

export interface CommandSpec {
  readonly verb: string;
  /** 'any': allowed before login; 'authenticated': 530 before login. */
  readonly access: 'any' | 'authenticated';
  readonly arg: 'none' | 'optional' | 'required';
  /** FEAT lines this command contributes; a function when they depend on configuration. */
  readonly feat?: readonly string[] | ((config: Config) => readonly string[]);
  /** Runs at once even while a transfer is in progress (ABOR, STAT). */
  readonly duringTransfer?: boolean;
  /** Shown by HELP. */
  readonly help: string;
  /** False when configuration turns the command off (it then answers 502 and is left out of FEAT/HELP). */
  readonly enabled?: (config: Config) => boolean;
  /** `raw` is the argument as the client's bytes (PASS compares passwords byte for byte). */
  handle(ctx: CommandContext, arg: string | undefined, raw: Buffer | undefined): Promise<AnyReply>;
}

export const defineCommand = (spec: CommandSpec): CommandSpec => Object.freeze(spec);

/** The command table; FEAT and HELP come from the specs so they cannot drift from what is implemented. */
export class CommandRegistry implements CommandCatalog {
  private readonly byVerb: ReadonlyMap<string, CommandSpec>;

  constructor(
    specs: readonly CommandSpec[],
    private readonly config: Config,
  ) {
    const enabled = specs.filter((s) => s.enabled?.(config) ?? true);
    this.byVerb = new Map(enabled.map((s) => [s.verb, s]));
  }

  lookup(verb: string): CommandSpec | undefined {
    return this.byVerb.get(verb);
  }

  featureLines(): readonly string[] {
    const lines = [...this.byVerb.values()].flatMap((s) =>
      typeof s.feat === 'function' ? s.feat(this.config) : (s.feat ?? []),
    );
    return [...new Set(lines)].sort();
  }

  verbs(): readonly string[] {
    return [...this.byVerb.keys()].sort();
  }
}
