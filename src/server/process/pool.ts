import cluster, { type Worker } from 'node:cluster';
import { WireError, type EnvAgents, type PeerServer } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { trace } from '../../trace.js';
import type { CredentialBook } from '../access/book.js';
import { RequestError } from '../errors.js';
import { WRITES_GRACE_MS, type HostStatus } from '../edge/host.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import { mergeRevisions } from '../peers/status.js';
import type { PublishedRelease } from '../releases/state.js';
import { Channel, type ChannelPort } from './channel.js';
import type { AgentFront, FrontParts, FrontStatus } from './front.js';
import type { PrimaryNote, PrimaryRequest, Replies, WorkerNote, WorkerRequest, WorkerSetup } from './ipc.js';
import { decideListeners, RestartPacing } from './policy.js';

type PrimaryChannel = Channel<PrimaryNote, PrimaryRequest, WorkerNote, WorkerRequest, Pick<Replies, 'status' | 'revisions'>>;

const STATUS_IPC_TIMEOUT_MS = 2000;

/** What every worker serves with (the primary hands it over, so all run one configuration). */
export type PoolSetup = Omit<WorkerSetup, 'serverId' | 'limits' | 'passwordIterations' | 'decoySecret' | 'tls' | 'shared'>;

export interface PoolOptions {
  workers: number;
  setup: PoolSetup;
  passwordIterations: number;
}

interface WorkerLink {
  worker: Worker;
  channel: PrimaryChannel;
  ready: boolean;
  /** The worker has listened once (until then it is not told to listen or not). */
  started: boolean;
  /** Told to listen (or, until `started`, listening by default). */
  listening: boolean;
  /** Confirmed listening since it was last told to. */
  bound: boolean;
  full: boolean;
  startedAt: number;
  /** Agents it holds, as it last said. */
  agents: number;
}

function portOf(worker: Worker): ChannelPort {
  return { send: (message, done) => void worker.send(message as never, done) };
}

/**
 * The cluster's workers, seen from the primary as one front: forks them,
 * replaces those that die (RestartPacing), tells them who listens
 * (decideListeners), hands each release to every worker as the frame it
 * encoded once, answers their requests (admin commands, logins) and adds up
 * what they report. Connections are accepted by the workers themselves on a
 * shared listening socket (SCHED_NONE): the primary never touches an agent
 * socket.
 */
export class WorkerPool implements AgentFront {
  private readonly parts: FrontParts;
  private readonly options: PoolOptions;
  private readonly links = new Map<Worker, WorkerLink>();
  private readonly pacing = new RestartPacing();
  private stopping = false;
  /** Workers that exited after the start. */
  private restarts = 0;
  private tls: ServerTlsMaterial | undefined;
  private peerList: PeerServer[] | undefined;
  /** Frames published in this run of the event loop, sent to the workers in one note at its end. */
  private publishing: Buffer[] | undefined;
  addresses: string[] = [];

  constructor(parts: FrontParts, options: PoolOptions) {
    this.parts = parts;
    this.options = options;
  }

  private ready(): WorkerLink[] {
    return [...this.links.values()].filter((l) => l.ready);
  }

  private tell(note: PrimaryNote, bytes?: number): void {
    for (const link of this.links.values()) if (link.ready) link.channel.notify(note, bytes);
  }

