import type net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  encodeMessage, MessageType, PROTOCOL_VERSION, Role, WireError, type AgentInfo, type EnvAgents, type PeerServer,
} from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import type { Endpoint } from '../../transport/client.js';
import type { CredentialBook } from '../access/book.js';
import type { LoginContext } from '../access/login.js';
import { Fanout } from '../push/fanout.js';
import { receiveLimits, type ServerLimits } from '../limits.js';
import type { PublishedRelease, ServerState } from '../releases/state.js';
import { Admission } from './admission.js';
import { agentPingInterval, Capacity } from './capacity.js';
import { PortListener } from './listener.js';
import { Refusals } from './refusals.js';
import { ServerSession, shuttingDown, type AdminExecutor, type SessionContext, type SessionRole } from './session.js';
import { endSessions } from './shutdown.js';
import { sourceOf } from './source.js';
import { IdleSweep, LoginDeadline } from './sweeps.js';
import type { ServerTlsMaterial } from './tls.js';

export { WRITES_GRACE_MS } from './shutdown.js';

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

export interface HostStatus {
  agentsTotal: number;
  agents: AgentInfo[];
  /** Sessions this process ended or refused, by wire status name. */
  counters: Record<string, number>;
}

/**
 * The client port of a server: the session of every accepted connection,
 * and the fan-out of releases to agents. It runs in the single-process
 * server and in every cluster worker alike; admin requests go to `admin`
 * (the hub, or the primary over IPC). Listening, admission, capacity,
 * refusals, sweeps and shutdown are parts of their own (see README.md).
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
  private readonly admission: Admission;
  private readonly capacity: Capacity;
  private readonly refusals: Refusals;
  private readonly listener: PortListener;
  /** Sessions that may still be waiting for their hello: checked every second. */
  private readonly greeting: LoginDeadline<ServerSession>;
  private readonly idle: IdleSweep<ServerSession>;
  private reportedAgents = -1;
  private readonly ctx: SessionContext;
  private sweeper?: NodeJS.Timeout;
  private stopping = false;
  private tlsOn: boolean;

  constructor(options: HostOptions, state: ServerState, admin: AdminExecutor) {
    this.options = options;
    this.limits = options.limits;
    this.tlsOn = options.tls !== undefined;
    this.fanout = new Fanout(state, {
      agentBufferBytes: options.limits.agentBufferBytes,
      absentEnvsPerAgent: options.limits.absentEnvsPerAgent,
      slice: options.limits.fanoutSlice,
      ...(options.onBehind === undefined ? {} : { onBehind: options.onBehind }),
    });
    const log = options.log ?? ((line: string) => void process.stderr.write(`vitefa server: ${line}\n`));
    // The admin port's refusals are told apart from the client port's, in the log and in status.
    this.refusals = new Refusals({
      log, linesPerSecond: options.limits.logLinesPerSecond,
      ...(options.adminsOnly === true ? { prefix: { line: 'admin port: ', counter: 'admin:' } } : {}),
    });
    this.admission = new Admission(
      { total: options.limits.pendingHellos, perAddress: options.limits.pendingHellosPerAddress },
      { all: 'connections to this server process', one: 'connections', awaited: 'said hello' },
    );
    this.capacity = new Capacity(options.maxAgents, options.limits.adminReserve, options.onCapacity);
    this.greeting = new LoginDeadline(options.limits.helloTimeoutMs, 'no hello received in time');
    this.idle = new IdleSweep(options.limits);
    this.listener = new PortListener({
      endpoints: options.listen,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      admission: this.admission,
      refusals: this.refusals,
      accept: (socket) => this.accept(socket),
      ...(options.onListening === undefined ? {} : { onListening: options.onListening }),
      log,
    });
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
      refused: (session, status, message) => this.refusals.count(session.addr, status, message),
      onSessionEnd: (session) => this.sessionEnded(session),
    };
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** Sessions by phase: not yet said hello, agents, admins. */
  get counts(): { pending: number; agents: number; admins: number } {
    return { pending: this.admission.waiting.pending, agents: this.capacity.agents, admins: this.capacity.admins };
  }

  /** Where the host listens (HOST:PORT, port 0 resolved). */
  get addresses(): string[] {
    return this.listener.addresses;
  }

  async listen(): Promise<void> {
    await this.listener.listen();
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  /** Listens, or stops listening (a full cluster worker); see PortListener.setListening. */
  setListening(on: boolean): void {
    this.listener.setListening(on);
  }

  get isListening(): boolean {
    return this.listener.isListening;
  }

  publish(release: PublishedRelease): void {
    this.fanout.publish(release);
  }

  /** Takes a connection (also used by tests with an in-memory Duplex); `addr` is HOST:PORT of the peer. */
  attach(socket: Duplex, addr: string): ServerSession | undefined {
    const source = sourceOf(addr);
    const refusal = this.stopping ? [WireError.SHUTTING_DOWN, shuttingDown(this.ctx.elsewhere, 'session')] as const : this.admission.refusal(source);
    if (refusal !== undefined) {
      this.refusals.refuse(socket, addr, refusal[0], refusal[1]);
      return undefined;
    }
    this.admission.enter(source);
    const session = new ServerSession(socket, addr, source, this.ctx);
    this.sessions.add(session);
    this.greeting.add(session);
    return session;
  }

  private admit(session: ServerSession, role: SessionRole): void {
    this.capacity.admit(role);
    this.admission.leave(session.host);
    session.host = ''; // not needed any more: a server holds 100,000 sessions
  }

  private sessionEnded(session: ServerSession): void {
    if (!this.sessions.delete(session)) return;
    this.greeting.delete(session);
    this.idle.forget(session);
    switch (session.role) {
      case 'hello':
        this.admission.leave(session.host);
        break;
      case 'agent':
      case 'admin':
        this.capacity.release(session.role);
        break;
      default: {
        const unknown: never = session.role;
        throw new Error(`unknown role ${String(unknown)}`);
      }
    }
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
    return this.capacity.agents;
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
      counters: this.refusals.counters,
    };
  }

  private accept(socket: net.Socket): void {
    // TCP keepalive only behind the agents' own pings: past the longest interval they may be told, so that it never
    // probes a live idle session (measured here: probes of ~100,000 idle connections reset tens of thousands of them).
    socket.setKeepAlive(true, 3 * this.limits.agentPingMaxMs);
    socket.setNoDelay(true);
    const session = this.attach(socket, `${socket.remoteAddress}:${socket.remotePort}`);
    if (session !== undefined && !this.tlsOn) {
      // A TLS client on a plaintext port: say so, instead of answering its ClientHello with a frame error.
      socket.prependOnceListener('data', (chunk: Buffer) => {
        if (chunk[0] === 0x16 && chunk[1] === 0x03) session.fail(WireError.MALFORMED, 'this port speaks the protocol without TLS: connect without --tls-ca');
      });
    }
  }

  /** New certificates (SIGHUP): new connections get them; connected sessions go on; the ticket keys stay, so sessions resume. */
  setTls(material: ServerTlsMaterial): void {
    this.tlsOn = true;
    this.listener.setTls(material);
  }

  /** The ping interval agents are told now (see agentPingInterval). */
  agentPingMs(): number {
    return agentPingInterval(this.capacity.agents, this.options.processes ?? 1, this.limits);
  }

  private sweep(): void {
    const now = Date.now();
    try {
      this.fanout.serveAhead(now);
    } catch (err) {
      reportFault('serving agents that were ahead', err);
    }
    const agents = this.capacity.agents;
    if (this.options.onAgents !== undefined && agents !== this.reportedAgents) {
      this.reportedAgents = agents;
      this.options.onAgents(agents);
    }
    this.greeting.sweep(now);
    // Those awaiting their hello were looked at above; every session is looked at for idleness and stalls.
    this.idle.sweep(this.sessions, now);
  }

  /**
   * Stops accepting and ends every session. `graceful`: each session is told
   * SHUTTING_DOWN and queued frames flush for up to `graceMs`, then the rest
   * are dropped; `forced`: every socket is dropped at once.
   */
  async stop(mode: 'graceful' | 'forced' = 'graceful', graceMs = 2000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.capacity.stopped = true;
    clearInterval(this.sweeper);
    await this.listener.stopAccepting();
    await endSessions(this.sessions, mode, graceMs);
    await this.listener.whenClosed();
  }
}
