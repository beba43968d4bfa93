/**
 * The worker pool's decisions, without a process: which workers listen
 * (decideListeners) and how long a crashed worker's replacement waits
 * (RestartPacing, with a clock and a random source of the test's own).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decideListeners, RestartPacing, RESTART_MAX_DELAY_MS, STABLE_WORKER_MS, type ListenerView } from '../../src/server/process/policy.js';
import { backoffDelay } from '../../src/transport/backoff.js';

interface W extends ListenerView { name: string }
const w = (name: string, full: boolean, listening: boolean, bound = listening): W => ({ name, full, listening, bound });
const said = (commands: { worker: W; on: boolean }[]): string[] => commands.map((c) => `${c.worker.name} ${c.on ? 'on' : 'off'}`);

describe('which workers listen', () => {
  test('workers with room all listen; nothing to say when they do', () => {
    assert.deepEqual(said(decideListeners([w('a', false, true), w('b', false, true)])), []);
  });

  test('a worker with room that was told to stop is told to listen again', () => {
    assert.deepEqual(said(decideListeners([w('a', false, true), w('b', false, false)])), ['b on']);
  });

  test('a full worker stops once another with room has confirmed it listens', () => {
    assert.deepEqual(said(decideListeners([w('a', true, true), w('b', false, true, true)])), ['a off']);
  });

  test('a full worker keeps listening while the one with room has not confirmed yet', () => {
    assert.deepEqual(said(decideListeners([w('a', true, true), w('b', false, true, false)])), []);
  });

  test('a worker told to listen in the same decision has not confirmed: the full one keeps listening', () => {
    assert.deepEqual(said(decideListeners([w('a', true, true), w('b', false, false)])), ['b on']);
  });

  test('all full: the one already listening keeps the socket, the others stop', () => {
    assert.deepEqual(said(decideListeners([w('a', true, true), w('b', true, true), w('c', true, false)])), ['b off']);
    assert.deepEqual(said(decideListeners([w('a', true, false), w('b', true, true), w('c', true, true)])), ['c off']);
  });

  test('all full and none listening: the first is told to listen', () => {
    assert.deepEqual(said(decideListeners([w('a', true, false), w('b', true, false)])), ['a on']);
  });

  test('no workers: nothing to say', () => {
    assert.deepEqual(decideListeners([]), []);
  });

  test('starts come before stops', () => {
    const commands = said(decideListeners([w('a', true, true), w('b', false, true, true), w('c', false, false)]));
    assert.deepEqual(commands, ['c on', 'a off']);
  });
});

describe('how soon a crashed worker is replaced', () => {
  test('after one that lived long, at once; the delay doubles while replacements die young, capped', () => {
    let now = 1_000_000;
    const pacing = new RestartPacing(() => now, () => 1);
    assert.equal(pacing.exited(now - STABLE_WORKER_MS), 0, 'a worker that lived a minute is replaced at once');
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      now += 1000;
      delays.push(pacing.exited(now - 500));
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 16000, RESTART_MAX_DELAY_MS, RESTART_MAX_DELAY_MS, RESTART_MAX_DELAY_MS]);
    assert.equal(pacing.exited(now - STABLE_WORKER_MS - 1), 0, 'a stable worker ends the crash loop');
    assert.equal(pacing.exited(now - 1), 250, 'and the next quick exit starts again from the shortest delay');
  });

  test('each delay is between half and all of its step', () => {
    const pacing = new RestartPacing(() => 0, () => 0);
    assert.equal(pacing.exited(0), 125);
    assert.equal(pacing.exited(0), 250);
  });
});

describe('backoff', () => {
  test('full jitter stays within [min, min * 2^attempt], capped at max', () => {
    assert.equal(backoffDelay(3, 100, 10_000, 'full', () => 0), 100);
    assert.equal(backoffDelay(3, 100, 10_000, 'full', () => 1), 800);
    assert.equal(backoffDelay(20, 100, 10_000, 'full', () => 1), 10_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(4, 250, 5_000);
      assert.ok(d >= 250 && d <= 4_000, `${d}`);
    }
  });

  test('half jitter and none', () => {
    assert.equal(backoffDelay(2, 250, 30_000, 'half', () => 0), 500);
    assert.equal(backoffDelay(2, 250, 30_000, 'half', () => 1), 1000);
    assert.equal(backoffDelay(3, 125, 2_000, 'none'), 1000);
    assert.equal(backoffDelay(9, 125, 2_000, 'none'), 2000);
    assert.equal(backoffDelay(1000, 1, Number.POSITIVE_INFINITY, 'none'), 2 ** 30, 'the exponent is bounded');
  });
});
