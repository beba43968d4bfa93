import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_GENESIS, decodeBody, encodeMessage, FrameDecoder, MessageType, type Message, type Release } from '../../src/protocol/index.js';
import { AheadWaits } from '../../src/server/push/ahead.js';
import { Fanout, type AgentLink } from '../../src/server/push/fanout.js';
import { GROUP_END_FRAME, mayBeGrouped } from '../../src/server/push/groups.js';
import { Subscriptions, type Subscription } from '../../src/server/push/subscriptions.js';
import { releaseMessage, storedOf } from '../../src/server/releases/messages.js';
import { ServerState, type PublishedRelease } from '../../src/server/releases/state.js';
import { chainOfStored } from '../../src/server/store/changes.js';
import { newRelease, releaseFrom } from '../../src/server/store/release.js';

class Link implements AgentLink {
  readonly frames: Buffer[] = [];
  writableLength = 0;
  bytesWritten = 0;
  readonly since = 0;
  failed?: string;
  constructor(readonly id: string, readonly addr = 'mem') {}
  write(frame: Buffer): void {
    this.frames.push(frame);
    this.bytesWritten += frame.length;
  }
  fail(_status: number, message: string): void {
    this.failed = message;
  }
}

function decode(frames: Buffer[]): Message[] {
  const decoder = new FrameDecoder();
  return frames.flatMap((f) => decoder.push(f)).map((b) => decodeBody(b));
}

const meta = { author: 'ann', op: 'set', time: 1_700_000_000_000 };

test('a new release carries its chain value; a release read back has drop and chain only when set', () => {
  const created = newRelease('prod', 1, 0, { ...meta, op: 'env.add' }, [], CHAIN_GENESIS);
  const bare = { env: 'prod', rev: 1, prev: 0, time: meta.time, author: 'ann', op: 'env.add', changes: [] };
  assert.deepEqual(created, { ...bare, chain: chainOfStored(CHAIN_GENESIS, bare) });
  const dropped = newRelease('prod', 2, 1, { ...meta, op: 'env.del' }, [['a', '1', null]], created.chain, true);
  assert.equal(dropped.drop, true);
  const { chain, ...content } = dropped;
  assert.equal(chain, chainOfStored(created.chain, content));
  assert.deepEqual(releaseFrom({ ...bare, drop: false, chain: '' }), bare, 'no drop: false, no empty chain');
});

test('a stored release and its Release message convert both ways; the message carries the chain it follows', () => {
  const first = newRelease('prod', 1, 0, meta, [['a', null, '1']], CHAIN_GENESIS);
  const next = newRelease('prod', 3, 1, meta, [['a', '1', '2'], ['b', null, null]], first.chain!);
  const message = releaseMessage(next, 1, first.chain);
  assert.deepEqual(message, {
    t: MessageType.Release, env: 'prod', rev: 3, prev: 1, time: meta.time, author: 'ann', op: 'set',
    changes: [['a', '2'], ['b', null]], chain: next.chain, pchain: first.chain,
  });
  // The values before each change are not sent: they come back null.
  assert.deepEqual(storedOf(message), { ...next, changes: [['a', null, '2'], ['b', null, null]] });
  const unchained = releaseFrom({ env: 'prod', rev: 4, prev: 3, time: 1, author: 'x', op: 'set' });
  assert.equal(releaseMessage(unchained, 3, 'ignored').pchain, undefined, 'no pchain without a chain');
});

test('agents ahead of this server wait: reported once per revision, served when it catches up or the store confirms', () => {
  const behind: number[] = [];
  const waits = new AheadWaits((rev) => behind.push(rev));
  const subs = new Subscriptions();
  const sub = (id: string): Subscription => subs.add(new Link(id), false, ['*'], 0, 0);
  const [a, b, c, gone] = [sub('a'), sub('b'), sub('c'), sub('gone')];
  assert.equal(waits.add(a, 'prod', 7, 1_000), true);
  assert.equal(waits.add(b, 'prod', 7, 1_001), true);
  assert.equal(waits.add(c, 'prod', 9, 1_002), true);
  assert.equal(waits.add(gone, 'prod', 9, 1_002), true);
  subs.remove(gone.link);
  assert.deepEqual(behind, [7, 9], 'one read of the store per revision, not per agent');

  const served: [string, number, boolean][] = [];
  const serve = (at: number, head: number): void =>
    waits.release(head, at, (s) => subs.current(s), (w, confirmed) => served.push([w.sub.link.id, w.rev, confirmed]));
  serve(2_000, 7);
  assert.deepEqual(served, [['a', 7, false], ['b', 7, false]], 'the server reached what they hold');
  serve(3_000, 7);
  assert.deepEqual(behind, [7, 9], 'still within the wait before asking again');
  serve(7_003, 7);
  assert.deepEqual(behind, [7, 9, 9], 'asked again while one still waits');
  waits.storeRead(1_001);
  serve(7_004, 7);
  assert.equal(served.length, 2, 'a read that started before the agent arrived confirms nothing');
  waits.storeRead(1_002);
  serve(7_005, 7);
  assert.deepEqual(served.slice(2), [['c', 9, true]], 'the store holds nothing newer: served from what this server has; the one gone is dropped');
});

