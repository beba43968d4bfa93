import type { Duplex } from 'node:stream';
import {
  MessageType, ProtocolError, Role, WireError,
  type Gossip, type Hello, type LocalStatus, type Message, type Proof, type Release, type Welcome,
} from '../../protocol/index.js';
import { errorText } from '../../error-text.js';
import { reportFault } from '../../log.js';
import { FramedConnection, type ReceiveLimits } from '../../transport/connection.js';
import { trace } from '../../trace.js';
import { LoginStep, type LoginContext } from '../access/login.js';
import { proofMac, sameMac } from '../store/identity.js';
import type { StoreChallenge, StoreIdentity } from '../store/types.js';

/** What the server does with what its peers send. */
export interface PeerHandlers {
  gossip(from: string, message: Gossip): void;
  /** A release another server has just committed. */
  notice(from: string, release: Release): void;
  status(env: string | undefined, agent?: string): Promise<LocalStatus>;
}

/** What every session of the peer port shares. */
export interface PeerPortContext {
  readonly handlers: PeerHandlers;
  readonly login: LoginContext;
  /** The store of record, which a peer must prove it reads. */
  readonly identity: StoreIdentity;
  readonly receive: { hello: ReceiveLimits; peer: ReceiveLimits };
  /** The server's hello, encoded once. */
  readonly hello: Buffer;
  /** A server that reads another store tried to become a peer. */
  foreign(addr: string, id: string, why: string): void;
  /** Counts and logs a session the port ended. */
  refused(addr: string, status: WireError, message: string): void;
  /** Logs a line about the port (rate-limited). */
  note(line: string): void;
  loggedIn(session: PeerSession): void;
  ended(session: PeerSession): void;
}

/** What a peer that asked for this server's status is told when it cannot be had (the cause is logged here, never sent). */
const STATUS_FAILED = 'the status of this server could not be gathered';
/** What a peer is told when this server cannot write its store to check the peer's (the cause is logged here). */
const STORE_CHECK_FAILED = 'this server cannot write its store to check the peer\'s';

/**
 * One connection from another server, on the peer port. It logs in like
 * any client (the login step of every port, on the cluster's secret), then
 * proves it reads this store, then sends gossip, notices of releases and
 * status queries.
 */
export class PeerSession extends FramedConnection {
  readonly since = Date.now();
  lastSeen = this.since;
  peerId = '';
  /** hello: the login; store: logged in, proving it reads this store; peer: a peer. */
  private phase: 'hello' | 'store' | 'peer' = 'hello';
  private readonly login: LoginStep;
  /** While proving: the row asked for, and the Welcome sent once it is found. */
  private proving: { challenge: StoreChallenge; welcome: Welcome } | undefined;
  private readonly port: PeerPortContext;
  readonly addr: string;
  /** The source address (an IPv6 /64) it is counted under while it logs in, and by the login throttle. */
  readonly source: string;

  constructor(socket: Duplex, addr: string, source: string, port: PeerPortContext) {
    super(socket, port.receive.hello);
    this.addr = addr;
    this.source = source;
    this.port = port;
    this.login = new LoginStep(port.login, socket, addr, source);
    this.write(port.hello);
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
        this.port.foreign(this.addr, this.peerId, `it could not prove that it reads this store (it answered: ${message.msg.slice(0, 300)})`);
        this.end(`peer refused the store: ${message.msg}`);
        return;
      }
      throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `message type ${message.t} is not valid before the store proof`);
    }
    switch (message.t) {
      case MessageType.Gossip:
        this.port.handlers.gossip(this.peerId, message);
        return;
      case MessageType.Release:
        this.port.handlers.notice(this.peerId, message);
        return;
      case MessageType.Request: {
        if (message.req.op !== 'status.local') throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `a peer asks only status.local, not ${message.req.op}`);
        const id = message.id;
        void this.port.handlers.status(message.req.env, message.req.agent).then(
          (res) => this.send({ t: MessageType.Response, id, res }),
          (err: unknown) => {
            reportFault(`the status asked by the peer ${this.peerId}`, err);
            this.send({ t: MessageType.Error, id, code: WireError.INTERNAL, msg: STATUS_FAILED });
          },
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
    this.send(this.login.hello(hello, (role) => {
      if (role !== Role.peer) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, `role ${role} is not served on the peer port`);
    }));
  }

  /**
   * The peer key is right; knowing it proves nothing about which store the
   * other server reads (a restored copy carries the key). So before the
   * Welcome it must find a row this server has just written to its store.
   */
  private async onProof(proof: Proof): Promise<void> {
    const { principal, welcome } = await this.login.proof(proof.proof);
    if (this.isClosed) return;
    this.peerId = principal.name;
    this.phase = 'store';
    let challenge: StoreChallenge;
    let store: string;
    try {
      [challenge, store] = await Promise.all([this.port.identity.challenge(), this.port.identity.id()]);
    } catch (err) {
      this.port.note(`cannot write the store to check the peer ${this.addr} (${this.peerId}): ${errorText(err)}`);
      throw new ProtocolError(WireError.STORE_UNAVAILABLE, STORE_CHECK_FAILED, { cause: err });
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
      this.port.foreign(this.addr, this.peerId, why);
      throw new ProtocolError(WireError.STORE_MISMATCH, why);
    }
    this.phase = 'peer';
    this.port.loggedIn(this);
    this.setLimits(this.port.receive.peer);
    this.send(proving.welcome);
  }

  override fail(status: WireError, message: string, retryMs?: number): void {
    if (this.isClosed) return;
    this.port.refused(this.addr, status, message);
    super.fail(status, message, retryMs);
  }

  protected onClosed(reason: string): void {
    trace('peers', `inbound ${this.addr} (${this.peerId || 'no login'}) closed: ${reason}`);
    this.port.ended(this);
  }
}
