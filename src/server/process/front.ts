import type { Duplex } from 'node:stream';
import type { EnvAgents, PeerServer } from '../../protocol/index.js';
import type { CredentialBook } from '../access/book.js';
import type { AccessControl } from '../access/control.js';
import type { LoginContext } from '../access/login.js';
import { ConnectionHost, type HostStatus } from '../edge/host.js';
import type { ServerSession } from '../edge/session.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import type { ServerLimits } from '../limits.js';
import type { Hub } from '../ops/hub.js';
import type { PublishedRelease, ServerState } from '../releases/state.js';
import type { AgentSide } from '../peers/agents.js';
import type { Endpoint } from '../../transport/client.js';

/** What the connections of every process of this server add up to, for `status`. */
export interface FrontStatus extends HostStatus {
  /** Processes that answered (1, or the cluster's workers). */
  processes: number;
}

/**
 * The part of a server that holds the connections: a ConnectionHost in this
 * process (HostFront), or the cluster's workers (WorkerPool, pool.ts). The
 * composition (core.ts) commits releases and hands them here; the peer node
 * moves and counts agents through it (AgentSide).
 */
export interface AgentFront extends AgentSide {
  /** Addresses agents connect to, once listening. */
  readonly addresses: string[];
  /** Starts serving; resolves once every process listens. */
  listen(): Promise<void>;
  /** Certificates for connections from now on (before listen, the ones to listen with). */
  setTls(material: ServerTlsMaterial): void;
  publish(release: PublishedRelease): void;
  credentialsChanged(book: CredentialBook): void;
  /** Agents (at most `max`, of id `agent` when given) and counters, added up over the processes. */
  status(env: string | undefined, max: number, agent?: string): Promise<FrontStatus>;
  stop(mode: 'graceful' | 'forced', graceMs: number): Promise<void>;
}

/** What a front is built with: the parts of the composition it serves beside. */
export interface FrontParts {
  serverId: string;
  state: ServerState;
  hub: Hub;
  access: AccessControl;
  login: LoginContext;
  limits: ServerLimits;
  /** Other servers share the store. */
  shared: boolean;
  log: (line: string) => void;
}

/** The connections held in this process: one ConnectionHost. */
export class HostFront implements AgentFront {
  readonly host: ConnectionHost;

  constructor(parts: FrontParts, listen: Endpoint[], maxAgents: number) {
    const { hub } = parts;
    this.host = new ConnectionHost({
      serverId: parts.serverId,
      listen,
      limits: parts.limits,
      maxAgents,
      login: parts.login,
      log: parts.log,
      // An agent is ahead of this server: read the store, and tell the host when that is done.
      ...(parts.shared ? { onBehind: () => {
        const at = Date.now();
        hub.pull().then(() => this.host.storeRead(at), () => undefined);
      } } : {}),
    }, parts.state, parts.access);
  }

  get addresses(): string[] {
    return this.host.addresses;
  }

  attach(socket: Duplex, addr: string): ServerSession | undefined {
    return this.host.attach(socket, addr);
  }

  listen(): Promise<void> {
    return this.host.listen();
  }

  setTls(material: ServerTlsMaterial): void {
    this.host.setTls(material);
  }

  publish(release: PublishedRelease): void {
    this.host.publish(release);
  }

  credentialsChanged(book: CredentialBook): void {
    this.host.credentialsChanged(book);
  }

  agents(): number {
    return this.host.agentCount;
  }

  setPeers(servers: PeerServer[]): void {
    this.host.setPeers(servers);
  }

  move(count: number, to: string | undefined, within: number, reason: string): Promise<number> {
    return Promise.resolve(this.host.move(count, to, within, reason));
  }

  revisions(env: string | undefined, cap: number): Promise<EnvAgents[]> {
    return Promise.resolve(this.host.revisions(env, cap));
  }

  status(env: string | undefined, max: number, agent?: string): Promise<FrontStatus> {
    return Promise.resolve({ ...this.host.status(env, max, agent), processes: 1 });
  }

  stop(mode: 'graceful' | 'forced', graceMs: number): Promise<void> {
    return this.host.stop(mode, graceMs);
  }
}
