import { createHmac } from 'node:crypto';
import type tls from 'node:tls';
import {
  encodeMessage, MessageType, ProtocolError, WireError,
  type ClusterStatus, type EnvAgents, type Gossip, type LocalStatus, type MemberEntry, type PeerServer, type Release, type ServerRow, type StoreCheck,
} from '../../protocol/index.js';
import { RateLimitedLog, reportFault } from '../../log.js';
import { makeVerifier, type Verifier } from '../../security/scram.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import type { Endpoint } from '../../transport/client.js';
import { trace } from '../../trace.js';
import type { LoginContext } from '../access/login.js';
import type { Hub } from '../ops/hub.js';
import { receiveLimits, type ServerLimits } from '../limits.js';
import type { ServerTlsMaterial } from '../edge/tls.js';
import type { MemberRecord, Store, StoredRelease } from '../store/types.js';
import { LoopLag } from './lag.js';
import { PeerLink, PeerListener } from './link.js';
import { planRebalance } from './balance.js';
import { DETECTOR_DEFAULTS, Membership, type DetectorSettings } from './membership.js';
import { releaseMessage, storedOf } from '../releases/state.js';
import { proofMac } from '../store/identity.js';
import { LAGGING_SHOWN, mergeRevisions } from './status.js';
import { errorText } from '../../error-text.js';

/** Agents `status --agent` lists at most (an id is meant to name one host; a shared one still gives a bounded answer). */
export const FOUND_AT_MOST = 100;

/** What the peer side needs from the side that holds the agents (this process's host, or the cluster's workers). */
export interface AgentSide {
  /** Agents connected to this server now. */
  agents(): number;
  /** Tells every agent (and the hello of every new session) which servers there are. */
  setPeers(servers: PeerServer[]): void;
  /** Tells up to `count` agents to reconnect elsewhere; returns how many were told. */
  move(count: number, to: string | undefined, within: number, reason: string): Promise<number>;
  /** This server's agents' revisions, per environment. */
  revisions(env: string | undefined, cap: number): Promise<EnvAgents[]>;
}

export interface PeerSettings {
  /** Gossip to every peer this often; it is also the heartbeat. */
  gossipMs: number;
  /** Write this server's row and read everyone's this often. */
  registryMs: number;
  /** At start, wait this long at most to hear from the servers that look alive before serving agents. */
  joinTimeoutMs: number;
  /** Agents one server moves to a less loaded one per second, at most (rebalancing is gradual, never a storm). */
  rebalancePerSecond: number;
  /** A draining server waits this long at most for its agents to leave. */
  drainTimeoutMs: number;
  /** Moved agents reconnect within this (each after a random part of it). */
  moveWithinMs: number;
  detector: DetectorSettings;
}

