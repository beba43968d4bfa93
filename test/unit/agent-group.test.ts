/**
 * The agent's groups of releases (protocol 5): from a Release marked `grp` to
 * the GroupEnd, what it receives is held, then applied in ONE transaction of
 * its store, each message checked against what the ones before it leave.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageType, WireError, type EnvRev, type Message, type Release, type Snapshot } from '../../src/protocol/index.js';
import { ReleaseApplier, type ReleaseStore } from '../../src/agent/apply.js';
import { heldBytes, type GroupLimits } from '../../src/agent/group.js';
import type { ClientConnection } from '../../src/transport/client.js';

/** A store in memory that records each transaction: the messages it applied together. */
class RecordingStore implements ReleaseStore {
  readonly envs = new Map<string, { rev: number; chain: string; values: Map<string, string> }>();
  readonly transactions: string[][] = [];

  held(): EnvRev[] {
    return [...this.envs].map(([env, e]) => ({ env, rev: e.rev, ...(e.chain === '' ? {} : { chain: e.chain }) }));
  }
  revision(env: string): number {
    return this.envs.get(env)?.rev ?? 0;
  }
  chain(env: string): string {
    return this.envs.get(env)?.chain ?? '';
  }
  applyRelease(release: Release): void {
    this.applyGroup([release]);
  }
  applySnapshot(snapshot: Snapshot): void {
    this.applyGroup([snapshot]);
  }
  applyGroup(messages: readonly (Release | Snapshot)[]): void {
    this.transactions.push(messages.map((m) => `${m.env}@${m.rev}`));
    for (const m of messages) {
      if (m.t === MessageType.Snapshot) {
        this.envs.set(m.env, { rev: m.rev, chain: m.chain ?? '', values: new Map(m.entries) });
        continue;
      }
      if (m.drop === true) {
        this.envs.delete(m.env);
        continue;
      }
      const e = this.envs.get(m.env) ?? { rev: 0, chain: '', values: new Map<string, string>() };
      for (const [key, json] of m.changes) {
        if (json === null) e.values.delete(key);
        else e.values.set(key, json);
      }
      e.rev = m.rev;
      e.chain = m.chain ?? '';
      this.envs.set(m.env, e);
    }
  }
}

/** The session the applier talks to: what it sent, and how it failed. */
class FakeSession {
  readonly sent: Message[] = [];
  private failed?: { status: number; message: string };
  /** How the applier failed the session, if it did. */
  failure(): { status: number; message: string } | undefined {
    return this.failed;
  }
  send(message: Message): void {
    this.sent.push(message);
  }
  fail(status: number, message: string): void {
    this.failed = { status, message };
  }
}

function setup(envs: string[] = [], groupLimits?: GroupLimits) {
  const store = new RecordingStore();
  const session = new FakeSession();
  const applied: string[] = [];
  const forks: string[] = [];
  const applier = new ReleaseApplier(store, { envs, ackDelayMs: 60_000, ...(groupLimits === undefined ? {} : { groupLimits }) }, {
    session: () => session as unknown as ClientConnection,
    applied: (env, rev, kind) => applied.push(`${kind} ${env}@${rev}`),
    forked: (env) => forks.push(env),
    fatal: (err) => assert.fail(err),
  });
  return { store, session, applied, forks, applier };
}

const release = (env: string, rev: number, prev: number, changes: Release['changes'] = [['k', String(rev)]], extra: Partial<Release> = {}): Release =>
  ({ t: MessageType.Release, env, rev, prev, time: 1, author: 'ann', op: 'set', changes, ...extra });

