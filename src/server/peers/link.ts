import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import {
  checkResult, encodeMessage, LocalErrorCode, MessageType, PROTOCOL_VERSION, ProtocolError, RemoteError, Role, VitefaError, WireError,
  type Gossip, type Hello, type LocalStatus, type Message, type Proof, type Release, type StoreCheck, type Welcome,
} from '../../protocol/index.js';
import { proofMac, sameMac } from '../store/identity.js';
import type { StoreChallenge, StoreIdentity } from '../store/types.js';
import { reportFault, RateLimitedLog } from '../../log.js';
import { CHANNEL_BINDING_LABEL } from '../../security/tls.js';
import { backoffDelay } from '../../transport/backoff.js';
import { connect, parseEndpoint, type ClientConnection, type Endpoint } from '../../transport/client.js';
import { FramedConnection, type ReceiveLimits } from '../../transport/connection.js';
import { Correlator } from '../../transport/correlator.js';
import { Heartbeat } from '../../transport/heartbeat.js';
import { trace } from '../../trace.js';
import { LoginExchange, PEER_USER, type LoginContext } from '../access/login.js';
import { sourceKey } from '../edge/host.js';
import { serverOptions, type ServerTlsMaterial } from '../edge/tls.js';
import { TlsHandshakes } from '../edge/tls-handshakes.js';
import { errorText } from '../../error-text.js';

/** What the server does with what its peers send. */
export interface PeerHandlers {
  gossip(from: string, message: Gossip): void;
  /** A release another server has just committed. */
  notice(from: string, release: Release): void;
  status(env: string | undefined, agent?: string): Promise<LocalStatus>;
}

const HELLO_TIMEOUT_MS = 10_000;
/** Peers gossip every second: a link silent this long is dead. */
const IDLE_TIMEOUT_MS = 30_000;

/**
 * One connection from another server, on the peer port. It logs in like
 * any client (SCRAM, on the cluster's secret, bound to the TLS session when
 * there is one), then sends gossip, notices of releases and status queries.
 */
class PeerSession extends FramedConnection {
  readonly since = Date.now();
  lastSeen = this.since;
  peerId = '';
  /** hello: the login; store: logged in, proving it reads this store; peer: a peer. */
  private phase: 'hello' | 'store' | 'peer' = 'hello';
  private login: LoginExchange | undefined;
  /** While proving: the row asked for, and the Welcome sent once it is found. */
  private proving: { challenge: StoreChallenge; welcome: Welcome } | undefined;
  private readonly listener: PeerListener;
  readonly addr: string;
  /** The source address (an IPv6 /64) it is counted under while it logs in, and by the login throttle. */
  readonly source: string;

  constructor(socket: Duplex, addr: string, source: string, listener: PeerListener) {
    super(socket, listener.receive.hello);
    this.addr = addr;
    this.source = source;
    this.listener = listener;
    this.write(listener.hello);
  }

  get inHandshake(): boolean {
    return this.phase !== 'peer';
  }

