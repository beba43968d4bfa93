import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import {
  encodeMessage, MessageType, PROTOCOL_VERSION, Role, WireError, wireErrorName, type AgentInfo, type EnvAgents, type PeerServer,
} from '../../protocol/index.js';
import { RateLimitedLog, reportFault } from '../../log.js';
import type { Endpoint } from '../../transport/client.js';
import { ProtocolError } from '../../protocol/index.js';
import type { CredentialBook } from '../access/book.js';
import type { LoginContext } from '../access/login.js';
import { Fanout } from '../push/fanout.js';
import { receiveLimits, type ServerLimits } from '../limits.js';
import { secureContextOptions, serverOptions, type ServerTlsMaterial } from './tls.js';
import { TlsHandshakes } from './tls-handshakes.js';
import { ServerSession, shuttingDown, type AdminExecutor, type SessionContext, type SessionRole } from './session.js';
import type { PublishedRelease, ServerState } from '../releases/state.js';

export interface HostOptions {
  serverId: string;
  /** Processes of this server that hold agents (workers), for the ping interval; 1 by default. */
  processes?: number;
  listen: Endpoint[];
  /** Checks logins: the credentials in force, the throttle, the audit. */
  login: LoginContext;
  limits: ServerLimits;
  /** Agent sessions this process holds at most; admins have a reserve of their own beyond it. */
  maxAgents: number;
  /**
   * Called when the host fills up with agents, and when it has room again
   * (below 95%). A cluster worker tells the primary, which decides who
   * listens; a host without it always listens.
   */
  onCapacity?: (full: boolean) => void;
  /** Listen with TLS (certificate, key, client CA for mutual TLS, ticket keys). */
  tls?: ServerTlsMaterial;
  /** Called each time the host listens again after it had stopped. */
  onListening?: (addresses: string[]) => void;
  /**
   * Other servers share the store: an agent holding a revision this server
   * has not applied waits (this is called to catch up, and storeRead when
   * the store has been read) instead of being sent older state.
   */
  onBehind?: (rev: number) => void;
  /** Called (at most once a second) when the number of agents held has changed. */
  onAgents?: (agents: number) => void;
  /** Serve admin sessions only (the admin port, --admin-listen): agents are refused at their hello. */
  adminsOnly?: boolean;
  log?: (line: string) => void;
}

/** Refused connections allowed to linger for their error frame at once; beyond, they are dropped. */
const REFUSING_AT_ONCE = 1000;

/**
 * The key a source address is counted under: an IPv4 address, or the /64
 * network of an IPv6 one (a host is given a /64, so its addresses count as one).
 */
