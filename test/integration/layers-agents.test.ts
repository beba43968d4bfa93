/**
 * Layered environments end to end, with real processes: a server on the embedded store, agents
 * following environments built on `base`, and readers in other processes. One write to `base`
 * lands in every followed view at its revision, in one transaction of the agent's store (a reader
 * never sees two of them at different revisions, even with the agent SIGKILLed in the middle of
 * the stream and catching up); the host shows the revision of each layer behind a view; a server
 * SIGKILLed and started again on its data folder serves the agents the same views.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AdminClient } from '../../src/admin/client.js';
import { ConfigReader } from '../../src/reader/index.js';
import { parseEndpoint } from '../../src/transport/client.js';
import { ADMIN_PASSWORD, agentToken, Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

/** Environments built on base. */
const DEPENDENTS = 100;
const app = (i: number): string => `app${String(i).padStart(3, '0')}`;
/** What the first agent follows: ten of them, app003 among them. */
const FOLLOWED = Array.from({ length: 10 }, (_, i) => app(i * 10 + 3));
/** What the second agent follows: two views of base that differ by their own entries. */
const A = app(1);
const B = app(2);
/** Writes to base while the second agent is SIGKILLed and started again. */
const STREAM = 60;

/** Reads the agent store at `dir` in one synchronous run: one snapshot. */
async function read<T>(dir: string, body: (reader: ConfigReader) => T): Promise<T> {
  const reader = ConfigReader.open(dir);
  try {
    return body(reader);
  } finally {
    await reader.close();
  }
}

/** The lines of an agent's trace saying what it applied. */
const appliedLines = (agent: Proc): string[] => agent.stderr.split('\n').filter((l) => / applied /.test(l));

/**
 * A reader in another process: reads A's and B's revisions and their value of `n` in one snapshot
 * per turn of its event loop, recording every snapshot where they differ, until its input says stop.
 */