  protected handle(message: Message): void | Promise<void> {
    this.lastSeen = Date.now();
    if (this.phase === 'hello') {
      if (message.t === MessageType.Hello) return this.onHello(message);
      if (message.t === MessageType.Proof) return this.onProof(message);
      throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not valid before the login`);
    }
    if (this.phase === 'store') {
      if (message.t === MessageType.StoreProof) return this.onStoreProof(message.mac);
      if (message.t === MessageType.Error) {
        // The other server refused this one's store (another id, or it could not find the row).
        this.listener.foreign(this.addr, this.peerId, `it could not prove that it reads this store (it answered: ${message.msg.slice(0, 300)})`);
        this.end(`peer refused the store: ${message.msg}`);
        return;
      }
      throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not valid before the store proof`);
    }
    switch (message.t) {
      case MessageType.Gossip:
        this.listener.handlers.gossip(this.peerId, message);
        return;
      case MessageType.Release:
        this.listener.handlers.notice(this.peerId, message);
        return;
      case MessageType.Request: {
        if (message.req.op !== 'status.local') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `a peer asks only status.local, not ${message.req.op}`);
        const id = message.id;
        void this.listener.handlers.status(message.req.env, message.req.agent).then(
          (res) => this.send({ t: MessageType.Response, id, res }),
          (err: unknown) => this.send({ t: MessageType.Error, id, code: WireError.INTERNAL, msg: `status: ${errorText(err)}` }),
        );
        return;
      }
      case MessageType.Ping:
        this.send({ t: MessageType.Pong, n: message.n });
        return;
      case MessageType.Pong:
        return;
      case MessageType.Error:
        this.end(`peer reported error ${message.code}: ${message.msg}`);
        return;
      default:
        throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not sent to a peer port`);
    }
  }

  private onHello(hello: Hello): void {
    if (this.login !== undefined) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'hello sent twice');
    if (hello.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(WireError.VERSION_MISMATCH, `protocol version ${hello.v} is not supported (server speaks ${PROTOCOL_VERSION})`);
    }
    if (hello.role !== Role.peer) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `role ${hello.role} is not served on the peer port`);
    const binding = this.socket instanceof tls.TLSSocket ? this.socket.exportKeyingMaterial(32, CHANNEL_BINDING_LABEL, Buffer.alloc(0)).toString('base64') : '';
    const login = new LoginExchange(this.listener.login, hello, this.addr, this.source, binding);
    this.login = login;
    this.send(login.challenge());
  }

  /**
   * The peer key is right; knowing it proves nothing about which store the
   * other server reads (a restored copy carries the key). So before the
   * Welcome it must find a row this server has just written to its store.
   */
  private async onProof(proof: Proof): Promise<void> {
    const login = this.login;
    if (login === undefined) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'a proof before the hello');
    this.login = undefined;
    const { principal, welcome } = await login.finish(proof.proof);
    if (this.isClosed) return;
    this.peerId = principal.name;
    this.phase = 'store';
    let challenge: StoreChallenge;
    let store: string;
    try {
      [challenge, store] = await Promise.all([this.listener.identity.challenge(), this.listener.identity.id()]);
    } catch (err) {
      throw new ProtocolError(WireError.STORE_UNAVAILABLE, `this server cannot write its store to check the peer's: ${errorText(err)}`);
    }
    this.proving = { challenge, welcome };
    this.send({ t: MessageType.StoreCheck, store, key: challenge.key });
  }

  private onStoreProof(mac: string): void {
    const proving = this.proving;
    if (proving === undefined) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'a store proof before the store check');
    this.proving = undefined;
    if (!sameMac(mac, proofMac(proving.challenge.secret, proving.challenge.key))) {
      const why = 'it could not find the row this server had just written to its store: it reads a copy of this store, not this store';
      this.listener.foreign(this.addr, this.peerId, why);
      throw new ProtocolError(WireError.STORE_MISMATCH, why);
    }
    this.phase = 'peer';
    this.listener.loggedIn(this);
    this.setLimits(this.listener.receive.peer);
    this.send(proving.welcome);
  }

  override fail(status: WireError, message: string, retryMs?: number): void {
    if (this.isClosed) return;
    this.listener.refused(this.addr, status, message);
    super.fail(status, message, retryMs);
  }

  protected onClosed(reason: string): void {
    trace('peers', `inbound ${this.addr} (${this.peerId || 'no login'}) closed: ${reason}`);
    this.listener.ended(this);
  }
}

export interface PeerListenerOptions {
  serverId: string;
  /** The store of record, which a peer must prove it reads. */
  identity: StoreIdentity;
  /** A server that reads another store tried to become a peer (said once per server and reason). */
  foreign: (addr: string, id: string, why: string) => void;
  listen: Endpoint;
  login: LoginContext;
  receive: { hello: ReceiveLimits; peer: ReceiveLimits };
  /**
   * Connections that have not logged in yet, in all and from one source
   * address (the peer port is not for the public, but bytes may come from
   * anyone: one address must not keep the other servers out).
   */
  pending: { total: number; perAddress: number };
  tls?: ServerTlsMaterial;
  handlers: PeerHandlers;
  log: (line: string) => void;
}

