import type { Duplex } from 'node:stream';
import {
  encodeMessage, MessageType, ProtocolError, RemoteError, Role, WireError, wireErrorName,
  type AdminRequest, type EnvRev, type Hello, type Message, type Proof, type Subscribe,
} from '../../protocol/index.js';
import { auditEntry, type Caller } from '../access/control.js';
import { granted } from '../access/grants.js';
import { LoginStep, type LoginContext, type Principal } from '../access/login.js';
import { FramedConnection, type ReceiveLimits } from '../../transport/connection.js';
import { trace } from '../../trace.js';
import { RequestError, wireAnswer } from '../errors.js';
import type { AgentLink, Fanout } from '../push/fanout.js';
import type { ServerLimits } from '../limits.js';
import { operation } from '../ops/table.js';
import { checkEnvName, quoted } from '../ops/validate.js';

/** Runs admin requests (access control and hub in this process, or the primary's over IPC). */
export interface AdminExecutor {
  execute(req: AdminRequest, caller: Caller): Promise<unknown>;
}

export type SessionRole = 'agent' | 'admin';

/** What every session of one host shares. */
export interface SessionContext {
  fanout: Fanout;
  admin: AdminExecutor;
  login: LoginContext;
  /** The server's hello (with the peers agents may fail over to), encoded once for every session. */
  hello: Buffer;
  /** The other servers clients may use instead of this one (from the same list as the hello): named when it stops. */
  elsewhere: readonly string[];
  limits: ServerLimits;
  /** What a session may send in each phase, built once for every session. */
  receive: Record<Phase, ReceiveLimits>;
  /** This port serves admin sessions only (the admin port): agents are refused at their hello. */
  adminsOnly?: boolean;
  /** Admits a session into a role; throws ProtocolError(SERVER_FULL) when the host has no room for it. */
  admit(session: ServerSession, role: SessionRole): void;
  /** Counts a session ended by this server, by wire status, and logs it (rate-limited). */
  refused(session: ServerSession, status: WireError, message: string): void;
  onSessionEnd(session: ServerSession): void;
  /** The ping interval agents are told now (ms). */
  agentPingMs(): number;
}

/**
 * What a stopping server says, naming where to go instead: the other servers
 * it knows, to send a `request` to or to open a `session` with; a server
 * that knows none says so.
 */
export function shuttingDown(elsewhere: readonly string[], what: 'request' | 'session'): string {
  if (elsewhere.length === 0) return `server is shutting down, and it knows no other server${what === 'request' ? ' to send it to' : ''}; try again once it is back`;
  return `server is shutting down; ${what === 'request' ? 'send it to' : 'connect to'} ${elsewhere.join(' or ')}`;
}

/** `hello` until the login completes (the client's hello, then its proof); then the role. */
export type Phase = 'hello' | SessionRole;

/**
 * One accepted connection, any role. The server sends its hello at once;
 * until the client has logged in (its hello with who it is, the server's
 * challenge, its proof) the session accepts nothing else, and only small
 * frames. The login decides whether this is an agent (subscribe, ack, ping),
 * acting for an agent token, or an admin client (requests, ping), acting for
 * an account, and raises the limits to that role's. One handler per message
 * type; anything else ends the session.
 */
export class ServerSession extends FramedConnection implements AgentLink {
  readonly addr: string;
  /** Source address without the port, while the session counts against the per-address limit (then ''). */
  host: string;
  readonly since = Date.now();
  id = '';
  /** Last time a frame arrived, for the idle sweep. */
  lastSeen = this.since;
  /** The ping interval this agent was last told (0: none). */
  pingMs = 0;
  private phase: Phase = 'hello';
  /** Set once the login is complete: who this session acts for. */
  principal: Principal | undefined;
  private readonly login: LoginStep;
  private readonly ctx: SessionContext;
  private inFlight = 0;
  /** Set by a graceful stop: the requests in flight are answered, new ones refused, then the session ends. */
  private closing = false;
  /** Subscribes counted against this session's allowance (a small integer: no per-session allocation). */
  private subscribesUsed = 0;

