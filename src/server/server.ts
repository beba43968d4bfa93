import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WireError, type StatusResult } from '../protocol/index.js';
import { trace } from '../trace.js';
import { VERSION } from '../version.js';
import { RequestError } from './errors.js';
import { Fanout } from './fanout.js';
import { Hub } from './hub.js';
import { ServerSession, type SessionContext } from './session.js';
import { ServerState } from './state.js';
import type { Store } from './store/types.js';

export interface ServerOptions {
  host: string;
  port: number;
  store: Store;
  serverId?: string;
  adminToken?: string;
  peers?: string[];
  maxFrameBytes: number;
  /** Most connections this process holds; further ones are refused with SERVER_FULL. */
  maxConnections: number;
  handshakeTimeoutMs: number;
  /** A session silent for this long is closed (agents ping well within it). */
  idleTimeoutMs: number;
  maxBufferedBytes: number;
  recentReleases: number;
  recentBytes: number;
  /** How often to look in the store for releases other servers committed; 0 = never (a store only this server writes). */
  pollMs: number;
  /** Reports progress while the store cannot be reached at start. */
  log?: (line: string) => void;
}

export const SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 7400,
  maxFrameBytes: 64 * 1024 * 1024,
  maxConnections: 100_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxBufferedBytes: 8 * 1024 * 1024,
  recentReleases: 1000,
  recentBytes: 16 * 1024 * 1024,
  pollMs: 0,
} as const;

/**
 * A config server in one process: the hub (store, state, admin commands),
 * the fan-out to agents, and the sessions of every accepted connection.
 */
export class ConfigServer {
  readonly options: ServerOptions;
  readonly serverId: string;
  readonly state: ServerState;
  readonly hub: Hub;
  readonly fanout: Fanout;
  private readonly sessions = new Set<ServerSession>();
  private readonly ctx: SessionContext;
  private listener?: net.Server;
  private sweeper?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
  private readonly startedAt = Date.now();
  private stopping = false;
  address = '';

  constructor(options: ServerOptions) {
    this.options = options;
    this.serverId = options.serverId ?? `srv-${randomBytes(4).toString('hex')}`;
    this.state = new ServerState({ recentReleases: options.recentReleases, recentBytes: options.recentBytes });
    this.hub = new Hub(options.store, this.state);
    this.fanout = new Fanout(this.state, { maxBufferedBytes: options.maxBufferedBytes });
    this.hub.onRelease((release) => this.fanout.publish(release));
    this.hub.setStatusSource({ status: (env) => this.status(env) });
    this.ctx = {
      serverId: this.serverId,
      fanout: this.fanout,
      admin: this.hub,
      adminToken: options.adminToken,
      peers: () => options.peers ?? [],
      maxFrameBytes: options.maxFrameBytes,
      onSessionEnd: (session) => this.sessions.delete(session),
    };
  }

  async start(): Promise<void> {
    await this.openStore();
    const listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.options.port, this.options.host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const bound = listener.address() as net.AddressInfo;
    this.address = `${bound.address}:${bound.port}`;
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
    if (this.options.pollMs > 0) this.schedulePoll();
  }

  /** Opens the store and loads the state, waiting for an unreachable database to come back. */
  private async openStore(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.store.open();
        await this.hub.start();
        return;
      } catch (err) {
        if (!(err instanceof RequestError && err.status === WireError.STORE_UNAVAILABLE) || this.stopping) throw err;
        const delay = Math.min(5000, 250 * 2 ** attempt);
        this.options.log?.(`${err.message}; retrying in ${delay} ms`);
        await this.options.store.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The safety net that picks up releases committed through other servers. */
  private schedulePoll(): void {
    this.poller = setTimeout(() => {
      this.hub.pull().then(
        () => this.storeReachable(true),
        (err: unknown) => this.storeReachable(false, err),
      ).finally(() => {
        if (!this.stopping) this.schedulePoll();
      });
    }, this.options.pollMs);
    this.poller.unref();
  }

  private storeDown = false;

  private storeReachable(ok: boolean, err?: unknown): void {
    if (ok && this.storeDown) this.options.log?.(`store ${this.options.store.description} is reachable again`);
    if (!ok && !this.storeDown) {
      this.options.log?.(`${(err as Error)?.message ?? String(err)}; serving agents from memory until it returns`);
    }
    this.storeDown = !ok;
  }

  get port(): number {
    return (this.listener?.address() as net.AddressInfo).port;
  }

  /** Takes a connection (also used by tests with an in-memory Duplex). */
  attach(socket: Duplex, addr: string): ServerSession | undefined {
    const session = new ServerSession(socket, addr, this.ctx);
    if (this.stopping) {
      session.fail(WireError.SHUTTING_DOWN, 'server is shutting down');
      return undefined;
    }
    if (this.sessions.size >= this.options.maxConnections) {
      session.fail(WireError.SERVER_FULL, `server holds its limit of ${this.options.maxConnections} connections`);
      return undefined;
    }
    this.sessions.add(session);
    return session;
  }

  private accept(socket: net.Socket): void {
    socket.setKeepAlive(true, 30_000);
    this.attach(socket, `${socket.remoteAddress}:${socket.remotePort}`);
  }

  private sweep(): void {
    const now = Date.now();
    for (const session of this.sessions) {
      if (session.inHandshake && now - session.since > this.options.handshakeTimeoutMs) {
        session.fail(WireError.TIMEOUT, 'no hello received in time');
      } else if (now - session.lastSeen > this.options.idleTimeoutMs) {
        session.fail(WireError.TIMEOUT, `nothing received for ${this.options.idleTimeoutMs} ms`);
      }
    }
  }

  status(env: string | undefined): Omit<StatusResult, 'envs'> {
    return {
      server: {
        id: this.serverId,
        version: VERSION,
        listen: this.address,
        store: this.options.store.description,
        uptimeMs: Date.now() - this.startedAt,
        workers: 1,
      },
      agentsTotal: this.fanout.size,
      agents: this.fanout.agents(env, 1000),
    };
  }

  /**
   * Stops the server. `graceful`: refuse new connections, tell every session
   * and let queued frames flush; `forced`: drop every socket at once. With a
   * grace period, sessions get that long to drain before they are forced.
   */
  async stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.sweeper);
    clearTimeout(this.poller);
    const closed = new Promise<void>((resolve) => (this.listener ? this.listener.close(() => resolve()) : resolve()));
    for (const session of this.sessions) {
      if (mode === 'forced') session.destroy('server stopped');
      else session.fail(WireError.SHUTTING_DOWN, 'server is shutting down');
    }
    if (mode === 'graceful') {
      const deadline = Date.now() + graceMs;
      while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const session of this.sessions) session.destroy('grace period over');
    }
    await closed;
    await this.options.store.close();
    trace('server', 'stopped');
  }
}
