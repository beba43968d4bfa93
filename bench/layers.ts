/**
 * The layered environments harness: `npm run bench:layers -- --agents N [--json FILE]`.
 *
 * In one run, against a real `vitefa server` (embedded store in a temp
 * folder, or `--store mysql://…`):
 * - one-key writes to `plain`, an environment standing alone followed by all
 *   N agents, beside one-key writes to `base`, which DEPENDENTS environments
 *   (app000…) are built on, each followed by N / DEPENDENTS agents: the
 *   admin's round trip of each write (commit) and its propagation to every
 *   agent, and the ratios layered / plain;
 * - an apply of BULK keys to `base` (its dependents each overriding a few
 *   keys of their own) beside the same apply to an environment standing alone;
 * - the server's heap per environment: E environments of K keys standing
 *   alone, and the same merged views built on `base` with a few own keys each.
 * Prints a table, writes JSON with --json.
 */
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminClient } from '../src/admin/client.js';
import { makeVerifier } from '../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../src/security/token.js';
import { HeapReports, SimFleet } from './fleet.js';
import { now } from './sim-agents.js';
import { fmtMs, median, summarize, table, type Summary } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '5' },
    port: { type: 'string', default: '7700' },
    /** Environments built on `base`, the agents spread evenly over them. */
    dependents: { type: 'string', default: '100' },
    /** Keys each dependent gives itself, over the same keys of `base` (in the bulk apply and the memory figures). */
    'own-keys': { type: 'string', default: '10' },
    /** Keys of the bulk apply (0: no bulk phase), and how many applies of each kind. */
    'bulk-keys': { type: 'string', default: '10000' },
    'bulk-rounds': { type: 'string', default: '3' },
    /** Environments and keys of each for the memory figures (0 environments: no memory phase). */
    'memory-envs': { type: 'string', default: '1000' },
    'memory-keys': { type: 'string', default: '100' },
    /** Both fleets connected at once (2N connections) and the rounds alternating, instead of one fleet after the other. */
    alternate: { type: 'boolean', default: false },
    store: { type: 'string' },
    json: { type: 'string' },
    timeout: { type: 'string', default: '900' },
  },
  strict: true,
});

const AGENTS = Number(args.agents);
const ROUNDS = Number(args.rounds);
const PORT = Number(args.port);
const DEPENDENTS = Number(args.dependents);
const OWN = Number(args['own-keys']);
const BULK = Number(args['bulk-keys']);
const BULK_ROUNDS = Number(args['bulk-rounds']);
const MEM_ENVS = Number(args['memory-envs']);
const MEM_KEYS = Number(args['memory-keys']);
const ints = [AGENTS, ROUNDS, DEPENDENTS, OWN, BULK, BULK_ROUNDS, MEM_ENVS, MEM_KEYS];
if (ints.some((n) => !Number.isInteger(n) || n < 0) || ROUNDS < 1 || DEPENDENTS < 1 || AGENTS < DEPENDENTS || BULK_ROUNDS < 1 || (MEM_ENVS > 0 && MEM_KEYS <= OWN)
  || PORT < 1024 || PORT > 65535 || (PORT >= 32768 && PORT <= 60999) || (args.store !== undefined && !args.store.startsWith('mysql://'))) {
  process.stderr.write('usage: npm run bench:layers -- [--agents N (at least --dependents)] [--rounds R] [--port P (outside 32768-60999)] [--dependents D] [--own-keys O]\n'
    + '  [--bulk-keys N (0: none)] [--bulk-rounds B] [--memory-envs E (0: none)] [--memory-keys K (more than O)] [--alternate] [--store mysql://…] [--json FILE] [--timeout S]\n');
  process.exit(2);
}
setTimeout(() => {
  process.stderr.write(`\nbench:layers: time limit of ${args.timeout} s reached; stopping\n`);
  void cleanup().finally(() => process.exit(1));
}, Number(args.timeout) * 1000).unref();

