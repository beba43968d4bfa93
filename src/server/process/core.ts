import type { ClusterStatus, LocalStatus, ServerInfo, StatusResult } from '../../protocol/index.js';
import { endpointText, type Endpoint } from '../../transport/client.js';
import { VERSION } from '../../version.js';
import { AccessControl } from '../access/control.js';
import type { LoginContext } from '../access/login.js';
import { LoginThrottle, throttleRules } from '../access/throttle.js';
import { adminPort } from '../edge/admin-port.js';
import type { ConnectionHost } from '../edge/host.js';
import { readServerTls, ticketKeys, type ServerTlsFiles } from '../edge/tls.js';
import type { ServerLimits } from '../limits.js';
import { Hub } from '../ops/hub.js';
import { PeerNode } from '../peers/node.js';
import type { PeerSettings } from '../peers/settings.js';
import { FOUND_AT_MOST, LAGGING_SHOWN } from '../peers/status.js';
import { ServerState } from '../releases/state.js';
import type { Store } from '../store/types.js';
import type { AgentFront, FrontParts, FrontStatus } from './front.js';

/** What a server is started with, whichever its shape: the store, the first admin, the limits, and the ports beside the agents'. */
export interface ServingOptions {
  store: Store;
  /** Iterations of the password derivation for accounts this server creates. */
  passwordIterations: number;
  /** The first admin's password (VITEFA_ADMIN_PASSWORD); generated and printed once when unset. */
  adminPassword?: string;
  /** Where adminPassword came from, for the log (default: the variable VITEFA_ADMIN_PASSWORD). */
  adminPasswordFrom?: string;
  limits: ServerLimits;
  /** How often to look in the store for releases other servers committed; 0 = never (a store only this server writes). */
  pollMs: number;
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

/** What every shape of server is made of, whether its connections live in this process or in workers. */
export interface CoreOptions extends ServingOptions {
  serverId: string;
  /** Addresses the connections are served on (the peer port and the registry derive from them). */
  listen: Endpoint[];
  /** Peer ports of other servers to join through. */
  peers: string[];
  log: (line: string) => void;
}

/** The peer port by default: the first listen address, one port up. */
export function defaultPeerListen(listen: Endpoint[]): Endpoint {
  const first = listen[0] ?? { host: '127.0.0.1', port: 7400 };
  return { host: first.host, port: first.port + 1 };
}

/**
 * One server, whatever its process shape: the hub (store, state, every
 * write), access control and the login throttle, the admin port, the peer
 * node when other servers share the store, and a front that holds the
 * connections (this process's host, or the cluster's workers). Both shapes
 * (server.ts, cluster.ts) start, report and stop through this one.
 */
export class ServerCore<Front extends AgentFront = AgentFront> {
  readonly serverId: string;
  readonly state: ServerState;
  readonly hub: Hub;
  readonly access: AccessControl;
  readonly login: LoginContext;
  readonly front: Front;
  /** Admin sessions on the admin port, served where releases are committed. */
  readonly admins: ConnectionHost | undefined;
  /** The cluster side, when other servers share the store. */
  readonly peers: PeerNode | undefined;
  private readonly options: CoreOptions;
  private readonly startedAt = Date.now();
  private gen = 0;
  private stopCall: Promise<void> | undefined;

  constructor(options: CoreOptions, makeFront: (parts: FrontParts) => Front) {
    this.options = options;
    const { store, limits, log } = options;
    this.serverId = options.serverId;
    this.state = new ServerState(limits);
    this.hub = new Hub(store, this.state, limits);
    this.access = new AccessControl(store, this.hub, {
      passwordIterations: options.passwordIterations, adminPassword: options.adminPassword, pollMs: options.pollMs > 0 ? 1000 : 0, log,
      ...(options.adminPasswordFrom === undefined ? {} : { adminPasswordFrom: options.adminPasswordFrom }),
    });
    this.login = this.access.loginContext(options.passwordIterations, new LoginThrottle(throttleRules(limits)));
    const front = makeFront({
      serverId: this.serverId, state: this.state, hub: this.hub, access: this.access, login: this.login, limits, shared: store.shared, log,
    });
    this.front = front;
    this.hub.onRelease((release) => front.publish(release));
    this.access.onChange((book) => front.credentialsChanged(book));
    if (options.adminListen !== undefined) {
      this.admins = adminPort({ serverId: this.serverId, listen: options.adminListen, limits, login: this.login, log }, this.hub, this.state, this.access);
    }
    if (store.shared) {
      const admins = this.admins;
      this.peers = new PeerNode({
        serverId: this.serverId,
        store,
        hub: this.hub,
        addrs: this.addrs(),
        listen: options.peerListen ?? defaultPeerListen(options.listen),
        ...(options.peerAdvertise === undefined ? {} : { advertise: options.peerAdvertise }),
        seeds: options.peers,
        limits,
        login: this.login,
        ...(options.peerSettings === undefined ? {} : { settings: options.peerSettings }),
        agents: {
          agents: () => front.agents(),
          setPeers: (servers) => {
            front.setPeers(servers);
            admins?.setPeers(servers);
          },
          move: (count, to, within, reason) => front.move(count, to, within, reason),
          revisions: (env, cap) => front.revisions(env, cap),
        },
        log,
      });
      this.peers.localSource = (env, agent) => this.local(env, agent);
    }
    this.hub.setStatusSource({ status: (env, agent) => this.status(env, agent), local: (env, agent) => this.local(env, agent) });
  }

