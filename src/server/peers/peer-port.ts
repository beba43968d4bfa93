import type net from 'node:net';
import { encodeMessage, MessageType, PROTOCOL_VERSION, Role, WireError } from '../../protocol/index.js';
import type { Endpoint } from '../../transport/client.js';
import type { ReceiveLimits } from '../../transport/connection.js';
import type { LoginContext } from '../access/login.js';
import { Admission } from '../edge/admission.js';
import { PortListener } from '../edge/listener.js';
import { Refusals } from '../edge/refusals.js';
import { sourceOf } from '../edge/source.js';
import { LoginDeadline } from '../edge/sweeps.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import type { StoreIdentity } from '../store/types.js';
import { PeerSession, type PeerHandlers, type PeerPortContext } from './peer-session.js';

export type { PeerHandlers } from './peer-session.js';

/** Peers gossip every second: a link silent this long is dead. */
const IDLE_TIMEOUT_MS = 30_000;

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
  /** Time from accept to the end of the login and the store proof; 10 s by default (the client port's helloTimeoutMs). */
  helloTimeoutMs?: number;
  /** Refusal lines a second in the log; 5 by default (the client port's logLinesPerSecond). */
  logLinesPerSecond?: number;
  tls?: ServerTlsMaterial;
  handlers: PeerHandlers;
  log: (line: string) => void;
}

/**
 * The peer port: where the other servers of the cluster connect. It is
 * made of the client port's parts: the same listener (TLS handshakes
 * counted), admission (per source address, IPv6 by /64), login deadline,
 * refusals (counted for `status` under `peer:` and logged, rate-limited)
 * and login step.
 */
export class PeerListener implements PeerPortContext {
  readonly handlers: PeerHandlers;
  readonly login: LoginContext;
  readonly identity: StoreIdentity;
  readonly receive: { hello: ReceiveLimits; peer: ReceiveLimits };
  readonly hello: Buffer;
  private readonly options: PeerListenerOptions;
  private readonly sessions = new Set<PeerSession>();
  private readonly admission: Admission;
  private readonly refusals: Refusals;
  private readonly listener: PortListener;
  private readonly deadline: LoginDeadline<PeerSession>;
  private sweeper?: NodeJS.Timeout;
  private stopping = false;

  constructor(options: PeerListenerOptions) {
    this.options = options;
    this.handlers = options.handlers;
    this.login = options.login;
    this.identity = options.identity;
    this.receive = options.receive;
    this.hello = encodeMessage({ t: MessageType.Hello, v: PROTOCOL_VERSION, role: Role.server, id: options.serverId });
    this.refusals = new Refusals({ log: options.log, linesPerSecond: options.logLinesPerSecond ?? 5, prefix: { line: 'peer port: ', counter: 'peer:' } });
    this.admission = new Admission(options.pending, { all: 'peer connections', one: 'peer connections', awaited: 'logged in' });
    this.deadline = new LoginDeadline(options.helloTimeoutMs ?? 10_000, 'no login in time');
    this.listener = new PortListener({
      endpoints: [options.listen],
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      admission: this.admission,
      refusals: this.refusals,
      accept: (socket) => this.accept(socket),
      log: options.log,
    });
  }

  /** Where the port listens (HOST:PORT, port 0 resolved). */
  get address(): string {
    return this.listener.addresses[0] ?? '';
  }

  /** Peers logged in now, by server id (a server may hold more than one link while it reconnects). */
  get peers(): string[] {
    return [...this.sessions].filter((s) => !s.inHandshake).map((s) => s.peerId);
  }

  /** Sessions this port ended or refused, by wire status name, each prefixed `peer:`. */
  get counters(): Record<string, number> {
    return this.refusals.counters;
  }

  async listen(): Promise<void> {
    await this.listener.listen();
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  /** New certificates (SIGHUP): like the client port, the ticket keys stay. */
  setTls(material: ServerTlsMaterial): void {
    this.listener.setTls(material);
  }

  private accept(socket: net.Socket): void {
    const addr = `${socket.remoteAddress}:${socket.remotePort}`;
    const source = sourceOf(addr);
    const refusal = this.stopping ? [WireError.SHUTTING_DOWN, 'server is stopping'] as const : this.admission.refusal(source);
    if (refusal !== undefined) {
      this.refusals.refuse(socket, addr, refusal[0], refusal[1]);
      return;
    }
    this.admission.enter(source);
    try {
      const session = new PeerSession(socket, addr, source, this);
      this.sessions.add(session);
      this.deadline.add(session);
    } catch (err) {
      this.admission.leave(source);
      throw err;
    }
  }

  /** @internal */
  loggedIn(session: PeerSession): void {
    this.admission.leave(session.source);
  }

  /** @internal */
  ended(session: PeerSession): void {
    this.deadline.delete(session);
    if (this.sessions.delete(session) && session.inHandshake) this.admission.leave(session.source);
  }

  /** @internal */
  foreign(addr: string, id: string, why: string): void {
    this.options.foreign(addr, id, why);
  }

  /** @internal */
  refused(addr: string, status: WireError, message: string): void {
    this.refusals.count(addr, status, message);
  }

  /** @internal */
  note(line: string): void {
    this.refusals.note(line);
  }

  private sweep(): void {
    const now = Date.now();
    this.deadline.sweep(now);
    for (const s of this.sessions) {
      if (!s.inHandshake && now - s.lastSeen > IDLE_TIMEOUT_MS) s.fail(WireError.TIMEOUT, `nothing received for ${IDLE_TIMEOUT_MS} ms`);
    }
  }

  async close(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    await this.listener.stopAccepting();
    for (const s of this.sessions) s.destroy('server stopping');
    await this.listener.whenClosed();
  }
}
