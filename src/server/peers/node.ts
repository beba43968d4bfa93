import { createHmac } from 'node:crypto';
import type { ClusterStatus, Gossip, LocalStatus, MemberEntry, Release } from '../../protocol/index.js';
import { errorText } from '../../error-text.js';
import { RateLimitedLog, reportFault } from '../../log.js';
import { makeVerifier, type Verifier } from '../../security/scram.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import type { Endpoint } from '../../transport/client.js';
import type { LoginContext } from '../access/login.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import { receiveLimits, type ServerLimits } from '../limits.js';
import type { Hub } from '../ops/hub.js';
import type { MemberRecord, Store } from '../store/types.js';
import { AgentPlacement, type AgentSide } from './agents.js';
import { AgentDrain } from './drain.js';
import { PeerGossip } from './gossip.js';
import { LoopLag } from './lag.js';
import { PeerLinks } from './links.js';
import { Membership } from './membership.js';
import { PeerListener } from './peer-port.js';
import { peerSettings, type PeerSettings } from './settings.js';
import { clusterStatus } from './status.js';
import { StoreGuard } from './store-check.js';

export type { AgentSide } from './agents.js';
export { PEER_DEFAULTS, type PeerSettings } from './settings.js';

export interface PeerNodeOptions {
  serverId: string;
  store: Store;
  hub: Hub;
  /** Addresses agents and admins connect to. */
  addrs: string[];
  /** The peer port. */
  listen: Endpoint;
  /** Where other servers reach the peer port, when not the address it binds. */
  advertise?: string;
  /** Peer addresses to dial besides those registered in the store. */
  seeds: string[];
  limits: ServerLimits;
  /** Logins on the peer port share the throttle and the audit trail. */
  login: Omit<LoginContext, 'peerVerifier'>;
  settings?: Partial<PeerSettings>;
  agents: AgentSide;
  log: (line: string) => void;
}

/** The cluster's credential for peer logins: a secret every server of the store reads from it. */
function peerCredential(secret: Buffer): { secret: string; verifier: Verifier } {
  const text = secret.toString('base64');
  const salt = createHmac('sha256', secret).update('vitefa peer salt').digest().subarray(0, 16);
  return { secret: text, verifier: makeVerifier(text, TOKEN_ITERATIONS, salt) };
}

/**
 * This server as a member of the cluster: registers itself in the store
 * (a new generation at every start), serves the peer port, and once a
 * second runs the round of its parts: the links to the other servers
 * (links.ts), gossip and catch-up (gossip.ts), the failure detector
 * (membership.ts), where the agents go (agents.ts), and on a graceful stop
 * the drain (drain.ts). `status` gathers every server's part (status.ts).
 */
export class PeerNode {
  readonly membership: Membership;
  private readonly options: PeerNodeOptions;
  private readonly settings: PeerSettings;
  private readonly hub: Hub;
  private readonly lag = new LoopLag();
  private readonly links: PeerLinks;
  private readonly gossip: PeerGossip;
  private readonly placement: AgentPlacement;
  private readonly drainer: AgentDrain;
  private readonly guard: StoreGuard;
  private listener?: PeerListener;
  private gossipTimer?: NodeJS.Timeout;
  private registryTimer?: NodeJS.Timeout;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private readonly warn: RateLimitedLog;
  advertise = '';
  /** Serve the peer port with TLS, and dial the others with TLS (set before start). */
  tls: ServerTlsMaterial | undefined;

  constructor(options: PeerNodeOptions) {
    this.options = options;
    this.settings = peerSettings(options.settings);
    this.hub = options.hub;
    this.membership = new Membership({
      id: options.serverId, gen: 0, addrs: options.addrs, peer: '', state: 'alive', agents: 0, head: options.hub.applied,
    }, this.settings.detector);
    this.warn = new RateLimitedLog(options.log, 1, 5);
    this.guard = new StoreGuard(options.store, options.log);
    this.links = new PeerLinks({
      serverId: options.serverId,
      limits: receiveLimits(options.limits, 'admin'),
      tls: () => this.tls !== undefined,
      storeCheck: (check, addr) => this.guard.answer(check, addr),
      up: (link) => this.gossip.send(link),
    });
    this.gossip = new PeerGossip(this.membership, this.hub, this.links, this.warn);
    this.placement = new AgentPlacement(this.membership, options.agents, this.settings, options.log);
    this.drainer = new AgentDrain(this.membership, options.agents, this.settings, options.log);
  }

  get gen(): number {
    return this.membership.self.gen;
  }

