import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ClusterStatus, LocalStatus, ServerInfo, StatusResult } from '../../protocol/index.js';
import { endpointText, type Endpoint } from '../../transport/client.js';
import { VERSION } from '../../version.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../../security/scram.js';
import { AccessControl } from '../access/control.js';
import type { LoginContext } from '../access/login.js';
import { LoginThrottle, throttleRules } from '../access/throttle.js';
import { adminPort } from '../edge/admin-port.js';
import { ConnectionHost } from '../edge/host.js';
import { readServerTls, ticketKeys, type ServerTlsFiles } from '../edge/tls.js';
import { Hub } from '../ops/hub.js';
import { resolveLimits, type ServerLimits } from '../limits.js';
import type { ServerSession } from '../edge/session.js';
import { ServerState } from '../releases/state.js';
import type { Store } from '../store/types.js';
import { PeerNode, type PeerSettings } from '../peers/node.js';
import { LAGGING_SHOWN } from '../peers/status.js';
import { FOUND_AT_MOST } from '../peers/node.js';

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
  /** The peer port (a store shared with other servers only). */
  peerListen?: Endpoint;
  /** An admin port: admin sessions only (agents are refused there). */
  adminListen?: Endpoint;
  /** Where the other servers reach the peer port, when not the address it binds. */
  peerAdvertise?: string;
  /** Addresses agents are told to use for this server, when not the listen addresses. */
  advertise?: string[];
  peerSettings?: Partial<PeerSettings>;
}

