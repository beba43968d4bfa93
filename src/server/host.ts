import net from 'node:net';
import type { Duplex } from 'node:stream';
import { encodeMessage, MessageType, PROTOCOL_VERSION, Role, WireError, type AgentInfo } from '../protocol/index.js';
import type { Endpoint } from '../transport/client.js';
import { Fanout } from './fanout.js';
import { ServerSession, type AdminExecutor, type SessionContext } from './session.js';
import type { PublishedRelease, ServerState } from './state.js';

export interface HostOptions {
  serverId: string;
  listen: Endpoint[];
  adminToken?: string;
  peers: string[];
  maxFrameBytes: number;
  /** Most connections this process holds; further ones are refused with SERVER_FULL. */
  maxConnections: number;
  handshakeTimeoutMs: number;
  /** A session silent for this long is closed (agents ping well within it). */
  idleTimeoutMs: number;
  maxBufferedBytes: number;
}

export interface HostStatus {
  agentsTotal: number;
  agents: AgentInfo[];
}

/**
 * The connection side of a server: listening sockets, the session of every
 * accepted connection, and the fan-out of releases to agents. It runs in the
 * single-process server and in every cluster worker alike; admin requests go
 * to `admin` (the hub, or the primary over IPC).
 */
export class ConnectionHost {
  readonly fanout: Fanout;
  private readonly options: HostOptions;
  private readonly sessions = new Set<ServerSession>();
  private readonly ctx: SessionContext;
  private readonly listeners: net.Server[] = [];
  private sweeper?: NodeJS.Timeout;
  private stopping = false;
  addresses: string[] = [];

  constructor(options: HostOptions, state: ServerState, admin: AdminExecutor) {
    this.options = options;
    this.fanout = new Fanout(state, { maxBufferedBytes: options.maxBufferedBytes });
    this.ctx = {
      serverId: options.serverId,
      fanout: this.fanout,
      admin,
      adminToken: options.adminToken,
      hello: encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: Role.server, id: options.serverId, peers: options.peers }),
      maxFrameBytes: options.maxFrameBytes,
      onSessionEnd: (session) => {
        this.sessions.delete(session);
        this.checkCapacity();
      },
    };
  }

  get connections(): number {
    return this.sessions.size;
  }

  async listen(): Promise<void> {
    await this.openListeners();
    this.addresses = this.listeners.map((l) => {
      const bound = l.address() as net.AddressInfo;
      return `${bound.address}:${bound.port}`;
    });
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  private async openListeners(): Promise<void> {
    for (const endpoint of this.options.listen) {
      const listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ port: endpoint.port, host: endpoint.host, backlog: 4096 }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      // Accept errors (EMFILE and the like) must not bring the process down.
      listener.on('error', () => undefined);
      this.listeners.push(listener);
    }
  }

  /**
   * A full process stops listening, and listens again below 95% of its
   * limit. With a shared socket an idle (full) worker would otherwise win
   * most accepts and refuse them, starving the workers that have room; the
   * other workers go on accepting. (A lone process that is full refuses
   * connections until it has room; agents back off and retry.)
   */
  private checkCapacity(): void {
    if (this.stopping || this.listeners.length === 0 && this.reopening) return;
    const max = this.options.maxConnections;
    if (this.listeners.length > 0 && this.sessions.size >= max) {
      for (const l of this.listeners.splice(0)) l.close();
    } else if (this.listeners.length === 0 && this.sessions.size < max * 0.95) {
      this.reopening = true;
      this.openListeners().catch(() => undefined).finally(() => {
        this.reopening = false;
      });
    }
  }

  private reopening = false;

  publish(release: PublishedRelease): void {
    this.fanout.publish(release);
  }

  /** Takes a connection (also used by tests with an in-memory Duplex). */
  attach(socket: Duplex, addr: string): ServerSession | undefined {
    const session = new ServerSession(socket, addr, this.ctx);
    if (this.stopping) {
      session.fail(WireError.SHUTTING_DOWN, 'server is shutting down');
      return undefined;
    }
    if (this.sessions.size >= this.options.maxConnections) {
      session.fail(WireError.SERVER_FULL, `this server process holds its limit of ${this.options.maxConnections} connections`);
      return undefined;
    }
    this.sessions.add(session);
    this.checkCapacity();
    return session;
  }

  status(env: string | undefined, maxAgents: number): HostStatus {
    return {
      agentsTotal: this.fanout.size,
      agents: this.fanout.agents(env, maxAgents),
    };
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

  /**
   * Stops accepting and ends every session. `graceful`: each session is told
   * SHUTTING_DOWN and queued frames flush for up to `graceMs`, then the rest
   * are dropped; `forced`: every socket is dropped at once.
   */
  async stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.sweeper);
    const closed = Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
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
  }
}
