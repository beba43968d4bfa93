import cluster, { type Worker } from 'node:cluster';
import { decodeBody, FRAME_HEADER_BYTES, MessageType, WireError, type AgentInfo, type ClusterStatus, type EnvAgents, type LocalStatus, type PeerServer, type ServerInfo, type StatusResult } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { trace } from '../../trace.js';
import { VERSION } from '../../version.js';
import { Channel, type ChannelPort } from './channel.js';
import { reportMemoryOnSignal } from './diagnostics.js';
import { RequestError } from '../errors.js';
import { ConnectionHost, WRITES_GRACE_MS, type HostStatus } from '../edge/host.js';
import { AccessControl } from '../access/control.js';
import { CredentialBook } from '../access/book.js';
import type { LoginContext } from '../access/login.js';
import { LoginThrottle, throttleRules, type Admission, type LoginGate } from '../access/throttle.js';
import { Hub } from '../ops/hub.js';
import { readServerTls, ticketKeys, type ServerTlsFiles, type ServerTlsMaterial } from '../edge/tls.js';
import type { PrimaryNote, PrimaryRequest, Replies, WorkerNote, WorkerRequest, WorkerSetup } from './ipc.js';
import type { ServerLimits } from '../limits.js';
import { ServerState, storedOf } from '../releases/state.js';
import type { AuditRecord, Store } from '../store/types.js';
import { FOUND_AT_MOST, PeerNode, type PeerSettings } from '../peers/node.js';
import { LAGGING_SHOWN, mergeRevisions } from '../peers/status.js';
import { defaultPeerListen } from './server.js';
import { adminPort } from '../edge/admin-port.js';
import { endpointText, type Endpoint } from '../../transport/client.js';

export interface ClusterOptions {
  serverId: string;
  store: Store;
  passwordIterations: number;
  adminPassword?: string;
  tls?: ServerTlsFiles;
  workers: number;
  pollMs: number;
  limits: ServerLimits;
  /** What every worker serves with (the primary hands it over, so all run one configuration). */
  setup: Omit<WorkerSetup, 'serverId' | 'limits' | 'passwordIterations' | 'decoySecret' | 'tls' | 'shared'>;
  /** The peer port (a store shared with other servers only): the primary holds the links to the other servers. */
  peerListen?: Endpoint;
  /** The admin port, served by the primary itself. */
  adminListen?: Endpoint;
  peerAdvertise?: string;
  advertise?: string[];
  peerSettings?: Partial<PeerSettings>;
  log: (line: string) => void;
}

type PrimaryChannel = Channel<PrimaryNote, PrimaryRequest, WorkerNote, WorkerRequest, Pick<Replies, 'status' | 'revisions'>>;
type WorkerChannel = Channel<WorkerNote, WorkerRequest, PrimaryNote, PrimaryRequest, Pick<Replies, 'admin' | 'login'>>;

const STATUS_IPC_TIMEOUT_MS = 2000;
/** A worker waits this long for the primary's throttle; then the login is told to try again (well within a client's deadline). */
const LOGIN_IPC_TIMEOUT_MS = 2000;
/** A worker restarted after one that lived less than this counts as a crash loop: the delay grows. */
const STABLE_WORKER_MS = 60_000;
const RESTART_MAX_DELAY_MS = 30_000;

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
 * The cluster primary: owns the store and the hub (every write, every admin
 * command), forks the workers that hold the connections, and hands each
 * release to every worker as the frame it encoded once. Connections are
 * accepted by the workers themselves on a shared listening socket
 * (SCHED_NONE): the primary never touches an agent socket. It also decides
 * which workers listen: a full one stops, except that one always does, so an
 * operator can always get in.
 */
export class ClusterPrimary {
  private readonly options: ClusterOptions;
  private readonly state: ServerState;
  readonly hub: Hub;
  private readonly access: AccessControl;
  private readonly links = new Map<Worker, WorkerLink>();
  private readonly startedAt = Date.now();
  private stopping = false;
  private stopCall: Promise<void> | undefined;
  /** Workers that exited after the start, and how quickly the next one is forked. */
  private restarts = 0;
  private tls: ServerTlsMaterial | undefined;
  private quickExits = 0;
  addresses: string[] = [];
  /** The cluster side, when other servers share the store. */
  peers: PeerNode | undefined;
  private gen = 0;
  private peerList: PeerServer[] | undefined;
  /** Admin sessions on the admin port, served here, where releases are committed. */
  private readonly admins: ConnectionHost | undefined;
  private readonly login: LoginContext;

