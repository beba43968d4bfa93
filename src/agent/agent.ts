import { hostname } from 'node:os';
import type tls from 'node:tls';
import type { TokenParts } from '../security/token.js';
import {
  LocalErrorCode, MessageType, ProtocolError, RemoteError, VitefaError, WireError,
  type EnvRev, type Message, type Move, type PeerServer, type Release, type Snapshot,
} from '../protocol/index.js';
import { connect, endpointText, parseEndpoint, type ClientConnection, type Endpoint } from '../transport/client.js';
import { trace } from '../trace.js';
import { backoffDelay } from '../transport/backoff.js';
import { Heartbeat } from '../transport/heartbeat.js';
import type { LocalStore } from './local-store.js';
import { Outage, OUTAGE_DEFAULTS, type OutageReport, type OutageSettings } from './outage.js';

/** What the agent needs of its store (the LMDB LocalStore on a host). */
export type AgentStore = Pick<LocalStore, 'held' | 'revision' | 'chain' | 'applyRelease' | 'applySnapshot'> & ServerMemory;

/** Where the agent keeps the servers the cluster announced, for its next start. */
export type ServerMemory = Pick<LocalStore, 'rememberedServers' | 'rememberServers'>;

export interface AgentOptions {
  servers: Endpoint[];
  /** The agent's token: its id travels in the login, its secret never does. */
  token: TokenParts;
  /** TLS to the servers (verifying their certificate); plaintext when absent. */
  tls?: tls.ConnectionOptions;
  /** Environments to follow; empty means every environment. */
  envs: string[];
  id?: string;
  connectTimeoutMs: number;
  /** Backoff between attempts: grows from min to max, each delay jittered. */
  backoffMinMs: number;
  backoffMaxMs: number;
  pingIntervalMs: number;
  /**
   * Acknowledgements wait this long and are coalesced (one Ack per
   * environment, for the newest revision), so that a release's fan-out never
   * competes with a wave of acks. Acks only feed `status`.
   */
  ackDelayMs: number;
  /** When to say that no server answers (OUTAGE_DEFAULTS when absent). */
  outage?: OutageSettings;
}

export const AGENT_DEFAULTS = {
  connectTimeoutMs: 5000,
  backoffMinMs: 100,
  backoffMaxMs: 10_000,
  pingIntervalMs: 15_000,
  ackDelayMs: 2000,
} as const;

export interface AgentEvents {
  /** `afterMs`: how long it had no session, when it had said so (unreachable). */
  connected?(server: string, afterMs?: number): void;
  /** No session for a while (see Outage for when this comes): every address tried and the last error. */
  unreachable?(report: OutageReport): void;
  applied?(env: string, rev: number, kind: 'release' | 'snapshot' | 'drop'): void;
  /** A release or snapshot did not follow the chain this store holds (a fork): said once per fork. */
  forked?(env: string, detail: string): void;
  disconnected?(reason: string): void;
  /** A server throttles the agent's login: it tries again after `retryMs` (within its connect timeout, or as its next attempt). */
  throttled?(server: string, retryMs: number, message: string): void;
  fatal?(err: Error): void;
}

/**
 * The host daemon: keeps one session to a server (failing over between the
 * servers it knows, with jittered backoff), subscribes from the revisions its
 * store holds, applies each release in one local transaction and acknowledges
 * it. The store keeps answering readers whatever the network does.
 */
export class Agent {
  private readonly options: AgentOptions;
  private readonly store: AgentStore;
  private readonly events: AgentEvents;
  private conn?: ClientConnection;
  /** Every server known: the configured ones, and those the servers told of, with their load and state. */
  private readonly servers = new Map<string, KnownServer>();
  /** The server of the current (or last) session. */
  private current: string | undefined;
  /** Where to go next (a Move), instead of choosing. */
  private movingTo: string | undefined;
  private attempt = 0;
  /** When the current (or last) session was logged in. */
  private connectedAt = 0;
  private stopped = false;
  /** The last refusal a server sent at connect, said once. */
  private lastRefusal: string | undefined;
  private retryTimer?: NodeJS.Timeout;
  private readonly heartbeat: Heartbeat;
  /** Environments with a gap, re-subscribed once until something applies. */
  private readonly resyncing = new Set<string>();
  private readonly unacked = new Map<string, number>();
  private tlsSession: Buffer | undefined;
  private ackTimer?: NodeJS.Timeout;
  /** Set by a Move: the next connect waits this long instead of backing off. */
  private moveDelayMs: number | undefined;
  /** A server throttled the last login for longer than the connect timeout: the next attempt waits at least this long. */
  private throttledMs = 0;
  /** Time without a session, and when to say so. */
  private readonly outage: Outage;
  private outageTimer?: NodeJS.Timeout;

