import type tls from 'node:tls';
import {
  checkResult, encodeMessage, LocalErrorCode, MessageType, RemoteError, Role, VitefaError, WireError,
  type LocalStatus, type Message, type StoreCheck,
} from '../../protocol/index.js';
import { backoffDelay } from '../../transport/backoff.js';
import { connect, parseEndpoint, type ClientConnection, type Endpoint } from '../../transport/client.js';
import type { ReceiveLimits } from '../../transport/connection.js';
import { Correlator } from '../../transport/correlator.js';
import { Heartbeat } from '../../transport/heartbeat.js';
import { trace } from '../../trace.js';
import { PEER_USER } from '../access/login.js';
import { errorText } from '../../error-text.js';

export interface PeerDialOptions {
  serverId: string;
  /** The cluster's secret (base64): the credential of the peer login. */
  secret: string;
  /** TLS towards the peer port (when the servers serve TLS). */
  tls?: tls.ConnectionOptions;
  limits: ReceiveLimits;
  connectTimeoutMs: number;
  /** Answers the peer port's StoreCheck with the MAC of the row it names; throws when this server reads another store. */
  storeCheck: (check: StoreCheck, addr: string) => Promise<string>;
}

export interface LinkEvents {
  /** Logged in; `id` is the server id the other side gave in its hello. */
  up(link: PeerLink, id: string): void;
  down(link: PeerLink, reason: string): void;
}

const STATUS_TIMEOUT_MS = 2_000;
/** The dialling side pings this often, and drops a link that has not answered by the next ping. */
const LINK_PING_MS = 5_000;
/** A peer that lets more than this pile up unread is not reading: the link is dropped and dialled again. */
const LINK_QUEUE_BYTES = 64 * 1024 * 1024;

/**
 * This server's connection to one other server's peer port: dialled again
 * and again (with backoff, up to 5 s) until stopped. Gossip, notices and
 * status queries go out on it; the other side sends its own on its own link.
 */
export class PeerLink {
  readonly addr: string;
  /** The server id behind the address, once known. */
  id: string | undefined;
  private conn: ClientConnection | undefined;
  private readonly options: PeerDialOptions;
  private readonly events: LinkEvents;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private readonly heartbeat = new Heartbeat(LINK_PING_MS);
  private stopped = false;
  /** Environments' revisions last gossiped on this link (the next gossip sends what changed). */
  sentEnvs: Map<string, number> | undefined;
  private readonly calls = new Correlator<string>({
    maxPending: 16,
    timeout: (what, ms) => new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, `${what} got no answer within ${ms} ms`),
    overflow: (what, max) => new VitefaError(LocalErrorCode.QUEUE_FULL, `${what} was not asked: ${max} requests are already waiting`),
  });

  constructor(addr: string, options: PeerDialOptions, events: LinkEvents) {
    this.addr = addr;
    this.options = options;
    this.events = events;
  }

  get up(): boolean {
    return this.conn !== undefined && !this.conn.isClosed;
  }

  start(): void {
    void this.dial();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.heartbeat.stop();
    this.conn?.end('server stopping');
  }

  write(frame: Buffer): void {
    const conn = this.conn;
    if (conn === undefined) return;
    if (conn.writableLength > LINK_QUEUE_BYTES) {
      conn.destroy(`more than ${LINK_QUEUE_BYTES} bytes waiting for the peer to read`);
      return;
    }
    conn.write(frame);
  }

  send(message: Message): void {
    this.write(encodeMessage(message));
  }

  get writableLength(): number {
    return this.conn?.writableLength ?? 0;
  }

  status(env: string | undefined, agent?: string): Promise<LocalStatus> {
    const conn = this.conn;
    if (conn === undefined || conn.isClosed) return Promise.reject(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `no link to ${this.addr}`));
    return this.calls.start<LocalStatus>(`status of ${this.id ?? this.addr}`, STATUS_TIMEOUT_MS, (id) => conn.send({ t: MessageType.Request, id, req: { op: 'status.local', ...(env === undefined ? {} : { env }), ...(agent === undefined ? {} : { agent }) } }));
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    let endpoint: Endpoint;
    try {
      endpoint = parseEndpoint(this.addr);
    } catch {
      return;
    }
    try {
      const conn = await connect({
        ...endpoint,
        role: Role.peer,
        id: this.options.serverId,
        login: { user: PEER_USER, secret: this.options.secret },
        ...(this.options.tls === undefined ? {} : { tls: this.options.tls }),
        timeoutMs: this.options.connectTimeoutMs,
        limits: this.options.limits,
        onStoreCheck: (check) => this.options.storeCheck(check, this.addr),
        onMessage: (message) => this.onMessage(message),
        onClose: (reason) => this.onClose(reason),
      });
      if (this.stopped) {
        conn.end('server stopping');
        return;
      }
      this.conn = conn;
      this.attempt = 0;
      this.sentEnvs = undefined;
      this.id = conn.serverHello?.id ?? this.addr;
      // A peer that stops answering (a paused machine, a host gone without a reset) is dropped and dialled again.
      this.heartbeat.start(conn, `no answer to a ping within ${LINK_PING_MS} ms`);
      trace('peers', `link to ${this.addr} (${this.id}) up`);
      this.events.up(this, this.id);
    } catch (err) {
      trace('peers', `link to ${this.addr} failed: ${errorText(err)}`);
      this.retry();
    }
  }

  private onMessage(message: Message): void {
    switch (message.t) {
      case MessageType.Response:
        this.calls.settle(message.id, () => checkResult('status.local', message.res));
        return;
      case MessageType.Error:
        if (message.id !== undefined) {
          this.calls.settle(message.id, () => {
            throw new RemoteError(message.code, message.msg);
          });
          return;
        }
        this.conn?.end(`peer error ${message.code}: ${message.msg}`);
        return;
      case MessageType.Ping:
        this.conn?.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        this.heartbeat.answered();
        return;
      default:
        this.conn?.fail(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent on a peer link`);
    }
  }

  private onClose(reason: string): void {
    this.conn = undefined;
    this.heartbeat.stop();
    this.calls.failAll(() => new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `link to ${this.addr} closed: ${reason}`));
    trace('peers', `link to ${this.addr} down: ${reason}`);
    this.events.down(this, reason);
    this.retry();
  }

  private retry(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.dial(), backoffDelay(this.attempt++, 250, 5_000));
    this.timer.unref();
  }
}