/** Connections the server holds at once: both fleets with --alternate. */
const CONNECTIONS = args.alternate ? 2 * AGENTS : AGENTS;
/** As bench/run.ts: up to 10,000 agents per loopback address. */
const ADDRESSES = Array.from({ length: Math.max(1, Math.ceil(CONNECTIONS / 10_000)) }, (_, i) => `127.0.0.${i + 2}:${PORT}`);
const PLAIN = 'plain';
const BASE = 'base';
const APPS = Array.from({ length: DEPENDENTS }, (_, i) => `app${String(i).padStart(3, '0')}`);
const PASSWORD = randomBytes(12).toString('base64url');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-bench-layers-'));
const databases: string[] = [];
let server: Server | undefined;
const fleets: SimFleet[] = [];

const tty = process.stderr.isTTY;
const say = (line: string): void => void process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * The value of key j (about 50 bytes of JSON), or environment `env`'s own
 * value of it: a string, which replaces the object below it whole, so a
 * merged view holds exactly the own value (docs/merge-and-clear.md).
 */
const value = (j: number, round = 0, env?: number): string =>
  JSON.stringify(env === undefined ? { id: j, host: `10.0.${j % 256}.${j % 200}`, on: true, round } : `db-${env}-${j}.internal`);
const entries = (from: number, to: number, round = 0, env?: number): [string, string][] =>
  Array.from({ length: to - from }, (_, i) => [`key/${from + i}`, value(from + i, round, env)]);

/** A store of its own for one server: a folder in the temp folder, or a fresh MySQL database NAME_suffix (dropped at the end). */
async function freshStore(suffix: string): Promise<string> {
  if (args.store === undefined) return path.join(dataDir, suffix);
  const base = new URL(args.store);
  const name = `${base.pathname.replace(/^\//, '') || 'vitefa_bench'}_${suffix}`;
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`database name ${name}: letters, digits and _ only`);
  databases.push(name);
  await dropDatabases([name]);
  base.pathname = `/${name}`;
  return base.toString();
}

async function dropDatabases(names: string[]): Promise<void> {
  if (args.store === undefined || names.length === 0) return;
  const mysql = await import('mysql2/promise');
  const url = new URL(args.store);
  url.pathname = '/';
  const conn = await mysql.createConnection(url.toString());
  try {
    for (const name of names) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await conn.end();
  }
}

/** A `vitefa server` process and the heap figures its processes report on SIGUSR2. */
interface Server {
  proc: ChildProcess;
  heap: HeapReports;
}

async function startServer(store: string): Promise<Server> {
  const config = path.join(dataDir, 'server.json');
  // Every simulated agent connects from one loopback address (as in bench/run.ts).
  fs.writeFileSync(config, JSON.stringify({ limits: { pendingHellosPerAddress: CONNECTIONS } }));
  const proc = spawn(process.execPath, [CLI, 'server', '--listen', ADDRESSES.join(','), '--store', store, '--max-agents', String(CONNECTIONS), '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '--expose-gc', VITEFA_ADMIN_PASSWORD: PASSWORD, VITEFA_PASSWORD_ITERATIONS: '4096' },
  });
  const heap = new HeapReports();
  heap.follow(proc);
  server = { proc, heap };
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
  return server;
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null) {
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGTERM');
    await exited;
  }
  if (server === s) server = undefined;
}

/** The heap in use across the server's processes, after a collection in each (SIGUSR2 with --expose-gc). */
async function heapAfterGc(s: Server): Promise<number> {
  await sleep(2000);
  s.proc.kill('SIGUSR2');
  await sleep(1500);
  return s.heap.total();
}

