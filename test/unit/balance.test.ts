/**
 * The rebalancing rule (planRebalance), without a socket: a small cluster
 * ends evenly spread (an odd count settles one apart), a big one keeps its
 * hysteresis, a step never exceeds its limit, and servers that all decide at
 * once from the same loads converge without passing agents back and forth.
 * The steps (rebalance, with a clock of the test's own): one at a time, each
 * waiting until its agents could have arrived and their server has said so.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planRebalance, rebalance, type RebalancePace, type ServerLoad } from '../../src/server/peers/balance.js';

const server = (id: string, agents: number, addrs = [`${id}:7400`]): ServerLoad => ({ id, agents, addrs });

/** The loads after every server has taken one step, each deciding from the same loads (as from one round of gossip). */
function round(loads: ServerLoad[], most: number): { next: ServerLoad[]; moves: [string, string, number][] } {
  const moves: [string, string, number][] = [];
  for (const self of loads) {
    const plan = planRebalance(self, loads, most);
    if (plan !== undefined) moves.push([self.id, plan.to.id, plan.count]);
  }
  const next = loads.map((s) => ({ ...s }));
  for (const [from, to, count] of moves) {
    next.find((s) => s.id === from)!.agents -= count;
    next.find((s) => s.id === to)!.agents += count;
  }
  return { next, moves };
}

/** Rounds until no server moves (at most `limit`); returns the loads and every move made. */
function settle(agents: number[], most = 192, limit = 50): { loads: number[]; rounds: number; moves: [string, string, number][] } {
  let loads = agents.map((n, i) => server(String.fromCharCode(65 + i), n));
  const all: [string, string, number][] = [];
  for (let i = 0; i < limit; i++) {
    const { next, moves } = round(loads, most);
    if (moves.length === 0) return { loads: loads.map((s) => s.agents), rounds: i, moves: all };
    all.push(...moves);
    loads = next;
  }
  assert.fail(`still moving after ${limit} rounds: ${loads.map((s) => s.agents).join('/')}`);
}

describe('planRebalance', () => {
  test('after a rolling restart of two servers, 3 agents on one: one moves, and 2 and 1 stays', () => {
    const plan = planRebalance(server('A', 3), [server('A', 3), server('B', 0)], 192);
    assert.equal(plan?.to.id, 'B');
    assert.equal(plan?.count, 1);
    assert.equal(planRebalance(server('A', 2), [server('A', 2), server('B', 1)], 192), undefined);
    assert.equal(planRebalance(server('B', 1), [server('A', 2), server('B', 1)], 192), undefined);
  });

  test('4 agents on one of two servers: two move at once, and 2 and 2 stays', () => {
    assert.equal(planRebalance(server('A', 4), [server('A', 4), server('B', 0)], 192)?.count, 2);
    assert.deepEqual(settle([4, 0]), { loads: [2, 2], rounds: 1, moves: [['A', 'B', 2]] });
  });

  test('every small cluster ends with its servers at most one agent apart, and no agent moves back', () => {
    for (let servers = 2; servers <= 4; servers++) {
      for (let total = 0; total <= 12; total++) {
        // Every way to put `total` agents on the servers with the first holding the most (a restart's aftermath), and spread ones.
        const starts = [[total, ...Array<number>(servers - 1).fill(0)], Array.from({ length: servers }, (_, i) => Math.floor(total / servers) + (i < total % servers ? 1 : 0))];
        for (let first = 0; first <= total; first++) starts.push([first, total - first, ...Array<number>(servers - 2).fill(0)]);
        for (const start of starts) {
          const { loads, moves } = settle(start);
          assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `${start.join('/')} ended ${loads.join('/')}`);
          assert.equal(loads.reduce((a, b) => a + b, 0), total);
          const pairs = new Set(moves.map(([from, to]) => `${from}>${to}`));
          for (const [from, to] of moves) assert.ok(!pairs.has(`${to}>${from}`), `${start.join('/')}: agents went ${from}>${to} and back (${JSON.stringify(moves)})`);
        }
      }
    }
  });

  test('from any start, servers that all decide at once settle within a few rounds, and no agent moves back', () => {
    let seed = 7;
    const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;
    for (let i = 0; i < 2_000; i++) {
      const servers = 2 + Math.floor(random() * 5);
      const start = Array<number>(servers).fill(0);
      // Half the agents on the first server (the one that stayed up), the rest anywhere.
      for (let total = Math.floor(random() * 40); total > 0; total--) start[random() < 0.5 ? 0 : Math.floor(random() * servers)]++;
      const { loads, rounds, moves } = settle(start);
      assert.ok(rounds <= 12, `${start.join('/')} took ${rounds} rounds`);
      const pairs = new Set(moves.map(([from, to]) => `${from}>${to}`));
      for (const [from, to] of moves) assert.ok(!pairs.has(`${to}>${from}`), `${start.join('/')}: agents went ${from}>${to} and back`);
      const total = loads.reduce((a, b) => a + b, 0);
      if (total <= 3 * servers) assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `${start.join('/')} ended ${loads.join('/')}`);
      else assert.ok(Math.max(...loads) <= Math.max((total / servers) * 1.1, Math.min(...loads) + 1), `${start.join('/')} ended ${loads.join('/')}`);
    }
  });

  test('a big cluster keeps its hysteresis: within about 10 % of the share nothing moves', () => {
    assert.equal(planRebalance(server('A', 10_900), [server('A', 10_900), server('B', 9_600), server('C', 9_500)], 192), undefined);
    assert.equal(planRebalance(server('A', 1_050), [server('A', 1_050), server('B', 950)], 192), undefined);
    // Clearly above: the step is as large as the limit allows.
    const plan = planRebalance(server('A', 20_000), [server('A', 20_000), server('B', 5_000), server('C', 5_000)], 192);
    assert.deepEqual([plan?.to.id, plan?.count], ['B', 192]);
    // And it stops once within the hysteresis, not at an exact split.
    const { loads } = settle([30_000, 0], 192, 1_000);
    assert.ok(loads[0] <= 15_000 * 1.1 && loads[0] > 15_000 * 1.1 - 192, loads.join('/'));
  });

  test('moves to the least loaded server that agents can reach, and never with no limit', () => {
    const candidates = [server('A', 6), server('B', 0, []), server('C', 1), server('D', 2)];
    assert.equal(planRebalance(candidates[0], candidates, 192)?.to.id, 'C');
    assert.equal(planRebalance(server('A', 6), [server('A', 6), server('B', 0, [])], 192), undefined);
    assert.equal(planRebalance(server('A', 6), [server('A', 6), server('B', 0)], 0), undefined);
    assert.equal(planRebalance(server('A', 6), [server('A', 6)], 192), undefined);
    // A server missing from the candidates it is given still counts in the share.
    assert.equal(planRebalance(server('A', 6), [server('B', 0)], 192)?.count, 3);
  });

  test('three servers that all fill the one that came back take one step each, and overshoot by one at most', () => {
    assert.deepEqual(settle([4, 4, 4, 0]).loads, [3, 3, 3, 3]);
    const { loads } = settle([2, 2, 0]);
    assert.deepEqual([...loads].sort(), [1, 1, 2]);
    assert.deepEqual(settle([5, 5, 0]).loads.slice().sort(), [3, 3, 4]);
  });
});

