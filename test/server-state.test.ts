import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBody, FrameDecoder, type Message } from '../src/protocol/index.js';
import { Fanout, type AgentLink } from '../src/server/fanout.js';
import { ServerState } from '../src/server/state.js';
import type { StoredRelease } from '../src/server/store/types.js';

const release = (env: string, rev: number, prev: number, changes: [string, string | null, string | null][], op = 'set'): StoredRelease => ({
  env, rev, prev, time: 1, author: 'a', op, changes,
});

function decode(frames: Buffer[]): Message[] {
  const decoder = new FrameDecoder();
  return frames.flatMap((f) => decoder.push(f)).map((b) => decodeBody(b));
}

function stateWith(recentReleases: number): ServerState {
  const state = new ServerState({ recentReleases, recentBytes: 1 << 20 });
  state.load(0, []);
  state.apply(release('prod', 1, 0, [], 'env.add'));
  state.apply(release('prod', 2, 1, [['a', null, '1']]));
  state.apply(release('other', 3, 0, [], 'env.add'));
  state.apply(release('prod', 4, 2, [['a', '1', '2'], ['b', null, '"x"']]));
  return state;
}

test('an agent a few releases behind gets exactly the releases after its revision, in order', () => {
  const state = stateWith(100);
  const need = state.catchUp('prod', 1);
  assert.equal(need.kind, 'releases');
  const messages = decode(need.kind === 'releases' ? need.frames : []);
  assert.deepEqual(messages.map((m) => (m.t === 4 ? [m.rev, m.prev] : [])), [[2, 1], [4, 2]]);
  assert.deepEqual(state.catchUp('prod', 4), { kind: 'current' });
});

test('an agent older than the releases kept in memory, or unknown to them, gets one snapshot', () => {
  const state = stateWith(1);
  const need = state.catchUp('prod', 1);
  assert.equal(need.kind, 'snapshot');
  const [snapshot] = decode(need.kind === 'snapshot' ? [need.frame] : []);
  assert.deepEqual(snapshot, { t: 3, env: 'prod', rev: 4, entries: [['a', '2'], ['b', '"x"']] });
  assert.equal(state.catchUp('prod', 3).kind, 'snapshot', 'a revision that never belonged to prod');
  assert.equal(state.catchUp('prod', 99).kind, 'snapshot', 'an agent ahead of the server (store reset)');
  assert.equal(state.catchUp('prod', 0).kind, 'snapshot');
  const again = state.catchUp('prod', 0);
  assert.equal(again.kind === 'snapshot' && need.kind === 'snapshot' && again.frame, need.frame, 'snapshot encoded once per revision');
});

test('a dropped environment is gone; a release already applied is not applied twice', () => {
  const state = stateWith(10);
  assert.equal(state.apply(release('prod', 4, 2, [['a', '1', '2']])), undefined);
  const dropped = state.apply({ ...release('other', 5, 3, []), op: 'env.del', drop: true });
  assert.equal(dropped?.message.drop, true);
  assert.deepEqual(state.catchUp('other', 3), { kind: 'gone' });
  assert.deepEqual(state.names(), ['prod']);
});

class Link implements AgentLink {
  readonly frames: Buffer[] = [];
  failed?: string;
  writableLength = 0;
  readonly since = 0;
  constructor(readonly id: string, readonly addr = 'mem') {}
  write(frame: Buffer): void {
    this.frames.push(frame);
  }
  fail(_status: number, message: string): void {
    this.failed = message;
  }
}

test('the fan-out writes the same frame to every subscriber and cuts off a slow one', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { maxBufferedBytes: 1000 });
  const fast = new Link('fast');
  const slow = new Link('slow');
  const all = new Link('all');
  const elsewhere = new Link('elsewhere');
  fanout.subscribe(fast, false, [{ env: 'prod', rev: 4 }]);
  fanout.subscribe(slow, false, [{ env: 'prod', rev: 4 }]);
  fanout.subscribe(all, true, [{ env: 'prod', rev: 4 }, { env: 'other', rev: 3 }]);
  fanout.subscribe(elsewhere, false, [{ env: 'other', rev: 3 }]);
  assert.equal(fast.frames.length + all.frames.length + elsewhere.frames.length, 0, 'current agents get nothing on subscribe');
  slow.writableLength = 5000;
  const published = state.apply(release('prod', 6, 4, [['a', '2', '3']]))!;
  fanout.publish(published);
  assert.equal(fast.frames.length, 0, 'queued until the end of this turn of the event loop');
  fanout.flush();
  assert.equal(fast.frames[0], published.frame, 'the very same Buffer');
  assert.equal(all.frames[0], published.frame);
  assert.equal(elsewhere.frames.length, 0);
  assert.equal(slow.frames.length, 0);
  assert.match(slow.failed ?? '', /more than 1000 bytes waiting/);
  assert.equal(fanout.slowDisconnects, 1);
});

test('releases published in one turn go out as one write per agent, in order', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { maxBufferedBytes: 1 << 20 });
  const link = new Link('a');
  fanout.subscribe(link, false, [{ env: 'prod', rev: 4 }]);
  for (let rev = 5; rev <= 8; rev++) fanout.publish(state.apply(release('prod', rev, rev - 1 === 4 ? 4 : rev - 1, [['a', null, String(rev)]]))!);
  fanout.flush();
  assert.equal(link.frames.length, 1, 'one write');
  assert.deepEqual(decode(link.frames).map((m) => (m.t === 4 ? m.rev : 0)), [5, 6, 7, 8]);
});

test('an agent following all environments gets new ones as they are created', () => {
  const state = stateWith(10);
  const fanout = new Fanout(state, { maxBufferedBytes: 1 << 20 });
  const link = new Link('all');
  fanout.subscribe(link, true, []);
  const initial = decode(link.frames).map((m) => (m.t === 4 || m.t === 3 ? `${m.t === 3 ? 'snapshot' : 'release'} ${m.env}@${m.rev}` : ''));
  assert.deepEqual(initial, ['release other@3', 'release prod@1', 'release prod@2', 'release prod@4']);
  link.frames.length = 0;
  fanout.publish(state.apply(release('new', 7, 0, [], 'env.add'))!);
  fanout.flush();
  assert.deepEqual(decode(link.frames).map((m) => (m.t === 4 ? m.env : '')), ['new']);
});