  /**
   * Joins the cluster: listens on the peer port, registers (a new
   * generation), dials every server it knows of, and waits (joinTimeoutMs at
   * most) to hear from those that look alive; then fetches what they have
   * applied and this server has not. Only then should agents be served.
   */
  async start(): Promise<void> {
    const { verifier, secret } = peerCredential(await this.options.store.access.secret('peer-key', 32));
    this.links.secret = secret;
    const listener = new PeerListener({
      serverId: this.options.serverId,
      listen: this.options.listen,
      login: { ...this.options.login, peerVerifier: verifier },
      identity: this.options.store.identity,
      foreign: (addr, id, why) => this.guard.foreign(addr, id, why),
      receive: { hello: receiveLimits(this.options.limits, 'hello'), peer: receiveLimits(this.options.limits, 'admin') },
      pending: { total: this.options.limits.peerPending, perAddress: this.options.limits.peerPendingPerAddress },
      helloTimeoutMs: this.options.limits.helloTimeoutMs,
      logLinesPerSecond: this.options.limits.logLinesPerSecond,
      ...(this.tls === undefined ? {} : { tls: this.tls }),
      handlers: {
        gossip: (from, message) => this.onGossip(from, message),
        notice: (from, release) => this.onNotice(from, release),
        status: (env, agent) => this.localStatus(env, agent),
      },
      log: this.options.log,
    });
    await listener.listen();
    if (this.stopped) {
      // Stopped while starting: nothing more is begun.
      await listener.close();
      return;
    }
    this.listener = listener;
    this.advertise = this.options.advertise ?? listener.address;
    this.links.addSelf(this.advertise);
    this.membership.update({ head: this.hub.applied });
    this.membership.self.peer = this.advertise;
    this.membership.self.gen = await this.options.store.members.register(this.record());
    this.hub.onCommit((release) => this.gossip.tell(release));
    const registered = await this.options.store.members.list().catch(() => [] as MemberRecord[]);
    for (const seed of this.options.seeds) this.links.link(seed);
    this.learnRegistry(registered);
    if (this.stopped) return;
    this.lag.start();
    await this.join(registered);
    if (this.stopped) return;
    this.gossipTimer = setInterval(() => this.guarded('gossip', () => this.round()), this.settings.gossipMs);
    this.gossipTimer.unref();
    this.registryTimer = setInterval(() => this.guarded('the registry', () => this.registry()), this.settings.registryMs);
    this.registryTimer.unref();
    this.round();
  }

  private record(): Omit<MemberRecord, 'gen'> {
    const self = this.membership.self;
    return {
      id: self.id, addrs: self.addrs, peer: self.peer, state: self.state, agents: self.agents, head: self.head, heartbeat: Date.now(), started: Date.now(),
    };
  }

  /** Waits for gossip from the servers whose rows say they are alive, then catches up with the highest head heard. */
  private async join(registered: MemberRecord[]): Promise<void> {
    const fresh = registered.filter((r) => r.id !== this.options.serverId && r.state !== 'left' && Date.now() - r.heartbeat < this.settings.detector.deadAfterMs + this.settings.registryMs);
    const deadline = Date.now() + this.settings.joinTimeoutMs;
    // Gossip goes out as soon as a link is up, so the others learn of this server (and answer) at once.
    while (Date.now() < deadline && fresh.some((r) => this.membership.view(r.id) === undefined)) {
      this.gossip.send();
      await new Promise((r) => setTimeout(r, 50));
    }
    const heard = fresh.filter((r) => this.membership.view(r.id) !== undefined).map((r) => r.id);
    const head = this.clusterHead();
    if (head > this.hub.applied) await this.hub.catchUp(head);
    this.options.log(`peers: generation ${this.gen}; ${heard.length} of ${fresh.length} registered servers answered${heard.length > 0 ? ` (${heard.join(', ')})` : ''}; applied revision ${this.hub.applied} (the cluster's head when it joined: ${head}) before serving agents`);
  }

  /** The highest revision any server (this one included) says it has applied. */
  clusterHead(): number {
    return this.gossip.head();
  }

  private learnRegistry(rows: MemberRecord[]): void {
    const forget = Date.now() - this.settings.detector.forgetAfterMs;
    for (const row of rows) {
      if (row.id === this.options.serverId) continue;
      if (row.state === 'left' || row.heartbeat < forget) continue;
      this.links.link(row.peer);
    }
  }

  /**
   * Links to addresses no one speaks of any more — not a seed, not the peer
   * port of a server this one sees alive, not a fresh row of the registry
   * (a server moved to another port, or gone for good) — are closed.
   */
  private pruneLinks(rows: MemberRecord[]): void {
    const forget = Date.now() - this.settings.detector.forgetAfterMs;
    const wanted = new Set(this.options.seeds);
    for (const row of rows) if (row.state !== 'left' && row.heartbeat >= forget) wanted.add(row.peer);
    for (const view of this.membership.others()) if (view.entry.state !== 'left' && view.health !== 'dead') wanted.add(view.entry.peer);
    this.links.prune(wanted);
  }

