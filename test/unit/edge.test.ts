/**
 * The decisions of a port, without a socket: admission of connections not
 * logged in yet (both ports use it), capacity and its hysteresis, the ping
 * interval, and when a session with output waiting is a slow consumer.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/protocol/index.js';
import { Admission, pendingRefusal } from '../../src/server/edge/admission.js';
import { agentPingInterval, capacityChange } from '../../src/server/edge/capacity.js';
import { sourceOf } from '../../src/server/edge/source.js';
import { LoginDeadline, silenceAllowed, stallVerdict, sweepEvery } from '../../src/server/edge/sweeps.js';
import { LIMIT_DEFAULTS } from '../../src/server/limits.js';

const words = { all: 'peer connections', one: 'peer connections', awaited: 'logged in' };

describe('admission', () => {
  test('refuses past the total (handshakes included) and past the share of one source, naming which', () => {
    const limits = { total: 10, perAddress: 3 };
    assert.equal(pendingRefusal({ pending: 5, handshaking: 4, fromSource: 2 }, '10.0.0.1', limits, words), undefined);
    assert.deepEqual(pendingRefusal({ pending: 6, handshaking: 4, fromSource: 0 }, '10.0.0.1', limits, words), [WireError.LIMIT_EXCEEDED, '10 peer connections have not logged in yet']);
    assert.deepEqual(pendingRefusal({ pending: 3, handshaking: 0, fromSource: 3 }, '10.0.0.1', limits, words), [WireError.LIMIT_EXCEEDED, '3 peer connections from 10.0.0.1 have not logged in yet']);
  });

  test('counts per source key: an IPv6 /64 is one source, another address is not held up', () => {
    const admission = new Admission({ total: 100, perAddress: 2 }, words);
    admission.enter(sourceOf('2001:db8:1:2::5:4000'));
    admission.enter(sourceOf('2001:db8:1:2::9:4001'));
    assert.match(admission.refusal(sourceOf('2001:db8:1:2:aa::1:4002'))?.[1] ?? '', /2 peer connections from 2001:db8:1:2::\/64/);
    assert.equal(admission.refusal(sourceOf('127.0.0.2:5000')), undefined);
    admission.leave(sourceOf('2001:db8:1:2::9:4001'));
    assert.equal(admission.refusal(sourceOf('2001:db8:1:2::7:4003')), undefined);
    assert.deepEqual(admission.waiting, { pending: 1, handshaking: 0 });
  });
});

describe('capacity and pings', () => {
  test('full at the limit, room again only below 95% of it', () => {
    assert.equal(capacityChange(false, 99, 100), undefined);
    assert.equal(capacityChange(false, 100, 100), true);
    assert.equal(capacityChange(true, 96, 100), undefined);
    assert.equal(capacityChange(true, 94, 100), false);
  });

  test('the ping interval grows with the agents of the whole server, within its bounds', () => {
    assert.equal(agentPingInterval(0, 1, LIMIT_DEFAULTS), LIMIT_DEFAULTS.agentPingMs);
    assert.equal(agentPingInterval(20_000, 2, LIMIT_DEFAULTS), 60_000);
    assert.equal(agentPingInterval(10_000_000, 8, LIMIT_DEFAULTS), LIMIT_DEFAULTS.agentPingMaxMs);
  });
});

describe('sweeps', () => {
  test('a session that reads nothing of its waiting output for the stall time is stalled; one that reads is not', () => {
    let { mark, stalled } = stallVerdict(undefined, 100, 0, 15_000);
    assert.equal(stalled, false);
    ({ mark, stalled } = stallVerdict(mark, 100, 15_000, 15_000));
    assert.equal(stalled, false);
    ({ mark, stalled } = stallVerdict(mark, 101, 15_001, 15_000));
    assert.deepEqual([mark, stalled], [{ flushed: 101, since: 15_001 }, false]);
    ({ mark, stalled } = stallVerdict(mark, 101, 30_002, 15_000));
    assert.deepEqual([mark, stalled], [undefined, true]);
  });

  test('silence allowed, and how often every session is looked at', () => {
    assert.equal(silenceAllowed(60_000, 0), 60_000);
    assert.equal(silenceAllowed(60_000, 300_000), 900_000);
    assert.equal(sweepEvery(LIMIT_DEFAULTS), 5);
    assert.equal(sweepEvery({ stallTimeoutMs: 1_000, idleTimeoutMs: 60_000 }), 1);
  });

  test('the login deadline ends only sessions still logging in past it, with TIMEOUT', () => {
    const failed: string[] = [];
    const session = (name: string, since: number, inHandshake: boolean) => ({ since, inHandshake, fail: (status: WireError, message: string) => void failed.push(`${name} ${status} ${message}`) });
    const deadline = new LoginDeadline<ReturnType<typeof session>>(10_000, 'no login in time');
    for (const s of [session('late', 0, true), session('in', 0, false), session('early', 5_000, true)]) deadline.add(s);
    deadline.sweep(10_001);
    assert.deepEqual(failed, [`late ${WireError.TIMEOUT} no login in time`]);
  });
});
