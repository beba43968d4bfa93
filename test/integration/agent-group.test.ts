/**
 * A group of releases of one revision (protocol 5) through the agent's
 * applier into a real LocalStore: one LMDB transaction, so a reader in
 * another process sees every environment of the group at the new revision,
 * or none of them.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { ReleaseApplier } from '../../src/agent/apply.js';
import { LocalStore } from '../../src/agent/local-store.js';
import { MessageType, type Release } from '../../src/protocol/index.js';
import { ConfigReader } from '../../src/reader/index.js';
import { tempDir } from '../support/common.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function fresh(): { dir: string; store: LocalStore; applier: ReleaseApplier } {
  const dir = tempDir('vitefa-group-');
  dirs.push(dir);
  const store = LocalStore.open(dir, { mapSize: 64 * 1024 * 1024 });
  const applier = new ReleaseApplier(store, { envs: [], ackDelayMs: 60_000 }, {
    session: () => undefined,
    applied: () => undefined,
    forked: () => undefined,
    fatal: (err) => {
      throw err;
    },
  });
  return { dir, store, applier };
}

const release = (env: string, rev: number, prev: number, changes: Release['changes'], extra: Partial<Release> = {}): Release =>
  ({ t: MessageType.Release, env, rev, prev, time: 0, author: 't', op: 'set', changes, grp: true, ...extra });

test('a group with a snapshot, releases after it and a drop lands whole in one transaction', async () => {
  const { dir, store, applier } = fresh();
  applier.release(release('old', 1, 0, [['x', '1']], { grp: false }));
  applier.release(release('base', 4, 0, [['a', '1']], { grp: false }));
  applier.release(release('base', 5, 4, [['a', '2']]));
  applier.snapshot({ t: MessageType.Snapshot, env: 'dev', rev: 4, entries: [['a', '"s"'], ['b', '"s"']] });
  applier.release(release('dev', 5, 4, [['b', null], ['c', '3']], { via: 'base' }));
  applier.release(release('old', 5, 1, [], { op: 'env.del', drop: true }));
  assert.equal(store.revision('base'), 4, 'held until the GroupEnd');
  applier.groupEnd();
  applier.stop();
  const reader = ConfigReader.open(dir);
  assert.deepEqual(reader.envs(), ['base', 'dev']);
  assert.deepEqual([reader.revision('base'), reader.revision('dev'), reader.revision('old')], [5, 5, 0]);
  assert.deepEqual(reader.list('dev'), { a: 's', c: 3 }, 'the release after the snapshot in the same transaction sees it');
  assert.deepEqual(reader.list('base'), { a: 2 });
  await reader.close();
  await store.close();
});

test('a reader in another process never sees one environment of a group at its revision and another before it', async () => {
  const { dir, store, applier } = fresh();
  const groups = 150;
  applier.release(release('base', 1, 0, [['k', '1']], { grp: false }));
  applier.release(release('prod', 1, 0, [['k', '1']], { grp: false }));
  // Reads both environments in one snapshot per turn of its event loop, until both are at the last revision.
  const script = `
    import { ConfigReader } from ${JSON.stringify(new URL('../../src/reader/index.ts', import.meta.url).href)};
    const reader = ConfigReader.open(${JSON.stringify(dir)});
    const torn = [];
    const seen = new Set();
    process.stdout.write('reading\\n');
    for (;;) {
      const state = [reader.revision('base'), reader.revision('prod'), reader.getText('base', 'k'), reader.getText('prod', 'k')];
      seen.add(state[0]);
      if (state[0] !== state[1] || state[2] !== String(state[0]) || state[3] !== String(state[1])) torn.push(state);
      if (state[0] === ${groups + 1} && state[1] === ${groups + 1}) break;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await reader.close();
    process.stdout.write(JSON.stringify({ torn: torn.slice(0, 10), seen: seen.size }) + '\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => out.includes('reading') && resolve());
    void exited.then((code) => reject(new Error(`reader exited with ${code} before reading: ${out}`)));
  });
  for (let rev = 2; rev <= groups + 1; rev++) {
    applier.release(release('base', rev, rev - 1, [['k', String(rev)]]));
    applier.release(release('prod', rev, rev - 1, [['k', String(rev)]], { via: 'base' }));
    applier.groupEnd();
    // The other process reads meanwhile; this one lets its own loop turn too.
    await new Promise((resolve) => setImmediate(resolve));
  }
  applier.stop();
  assert.equal(await exited, 0);
  const report = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { torn: unknown[]; seen: number };
  assert.deepEqual(report.torn, [], 'every snapshot read holds both environments at one revision');
  assert.ok(report.seen >= 2, 'it read before and after the groups');
  await store.close();
});