export function sourceKey(host: string): string {
  if (!host.includes(':') || host.startsWith('::ffff:')) return host.replace(/^::ffff:/, '');
  const [head = '', tail = ''] = host.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = host.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export interface HostStatus {
  agentsTotal: number;
  agents: AgentInfo[];
  /** Sessions this process ended or refused, by wire status name. */
  counters: Record<string, number>;
}

/**
 * The connection side of a server: listening sockets, the session of every
 * accepted connection, and the fan-out of releases to agents. It runs in the
 * single-process server and in every cluster worker alike; admin requests go
 * to `admin` (the hub, or the primary over IPC).
 *
 * Every connection is counted from the moment it is accepted: until it says
 * hello it is one of a bounded number of pending connections (in all, and
 * per source address), then an agent (up to `maxAgents`) or an admin (up to
 * `limits.adminReserve`, beyond the agents), so that a process full of
 * agents still lets an operator in and never runs out of file descriptors.
 */
export class ConnectionHost {
  readonly fanout: Fanout;
  private readonly options: HostOptions;
  private readonly limits: ServerLimits;
  private readonly sessions = new Set<ServerSession>();
  /** Sessions that may still be waiting for their hello: checked every second (the others every SWEEP_EVERY seconds). */
  private readonly greeting = new Set<ServerSession>();
  private sweeps = 0;
  private readonly pendingByHost = new Map<string, number>();
  /** Refused connections still open (taking their error frame). */
  private refusing = 0;
  /** Sessions with output waiting at the last sweep: bytes sent on by then, and since when nothing more was. */
  private readonly stalls = new Map<ServerSession, { flushed: number; since: number }>();
  private pending = 0;
  private agents = 0;
  private admins = 0;
  private full = false;
  private reportedAgents = -1;
  private readonly ctx: SessionContext;
  private readonly listeners: net.Server[] = [];
  /** TLS material, when the host listens with TLS. */
  private tls: ServerTlsMaterial | undefined;
  /** TLS handshakes in progress (their connections have not said hello either). */
  private handshaking = 0;
  /** Where each configured endpoint is bound (port 0 resolved), so listening again takes the same port. */
  private bound: Endpoint[] = [];
  private wantListening = true;
  private listenChange: Promise<void> = Promise.resolve();
  private sweeper?: NodeJS.Timeout;
  private stopping = false;
  private readonly counters = new Map<string, number>();
  private readonly refusals: RateLimitedLog;
  private readonly log: (line: string) => void;
  addresses: string[] = [];

  constructor(options: HostOptions, state: ServerState, admin: AdminExecutor) {
    this.options = options;
    this.limits = options.limits;
    this.tls = options.tls;
    this.fanout = new Fanout(state, {
      agentBufferBytes: options.limits.agentBufferBytes,
      absentEnvsPerAgent: options.limits.absentEnvsPerAgent,
      slice: options.limits.fanoutSlice,
      ...(options.onBehind === undefined ? {} : { onBehind: options.onBehind }),
    });
    const log = options.log ?? ((line: string) => void process.stderr.write(`vitefa server: ${line}\n`));
    this.log = log;
    this.refusals = new RateLimitedLog(log, options.limits.logLinesPerSecond, options.limits.logLinesPerSecond * 2);
    this.ctx = {
      fanout: this.fanout,
      admin,
      login: options.login,
      // The servers of the cluster come later (setPeers), from its membership.
      hello: encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: Role.server, id: options.serverId, peers: [] }),
      elsewhere: [],
      limits: options.limits,
      ...(options.adminsOnly === true ? { adminsOnly: true } : {}),
      receive: {
        hello: receiveLimits(options.limits, 'hello'),
        agent: receiveLimits(options.limits, 'agent'),
        admin: receiveLimits(options.limits, 'admin'),
      },
      admit: (session, role) => this.admit(session, role),
      agentPingMs: () => this.agentPingMs(),
      refused: (session, status, message) => this.refused(session.addr, status, message),
      onSessionEnd: (session) => this.sessionEnded(session),
    };
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Sessions by phase: not yet said hello, agents, admins. */
  get counts(): { pending: number; agents: number; admins: number } {
    return { pending: this.pending, agents: this.agents, admins: this.admins };
  }

  async listen(): Promise<void> {
    this.bound = [...this.options.listen];
    const first = this.openListeners();
    this.listenChange = first.catch(() => undefined);
    await first;
    this.bound = this.listeners.map((l) => {
      const a = l.address() as net.AddressInfo;
      return { host: a.address, port: a.port };
    });
    this.addresses = this.bound.map((b) => (b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`));
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  private async openListeners(): Promise<void> {
    for (const endpoint of this.bound) {
      const listener = this.tls === undefined ? net.createServer({ noDelay: true }, (socket) => this.accept(socket)) : this.tlsListener();
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ port: endpoint.port, host: endpoint.host, backlog: 4096 }, () => {
          listener.off('error', reject);
          resolve();
        });
      });
      // Accept errors (EMFILE and the like) must not bring the process down.
      listener.on('error', (err) => this.refusals.log(`accepting on ${endpoint.host}:${endpoint.port} failed: ${err.message}`));
      this.listeners.push(listener);
    }
  }

  /**
   * Listens, or stops listening (a full cluster worker, so that the workers
   * with room win the accepts; the primary keeps one listening). Changes
   * apply in order, after the first listen; listening again binds the
   * addresses bound first (a port 0 stays the port it became), and is
   * retried every second while it fails.
   */
  setListening(on: boolean): void {
    this.wantListening = on;
    this.listenChange = this.listenChange.then(async () => {
      if (this.stopping || this.bound.length === 0) return;
      if (this.wantListening) {
        if (this.listeners.length === 0) {
          await this.openListeners().catch((err: Error) => {
            for (const l of this.listeners.splice(0)) l.close();
            this.log(`listening again on ${this.addresses.join(',')} failed: ${err.message}; retrying in 1 s`);
            setTimeout(() => this.setListening(this.wantListening), 1000).unref();
          });
        }
        // Confirmed each time it is asked for (also when it never stopped).
        if (this.listeners.length > 0) this.options.onListening?.(this.addresses);
      } else if (this.listeners.length > 0) {
        // close() stops accepting at once; its callback would wait for every connection it accepted to end.
        for (const l of this.listeners.splice(0)) l.close();
      }
    });
  }

  get isListening(): boolean {
    return this.listeners.length > 0;
  }

  publish(release: PublishedRelease): void {
    this.fanout.publish(release);
  }

  /** Takes a connection (also used by tests with an in-memory Duplex); `addr` is HOST:PORT of the peer. */
  attach(socket: Duplex, addr: string): ServerSession | undefined {
    const colon = addr.lastIndexOf(':');
    const host = sourceKey(colon > 0 ? addr.slice(0, colon) : addr);
    const refusal = this.refusal(host);
    if (refusal !== undefined) {
      this.refused(addr, refusal[0], refusal[1]);
      socket.on('error', () => undefined);
      // A flood of refused connections must not hold file descriptors: each gets a moment to take its error, at most.
      if (this.refusing >= REFUSING_AT_ONCE) {
        socket.destroy();
        return undefined;
      }
      this.refusing++;
      socket.once('close', () => void this.refusing--);
      socket.end(encodeMessage({ t: MessageType.Error, code: refusal[0], msg: refusal[1] }));
      setTimeout(() => socket.destroy(), 100).unref();
      return undefined;
    }
    this.pending++;
    this.pendingByHost.set(host, (this.pendingByHost.get(host) ?? 0) + 1);
    const session = new ServerSession(socket, addr, host, this.ctx);
    this.sessions.add(session);
    this.greeting.add(session);
    return session;
  }

  /** Why a new connection from `host` cannot be taken now, if it cannot. */
  private refusal(host: string): [WireError, string] | undefined {
    if (this.stopping) return [WireError.SHUTTING_DOWN, shuttingDown(this.ctx.elsewhere, 'session')];
    if (this.pending + this.handshaking >= this.limits.pendingHellos) {
      return [WireError.LIMIT_EXCEEDED, `${this.pending} connections to this server process have not said hello yet`];
    }
    if ((this.pendingByHost.get(host) ?? 0) >= this.limits.pendingHellosPerAddress) {
      return [WireError.LIMIT_EXCEEDED, `${this.limits.pendingHellosPerAddress} connections from ${host} have not said hello yet`];
    }
    return undefined;
  }

  private admit(session: ServerSession, role: SessionRole): void {
    if (role === 'agent' && this.agents >= this.options.maxAgents) {
      throw new ProtocolError(WireError.SERVER_FULL, `this server process holds its limit of ${this.options.maxAgents} agents`);
    }
    if (role === 'admin' && this.admins >= this.limits.adminReserve) {
      throw new ProtocolError(WireError.SERVER_FULL, `this server process holds its limit of ${this.limits.adminReserve} admin sessions`);
    }
    this.leavePending(session.host);
    session.host = ''; // not needed any more: a server holds 100,000 sessions
    if (role === 'agent') this.agents++;
    else this.admins++;
    this.checkCapacity();
  }

  private leavePending(host: string): void {
    this.pending--;
    const n = (this.pendingByHost.get(host) ?? 1) - 1;
    if (n <= 0) this.pendingByHost.delete(host);
    else this.pendingByHost.set(host, n);
  }

  private sessionEnded(session: ServerSession): void {
    if (!this.sessions.delete(session)) return;
    this.greeting.delete(session);
    this.stalls.delete(session);
    switch (session.role) {
      case 'hello':
        this.leavePending(session.host);
        break;
      case 'agent':
        this.agents--;
        break;
      case 'admin':
        this.admins--;
        break;
      default: {
        const unknown: never = session.role;
        throw new Error(`unknown role ${String(unknown)}`);
      }
    }
    this.checkCapacity();
  }

  /** Full at the agent limit, with room again below 95% of it (so a full host does not flap). */
  private checkCapacity(): void {
    const onCapacity = this.options.onCapacity;
    if (onCapacity === undefined || this.stopping) return;
    let change: boolean | undefined;
    if (!this.full && this.agents >= this.options.maxAgents) change = true;
    else if (this.full && this.agents < this.options.maxAgents * 0.95) change = false;
    if (change === undefined) return;
    this.full = change;
    try {
      onCapacity(change);
    } catch (err) {
      reportFault('reporting capacity', err);
    }
  }

  /** Counts (and logs, a few lines a second at most) a session this server ended or refused. */
  private refused(addr: string, status: WireError, message: string): void {
    const name = wireErrorName(status) ?? String(status);
    this.counters.set(name, (this.counters.get(name) ?? 0) + 1);
    this.refusals.log(() => `closed ${addr}: ${name}: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`);
  }

  /**
   * New credentials are in force: sessions whose token was revoked, or
   * whose account was deleted (or deleted and made again), end now.
   */
  credentialsChanged(book: CredentialBook): void {
    for (const session of this.sessions) {
      const p = session.principal;
      if (p === undefined) continue;
      if (p.kind === 'agent' && book.token(p.id)?.name !== p.name) session.fail(WireError.AUTH_FAILED, `the token ${p.name} was revoked`);
      // By identity: an account deleted and made again under the same name is another account.
      else if (p.kind === 'user' && book.account(p.name)?.uid !== p.uid) session.fail(WireError.AUTH_FAILED, `the account ${p.name} was deleted`);
    }
  }

  /** Agent sessions held now. */
  get agentCount(): number {
    return this.agents;
  }

  /**
   * The servers agents may use, from the cluster's membership: the hello
   * of every new session lists them, and every agent connected now is told.
   */
  setPeers(servers: PeerServer[]): void {
    this.ctx.hello = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: Role.server, id: this.options.serverId, peers: servers.map((s) => s.addr) });
    // Where a client goes when this server stops: not here, nor to a server draining (this one is, by then).
    this.ctx.elsewhere = servers.filter((s) => s.state !== 'draining' && !this.addresses.includes(s.addr)).map((s) => s.addr);
    const frame = encodeMessage({ t: MessageType.Peers, servers });
    for (const session of this.sessions) if (session.role === 'agent') session.write(frame);
  }

  /**
   * Tells up to `count` agents to reconnect elsewhere (to `to`, or wherever
   * they choose by load) after a random delay of up to `within` ms, and ends
   * their sessions. Returns how many were told.
   */
  move(count: number, to: string | undefined, within: number, reason: string): number {
    if (count <= 0) return 0;
    const frame = encodeMessage({ t: MessageType.Move, ...(to === undefined ? {} : { to }), within, reason });
    let moved = 0;
    for (const session of this.sessions) {
      if (moved >= count) break;
      if (session.role !== 'agent' || session.isClosed) continue;
      session.write(frame);
      session.end(`moved: ${reason}`);
      moved++;
    }
    return moved;
  }

  /** A read of the store that started at `startedAt` completed (agents ahead of this server that arrived before it are served). */
  storeRead(startedAt: number): void {
    this.fanout.storeRead(startedAt);
  }

  /** Per environment, the revisions this process's agents hold (counts, and the first `cap` agents behind). */
  revisions(env: string | undefined, cap: number): EnvAgents[] {
    return this.fanout.revisions(env, this.options.serverId, cap);
  }

  status(env: string | undefined, maxAgents: number, agent?: string): HostStatus {
    return {
      agentsTotal: this.fanout.size,
      agents: this.fanout.agents(env, maxAgents, agent),
      counters: Object.fromEntries(this.counters),
    };
  }

  private accept(socket: net.Socket): void {
    try {
      // TCP keepalive only behind the agents' own pings: past the longest interval they may be told, so that it never
      // probes a live idle session (measured here: probes of ~100,000 idle connections reset tens of thousands of them).
      socket.setKeepAlive(true, 3 * this.limits.agentPingMaxMs);
      socket.setNoDelay(true);
      const session = this.attach(socket, `${socket.remoteAddress}:${socket.remotePort}`);
      if (session !== undefined && this.tls === undefined) {
        // A TLS client on a plaintext port: say so, instead of answering its ClientHello with a frame error.
        socket.prependOnceListener('data', (chunk: Buffer) => {
          if (chunk[0] === 0x16 && chunk[1] === 0x03) session.fail(WireError.MALFORMED, 'this port speaks the protocol without TLS: connect without --tls-ca');
        });
      }
    } catch (err) {
      reportFault('accepting a connection', err);
      socket.destroy();
    }
  }

  /**
   * A TLS listener. Handshakes in progress count with the connections that
   * have not said hello (each connection ends its handshake with exactly one
   * of secureConnection or tlsClientError), and take at most 10 s.
   */
  private tlsListener(): tls.Server {
    const server = tls.createServer(serverOptions(this.tls!), (socket) => {
      this.handshaking--;
      this.accept(socket);
    });
    server.on('connection', (raw: net.Socket) => {
      if (this.stopping || this.pending + this.handshaking >= this.limits.pendingHellos) {
        this.refused(`${raw.remoteAddress}:${raw.remotePort}`, WireError.LIMIT_EXCEEDED, `${this.pending + this.handshaking} connections to this server process have not said hello yet`);
        raw.destroy();
        return;
      }
      this.handshaking++;
    });
    // After the listener above, so that a connection refused there is not named twice.
    const handshakes = new TlsHandshakes(server, (addr, reason) => this.refused(addr, WireError.MALFORMED, `TLS handshake failed: ${reason}`));
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      this.handshaking--;
      handshakes.failed(err, socket);
      // With a listener here Node leaves the socket open (a timed-out handshake would keep its descriptor for good).
      socket.destroy();
    });
    return server;
  }

  /** New certificates (SIGHUP): new connections get them; connected sessions go on; the ticket keys stay, so sessions resume. */
  setTls(material: ServerTlsMaterial): void {
    const before = this.tls;
    this.tls = material;
    if (before === undefined) return; // before the first listen: it listens with TLS
    for (const listener of this.listeners) {
      const server = listener as tls.Server;
      server.setSecureContext(secureContextOptions(material));
      // setSecureContext drops the ticket keys: without them agents would pay a full handshake again.
      server.setTicketKeys(material.ticketKeys);
    }
  }

  /**
   * The ping interval agents are told: (agents of the whole server ×
   * agentPingUsPerAgent), within agentPingMs and agentPingMaxMs. A worker
   * counts its own agents times the number of processes (the primary keeps
   * them even).
   */
  agentPingMs(): number {
    const fleet = this.agents * (this.options.processes ?? 1);
    const wanted = Math.round((fleet * this.limits.agentPingUsPerAgent) / 1000);
    return Math.min(this.limits.agentPingMaxMs, Math.max(this.limits.agentPingMs, wanted));
  }

  private sweep(): void {
    const now = Date.now();
    try {
      this.fanout.serveAhead(now);
    } catch (err) {
      reportFault('serving agents that were ahead', err);
    }
    if (this.options.onAgents !== undefined && this.agents !== this.reportedAgents) {
      this.reportedAgents = this.agents;
      this.options.onAgents(this.agents);
    }
    for (const session of this.greeting) {
      try {
        if (!session.inHandshake) this.greeting.delete(session);
        else if (now - session.since > this.limits.helloTimeoutMs) session.fail(WireError.TIMEOUT, 'no hello received in time');
      } catch (err) {
        reportFault('the session sweep', err);
      }
    }
    // Idle and stalled sessions are looked for every few seconds: with 100,000 sessions a look at each costs milliseconds.
    const every = Math.max(1, Math.min(SWEEP_EVERY, Math.floor(Math.min(this.limits.stallTimeoutMs, this.limits.idleTimeoutMs) / 3000)));
    if (this.sweeps++ % every !== 0) return;
    for (const session of this.sessions) {
      try {
        // Those awaiting their hello were looked at above.
        const silentFor = Math.max(this.limits.idleTimeoutMs, 3 * session.pingMs);
        if (now - session.lastSeen > silentFor) {
          session.fail(WireError.TIMEOUT, `nothing received for ${silentFor} ms`);
        } else if (session.writableLength > 0) {
          this.checkStall(session, now);
        } else {
          this.stalls.delete(session);
        }
      } catch (err) {
        reportFault('the session sweep', err);
      }
    }
  }

  /**
   * A session with output waiting that takes none of it for stallTimeoutMs
   * is a slow consumer: what it was sent (a snapshot, perhaps) is not held
   * for ever. One that reads, however slowly, is left alone.
   */
  private checkStall(session: ServerSession, now: number): void {
    const flushed = session.bytesWritten - session.writableLength;
    const seen = this.stalls.get(session);
    if (seen === undefined || seen.flushed !== flushed) {
      this.stalls.set(session, { flushed, since: now });
    } else if (now - seen.since > this.limits.stallTimeoutMs) {
      this.stalls.delete(session);
      session.fail(WireError.SLOW_CONSUMER, `nothing of ${session.writableLength} bytes waiting was read for ${this.limits.stallTimeoutMs} ms`);
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
    await this.listenChange;
    const closed = Promise.all(this.listeners.splice(0).map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
    for (const session of this.sessions) {
      if (mode === 'forced') session.destroy('server stopped');
      else session.shutDown();
    }
    if (mode === 'graceful') {
      // Sessions get graceMs to go; those waiting for the answer to a request, up to WRITES_GRACE_MS,
      // and graceMs after their last answer to flush it.
      const started = Date.now();
      const waiting = () => [...this.sessions].some((s) => s.requestsInFlight > 0 || Date.now() - s.lastAnswered < graceMs);
      while (this.sessions.size > 0 && Date.now() - started < (waiting() ? WRITES_GRACE_MS : graceMs)) await new Promise((r) => setTimeout(r, 20));
      for (const session of this.sessions) session.destroy('grace period over');
    }
    await closed;
  }
}

/**
 * How long a graceful stop waits for the answers to admin requests under way
 * (a write waiting on its database); a second signal stops at once.
 */
export const WRITES_GRACE_MS = 30_000;

/**
 * Every session is looked at (idle, stalled) once in this many one-second
 * sweeps, at most (a third of the shorter timeout, so that each is still
 * kept within a few seconds); those awaiting their hello every second.
 */
const SWEEP_EVERY = 5;