  constructor(options: ClusterOptions) {
    this.options = options;
    this.state = new ServerState(options.limits);
    this.hub = new Hub(options.store, this.state, options.limits);
    this.hub.onRelease((release) => {
      const note: PrimaryNote = { k: 'release', frame: release.frame };
      for (const link of this.links.values()) if (link.ready) link.channel.notify(note, release.frame.length * 2 + 512);
    });
    this.hub.setStatusSource({ status: (env, agent) => this.status(env, agent), local: (env, agent) => this.local(env, agent) });
    this.access = new AccessControl(options.store, this.hub, {
      passwordIterations: options.passwordIterations, adminPassword: options.adminPassword, pollMs: options.pollMs > 0 ? 1000 : 0, log: options.log,
    });
    this.access.onChange((book) => {
      const note: PrimaryNote = { k: 'credentials', credentials: book.toCredentials() };
      for (const link of this.links.values()) if (link.ready) link.channel.notify(note);
    });
    this.login = this.access.loginContext(options.passwordIterations, new LoginThrottle(throttleRules(options.limits)));
    if (options.adminListen !== undefined) {
      this.admins = adminPort({ serverId: options.serverId, listen: options.adminListen, limits: options.limits, login: this.login, log: options.log }, this.hub, this.state, this.access);
    }
    if (options.store.shared) {
      this.peers = new PeerNode({
        serverId: options.serverId,
        store: options.store,
        hub: this.hub,
        addrs: options.advertise ?? options.setup.listen.map(endpointText),
        listen: options.peerListen ?? defaultPeerListen(options.setup.listen),
        ...(options.peerAdvertise === undefined ? {} : { advertise: options.peerAdvertise }),
        seeds: options.setup.peers,
        limits: options.limits,
        login: this.login,
        ...(options.peerSettings === undefined ? {} : { settings: options.peerSettings }),
        agents: {
          agents: () => this.agentCount(),
          setPeers: (servers) => {
            this.peerList = servers;
            this.admins?.setPeers(servers);
            for (const link of this.links.values()) if (link.ready) link.channel.notify({ k: 'peers', servers });
          },
          move: async (count, to, within, reason) => this.move(count, to, within, reason),
          revisions: (env, cap) => this.revisions(env, cap),
        },
        log: options.log,
      });
      this.peers.localSource = (env, agent) => this.local(env, agent);
    }
  }

  /** The admin port's address, when there is one. */
  get adminAddress(): string | undefined {
    return this.admins?.addresses.join(',');
  }

  private agentCount(): number {
    let n = 0;
    for (const link of this.links.values()) n += link.agents;
    return n;
  }