test('an agent ahead gets nothing until a read of the store confirms it, then what the server holds', () => {
  const state = new ServerState({ recentReleases: 10, recentBytes: 1 << 20 });
  state.load(0, []);
  state.apply(newRelease('prod', 1, 0, { ...meta, op: 'env.add' }, [], CHAIN_GENESIS));
  const behind: number[] = [];
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16, onBehind: (rev) => behind.push(rev) });
  const link = new Link('ahead');
  fanout.subscribe(link, false, [{ env: 'prod', rev: 5 }]);
  assert.deepEqual(link.frames, []);
  assert.deepEqual(behind, [5]);
  fanout.storeRead(Date.now());
  assert.deepEqual(decode(link.frames).map((m) => m.t), [MessageType.Snapshot]);
});

test('an agent holding an environment that is gone is told to drop it', () => {
  const state = new ServerState({ recentReleases: 10, recentBytes: 1 << 20 });
  state.load(6, []);
  const fanout = new Fanout(state, { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const link = new Link('old');
  fanout.subscribe(link, false, [{ env: 'gone', rev: 3 }, { env: 'never', rev: 0 }]);
  const [drop, ...rest] = decode(link.frames);
  assert.deepEqual(rest, [], 'nothing for an environment it never held');
  assert.ok(drop?.t === MessageType.Release);
  assert.deepEqual({ ...drop, time: 0 }, {
    t: MessageType.Release, env: 'gone', rev: 6, prev: 3, time: 0, author: 'server', op: 'env.del', changes: [], drop: true,
  });
});

// ---------------------------------------------------------------------------
// Groups of releases (protocol 5): a pass with a release marked grp, and catch-ups
// ---------------------------------------------------------------------------

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A release of one revision as the state publishes it (`grp`: one of a group). */
function published(env: string, rev: number, prev: number, grp: boolean, extra: Partial<Release> = {}): PublishedRelease {
  const message: Release = {
    t: MessageType.Release, env, rev, prev, time: 1, author: 'ann', op: 'set', changes: [['k', String(rev)]], ...extra, ...(grp ? { grp: true } : {}),
  };
  return { message, frame: encodeMessage(message) };
}

/** A state holding `envs` at revision 4: agents subscribing at 4 get nothing, pushes come from `publish`. */
function loaded(envs: string[]): ServerState {
  const state = new ServerState({ recentReleases: 10, recentBytes: 1 << 20 });
  state.load(4, envs.map((env) => ({ env, rev: 4, values: new Map(), chain: '' })));
  return state;
}

const described = (frames: Buffer[]): string[] =>
  decode(frames).map((m) => (m.t === MessageType.Release ? `${m.env}@${m.rev}${m.grp === true ? ' grp' : ''}` : m.t === MessageType.GroupEnd ? 'end' : `type ${m.t}`));

test('a pass with grouped releases: each agent gets exactly its frames and one GroupEnd, in one write; watchers get no GroupEnd', () => {
  const fanout = new Fanout(loaded(['base', 'prod', 'dev', 'other']), { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 });
  const two = new Link('two');
  const twin = new Link('twin');
  const one = new Link('one');
  const elsewhere = new Link('elsewhere');
  const watcher = new Link('admin');
  fanout.subscribe(two, false, [{ env: 'prod', rev: 4 }, { env: 'dev', rev: 4 }]);
  fanout.subscribe(twin, false, [{ env: 'dev', rev: 4 }, { env: 'prod', rev: 4 }]);
  fanout.subscribe(one, false, [{ env: 'base', rev: 4 }]);
  fanout.subscribe(elsewhere, false, [{ env: 'other', rev: 4 }]);
  fanout.watch(watcher, 'prod');
  for (const link of [two, twin, one, elsewhere]) assert.deepEqual(link.frames, [], `${link.id}: current, nothing on subscribe`);
  fanout.publish(published('base', 5, 4, true));
  fanout.publish(published('prod', 5, 4, true, { via: 'base' }));
  fanout.publish(published('dev', 5, 4, true, { via: 'base' }));
  fanout.flush();
  assert.equal(two.frames.length, 1, 'one write: nothing can come between its frames and the GroupEnd');
  assert.deepEqual(described(two.frames), ['prod@5 grp', 'dev@5 grp', 'end']);
  assert.equal(twin.frames[0], two.frames[0], 'agents getting the same frames share one Buffer');
  assert.deepEqual(described(one.frames), ['base@5 grp', 'end']);
  assert.deepEqual(elsewhere.frames, []);
  assert.deepEqual(described(watcher.frames), ['prod@5'], 'a watcher gets the release as committed, without grp (and no GroupEnd)');
  assert.equal(fanout.busy, false);

  // A pass without grp: as before, the very frame published, nothing after it.
  const plain = published('prod', 6, 5, false);
  fanout.publish(plain);
  fanout.flush();
  assert.equal(two.frames[1], plain.frame);
  assert.equal(two.frames.length, 2);
});

test('in a grouped pass a batch of one environment is one release of the group (no via); agents are written a slice at a time', async () => {
  const fanout = new Fanout(loaded(['base', 'prod']), { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16, slice: 1 });
  const links = [new Link('a'), new Link('b'), new Link('c')];
  for (const link of links) fanout.subscribe(link, false, [{ env: 'base', rev: 4 }, { env: 'prod', rev: 4 }]);
  fanout.publish(published('base', 5, 4, true));
  fanout.publish(published('prod', 5, 4, true, { via: 'base' }));
  fanout.publish(published('prod', 6, 5, false));
  const late = new Link('late');
  fanout.subscribe(late, false, [{ env: 'prod', rev: 4 }]);
  await turn();
  assert.deepEqual(links.map((l) => l.frames.length), [1, 0, 0], 'one agent per slice');
  while (fanout.busy) await turn();
  for (const link of links) {
    assert.equal(link.frames.length, 1);
    const [base, prod, end] = decode(link.frames);
    assert.ok(base.t === MessageType.Release && prod.t === MessageType.Release);
    assert.deepEqual([base.env, base.rev, base.grp], ['base', 5, true]);
    assert.deepEqual([prod.env, prod.prev, prod.rev, prod.op, prod.grp, prod.via], ['prod', 4, 6, 'batch', true, undefined]);
    assert.equal(end.t, MessageType.GroupEnd);
  }
  assert.deepEqual(late.frames, [], 'subscribed after they were published: its catch-up had them');
});

/** A state that answers every catch-up with `frames` (the rest of Fanout's needs, trivially). */
function stateAnswering(frames: Buffer[]): ServerState {
  return {
    head: 9,
    has: () => true,
    names: () => ['base', 'prod'],
    catchUp: () => ({ kind: 'releases', frames }),
  } as unknown as ServerState;
}

test('a catch-up with releases of a group ends with one GroupEnd; one without any writes none', () => {
  const grouped = [published('base', 5, 4, true), published('base', 6, 5, false)].map((p) => p.frame);
  const link = new Link('joiner');
  new Fanout(stateAnswering(grouped), { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 }).subscribe(link, true, []);
  assert.deepEqual(described(link.frames), ['base@5 grp', 'base@6', 'base@5 grp', 'base@6', 'end'], 'both environments, then one GroupEnd');

  const plain = new Link('plain');
  new Fanout(stateAnswering([published('base', 5, 4, false).frame]), { agentBufferBytes: 1 << 20, absentEnvsPerAgent: 16 }).subscribe(plain, true, []);
  assert.deepEqual(described(plain.frames), ['base@5', 'base@5']);
});

test('a grouped release frame is told from others by its bytes', () => {
  assert.equal(mayBeGrouped(published('prod', 5, 4, true, { via: 'base', chain: '0123456789abcdef', pchain: 'fedcba9876543210' }).frame), true);
  assert.equal(mayBeGrouped(published('prod', 5, 4, false, { via: 'base', changes: [['grp', 'true']] }).frame), false);
  assert.equal(mayBeGrouped(encodeMessage({ ...published('prod', 5, 4, false).message, grp: false })), false);
  assert.deepEqual(decode([GROUP_END_FRAME]), [{ t: MessageType.GroupEnd }]);
});
