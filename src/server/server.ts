import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { StatusResult } from '../protocol/index.js';
import type { Endpoint } from '../transport/client.js';
import { VERSION } from '../version.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../security/scram.js';
import { AccessControl } from './access/control.js';
import type { LoginContext } from './access/login.js';
import { LoginThrottle } from './access/throttle.js';
import { ConnectionHost } from './host.js';
import { readServerTls, ticketKeys, type ServerTlsFiles } from './tls.js';
import { Hub } from './hub.js';
import { resolveLimits, type ServerLimits } from './limits.js';
import type { ServerSession } from './session.js';
import { ServerState } from './state.js';
import type { Store } from './store/types.js';

export interface ServerOptions {
  store: Store;
  serverId?: string;
  listen: Endpoint[];
  peers: string[];
  /** Iterations of the password derivation for accounts this server creates. */
  passwordIterations: number;
  /** The first admin's password (VITEFA_ADMIN_PASSWORD); generated and printed once when unset. */
  adminPassword?: string;
  /** Agent connections held at most; admins have a reserve beyond it. */
  maxAgents: number;
  limits: ServerLimits;
  /** How often to look in the store for releases other servers committed; 0 = never (a store only this server writes). */
  pollMs: number;
  /** Reports the store going away and coming back, and refusals. */
  log?: (line: string) => void;
  /** TLS on every connection; SIGHUP (reloadTls) reads the files again. */
  tls?: ServerTlsFiles;
}

export const SERVER_DEFAULTS = {
  listen: [{ host: '127.0.0.1', port: 7400 }] as Endpoint[],
  peers: [] as string[],
  maxAgents: 100_000,
  pollMs: 0,
  limits: resolveLimits(),
  passwordIterations: SCRAM_DEFAULT_ITERATIONS,
};

export const newServerId = (): string => `srv-${randomBytes(4).toString('hex')}`;

/**
 * A config server in one process: the hub (store, state, admin commands) and
 * the connection host (sessions and fan-out) side by side. The cluster runs
 * the same two parts in separate processes (cluster.ts).
 */
export class ConfigServer {
  readonly serverId: string;
  readonly state: ServerState;
  readonly hub: Hub;
  readonly access: AccessControl;
  readonly host: ConnectionHost;
  private readonly options: ServerOptions;
  private readonly login: LoginContext;
  private readonly startedAt = Date.now();

  constructor(options: ServerOptions) {
    this.options = options;
    this.serverId = options.serverId ?? newServerId();
    this.state = new ServerState(options.limits);
    this.hub = new Hub(options.store, this.state, options.limits);
    const log = options.log ?? ((line: string) => void process.stderr.write(`vitefa server: ${line}\n`));
    this.access = new AccessControl(options.store, this.hub, {
      passwordIterations: options.passwordIterations, adminPassword: options.adminPassword, pollMs: options.pollMs > 0 ? 1000 : 0, log,
    });
    this.login = {
      book: () => this.access.book,
      decoySecret: Buffer.alloc(32),
      passwordIterations: options.passwordIterations,
      throttle: new LoginThrottle(),
      audit: (record) => this.access.audit(record),
    };
    const hostOptions = {
      serverId: this.serverId,
      listen: options.listen,
      peers: options.peers,
      limits: options.limits,
      maxAgents: options.maxAgents,
      login: this.login,
      log,
    };
    this.host = new ConnectionHost(hostOptions, this.state, this.access);
    this.access.onChange((book) => this.host.credentialsChanged(book));
    this.hub.onRelease((release) => this.host.publish(release));
    this.hub.setStatusSource({ status: async (env) => this.status(env) });
  }

  get address(): string {
    return this.host.addresses.join(',');
  }

  async start(): Promise<void> {
    await this.hub.open(this.options.log);
    await this.access.open();
    this.login.decoySecret = this.access.decoySecret;
    if (this.options.tls !== undefined) this.host.setTls(readServerTls(this.options.tls, await ticketKeys(this.options.store)));
    await this.host.listen();
    if (this.options.pollMs > 0) this.hub.startPolling(this.options.pollMs, this.options.log);
  }

  /** Reads the certificate files again: new connections get them, connected ones go on. */
  async reloadTls(): Promise<void> {
    if (this.options.tls === undefined) return;
    this.host.setTls(readServerTls(this.options.tls, await ticketKeys(this.options.store)));
  }

  attach(socket: Duplex, addr: string): ServerSession | undefined {
    return this.host.attach(socket, addr);
  }

  private status(env: string | undefined): Omit<StatusResult, 'envs'> {
    const local = this.host.status(env, 1000);
    return {
      server: {
        id: this.serverId,
        version: VERSION,
        listen: this.address,
        store: this.options.store.description,
        uptimeMs: Date.now() - this.startedAt,
        workers: 1,
        counters: local.counters,
      },
      agentsTotal: local.agentsTotal,
      agents: local.agents,
    };
  }

  async stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    await this.host.stop(mode, graceMs);
    await this.access.close().catch(() => undefined);
    await this.hub.close();
  }
}