/** The peer port by default: the first listen address, one port up. */
export function defaultPeerListen(listen: Endpoint[]): Endpoint {
  const first = listen[0] ?? { host: '127.0.0.1', port: 7400 };
  return { host: first.host, port: first.port + 1 };
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
  /** The cluster side, when other servers share the store. */
  peers: PeerNode | undefined;
  private gen = 0;
  private stopCall: Promise<void> | undefined;
  /** Admin sessions on the admin port. */
  readonly admins: ConnectionHost | undefined;

  constructor(options: ServerOptions) {
    this.options = options;
    this.serverId = options.serverId ?? newServerId();
    this.state = new ServerState(options.limits);
    this.hub = new Hub(options.store, this.state, options.limits);
    const log = options.log ?? ((line: string) => void process.stderr.write(`vitefa server: ${line}\n`));
    this.access = new AccessControl(options.store, this.hub, {
      passwordIterations: options.passwordIterations, adminPassword: options.adminPassword, pollMs: options.pollMs > 0 ? 1000 : 0, log,
    });
    this.login = this.access.loginContext(options.passwordIterations, new LoginThrottle(throttleRules(options.limits)));
    const hostOptions = {
      serverId: this.serverId,
      listen: options.listen,
      limits: options.limits,
      maxAgents: options.maxAgents,
      login: this.login,
      log,
      ...(options.store.shared ? { onBehind: () => this.readStore() } : {}),
    };
    this.host = new ConnectionHost(hostOptions, this.state, this.access);
    if (options.adminListen !== undefined) {
      this.admins = adminPort({ serverId: this.serverId, listen: options.adminListen, limits: options.limits, login: this.login, log }, this.hub, this.state, this.access);
    }
    if (options.store.shared) {
      this.peers = new PeerNode({
        serverId: this.serverId,
        store: options.store,
        hub: this.hub,
        addrs: options.advertise ?? options.listen.map(endpointText),
        listen: options.peerListen ?? defaultPeerListen(options.listen),
        ...(options.peerAdvertise === undefined ? {} : { advertise: options.peerAdvertise }),
        seeds: options.peers,
        limits: options.limits,
        login: this.login,
        ...(options.peerSettings === undefined ? {} : { settings: options.peerSettings }),
        agents: {
          agents: () => this.host.agentCount,
          setPeers: (servers) => {
            this.host.setPeers(servers);
            this.admins?.setPeers(servers);
          },
          move: async (count, to, within, reason) => this.host.move(count, to, within, reason),
          revisions: async (env, cap) => this.host.revisions(env, cap),
        },
        log,
      });
      this.peers.localSource = (env, agent) => this.local(env, agent);
    }
    this.access.onChange((book) => this.host.credentialsChanged(book));
    this.hub.onRelease((release) => this.host.publish(release));
    this.hub.setStatusSource({ status: (env, agent) => this.status(env, agent), local: (env, agent) => this.local(env, agent) });
  }

  /** An agent is ahead of this server: read the store, and tell the host when that is done. */
  private readStore(): void {
    const at = Date.now();
    this.hub.pull().then(() => this.host.storeRead(at), () => undefined);
  }

  get address(): string {
    return this.host.addresses.join(',');
  }

  /** The admin port's address, when there is one. */
  get adminAddress(): string | undefined {
    return this.admins?.addresses.join(',');
  }

  async start(): Promise<void> {
    await this.hub.open(this.options.log);
    await this.access.open();
    const material = this.options.tls === undefined ? undefined : readServerTls(this.options.tls, await ticketKeys(this.options.store));
    if (material !== undefined) {
      this.host.setTls(material);
      this.admins?.setTls(material);
    }
    if (this.peers !== undefined) {
      // The cluster first: agents are served only once this server has what the others have applied.
      if (material !== undefined) this.peers.tls = material;
      await this.peers.start();
      this.gen = this.peers.gen;
    } else {
      this.gen = await this.options.store.members.register({
        id: this.serverId, addrs: this.options.advertise ?? this.options.listen.map(endpointText), peer: '', state: 'alive', agents: 0,
        head: this.hub.applied, heartbeat: Date.now(), started: Date.now(),
      });
    }
    await this.host.listen();
    await this.admins?.listen();
    if (this.options.pollMs > 0) this.hub.startPolling(this.options.pollMs, this.options.log);
  }

  /** Reads the certificate files again: new connections get them, connected ones go on. */
  async reloadTls(): Promise<void> {
    if (this.options.tls === undefined) return;
    const material = readServerTls(this.options.tls, await ticketKeys(this.options.store));
    this.host.setTls(material);
    this.admins?.setTls(material);
    this.peers?.setTls(material);
  }

  attach(socket: Duplex, addr: string): ServerSession | undefined {
    return this.host.attach(socket, addr);
  }

  private info(): ServerInfo {
    return {
      id: this.serverId,
      version: VERSION,
      listen: this.address,
      store: this.options.store.description,
      uptimeMs: Date.now() - this.startedAt,
      workers: 1,
      counters: this.host.status(undefined, 0).counters,
    };
  }

  private async local(env: string | undefined, agent?: string): Promise<LocalStatus> {
    const out: LocalStatus = { server: this.info(), gen: this.gen, head: this.hub.applied, agentsTotal: this.host.agentCount, envs: this.host.revisions(env, LAGGING_SHOWN) };
    if (agent !== undefined) out.found = this.host.status(env, FOUND_AT_MOST, agent).agents;
    return out;
  }

  private async status(env: string | undefined, agent?: string): Promise<Omit<StatusResult, 'envs'>> {
    const local = this.host.status(env, 1000);
    const mine = await this.local(env, agent);
    const cluster: ClusterStatus = this.peers !== undefined ? await this.peers.clusterStatus(env, mine, agent) : {
      head: this.hub.applied,
      servers: [{ id: this.serverId, gen: this.gen, state: 'alive', addrs: this.host.addresses, head: this.hub.applied, lag: 0, agents: mine.agentsTotal, heardMs: 0, answered: true }],
      envs: mine.envs,
      ...(mine.found === undefined ? {} : { found: mine.found.map((a) => ({ ...a, server: this.serverId })) }),
    };
    return { server: mine.server, agentsTotal: local.agentsTotal, agents: local.agents, cluster };
  }

  /** Stops once: a second call (a second signal during the drain) gets the first one's promise. */
  stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    this.stopCall ??= this.halt(mode, graceMs);
    return this.stopCall;
  }

  private async halt(mode: 'graceful' | 'forced', graceMs: number): Promise<void> {
    // A graceful stop in a cluster moves the agents to the other servers first.
    if (mode === 'graceful') await this.peers?.drain().catch(() => undefined);
    await Promise.all([this.host.stop(mode, graceMs), this.admins?.stop(mode, graceMs)]);
    await this.peers?.stop().catch(() => undefined);
    await this.access.close().catch(() => undefined);
    await this.hub.close();
  }
}
