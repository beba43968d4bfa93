import cluster, { type Worker } from 'node:cluster';
import { WireError, type AdminRequest, type StatusResult } from '../protocol/index.js';
import { trace } from '../trace.js';
import { VERSION } from '../version.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import { RequestError } from './errors.js';
import { ConnectionHost, type HostOptions, type HostStatus } from './host.js';
import { Hub } from './hub.js';
import type { ToPrimary, ToWorker } from './ipc.js';
import type { AdminExecutor } from './session.js';
import { ServerState, type StateLimits } from './state.js';
import type { Store } from './store/types.js';

export interface ClusterOptions {
  serverId: string;
  store: Store;
  workers: number;
  pollMs: number;
  limits: StateLimits;
  log: (line: string) => void;
}

/**
 * The cluster primary: owns the store and the hub (every write, every admin
 * command), forks the workers that hold the connections, and hands each
 * release to every worker as the frame it encoded once. Connections are
 * accepted by the workers themselves on a shared listening socket
 * (SCHED_NONE): the primary never touches an agent socket.
 */
export class ClusterPrimary {
  private readonly options: ClusterOptions;
  private readonly state: ServerState;
  private readonly hub: Hub;
  private readonly ready = new Set<Worker>();
  private readonly startedAt = Date.now();
  private readonly statusWaits = new Map<number, { pending: number; parts: HostStatus[]; done: () => void }>();
  private nextStatusId = 1;
  private stopping = false;
  addresses: string[] = [];

  constructor(options: ClusterOptions) {
    this.options = options;
    this.state = new ServerState(options.limits);
    this.hub = new Hub(options.store, this.state);
    this.hub.onRelease((release, stored) => {
      const message: ToWorker = { k: 'release', stored, frame: release.frame };
      for (const worker of this.ready) worker.send(message);
    });
    this.hub.setStatusSource({ status: (env) => this.status(env) });
  }

  /** Opens the store, starts the workers, resolves when every worker listens. */
  async start(): Promise<void> {
    await this.hub.open(this.options.log);
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ serialization: 'advanced' });
    const listening: Promise<void>[] = [];
    for (let i = 0; i < this.options.workers; i++) listening.push(this.fork());
    await Promise.all(listening);
    if (this.options.pollMs > 0) this.hub.startPolling(this.options.pollMs, this.options.log);
    reportMemoryOnSignal(
      () => 'primary',
      () => Object.values(cluster.workers ?? {}).forEach((w) => w?.process.kill('SIGUSR2')),
    );
  }

  private fork(): Promise<void> {
    const worker = cluster.fork();
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ToPrimary) => {
        switch (message.k) {
          case 'ready':
            // Initial state, then (from the next release on) every release: the channel keeps the order.
            worker.send({ k: 'init', serverId: this.options.serverId, head: this.hub.applied, envs: this.state.export() } satisfies ToWorker);
            this.ready.add(worker);
            return;
          case 'listening':
            this.addresses = message.addresses;
            resolve();
            return;
          case 'request':
            void this.answer(worker, message.id, message.req, message.author);
            return;
          case 'status':
            this.statusPart(message.id, message.status);
            return;
          default: {
            const unknown: never = message;
            trace('server', `unknown message from worker: ${JSON.stringify(unknown)}`);
          }
        }
      });
      worker.on('exit', (code, signal) => {
        this.ready.delete(worker);
        if (this.stopping) return;
        this.options.log(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
        reject(new Error(`worker exited during start (${signal ?? code})`));
        void this.fork().catch(() => undefined);
      });
    });
  }

  private async answer(worker: Worker, id: number, req: AdminRequest, author: string): Promise<void> {
    let reply: ToWorker;
    try {
      reply = { k: 'answer', id, ok: true, result: await this.hub.execute(req, author) };
    } catch (err) {
      if (err instanceof RequestError) reply = { k: 'answer', id, ok: false, status: err.status, message: err.message };
      else {
        trace('server', `request ${req.op} failed: ${(err as Error)?.stack ?? String(err)}`);
        reply = { k: 'answer', id, ok: false, status: WireError.INTERNAL, message: `internal error while running ${req.op}` };
      }
    }
    if (worker.isConnected()) worker.send(reply);
  }

  /** Asks every worker for its agents and adds them up. */
  private status(env: string | undefined): Promise<Omit<StatusResult, 'envs'>> {
    const id = this.nextStatusId++;
    const workers = [...this.ready];
    const parts: HostStatus[] = [];
    return new Promise((resolve) => {
      const done = (): void => {
        this.statusWaits.delete(id);
        clearTimeout(timer);
        const agents = parts.flatMap((p) => p.agents).slice(0, 1000);
        resolve({
          server: {
            id: this.options.serverId,
            version: VERSION,
            listen: this.addresses.join(','),
            store: this.options.store.description,
            uptimeMs: Date.now() - this.startedAt,
            workers: workers.length,
          },
          agentsTotal: parts.reduce((n, p) => n + p.agentsTotal, 0),
          agents,
        });
      };
      const timer = setTimeout(done, 2000);
      this.statusWaits.set(id, { pending: workers.length, parts, done });
      for (const worker of workers) worker.send({ k: 'status', id, env, max: 1000 } satisfies ToWorker);
      if (workers.length === 0) done();
    });
  }

  private statusPart(id: number, status: HostStatus): void {
    const wait = this.statusWaits.get(id);
    if (wait === undefined) return;
    wait.parts.push(status);
    if (--wait.pending === 0) wait.done();
  }

  async stop(mode: 'graceful' | 'forced' = 'graceful'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const exits = Object.values(cluster.workers ?? {}).map((worker) => {
      if (worker === undefined) return Promise.resolve();
      return new Promise<void>((resolve) => {
        if (worker.isDead()) return resolve();
        worker.once('exit', () => resolve());
        if (worker.isConnected()) worker.send({ k: 'stop', mode } satisfies ToWorker);
        setTimeout(() => worker.kill('SIGKILL'), mode === 'graceful' ? 5000 : 500).unref();
      });
    });
    await Promise.all(exits);
    await this.hub.close();
  }
}

