import { hostname } from 'node:os';
import type tls from 'node:tls';
import type { TokenParts } from '../security/token.js';
import {
  LocalErrorCode, MessageType, ProtocolError, RemoteError, VitefaError, WireError,
  type EnvRev, type Message, type Release, type Snapshot,
} from '../protocol/index.js';
import { connect, type ClientConnection, type Endpoint } from '../transport/client.js';
import { trace } from '../trace.js';
import type { LocalStore } from './local-store.js';

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
}

export const AGENT_DEFAULTS = {
  connectTimeoutMs: 5000,
  backoffMinMs: 100,
  backoffMaxMs: 10_000,
  pingIntervalMs: 15_000,
  ackDelayMs: 1000,
} as const;

export interface AgentEvents {
  connected?(server: string): void;
  applied?(env: string, rev: number, kind: 'release' | 'snapshot' | 'drop'): void;
  disconnected?(reason: string): void;
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
  private readonly store: LocalStore;
  private readonly events: AgentEvents;
  private conn?: ClientConnection;
  private servers: Endpoint[];
  private next = 0;
  private attempt = 0;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;
  private pingSeq = 0;
  private awaitingPong = false;
  /** Environments with a gap, re-subscribed once until something applies. */
  private readonly resyncing = new Set<string>();
  private readonly unacked = new Map<string, number>();
  private tlsSession: Buffer | undefined;
  private ackTimer?: NodeJS.Timeout;

  constructor(options: AgentOptions, store: LocalStore, events: AgentEvents = {}) {
    this.options = options;
    this.store = store;
    this.events = events;
    this.servers = [...options.servers];
  }

  get connected(): boolean {
    return this.conn !== undefined && !this.conn.isClosed;
  }

  start(): void {
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
    clearInterval(this.pingTimer);
    clearTimeout(this.ackTimer);
    this.conn?.end('agent stopping');
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    const server = this.servers[this.next % this.servers.length]!;
    this.next++;
    const label = `${server.host}:${server.port}`;
    try {
      const conn = await connect({
        ...server,
        role: 'agent',
        id: this.options.id ?? hostname(),
        login: { user: this.options.token.id, secret: this.options.token.secret },
        // The last session ticket resumes TLS cheaply (the login still proves both sides, every time).
        ...(this.options.tls === undefined ? {} : { tls: this.tlsSession === undefined ? this.options.tls : { ...this.options.tls, session: this.tlsSession }, onTlsSession: (s: Buffer) => (this.tlsSession = s) }),
        timeoutMs: this.options.connectTimeoutMs,
        onMessage: (message) => this.onMessage(message),
        onClose: (reason) => this.onDisconnect(reason),
      });
      if (this.stopped) {
        conn.end('agent stopping');
        return;
      }
      this.conn = conn;
      this.attempt = 0;
      this.resyncing.clear();
      this.learnPeers(conn.serverHello?.peers ?? []);
      const held = this.subscription();
      conn.send({ t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: held });
      this.startPings(conn);
      trace('agent', `connected to ${label}, holding ${JSON.stringify(held)}`);
      this.events.connected?.(label);
    } catch (err) {
      trace('agent', `connect to ${label} failed: ${(err as Error).message}`);
      // Another protocol version, found by this side (the server's hello) or by the server: retrying cannot help.
      if ((err instanceof RemoteError || err instanceof ProtocolError) && err.status === WireError.VERSION_MISMATCH) {
        this.fatal(new VitefaError(LocalErrorCode.VERSION_MISMATCH, `server ${label}: ${err.message}`, { cause: err }));
        return;
      }
      if (err instanceof RemoteError && err.status === WireError.AUTH_FAILED) {
        // A token that is not (or no longer) known: keep serving the store, and try again, slowly.
        this.events.disconnected?.(`${label} refused the agent's token: ${err.message}`);
        this.attempt = Math.max(this.attempt, 30);
      }
      this.scheduleRetry();
    }
  }

  /** Revisions held for the environments followed (every held one when following all). */
  private subscription(): EnvRev[] {
    const held = this.store.held();
    if (this.options.envs.length === 0) return held;
    const revs = new Map(held.map((h) => [h.env, h.rev]));
    return this.options.envs.map((env) => ({ env, rev: revs.get(env) ?? 0 }));
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
        this.awaitingPong = false;
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
    if (release.prev !== held) {
      // A gap: never apply out of order. Ask once for what is missing, from what is held.
      if (!this.resyncing.has(release.env)) {
        this.resyncing.add(release.env);
        trace('agent', `gap in ${release.env}: hold ${held}, release ${release.rev} follows ${release.prev}`);
        this.conn?.send({ t: MessageType.Subscribe, all: this.options.envs.length === 0, envs: this.subscription() });
      }
      return;
    }
    if (!this.guard(() => this.store.applyRelease(release))) return;
    this.resyncing.delete(release.env);
    this.acknowledge(release.env, release.rev);
    const kind = release.drop === true ? 'drop' : 'release';
    trace('agent', `applied ${kind} ${release.env}@${release.rev} (${release.changes.length} changes)`);
    this.events.applied?.(release.env, release.rev, kind);
  }

  private acknowledge(env: string, rev: number): void {
    this.unacked.set(env, rev);
    if (this.ackTimer !== undefined) return;
    // Jittered, so the agents of one release do not all answer in the same instant.
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      for (const [e, r] of this.unacked) this.conn?.send({ t: MessageType.Ack, env: e, rev: r });
      this.unacked.clear();
    }, this.options.ackDelayMs * (0.5 + Math.random()));
  }

  private onSnapshot(snapshot: Snapshot): void {
    if (!this.follows(snapshot.env)) return;
    if (!this.guard(() => this.store.applySnapshot(snapshot))) return;
    this.resyncing.delete(snapshot.env);
    this.acknowledge(snapshot.env, snapshot.rev);
    trace('agent', `applied snapshot ${snapshot.env}@${snapshot.rev} (${snapshot.entries.length} keys)`);
    this.events.applied?.(snapshot.env, snapshot.rev, 'snapshot');
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
    clearInterval(this.pingTimer);
    clearTimeout(this.ackTimer);
    this.conn?.destroy(err.message);
    this.events.fatal?.(err);
  }

  private startPings(conn: ClientConnection): void {
    clearInterval(this.pingTimer);
    this.awaitingPong = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        conn.destroy('no pong from server');
        return;
      }
      this.awaitingPong = true;
      conn.send({ t: MessageType.Ping, n: ++this.pingSeq });
    }, this.options.pingIntervalMs);
    this.pingTimer.unref();
  }

  private learnPeers(peers: string[]): void {
    for (const peer of peers) {
      const match = /^(.*):(\d+)$/.exec(peer);
      if (!match) continue;
      const endpoint = { host: match[1]!, port: Number(match[2]) };
      if (!this.servers.some((s) => s.host === endpoint.host && s.port === endpoint.port)) this.servers.push(endpoint);
    }
  }

  private onDisconnect(reason: string): void {
    clearInterval(this.pingTimer);
    this.conn = undefined;
    if (this.stopped) return;
    trace('agent', `disconnected: ${reason}`);
    this.events.disconnected?.(reason);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt++, this.options.backoffMinMs, this.options.backoffMaxMs);
    this.retryTimer = setTimeout(() => void this.dial(), delay);
  }
}

/** Exponential backoff with full jitter: uniform in [min, min * 2^attempt], capped at max. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return minMs + Math.random() * Math.max(0, ceiling - minMs);
}