  constructor(socket: Duplex, addr: string, host: string, ctx: SessionContext) {
    super(socket, ctx.receive.hello);
    this.addr = addr;
    this.host = host;
    this.ctx = ctx;
    this.login = new LoginStep(ctx.login, socket, addr, host);
    this.write(ctx.hello);
  }

  get inHandshake(): boolean {
    return this.phase === 'hello';
  }

  get role(): Phase {
    return this.phase;
  }

  /** Requests of this session not answered yet. */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** When this session last sent an answer (ms since the epoch; 0: never). */
  lastAnswered = 0;

  /**
   * Ends the session for a graceful stop. An admin waiting for answers gets
   * them first (a write under way is finished and its answer sent, never cut
   * off between the commit and the answer), and SHUTTING_DOWN for any request
   * sent meanwhile; the session ends once nothing is in flight.
   */
  shutDown(): void {
    if (this.inFlight === 0) this.fail(WireError.SHUTTING_DOWN, shuttingDown(this.ctx.elsewhere, 'session'));
    else this.closing = true;
  }

  override fail(status: WireError, message: string, retryMs?: number): void {
    if (this.isClosed) return;
    if (status !== WireError.SHUTTING_DOWN) this.ctx.refused(this, status, message);
    // An account's session ended by the server (a request it could not read, too many, an idle timeout, the account
    // deleted) is audited: the refusal of what it sent last is recorded whatever the reason.
    if (status !== WireError.SHUTTING_DOWN && this.principal?.kind === 'user') {
      this.ctx.login.audit({
        time: Date.now(), actor: this.principal.name, addr: this.addr, action: 'session', env: '', result: status === WireError.INTERNAL ? 'failed' : 'refused',
        code: wireErrorName(status) ?? String(status), detail: `session ended: ${message}`.slice(0, 500),
      });
    }
    super.fail(status, message, retryMs);
  }

