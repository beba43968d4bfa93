/**
 * A planned drain, as an operator runs one: two servers of one MariaDB
 * database, a script writing through `vitefa admin --server A,B` every
 * 100 ms (one process per write, each with its own request id), while A is
 * drained (SIGTERM) and started again. No write fails: each is acknowledged
 * (exit 0) or, at worst, of unknown outcome (exit 3); the history holds
 * every acknowledged one exactly once. A stopping A names B to a session it
 * ends.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HistoryResult } from '../../src/protocol/index.js';
import { Cluster, type Server } from '../support/cluster.js';
import { run, waitFor } from '../support/procs.js';

/** Writes whose processes may run at once: on a loaded two-core machine the loop waits rather than pile up processes. */
const AT_ONCE = 6;

interface Write {
  i: number;
  code: number | null;
  stderr: string;
}

describe('a planned drain while a script writes through --server A,B', () => {
  const c = new Cluster();
  let a: Server;
  let b: Server;

  before(async () => {
    // A in the cluster shape (a primary and a worker), B in one process.
    a = await c.add(['--workers', '1']);
    b = await c.add(['--workers', '0']);
    await c.untilNamed(a, b);
    const made = await run(['admin', '--server', b.address, 'env', 'add', 'live']);
    assert.equal(made.code, 0, made.stderr);
  });
  after(async () => {
    await c.close();
  });

  test('every write exits 0 or 3, none 1; the history holds each acknowledged write once', async () => {
    const servers = `${a.address},${b.address}`;
    const done: Write[] = [];
    const running = new Set<Promise<void>>();
    let next = 0;
    let writing = true;
    const loop = (async () => {
      while (writing) {
        const i = next++;
        const write = run(['admin', '--server', servers, 'set', 'live', `k${i}`, String(i), '--request-id', `drain-${i}`])
          .then(({ code, stderr }) => void done.push({ i, code, stderr }));
        running.add(write);
        void write.finally(() => running.delete(write));
        await new Promise((resolve) => setTimeout(resolve, 100)); // paces the writes
        while (running.size >= AT_ONCE) await Promise.race(running);
      }
      await Promise.all(running);
    })();
    const acknowledgedFrom = (first: number): number => done.filter((w) => w.i >= first && w.code === 0).length;

    try {
      await waitFor('writes acknowledged before the drain', () => acknowledgedFrom(0) >= 5, 60_000, 50);
      // An idle session on A hears where to go when A ends it.
      const idle = await c.admin(a);
      a.proc.child.kill('SIGTERM');
      assert.equal(await a.proc.exited, 0, a.proc.output);
      assert.match(await idle.closed, new RegExp(`server is shutting down; connect to ${b.address.replace(/\./g, '\\.')}$`));
      assert.doesNotMatch(await idle.closed, new RegExp(a.address));

      const whileDown = next;
      await waitFor('writes acknowledged while A is down', () => acknowledgedFrom(whileDown) >= 3, 60_000, 50);
      await c.restart(a);
      const restarted = next;
      await waitFor('writes acknowledged after A is back', () => acknowledgedFrom(restarted) >= 5, 60_000, 50);
    } finally {
      writing = false;
      await loop;
    }

    const failed = done.filter((w) => w.code !== 0 && w.code !== 3);
    assert.deepEqual(failed.map((w) => `k${w.i}: exit ${w.code}: ${w.stderr.trim()}`), [], 'no write failed, none was a usage error');

    const listed = await run(['admin', '--server', b.address, 'history', 'live', '--limit', '10000', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const { releases } = JSON.parse(listed.stdout) as HistoryResult;
    const made = new Map<string, string[]>();
    for (const release of releases) {
      for (const [key, , value] of release.changes) made.set(key, [...(made.get(key) ?? []), value ?? '(deleted)']);
    }
    for (const w of done) {
      const found = made.get(`k${w.i}`) ?? [];
      if (w.code === 0) assert.deepEqual(found, [String(w.i)], `k${w.i} was acknowledged: one release sets it`);
      else assert.ok(found.length <= 1, `k${w.i} (outcome unknown) is set at most once: ${found.length}`);
    }
    assert.ok(done.length >= 13, `${done.length} writes ran`);
  });
});