function admin(): Promise<AdminClient> {
  const [host, port] = ADDRESSES[0].split(':');
  return AdminClient.connect({ host, port: Number(port), login: { user: 'admin', secret: PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 300_000 });
}

/** Runs `work` on every item, `width` at a time (one admin session takes 32 requests in flight). */
async function inParallel<T>(items: T[], work: (item: T) => Promise<unknown>, width = 16): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

async function cleanup(): Promise<void> {
  server?.proc.kill('SIGKILL');
  await Promise.all(fleets.splice(0).map((f) => f.close()));
  fs.rmSync(dataDir, { recursive: true, force: true });
  await dropDatabases(databases.splice(0)).catch(() => undefined);
}

type Kind = 'plain' | 'layered';
interface Round {
  kind: Kind;
  rev: number;
  commitMs: number;
  summary: Summary;
  received: number;
}

const countReceived = (times: Float64Array): number => times.reduce((n, t) => (Number.isNaN(t) ? n : n + 1), 0);

/** One measured write: every agent of `f` watches for revision `rev`, the admin writes it, the arrivals come back once every agent has it. */
async function round(client: AdminClient, f: SimFleet, kind: Kind, rev: number, samples: number[]): Promise<Round> {
  f.watch(rev);
  await sleep(200);
  const sent = now();
  const result = await client.request({ op: 'set', env: kind === 'plain' ? PLAIN : BASE, key: 'k', value: String(rev) });
  const commitMs = now() - sent;
  if (result.rev !== rev) throw new Error(`expected revision ${rev}, got ${result.rev}`);
  let got = 0;
  const times = await until(`${kind} revision ${rev}`, async () => {
    const { times } = await f.report(rev);
    got = countReceived(times);
    return got >= AGENTS ? times : false;
  }, 60_000).catch(async (err: Error) => {
    const st = await f.status();
    throw new Error(`${err.message}: ${got} of ${AGENTS} agents have it; ${st.connected} connected, holding ${st.heldMin} to ${st.heldMax}; ${st.gaps} gaps, ${st.errors} errors`);
  });
  const mine: number[] = [];
  for (const t of times) if (!Number.isNaN(t)) mine.push(t - sent);
  samples.push(...mine);
  return { kind, rev, commitMs, summary: summarize(mine), received: mine.length };
}

/** Connects N agents: all of them on `plain`, or spread evenly over the dependents of `base`. */
async function connect(kind: Kind, token: string): Promise<SimFleet> {
  const f = new SimFleet(AGENTS);
  fleets.push(f);
  const c0 = Date.now();
  f.start('protocol', ADDRESSES, kind === 'plain' ? PLAIN : APPS, 1, 500, token);
  await until(`${kind} agents connected`, async () => {
    const s = await f.status();
    return s.connected >= AGENTS && s.heldMin > 0 ? s : false;
  }, 600_000);
  say(`  ${AGENTS} agents on ${kind === 'plain' ? PLAIN : `${DEPENDENTS} dependents of ${BASE}`} connected and current in ${((Date.now() - c0) / 1000).toFixed(1)} s`);
  return f;
}

/** Closes a fleet and waits until the server holds none of its agents (the next fleet finds every place free). */
async function closeFleet(f: SimFleet, client: AdminClient): Promise<{ gaps: number; errors: number }> {
  const st = await f.status();
  f.quiet();
  await f.close();
  fleets.splice(fleets.indexOf(f), 1);
  const others = fleets.length * AGENTS;
  await until('the server to let the agents go', async () => ((await client.request({ op: 'status' })).agentsTotal <= others ? true : false), 60_000);
  return { gaps: st.gaps, errors: st.errors };
}

/** Plain and layered rounds on one server; then, with no agent connected, the bulk applies. */
async function writesPhase(): Promise<{ rounds: Round[]; samples: Record<Kind, number[]>; saw: { gaps: number; errors: number }; bulk: Record<Kind, number[]> | undefined }> {
  const s = await startServer(await freshStore('layers'));
  const client = await admin();
  await client.request({ op: 'env.add', env: PLAIN });
  await client.request({ op: 'env.add', env: BASE });
  await client.request({ op: 'set', env: PLAIN, key: 'k', value: '0' });
  await client.request({ op: 'set', env: BASE, key: 'k', value: '0' });
  await inParallel(APPS, async (app) => {
    await client.request({ op: 'env.add', env: app });
    await client.request({ op: 'env.layers', env: app, parents: [BASE] });
    if (OWN > 0) await client.request({ op: 'apply', env: app, entries: entries(0, OWN, 0, APPS.indexOf(app)), replace: false });
  });
  const token = newToken();
  await client.request({ op: 'token.add', name: 'bench-agents', envs: ['*'], id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) });
  let head = (await client.request({ op: 'set', env: PLAIN, key: 'k', value: '1' })).rev;

  const rounds: Round[] = [];
  const samples: Record<Kind, number[]> = { plain: [], layered: [] };
  const saw = { gaps: 0, errors: 0 };
  const run = async (f: SimFleet, kind: Kind, n: number): Promise<void> => {
    const r = await round(client, f, kind, ++head, samples[kind]);
    rounds.push(r);
    say(`  ${kind} round ${n}: commit ${fmtMs(r.commitMs)} ms; propagation p50 ${fmtMs(r.summary.p50)} / p99 ${fmtMs(r.summary.p99)} / max ${fmtMs(r.summary.max)} ms; ${r.received}/${AGENTS}`);
  };
  const add = (x: { gaps: number; errors: number }): void => {
    saw.gaps += x.gaps;
    saw.errors += x.errors;
  };
  if (args.alternate) {
    say(`server: both fleets connected (${CONNECTIONS} agents), rounds alternating`);
    const both = { plain: await connect('plain', token.text), layered: await connect('layered', token.text) };
    for (let n = 1; n <= ROUNDS; n++) {
      for (const kind of (n % 2 === 1 ? ['plain', 'layered'] : ['layered', 'plain']) as Kind[]) await run(both[kind], kind, n);
    }
    add(await closeFleet(both.plain, client));
    add(await closeFleet(both.layered, client));
  } else {
    for (const kind of ['plain', 'layered'] as Kind[]) {
      say(`server: ${kind} rounds, one fleet after the other`);
      const f = await connect(kind, token.text);
      for (let n = 1; n <= ROUNDS; n++) await run(f, kind, n);
      add(await closeFleet(f, client));
    }
  }

  let bulk: Record<Kind, number[]> | undefined;
  if (BULK > 0) {
    say(`server: applies of ${BULK} keys, no agent connected: to ${BASE} (${DEPENDENTS} dependents, ${OWN} own keys each) and to an environment standing alone`);
    await client.request({ op: 'env.add', env: 'solo' });
    bulk = { plain: [], layered: [] };
    for (let n = 1; n <= BULK_ROUNDS; n++) {
      for (const kind of (n % 2 === 1 ? ['plain', 'layered'] : ['layered', 'plain']) as Kind[]) {
        const a0 = now();
        await client.request({ op: 'apply', env: kind === 'plain' ? 'solo' : BASE, entries: entries(0, BULK, n), replace: false });
        bulk[kind].push(now() - a0);
      }
      say(`  bulk round ${n}: standing alone ${fmtMs(bulk.plain.at(-1)!)} ms, layered ${fmtMs(bulk.layered.at(-1)!)} ms`);
    }
  }
  client.close();
  await stopServer(s);
  return { rounds, samples, saw, bulk };
}