  protected handle(message: Message): void | Promise<void> {
    this.lastSeen = Date.now();
    switch (message.t) {
      case MessageType.Hello:
        return this.onHello(message);
      case MessageType.Proof:
        return this.onProof(message);
      case MessageType.Error:
        // The peer ends the session; close our side.
        trace('server', `${this.addr} sent error ${new RemoteError(message.code, message.msg).code}: ${message.msg}`);
        this.end('peer reported an error');
        return;
      case MessageType.Subscribe:
        this.expect('agent', message.t);
        return this.onSubscribe(message);
      case MessageType.Ack:
        this.expect('agent', message.t);
        this.ctx.fanout.ack(this, message.env, message.rev, message.chain);
        return;
      case MessageType.Request:
        this.expect('admin', message.t);
        return this.onRequest(message.id, message.req, message.rid);
      case MessageType.Ping:
        this.expectSession(message.t);
        if (this.phase === 'agent') {
          // Agents are told when to ping next: the interval grows with the server's agents.
          this.pingMs = this.ctx.agentPingMs();
          this.send({ t: MessageType.Pong, n: message.n, next: this.pingMs });
        } else {
          this.send({ t: MessageType.Pong, n: message.n });
        }
        return;
      case MessageType.Pong:
        this.expectSession(message.t);
        return;
      case MessageType.Snapshot:
      case MessageType.Release:
      case MessageType.Response:
      case MessageType.Challenge:
      case MessageType.Welcome:
      case MessageType.Peers:
      case MessageType.Move:
      case MessageType.StoreCheck:
      case MessageType.StoreProof:
      case MessageType.GroupEnd:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to a server`);
      case MessageType.Gossip:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'gossip goes to the peer port, not to this one');
      default: {
        const unknown: never = message;
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  private onHello(hello: Hello): void {
    this.send(this.login.hello(hello, (role) => this.serves(role)));
    // A copy, not a slice: a slice would keep the whole decoded string alive for the session's life.
    this.id = hello.id.length <= 256 ? hello.id : Buffer.from(hello.id.slice(0, 256), 'utf8').toString('utf8');
  }

  /** The roles of this port: agents (unless it is the admin port) and admins. */
  private serves(role: Role): void {
    switch (role) {
      case Role.agent:
        if (this.ctx.adminsOnly === true) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'this is the admin port: agents connect to the server\'s listen address');
        break;
      case Role.admin:
        break;
      case Role.server:
      case Role.peer:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `role ${role} is not served on this port`);
      default: {
        const unknown: never = role;
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `unknown role ${String(unknown)}`);
      }
    }
  }

  /** Reading waits while the throttle is asked (in a cluster, the primary) and the proof checked. */
  private async onProof(proof: Proof): Promise<void> {
    if (this.phase !== 'hello') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'already logged in');
    const { principal, welcome } = await this.login.proof(proof.proof);
    // Ended meanwhile (the hello time ran out, the server stops): it was counted out as a session still logging in.
    if (this.isClosed) return;
    if (principal.kind === 'peer') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'peers log in on the peer port');
    const role: SessionRole = principal.kind === 'agent' ? 'agent' : 'admin';
    this.ctx.admit(this, role);
    this.principal = principal;
    this.phase = role;
    this.setLimits(this.ctx.receive[role]);
    if (role === 'agent') {
      this.pingMs = this.ctx.agentPingMs();
      welcome.ping = this.pingMs;
    }
    this.send(welcome);
  }

  private onSubscribe(message: Subscribe): void {
    this.takeSubscribeToken();
    const limits = this.ctx.limits;
    const grants = this.principal!.envs;
    if (message.envs.length > limits.subscribedEnvs) {
      throw new ProtocolError(WireError.LIMIT_EXCEEDED, `a subscription names at most ${limits.subscribedEnvs} environments, got ${message.envs.length}`);
    }
    const envs: EnvRev[] = [];
    for (const held of message.envs) {
      try {
        checkEnvName(held.env, limits);
      } catch (err) {
        throw new ProtocolError(WireError.BAD_REQUEST, (err as RequestError).message);
      }
      if (granted(grants, held.env)) envs.push(held);
      else if (!message.all) throw new ProtocolError(WireError.FORBIDDEN, `the token ${this.principal!.name} does not grant ${quoted(held.env)}`);
    }
    // Following every environment means every one the token grants.
    this.ctx.fanout.subscribe(this, message.all, envs, grants);
  }

  /**
   * Each Subscribe makes the server send what the agent lacks (perhaps a
   * snapshot): their rate is bounded. A token bucket kept as one count: the
   * session earns subscribesPerMinute a minute from its start, may hold at
   * most subscribeBurst unspent, and starts with a full burst.
   */
  private takeSubscribeToken(): void {
    const { subscribeBurst: burst, subscribesPerMinute: perMinute } = this.ctx.limits;
    const allowed = burst + Math.floor(((Date.now() - this.since) / 60_000) * perMinute);
    if (this.subscribesUsed < allowed - burst) this.subscribesUsed = allowed - burst;
    if (this.subscribesUsed >= allowed) {
      throw new ProtocolError(WireError.LIMIT_EXCEEDED, `more than ${perMinute} subscribes a minute`);
    }
    this.subscribesUsed++;
  }

  /** The last answer of a paged operation (list, history, diff: ops/table.ts) on this session (the next waits for it). */
  private largeAnswers: Promise<void> = Promise.resolve();

  /** Resolves once at most `bytes` wait to be written to the peer (or the session is over). */
  private roomFor(bytes: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.isClosed || this.writableLength <= bytes) {
          this.socket.off('drain', check);
          this.socket.off('close', check);
          resolve();
        }
      };
      this.socket.on('drain', check);
      this.socket.on('close', check);
      check();
    });
  }

  private onRequest(id: number, req: AdminRequest, rid: string | undefined): void | Promise<void> {
    // The request id is checked by access control, where every refusal is audited.
    const principal = this.principal!;
    const caller: Caller = {
      account: principal.name, addr: this.addr, ...(principal.kind === 'user' ? { uid: principal.uid } : {}), ...(rid === undefined ? {} : { requestId: rid }),
    };
    if (this.closing) {
      const refusal = new RequestError(WireError.SHUTTING_DOWN, shuttingDown(this.ctx.elsewhere, 'request'));
      this.ctx.login.audit(auditEntry(req, caller, Date.now(), { error: refusal }));
      return this.answerError(id, req.op, refusal);
    }
    // Answers that can be a page of answerBytes go one at a time per session, and only once the session has taken
    // (nearly) all of the last one: a session that pipelines them without reading holds two pages at most.
    const large = operation(req.op).paged;
    const turn = large ? this.largeAnswers.then(() => this.roomFor(this.ctx.limits.answerBytes)) : undefined;
    const run = (turn === undefined ? this.ctx.admin.execute(req, caller) : turn.then(() => this.ctx.admin.execute(req, caller))).then(
      (res) => {
        // The primary allowed it; the releases themselves flow from this process's fan-out.
        if (req.op === 'watch') this.ctx.fanout.watch(this, req.env);
        else if (req.op === 'unwatch') this.ctx.fanout.unwatch(this, req.env);
        this.answer(id, req.op, res);
      },
      (err: unknown) => this.answerError(id, req.op, err),
    );
    // Requests run concurrently; reading pauses only when too many are in flight.
    this.inFlight++;
    if (large) this.largeAnswers = run.then(() => undefined, () => undefined);
    const done = run.then(
      () => {
        this.inFlight--;
        this.lastAnswered = Date.now();
        if (this.closing && this.inFlight === 0) this.fail(WireError.SHUTTING_DOWN, shuttingDown(this.ctx.elsewhere, 'session'));
      },
      (err: unknown) => {
        this.inFlight--;
        this.failWith(err);
      },
    );
    return this.inFlight >= this.ctx.limits.adminInFlight ? done : undefined;
  }

  /** Sends a result; one that cannot be framed (too large) is answered with INTERNAL instead. */
  private answer(id: number, op: string, res: unknown): void {
    let frame: Buffer;
    try {
      frame = encodeMessage({ t: MessageType.Response, id, res });
    } catch (err) {
      this.fault(err);
      this.send({ t: MessageType.Error, code: WireError.INTERNAL, msg: `the result of ${op} could not be encoded`, id });
      return;
    }
    this.write(frame);
  }

  private answerError(id: number, op: string, err: unknown): void {
    const { status, message, fault, details } = wireAnswer(err, `internal error while running ${op}`);
    if (fault) this.fault(err);
    this.send({ t: MessageType.Error, code: status, msg: message, id, ...(details === undefined ? {} : { v: details.v, ...(details.more > 0 ? { more: details.more } : {}) }) });
  }

  private expect(phase: SessionRole, type: number): void {
    if (this.phase !== phase) {
      throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${type} is not valid ${this.phase === 'hello' ? 'before the login' : `in an ${this.phase} session`}`);
    }
  }

  /** Ping and Pong are valid in any session, but not before the login (the hello, challenge, proof and welcome). */
  private expectSession(type: number): void {
    if (this.phase === 'hello') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${type} is not valid before the login`);
  }

  protected onClosed(reason: string): void {
    trace('server', `${this.addr} (${this.id || 'no hello'}) closed: ${reason}`);
    if (this.phase === 'agent') this.ctx.fanout.unsubscribe(this);
    if (this.phase === 'admin') this.ctx.fanout.unwatch(this);
    this.ctx.onSessionEnd(this);
  }
}

/** A source address (without its port) on this machine's loopback. */
export function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || host.startsWith('::ffff:127.') || host === 'localhost';
}