/**
 * A cluster worker: holds a replica of the state fed by the primary, accepts
 * connections, serves agents, and sends admin requests to the primary.
 */
export function runWorker(options: Omit<HostOptions, 'serverId'>, limits: StateLimits): void {
  const state = new ServerState(limits);
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send!(message);
  };
  const admin: AdminExecutor = {
    execute: (req: AdminRequest, author: string) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        send({ k: 'request', id, req, author });
      }),
  };
  let host: ConnectionHost | undefined;
  process.on('message', (message: ToWorker) => {
    switch (message.k) {
      case 'init':
        state.load(message.head, message.envs);
        host = new ConnectionHost({ ...options, serverId: message.serverId }, state, admin);
        host.listen().then(
          () => send({ k: 'listening', addresses: host!.addresses }),
          (err: Error) => {
            process.stderr.write(`vitefa server worker: ${err.message}\n`);
            process.exit(1);
          },
        );
        return;
      case 'release': {
        const published = state.apply(message.stored, message.frame);
        if (published !== undefined) host?.publish(published);
        return;
      }
      case 'answer': {
        const w = waiting.get(message.id);
        if (w === undefined) return;
        waiting.delete(message.id);
        if (message.ok) w.resolve(message.result);
        else w.reject(new RequestError(message.status as WireError, message.message));
        return;
      }
      case 'status':
        send({ k: 'status', id: message.id, status: host?.status(message.env, message.max) ?? { agentsTotal: 0, agents: [] } });
        return;
      case 'stop':
        void (host?.stop(message.mode) ?? Promise.resolve()).then(() => process.exit(0));
        return;
      default: {
        const unknown: never = message;
        trace('server', `unknown message from primary: ${JSON.stringify(unknown)}`);
      }
    }
  });
  reportMemoryOnSignal(() => `worker with ${host?.connections ?? 0} connections,`);
  // Without the primary there are no releases to serve: leave, agents fail over.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group; the primary decides how workers stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  send({ k: 'ready' });
}
