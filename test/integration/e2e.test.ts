import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigReader } from '../../src/reader/index.js';
import { agentToken, Proc, Procs, run, startServer, tempDir, waitFor } from '../support/procs.js';

/** Real processes: a server on the embedded store, an agent, admin commands, and readers. */
describe('server + agent + admin, end to end', () => {
  const procs = new Procs();
  const dir = tempDir();
  const agentStore = path.join(dir, 'agent');
  let server: Proc;
  let address: string;
  let agent: Proc;
  const admin = (...args: string[]) => run(['admin', '--server', address, ...args]);
  let token: string;
  const startAgent = () =>
    procs.track(new Proc(['agent', '--servers', address, '--store', agentStore], { env: { VITEFA_TRACE: 'agent', VITEFA_AGENT_TOKEN: token } }));
  const readValue = async (env: string, key: string) => {
    const reader = ConfigReader.open(agentStore);
    try {
      return reader.get(env, key);
    } finally {
      await reader.close();
    }
  };

  before(async () => {
    ({ proc: server, address } = await startServer(path.join(dir, 'server')));
    procs.track(server);
    const created = await admin('env', 'add', 'demo');
    assert.equal(created.code, 0, created.stderr);
    token = await agentToken(address, 'e2e-agent');
    agent = startAgent();
    await agent.waitForOutput(/agent connected/);
  });

  after(async () => {
    await procs.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a value set through admin is readable through the reader and `vitefa read`', async () => {
    const set = await admin('set', 'demo', 'greeting', '"hello"');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /demo: revision \d+ \(1 key changed\)/);
    await waitFor('greeting in the agent store', async () => (await readValue('demo', 'greeting')) === 'hello', 30_000);
    const read = await run(['read', '--store', agentStore, 'demo', 'greeting']);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, 'hello\n');
    const json = await run(['read', '--store', agentStore, '--json', 'demo', 'greeting']);
    assert.equal(json.stdout, '"hello"\n');
  });

  test('an agent restarted after missing releases resumes from its revision without a snapshot', async () => {
    await admin('set', 'demo', 'a', '1');
    await waitFor('a=1', async () => (await readValue('demo', 'a')) === 1);
    await agent.stop();
    for (let i = 2; i <= 4; i++) assert.equal((await admin('set', 'demo', 'a', String(i))).code, 0);
    agent = startAgent();
    await waitFor('a=4 after restart', async () => (await readValue('demo', 'a')) === 4);
    // The trace line of the last release follows its commit through a pipe: wait for it too.
    const appliedLines = () => agent.stderr.split('\n').filter((l) => l.includes('applied'));
    await waitFor('three applied lines', () => appliedLines().length >= 3);
    // Anything more the restart brought (a snapshot) comes before a release made now.
    assert.equal((await admin('set', 'demo', 'a', '5')).code, 0);
    await waitFor('a=5', async () => (await readValue('demo', 'a')) === 5);
    await waitFor('four applied lines', () => appliedLines().length >= 4);
    const applied = appliedLines();
    assert.equal(applied.length, 4, `expected four releases, got:\n${applied.join('\n')}`);
    for (const line of applied) assert.match(line, /applied release demo@\d+ after \d+ \(1 changes\)/);
    assert.doesNotMatch(agent.stderr, /snapshot/);
  });

  test('a release of many keys is seen by a concurrent reader all at once or not at all', async () => {
    const reader = ConfigReader.open(agentStore);
    const file = path.join(dir, 'many.json');
    const KEYS = 2000;
    let stop = false;
    let snapshots = 0;
    const torn: string[] = [];
    const watch = (async () => {
      while (!stop) {
        const values = Object.entries(reader.list('demo')).filter(([k]) => k.startsWith('many/'));
        const generations = new Set(values.map(([, v]) => v));
        if (values.length > 0 && (values.length !== KEYS || generations.size !== 1)) {
          torn.push(`${values.length} keys, generations ${[...generations].join(',')}`);
        }
        snapshots++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      for (let generation = 1; generation <= 5; generation++) {
        const body = Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`many/${i}`, generation]));
        fs.writeFileSync(file, JSON.stringify(body));
        const applied = await admin('apply', 'demo', file);
        assert.equal(applied.code, 0, applied.stderr);
        await waitFor(`generation ${generation}`, () => reader.get('demo', `many/${KEYS - 1}`) === generation);
      }
    } finally {
      stop = true;
      await watch;
      await reader.close();
    }
    assert.ok(snapshots > 5, `the reader only looked ${snapshots} times`);
    assert.deepEqual(torn, []);
  });

  test('with the server stopped the agent store still answers, and the agent catches up when it returns', async () => {
    await admin('set', 'demo', 'offline', '"before"');
    await waitFor('offline=before', async () => (await readValue('demo', 'offline')) === 'before');
    await server.stop('SIGKILL');
    await agent.waitForOutput(/agent disconnected/);
    const read = await run(['read', '--store', agentStore, 'demo', 'offline']);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout, 'before\n');
    // Same address and data folder: the agent reconnects on its own.
    const port = address.split(':')[1];
    server = procs.track(new Proc(['server', '--listen', `127.0.0.1:${port}`, '--store', path.join(dir, 'server'), '--max-agents', '2000']));
    await server.waitForOutput(/listening on/);
    await waitFor('agent reconnect', () => (agent.stdout.match(/agent connected/g)?.length ?? 0) >= 2, 15_000);
    assert.equal((await admin('set', 'demo', 'offline', '"after"')).code, 0);
    await waitFor('offline=after', async () => (await readValue('demo', 'offline')) === 'after');
  });

  test('the REPL runs the same commands, shows help, survives errors and keeps history', async () => {
    const historyFile = path.join(dir, 'repl-history');
    const session = await run(['admin', '--server', address], {
      input: ['help', 'set demo repl 42', 'get demo repl', 'bogus', "merge demo repl '{oops'", 'get demo repl --json', 'env list', 'quit', ''].join('\n'),
      env: { VITEFA_HISTORY_FILE: historyFile },
    });
    assert.equal(session.code, 0, session.stderr);
    const out = session.stdout;
    assert.match(out, /logged in as admin \(admin\) on [^\s/]+\/127\.0\.0\.1:\d+;/);
    assert.match(out, /set ENV KEY VALUE +set a key/);
    assert.match(out, /demo: revision \d+ \(1 key changed\)/);
    assert.match(out, /admin@[^\s/]+\/127\.0\.0\.1:\d+> 42\n/);
    assert.match(out, /error: unknown command "bogus"/);
    assert.match(out, /error: merge value is not valid JSON/);
    assert.match(out, /"value":"42"/);
    assert.match(out, /ENV +REVISION +KEYS +PARENTS\ndemo +\d+ +\d+ +-/);
    assert.deepEqual(fs.readFileSync(historyFile, 'utf8').trim().split('\n'), [
      'help', 'set demo repl 42', 'get demo repl', 'bogus', "merge demo repl '{oops'", 'get demo repl --json', 'env list', 'quit',
    ]);
  });

  test('a rollback to a revision before the environment existed is refused in one line, and nothing changes', async () => {
    // demo was created first (revision 1 is its env.add); `later` begins after it.
    const created = await admin('--json', 'env', 'add', 'later');
    assert.equal(created.code, 0, created.stderr);
    const { rev: first } = JSON.parse(created.stdout) as { rev: number };
    assert.equal((await admin('set', 'later', 'kept', '1')).code, 0);
    const refused = await admin('rollback', 'later', '1');
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^vitefa: later did not exist at revision 1: its first revision is ${first}\\b`));
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    const kept = await admin('get', 'later', 'kept');
    assert.equal(kept.stdout.trim(), '1');
    // Its first revision is a state it had (empty): that rollback is made.
    const toFirst = await admin('rollback', 'later', String(first));
    assert.equal(toFirst.code, 0, toFirst.stderr);
    assert.equal((await admin('get', 'later', 'kept')).code, 1);
  });

  test('bad input prints one clear line and exits non-zero', async () => {
    const cases: [string[], number, RegExp][] = [
      [['set', 'nope', 'k', '1'], 1, /^vitefa: environment nope does not exist/],
      [['bogus'], 2, /^vitefa: unknown command "bogus"/],
      [['merge', 'demo', 'k', '{bad'], 2, /^vitefa: merge value is not valid JSON/],
      [['get', 'demo', 'missing'], 1, /^vitefa: key missing does not exist in demo/],
      [['apply', 'demo', path.join(dir, 'absent.json')], 1, /^vitefa: cannot read .*absent\.json: ENOENT/],
      [['rollback', 'demo', 'x'], 2, /^vitefa: not a revision number: x/],
      [['env', 'add', 'bad name!'], 1, /^vitefa: invalid environment name/],
      [['set', 'demo', 'k'], 2, /^vitefa: usage: set ENV KEY VALUE/],
      [['set', 'demo', 'deep', `${'['.repeat(50_000)}${']'.repeat(50_000)}`], 1, /^vitefa: deep: value nested deeper than 256 levels/],
      [['merge', 'demo', 'deep', `${'{"a":'.repeat(300)}1${'}'.repeat(300)}`], 1, /^vitefa: deep: value nested deeper than 256 levels/],
    ];
    for (const [args, code, message] of cases) {
      const result = await admin(...args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${result.stderr}`);
    }
    for (const bad of ['abc', '-5', '1.5', '0']) {
      const timeout = await run(['admin', '--server', address, 'env', 'list'], { env: { VITEFA_REQUEST_TIMEOUT_MS: bad } });
      assert.equal(timeout.code, 2, `VITEFA_REQUEST_TIMEOUT_MS=${bad}: ${timeout.stderr}`);
      assert.match(timeout.stderr, /^vitefa: VITEFA_REQUEST_TIMEOUT_MS must be a whole number of milliseconds/);
      assert.equal(timeout.stderr.trim().split('\n').length, 1);
    }
    const missingStore = await run(['read', '--store', path.join(dir, 'none'), 'demo']);
    assert.equal(missingStore.code, 1);
    assert.match(missingStore.stderr, /^vitefa: no agent store at /);
  });
});