  constructor(options: AgentOptions, store: AgentStore, events: AgentEvents = {}) {
    this.options = options;
    this.store = store;
    this.events = events;
    this.heartbeat = new Heartbeat(options.pingIntervalMs);
    this.outage = new Outage(options.outage ?? OUTAGE_DEFAULTS);
    for (const e of options.servers) this.servers.set(endpointText(e), { endpoint: e, agents: -1, state: 'configured', configured: true });
    // Servers the cluster announced before this start: tried like servers it no longer lists, after live configured ones.
    for (const addr of store.rememberedServers()) {
      const endpoint = parseAddress(addr);
      if (endpoint !== undefined && !this.servers.has(addr)) this.servers.set(addr, { endpoint, agents: -1, state: 'unlisted', configured: false });
    }
  }

  /** How many servers it knows besides the configured ones (remembered from the cluster, at first). */
  get learnedServers(): number {
    return [...this.servers.values()].filter((s) => !s.configured).length;
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.isClosed;
  }

  start(): void {
    this.withoutSession();
    void this.dial();
  }

  /**
   * Stops for good: from here on nothing more is applied (a release still on
   * its way is dropped, and received again from the revision held at the
   * next start), so the store may be closed as soon as this returns.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.outageTimer);
    this.heartbeat.stop();
    clearTimeout(this.ackTimer);
    this.conn?.end('agent stopping');
  }

  /**
   * The server to try next: where a Move said, else a random one weighted by
   * how few agents it holds (1 / (agents + the mean)), among the alive ones
   * (then the suspect, then configured ones the cluster did not list and
   * those remembered from an earlier run, then any: those whose last connect
   * failed come here), avoiding the one just left when there is another.
   * Weighted, not "the least loaded": agents choosing at the same moment
   * from the same loads spread instead of all picking one server.
   */
  private choose(): KnownServer {
    const moving = this.movingTo === undefined ? undefined : this.servers.get(this.movingTo) ?? this.remember(this.movingTo);
    this.movingTo = undefined;
    if (moving !== undefined) return moving;
    const all = [...this.servers.values()];
    const others = all.length > 1 ? all.filter((s) => endpointText(s.endpoint) !== this.current) : all;
    const usable = (states: string[]): KnownServer[] => others.filter((s) => states.includes(s.state));
    let pool = usable(['alive', 'configured']);
    if (pool.length === 0) pool = usable(['suspect']);
    if (pool.length === 0) pool = usable(['unlisted']);
    if (pool.length === 0) pool = others;
    const known = pool.filter((s) => s.agents >= 0);
    const mean = known.length === 0 ? 1 : Math.max(1, known.reduce((n, s) => n + s.agents, 0) / known.length);
    const weights = pool.map((s) => 1 / ((s.agents >= 0 ? s.agents : mean) + mean));
    let pick = Math.random() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < pool.length; i++) {
      pick -= weights[i]!;
      if (pick <= 0) return pool[i]!;
    }
    return pool[pool.length - 1]!;
  }

  private remember(addr: string): KnownServer | undefined {
    // Whatever a server announces, the agent knows a bounded number of servers (a cluster has tens).
    if (this.servers.size >= KNOWN_SERVERS_AT_MOST || addr.length > 300) return undefined;
    const endpoint = parseAddress(addr);
    if (endpoint === undefined) return undefined;
    const known: KnownServer = { endpoint, agents: -1, state: 'alive', configured: false };
    this.servers.set(addr, known);
    return known;
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    const chosen = this.choose();
    const server = chosen.endpoint;
    const label = endpointText(server);
    this.current = label;
    this.outage.trying(label);
    try {
      const conn = await connect({
        ...server,
        role: 'agent',
        id: this.options.id ?? hostname(),
        login: { user: this.options.token.id, secret: this.options.token.secret },
        // The last session ticket resumes TLS cheaply (the login still proves both sides, every time).
        ...(this.options.tls === undefined ? {} : { tls: this.tlsSession === undefined ? this.options.tls : { ...this.options.tls, session: this.tlsSession }, onTlsSession: (s: Buffer) => (this.tlsSession = s) }),
        timeoutMs: this.options.connectTimeoutMs,
        onThrottled: (retryMs, message) => {
          trace('agent', `${label} throttles the login: ${message}`);
          this.events.throttled?.(label, retryMs, message);
        },
        onMessage: (message) => this.onMessage(message),
        onClose: (reason) => this.onDisconnect(reason),
      });
      if (this.stopped) {
        conn.end('agent stopping');
        return;
      }
      this.conn = conn;
      // The backoff starts afresh only once a session has lasted (onDisconnect): a server that takes the login and then
      // drops the session at once (it cannot serve this agent) is not asked again ten times a second.
      this.connectedAt = Date.now();
      this.lastRefusal = undefined;
      this.resyncing.clear();
      this.learnPeers(conn.serverHello?.peers ?? []);
      const held = this.subscription();
      conn.send({ t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: held });
      // The server says how often it wants pings (more seldom as its agents grow); without a word, as configured.
      this.heartbeat.every(serverInterval(conn.welcome?.ping) ?? this.options.pingIntervalMs);
      this.heartbeat.start(conn, 'no pong from server');
      trace('agent', `connected to ${label}, holding ${JSON.stringify(held)}`);
      if (chosen.state === 'unreachable') chosen.state = 'alive';
      clearTimeout(this.outageTimer);
      this.events.connected?.(label, this.outage.end());
    } catch (err) {
      trace('agent', `connect to ${label} failed: ${(err as Error).message}`);
      this.outage.failed((err as Error).message);
      // Tried again only when no server of a better standing is left.
      chosen.state = 'unreachable';
      // Another protocol version, found by this side (the server's hello) or by the server: retrying cannot help.
      if ((err instanceof RemoteError || err instanceof ProtocolError) && err.status === WireError.VERSION_MISMATCH) {
        this.fatal(new VitefaError(LocalErrorCode.VERSION_MISMATCH, `server ${label}: ${err.message}`, { cause: err }));
        return;
      }
      if (err instanceof RemoteError && err.status === WireError.THROTTLED && err.retryMs !== undefined) {
        // Longer than the connect timeout allows: the next attempt waits at least as long as the server asked.
        this.throttledMs = err.retryMs;
        this.events.throttled?.(label, err.retryMs, err.message);
      } else if (err instanceof RemoteError && err.status === WireError.AUTH_FAILED) {
        // A token that is not (or no longer) known: keep serving the store, and try again, slowly.
        this.events.disconnected?.(`${label} refused the agent's token: ${err.message}`);
        this.attempt = Math.max(this.attempt, 30);
      } else if (err instanceof RemoteError && err.message !== this.lastRefusal) {
        // Any other refusal (full, the admin port, …) is said once, until another one comes.
        this.lastRefusal = err.message;
        this.events.disconnected?.(`${label} refused the agent: ${err.message}`);
      }
      this.scheduleRetry();
    }
  }

  /** Revisions held for the environments followed (every held one when following all). */
  private subscription(): EnvRev[] {
    const held = this.store.held();
    if (this.options.envs.length === 0) return held;
    const byEnv = new Map(held.map((h) => [h.env, h]));
    return this.options.envs.map((env) => byEnv.get(env) ?? { env, rev: 0 });
  }

  private onMessage(message: Message): void {
    if (this.stopped) return;
    switch (message.t) {
      case MessageType.Release:
        return this.onRelease(message);
      case MessageType.Snapshot:
        return this.onSnapshot(message);
      case MessageType.Ping:
        this.conn?.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        this.onPong(message.next);
        return;
      case MessageType.Peers:
        this.onPeers(message.servers);
        return;
      case MessageType.Move:
        this.onMove(message);
        return;
      case MessageType.Error:
        trace('agent', `server error ${message.code}: ${message.msg}`);
        if (message.code === WireError.VERSION_MISMATCH) {
          this.fatal(new VitefaError(LocalErrorCode.VERSION_MISMATCH, `the server refused this agent's protocol version: ${message.msg}`));
          return;
        }
        if (message.code === WireError.FORBIDDEN) {
          // It follows an environment its token does not grant: no retry can change that.
          this.fatal(new VitefaError(LocalErrorCode.FORBIDDEN, message.msg));
          return;
        }
        this.conn?.end(`server error ${message.code}: ${message.msg}`);
        return;
      case MessageType.Hello:
      case MessageType.Subscribe:
      case MessageType.Ack:
      case MessageType.Request:
      case MessageType.Response:
      case MessageType.Challenge:
      case MessageType.Proof:
      case MessageType.Welcome:
      case MessageType.Gossip:
      case MessageType.StoreCheck:
      case MessageType.StoreProof:
        this.conn?.fail(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to an agent`);
        return;
      default: {
        const unknown: never = message;
        this.conn?.fail(WireError.UNEXPECTED_MESSAGE, `unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  private onRelease(release: Release): void {
    if (!this.follows(release.env)) return;
    const held = this.store.revision(release.env);
    if (release.rev <= held || (release.drop === true && held === 0)) return; // already applied, or nothing to drop
    const chain = this.store.chain(release.env);
    // Holding a chain, a release that says nothing of what it follows is not taken either: applied, it would end the
    // chain held, and every later release would be taken unchecked.
    if (release.prev === held && chain !== '' && (release.pchain ?? '') !== chain) {
      // It follows another history than the one held: a fork (a copy of the store went on writing). Nothing of it
      // is applied; asking again with the chain held makes the server send a snapshot of its own history.
      if (!this.resyncing.has(release.env)) {
        this.resyncing.add(release.env);
        this.events.forked?.(release.env, `release ${release.env}@${release.rev} follows chain ${release.pchain ?? '(none)'} at revision ${held}, but this store holds chain ${chain} there: not applied, asking for a snapshot`);
        this.conn?.send({ t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: this.subscription() });
      }
      return;
    }
    if (release.prev !== held) {
      // A gap: never apply out of order. Ask once for what is missing, from what is held.
      if (!this.resyncing.has(release.env)) {
        this.resyncing.add(release.env);
        trace('agent', `gap in ${release.env}: hold ${held}, release ${release.rev} follows ${release.prev}`);
        this.conn?.send({ t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: this.subscription() });
      }
      return;
    }
    if (!this.storable(release.env, release.changes)) return;
    if (!this.guard(() => this.store.applyRelease(release))) return;
    this.resyncing.delete(release.env);
    this.acknowledge(release.env, release.rev);
    const kind = release.drop === true ? 'drop' : 'release';
    trace('agent', `applied ${kind} ${release.env}@${release.rev} after ${release.prev} (${release.changes.length} changes)`);
    this.events.applied?.(release.env, release.rev, kind);
  }

  private acknowledge(env: string, rev: number): void {
    this.unacked.set(env, rev);
    if (this.ackTimer !== undefined) return;
    // Jittered, so the agents of one release do not all answer in the same instant.
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      for (const [e, r] of this.unacked) {
        const chain = this.store.chain(e);
        this.conn?.send({ t: MessageType.Ack, env: e, rev: r, ...(chain === '' ? {} : { chain }) });
      }
      this.unacked.clear();
    }, this.options.ackDelayMs * (0.5 + Math.random()));
  }

  private onSnapshot(snapshot: Snapshot): void {
    if (!this.follows(snapshot.env)) return;
    const held = this.store.revision(snapshot.env);
    const chain = this.store.chain(snapshot.env);
    if (held >= snapshot.rev && chain !== '' && snapshot.chain !== undefined && snapshot.chain !== chain) {
      this.events.forked?.(snapshot.env, `snapshot ${snapshot.env}@${snapshot.rev} (chain ${snapshot.chain}) replaces revision ${held} (chain ${chain}) held here, of another history: taking the server's`);
    }
    if (!this.storable(snapshot.env, snapshot.entries)) return;
    if (!this.guard(() => this.store.applySnapshot(snapshot))) return;
    this.resyncing.delete(snapshot.env);
    this.acknowledge(snapshot.env, snapshot.rev);
    trace('agent', `applied snapshot ${snapshot.env}@${snapshot.rev} (${snapshot.entries.length} keys)`);
    this.events.applied?.(snapshot.env, snapshot.rev, 'snapshot');
  }

  /**
   * Whether every key can be kept as the store's layout needs (an LMDB key of at most 511 bytes, which every reader
   * can read); else the session ends and nothing of it is applied: no server of ours sends such a key.
   */
  private storable(env: string, changes: readonly (readonly [string, unknown])[]): boolean {
    const envBytes = Buffer.byteLength(env);
    let bad = envBytes === 0 || envBytes > MAX_STORED_KEY_BYTES;
    for (let i = 0; !bad && i < changes.length; i++) bad = envBytes + 1 + Buffer.byteLength(changes[i]![0]) > MAX_STORED_KEY_BYTES;
    if (bad) this.conn?.fail(WireError.MALFORMED, `the server sent a name or key the store cannot hold in ${JSON.stringify(env.slice(0, 64))}; nothing of it was applied`);
    return !bad;
  }

  private follows(env: string): boolean {
    return this.options.envs.length === 0 || this.options.envs.includes(env);
  }

  /** A store that cannot be written stops the agent: it never acknowledges what it did not keep. */
  private guard(write: () => void): boolean {
    try {
      write();
      return true;
    } catch (err) {
      this.fatal(err instanceof Error ? err : new VitefaError(LocalErrorCode.STORE_FAILED, String(err)));
      return false;
    }
  }

  /** Stops for good and reports why (the command exits non-zero). */
  private fatal(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.outageTimer);
    this.heartbeat.stop();
    clearTimeout(this.ackTimer);
    this.conn?.destroy(err.message);
    this.events.fatal?.(err);
  }


  /** Servers named in the hello, for failover (their load is learned from the next Peers). */
  private learnPeers(peers: string[]): void {
    for (const peer of peers) if (!this.servers.has(peer)) this.remember(peer);
    this.keepServers(peers);
  }

  /**
   * Keeps the servers the cluster announced in the store (written only when
   * the set changed), so that a restart finds the cluster even when every
   * configured server is gone. An empty list says nothing (a server of the
   * embedded store names no peers) and leaves what is kept.
   */
  private keepServers(addrs: string[]): void {
    if (addrs.length === 0) return;
    try {
      // Added to what was kept, newest first, never replacing it: while a whole cluster stops, each server names only
      // the others that are not draining, and a list cut down to one of them would lose the rest for the next start.
      if (this.store.rememberServers([...addrs, ...this.store.rememberedServers()])) trace('agent', `remembering servers ${addrs.join(', ')}`);
    } catch (err) {
      // Only a hint for the next start: a store that cannot be written stops the agent at its next release.
      trace('agent', `cannot remember the servers: ${(err as Error).message}`);
    }
  }

  /**
   * The servers of the cluster, as the server sees them now: their load and
   * state replace what was known; servers no longer listed (dead, stopped)
   * are forgotten, except those this agent was configured with.
   */
  private onPeers(list: PeerServer[]): void {
    const listed = new Set<string>();
    for (const p of list.slice(0, 256)) {
      const known = this.servers.get(p.addr) ?? this.remember(p.addr);
      if (known === undefined) continue;
      listed.add(p.addr);
      known.agents = p.agents;
      known.state = p.state;
    }
    for (const [addr, known] of this.servers) {
      if (listed.has(addr)) continue;
      if (known.configured) {
        // Configured but not among the cluster's servers now (dead, stopped): tried only when none of those answers.
        known.state = 'unlisted';
        known.agents = -1;
      } else {
        this.servers.delete(addr);
      }
    }
    trace('agent', `servers: ${list.map((p) => `${p.addr} ${p.state} ${p.agents}`).join(', ')}`);
    this.keepServers([...listed]);
  }

  /**
   * The server asks this agent to go (it drains, or it rebalances): after a
   * random part of `within`, the agent connects to `to` (or to a server it
   * chooses, not this one) and resumes from the revisions it holds.
   */
  private onMove(move: Move): void {
    trace('agent', `moving${move.to === undefined ? '' : ` to ${move.to}`}: ${move.reason}`);
    this.movingTo = move.to;
    if (move.to === undefined && this.current !== undefined) {
      const here = this.servers.get(this.current);
      if (here !== undefined) here.state = 'draining';
    }
    // A session that had hardly begun is not moved at once again and again: after two such moves it backs off as
    // after a failure, so a server cannot keep an agent reconnecting in a loop.
    const short = Date.now() - this.connectedAt < STEADY_SESSION_MS;
    if (short) this.attempt++;
    this.moveDelayMs = short && this.attempt > 2 ? undefined : Math.random() * Math.min(move.within, 60_000);
    this.conn?.end(`moving: ${move.reason}`);
  }

  private onPong(next: number | undefined): void {
    this.heartbeat.answered();
    const interval = serverInterval(next);
    if (interval !== undefined && interval !== this.heartbeat.interval) this.heartbeat.every(interval);
  }

  private onDisconnect(reason: string): void {
    this.heartbeat.stop();
    this.conn = undefined;
    if (this.stopped) return;
    if (Date.now() - this.connectedAt >= STEADY_SESSION_MS) this.attempt = 0;
    trace('agent', `disconnected: ${reason}`);
    this.events.disconnected?.(reason);
    this.withoutSession();
    this.scheduleRetry();
  }

  /** No session from now on: says so when the outage lasts (see Outage), whatever the tracing. */
  private withoutSession(): void {
    this.outage.begin();
    this.watchOutage();
  }

  private watchOutage(): void {
    clearTimeout(this.outageTimer);
    const wait = this.outage.nextInMs();
    if (wait === undefined || this.stopped) return;
    this.outageTimer = setTimeout(() => {
      const report = this.outage.due();
      if (report !== undefined) this.events.unreachable?.(report);
      this.watchOutage();
    }, wait);
    // The retry timer keeps the process alive; this one only reports.
    this.outageTimer.unref();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    // A move goes at once (within its spread); a failure backs off.
    const moved = this.moveDelayMs;
    this.moveDelayMs = undefined;
    const delay = moved ?? Math.max(backoffDelay(this.attempt++, this.options.backoffMinMs, this.options.backoffMaxMs), this.throttledMs);
    this.throttledMs = 0;
    this.retryTimer = setTimeout(() => void this.dial(), delay);
  }
}

/** The longest key the store takes: environment, a zero byte and the key, as LMDB's default builds allow. */
const MAX_STORED_KEY_BYTES = 511;

/** Servers an agent knows at most, configured, remembered and announced together. */
const KNOWN_SERVERS_AT_MOST = 256;

/** A session that lasted this long resets the backoff; one ended sooner counts as a failed attempt. */
const STEADY_SESSION_MS = 10_000;

interface KnownServer {
  endpoint: Endpoint;
  /** Agents it holds as last told, or -1 when not known. */
  agents: number;
  /**
   * alive, suspect, draining (from the servers); configured (from --servers,
   * no list heard yet); unlisted (from --servers, not in the last list; or
   * remembered from an earlier run); unreachable (its last connect failed,
   * until it connects or a list names it).
   */
  state: string;
  /** Given with --servers: never forgotten. */
  configured: boolean;
}

/** A ping interval a server asked for, kept within 1 s and 10 minutes. */
function serverInterval(ms: number | undefined): number | undefined {
  return ms === undefined || ms <= 0 ? undefined : Math.min(600_000, Math.max(1_000, ms));
}

function parseAddress(addr: string): Endpoint | undefined {
  try {
    return parseEndpoint(addr);
  } catch {
    return undefined;
  }
}
