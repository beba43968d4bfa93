/**
 * The peer node's parts that decide without a socket: the cluster's part of
 * `status` from a membership and the servers' answers, the servers agents
 * are told of, and when they are told again (with a clock of the test's own).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LocalStatus, MemberEntry, PeerServer } from '../../src/protocol/index.js';
import { AgentPlacement, peerServers, type AgentSide } from '../../src/server/peers/agents.js';
import { Membership } from '../../src/server/peers/membership.js';
import { PEER_DEFAULTS } from '../../src/server/peers/settings.js';
import { clusterStatus, type StatusPeer } from '../../src/server/peers/status.js';

const entry = (id: string, patch: Partial<MemberEntry> = {}): MemberEntry => ({
  id, gen: 1, ver: 1, addrs: [`${id}:7400`], peer: `${id}:7401`, state: 'alive', agents: 0, head: 0, ...patch,
});

function cluster(now: { t: number }): Membership {
  const m = new Membership({ id: 'a', gen: 1, addrs: ['a:7400'], peer: 'a:7401', state: 'alive', agents: 5, head: 7 }, PEER_DEFAULTS.detector, () => now.t);
  m.merge([entry('b', { head: 9, agents: 3 }), entry('c', { head: 4, agents: 2 }), entry('d', { state: 'left' })]);
  return m;
}

const local = (agentsTotal: number, found?: LocalStatus['found']): LocalStatus => ({
  server: { id: 'a', version: 'x', listen: '', store: '', uptimeMs: 0, workers: 1, counters: {} },
  gen: 1, head: 7, agentsTotal, envs: [], ...(found === undefined ? {} : { found }),
});

describe("the cluster's part of status", () => {
  test('every server once, this one first; those that answer with their own figures, the others as gossiped', async () => {
    const now = { t: 1_000 };
    const m = cluster(now);
    now.t = 1_500;
    const asked: string[] = [];
    const peers = new Map<string, StatusPeer>([
      ['b', { status: () => { asked.push('b'); return Promise.resolve({ ...local(30), head: 10 }); } }],
      ['c', { status: () => { asked.push('c'); return Promise.reject(new Error('no answer in time')); } }],
      ['d', { status: () => { asked.push('d'); return Promise.resolve(local(0)); } }],
    ]);
    const out = await clusterStatus({ membership: m, peers, applied: () => 7, head: () => 10, local: local(5), env: undefined, now: now.t });
    assert.deepEqual(asked.sort(), ['b', 'c'], 'a server that left is not asked');
    assert.deepEqual(out.servers.map((s) => [s.id, s.head, s.lag, s.agents, s.answered, s.heardMs]), [
      ['a', 7, 3, 5, true, 0],
      ['b', 10, 0, 30, true, 500],
      ['c', 4, 6, 2, false, 500],
      ['d', 0, 10, 0, false, 500],
    ]);
    assert.equal(out.head, 10);
    assert.equal(out.found, undefined);
  });

  test('asked for an agent: each server names where it found it, this one first', async () => {
    const now = { t: 0 };
    const m = cluster(now);
    const agent = { id: 'host-1', addr: '10.0.0.1:1', envs: [] } as unknown as NonNullable<LocalStatus['found']>[number];
    const peers = new Map<string, StatusPeer>([['b', { status: () => Promise.resolve(local(1, [agent])) }]]);
    const out = await clusterStatus({ membership: m, peers, applied: () => 7, head: () => 9, local: local(1, [agent]), env: undefined, agent: 'host-1', now: 0 });
    assert.deepEqual(out.found?.map((a) => a.server), ['a', 'b']);
  });
});

describe('the servers agents are told of', () => {
  test('alive and suspect servers with an address; not those leaving, dead or without an address', () => {
    const now = { t: 0 };
    const { suspectAfterMs, deadAfterMs } = PEER_DEFAULTS.detector;
    const m = new Membership({ id: 'a', gen: 1, addrs: ['a:7400'], peer: '', state: 'alive', agents: 1, head: 0 }, PEER_DEFAULTS.detector, () => now.t);
    m.merge([entry('b'), entry('c', { state: 'draining' }), entry('d', { addrs: [] })]);
    m.judge(0);
    const shown = (): string[] => peerServers(m).map((s) => `${s.addr}=${s.state}`);
    assert.deepEqual(shown(), ['a:7400=alive', 'b:7400=alive'], 'c is draining, d has no address');
    now.t = suspectAfterMs + 1;
    m.merge([entry('e')]);
    m.judge(0);
    assert.deepEqual(shown(), ['a:7400=alive', 'b:7400=suspect', 'c:7400=suspect', 'e:7400=alive'], 'silent ones are shown as this server judges them');
    now.t = deadAfterMs + 1;
    m.merge([{ ...entry('e'), ver: 2 }]);
    m.judge(0);
    assert.deepEqual(shown(), ['a:7400=alive', 'e:7400=alive'], 'dead ones are left out');
  });

  test('told again when the set or a state changes, or loads moved a lot (at most every 10 s)', () => {
    const now = { t: 0 };
    const m = new Membership({ id: 'a', gen: 1, addrs: ['a:7400'], peer: '', state: 'alive', agents: 100, head: 0 }, PEER_DEFAULTS.detector, () => now.t);
    const told: PeerServer[][] = [];
    const side: AgentSide = { agents: () => 0, setPeers: (s) => void told.push(s), move: () => Promise.resolve(0), revisions: () => Promise.resolve([]) };
    const placement = new AgentPlacement(m, side, PEER_DEFAULTS, () => undefined, () => now.t);
    placement.tellServers();
    assert.equal(told.length, 1, 'the first list is always told');
    placement.tellServers();
    assert.equal(told.length, 1, 'nothing changed');
    m.merge([entry('b', { agents: 100 })]);
    placement.tellServers();
    assert.equal(told.length, 2, 'a new server');
    m.update({ agents: 200 });
    now.t = 5_000;
    placement.tellServers();
    assert.equal(told.length, 2, 'loads moved, but within 10 s of the last');
    now.t = 10_001;
    placement.tellServers();
    assert.equal(told.length, 3, 'loads moved, 10 s later');
    placement.tellServers(true);
    assert.equal(told.length, 4, 'forced');
  });
});