/** The peer port: where the other servers of the cluster connect. */
export class PeerListener {
  readonly handlers: PeerHandlers;
  readonly login: LoginContext;
  readonly identity: StoreIdentity;
  readonly receive: { hello: ReceiveLimits; peer: ReceiveLimits };
  readonly hello: Buffer;
  private readonly options: PeerListenerOptions;
  private server?: net.Server;
  private readonly sessions = new Set<PeerSession>();
  private pending = 0;
  private readonly pendingBySource = new Map<string, number>();
  private sweeper?: NodeJS.Timeout;
  private readonly refusals: RateLimitedLog;
  address = '';

  constructor(options: PeerListenerOptions) {
    this.options = options;
    this.handlers = options.handlers;
    this.login = options.login;
    this.identity = options.identity;
    this.receive = options.receive;
    this.hello = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: Role.server, id: options.serverId });
    this.refusals = new RateLimitedLog(options.log, 5, 10);
  }

  /** Peers logged in now, by server id (a server may hold more than one link while it reconnects). */
  get peers(): string[] {
    return [...this.sessions].filter((s) => !s.inHandshake).map((s) => s.peerId);
  }

  async listen(): Promise<void> {
    const accept = (socket: net.Socket): void => this.accept(socket);
    const server = this.options.tls === undefined ? net.createServer({ noDelay: true }, accept) : tls.createServer(serverOptions(this.options.tls), accept);
    if (server instanceof tls.Server) {
      const handshakes = new TlsHandshakes(server, (addr, reason) => this.refused(addr, WireError.MALFORMED, `TLS handshake failed: ${reason}`));
      server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
        handshakes.failed(err, socket);
        socket.destroy();
      });
    }
    server.on('error', (err) => reportFault('the peer port', err));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.options.listen.host, port: this.options.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const bound = server.address() as net.AddressInfo;
    this.address = `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`;
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  /** New certificates (SIGHUP): like the client port, the ticket keys stay. */
  setTls(material: ServerTlsMaterial): void {
    if (this.server instanceof tls.Server) {
      this.server.setSecureContext(serverOptions(material));
      this.server.setTicketKeys(material.ticketKeys);
    }
  }

  private accept(socket: net.Socket): void {
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    const source = sourceKey(socket.remoteAddress ?? '');
    const { total, perAddress } = this.options.pending;
    const fromSource = this.pendingBySource.get(source) ?? 0;
    if (this.pending >= total || fromSource >= perAddress) {
      const why = this.pending >= total ? `${this.pending} peer connections have not logged in yet` : `${fromSource} peer connections from ${source} have not logged in yet`;
      this.refused(addr, WireError.LIMIT_EXCEEDED, why);
      socket.destroy();
      return;
    }
    this.pending++;
    this.pendingBySource.set(source, fromSource + 1);
    try {
      this.sessions.add(new PeerSession(socket, addr, source, this));
    } catch (err) {
      this.leavePending(source);
      reportFault('accepting a peer connection', err);
      socket.destroy();
    }
  }

  private leavePending(source: string): void {
    this.pending--;
    const n = (this.pendingBySource.get(source) ?? 1) - 1;
    if (n <= 0) this.pendingBySource.delete(source);
    else this.pendingBySource.set(source, n);
  }

  /** @internal */
  loggedIn(session: PeerSession): void {
    this.leavePending(session.source);
  }

  /** @internal */
  ended(session: PeerSession): void {
    if (this.sessions.delete(session) && session.inHandshake) this.leavePending(session.source);
  }

  /** @internal */
  foreign(addr: string, id: string, why: string): void {
    this.options.foreign(addr, id, why);
  }

  /** @internal */
  refused(addr: string, status: WireError, message: string): void {
    this.refusals.log(() => `peer port: closed ${addr}: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`);
    void status;
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.sessions) {
      if (s.inHandshake && now - s.since > HELLO_TIMEOUT_MS) s.fail(WireError.TIMEOUT, 'no login in time');
      else if (now - s.lastSeen > IDLE_TIMEOUT_MS) s.fail(WireError.TIMEOUT, `nothing received for ${IDLE_TIMEOUT_MS} ms`);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const s of this.sessions) s.destroy('server stopping');
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }
}

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
    overflow: (what, max) => new VitefaError(LocalErrorCode.REQUEST_TIMEOUT, `${what}: ${max} requests are already waiting`),
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
      trace('peers', `link to ${this.addr} failed: ${(err as Error).message}`);
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