interface Memory {
  envs: number;
  keys: number;
  own: number;
  emptyHeap: number;
  aloneHeap: number;
  layeredHeap: number;
}

/**
 * The heap of a server holding E environments of K keys standing alone, and
 * of one holding the same merged views built on `base` (K keys) with O own
 * keys each; `base` itself in both. Each read after a restart, so the
 * servers hold the environments as loaded, no recent releases.
 */
async function memoryPhase(): Promise<Memory> {
  say(`memory: ${MEM_ENVS} environments of ${MEM_KEYS} keys standing alone, then built on ${BASE} with ${OWN} own keys each`);
  const names = Array.from({ length: MEM_ENVS }, (_, i) => `mem${String(i).padStart(4, '0')}`);
  const measure = async (suffix: string, fill: (client: AdminClient) => Promise<void>): Promise<number> => {
    const store = await freshStore(suffix);
    const first = await startServer(store);
    const client = await admin();
    await fill(client);
    client.close();
    await stopServer(first);
    const again = await startServer(store);
    const heap = await heapAfterGc(again);
    await stopServer(again);
    return heap;
  };
  const withBase = async (client: AdminClient): Promise<void> => {
    await client.request({ op: 'env.add', env: BASE });
    await client.request({ op: 'apply', env: BASE, entries: entries(0, MEM_KEYS), replace: false });
  };
  const emptyHeap = await measure('mem_empty', () => Promise.resolve());
  const aloneHeap = await measure('mem_alone', async (client) => {
    await withBase(client);
    await inParallel(names, async (env) => {
      await client.request({ op: 'env.add', env });
      await client.request({ op: 'apply', env, entries: [...entries(0, OWN, 0, names.indexOf(env)), ...entries(OWN, MEM_KEYS)], replace: false });
    });
  });
  const layeredHeap = await measure('mem_layered', async (client) => {
    await withBase(client);
    await inParallel(names, async (env) => {
      await client.request({ op: 'env.add', env });
      await client.request({ op: 'env.layers', env, parents: [BASE] });
      await client.request({ op: 'apply', env, entries: entries(0, OWN, 0, names.indexOf(env)), replace: false });
    });
  });
  return { envs: MEM_ENVS, keys: MEM_KEYS, own: OWN, emptyHeap, aloneHeap, layeredHeap };
}

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  const populations = args.alternate ? 'two fleets of N connected together, plain and layered rounds alternating' : 'two fleets of N, one after the other (plain rounds, then layered rounds)';
  say(`vitefa bench:layers: ${AGENTS} agents, ${ROUNDS} rounds, ${DEPENDENTS} dependents of ${BASE} (${AGENTS / DEPENDENTS} agents each), ${os.availableParallelism()} cores (${cpu}), ${args.store === undefined ? 'embedded store' : 'MySQL'}`);
  say(`  populations: ${populations}`);
  const w = await writesPhase();
  const memory = MEM_ENVS > 0 ? await memoryPhase() : undefined;

  const of = (kind: Kind): Round[] => w.rounds.filter((r) => r.kind === kind);
  const commit = (kind: Kind): number => median(of(kind).map((r) => r.commitMs));
  const plain = summarize(w.samples.plain);
  const layered = summarize(w.samples.layered);
  const roundP99 = (kind: Kind): number => median(of(kind).map((r) => r.summary.p99));
  const x = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');
  const rows = [
    ['', 'plain', 'layered', 'layered / plain', 'target'],
    ['agents receiving every release', `${Math.min(...of('plain').map((r) => r.received))}/${AGENTS}`, `${Math.min(...of('layered').map((r) => r.received))}/${AGENTS}`, '', ''],
    ['commit, median of rounds (ms)', fmtMs(commit('plain')), fmtMs(commit('layered')), x(commit('layered'), commit('plain')), 'within 2×'],
    ['propagation p50 (ms)', fmtMs(plain.p50), fmtMs(layered.p50), x(layered.p50, plain.p50), 'within 1.2×'],
    ['propagation p99 (ms)', fmtMs(plain.p99), fmtMs(layered.p99), x(layered.p99, plain.p99), 'within 1.2×'],
    ['propagation max (ms)', fmtMs(plain.max), fmtMs(layered.max), x(layered.max, plain.max), ''],
    ['median of round p99s (ms)', fmtMs(roundP99('plain')), fmtMs(roundP99('layered')), x(roundP99('layered'), roundP99('plain')), ''],
  ];
  if (w.bulk !== undefined) {
    const [bp, bl] = [median(w.bulk.plain), median(w.bulk.layered)];
    rows.push([`apply of ${BULK} keys, commit median / max (ms)`, `${fmtMs(bp)} / ${fmtMs(Math.max(...w.bulk.plain))}`, `${fmtMs(bl)} / ${fmtMs(Math.max(...w.bulk.layered))}`, x(bl, bp), 'layered < 2 s']);
  }
  let memoryReport: Record<string, unknown> | undefined;
  if (memory !== undefined) {
    const alone = (memory.aloneHeap - memory.emptyHeap) / (memory.envs + 1);
    const layeredPerEnv = (memory.layeredHeap - memory.emptyHeap - alone) / memory.envs;
    const delta = (memory.layeredHeap - memory.aloneHeap) / memory.envs;
    rows.push([`server heap per environment of ${memory.keys} keys (bytes)`, alone.toFixed(0), layeredPerEnv.toFixed(0), x(layeredPerEnv, alone), '']);
    rows.push([`  layering's delta per environment (bytes), ${memory.own} own keys`, '', delta.toFixed(0), '', '']);
    memoryReport = { ...memory, bytesPerEnvAlone: alone, bytesPerEnvLayered: layeredPerEnv, layeringDeltaBytesPerEnv: delta };
  }
  process.stdout.write(`\n${table(rows)}\n\npopulations: ${populations}${w.bulk === undefined ? '' : '; bulk applies with no agent connected'}.\n`);
  if (memory !== undefined) {
    process.stdout.write(`memory: the same ${memory.envs} merged views of ${memory.keys} keys, standing alone or built on ${BASE} with ${memory.own} own keys each; heap read after a restart and a collection.\n`
      + 'An environment standing alone keeps one map (its own entries are its view); a layered one keeps its own entries beside its merged view.\n');
  }
  if (w.saw.gaps > 0 || w.saw.errors > 0) process.stdout.write(`WARNING: ${w.saw.gaps} gaps, ${w.saw.errors} protocol errors seen by agents\n`);

  const report = {
    date: new Date().toISOString(),
    command: `npm run bench:layers -- ${process.argv.slice(2).join(' ').replace(/\/\/[^@]*@/, '//')}`.trim(),
    machine: { cores: os.availableParallelism(), cpu, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, kernel: os.release() },
    layout: { agents: AGENTS, rounds: ROUNDS, dependents: DEPENDENTS, agentsPerDependent: AGENTS / DEPENDENTS, ownKeys: OWN, addresses: ADDRESSES, store: args.store === undefined ? 'embedded' : 'mysql', populations },
    commitMs: { plain: of('plain').map((r) => r.commitMs), layered: of('layered').map((r) => r.commitMs), medianPlain: commit('plain'), medianLayered: commit('layered'), ratio: commit('layered') / commit('plain') },
    propagation: {
      plain, layered, ratioP50: layered.p50 / plain.p50, ratioP99: layered.p99 / plain.p99, ratioMax: layered.max / plain.max,
      rounds: w.rounds.map((r) => ({ kind: r.kind, rev: r.rev, commitMs: r.commitMs, ...r.summary, received: r.received })),
    },
    bulk: w.bulk === undefined ? undefined : { keys: BULK, rounds: BULK_ROUNDS, aloneMs: w.bulk.plain, layeredMs: w.bulk.layered, medianAloneMs: median(w.bulk.plain), medianLayeredMs: median(w.bulk.layered) },
    memory: memoryReport,
    agentsSaw: w.saw,
  };
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  await cleanup();
  process.exit(w.saw.gaps > 0 || w.saw.errors > 0 || w.rounds.some((r) => r.received < AGENTS) ? 1 : 0);
}

if (!fs.existsSync(CLI)) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
main().catch(async (err: unknown) => {
  say(`bench:layers failed: ${(err as Error).stack ?? String(err)}`);
  await cleanup();
  process.exit(1);
});