test('from a release marked grp to the GroupEnd, everything is held, then applied in one transaction, in order', (t) => {
  const { store, applier, applied, session } = setup();
  t.after(() => applier.stop());
  applier.release(release('base', 3, 0));
  assert.deepEqual(store.transactions, [['base@3']], 'a release outside a group: its own transaction');
  applier.release(release('base', 5, 3, undefined, { grp: true }));
  applier.release(release('prod', 5, 0, undefined, { grp: true, via: 'base' }));
  applier.snapshot({ t: MessageType.Snapshot, env: 'dev', rev: 4, entries: [['a', '1']] });
  applier.release(release('dev', 5, 4, undefined, { grp: true, via: 'base' }));
  assert.equal(store.transactions.length, 1, 'nothing applied before the GroupEnd');
  assert.equal(store.revision('base'), 3);
  applier.groupEnd();
  assert.deepEqual(store.transactions[1], ['base@5', 'prod@5', 'dev@4', 'dev@5'], 'one transaction; dev@5 checked against the snapshot held before it');
  assert.deepEqual(applied, ['release base@3', 'release base@5', 'release prod@5', 'snapshot dev@4', 'release dev@5']);
  assert.equal(store.envs.get('dev')?.values.get('k'), '5');
  applier.groupEnd();
  assert.equal(store.transactions.length, 2, 'a GroupEnd with nothing held does nothing');
  applier.release(release('base', 6, 5));
  assert.deepEqual(store.transactions[2], ['base@6'], 'after the group, releases apply one by one again');
  assert.deepEqual(session.sent, [], 'no gap, nothing asked');
});

test('a gap inside a group asks once again; the others of the group are still applied together', (t) => {
  const { store, applier, session } = setup();
  t.after(() => applier.stop());
  applier.release(release('base', 2, 0));
  applier.release(release('prod', 2, 0));
  applier.release(release('base', 7, 2, undefined, { grp: true }));
  applier.release(release('prod', 7, 5, undefined, { grp: true, via: 'base' })); // prod holds 2: a gap
  applier.release(release('base', 8, 7, undefined, { grp: true })); // follows what the group's base@7 leaves
  applier.groupEnd();
  assert.deepEqual(store.transactions.slice(2), [['base@7', 'base@8']]);
  assert.equal(store.revision('prod'), 2, 'nothing of the release after the gap');
  assert.deepEqual(session.sent, [{ t: MessageType.Subscribe, all: true, envs: [{ env: 'base', rev: 8 }, { env: 'prod', rev: 2 }] }],
    'asked once, from what the store holds with the group applied');
  // The same gap again (the server's answer not in yet): not asked twice.
  applier.release(release('prod', 9, 7, undefined, { grp: true }));
  applier.groupEnd();
  assert.equal(session.sent.length, 1);
  // What it asked for arrives: applied.
  applier.release(release('prod', 7, 2, undefined, { grp: true }));
  applier.groupEnd();
  assert.equal(store.revision('prod'), 7);
});

test('a fork inside a group asks for a snapshot; a release already held is skipped', (t) => {
  const { store, applier, session, forks } = setup();
  t.after(() => applier.stop());
  applier.release(release('base', 2, 0, undefined, { chain: '00000000000000aa' }));
  applier.release(release('prod', 2, 0, undefined, { chain: '00000000000000bb' }));
  applier.release(release('base', 2, 0, undefined, { grp: true, chain: '00000000000000aa' })); // already held
  applier.release(release('base', 3, 2, undefined, { grp: true, chain: '00000000000000a3', pchain: '0000000000000fff' }));
  applier.release(release('prod', 3, 2, undefined, { grp: true, chain: '00000000000000b3', pchain: '00000000000000bb' }));
  applier.groupEnd();
  assert.deepEqual(forks, ['base']);
  assert.deepEqual(store.transactions.slice(2), [['prod@3']]);
  assert.equal(session.sent.length, 1);
  assert.equal(store.chain('prod'), '00000000000000b3');
});

test('a drop in a group: what follows it is checked against nothing held', (t) => {
  const { store, applier } = setup();
  t.after(() => applier.stop());
  applier.release(release('old', 4, 0));
  applier.release(release('old', 5, 4, [], { grp: true, op: 'env.del', drop: true }));
  applier.release(release('old', 6, 0, [], { op: 'env.add' }));
  applier.groupEnd();
  assert.deepEqual(store.transactions.slice(1), [['old@5', 'old@6']]);
  assert.equal(store.revision('old'), 6);
});

