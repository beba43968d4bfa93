/**
 * Large reads against small writes: one account reads history, diff and
 * list in a loop from several sessions, over an environment of large values,
 * while another account makes small writes and reads one key. Prints the
 * other account's write and get latencies alone and under the reads, the
 * reads answered, and the committing process's peak memory.
 *
 *   npm run bench:reads -- [--store DIR|mysql://…] [--releases 9] [--values 12] [--value-kb 1024]
 *                          [--sessions 8] [--seconds 20] [--port 7620] [--json FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminClient } from '../src/admin/client.js';
import { fmtMs, summarize, table } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

const { values: args } = parseArgs({
  options: {
    store: { type: 'string' },
    releases: { type: 'string', default: '9' },
    values: { type: 'string', default: '12' },
    'value-kb': { type: 'string', default: '1024' },
    sessions: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '20' },
    port: { type: 'string', default: '7620' },
    json: { type: 'string' },
    /** Worker processes of the server (0: one process); default as the server chooses. */
    workers: { type: 'string' },
  },
  strict: true,
});
const RELEASES = Number(args.releases);
const VALUES = Number(args.values);
const VALUE_BYTES = Number(args['value-kb']) * 1024 - 16;
const SESSIONS = Number(args.sessions);
const SECONDS = Number(args.seconds);
const PORT = Number(args.port);
if (![RELEASES, VALUES, VALUE_BYTES, SESSIONS, SECONDS].every((n) => Number.isInteger(n) && n > 0) || PORT < 1024 || (PORT >= 32768 && PORT <= 60999)) {
  process.stderr.write('usage: npm run bench:reads -- [--store DIR|mysql://…] [--releases N] [--values N] [--value-kb N] [--sessions N] [--seconds N] [--port P outside 32768-60999] [--json FILE]\n');
  process.exit(2);
}
const PASSWORD = randomBytes(12).toString('base64url');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-bench-reads-'));
let server: ChildProcess | undefined;
// Bounded in time, whatever happens.
setTimeout(() => {
  process.stderr.write('bench:reads: time limit reached; stopping\n');
  stop();
  process.exit(1);
}, (SECONDS * 3 + 600) * 1000).unref();

function stop(): void {
  server?.kill('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
}

function rss(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function startServer(): Promise<ChildProcess> {
  const store = args.store ?? path.join(dataDir, 'server');
  const proc = spawn(process.execPath, [CLI, 'server', '--listen', `127.0.0.1:${PORT}`, '--peer-listen', `127.0.0.1:${PORT + 1}`, '--store', store, '--max-agents', '1000', ...(args.workers === undefined ? [] : ['--workers', args.workers])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VITEFA_ADMIN_PASSWORD: PASSWORD, VITEFA_PASSWORD_ITERATIONS: '4096' },
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
  return proc;
}

const connect = (user: string, secret: string): Promise<AdminClient> =>
  AdminClient.connect({ host: '127.0.0.1', port: PORT, login: { user, secret }, connectTimeoutMs: 10_000, requestTimeoutMs: 120_000 });

/** The other account's small writes and gets for `ms`, each timed (ms). */
async function smallWork(client: AdminClient, ms: number): Promise<{ writes: number[]; gets: number[] }> {
  const writes: number[] = [];
  const gets: number[] = [];
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    let t = performance.now();
    await client.request({ op: 'set', env: 'small', key: `k${i % 100}`, value: String(i) });
    writes.push(performance.now() - t);
    t = performance.now();
    await client.request({ op: 'get', env: 'small', key: `k${i % 100}` });
    gets.push(performance.now() - t);
  }
  return { writes, gets };
}

async function main(): Promise<void> {
  server = await startServer();
  const admin = await connect('admin', PASSWORD);
  const first = (await admin.request({ op: 'env.add', env: 'big' })).rev;
  await admin.request({ op: 'env.add', env: 'small' });
  let last = first;
  for (let r = 0; r < RELEASES; r++) {
    const entries: [string, string][] = Array.from({ length: VALUES }, (_, i) => [`v/${r}/${i}`, JSON.stringify(`${r}.${i}:`.padEnd(VALUE_BYTES, 'x'))]);
    last = (await admin.request({ op: 'apply', env: 'big', entries, replace: false })).rev;
  }
  const verifier = (await import('../src/security/scram.js')).makeVerifier('reader-password', 4096);
  await admin.request({ op: 'user.add', name: 'reader', role: 'viewer', envs: ['big'], verifier });
  await admin.request({ op: 'user.add', name: 'writer', role: 'editor', envs: ['*'], verifier });
  const writer = await connect('writer', 'reader-password');
  process.stdout.write(`environment of ${RELEASES} releases x ${VALUES} values of ${Math.round(VALUE_BYTES / 1024)} KiB; ${SESSIONS} reading sessions; ${SECONDS} s per phase\n`);

  const quiet = await smallWork(writer, SECONDS * 1000);
  const pid = server.pid!;
  let peak = rss(pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rss(pid))), 50);
  const readers = await Promise.all(Array.from({ length: SESSIONS }, () => connect('reader', 'reader-password')));
  let reading = true;
  let reads = 0;
  let refused = 0;
  const loops = readers.map(async (reader, i) => {
    while (reading) {
      const req = i % 3 === 0 ? { op: 'history' as const, env: 'big', limit: 10_000 } : i % 3 === 1 ? { op: 'diff' as const, env: 'big', from: first, to: last } : { op: 'list' as const, env: 'big' };
      try {
        await reader.request(req);
        reads++;
      } catch {
        refused++;
      }
    }
  });
  const loaded = await smallWork(writer, SECONDS * 1000);
  reading = false;
  await Promise.all(loops);
  clearInterval(sampler);

  const q = { writes: summarize(quiet.writes), gets: summarize(quiet.gets) };
  const l = { writes: summarize(loaded.writes), gets: summarize(loaded.gets) };
  const rows = [
    ['another account\'s requests', 'alone', `under ${SESSIONS} sessions reading`, 'ratio p50'],
    ['set: p50 / p99 / max (ms)', `${fmtMs(q.writes.p50)} / ${fmtMs(q.writes.p99)} / ${fmtMs(q.writes.max)} (${q.writes.count})`, `${fmtMs(l.writes.p50)} / ${fmtMs(l.writes.p99)} / ${fmtMs(l.writes.max)} (${l.writes.count})`, (l.writes.p50 / q.writes.p50).toFixed(2)],
    ['get: p50 / p99 / max (ms)', `${fmtMs(q.gets.p50)} / ${fmtMs(q.gets.p99)} / ${fmtMs(q.gets.max)} (${q.gets.count})`, `${fmtMs(l.gets.p50)} / ${fmtMs(l.gets.p99)} / ${fmtMs(l.gets.max)} (${l.gets.count})`, (l.gets.p50 / q.gets.p50).toFixed(2)],
    ['reads answered / refused (history, diff, list)', '', `${reads} / ${refused}`, ''],
    ['server primary peak RSS under the reads (MB)', '', (peak / 2 ** 20).toFixed(0), ''],
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  if (args.json) {
    fs.writeFileSync(args.json, `${JSON.stringify({
      date: new Date().toISOString(), command: `npm run bench:reads -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, node: process.version },
      quiet: q, loaded: l, reads, refused, peakRssBytes: peak,
    }, null, 2)}\n`);
  }
  for (const r of readers) r.close();
  writer.close();
  admin.close();
  stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:reads failed: ${(err as Error).stack ?? String(err)}\n`);
  stop();
  process.exit(1);
});
