/**
 * What checking writes against schemas costs, side by side with the same writes unchecked:
 * - server CPU a 1 KiB write's check adds, with a 30-keyword schema (the check itself, in this process);
 * - commit acknowledgement and propagation of 1 KiB writes to an environment a schema covers and to
 *   one none covers, the rounds alternating, on one server process with a fleet following each;
 * - an apply of 100,000 keys, each checked, and the same apply unchecked;
 * - one value of each of --value-sizes pushed to a fleet (what the valueBytes default rests on).
 *
 *   npm run bench:schemas -- [--agents N] [--rounds R] [--bulk-keys K] [--json FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminClient } from '../src/admin/client.js';
import type { KeyChange } from '../src/protocol/index.js';
import { makeVerifier } from '../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../src/security/token.js';
import { activeSchema, compileSchema } from '../src/server/model/schemas/index.js';
import { SchemaChecks } from '../src/server/ops/schema-checks.js';
import { BulkPool } from '../src/server/ops/validate-pool.js';
import { resolveLimits } from '../src/server/limits.js';
import { ServerState } from '../src/server/releases/state.js';
import { SimFleet } from './fleet.js';
import { now } from './sim-agents.js';
import { fmtMs, median, summarize, table } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '10' },
    port: { type: 'string', default: '7710' },
    'bulk-keys': { type: 'string', default: '100000' },
    'bulk-rounds': { type: 'string', default: '3' },
    'cpu-writes': { type: 'string', default: '20000' },
    /** Sizes of one value pushed to the whole fleet (the valueBytes default is chosen from these). */
    'value-sizes': { type: 'string', default: '16384,262144,1048576' },
    json: { type: 'string' },
    timeout: { type: 'string', default: '900' },
  },
  strict: true,
});
const AGENTS = Number(args.agents);
const ROUNDS = Number(args.rounds);
const PORT = Number(args.port);
const BULK = Number(args['bulk-keys']);
const BULK_ROUNDS = Number(args['bulk-rounds']);
const CPU_WRITES = Number(args['cpu-writes']);
const SIZES = args['value-sizes'].split(',').map(Number);
if ([AGENTS, ROUNDS, BULK, BULK_ROUNDS, CPU_WRITES].some((n) => !Number.isInteger(n) || n < 1) || AGENTS % 2 !== 0 || PORT < 1024 || PORT > 65535 || (PORT >= 32768 && PORT <= 60999)) {
  process.stderr.write('usage: npm run bench:schemas -- [--agents N (even)] [--rounds R] [--port P (outside 32768-60999)] [--bulk-keys K] [--bulk-rounds B] [--cpu-writes W] [--json FILE] [--timeout S]\n');
  process.exit(2);
}
setTimeout(() => {
  process.stderr.write(`\nbench:schemas: time limit of ${args.timeout} s reached; stopping\n`);
  void cleanup().finally(() => process.exit(1));
}, Number(args.timeout) * 1000).unref();

const say = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const PASSWORD = randomBytes(12).toString('base64url');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-bench-schemas-'));
let proc: ChildProcess | undefined;
const fleets: SimFleet[] = [];

async function cleanup(): Promise<void> {
  proc?.kill('SIGKILL');
  await Promise.all(fleets.splice(0).map((f) => f.close()));
  fs.rmSync(dataDir, { recursive: true, force: true });
}

async function until<T>(what: string, check: () => Promise<T | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A schema of 30 keywords for a service's settings (types, bounds, enums, formats without patterns). */
const SCHEMA = {
  type: 'object',
  required: ['name', 'port', 'pool', 'tags'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    pool: {
      type: 'object', required: ['min', 'max'], additionalProperties: false,
      properties: { min: { type: 'integer', minimum: 0 }, max: { type: 'integer', maximum: 500 }, idleMs: { type: 'integer', multipleOf: 100 } },
    },
    tags: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 32 } },
    mode: { enum: ['active', 'standby', 'drain'] },
    notes: { type: 'string', maxLength: 1024 },
    updated: { type: 'string', format: 'date-time' },
  },
};
/** A value that passes it: 1 KiB, or (`small`, the bulk apply's, whose 100,000 must fit one admin frame and one release) about 200 bytes. */
function value(i: number, small = false): string {
  const v = { name: `svc-${i}`, port: 8000 + (i % 1000), pool: { min: 1, max: 100 + (i % 400), idleMs: 3000 }, tags: Array.from({ length: small ? 2 : 12 }, (_, j) => `tag-${j}-${i % 97}`), mode: 'active', updated: '2026-12-03T10:00:00Z', notes: '' };
  if (!small) v.notes = 'n'.repeat(Math.max(0, 1024 - JSON.stringify(v).length));
  return JSON.stringify(v);
}