  /** Addresses agents are told to use for this server. */
  private addrs(): string[] {
    return this.options.advertise ?? this.options.listen.map(endpointText);
  }

  /** The admin port's address, when there is one. */
  get adminAddress(): string | undefined {
    return this.admins?.addresses.join(',');
  }

  /**
   * Opens the store, joins the cluster (or registers alone), then serves:
   * agents only once this server has what the others have applied. A front
   * that cannot listen stops everything begun.
   */
  async start(): Promise<void> {
    const { store, log } = this.options;
    await this.hub.open(log);
    await this.access.open();
    const material = this.options.tls === undefined ? undefined : readServerTls(this.options.tls, await ticketKeys(store));
    if (material !== undefined) {
      this.front.setTls(material);
      this.admins?.setTls(material);
    }
    if (this.peers !== undefined) {
      this.peers.tls = material;
      await this.peers.start();
      this.gen = this.peers.gen;
    } else {
      this.gen = await store.members.register({
        id: this.serverId, addrs: this.addrs(), peer: '', state: 'alive', agents: 0, head: this.hub.applied, heartbeat: Date.now(), started: Date.now(),
      });
    }
    try {
      await this.front.listen();
    } catch (err) {
      await this.stop('forced');
      throw err;
    }
    await this.admins?.listen();
    if (this.options.pollMs > 0) this.hub.startPolling(this.options.pollMs, log);
  }

  /** Reads the certificate files again: new connections get them, connected ones go on. */
  async reloadTls(): Promise<void> {
    if (this.options.tls === undefined) return;
    const material = readServerTls(this.options.tls, await ticketKeys(this.options.store));
    this.peers?.setTls(material);
    this.admins?.setTls(material);
    this.front.setTls(material);
  }

  /** This server's row of `status`: its processes' refusals (`here`, what the front answered) and its peer port's. */
  private info(here: FrontStatus): ServerInfo {
    return {
      id: this.serverId,
      version: VERSION,
      listen: this.front.addresses.join(','),
      store: this.options.store.description,
      uptimeMs: Date.now() - this.startedAt,
      workers: here.processes,
      counters: { ...here.counters, ...this.admins?.status(undefined, 0).counters, ...this.peers?.portCounters },
    };
  }

  /** This server alone: what the cluster's `status` gathers from each server. */
  private async local(env: string | undefined, agent?: string): Promise<LocalStatus> {
    // One question to the processes gives both the counters (added up over the workers) and the agents found.
    const here = await this.front.status(env, agent === undefined ? 0 : FOUND_AT_MOST, agent);
    const out: LocalStatus = { server: this.info(here), gen: this.gen, head: this.hub.applied, agentsTotal: this.front.agents(), envs: await this.front.revisions(env, LAGGING_SHOWN) };
    if (agent !== undefined) out.found = here.agents;
    return out;
  }

  /** Every process's agents and counters added up, and the cluster as this server sees it. */
  private async status(env: string | undefined, agent?: string): Promise<Omit<StatusResult, 'envs'>> {
    const here = await this.front.status(env, 1000);
    const found = agent === undefined ? undefined : (await this.front.status(env, FOUND_AT_MOST, agent)).agents;
    const server = this.info(here);
    const mine: LocalStatus = { server, gen: this.gen, head: this.hub.applied, agentsTotal: this.front.agents(), envs: await this.front.revisions(env, LAGGING_SHOWN) };
    if (found !== undefined) mine.found = found;
    const cluster = this.peers !== undefined ? await this.peers.clusterStatus(env, mine, agent) : this.alone(mine);
    return { server, agentsTotal: here.agentsTotal, agents: here.agents, cluster };
  }

  /** The cluster of a server whose store no other server shares: itself. */
  private alone(mine: LocalStatus): ClusterStatus {
    const head = this.hub.applied;
    return {
      head,
      servers: [{ id: this.serverId, gen: this.gen, state: 'alive', addrs: this.front.addresses, head, lag: 0, agents: mine.agentsTotal, heardMs: 0, answered: true }],
      envs: mine.envs,
      ...(mine.found === undefined ? {} : { found: mine.found.map((a) => ({ ...a, server: this.serverId })) }),
    };
  }

  /** Stops once: a second call (a second signal during the drain) gets the first one's promise. */
  stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    this.stopCall ??= this.halt(mode, graceMs);
    return this.stopCall;
  }

  private async halt(mode: 'graceful' | 'forced', graceMs: number): Promise<void> {
    // A graceful stop in a cluster moves the agents to the other servers first.
    if (mode === 'graceful') await this.peers?.drain().catch(() => undefined);
    await Promise.all([this.front.stop(mode, graceMs), this.admins?.stop(mode, graceMs)]);
    await this.peers?.stop().catch(() => undefined);
    await this.access.close().catch(() => undefined);
    await this.hub.close();
  }
}
