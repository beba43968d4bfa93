import cluster from 'node:cluster';
import type { Endpoint } from '../../transport/client.js';
import type { ServerTlsFiles } from '../edge/tls.js';
import type { ServerLimits } from '../limits.js';
import type { Hub } from '../ops/hub.js';
import type { PeerNode } from '../peers/node.js';
import type { PeerSettings } from '../peers/settings.js';
import type { Store } from '../store/types.js';
import { ServerCore } from './core.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import { WorkerPool, type PoolSetup } from './pool.js';

export interface ClusterOptions {
  serverId: string;
  store: Store;
  passwordIterations: number;
  adminPassword?: string;
  /** Where adminPassword came from, for the log. */
  adminPasswordFrom?: string;
  tls?: ServerTlsFiles;
  workers: number;
  pollMs: number;
  limits: ServerLimits;
  /** What every worker serves with (the primary hands it over, so all run one configuration). */
  setup: PoolSetup;
  /** The peer port (a store shared with other servers only): the primary holds the links to the other servers. */
  peerListen?: Endpoint;
  /** The admin port, served by the primary itself. */
  adminListen?: Endpoint;
  peerAdvertise?: string;
  advertise?: string[];
  peerSettings?: Partial<PeerSettings>;
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
