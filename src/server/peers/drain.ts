import type { AgentSide } from './agents.js';
import type { Membership } from './membership.js';
import type { PeerSettings } from './settings.js';

const DRAIN_REASON = 'server draining';

/**
 * The agents' part of a graceful stop: once the server says it is
 * draining, every agent is told to move (each to a server chosen by load,
 * spread over moveWithinMs), agents that connect meanwhile are told again,
 * and the drain waits until every other server has gossiped a count that
 * includes them (drainTimeoutMs at most).
 */
export class AgentDrain {
  private readonly membership: Membership;
  private readonly agents: AgentSide;
  private readonly settings: PeerSettings;
  private readonly log: (line: string) => void;

  constructor(membership: Membership, agents: AgentSide, settings: PeerSettings, log: (line: string) => void) {
    this.membership = membership;
    this.agents = agents;
    this.settings = settings;
    this.log = log;
  }

  /** Moves the agents to the `others` other servers and waits for them to arrive there. */
  async run(others: number): Promise<void> {
    const { moveWithinMs, drainTimeoutMs } = this.settings;
    const start = Date.now();
    const moved = await this.agents.move(Number.MAX_SAFE_INTEGER, undefined, moveWithinMs, DRAIN_REASON);
    this.log(`peers: draining: told ${moved} agents to move to the ${others} other servers`);
    // Gossip goes on meanwhile. The moved agents reconnect within moveWithinMs; done once every
    // other server has gossiped since then (its count includes them), or at the timeout.
    const settled = start + moveWithinMs + 500;
    const deadline = start + drainTimeoutMs;
    const heardSince = (): boolean => this.membership.others().filter((v) => v.health === 'alive' && v.entry.state === 'alive').every((v) => v.heardAt > settled);
    let lastMove = Date.now();
    while (Date.now() < deadline && (this.agents.agents() > 0 || Date.now() < settled || !heardSince())) {
      await new Promise((r) => setTimeout(r, 100));
      // Agents that connected meanwhile (configured with this server alone, or choosing from an old list) are moved too.
      if (Date.now() - lastMove >= 1_000 && this.agents.agents() > 0) {
        lastMove = Date.now();
        await this.agents.move(Number.MAX_SAFE_INTEGER, undefined, moveWithinMs, DRAIN_REASON);
      }
    }
    const elsewhere = this.membership.others().filter((v) => v.entry.state === 'alive').reduce((n, v) => n + v.entry.agents, 0);
    this.log(`peers: drained in ${Date.now() - start} ms: the other servers hold ${elsewhere} agents`);
  }
}
