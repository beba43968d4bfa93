import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  MessageType, PROTOCOL_VERSION, ProtocolError, RemoteError, Role, WireError,
  type AdminRequest, type Hello, type Message,
} from '../protocol/index.js';
import { FramedConnection } from '../transport/connection.js';
import { trace } from '../trace.js';
import { RequestError } from './errors.js';
import type { AgentLink, Fanout } from './fanout.js';

/** Runs admin requests (the hub in this process, or the primary's over IPC). */
export interface AdminExecutor {
  execute(req: AdminRequest, author: string): Promise<unknown>;
}

export interface SessionContext {
  serverId: string;
  fanout: Fanout;
  admin: AdminExecutor;
  /** Admin credential; when unset, admin sessions are accepted from loopback addresses only. */
  adminToken: string | undefined;
  /** The server's hello (with the peers agents may fail over to), encoded once for every session. */
  hello: Buffer;
  maxFrameBytes: number;
  /** Sessions ask the registry to time them out if the handshake does not finish. */
  onSessionEnd: (session: ServerSession) => void;
}

type Phase = 'handshake' | 'agent' | 'admin';

/** Most admin requests in flight on one connection before reading pauses. */
const MAX_ADMIN_IN_FLIGHT = 32;

/**
 * One accepted connection, any role. The server sends its hello at once; the
 * peer's hello decides whether this is an agent (subscribe, ack, ping) or an
 * admin client (requests). One handler per message type.
 */
export class ServerSession extends FramedConnection implements AgentLink {
  readonly addr: string;
  readonly since = Date.now();
  id = '';
  /** Last time a frame arrived, for the idle sweep. */
  lastSeen = this.since;
  private phase: Phase = 'handshake';
  private readonly ctx: SessionContext;
  private inFlight = 0;

  constructor(socket: Duplex, addr: string, ctx: SessionContext) {
    super(socket, ctx.maxFrameBytes);
    this.addr = addr;
    this.ctx = ctx;
    this.write(ctx.hello);
  }

  get inHandshake(): boolean {
    return this.phase === 'handshake';
  }

  protected handle(message: Message): void | Promise<void> {
    this.lastSeen = Date.now();
    switch (message.t) {
      case MessageType.Hello:
        return this.onHello(message);
      case MessageType.Subscribe:
        this.expect('agent', message.t);
        this.ctx.fanout.subscribe(this, message.all, message.envs);
        return;
      case MessageType.Ack:
        this.expect('agent', message.t);
        this.ctx.fanout.ack(this, message.env, message.rev);
        return;
      case MessageType.Request:
        this.expect('admin', message.t);
        return this.onRequest(message.id, message.req);
      case MessageType.Ping:
        this.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        return;
      case MessageType.Error:
        // The peer ends the session; close our side.
        trace('server', `${this.addr} sent error ${new RemoteError(message.code, message.msg).code}: ${message.msg}`);
        this.end('peer reported an error');
        return;
      case MessageType.Snapshot:
      case MessageType.Release:
      case MessageType.Response:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to a server`);
      default: {
        const unknown: never = message;
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  private onHello(hello: Hello): void {
    if (this.phase !== 'handshake') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'hello sent twice');
    if (hello.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(WireError.VERSION_MISMATCH, `protocol version ${hello.v} is not supported (server speaks ${PROTOCOL_VERSION})`);
    }
    this.id = hello.id;
    switch (hello.role) {
      case Role.agent:
        this.phase = 'agent';
        return;
      case Role.admin:
        if (!this.adminAllowed(hello.token)) {
          throw new ProtocolError(
            WireError.AUTH_FAILED,
            this.ctx.adminToken === undefined ? 'admin access without a token is allowed from loopback only' : 'admin token rejected',
          );
        }
        this.phase = 'admin';
        return;
      case Role.server:
      case Role.peer:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `role ${hello.role} is not served on this port`);
      default: {
        const unknown: never = hello.role;
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `unknown role ${String(unknown)}`);
      }
    }
  }

  private adminAllowed(token: string | undefined): boolean {
    const expected = this.ctx.adminToken;
    if (expected === undefined) return isLoopback(this.addr);
    if (token === undefined) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private onRequest(id: number, req: AdminRequest): void | Promise<void> {
    const author = `${this.id}@${this.addr}`;
    const run = this.ctx.admin.execute(req, author).then(
      (res) => this.send({ t: MessageType.Response, id, res }),
      (err: unknown) => {
        if (err instanceof RequestError) {
          this.send({ t: MessageType.Error, code: err.status, msg: err.message, id });
        } else {
          trace('server', `request ${req.op} failed: ${(err as Error)?.stack ?? String(err)}`);
          this.send({ t: MessageType.Error, code: WireError.INTERNAL, msg: `internal error while running ${req.op}`, id });
        }
      },
    );
    // Requests run concurrently; reading pauses only when too many are in flight.
    this.inFlight++;
    const done = run.finally(() => this.inFlight--);
    return this.inFlight >= MAX_ADMIN_IN_FLIGHT ? done : undefined;
  }

  private expect(phase: Phase, type: number): void {
    if (this.phase !== phase) {
      throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${type} is not valid ${this.phase === 'handshake' ? 'before the hello' : `in an ${this.phase} session`}`);
    }
  }

  protected onClosed(reason: string): void {
    trace('server', `${this.addr} (${this.id || 'no hello'}) closed: ${reason}`);
    if (this.phase === 'agent') this.ctx.fanout.unsubscribe(this);
    this.ctx.onSessionEnd(this);
  }
}

export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.') || addr.startsWith('[::1]');
}