/** Server CPU of the check alone: checkViews on one changed key, as the write path calls it. */
async function cpuPhase(): Promise<{ checkedUs: number[]; uncheckedUs: number[]; bulkMs: number[] }> {
  const limits = resolveLimits();
  const pool = new BulkPool(limits);
  const checks = new SchemaChecks(new ServerState(limits), pool, limits);
  const text = JSON.stringify(SCHEMA);
  const schemas = [activeSchema({ envPattern: 'svc/*', keyPattern: '*', whole: false }, 1, 'enforce', text, compileSchema(text))];
  const time = async (list: typeof schemas): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < CPU_WRITES; i++) {
      const views = new Map<string, KeyChange[]>([['svc/a', [['k', null, value(i)]]]]);
      const t0 = process.hrtime.bigint();
      await checks.checkViews(list, views, () => new Map(), new Map(), false);
      out.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    return out;
  };
  await time(schemas); // warm up
  const checkedUs: number[] = [];
  const uncheckedUs: number[] = [];
  for (let r = 0; r < 4; r++) {
    checkedUs.push(...(await time(schemas)));
    uncheckedUs.push(...(await time([])));
  }
  // The checks of a 100,000-key apply as its commit makes them (the thread takes all but the first 256 KiB).
  const bulkMs: number[] = [];
  const views = new Map<string, KeyChange[]>([['svc/a', Array.from({ length: BULK }, (_, i): KeyChange => [`bulk/${i}`, null, value(i, true)])]]);
  for (let r = 0; r < BULK_ROUNDS + 1; r++) {
    const t0 = now();
    await checks.checkViews(schemas, views, () => new Map(), new Map(), false);
    if (r > 0) bulkMs.push(now() - t0);
  }
  await pool.close();
  return { checkedUs, uncheckedUs, bulkMs };
}

