/**
 * No account's reads can take the server down: on real MariaDB, a server
 * with cluster workers holds an environment whose releases carry about
 * 100 MB of 1 MB values. A viewer pipelines history, diff and list
 * requests that once built answers of that whole size each; every answer
 * is now a page of at most answerBytes, large values come as size and
 * hash, the server stays up, the process that commits stays under a stated
 * memory bound, and another account's reads and writes are answered
 * throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { AdminClient } from '../../src/admin/client.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { Cluster, type Server } from '../support/cluster.js';
import { run } from '../support/procs.js';

const RELEASES = 9;
const VALUES_PER_RELEASE = 12;
const MB = 1024 * 1024;
/** What the committing process may use while every heavy read below runs: the environment itself is ~108 MB of values. */
const RSS_BOUND = 700 * MB;

const VIEWER = { user: 'reader', secret: 'reader-password-1' };

/** Resident memory of a process, from /proc. */
function rss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

describe('large reads by one account', () => {
  const c = new Cluster();
  let server: Server;
  let first = 0;
  let last = 0;
  let peak = 0;
  let sampler: NodeJS.Timeout | undefined;

  const connect = (login: { user: string; secret: string }): Promise<AdminClient> =>
    AdminClient.connect({ ...parseEndpoint(server.address), login, connectTimeoutMs: 10_000, requestTimeoutMs: 60_000 });

  before(async () => {
    // Values of 1 MB, past the default valueBytes (256 KiB): this test is about values that large.
    server = await c.add([], { limits: { valueBytes: MB, releaseBytes: 256 * MB } });
    const admin = await c.admin(server);
    first = (await admin.request({ op: 'env.add', env: 'shop' })).rev;
    const big = (i: number): string => JSON.stringify(`${i}:`.padEnd(MB - 16, 'x'));
    for (let r = 0; r < RELEASES; r++) {
      const entries: [string, string][] = Array.from({ length: VALUES_PER_RELEASE }, (_, i) => [`blob/${r}/${i}`, big(r * 100 + i)]);
      last = (await admin.request({ op: 'apply', env: 'shop', entries, replace: false })).rev;
    }
    const made = await run(['admin', '--server', server.address, 'user', 'add', VIEWER.user, 'viewer', 'shop'], { env: { VITEFA_NEW_PASSWORD: VIEWER.secret } });
    assert.equal(made.code, 0, made.stderr);
    const pid = server.proc.child.pid!;
    peak = rss(pid);
    sampler = setInterval(() => {
      try {
        peak = Math.max(peak, rss(pid));
      } catch {
        // The process is gone: the assertions below say so.
      }
    }, 50);
  });
  after(async () => {
    clearInterval(sampler);
    await c.close();
  });

  /** While `heavy` runs, another account gets a value and writes one, again and again: every one is answered. */
  async function othersServed<T>(heavy: () => Promise<T>): Promise<T> {
    const other = await c.admin(server);
    let done = false;
    let answered = 0;
    const loop = (async () => {
      for (let i = 0; !done; i++) {
        const got = await other.request({ op: 'get', env: 'shop', key: `blob/0/0` });
        assert.equal(got.key, 'blob/0/0');
        await other.request({ op: 'set', env: 'shop', key: 'small', value: String(i) });
        answered++;
      }
    })();
    try {
      return await heavy();
    } finally {
      done = true;
      await loop;
      assert.ok(answered > 0, 'the other account was answered while the reads ran');
    }
  }

  test('eight pipelined histories of 10,000 releases: each a small page, large values by size and hash', async () => {
    const viewer = await connect(VIEWER);
    const pages = await othersServed(() => Promise.all(Array.from({ length: 8 }, () => viewer.request({ op: 'history', env: 'shop', limit: 10_000 }))));
    for (const page of pages) {
      const releases = page.releases.filter((r) => r.op === 'apply');
      assert.equal(releases.length, RELEASES);
      for (const r of releases) {
        assert.equal(r.big?.length, VALUES_PER_RELEASE);
        assert.ok(r.big.every(([, side, bytes, sha]) => side === 2 && bytes > MB - 100 && /^[0-9a-f]{16}$/.test(sha)));
        assert.ok(r.changes.every(([, , after]) => after === null));
      }
    }
    viewer.close();
    assert.ok(server.proc.child.exitCode === null, 'the server is up');
    assert.ok(peak < RSS_BOUND, `the committing process peaked at ${Math.round(peak / MB)} MB`);
  });

  test('history with --values pages by answerBytes and says where to go on, down to the first release', async () => {
    const viewer = await connect(VIEWER);
    let before: number | undefined;
    let seen = 0;
    for (let pages = 0; pages < 200; pages++) {
      const page = await viewer.request({ op: 'history', env: 'shop', limit: 10_000, values: true, ...(before === undefined ? {} : { before }) });
      const bytes = page.releases.reduce((n, r) => n + r.changes.reduce((m, [, , a]) => m + (a?.length ?? 0), 0), 0);
      assert.ok(bytes <= 4 * MB + MB, `a page of ${bytes} bytes`);
      seen += page.releases.reduce((n, r) => n + r.changes.filter(([, , a]) => a !== null).length, 0);
      if (page.next === undefined) break;
      assert.ok(before === undefined || page.next <= before, 'pages go down');
      before = page.next;
    }
    // Every value came whole on some page, except those of a release cut short (`more`) that only diff pages through.
    assert.ok(seen >= RELEASES * 3, `${seen} values came whole`);
    viewer.close();
  });

  test('eight pipelined diffs across every release: values compared by hash, never read whole', async () => {
    const viewer = await connect(VIEWER);
    const diffs = await othersServed(() => Promise.all(Array.from({ length: 8 }, () => viewer.request({ op: 'diff', env: 'shop', from: first, to: last }))));
    for (const d of diffs) {
      assert.equal(d.changes.length, RELEASES * VALUES_PER_RELEASE);
      assert.equal(d.big?.length, RELEASES * VALUES_PER_RELEASE);
      assert.equal(d.next, undefined);
    }
    // The same diff with the values: pages of at most answerBytes, continued by key, every key once.
    const keys = new Set<string>();
    let after: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const page = await viewer.request({ op: 'diff', env: 'shop', from: first, to: last, values: true, ...(after === undefined ? {} : { after }) });
      const bytes = page.changes.reduce((n, [, , a]) => n + (a?.length ?? 0), 0);
      assert.ok(bytes <= 4 * MB, `a page of ${bytes} bytes`);
      for (const [key] of page.changes) {
        assert.ok(!keys.has(key), `${key} twice`);
        keys.add(key);
      }
      if (page.next === undefined) break;
      after = page.next;
    }
    assert.equal(keys.size, RELEASES * VALUES_PER_RELEASE);
    viewer.close();
    assert.ok(peak < RSS_BOUND, `the committing process peaked at ${Math.round(peak / MB)} MB`);
  });

  test('twenty sessions list the ~108 MB environment at once: pages of at most answerBytes, the whole of it across pages', async () => {
    const sessions = await Promise.all(Array.from({ length: 20 }, () => connect(VIEWER)));
    const firstPages = await othersServed(() => Promise.all(sessions.map((s) => s.request({ op: 'list', env: 'shop' }))));
    for (const page of firstPages) {
      assert.ok(page.entries.reduce((n, [k, v]) => n + k.length + v.length, 0) <= 4 * MB);
      assert.notEqual(page.next, undefined);
    }
    let count = 0;
    let after: string | undefined;
    for (let pages = 0; pages < 200; pages++) {
      const page = await sessions[0].request({ op: 'list', env: 'shop', ...(after === undefined ? {} : { after }) });
      count += page.entries.length;
      if (page.next === undefined) break;
      after = page.next;
    }
    assert.equal(count, RELEASES * VALUES_PER_RELEASE + 1, 'every key once (and the small one)');
    for (const s of sessions) s.close();
    assert.ok(server.proc.child.exitCode === null, 'the server is up');
    assert.ok(peak < RSS_BOUND, `the committing process peaked at ${Math.round(peak / MB)} MB`);
  });

  test('what the admin prints: sizes and hashes, and where to go on', async () => {
    const out = await run(['admin', '--server', server.address, '--user', VIEWER.user, 'history', 'shop', 'blob/8/0'], { env: { VITEFA_PASSWORD: VIEWER.secret } });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /\+ blob\/8\/0 = <1\.0 MiB value, sha256 [0-9a-f]{16}…; --values shows it>/);
    const list = await run(['admin', '--server', server.address, '--user', VIEWER.user, 'list', 'shop'], { env: { VITEFA_PASSWORD: VIEWER.secret } });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /\(the page ended at the server's answer limit: continue with --after "blob\/\d+\/\d+"\)\n$/);
  });
});