  /** Splits a move between the workers by the agents each holds. */
  private move(count: number, to: string | undefined, within: number, reason: string): number {
    const total = this.agentCount();
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

  private async revisions(env: string | undefined, cap: number): Promise<EnvAgents[]> {
    const links = [...this.links.values()].filter((l) => l.ready);
    const parts = await Promise.all(links.map((l) => l.channel.request({ k: 'revisions', env, cap }, STATUS_IPC_TIMEOUT_MS).catch(() => [] as EnvAgents[])));
    return mergeRevisions(parts, cap);
  }

  /** Opens the store, starts the workers, resolves when every worker listens. */
  async start(): Promise<void> {
    await this.hub.open(this.options.log);
    await this.access.open();
    if (this.options.tls !== undefined) this.tls = readServerTls(this.options.tls, await ticketKeys(this.options.store));
    if (this.tls !== undefined) this.admins?.setTls(this.tls);
    if (this.peers !== undefined) {
      // The cluster first: workers serve agents only once this server has what the others have applied.
      this.peers.tls = this.tls;
      await this.peers.start();
      this.gen = this.peers.gen;
    } else {
      this.gen = await this.options.store.members.register({
        id: this.options.serverId, addrs: this.options.advertise ?? this.options.setup.listen.map(endpointText), peer: '', state: 'alive',
        agents: 0, head: this.hub.applied, heartbeat: Date.now(), started: Date.now(),
      });
    }
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ serialization: 'advanced' });
    const listening: Promise<void>[] = [];
    for (let i = 0; i < this.options.workers; i++) listening.push(this.fork(true));
    try {
      await Promise.all(listening);
    } catch (err) {
      await this.stop('forced');
      throw err;
    }
    await this.admins?.listen();
    if (this.options.pollMs > 0) this.hub.startPolling(this.options.pollMs, this.options.log);
    reportMemoryOnSignal(
      () => 'primary',
      () => Object.values(cluster.workers ?? {}).forEach((w) => w?.process.kill('SIGUSR2')),
    );
  }

  private fork(duringStart: boolean): Promise<void> {
    const worker = cluster.fork();
    return new Promise((resolve, reject) => {
      const link: WorkerLink = {
        worker, ready: false, started: false, listening: true, bound: false, full: false, startedAt: Date.now(), agents: 0,
        channel: new Channel(portOf(worker), {
          name: `worker ${worker.process.pid}`,
          maxPending: 64,
          maxQueuedBytes: this.options.limits.workerQueueBytes,
          overflow: (bytes) => {
            this.options.log(`worker ${worker.process.pid} is not taking its messages (${bytes} bytes queued); restarting it`);
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
        this.options.log(`worker ${worker.process.pid} exited (${signal ?? code})`);
        if (duringStart && !link.started) {
          reject(new Error(`a worker exited while starting (${signal ?? code})`));
          return;
        }
        this.restarts++;
        this.decideListeners();
        this.restartLater(Date.now() - link.startedAt);
      });
    });
  }

  /** A crashing worker is replaced after a delay that doubles while replacements keep dying young. */
  private restartLater(livedMs: number): void {
    this.quickExits = livedMs < STABLE_WORKER_MS ? this.quickExits + 1 : 0;
    const delay = this.quickExits === 0 ? 0 : Math.min(RESTART_MAX_DELAY_MS, 250 * 2 ** (this.quickExits - 1)) * (0.5 + Math.random() / 2);
    if (delay > 0) this.options.log(`starting another worker in ${Math.round(delay)} ms`);
    setTimeout(() => {
      if (!this.stopping) this.fork(false).catch((err: unknown) => reportFault('restarting a worker', err));
    }, delay).unref();
  }

  private onNote(link: WorkerLink, note: WorkerNote, listening: () => void): void {
    switch (note.k) {
      case 'ready': {
        // Initial state, then (from the next release on) every release: the channel keeps the order.
        const setup: WorkerSetup = {
          ...this.options.setup, serverId: this.options.serverId, limits: this.options.limits, processes: this.options.workers,
          passwordIterations: this.options.passwordIterations, decoySecret: this.access.decoySecret, shared: this.peers !== undefined,
          ...(this.tls === undefined ? {} : { tls: this.tls }),
        };
        // Not counted against the queue bound: a worker's start may carry the whole configuration at once.
        const init: PrimaryNote = { k: 'init', setup, head: this.hub.applied, envs: this.state.export(), credentials: this.access.book.toCredentials() };
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
        for (const record of note.records.slice(0, 10_000)) this.access.audit(record);
        return;
      case 'agents':
        link.agents = note.count;
        return;
      case 'settle':
        this.login.throttle.settle(note.ticket, note.outcome);
        return;
      case 'behind': {
        const at = Date.now();
        this.hub.pull().then(() => link.channel.notify({ k: 'storeRead', at }), () => undefined);
        return;
      }
      default: {
        const unknown: never = note;
        throw new Error(`unknown note from a worker: ${JSON.stringify(unknown)}`);
      }
    }
  }

  /**
   * Workers with room listen; a full one stops, so that it does not win
   * accepts it would have to refuse — unless no worker with room is
   * listening, in which case a full one keeps listening (the one already
   * listening, if any): admins always get in, and agents get SERVER_FULL and
   * try again or another server. A worker is told to stop only once another
   * has confirmed it listens, so the shared socket is never left without a
   * worker (Node closes it when its last worker leaves).
   */
  private decideListeners(): void {
    const live = [...this.links.values()].filter((l) => l.started && l.worker.isConnected());
    const keep = live.some((l) => !l.full) ? undefined : (live.find((l) => l.listening) ?? live[0]);
    const wanted = (l: WorkerLink): boolean => !l.full || l === keep;
    for (const link of live) {
      if (wanted(link) && !link.listening) this.command(link, true);
    }
    for (const link of live) {
      if (wanted(link) || !link.listening) continue;
      if (live.some((other) => other !== link && other.bound && wanted(other))) this.command(link, false);
    }
  }

  private command(link: WorkerLink, on: boolean): void {
    trace('server', `worker ${link.worker.process.pid} ${on ? 'listens' : 'stops listening'} (${link.full ? 'full' : 'has room'})`);
    link.listening = on;
    link.bound = false; // until the worker confirms it listens again
    link.channel.notify({ k: 'listen', on });
  }

  private async onRequest(request: WorkerRequest): Promise<unknown> {
    switch (request.k) {
      case 'admin':
        return this.access.execute(request.req, request.caller);
      case 'login':
        return this.login.throttle.admit(request.attempt);
      default: {
        const unknown: never = request;
        throw new RequestError(WireError.BAD_REQUEST, `unknown request ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** Asks every worker for its agents and counters and adds them up; a worker that does not answer in time is left out. */
  private async status(env: string | undefined, agent?: string): Promise<Omit<StatusResult, 'envs'>> {
    const links = [...this.links.values()].filter((l) => l.ready);
    const parts = await Promise.all(
      links.map((l) => l.channel.request({ k: 'status', env, max: 1000 }, STATUS_IPC_TIMEOUT_MS).catch(() => undefined)),
    );
    const found = agent === undefined ? undefined : await this.found(env, agent);
    const answered = parts.filter((p): p is HostStatus => p !== undefined);
    const counters: Record<string, number> = { workerRestarts: this.restarts };
    for (const part of answered) for (const [k, v] of Object.entries(part.counters)) counters[k] = (counters[k] ?? 0) + v;
    const server = { ...this.info(), workers: links.length, counters };
    const mine: LocalStatus = { server, gen: this.gen, head: this.hub.applied, agentsTotal: answered.reduce((n, p) => n + p.agentsTotal, 0), envs: await this.revisions(env, LAGGING_SHOWN) };
    if (found !== undefined) mine.found = found;
    const cluster: ClusterStatus = this.peers !== undefined ? await this.peers.clusterStatus(env, mine, agent) : {
      head: this.hub.applied,
      servers: [{ id: this.options.serverId, gen: this.gen, state: 'alive', addrs: this.addresses, head: this.hub.applied, lag: 0, agents: mine.agentsTotal, heardMs: 0, answered: true }],
      envs: mine.envs,
      ...(found === undefined ? {} : { found: found.map((a) => ({ ...a, server: this.options.serverId })) }),
    };
    return { server, agentsTotal: mine.agentsTotal, agents: answered.flatMap((p) => p.agents).slice(0, 1000), cluster };
  }

  private info(): ServerInfo {
    return {
      id: this.options.serverId,
      version: VERSION,
      listen: this.addresses.join(','),
      store: this.options.store.description,
      uptimeMs: Date.now() - this.startedAt,
      workers: this.links.size,
      counters: { workerRestarts: this.restarts },
    };
  }

  private async local(env: string | undefined, agent?: string): Promise<LocalStatus> {
    const out: LocalStatus = { server: this.info(), gen: this.gen, head: this.hub.applied, agentsTotal: this.agentCount(), envs: await this.revisions(env, LAGGING_SHOWN) };
    if (agent !== undefined) out.found = await this.found(env, agent);
    return out;
  }

  /** The agents of id `agent` on every worker that answers in time. */
  private async found(env: string | undefined, agent: string): Promise<AgentInfo[]> {
    const links = [...this.links.values()].filter((l) => l.ready);
    const parts = await Promise.all(
      links.map((l) => l.channel.request({ k: 'status', env, max: FOUND_AT_MOST, agent }, STATUS_IPC_TIMEOUT_MS).catch(() => undefined)),
    );
    return parts.flatMap((p) => (p as HostStatus | undefined)?.agents ?? []).slice(0, FOUND_AT_MOST);
  }

  /** Reads the certificate files again and hands them to every worker: connected sessions go on. */
  async reloadTls(): Promise<void> {
    if (this.options.tls === undefined) return;
    const material = readServerTls(this.options.tls, await ticketKeys(this.options.store));
    this.tls = material;
    this.peers?.setTls(material);
    this.admins?.setTls(material);
    for (const link of this.links.values()) if (link.ready) link.channel.notify({ k: 'tls', material });
  }

  /** Stops once: a second call (a second signal during the drain) gets the first one's promise. */
  stop(mode: 'graceful' | 'forced' = 'graceful'): Promise<void> {
    this.stopCall ??= this.halt(mode);
    return this.stopCall;
  }

  private async halt(mode: 'graceful' | 'forced'): Promise<void> {
    // A graceful stop in a cluster moves the agents to the other servers first.
    if (mode === 'graceful') await this.peers?.drain().catch(() => undefined);
    this.stopping = true;
    const exits = [...this.links.values()].map((link) => new Promise<void>((resolve) => {
      if (link.worker.isDead()) return resolve();
      link.worker.once('exit', () => resolve());
      if (link.worker.isConnected()) link.channel.notify({ k: 'stop', mode });
      // A backstop: a worker ends by itself once its sessions are gone (WRITES_GRACE_MS at most).
      setTimeout(() => link.worker.kill('SIGKILL'), mode === 'graceful' ? WRITES_GRACE_MS + 5000 : 500).unref();
    }));
    await Promise.all([...exits, this.admins?.stop(mode)]);
    await this.peers?.stop().catch(() => undefined);
    await this.access.close().catch(() => undefined);
    await this.hub.close();
  }
}

/**
 * A cluster worker: holds a replica of the state fed by the primary, accepts
 * connections, serves agents, and sends admin requests to the primary.
 */
export function runWorker(): void {
  let state: ServerState | undefined;
  let host: ConnectionHost | undefined;
  let book = CredentialBook.empty();
  const audits: AuditRecord[] = [];
  let auditTimer: NodeJS.Timeout | undefined;
  const port: ChannelPort = {
    send: (message, done) => {
      if (process.connected) process.send!(message, undefined, {}, done);
      else done(null);
    },
  };
  const channel: WorkerChannel = new Channel(port, {
    name: 'worker',
    maxPending: 4096,
    maxQueuedBytes: 256 * 1024 * 1024,
    overflow: () => {
      process.stderr.write('vitefa server worker: the primary is not taking messages; leaving\n');
      process.exit(1);
    },
    note: (note) => onNote(note),
    request: async (request) => {
      switch (request.k) {
        case 'status':
          return host?.status(request.env, request.max, request.agent) ?? { agentsTotal: 0, agents: [], counters: {} };
        case 'revisions':
          return host?.revisions(request.env, request.cap) ?? [];
        default: {
          const unknown: never = request;
          throw new RequestError(WireError.BAD_REQUEST, `unknown request ${JSON.stringify(unknown)}`);
        }
      }
    },
  });
  const onNote = (note: PrimaryNote): void => {
    switch (note.k) {
      case 'init': {
        const { setup } = note;
        channel.maxPending = setup.limits.workerRequests;
        state = new ServerState(setup.limits);
        state.load(note.head, note.envs);
        book = new CredentialBook(note.credentials);
        const login: LoginContext = {
          book: () => book,
          decoySecret: Buffer.from(setup.decoySecret),
          passwordIterations: setup.passwordIterations,
          throttle: primaryThrottle(channel),
          audit: (record) => {
            // Batched: a storm of failed agent logins must not be one IPC message each.
            if (audits.length < 10_000) audits.push(record);
            auditTimer ??= setTimeout(() => {
              auditTimer = undefined;
              channel.notify({ k: 'audit', records: audits.splice(0) });
            }, 200);
          },
        };
        host = new ConnectionHost(
          {
            serverId: setup.serverId,
            ...(setup.processes === undefined ? {} : { processes: setup.processes }),
            listen: setup.listen,
            maxAgents: setup.maxAgents,
            limits: setup.limits,
            login,
            ...(setup.tls === undefined ? {} : { tls: reviveTls(setup.tls) }),
            onCapacity: (full) => channel.notify({ k: 'capacity', full }),
            onListening: (addresses) => channel.notify({ k: 'listening', addresses }),
            onAgents: (count) => channel.notify({ k: 'agents', count }),
            ...(setup.shared ? { onBehind: (rev: number) => channel.notify({ k: 'behind', rev }) } : {}),
          },
          state,
          {
            execute: (req, caller) => channel.request({ k: 'admin', req, caller }, setup.limits.workerRequestTimeoutMs),
          },
        );
        host.listen().then(
          () => channel.notify({ k: 'listening', addresses: host!.addresses }),
          (err: Error) => {
            process.stderr.write(`vitefa server worker: ${err.message}\n`);
            process.exit(1);
          },
        );
        return;
      }
      case 'release': {
        const frame = Buffer.from(note.frame.buffer, note.frame.byteOffset, note.frame.byteLength);
        const message = decodeBody(frame.subarray(FRAME_HEADER_BYTES), FROM_PRIMARY);
        if (message.t !== MessageType.Release) throw new Error(`the primary sent message type ${message.t} as a release`);
        const published = state?.apply(storedOf(message), frame, message.pchain);
        if (published !== undefined) host?.publish(published);
        return;
      }
      case 'listen':
        host?.setListening(note.on);
        return;
      case 'peers':
        host?.setPeers(note.servers);
        return;
      case 'move':
        host?.move(note.count, note.to, note.within, note.reason);
        return;
      case 'storeRead':
        host?.storeRead(note.at);
        return;
      case 'credentials':
        book = new CredentialBook(note.credentials);
        host?.credentialsChanged(book);
        return;
      case 'tls':
        host?.setTls(reviveTls(note.material));
        return;
      case 'stop':
        void (host?.stop(note.mode) ?? Promise.resolve()).then(() => process.exit(0));
        return;
      default: {
        const unknown: never = note;
        throw new Error(`unknown note from the primary: ${JSON.stringify(unknown)}`);
      }
    }
  };
  process.on('message', (message: unknown) => channel.receive(message));
  reportMemoryOnSignal(() => `worker with ${host?.connections ?? 0} connections,`);
  // Without the primary there are no releases to serve: leave, agents fail over.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group; the primary decides how workers stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  channel.notify({ k: 'ready' });
}

/**
 * A worker's logins ask the primary's throttle, the one of the whole server:
 * seven workers must not allow seven times the rate. Without an answer in
 * time the attempt is told to try again shortly.
 */
function primaryThrottle(channel: WorkerChannel): LoginGate {
  const unanswered: Admission = { admitted: false, retryMs: 1000, message: 'this server could not ask its login throttle in time: try again in 1 s' };
  return {
    admit: (attempt) => channel.request({ k: 'login', attempt }, LOGIN_IPC_TIMEOUT_MS).catch(() => unanswered),
    settle: (ticket, outcome) => channel.notify({ k: 'settle', ticket, outcome }),
  };
}

/** The primary's frames are this process's own: decoded without the bounds put on strangers'. */
const FROM_PRIMARY = { maxElements: Number.MAX_SAFE_INTEGER, maxDepth: 16 };

/** Buffers arrive over IPC as Uint8Arrays: make them Buffers again. */
function reviveTls(m: ServerTlsMaterial): ServerTlsMaterial {
  return {
    cert: Buffer.from(m.cert), key: Buffer.from(m.key), ticketKeys: Buffer.from(m.ticketKeys),
    ...(m.clientCa === undefined ? {} : { clientCa: Buffer.from(m.clientCa) }),
  };
}
