import type { EnvAgents, PeerServer } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { rebalance, type RebalanceStep } from './balance.js';
import { Membership } from './membership.js';
import type { PeerSettings } from './settings.js';

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

/** Servers agents may use: alive or suspect ones that are not leaving (this one included while it is not). */
export function peerServers(membership: Membership): PeerServer[] {
  const out: PeerServer[] = [];
  const self = membership.self;
  if (self.addrs.length > 0) out.push({ addr: self.addrs[0], agents: self.agents, state: self.state });
  for (const view of membership.others()) {
    const state = Membership.shownState(view);
    if ((state === 'alive' || state === 'suspect') && view.entry.addrs.length > 0) out.push({ addr: view.entry.addrs[0], agents: view.entry.agents, state });
  }
  return out;
}

/**
 * Where this server's agents go: which servers they are told of, and moving
 * some of them to a less loaded server (the steps of `rebalance`).
 */
export class AgentPlacement {
  private readonly membership: Membership;
  private readonly agents: AgentSide;
  private readonly settings: PeerSettings;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private lastPeers = '';
  private lastPeersAt = 0;
  private lastLoads = new Map<string, number>();
  private last: RebalanceStep | undefined;

  constructor(membership: Membership, agents: AgentSide, settings: PeerSettings, log: (line: string) => void, now: () => number = Date.now) {
    this.membership = membership;
    this.agents = agents;
    this.settings = settings;
    this.log = log;
    this.now = now;
  }

  /** Agents hear of the servers whenever the set or their states change, and of their loads when those moved a lot (at most every 10 s). */
  tellServers(force = false): void {
    const servers = peerServers(this.membership);
    const shape = servers.map((s) => `${s.addr}=${s.state}`).sort().join(',');
    const loadsMoved = servers.some((s) => {
      const before = this.lastLoads.get(s.addr) ?? 0;
      return Math.abs(s.agents - before) > Math.max(10, before * 0.2);
    });
    const now = this.now();
    if (!force && shape === this.lastPeers && !(loadsMoved && now - this.lastPeersAt > 10_000)) return;
    this.lastPeers = shape;
    this.lastPeersAt = now;
    this.lastLoads = new Map(servers.map((s) => [s.addr, s.agents]));
    this.agents.setPeers(servers);
  }

  /** Moves agents to the least loaded server when the rule says so (balance.ts). */
  rebalance(): void {
    const self = this.membership.self;
    const last = this.last;
    const target = last === undefined ? undefined : this.membership.view(last.to);
    const decision = rebalance({ self, candidates: this.membership.candidates(), last, target }, this.settings, this.now());
    this.last = decision.last;
    const move = decision.move;
    if (move === undefined) return;
    const { to, count, share } = move;
    void this.agents.move(count, to.addrs[0], this.settings.moveWithinMs, `rebalancing to ${to.id}`).then((moved) => {
      if (moved > 0) this.log(`peers: moving ${moved} agents to ${to.id} (${to.agents} agents; this server ${self.agents}, share ${Math.round(share * 10) / 10})`);
    }, (err: unknown) => reportFault('moving agents', err));
  }
}
