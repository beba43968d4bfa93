import cluster from 'node:cluster';
import type { Hub } from '../ops/hub.js';
import type { PeerNode } from '../peers/node.js';
import { ServerCore, type ServingOptions } from './core.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import { WorkerPool, type PoolSetup } from './pool.js';

/** The primary holds the peer port's links to the other servers and serves the admin port itself; the workers hold the agents. */
export interface ClusterOptions extends ServingOptions {
  serverId: string;
  workers: number;
  /** What every worker serves with (the primary hands it over, so all run one configuration). */
  setup: PoolSetup;
  log: (line: string) => void;
}

/**
 * The cluster primary: the server's one composition (core.ts: the store and
 * the hub, every write and admin command, the admin port, the peer node)
 * with the worker processes as its front (pool.ts), which hold the
 * connections. The primary never touches an agent socket.
 */
export class ClusterPrimary {
  private readonly core: ServerCore<WorkerPool>;

  constructor(options: ClusterOptions) {
    const { setup, workers, passwordIterations } = options;
    this.core = new ServerCore({ ...options, listen: setup.listen, peers: setup.peers }, (parts) => new WorkerPool(parts, { workers, setup, passwordIterations }));
  }

  get hub(): Hub {
    return this.core.hub;
  }

  /** The cluster side, when other servers share the store. */
  get peers(): PeerNode | undefined {
    return this.core.peers;
  }

  /** Where the workers listen, once they do. */
  get addresses(): string[] {
    return this.core.front.addresses;
  }

  /** The admin port's address, when there is one. */
  get adminAddress(): string | undefined {
    return this.core.adminAddress;
  }

  /** Opens the store, starts the workers, resolves when every worker listens. */
  async start(): Promise<void> {
    await this.core.start();
    reportMemoryOnSignal(
      () => 'primary',
      () => Object.values(cluster.workers ?? {}).forEach((w) => w?.process.kill('SIGUSR2')),
    );
  }

  /** Reads the certificate files again and hands them to every worker: connected sessions go on. */
  reloadTls(): Promise<void> {
    return this.core.reloadTls();
  }

  /** Stops once: a second call (a second signal during the drain) gets the first one's promise. */
  stop(mode: 'graceful' | 'forced' = 'graceful'): Promise<void> {
    return this.core.stop(mode);
  }
}
