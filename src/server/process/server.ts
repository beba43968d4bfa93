import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Endpoint } from '../../transport/client.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../../security/scram.js';
import type { AccessControl } from '../access/control.js';
import type { ConnectionHost } from '../edge/host.js';
import type { ServerSession } from '../edge/session.js';
import { resolveLimits } from '../limits.js';
import type { Hub } from '../ops/hub.js';
import type { PeerNode } from '../peers/node.js';
import type { ServerState } from '../releases/state.js';
import { ServerCore, type ServingOptions } from './core.js';
import { HostFront } from './front.js';

export interface ServerOptions extends ServingOptions {
  serverId?: string;
  listen: Endpoint[];
  peers: string[];
  /** Agent connections held at most; admins have a reserve beyond it. */
  maxAgents: number;
  /** Reports the store going away and coming back, and refusals. */
  log?: (line: string) => void;
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
 * A config server in one process: the server's one composition (core.ts:
 * the hub, access control, the admin port, the peer node) with a
 * ConnectionHost in this process as its front. The cluster runs the same
 * composition with worker processes as its front (cluster.ts).
 */
export class ConfigServer {
  readonly serverId: string;
  readonly state: ServerState;
  readonly hub: Hub;
  readonly access: AccessControl;
  readonly host: ConnectionHost;
  /** The cluster side, when other servers share the store. */
  readonly peers: PeerNode | undefined;
  /** Admin sessions on the admin port. */
  readonly admins: ConnectionHost | undefined;
  private readonly core: ServerCore<HostFront>;

  constructor(options: ServerOptions) {
    const log = options.log ?? ((line: string) => void process.stderr.write(`vitefa server: ${line}\n`));
    const { maxAgents, listen } = options;
    this.core = new ServerCore({ ...options, serverId: options.serverId ?? newServerId(), log }, (parts) => new HostFront(parts, listen, maxAgents));
    this.serverId = this.core.serverId;
    this.state = this.core.state;
    this.hub = this.core.hub;
    this.access = this.core.access;
    this.host = this.core.front.host;
    this.peers = this.core.peers;
    this.admins = this.core.admins;
  }

  get address(): string {
    return this.host.addresses.join(',');
  }

  /** The admin port's address, when there is one. */
  get adminAddress(): string | undefined {
    return this.core.adminAddress;
  }

  /** Opens the store, joins the cluster when the store is shared, then listens. */
  start(): Promise<void> {
    return this.core.start();
  }

  /** Reads the certificate files again: new connections get them, connected ones go on. */
  reloadTls(): Promise<void> {
    return this.core.reloadTls();
  }

  attach(socket: Duplex, addr: string): ServerSession | undefined {
    return this.core.front.attach(socket, addr);
  }

  /** Stops once: a second call (a second signal during the drain) gets the first one's promise. */
  stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    return this.core.stop(mode, graceMs);
  }
}