  /** Once a second: heartbeat, gossip, failure detection, catch-up, agents' peer list, rebalancing. */
  private round(): void {
    if (this.stopped) return;
    this.lag.sample();
    this.membership.update({ agents: this.options.agents.agents(), head: this.hub.applied });
    this.membership.beat();
    this.gossip.send();
    for (const change of this.membership.judge(this.lag.lagMs)) {
      const how = change.to === 'alive' ? 'is back' : change.to === 'suspect' ? `is suspect (silent ${change.silentMs} ms)` : `is declared dead (silent ${change.silentMs} ms)`;
      this.options.log(`peers: ${change.id} ${how}${this.lag.lagMs > 0 ? `; this server's own event loop ran up to ${Math.round(this.lag.lagMs)} ms late` : ''}`);
    }
    // Servers learned of through gossip are linked to as well.
    for (const view of this.membership.others()) if (view.entry.state !== 'left') this.links.link(view.entry.peer);
    this.gossip.catchUp();
    this.placement.tellServers();
    this.placement.rebalance();
  }

  private onGossip(from: string, message: Gossip): void {
    if (this.stopped) return;
    this.gossip.receive(from, message);
  }

  private onNotice(from: string, release: Release): void {
    if (this.stopped) return;
    this.gossip.notice(from, release);
  }

  private async registry(): Promise<void> {
    const self = this.membership.self;
    const ours = await this.options.store.members.heartbeat({ ...this.record(), gen: self.gen });
    if (!ours) this.warn.log(`peers: the store's row of ${self.id} belongs to another generation than this process's (${self.gen}): another server was started with this server's id, or the database was restored or replaced under this server`);
    const rows = await this.options.store.members.list();
    this.learnRegistry(rows);
    this.pruneLinks(rows);
    // Rows of servers gone for a day are forgotten (a server that comes back registers again).
    await this.options.store.members.prune(Date.now() - 24 * this.settings.detector.forgetAfterMs);
  }

  /** This server's own part of `status`. */
  async localStatus(env: string | undefined, agent?: string): Promise<LocalStatus> {
    const source = this.localSource;
    if (source === undefined) throw new Error('status is not available yet');
    return source(env, agent);
  }

  /** Set by the server: its own ServerInfo and agents' revisions. */
  localSource: ((env: string | undefined, agent?: string) => Promise<LocalStatus>) | undefined;

  /** Every server as this one sees it, and the agents' revisions of all of them (each asked, 2 s at most). */
  clusterStatus(env: string | undefined, local: LocalStatus, agent?: string): Promise<ClusterStatus> {
    return clusterStatus({
      membership: this.membership, peers: this.links.byId(), applied: () => this.hub.applied, head: () => this.clusterHead(),
      local, env, ...(agent === undefined ? {} : { agent }), now: Date.now(),
    });
  }

  /**
   * A graceful stop: this server says it is draining, tells its agents to
   * move (each to a server chosen by load, spread over moveWithinMs), waits
   * for them to leave (drainTimeoutMs at most), then says it has left.
   */
  drain(): Promise<void> {
    this.draining ??= this.leave();
    return this.draining;
  }

  private async leave(): Promise<void> {
    if (this.stopped) return;
    const others = this.membership.candidates().filter((c) => c.id !== this.options.serverId);
    this.membership.update({ state: 'draining' });
    this.gossip.send();
    this.placement.tellServers(true);
    await this.options.store.members.heartbeat({ ...this.record(), gen: this.gen }).catch(() => false);
    if (others.length > 0) await this.drainer.run(others.length);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    clearInterval(this.gossipTimer);
    clearInterval(this.registryTimer);
    this.membership.update({ state: 'left', agents: 0 });
    this.gossip.send();
    this.stopped = true;
    this.links.freeze();
    this.lag.stop();
    await this.options.store.members.heartbeat({ ...this.record(), gen: this.gen }).catch(() => false);
    // Let the last gossip leave before the links close.
    await new Promise((r) => setTimeout(r, 50));
    this.links.stop();
    await this.listener?.close();
  }

  setTls(material: ServerTlsMaterial): void {
    this.tls = material;
    this.listener?.setTls(material);
  }

  /** Sessions the peer port ended or refused, by wire status name prefixed `peer:` (`status` shows them with the client port's). */
  get portCounters(): Record<string, number> {
    return this.listener?.counters ?? {};
  }

  /** Members as this server sees them, for logs and tests. */
  entries(): MemberEntry[] {
    return this.membership.entries();
  }

  private guarded(what: string, work: () => void | Promise<void>): void {
    try {
      const result = work();
      if (result instanceof Promise) result.catch((err: unknown) => this.warn.log(`peers: ${what}: ${errorText(err)}`));
    } catch (err) {
      reportFault(`peers: ${what}`, err);
    }
  }
}
