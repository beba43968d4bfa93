/**
 * The rebalancing rule: whether a server moves some of its agents to another,
 * to which, and how many, and when the next step may go. Pure: loads in, a
 * decision out (no sockets; the clock is passed in).
 */

/** A server as the rule sees it: its id, its agents, where agents reach it. */
export interface ServerLoad {
  id: string;
  agents: number;
  addrs: readonly string[];
}

export interface RebalanceMove {
  /** The least loaded other server. */
  to: ServerLoad;
  count: number;
  /** The mean load of the servers agents may use. */
  share: number;
}

/**
 * Above its share by this factor, and the target below its share by the
 * other, before agents move: in a big cluster, loads that differ by a few
 * per cent stay as they are (every move costs the agent a reconnect).
 */
export const OVER_SHARE = 1.1;
export const UNDER_SHARE = 0.95;

/**
 * `self` moves agents to the least loaded other server that agents can
 * reach (`candidates` are the servers agents may use, `self` among them)
 * when all of these hold:
 *
 * - it holds at least 2 agents more than that server: a move of one agent
 *   then leaves the two at most as far apart as before, the other way round,
 *   so two servers never pass agents back and forth; a difference of one
 *   (2 and 1 of 3 agents) is as even as it gets;
 * - it holds more than OVER_SHARE × the share, and that server less than
 *   UNDER_SHARE × the share (the hysteresis that keeps a big cluster quiet).
 *
 * Every server decides from the same gossiped loads, so the servers that
 * move agents at once all move them to the same one: each moves its part of
 * what that server lacks (in proportion to how far each is above the share),
 * never more than half the difference between the two, nor more than
 * `most`. When every part rounds down to nothing, the most loaded of them
 * moves one. With a few agents this ends in an even spread (3 agents on two
 * servers: 2 and 1); with thousands, within about 10 % of the share.
 */
export function planRebalance(self: ServerLoad, candidates: readonly ServerLoad[], most: number): RebalanceMove | undefined {
  if (most < 1) return undefined;
  const servers = [self, ...candidates.filter((c) => c.id !== self.id)];
  const takers = servers.filter((c) => c.id !== self.id && c.addrs.length > 0);
  if (takers.length === 0) return undefined;
  const share = servers.reduce((n, c) => n + c.agents, 0) / servers.length;
  const to = takers.reduce((a, b) => (before(b, a, 1) ? b : a));
  if (to.agents >= share * UNDER_SHARE) return undefined;
  const gives = (s: ServerLoad): boolean => s.id !== to.id && s.agents - to.agents >= 2 && s.agents > share * OVER_SHARE;
  if (!gives(self)) return undefined;
  const givers = servers.filter(gives);
  const excess = givers.reduce((n, g) => n + (g.agents - share), 0);
  const part = ((share - to.agents) * (self.agents - share)) / excess;
  let count = Math.floor(Math.min(part, self.agents - share, (self.agents - to.agents) / 2));
  if (count < 1) {
    if (givers.reduce((a, b) => (before(b, a, -1) ? b : a)).id !== self.id) return undefined;
    count = 1;
  }
  return { to, count: Math.min(count, most), share };
}

/** `a` comes before `b`: fewer agents (`way` 1) or more (`way` -1), then the lower id. */
function before(a: ServerLoad, b: ServerLoad, way: 1 | -1): boolean {
  return a.agents === b.agents ? a.id < b.id : (a.agents - b.agents) * way < 0;
}

/** The last step of rebalancing: no next step before `next`, nor before its target has gossiped since `arrived`. */
export interface RebalanceStep {
  to: string;
  next: number;
  arrived: number;
}

/** What paces the steps. */
export interface RebalancePace {
  gossipMs: number;
  moveWithinMs: number;
  rebalancePerSecond: number;
}

export interface RebalanceInput {
  self: ServerLoad & { state: string };
  /** The servers agents may use, `self` among them. */
  candidates: readonly ServerLoad[];
  /** The step taken last, if any. */
  last: RebalanceStep | undefined;
  /** How the last step's target is heard of now (undefined: not at all). */
  target: { health: string; heardAt: number } | undefined;
}

/**
 * Which agents move now: the rule of planRebalance, taken in steps. At most
 * rebalancePerSecond a second, and each step waits until the agents it moved
 * could have arrived and their new server has gossiped its count since (or
 * is no longer alive), so that the next step sees them where they are.
 * Returns the step to remember and, when agents move now, the move. Pure:
 * the clock is `now`.
 */
export function rebalance(input: RebalanceInput, pace: RebalancePace, now: number): { last: RebalanceStep | undefined; move?: RebalanceMove } {
  const { self, last, target } = input;
  if (self.state !== 'alive') return { last };
  if (last !== undefined && (now < last.next || (target?.health === 'alive' && target.heardAt <= last.arrived))) return { last };
  const stepMs = Math.max(3 * pace.gossipMs, pace.moveWithinMs + pace.gossipMs);
  const move = planRebalance(self, input.candidates, Math.floor((pace.rebalancePerSecond * stepMs) / 1000));
  if (move === undefined) return { last: undefined };
  return { last: { to: move.to.id, next: now + stepMs, arrived: now + pace.moveWithinMs + 500 }, move };
}