async function startServer(): Promise<void> {
  const config = path.join(dataDir, 'server.json');
  fs.writeFileSync(config, JSON.stringify({ limits: { pendingHellosPerAddress: AGENTS, valueBytes: Math.max(...SIZES) + 64 } }));
  proc = spawn(process.execPath, [CLI, 'server', '--listen', `127.0.0.2:${PORT}`, '--store', path.join(dataDir, 'store'), '--max-agents', String(AGENTS), '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, VITEFA_ADMIN_PASSWORD: PASSWORD, VITEFA_PASSWORD_ITERATIONS: '4096' },
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    proc!.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
}

type Kind = 'unchecked' | 'checked';
const ENV: Record<Kind, string> = { unchecked: 'svc/plain', checked: 'svc/checked' };

async function main(): Promise<void> {
  say(`check alone: ${CPU_WRITES} × 4 checks of a 1 KiB value against a 30-keyword schema, in this process`);
  const cpu = await cpuPhase();

  await startServer();
  const client = await AdminClient.connect({ host: '127.0.0.2', port: PORT, login: { user: 'admin', secret: PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 300_000 });
  for (const kind of ['unchecked', 'checked'] as Kind[]) {
    await client.request({ op: 'env.add', env: ENV[kind] });
    await client.request({ op: 'set', env: ENV[kind], key: 'k', value: value(0) });
  }
  await client.request({ op: 'schema.set', envPattern: 'svc/checked', keyPattern: '*', schema: JSON.stringify(SCHEMA) });
  const token = newToken();
  await client.request({ op: 'token.add', name: 'bench', envs: ['*'], id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) });
  const half = AGENTS / 2;
  const fleet: Record<Kind, SimFleet> = { unchecked: new SimFleet(half), checked: new SimFleet(half) };
  for (const kind of ['unchecked', 'checked'] as Kind[]) {
    fleets.push(fleet[kind]);
    fleet[kind].start('protocol', [`127.0.0.2:${PORT}`], ENV[kind], 1, 500, token.text);
    await until(`${kind} agents`, async () => ((await fleet[kind].status()).connected >= half && (await fleet[kind].status()).heldMin > 0 ? true : false), 300_000);
  }
  say(`server: ${AGENTS} agents, half on ${ENV.unchecked}, half on ${ENV.checked} (schema of 30 keywords on every key); rounds alternate`);
  const commit: Record<Kind, number[]> = { unchecked: [], checked: [] };
  const arrivals: Record<Kind, number[]> = { unchecked: [], checked: [] };
  let head = (await client.request({ op: 'set', env: ENV.unchecked, key: 'k', value: value(1) })).rev;
  for (let n = 1; n <= ROUNDS; n++) {
    for (const kind of (n % 2 === 1 ? ['unchecked', 'checked'] : ['checked', 'unchecked']) as Kind[]) {
      const rev = ++head;
      fleet[kind].watch(rev);
      await sleep(200);
      const sent = now();
      const result = await client.request({ op: 'set', env: ENV[kind], key: 'k', value: value(rev) });
      commit[kind].push(now() - sent);
      if (result.rev !== rev) throw new Error(`expected revision ${rev}, got ${result.rev}`);
      const times = await until(`${kind} revision ${rev}`, async () => {
        const { times: t } = await fleet[kind].report(rev);
        return t.every((x) => !Number.isNaN(x)) ? t : false;
      }, 60_000);
      for (const t of times) arrivals[kind].push(t - sent);
    }
    say(`  round ${n}: commit unchecked ${fmtMs(commit.unchecked.at(-1)!)} ms, checked ${fmtMs(commit.checked.at(-1)!)} ms`);
  }
  say(`server: one value of each size pushed to the ${half} agents of ${ENV.unchecked}`);
  const sized: { bytes: number; commitMs: number; p50: number; p99: number }[] = [];
  for (const bytes of SIZES) {
    const rev = ++head;
    fleet.unchecked.watch(rev);
    await sleep(200);
    const sent = now();
    await client.request({ op: 'set', env: ENV.unchecked, key: 'blob', value: JSON.stringify('v'.repeat(bytes - 2)), allowGrowth: true });
    const commitMs = now() - sent;
    const times = await until(`${bytes}-byte value`, async () => {
      const { times: t } = await fleet.unchecked.report(rev);
      return t.every((x) => !Number.isNaN(x)) ? t : false;
    }, 120_000);
    const got = summarize(Array.from(times, (t) => t - sent));
    sized.push({ bytes, commitMs, p50: got.p50, p99: got.p99 });
    say(`  ${bytes} bytes: commit ${fmtMs(commitMs)} ms, propagation p50 ${fmtMs(got.p50)} / p99 ${fmtMs(got.p99)} ms`);
  }
  await Promise.all(fleets.splice(0).map((f) => f.close()));

  say(`server: applies of ${BULK} keys (about 200 bytes each), each checked, and unchecked`);
  const bulk: Record<Kind, number[]> = { unchecked: [], checked: [] };
  for (let n = 1; n <= BULK_ROUNDS; n++) {
    for (const kind of (n % 2 === 1 ? ['unchecked', 'checked'] : ['checked', 'unchecked']) as Kind[]) {
      const entries: [string, string][] = Array.from({ length: BULK }, (_, i) => [`bulk/${i}`, value(i + n, true)]);
      const a0 = now();
      await client.request({ op: 'apply', env: ENV[kind], entries, replace: false, allowGrowth: true });
      bulk[kind].push(now() - a0);
    }
    say(`  bulk round ${n}: unchecked ${fmtMs(bulk.unchecked.at(-1)!)} ms, checked ${fmtMs(bulk.checked.at(-1)!)} ms`);
  }
  client.close();

  const cc = summarize(cpu.checkedUs);
  const cu = summarize(cpu.uncheckedUs);
  const pc = summarize(arrivals.checked);
  const pu = summarize(arrivals.unchecked);
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  const rows = [
    ['', 'unchecked', 'checked', 'checked − / ÷ unchecked', 'target'],
    ['server CPU of the check per 1 KiB write, p50 (µs)', cu.p50.toFixed(1), cc.p50.toFixed(1), `+${(cc.p50 - cu.p50).toFixed(1)} µs`, ''],
    ['server CPU of the check per 1 KiB write, p99 (µs)', cu.p99.toFixed(1), cc.p99.toFixed(1), `+${(cc.p99 - cu.p99).toFixed(1)} µs`, 'added p99 < 20 µs'],
    ['commit acknowledgement, median (ms)', fmtMs(median(commit.unchecked)), fmtMs(median(commit.checked)), x(median(commit.checked), median(commit.unchecked)), 'within noise'],
    ['propagation p50 (ms)', fmtMs(pu.p50), fmtMs(pc.p50), x(pc.p50, pu.p50), 'unchanged'],
    ['propagation p99 (ms)', fmtMs(pu.p99), fmtMs(pc.p99), x(pc.p99, pu.p99), 'unchanged'],
    [`checks of an apply of ${BULK} keys, median (ms)`, '', fmtMs(median(cpu.bulkMs)), '', '< 1 s'],
    [`apply of ${BULK} keys, commit median (ms)`, fmtMs(median(bulk.unchecked)), fmtMs(median(bulk.checked)), x(median(bulk.checked), median(bulk.unchecked)), ''],
  ];
  process.stdout.write(`\n${table(rows)}\n\n${table([
    ['one value pushed to every agent of a fleet', 'commit (ms)', 'propagation p50 (ms)', 'p99 (ms)'],
    ...sized.map((z) => [`${z.bytes} bytes to ${half} agents`, fmtMs(z.commitMs), fmtMs(z.p50), fmtMs(z.p99)]),
  ])}\n`);
  if (args.json !== undefined) {
    fs.writeFileSync(args.json, `${JSON.stringify({
      date: new Date().toISOString(), command: `npm run bench:schemas -- ${process.argv.slice(2).join(' ')}`,
      machine: { cores: os.cpus().length, node: process.version },
      cpuUs: { checked: cc, unchecked: cu }, bulkCheckMs: cpu.bulkMs, commitMs: commit, propagation: { checked: pc, unchecked: pu }, bulkMs: bulk, valueSizes: sized,
    }, null, 2)}\n`);
  }
}

main().then(() => cleanup(), async (err: unknown) => {
  process.stderr.write(`bench:schemas failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  await cleanup();
  process.exit(1);
});
