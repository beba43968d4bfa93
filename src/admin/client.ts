import type tls from 'node:tls';
import {
  checkResult, LocalErrorCode, MessageType, RemoteError, VitefaError, WireError,
  type AdminOp, type AdminRequest, type Message, type Release, type ResultOf, type Welcome,
} from '../protocol/index.js';
import { connect, type ClientConnection, type Endpoint, type Login } from '../transport/client.js';
import { Correlator } from '../transport/correlator.js';
import { Heartbeat } from '../transport/heartbeat.js';

export interface AdminClientOptions extends Endpoint {
  login: Login;
  tls?: tls.ConnectionOptions;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** How often an idle session pings; ADMIN_PING_MS by default. */
  pingIntervalMs?: number;
  /** The server throttles the login and is tried again after `retryMs` (within connectTimeoutMs): say so. */
  onThrottled?: (retryMs: number, message: string) => void;
}

/** Session-ending errors a server sends about what it received: the request that caused them was not run. */
const REFUSED_ON_RECEIPT: ReadonlySet<number> = new Set([
  WireError.MALFORMED, WireError.FRAME_TOO_LARGE, WireError.VERSION_MISMATCH, WireError.UNEXPECTED_MESSAGE,
  WireError.AUTH_FAILED, WireError.LIMIT_EXCEEDED, WireError.FORBIDDEN,
]);

/** Requests one admin session may have waiting at once. */
const MAX_PENDING = 1024;
/**
 * An idle session pings this often, so that the server (which closes
 * sessions silent for its idleTimeoutMs, 60 s by default) keeps it, and a
 * server gone without a reset is noticed by the next ping.
 */
export const ADMIN_PING_MS = 15_000;

/**
 * An admin session: requests carry ids and are matched to their answers;
 * each has a timeout. Errors sent by the server arrive as RemoteError,
 * local failures as VitefaError with a local code.
 */
export class AdminClient {
  private readonly conn: ClientConnection;
  private readonly calls = new Correlator<AdminOp>({
    maxPending: MAX_PENDING,
    timeout: (op, ms) => new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, `${op} got no answer within ${ms} ms`),
    overflow: (op, max) => new VitefaError(LocalErrorCode.QUEUE_FULL, `${op} was not sent: ${max} requests are already waiting for answers`),
  });
  private readonly requestTimeoutMs: number;
  private closedReason: string | undefined;
  private readonly heartbeat: Heartbeat;

  /** Resolves with the reason once the session has closed. */
  readonly closed: Promise<string>;
  private markClosed!: (reason: string) => void;

  private constructor(conn: ClientConnection, requestTimeoutMs: number, pingIntervalMs: number) {
    this.conn = conn;
    this.requestTimeoutMs = requestTimeoutMs;
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    // Not while requests are in flight: the server reads nothing more from a session until it has answered.
    this.heartbeat = new Heartbeat(pingIntervalMs, () => this.calls.size > 0);
    this.heartbeat.start(conn, `no answer to a ping within ${pingIntervalMs} ms`);
  }

  /** Releases of watched environments, as they arrive. */
  onRelease: ((release: Release) => void) | undefined;

  get serverId(): string {
    return this.conn.serverHello?.id ?? '';
  }

  /** Whether the session has ended. */
  get isClosed(): boolean {
    return this.closedReason !== undefined || this.conn.isClosed;
  }

  /** The other servers of the cluster, as this one's hello named them (HOST:PORT). */
  get peers(): string[] {
    return this.conn.serverHello?.peers ?? [];
  }

  /** Who this session acts as (from the server's Welcome). */
  get account(): Welcome {
    return this.conn.welcome!;
  }

  static async connect(options: AdminClientOptions): Promise<AdminClient> {
    // eslint-disable-next-line prefer-const -- the callbacks below read it before it is assigned (while connecting): a const declared after the connect would throw there
    let client: AdminClient | undefined;
    const early: Message[] = [];
    let closedEarly: string | undefined;
    const conn = await connect({
      host: options.host,
      port: options.port,
      role: 'admin',
      login: options.login,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      timeoutMs: options.connectTimeoutMs,
      ...(options.onThrottled === undefined ? {} : { onThrottled: options.onThrottled }),
      onMessage: (message) => (client ? client.onMessage(message) : void early.push(message)),
      onClose: (reason) => (client ? client.onClose(reason) : void (closedEarly = reason)),
    });
    client = new AdminClient(conn, options.requestTimeoutMs, options.pingIntervalMs ?? ADMIN_PING_MS);
    for (const message of early) client.onMessage(message);
    if (closedEarly !== undefined) client.onClose(closedEarly);
    return client;
  }

  /** Sends one request; `rid`, for a configuration write, makes a retry of it apply once (see Request.rid). */
  request<R extends AdminRequest>(req: R, rid?: string): Promise<ResultOf[R['op']]> {
    if (this.isClosed) {
      return Promise.reject(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection closed: ${this.closedReason ?? 'closed'}`));
    }
    return this.calls.start(req.op, this.requestTimeoutMs, (id) => this.conn.send({ t: MessageType.Request, id, req, ...(rid === undefined ? {} : { rid }) }));
  }

  close(): void {
    this.conn.end('admin done');
  }

  private onMessage(message: Message): void {
    switch (message.t) {
      case MessageType.Response:
        this.calls.settle(message.id, (op) => checkResult(op, message.res));
        return;
      case MessageType.Error:
        if (message.id !== undefined) {
          this.calls.settle(message.id, () => {
            // A schema's refusal carries its violations (v) and how many more there were.
            throw new RemoteError(message.code, message.msg, undefined, {
              ...(message.v === undefined ? {} : { violations: message.v }), ...(message.more === undefined ? {} : { more: message.more }),
            });
          });
        } else {
          this.onClose(`server ended the session: ${message.msg}`, new RemoteError(message.code, message.msg));
        }
        return;
      case MessageType.Ping:
        this.conn.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        this.heartbeat.answered();
        return;
      case MessageType.Release:
        // Only after a watch: the server sends releases to no other admin session.
        this.onRelease?.(message);
        return;
      case MessageType.GroupEnd:
        // Only agents apply groups; a watcher takes each release as it comes.
        return;
      case MessageType.Hello:
      case MessageType.Subscribe:
      case MessageType.Snapshot:
      case MessageType.Ack:
      case MessageType.Request:
      case MessageType.Challenge:
      case MessageType.Proof:
      case MessageType.Welcome:
      case MessageType.Gossip:
      case MessageType.Peers:
      case MessageType.Move:
      case MessageType.StoreCheck:
      case MessageType.StoreProof:
        this.conn.fail(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to an admin client`);
        return;
      default: {
        const unknown: never = message;
        this.conn.fail(WireError.UNEXPECTED_MESSAGE, `unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  private onClose(reason: string, cause?: Error): void {
    this.heartbeat.stop();
    this.closedReason ??= reason;
    this.markClosed(reason);
    // A session the server ended for what it received (a frame it refused) says so; one ended for any other
    // reason (stalled, stopping, an internal error) cut off the requests in flight, as a lost connection does.
    const refused = cause instanceof RemoteError && REFUSED_ON_RECEIPT.has(cause.status);
    this.calls.failAll((op) => (refused ? cause : new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `connection closed before ${op} was answered: ${reason}`, { cause })));
  }
}