function startReader(dir: string): { ready: Promise<void>; stop: () => Promise<{ torn: unknown[]; tornCount: number; revisions: number; reads: number }> } {
  const script = `
    import { ConfigReader } from ${JSON.stringify(new URL('../../src/reader/index.ts', import.meta.url).href)};
    const reader = ConfigReader.open(${JSON.stringify(dir)});
    let stop = false;
    process.stdin.on('data', () => { stop = true; });
    const torn = [];
    const revisions = new Set();
    let reads = 0;
    process.stdout.write('reading\\n');
    while (!stop) {
      const state = [reader.revision(${JSON.stringify(A)}), reader.revision(${JSON.stringify(B)}), reader.getText(${JSON.stringify(A)}, 'n'), reader.getText(${JSON.stringify(B)}, 'n')];
      reads++;
      revisions.add(state[0]);
      if (state[0] !== state[1] || state[2] !== state[3]) torn.push(state);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await reader.close();
    process.stdout.write(JSON.stringify({ torn: torn.slice(0, 10), tornCount: torn.length, revisions: revisions.size, reads }) + '\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => out.includes('reading') && resolve());
    void exited.then((code) => reject(new Error(`the reader exited with ${code} before reading: ${out}`)));
  });
  const stop = async () => {
    child.stdin.end('stop\n');
    assert.equal(await exited, 0, out);
    return JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { torn: unknown[]; tornCount: number; revisions: number; reads: number };
  };
  return { ready, stop };
}

describe('layered environments through a server and agents, as processes', () => {
  const procs = new Procs();
  const dir = tempDir('vitefa-layers-agents-');
  const serverDir = path.join(dir, 'server');
  const store1 = path.join(dir, 'agent1');
  const store2 = path.join(dir, 'agent2');
  let server: Proc;
  let address: string;
  let admin: AdminClient;
  let token: string;
  let agent1: Proc;
  let agent2: Proc;

  const connectAdmin = () =>
    AdminClient.connect({ ...parseEndpoint(address), login: { user: 'admin', secret: ADMIN_PASSWORD }, connectTimeoutMs: 30_000, requestTimeoutMs: 60_000 });
  const startAgent = (store: string, envs: string[]) =>
    procs.track(new Proc(['agent', '--servers', address, '--store', store, '--env', ...envs], { env: { VITEFA_TRACE: 'agent', VITEFA_AGENT_TOKEN: token } }));
  const setBase = async (key: string, value: string): Promise<number> => (await admin.request({ op: 'set', env: 'base', key, value })).rev;
  /** Waits until the agent store at `store` holds every one of `envs` at `rev`. */
  const holdAt = (store: string, envs: string[], rev: number) =>
    waitFor(`${envs.join(', ')} at ${rev} in ${path.basename(store)}`, () => read(store, (r) => envs.every((e) => r.revision(e) === rev)), 60_000, 50);

  before(async () => {
    ({ proc: server, address } = await startServer(serverDir));
    procs.track(server);
    admin = await connectAdmin();
    await admin.request({ op: 'env.add', env: 'base' });
    for (let i = 0; i < DEPENDENTS; i++) {
      await admin.request({ op: 'env.add', env: app(i) });
      await admin.request({ op: 'env.layers', env: app(i), parents: ['base'] });
      await admin.request({ op: 'set', env: app(i), key: 'k', value: JSON.stringify({ own: i }) });
    }
    token = await agentToken(address, 'layers-agent');
  });

  after(async () => {
    admin?.close();
    await procs.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('one write to base: an agent following ten of its 100 dependents holds all ten at its revision, with the merged values, applied as one group', async () => {
    agent1 = startAgent(store1, FOLLOWED);
    await agent1.waitForOutput(/agent connected/);
    await waitFor('the ten environments in the agent store', () => read(store1, (r) => FOLLOWED.every((e) => r.revision(e) > 0)), 60_000, 50);
    const rev = await setBase('k', '{"shared":"yes"}');
    await holdAt(store1, FOLLOWED, rev);
    const values = await read(store1, (r) => FOLLOWED.map((e) => [r.revision(e), r.get(e, 'k')]));
    assert.deepEqual(values, FOLLOWED.map((e) => [rev, { shared: 'yes', own: Number(e.slice(3)) }]));
    await agent1.waitForOutput(/applied a group of 10 of 10 held/);
    assert.equal(appliedLines(agent1).filter((l) => /applied release app\d+@/.test(l) && l.includes(`@${rev} `)).length, 10);

    // The host shows the revision behind the view and each layer's.
    const meta = await run(['read', '--store', store1, '--meta', 'app003']);
    assert.equal(meta.code, 0, meta.stderr);
    assert.match(meta.stdout, new RegExp(`^app003 revision ${rev} chain [0-9a-f]{16}\\nlayers: base@${rev} app003@${rev}\\n$`));
    const json = await run(['read', '--store', store1, '--meta', '--json', 'app003']);
    assert.deepEqual((JSON.parse(json.stdout) as { layers: unknown }).layers, [{ env: 'base', rev }, { env: 'app003', rev }]);
    assert.deepEqual(await read(store1, (r) => [r.layers('app013'), r.layers('base')]), [[{ env: 'base', rev }, { env: 'app013', rev }], []]);
    // A write to the view's own entries moves it alone: base stays at the revision behind it.
    const own = (await admin.request({ op: 'set', env: 'app003', key: 'mine', value: '1' })).rev;
    await holdAt(store1, ['app003'], own);
    assert.deepEqual(await read(store1, (r) => r.layers('app003')), [{ env: 'base', rev }, { env: 'app003', rev: own }]);
  });

  test('a reader never sees two views of one write at different revisions, with the agent SIGKILLed in the stream; it catches up as a group', async () => {
    agent2 = startAgent(store2, [A, B]);
    await agent2.waitForOutput(/agent connected/);
    // From here both views are at one revision: every write to base moves both.
    let last = await setBase('n', '0');
    await holdAt(store2, [A, B], last);
    const views = await read(store2, (r) => [r.get(A, 'k'), r.get(B, 'k')]);
    assert.notDeepEqual(views[0], views[1], 'the views differ by their own entries');
    const reader = startReader(store2);
    await reader.ready;
    let restarted: Proc | undefined;
    const killAt = STREAM / 3;
    const restartAt = killAt + 10;
    for (let i = 1; i <= STREAM; i++) {
      const write = setBase('n', String(i));
      if (i === killAt) {
        // Without waiting for the agent: it is receiving or applying the stream when it dies.
        agent2.child.kill('SIGKILL');
        await agent2.exited;
      }
      last = await write;
      if (i === restartAt) {
        restarted = startAgent(store2, [A, B]);
        await restarted.waitForOutput(/agent connected/);
      }
    }
    await holdAt(store2, [A, B], last);
    const report = await reader.stop();
    assert.deepEqual(report.torn, [], `${report.tornCount} of ${report.reads} snapshots held A and B at different revisions`);
    assert.ok(report.revisions > 2, `the reader saw ${report.revisions} revisions in ${report.reads} reads: it read during the stream`);
    assert.deepEqual(await read(store2, (r) => [r.getText(A, 'n'), r.getText(B, 'n')]), [String(STREAM), String(STREAM)]);
    // What it missed while down came as one group: both views together, from releases (no snapshot).
    if (restarted === undefined) throw new Error('the agent was not started again');
    const again = restarted;
    await waitFor('the restarted agent applied the last write', () => appliedLines(again).some((l) => l.includes(`${B}@${last} `)), 60_000);
    const first = appliedLines(again).find((l) => /applied (a group|release|snapshot)/.test(l)) ?? '';
    const group = /applied a group of (\d+) of \d+ held/.exec(first);
    assert.ok(group !== null && Number(group[1]) >= 2 * (restartAt - killAt), `the catch-up was one group of both views' releases: ${first}`);
    assert.doesNotMatch(again.stderr, /applied snapshot/);
    agent2 = again;
  });

  test('a server SIGKILLed and started again on its data folder: the agents reconnect to the same views, and the next write reaches them', async () => {
    const envs = [...FOLLOWED, A, B];
    const storeOf = (env: string) => (env === A || env === B ? store2 : store1);
    const before = new Map((await admin.request({ op: 'env.list' })).envs.map((e) => [e.env, e.rev]));
    admin.close();
    await server.stop('SIGKILL');
    await agent1.waitForOutput(/agent disconnected/);
    await agent2.waitForOutput(/agent disconnected/);
    const restartedAt = [agent1.stderr.length, agent2.stderr.length];
    server = procs.track(new Proc(['server', '--listen', address, '--store', serverDir, '--max-agents', '2000']));
    await server.waitForOutput(/listening on/);
    admin = await connectAdmin();
    const afterRestart = new Map((await admin.request({ op: 'env.list' })).envs.map((e) => [e.env, e.rev]));
    assert.deepEqual(afterRestart, before, 'the server holds the revisions it held');
    for (const agent of [agent1, agent2]) {
      await waitFor('the agent reconnected', () => (agent.stdout.match(/agent connected/g)?.length ?? 0) >= 2, 60_000);
    }
    for (const env of envs) {
      const held = await read(storeOf(env), (r) => [r.revision(env), r.getText(env, 'k'), r.getText(env, 'n')]);
      const served = [(await admin.request({ op: 'get', env, key: 'k' })).value, (await admin.request({ op: 'get', env, key: 'n' })).value];
      assert.deepEqual(held, [before.get(env), ...served], env);
    }
    const rev = await setBase('k', '{"shared":"after"}');
    for (const store of [store1, store2]) await holdAt(store, envs.filter((e) => storeOf(e) === store), rev);
    const values = await read(store1, (r) => FOLLOWED.map((e) => r.get(e, 'k')));
    assert.deepEqual(values, FOLLOWED.map((e) => ({ shared: 'after', own: Number(e.slice(3)) })));
    assert.deepEqual(await read(store2, (r) => [r.layers(A), r.get(B, 'k')]), [[{ env: 'base', rev }, { env: A, rev }], { shared: 'after', own: 2 }]);
    // Current when they came back: nothing was sent again whole.
    assert.doesNotMatch(agent1.stderr.slice(restartedAt[0]), /applied snapshot/);
    assert.doesNotMatch(agent2.stderr.slice(restartedAt[1]), /applied snapshot/);
    const history = await run(['admin', '--server', address, 'history', 'app003', '--limit', '5']);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, new RegExp(`^rev ${rev} {2}\\S+ {2}via base@${rev} {2}set {2}by admin\\n`));
  });
});