export const PEER_DEFAULTS: PeerSettings = {
  gossipMs: 1_000,
  registryMs: 5_000,
  joinTimeoutMs: 3_000,
  rebalancePerSecond: 64,
  drainTimeoutMs: 10_000,
  moveWithinMs: 2_000,
  detector: DETECTOR_DEFAULTS,
};

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
 * (a new generation at every start), keeps a link to every other server
 * (from the store's registry and --peers), gossips membership and applied
 * revisions once a second, tells every peer of each release it commits at
 * once, catches up when a peer has applied more, judges who is alive, tells
 * agents which servers there are, and moves agents to servers with fewer.
 */
export class PeerNode {
  readonly membership: Membership;
  private readonly options: PeerNodeOptions;
  private readonly settings: PeerSettings;
  private readonly hub: Hub;
  private readonly lag = new LoopLag();
  private readonly links = new Map<string, PeerLink>();
  /** Addresses that turned out to be this server itself. */
  private readonly selfAddrs = new Set<string>();
  /** Addresses that turned out to be a server already linked under another address. */
  private readonly aliases = new Map<string, string>();
  /** What each peer said it applied, per environment (from its own gossip). */
  private readonly vectors = new Map<string, Map<string, number>>();
  private listener?: PeerListener;
  private gossipTimer?: NodeJS.Timeout;
  private registryTimer?: NodeJS.Timeout;
  private secret = '';
  private lastPeers = '';
  private lastPeersAt = 0;
  private lastLoads = new Map<string, number>();
  /** The last step of rebalancing: no next step before `next`, nor before its target has gossiped since `arrived`. */
  private lastMove: { to: string; next: number; arrived: number } | undefined;
  private catchingUp = false;
  private draining: Promise<void> | undefined;
  private stopped = false;
  private readonly warn: RateLimitedLog;
  advertise = '';
  /** Serve the peer port with TLS, and dial the others with TLS (set before start). */
  tls: ServerTlsMaterial | undefined;

  constructor(options: PeerNodeOptions) {
    this.options = options;
    this.settings = { ...PEER_DEFAULTS, ...options.settings, detector: { ...PEER_DEFAULTS.detector, ...options.settings?.detector } };
    this.hub = options.hub;
    this.membership = new Membership({
      id: options.serverId, gen: 0, addrs: options.addrs, peer: '', state: 'alive', agents: 0, head: options.hub.applied,
    }, this.settings.detector);
    this.warn = new RateLimitedLog(options.log, 1, 5);
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
    this.secret = secret;
    const listener = new PeerListener({
      serverId: this.options.serverId,
      listen: this.options.listen,
      login: { ...this.options.login, peerVerifier: verifier },
      identity: this.options.store.identity,
      foreign: (addr, id, why) => this.foreign(addr, id, why),
      receive: { hello: receiveLimits(this.options.limits, 'hello'), peer: receiveLimits(this.options.limits, 'admin') },
      pending: { total: this.options.limits.peerPending, perAddress: this.options.limits.peerPendingPerAddress },
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
    this.selfAddrs.add(this.advertise);
    this.membership.update({ head: this.hub.applied });
    this.membership.self.peer = this.advertise;
    this.membership.self.gen = await this.options.store.members.register(this.record());
    this.hub.onCommit((release) => this.tellPeers(release));
    const registered = await this.options.store.members.list().catch(() => [] as MemberRecord[]);
    for (const seed of this.options.seeds) this.link(seed);
    this.learnRegistry(registered);
    if (this.stopped) return;
    this.lag.start();
    await this.join(registered);
    if (this.stopped) return;
    this.gossipTimer = setInterval(() => this.guard('gossip', () => this.round()), this.settings.gossipMs);
    this.gossipTimer.unref();
    this.registryTimer = setInterval(() => this.guard('the registry', () => this.registry()), this.settings.registryMs);
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
      this.sendGossip();
      await new Promise((r) => setTimeout(r, 50));
    }
    const heard = fresh.filter((r) => this.membership.view(r.id) !== undefined).map((r) => r.id);
    const head = this.clusterHead();
    if (head > this.hub.applied) await this.hub.catchUp(head);
    this.options.log(`peers: generation ${this.gen}; ${heard.length} of ${fresh.length} registered servers answered${heard.length > 0 ? ` (${heard.join(', ')})` : ''}; applied revision ${this.hub.applied} (the cluster's head when it joined: ${head}) before serving agents`);
  }

  /** The highest revision any server (this one included) says it has applied. */
  clusterHead(): number {
    return Math.max(this.hub.applied, ...this.membership.others().filter((v) => v.entry.state !== 'left').map((v) => v.entry.head));
  }

  private link(addr: string): void {
    if (addr === '' || this.selfAddrs.has(addr) || this.links.has(addr) || this.stopped) return;
    const alias = this.aliases.get(addr);
    if (alias !== undefined && [...this.links.values()].some((l) => l.id === alias)) return;
    const link = new PeerLink(addr, {
      serverId: this.options.serverId,
      secret: this.secret,
      ...(this.tls === undefined ? {} : { tls: { rejectUnauthorized: false } as tls.ConnectionOptions }),
      limits: receiveLimits(this.options.limits, 'admin'),
      connectTimeoutMs: 5_000,
      storeCheck: (check, at) => this.answerStoreCheck(check, at),
    }, {
      up: (l, id) => this.linkUp(l, id),
      down: () => undefined,
    });
    this.links.set(addr, link);
    link.start();
  }

  private linkUp(link: PeerLink, id: string): void {
    if (id === this.options.serverId) {
      // This server's own port, under another name.
      link.stop();
      this.links.delete(link.addr);
      this.selfAddrs.add(link.addr);
      return;
    }
    for (const other of this.links.values()) {
      if (other !== link && other.id === id && other.up) {
        // One link per server: the one already up stays.
        link.stop();
        this.links.delete(link.addr);
        this.aliases.set(link.addr, id);
        return;
      }
    }
    this.sendGossip(link);
  }

  /**
   * The peer port at `addr` asks this server to prove that it reads the
   * same store: the same store id, and the row just written there found in
   * this server's store. Otherwise the other server is not a peer (said
   * once), and the link is refused with STORE_MISMATCH.
   */
  private async answerStoreCheck(check: StoreCheck, addr: string): Promise<string> {
    const identity = this.options.store.identity;
    const ours = await identity.id();
    let why: string | undefined;
    if (check.store !== ours) {
      why = `it reads store ${check.store}; this server reads store ${ours} (${this.options.store.description})`;
    } else {
      const secret = check.key.length > 64 ? undefined : await identity.answer(check.key);
      if (secret !== undefined) return proofMac(secret, check.key);
      why = `the row it has just written to its store is not in this server's (store ${ours}, ${this.options.store.description}): both carry store id ${ours}, so one is a copy of the other, not the same database`;
    }
    this.foreign(addr, '', why);
    throw new ProtocolError(WireError.STORE_MISMATCH, why);
  }

  /** Servers of another store, said once each (per address and reason) while this process runs. */
  private readonly foreignSaid = new Set<string>();
  private foreign(addr: string, id: string, why: string): void {
    // Per server id when known (its source port changes at every attempt), else per address.
    const key = `${id === '' ? addr : id}\u0000${why}`;
    if (this.foreignSaid.has(key) || this.foreignSaid.size >= 1024) return;
    this.foreignSaid.add(key);
    this.options.log(`peers: refused ${id === '' ? '' : `server ${id} at `}${addr} as a peer: ${why}; it is never gossiped nor listed to agents`);
  }

  private learnRegistry(rows: MemberRecord[]): void {
    const forget = Date.now() - this.settings.detector.forgetAfterMs;
    for (const row of rows) {
      if (row.id === this.options.serverId) continue;
      if (row.state === 'left' || row.heartbeat < forget) continue;
      this.link(row.peer);
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
    for (const [addr, link] of this.links) {
      if (wanted.has(addr)) continue;
      trace('peers', `link to ${addr} closed: no server is known there any more`);
      link.stop();
      this.links.delete(addr);
    }
  }

  /** Once a second: heartbeat, gossip, failure detection, catch-up, agents' peer list, rebalancing. */
  private round(): void {
    if (this.stopped) return;
    this.lag.sample();
    this.membership.update({ agents: this.options.agents.agents(), head: this.hub.applied });
    this.membership.beat();
    this.sendGossip();
    for (const change of this.membership.judge(this.lag.lagMs)) {
      const how = change.to === 'alive' ? 'is back' : change.to === 'suspect' ? `is suspect (silent ${change.silentMs} ms)` : `is declared dead (silent ${change.silentMs} ms)`;
      this.options.log(`peers: ${change.id} ${how}${this.lag.lagMs > 0 ? `; this server's own event loop ran up to ${Math.round(this.lag.lagMs)} ms late` : ''}`);
    }
    // Servers learned of through gossip are linked to as well.
    for (const view of this.membership.others()) if (view.entry.state !== 'left') this.link(view.entry.peer);
    this.maybeCatchUp();
    this.pushPeers();
    this.rebalance();
  }

  private sendGossip(only?: PeerLink): void {
    const members = this.membership.entries();
    const envs = this.hub.state.info();
    for (const link of only === undefined ? this.links.values() : [only]) {
      if (!link.up) continue;
      const sent = link.sentEnvs;
      const changed: [string, number][] = [];
      const now = new Map<string, number>();
      for (const e of envs) {
        now.set(e.env, e.rev);
        if (sent?.get(e.env) !== e.rev) changed.push([e.env, e.rev]);
      }
      const gone = sent === undefined ? [] : [...sent.keys()].filter((env) => !now.has(env));
      const message: Gossip = { t: MessageType.Gossip, members, envs: changed, ...(gone.length > 0 ? { gone } : {}) };
      link.send(message);
      link.sentEnvs = now;
    }
  }

  private onGossip(from: string, message: Gossip): void {
    if (this.stopped) return;
    const { conflict } = this.membership.merge(message.members);
    if (conflict !== undefined) {
      this.warn.log(`peers: another process registered this server's id ${conflict.id} with a newer generation (${conflict.gen}, this one ${this.gen}) at ${conflict.peer}: two servers are configured with one id`);
    }
    let vector = this.vectors.get(from);
    if (vector === undefined) this.vectors.set(from, (vector = new Map()));
    for (const [env, rev] of message.envs) vector.set(env, rev);
    for (const env of message.gone ?? []) vector.delete(env);
    this.maybeCatchUp();
  }

  private onNotice(from: string, release: Release): void {
    if (this.stopped) return;
    const stored = storedOf(release);
    trace('peers', `notice ${release.env}@${release.rev} from ${from}`);
    this.hub.learned(stored).catch((err: unknown) => this.warn.log(`peers: the release ${release.env}@${release.rev} from ${from} waits for the store: ${errorText(err)}`));
  }

  /** A release this server committed: every peer hears of it now, not at the next gossip. */
  private tellPeers(stored: StoredRelease): void {
    // With its chain value: the receiver checks the whole release against what it holds.
    const frame = encodeMessage(releaseMessage(stored, stored.prev));
    for (const link of this.links.values()) if (link.up) link.write(frame);
  }

  private maybeCatchUp(): void {
    if (this.catchingUp) return;
    const head = this.clusterHead();
    if (head <= this.hub.applied) return;
    this.catchingUp = true;
    this.hub.catchUp(head).catch((err: unknown) => {
      this.warn.log(`peers: another server has applied revision ${head}, this one ${this.hub.applied}, and the store cannot be read: ${errorText(err)}`);
    }).finally(() => {
      this.catchingUp = false;
    });
  }

  /** Servers agents may use: alive or suspect ones that are not leaving (this one included while it is not). */
  private peerServers(): PeerServer[] {
    const out: PeerServer[] = [];
    const self = this.membership.self;
    if (self.addrs.length > 0) out.push({ addr: self.addrs[0]!, agents: self.agents, state: self.state });
    for (const view of this.membership.others()) {
      const state = Membership.shownState(view);
      if ((state === 'alive' || state === 'suspect') && view.entry.addrs.length > 0) out.push({ addr: view.entry.addrs[0]!, agents: view.entry.agents, state });
    }
    return out;
  }

  /** Agents hear of the servers whenever the set or their states change, and of their loads when those moved a lot (at most every 10 s). */
  private pushPeers(force = false): void {
    const servers = this.peerServers();
    const shape = servers.map((s) => `${s.addr}=${s.state}`).sort().join(',');
    const loadsMoved = servers.some((s) => {
      const before = this.lastLoads.get(s.addr) ?? 0;
      return Math.abs(s.agents - before) > Math.max(10, before * 0.2);
    });
    const now = Date.now();
    if (!force && shape === this.lastPeers && !(loadsMoved && now - this.lastPeersAt > 10_000)) return;
    this.lastPeers = shape;
    this.lastPeersAt = now;
    this.lastLoads = new Map(servers.map((s) => [s.addr, s.agents]));
    this.options.agents.setPeers(servers);
  }

  /**
   * Moves agents from this server to the least loaded one when the rule of
   * planRebalance says so, in steps: at most rebalancePerSecond a second,
   * and each step waits until the agents it moved could have arrived and
   * their new server has gossiped its count since (or is no longer alive),
   * so that the next step sees them where they are.
   */
  private rebalance(): void {
    const self = this.membership.self;
    if (self.state !== 'alive') return;
    const now = Date.now();
    if (this.lastMove !== undefined) {
      const view = this.membership.view(this.lastMove.to);
      if (now < this.lastMove.next || (view?.health === 'alive' && view.heardAt <= this.lastMove.arrived)) return;
      this.lastMove = undefined;
    }
    const stepMs = Math.max(3 * this.settings.gossipMs, this.settings.moveWithinMs + this.settings.gossipMs);
    const plan = planRebalance(self, this.membership.candidates(), Math.floor((this.settings.rebalancePerSecond * stepMs) / 1000));
    if (plan === undefined) return;
    const { to, count, share } = plan;
    this.lastMove = { to: to.id, next: now + stepMs, arrived: now + this.settings.moveWithinMs + 500 };
    void this.options.agents.move(count, to.addrs[0], this.settings.moveWithinMs, `rebalancing to ${to.id}`).then((moved) => {
      if (moved > 0) this.options.log(`peers: moving ${moved} agents to ${to.id} (${to.agents} agents; this server ${self.agents}, share ${Math.round(share * 10) / 10})`);
    }, (err: unknown) => reportFault('moving agents', err));
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
  async clusterStatus(env: string | undefined, local: LocalStatus, agent?: string): Promise<ClusterStatus> {
    const now = Date.now();
    const self = this.membership.self;
    const byId = new Map<string, PeerLink>();
    for (const link of this.links.values()) if (link.up && link.id !== undefined) byId.set(link.id, link);
    const views = this.membership.others().sort((a, b) => (a.entry.id < b.entry.id ? -1 : 1));
    const answers = await Promise.all(views.map(async (v) => {
      const link = byId.get(v.entry.id);
      if (link === undefined || v.health === 'dead' || v.entry.state === 'left') return undefined;
      return link.status(env, agent).catch(() => undefined);
    }));
    const head = this.clusterHead();
    const servers: ServerRow[] = [
      { id: self.id, gen: self.gen, state: self.state, addrs: self.addrs, head: this.hub.applied, lag: head - this.hub.applied, agents: local.agentsTotal, heardMs: 0, answered: true },
      ...views.map((v, i) => {
        const answer = answers[i];
        const applied = answer?.head ?? v.entry.head;
        return {
          id: v.entry.id, gen: v.entry.gen, state: Membership.shownState(v), addrs: v.entry.addrs, head: applied, lag: Math.max(0, head - applied),
          agents: answer?.agentsTotal ?? v.entry.agents, heardMs: Math.max(0, now - v.heardAt), answered: answer !== undefined,
        };
      }),
    ];
    const parts = [local.envs, ...answers.filter((a): a is LocalStatus => a !== undefined).map((a) => a.envs)];
    const out: ClusterStatus = { head, servers, envs: mergeRevisions(parts, LAGGING_SHOWN) };
    if (agent !== undefined) {
      out.found = [
        ...(local.found ?? []).map((a) => ({ ...a, server: self.id })),
        ...views.flatMap((v, i) => (answers[i]?.found ?? []).map((a) => ({ ...a, server: v.entry.id }))),
      ].slice(0, FOUND_AT_MOST);
    }
    return out;
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
    this.sendGossip();
    this.pushPeers(true);
    await this.options.store.members.heartbeat({ ...this.record(), gen: this.gen }).catch(() => false);
    if (others.length > 0) {
      const start = Date.now();
      const moved = await this.options.agents.move(Number.MAX_SAFE_INTEGER, undefined, this.settings.moveWithinMs, 'server draining');
      this.options.log(`peers: draining: told ${moved} agents to move to the ${others.length} other servers`);
      // Gossip goes on meanwhile. The moved agents reconnect within moveWithinMs; done once every
      // other server has gossiped since then (its count includes them), or at the timeout.
      const settled = start + this.settings.moveWithinMs + 500;
      const deadline = start + this.settings.drainTimeoutMs;
      const heardSince = (): boolean => this.membership.others().filter((v) => v.health === 'alive' && v.entry.state === 'alive').every((v) => v.heardAt > settled);
      let lastMove = Date.now();
      while (Date.now() < deadline && (this.options.agents.agents() > 0 || Date.now() < settled || !heardSince())) {
        await new Promise((r) => setTimeout(r, 100));
        // Agents that connected meanwhile (configured with this server alone, or choosing from an old list) are moved too.
        if (Date.now() - lastMove >= 1_000 && this.options.agents.agents() > 0) {
          lastMove = Date.now();
          await this.options.agents.move(Number.MAX_SAFE_INTEGER, undefined, this.settings.moveWithinMs, 'server draining');
        }
      }
      const elsewhere = this.membership.others().filter((v) => v.entry.state === 'alive').reduce((n, v) => n + v.entry.agents, 0);
      this.options.log(`peers: drained in ${Date.now() - start} ms: the other servers hold ${elsewhere} agents`);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    clearInterval(this.gossipTimer);
    clearInterval(this.registryTimer);
    this.membership.update({ state: 'left', agents: 0 });
    this.sendGossip();
    this.stopped = true;
    this.lag.stop();
    await this.options.store.members.heartbeat({ ...this.record(), gen: this.gen }).catch(() => false);
    // Let the last gossip leave before the links close.
    await new Promise((r) => setTimeout(r, 50));
    for (const link of this.links.values()) link.stop();
    await this.listener?.close();
  }

  setTls(material: ServerTlsMaterial): void {
    this.tls = material;
    this.listener?.setTls(material);
  }

  /** Members as this server sees them, for logs and tests. */
  entries(): MemberEntry[] {
    return this.membership.entries();
  }

  private guard(what: string, work: () => void | Promise<void>): void {
    try {
      const result = work();
      if (result instanceof Promise) result.catch((err: unknown) => this.warn.log(`peers: ${what}: ${errorText(err)}`));
    } catch (err) {
      reportFault(`peers: ${what}`, err);
    }
  }
}