describe('the steps of rebalancing', () => {
  // Steps every 3 s (3 gossips, or the move spread and a gossip), 64 agents a second: 192 a step.
  const pace: RebalancePace = { gossipMs: 1000, moveWithinMs: 2000, rebalancePerSecond: 64 };
  const self = { ...server('A', 1000), state: 'alive' };
  const candidates = [self, server('B', 0)];

  test('a step moves at most its share of the rate, and is remembered', () => {
    const { move, last } = rebalance({ self, candidates, last: undefined, target: undefined }, pace, 10_000);
    assert.equal(move?.to.id, 'B');
    assert.equal(move?.count, 192);
    assert.deepEqual(last, { to: 'B', next: 13_000, arrived: 12_500 });
  });

  test('the next step waits for its time, and for the target to gossip after the agents could have arrived', () => {
    const last = { to: 'B', next: 13_000, arrived: 12_500 };
    const early = rebalance({ self, candidates, last, target: { health: 'alive', heardAt: 12_900 } }, pace, 12_999);
    assert.equal(early.move, undefined);
    assert.deepEqual(early.last, last, 'the step is kept');
    const unheard = rebalance({ self, candidates, last, target: { health: 'alive', heardAt: 12_500 } }, pace, 20_000);
    assert.equal(unheard.move, undefined, 'B has not gossiped since the agents could have arrived');
    assert.deepEqual(unheard.last, last);
    const heard = rebalance({ self, candidates, last, target: { health: 'alive', heardAt: 12_501 } }, pace, 13_000);
    assert.equal(heard.move?.count, 192);
    assert.deepEqual(heard.last, { to: 'B', next: 16_000, arrived: 15_500 });
  });

  test('a target that is no longer alive (or no longer known) does not hold the next step', () => {
    const last = { to: 'B', next: 13_000, arrived: 12_500 };
    assert.notEqual(rebalance({ self, candidates, last, target: { health: 'suspect', heardAt: 0 } }, pace, 13_000).move, undefined);
    assert.notEqual(rebalance({ self, candidates, last, target: undefined }, pace, 13_000).move, undefined);
  });

  test('nothing to move forgets the last step; a server that is not alive moves nothing and keeps it', () => {
    const last = { to: 'B', next: 13_000, arrived: 12_500 };
    const even = [self, server('B', 1000)];
    assert.deepEqual(rebalance({ self, candidates: even, last, target: undefined }, pace, 13_000), { last: undefined });
    const draining = { ...self, state: 'draining' };
    assert.deepEqual(rebalance({ self: draining, candidates, last, target: undefined }, pace, 99_000), { last });
  });

  test('no rate, no move', () => {
    assert.equal(rebalance({ self, candidates, last: undefined, target: undefined }, { ...pace, rebalancePerSecond: 0 }, 0).move, undefined);
  });
});
