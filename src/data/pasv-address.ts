import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { ConfigError, type Config } from '../config/config.js';
import { blockListOf, isListed, parseAddressRange } from '../net/address-list.js';
import type { Logger } from '../observability/logger.js';

/** Resolves a host name to the IPv4 address PASV replies need (227 carries IPv4 only). */
export type Resolve4 = (host: string) => Promise<string>;

const systemResolve4: Resolve4 = async (host) => (await lookup(host, { family: 4 })).address;

interface Override {
  readonly network: net.BlockList;
  readonly address: string;
}

/**
 * The address a 227 reply advertises to one client: the PASV_ADDRESS_OVERRIDES entry of its network (first
 * match), else PASV_ADDRESS, else the control connection's local address. A host name in PASV_ADDRESS is
 * resolved at start (failure there is a configuration error) and again every PASV_ADDRESS_RESOLVE_SECONDS,
 * so a dynamic-DNS name follows its address; a failed re-resolution keeps the last good address.
 */
export class PasvAddresses {
  readonly #overrides: readonly Override[];
  readonly #host: string | undefined;
  readonly #resolve: Resolve4;
  readonly #log: Logger;
  #address: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  private constructor(config: Config, log: Logger, resolve: Resolve4, address: string | undefined) {
    this.#overrides = config.operations.pasvAddressOverrides.map(({ cidr, address: target }) => ({
      // The schema accepted every entry, so each parses.
      network: blockListOf([parseAddressRange(cidr)!]),
      address: target,
    }));
    const configured = config.data.pasvAddress;
    this.#host = configured !== undefined && !net.isIP(configured) ? configured : undefined;
    this.#resolve = resolve;
    this.#log = log;
    this.#address = address;
    if (this.#host !== undefined) {
      this.#timer = setInterval(() => void this.refresh(), config.operations.pasvAddressResolveSeconds * 1000);
      this.#timer.unref();
    }
  }

  static async create(config: Config, log: Logger, resolve: Resolve4 = systemResolve4): Promise<PasvAddresses> {
    const configured = config.data.pasvAddress;
    if (configured === undefined || net.isIP(configured)) return new PasvAddresses(config, log, resolve, configured);
    let address: string;
    try {
      address = await resolve(configured);
    } catch {
      throw new ConfigError([`PASV_ADDRESS: cannot resolve host name "${configured}" to an IPv4 address`]);
    }
    log.info({ host: configured, address }, 'PASV_ADDRESS resolved');
    return new PasvAddresses(config, log, resolve, address);
  }

  /** undefined: advertise the control connection's local address. */
  addressFor(client: string): string | undefined {
    return this.#overrides.find((o) => isListed(o.network, client))?.address ?? this.#address;
  }

  /** Resolves the host name again now; called by the timer. */
  async refresh(): Promise<void> {
    const host = this.#host;
    if (host === undefined) return;
    try {
      const address = await this.#resolve(host);
      if (this.#failing) this.#log.info({ host }, 'PASV_ADDRESS resolves again');
      this.#failing = false;
      if (address === this.#address) return;
      this.#log.info({ host, previous: this.#address, address }, 'PASV_ADDRESS now resolves to a new address');
      this.#address = address;
    } catch (err) {
      // One line per failure streak, not one per period.
      if (!this.#failing) {
        const reason = (err as NodeJS.ErrnoException).code ?? String(err);
        this.#log.warn({ host, address: this.#address, reason }, 'PASV_ADDRESS cannot be resolved, keeping the last address');
      }
      this.#failing = true;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