  /** Starts the workers; resolves when every one listens, rejects when one exits first. */
  async listen(): Promise<void> {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ serialization: 'advanced' });
    const listening: Promise<void>[] = [];
    for (let i = 0; i < this.options.workers; i++) listening.push(this.fork(true));
    await Promise.all(listening);
  }

  private fork(duringStart: boolean): Promise<void> {
    const worker = cluster.fork();
    const { log, limits } = this.parts;
    return new Promise((resolve, reject) => {
      const link: WorkerLink = {
        worker, ready: false, started: false, listening: true, bound: false, full: false, startedAt: Date.now(), agents: 0,
        channel: new Channel(portOf(worker), {
          name: `worker ${worker.process.pid}`,
          maxPending: 64,
          maxQueuedBytes: limits.workerQueueBytes,
          overflow: (bytes) => {
            log(`worker ${worker.process.pid} is not taking its messages (${bytes} bytes queued); restarting it`);
            worker.process.kill('SIGKILL');
          },
          note: (note) => this.onNote(link, note, resolve),
          request: (request) => this.onRequest(request),
        }),
      };
      this.links.set(worker, link);
      worker.on('message', (message: unknown) => link.channel.receive(message));
      worker.on('error', () => undefined);
      worker.on('exit', (code, signal) => {
        this.links.delete(worker);
        link.channel.close('the worker exited');
        if (this.stopping) return;
        log(`worker ${worker.process.pid} exited (${signal ?? code})`);
        if (duringStart && !link.started) {
          reject(new Error(`a worker exited while starting (${signal ?? code})`));
          return;
        }
        this.restarts++;
        this.decideListeners();
        this.restartLater(link.startedAt);
      });
    });
  }

  /** A crashing worker is replaced after a delay that doubles while replacements keep dying young. */
  private restartLater(startedAt: number): void {
    const delay = this.pacing.exited(startedAt);
    if (delay > 0) this.parts.log(`starting another worker in ${Math.round(delay)} ms`);
    setTimeout(() => {
      if (!this.stopping) this.fork(false).catch((err: unknown) => reportFault('restarting a worker', err));
    }, delay).unref();
  }

  private onNote(link: WorkerLink, note: WorkerNote, listening: () => void): void {
    const { access, login, hub } = this.parts;
    switch (note.k) {
      case 'ready': {
        // Initial state, then (from the next release on) every release: the channel keeps the order.
        const setup: WorkerSetup = {
          ...this.options.setup, serverId: this.parts.serverId, limits: this.parts.limits, processes: this.options.workers,
          passwordIterations: this.options.passwordIterations, decoySecret: access.decoySecret, shared: this.parts.shared,
          ...(this.tls === undefined ? {} : { tls: this.tls }),
        };
        // Not counted against the queue bound: a worker's start may carry the whole configuration at once.
        const init: PrimaryNote = { k: 'init', setup, head: hub.applied, envs: this.parts.state.export(), credentials: access.book.toCredentials() };
        link.channel.notify(init, 0);
        if (this.peerList !== undefined) link.channel.notify({ k: 'peers', servers: this.peerList });
        link.ready = true;
        return;
      }
      case 'listening':
        this.addresses = note.addresses;
        link.started = true;
        if (link.listening) link.bound = true;
        listening();
        this.decideListeners();
        return;
      case 'capacity':
        trace('server', `worker ${link.worker.process.pid} is ${note.full ? 'full' : 'no longer full'}`);
        link.full = note.full;
        this.decideListeners();
        return;
      case 'audit':
        for (const record of note.records.slice(0, 10_000)) access.audit(record);
        return;
      case 'agents':
        link.agents = note.count;
        return;
      case 'settle':
        login.throttle.settle(note.ticket, note.outcome);
        return;
      case 'behind': {
        const at = Date.now();
        hub.pull().then(() => link.channel.notify({ k: 'storeRead', at }), () => undefined);
        return;
      }
      default: {
        const unknown: never = note;
        throw new Error(`unknown note from a worker: ${JSON.stringify(unknown)}`);
      }
    }
  }

  private async onRequest(request: WorkerRequest): Promise<unknown> {
    switch (request.k) {
      case 'admin':
        return this.parts.access.execute(request.req, request.caller);
      case 'login':
        return this.parts.login.throttle.admit(request.attempt);
      default: {
        const unknown: never = request;
        throw new RequestError(WireError.BAD_REQUEST, `unknown request ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** Applies the listening rule (policy.ts) to the workers that have started. */
  private decideListeners(): void {
    const live = [...this.links.values()].filter((l) => l.started && l.worker.isConnected());
    for (const { worker: link, on } of decideListeners(live)) {
      trace('server', `worker ${link.worker.process.pid} ${on ? 'listens' : 'stops listening'} (${link.full ? 'full' : 'has room'})`);
      link.listening = on;
      link.bound = false; // until the worker confirms it listens again
      link.channel.notify({ k: 'listen', on });
    }
  }

  /**
   * Hands a release to every worker. The releases published in one run of the event loop (the releases of one
   * revision in several environments, a group, come in one) go in one note, at its end: a worker publishes them
   * together, so its agents get the group in one pass, with one GroupEnd.
   */
  publish(release: PublishedRelease): void {
    if (this.publishing === undefined) {
      const frames: Buffer[] = [];
      this.publishing = frames;
      queueMicrotask(() => {
        this.publishing = undefined;
        this.tell({ k: 'release', frames }, frames.reduce((bytes, frame) => bytes + frame.length * 2 + 512, 0));
      });
    }
    this.publishing.push(release.frame);
  }

  credentialsChanged(book: CredentialBook): void {
    this.tell({ k: 'credentials', credentials: book.toCredentials() });
  }

  /** Hands new certificates to every worker (and to those forked later): connected sessions go on. */
  setTls(material: ServerTlsMaterial): void {
    this.tls = material;
    this.tell({ k: 'tls', material });
  }

  setPeers(servers: PeerServer[]): void {
    this.peerList = servers;
    this.tell({ k: 'peers', servers });
  }

  agents(): number {
    let n = 0;
    for (const link of this.links.values()) n += link.agents;
    return n;
  }

  /** Splits a move between the workers by the agents each holds. */
  move(count: number, to: string | undefined, within: number, reason: string): Promise<number> {
    return Promise.resolve(this.split(count, to, within, reason));
  }

  private split(count: number, to: string | undefined, within: number, reason: string): number {
    const total = this.agents();
    if (total === 0 || count <= 0) return 0;
    let told = 0;
    for (const link of this.links.values()) {
      if (!link.ready || link.agents === 0) continue;
      const share = count >= total ? link.agents : Math.ceil((count * link.agents) / total);
      if (share <= 0) continue;
      link.channel.notify({ k: 'move', count: share, ...(to === undefined ? {} : { to }), within, reason });
      told += Math.min(share, link.agents);
    }
    return Math.min(told, count);
  }

  async revisions(env: string | undefined, cap: number): Promise<EnvAgents[]> {
    const parts = await Promise.all(this.ready().map((l) => l.channel.request({ k: 'revisions', env, cap }, STATUS_IPC_TIMEOUT_MS).catch(() => [] as EnvAgents[])));
    return mergeRevisions(parts, cap);
  }

  /** Asks every worker for its agents and counters and adds them up; a worker that does not answer in time is left out. */
  async status(env: string | undefined, max: number, agent?: string): Promise<FrontStatus> {
    const links = this.ready();
    const parts = await Promise.all(
      links.map((l) => l.channel.request({ k: 'status', env, max, ...(agent === undefined ? {} : { agent }) }, STATUS_IPC_TIMEOUT_MS).catch(() => undefined)),
    );
    const answered = parts.filter((p): p is HostStatus => p !== undefined);
    const counters: Record<string, number> = { workerRestarts: this.restarts };
    for (const part of answered) for (const [k, v] of Object.entries(part.counters)) counters[k] = (counters[k] ?? 0) + v;
    return {
      processes: links.length,
      agentsTotal: answered.reduce((n, p) => n + p.agentsTotal, 0),
      agents: answered.flatMap((p) => p.agents).slice(0, max),
      counters,
    };
  }

  /** Tells every worker to stop and waits for each to exit (killing it past a backstop). */
  async stop(mode: 'graceful' | 'forced'): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.links.values()].map((link) => new Promise<void>((resolve) => {
      if (link.worker.isDead()) return resolve();
      link.worker.once('exit', () => resolve());
      if (link.worker.isConnected()) link.channel.notify({ k: 'stop', mode });
      // A backstop: a worker ends by itself once its sessions are gone (WRITES_GRACE_MS at most).
      setTimeout(() => link.worker.kill('SIGKILL'), mode === 'graceful' ? WRITES_GRACE_MS + 5000 : 500).unref();
    })));
  }
}
