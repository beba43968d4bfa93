import { hostname } from 'node:os';
import type tls from 'node:tls';
import type { TokenParts } from '../security/token.js';
import {
  LocalErrorCode, MessageType, ProtocolError, RemoteError, VitefaError, WireError,
  type Message, type Move,
} from '../protocol/index.js';
import { connect, endpointText, type ClientConnection, type Endpoint } from '../transport/client.js';
import { errorText } from '../error-text.js';
import { trace } from '../trace.js';
import { backoffDelay } from '../transport/backoff.js';
import { Heartbeat } from '../transport/heartbeat.js';
import { ReleaseApplier, type ReleaseStore } from './apply.js';
import { Outage, OUTAGE_DEFAULTS, type OutageReport, type OutageSettings } from './outage.js';
import { KnownServers, type ServerMemory } from './servers.js';

export type { ServerMemory } from './servers.js';

/** What the agent needs of its store (the LMDB LocalStore on a host). */
export type AgentStore = ReleaseStore & ServerMemory;

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
  /** A group of releases the server did not end was dropped and asked for again. */
  unended?(detail: string): void;
  disconnected?(reason: string): void;
  /** A server throttles the agent's login: it tries again after `retryMs` (within its connect timeout, or as its next attempt). */
  throttled?(server: string, retryMs: number, message: string): void;
  fatal?(err: Error): void;
}

/**
 * The host daemon: keeps one session to a server (failing over between the
 * servers it knows, with jittered backoff), subscribes from the revisions its
 * store holds, and hands what the server sends to its ReleaseApplier, which
 * applies each release (or each group of releases of one revision) in one
 * local transaction and acknowledges it. The
 * store keeps answering readers whatever the network does.
 */
export class Agent {
  private readonly options: AgentOptions;
  private readonly events: AgentEvents;
  private conn?: ClientConnection;
  /** Every server known: the configured ones, and those the servers told of, with their load and state. */
  private readonly servers: KnownServers;
  private readonly applier: ReleaseApplier;
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
  private tlsSession: Buffer | undefined;
  /** Set by a Move: the next connect waits this long instead of backing off. */
  private moveDelayMs: number | undefined;
  /** A server throttled the last login for longer than the connect timeout: the next attempt waits at least this long. */
  private throttledMs = 0;
  /** Time without a session, and when to say so. */
  private readonly outage: Outage;
  private outageTimer?: NodeJS.Timeout;

  constructor(options: AgentOptions, store: AgentStore, events: AgentEvents = {}) {
    this.options = options;
    this.events = events;
    this.heartbeat = new Heartbeat(options.pingIntervalMs);
    this.outage = new Outage(options.outage ?? OUTAGE_DEFAULTS);
    this.servers = new KnownServers(options.servers, store);
    this.applier = new ReleaseApplier(store, { envs: options.envs, ackDelayMs: options.ackDelayMs }, {
      session: () => this.conn,
      applied: (env, rev, kind) => this.events.applied?.(env, rev, kind),
      forked: (env, detail) => this.events.forked?.(env, detail),
      unended: (detail) => this.events.unended?.(detail),
      fatal: (err) => this.fatal(err),
    });
  }

  /** How many servers it knows besides the configured ones (remembered from the cluster, at first). */
  get learnedServers(): number {
    return this.servers.learned;
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
  stop(): Promise<void> {
    this.stopped = true;
    this.stopTimers();
    this.conn?.end('agent stopping');
    return Promise.resolve();
  }

  private stopTimers(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.outageTimer);
    this.heartbeat.stop();
    this.applier.stop();
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    const chosen = this.servers.choose(this.movingTo, this.current);
    this.movingTo = undefined;
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
      this.applier.newSession();
      this.servers.learn(conn.serverHello?.peers ?? []);
      const subscribe = this.applier.subscribe();
      conn.send(subscribe);
      // The server says how often it wants pings (more seldom as its agents grow); without a word, as configured.
      this.heartbeat.every(serverInterval(conn.welcome?.ping) ?? this.options.pingIntervalMs);
      this.heartbeat.start(conn, 'no pong from server');
      trace('agent', `connected to ${label}, holding ${JSON.stringify(subscribe.envs)}`);
      if (chosen.state === 'unreachable') chosen.state = 'alive';
      clearTimeout(this.outageTimer);
      this.events.connected?.(label, this.outage.end());
    } catch (err) {
      trace('agent', `connect to ${label} failed: ${errorText(err)}`);
      this.outage.failed(errorText(err));
      // Tried again only when no server of a better standing is left.
      chosen.state = 'unreachable';
      this.refused(label, err);
    }
  }

  /** A connect failed: stop for good, or say why (once per refusal) and try again. */
  private refused(label: string, err: unknown): void {
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

  private onMessage(message: Message): void {
    if (this.stopped) return;
    switch (message.t) {
      case MessageType.Release:
        return this.applier.release(message);
      case MessageType.Snapshot:
        return this.applier.snapshot(message);
      case MessageType.GroupEnd:
        return this.applier.groupEnd();
      case MessageType.Ping:
        this.conn?.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        this.onPong(message.next);
        return;
      case MessageType.Peers:
        this.servers.update(message.servers);
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

  /** Stops for good and reports why (the command exits non-zero). */
  private fatal(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopTimers();
    this.conn?.destroy(err.message);
    this.events.fatal?.(err);
  }

  /**
   * The server asks this agent to go (it drains, or it rebalances): after a
   * random part of `within`, the agent connects to `to` (or to a server it
   * chooses, not this one) and resumes from the revisions it holds.
   */
  private onMove(move: Move): void {
    trace('agent', `moving${move.to === undefined ? '' : ` to ${move.to}`}: ${move.reason}`);
    this.movingTo = move.to;
    if (move.to === undefined && this.current !== undefined) this.servers.draining(this.current);
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
    this.applier.sessionEnded();
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

/** A session that lasted this long resets the backoff; one ended sooner counts as a failed attempt. */
const STEADY_SESSION_MS = 10_000;

/** A ping interval a server asked for, kept within 1 s and 10 minutes. */
function serverInterval(ms: number | undefined): number | undefined {
  return ms === undefined || ms <= 0 ? undefined : Math.min(600_000, Math.max(1_000, ms));
}