test('the end of a session drops what a group held: nothing applied, nothing acknowledged', (t) => {
  const { store, applier, applied } = setup();
  t.after(() => applier.stop());
  applier.release(release('base', 1, 0, undefined, { grp: true }));
  applier.release(release('prod', 1, 0, undefined, { grp: true }));
  applier.sessionEnded();
  applier.groupEnd();
  assert.deepEqual(store.transactions, []);
  assert.deepEqual(applied, []);
  // A new session starts afresh: a group held there and then a new session's start drops it too.
  applier.release(release('base', 1, 0, undefined, { grp: true }));
  applier.newSession();
  applier.groupEnd();
  assert.deepEqual(store.transactions, []);
  assert.deepEqual(applier.subscribe().envs, [], 'asked from what the store holds: nothing');
});

test('releases of environments not followed are not held; past the limits the session fails and nothing held is applied', (t) => {
  const one = release('prod', 1, 0, [['key', '"value"']], { grp: true });
  const { store, applier, session } = setup(['prod'], { messages: 2, bytes: 1 << 20 });
  t.after(() => applier.stop());
  applier.release(release('other', 1, 0, undefined, { grp: true }));
  applier.release(one);
  applier.release(release('prod', 2, 1, undefined, { grp: true }));
  assert.equal(session.failure(), undefined, 'two held: within the limit');
  applier.release(release('prod', 3, 2, undefined, { grp: true }));
  assert.equal(session.failure()?.status, WireError.LIMIT_EXCEEDED);
  assert.match(session.failure()?.message ?? '', /more than 2 releases and snapshots.*nothing of it was applied/);
  applier.groupEnd();
  assert.deepEqual(store.transactions, []);

  const bytes = setup([], { messages: 100, bytes: heldBytes(one) });
  t.after(() => bytes.applier.stop());
  bytes.applier.release(one);
  assert.equal(bytes.session.failure(), undefined, 'exactly at the limit');
  bytes.applier.snapshot({ t: MessageType.Snapshot, env: 'prod', rev: 2, entries: [['k', '1']] });
  assert.equal(bytes.session.failure()?.status, WireError.LIMIT_EXCEEDED);
  assert.match(bytes.session.failure()?.message ?? '', /more than \d+ bytes of changes/);
  bytes.applier.groupEnd();
  assert.deepEqual(bytes.store.transactions, []);
});

test('a key the store cannot hold, inside a group, ends the session and nothing of the group is applied', (t) => {
  const { store, applier, session } = setup();
  t.after(() => applier.stop());
  applier.release(release('base', 1, 0, undefined, { grp: true }));
  applier.release(release('prod', 1, 0, [['k'.repeat(600), '1']], { grp: true }));
  applier.groupEnd();
  assert.equal(session.failure()?.status, WireError.MALFORMED);
  assert.deepEqual(store.transactions, []);
});

test('a group the server never ends is dropped after the wait and asked for again, with a word', async (t) => {
  const store = new RecordingStore();
  const session = new FakeSession();
  const unended: string[] = [];
  const applier = new ReleaseApplier(store, { envs: [], ackDelayMs: 60_000, groupEndWaitMs: 20 }, {
    session: () => session as unknown as ClientConnection,
    applied: () => undefined,
    forked: () => undefined,
    unended: (detail) => unended.push(detail),
    fatal: (err) => assert.fail(err),
  });
  t.after(() => applier.stop());
  applier.release(release('base', 5, 0, undefined, { grp: true }));
  const asked = (): boolean => session.sent.some((m) => m.t === MessageType.Subscribe);
  for (let i = 0; i < 500 && !asked(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(asked(), 'asked again from what the store holds');
  assert.deepEqual(store.transactions, [], 'nothing of it applied');
  assert.match(unended[0], /not ended by the server.*asking again/);
  applier.release(release('base', 5, 0));
  assert.deepEqual(store.transactions, [['base@5']], 'what comes next is applied as usual');
});
