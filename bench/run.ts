/**
 * The propagation harness: `npm run bench -- --agents N [--json FILE]`.
 *
 * In one run, on this machine: a bare Node.js fan-out (the floor) and a real
 * `vitefa server` (cluster), each with the same process layout, the same
 * agents spread over the same loopback addresses; propagation from the
 * admin's write to every agent's receipt, the floor's the same way, and their
 * ratio; time to connect; server memory per connection; a burst of small
 * releases; a large snapshot joining while releases go out; a reconnect
 * storm after SIGKILL. Prints a table, writes JSON and an SVG plot.
 */
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminClient } from '../src/admin/client.js';
import { encodeMessage, MessageType } from '../src/protocol/index.js';
import { makeVerifier } from '../src/security/scram.js';
import { newToken, TOKEN_ITERATIONS } from '../src/security/token.js';
import { CONNECTIONS_PER_WORKER, workerCap } from '../src/server/process/main.js';
import { FloorServer, HeapReports, SimFleet } from './fleet.js';
import { cdfSvg } from './plot.js';
import { now } from './sim-agents.js';
import { fmtMs, median, summarize, table, type Summary } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

const { values: args } = parseArgs({
  options: {
    agents: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '5' },
    port: { type: 'string', default: '7600' },
    releases: { type: 'string', default: '100' },
    'snapshot-keys': { type: 'string', default: '50000' },
    json: { type: 'string' },
    svg: { type: 'string' },
    'skip-floor': { type: 'boolean', default: false },
    'skip-storm': { type: 'boolean', default: false },
    'skip-snapshot': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    peers: { type: 'string' },
    store: { type: 'string' },
    timeout: { type: 'string', default: '600' },
    /** Seconds with every agent connected and nothing changing, over which the server's idle CPU is read. */
    idle: { type: 'string', default: '60' },
    /** Rounds whose release is followed by small writes to another environment, each timed, while it goes out. */
    'probe-rounds': { type: 'string', default: '3' },
    /** Write CPU profiles of the server's processes and the load generators here (see bench/profile.ts). */
    profile: { type: 'string' },
    /** The server's fanoutSlice limit (sockets written per slice of a fan-out). */
    'fanout-slice': { type: 'string' },
    /** Keys of the bulk apply during which small writes are timed (0: no such phase). */
    'bulk-keys': { type: 'string', default: '100000' },
    /** The server's bulkInPoolFrom limit: applies with at least this many keys are checked on a thread pool. */
    'bulk-in-pool-from': { type: 'string' },
    /** The admin client talks to the server's admin port (--admin-listen, on 127.0.0.1, port P+3), served by its primary. */
    'admin-port': { type: 'boolean', default: false },
  },
  strict: true,
});

const AGENTS = Number(args.agents);
/** With --peers N: N MySQL-backed servers on one database beside one MySQL-backed server (needs --store mysql://…). */
const PEERS = args.peers === undefined ? 0 : Number(args.peers);
if (args.peers !== undefined && (!Number.isInteger(PEERS) || PEERS < 2 || PEERS > 8 || !args.store?.startsWith('mysql://'))) {
  process.stderr.write('usage: npm run bench -- --peers N (2 to 8) --store mysql://USER[:PASS]@HOST:PORT/DB --agents N (the run creates and drops DB_single and DB_peers)\n');
  process.exit(2);
}
const ROUNDS = Number(args.rounds);
const PORT = Number(args.port);
if (!Number.isInteger(AGENTS) || AGENTS < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1 || PORT < 1024 || (PORT + 3 >= 32768 && PORT <= 60999)) {
  process.stderr.write('usage: npm run bench -- --agents N [--rounds R] [--port P (P to P+3 outside 32768-60999)] [--json FILE] [--svg FILE]\n');
  process.exit(2);
}
// The whole run stops by itself, whatever happens.
setTimeout(() => {
  process.stderr.write(`\nbench: time limit of ${args.timeout} s reached; stopping\n`);
  cleanup();
  process.exit(1);
}, Number(args.timeout) * 1000).unref();

/**
 * Up to 10,000 agents per loopback address. One destination allows 28,232
 * ephemeral ports, but the kernel's search for a free one slows down sharply
 * as the range fills (connect() took 1.6 ms at 25,000 per address here), so
 * every destination stays at about a third. The floor and the server listen on different ports:
 * the floor's closed connections linger in TIME_WAIT, and sharing their
 * destinations would make every new connect() hunt for a free port.
 */
const addresses = (port: number): string[] => Array.from({ length: Math.max(1, Math.ceil(AGENTS / 10_000)) }, (_, i) => `127.0.0.${i + 2}:${port}`);
const ADDRESSES = addresses(PORT);
const FLOOR_ADDRESSES = addresses(PORT + 1);
/** The TLS server's own port, so its connections never meet the plaintext run's TIME_WAIT. */
const TLS_ADDRESSES = addresses(PORT + 2);
/** The admin port, with --admin-port. */
const ADMIN_ADDRESS = `127.0.0.1:${PORT + 3}`;
const WORKERS = Math.max(os.availableParallelism(), Math.ceil(AGENTS / CONNECTIONS_PER_WORKER));
/** The floor's workers take at most as many connections as the server's do. */
const PER_WORKER = workerCap(AGENTS, WORKERS);
const ENV = 'bench';
/** An environment no agent follows: writes to it time the write path alone, while a release to ENV goes out. */
const PROBE_ENV = 'probe';
const PROFILE_DIR = args.profile === undefined ? undefined : path.resolve(args.profile);
const PROFILE_ARGS = PROFILE_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR];
/** Phases of the run on the monotonic clock the CPU profiles use (µs), and whose processes are whose. */
const profileMarks: { name: string; startUs: number }[] = [];
const profilePids: { primary: number[]; load: number[] } = { primary: [], load: [] };
function mark(name: string): void {
  if (PROFILE_DIR !== undefined) profileMarks.push({ name, startUs: Number(process.hrtime.bigint() / 1000n) });
}
function writeMarks(): void {
  if (PROFILE_DIR === undefined) return;
  mark('end');
  fs.writeFileSync(path.join(PROFILE_DIR, 'phases.json'), `${JSON.stringify({ phases: profileMarks, pids: profilePids }, null, 1)}\n`);
}
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitefa-bench-'));
let serverProc: ChildProcess | undefined;
let serverHeap = new HeapReports();
let fleet: SimFleet | undefined;
let floor: FloorServer | undefined;

const tty = process.stderr.isTTY;
function progress(line: string): void {
  if (tty) process.stderr.write(`\r\x1b[K${line}`);
}
function say(line: string): void {
  if (tty) process.stderr.write('\r\x1b[K');
  process.stderr.write(`${line}\n`);
}

async function until<T>(what: string, check: () => Promise<T | false>, timeoutMs: number, show?: (v: T | false) => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (show) progress(show(value));
    if (value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resident memory of a process and all its descendants, in bytes. */
function treeRss(pid: number): number {
  let total = 0;
  const visit = (p: number): void => {
    try {
      const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children.split(/\s+/).filter(Boolean)) visit(Number(c));
    } catch {
      // the process is gone
    }
  };
  visit(pid);
  return total;
}

/** The first admin's password on the bench's own server (a fresh store every run). */
const BENCH_PASSWORD = randomBytes(12).toString('base64url');

/** CPU time (user + system) of a process and all its descendants, in ms. */
function treeCpuMs(pid: number): number {
  let ticks = 0;
  const visit = (p: number): void => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children.split(/\s+/).filter(Boolean)) visit(Number(c));
    } catch {
      // the process is gone
    }
  };
  visit(pid);
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** Certificates for the TLS run: a CA and an ECDSA P-256 server certificate for every address the server listens on. */
interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

function makeCertificates(): TlsFiles {
  const dir = path.join(dataDir, 'tls');
  fs.mkdirSync(dir, { recursive: true });
  const ssl = (...a: string[]): void => void execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=vitefa bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  ssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key');
  ssl('req', '-new', '-key', 'server.key', '-out', 'server.csr', '-subj', '/CN=vitefa bench');
  const ips = TLS_ADDRESSES.map((a) => `IP:${a.split(':')[0]}`).join(',');
  fs.writeFileSync(path.join(dir, 'server.ext'), `subjectAltName=${ips}\nextendedKeyUsage=serverAuth\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  return { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.crt') };
}

async function startServer(tlsFiles?: TlsFiles): Promise<ChildProcess> {
  // Every simulated agent connects from this machine's loopback source address, where a real
  // fleet has one agent per host address: the per-address bound on connections awaiting their
  // hello is raised to the whole fleet, so a reconnect storm is not throttled as one noisy
  // host would be (the bound in all, pendingHellos, stays as it is).
  const config = path.join(dataDir, 'server.json');
  fs.writeFileSync(config, JSON.stringify({ limits: { pendingHellosPerAddress: AGENTS, ...(args['fanout-slice'] === undefined ? {} : { fanoutSlice: Number(args['fanout-slice']) }), ...(args['bulk-in-pool-from'] === undefined ? {} : { bulkInPoolFrom: Number(args['bulk-in-pool-from']) }) } }));
  const listen = tlsFiles === undefined ? ADDRESSES : TLS_ADDRESSES;
  const tlsArgs = tlsFiles === undefined ? [] : ['--tls-cert', tlsFiles.cert, '--tls-key', tlsFiles.key];
  const store = path.join(dataDir, tlsFiles === undefined ? 'server' : 'server-tls');
  const adminArgs = args['admin-port'] ? ['--admin-listen', ADMIN_ADDRESS] : [];
  const proc = spawn(process.execPath, [...PROFILE_ARGS, CLI, 'server', '--listen', listen.join(','), '--store', store, '--max-agents', String(AGENTS), '--config', config, ...tlsArgs, ...adminArgs], {
    // --expose-gc: memory is read after a collection (SIGUSR2), in the server and the floor alike.
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '--expose-gc', VITEFA_ADMIN_PASSWORD: BENCH_PASSWORD, VITEFA_PASSWORD_ITERATIONS: '4096' },
  });
  profilePids.primary.push(proc.pid!);
  serverHeap = new HeapReports();
  serverHeap.follow(proc);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
  });
  return proc;
}

function admin(tlsFiles?: TlsFiles): Promise<AdminClient> {
  const [host, port] = (args['admin-port'] ? ADMIN_ADDRESS : (tlsFiles === undefined ? ADDRESSES : TLS_ADDRESSES)[0]).split(':');
  return AdminClient.connect({
    host: host, port: Number(port), login: { user: 'admin', secret: BENCH_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 120_000,
    ...(tlsFiles === undefined ? {} : { tls: { ca: fs.readFileSync(tlsFiles.ca) } }),
  });
}

/** Latencies (ms) of one round: receipt time minus the moment the write was sent. */
function latencies(times: Float64Array, t0: number): { samples: number[]; received: number } {
  const samples: number[] = [];
  for (const t of times) if (!Number.isNaN(t)) samples.push(t - t0);
  return { samples, received: samples.length };
}

interface Round {
  summary: Summary;
  received: number;
}

/**
 * Lets connection-time work finish, then has every process of `pid`'s tree
 * collect its garbage (SIGUSR2 with --expose-gc) before memory is read.
 */
async function settle(pid?: number): Promise<void> {
  await new Promise((r) => setTimeout(r, 2000));
  if (pid !== undefined) {
    process.kill(pid, 'SIGUSR2');
    await new Promise((r) => setTimeout(r, 1500));
  }
}

function cleanup(): void {
  serverProc?.kill('SIGKILL');
  void floor?.stop();
  void fleet?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}

async function floorPhase(frameBytes: number): Promise<{ connectMs: number; bytesPerConn: number; heapPerConn: number; rounds: Round[]; all: number[] }> {
  say(`floor: bare fan-out, ${WORKERS} workers, ${AGENTS} sockets over ${FLOOR_ADDRESSES.length} addresses`);
  floor = new FloorServer();
  await floor.start(WORKERS, FLOOR_ADDRESSES, PER_WORKER);
  fleet = new SimFleet(AGENTS);
  const t0 = Date.now();
  // Memory per connection is the slope between half and all of the agents,
  // so one-off growth (heap, young generation) does not count as per-connection.
  fleet.start('floor', FLOOR_ADDRESSES, ENV, 0.5);
  const half = fleet.connectedTarget(0.5);
  await until('floor connections (half)', async () => ((await floor!.connections()) >= half ? true : false), 300_000);
  await settle(floor.proc.pid);
  const rssHalf = treeRss(floor.proc.pid!);
  const heapHalf = floor.heap.total();
  fleet.grow();
  await until('floor connections', async () => ((await floor!.connections()) >= AGENTS ? true : false), 300_000);
  const connectMs = Date.now() - t0;
  await settle(floor.proc.pid);
  const bytesPerConn = (treeRss(floor.proc.pid!) - rssHalf) / (AGENTS - half);
  const heapPerConn = (floor.heap.total() - heapHalf) / (AGENTS - half);
  const rounds: Round[] = [];
  const all: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    fleet.watch(round);
    await new Promise((r) => setTimeout(r, 200));
    const sent = now();
    floor.fanout(frameBytes);
    const times = await until(`floor round ${round}`, async () => {
      const { times } = await fleet!.report(round);
      return countReceived(times) >= AGENTS ? times : false;
    }, 60_000);
    const { samples, received } = latencies(times, sent);
    all.push(...samples);
    rounds.push({ summary: summarize(samples), received });
    say(`  round ${round}: p50 ${fmtMs(rounds.at(-1)!.summary.p50)} ms, p99 ${fmtMs(rounds.at(-1)!.summary.p99)} ms, max ${fmtMs(rounds.at(-1)!.summary.max)} ms, ${received}/${AGENTS}`);
  }
  // The server side closes first, so TIME_WAIT stays on its side, not on the clients' ports.
  fleet.quiet();
  await floor.stop();
  await fleet.close();
  fleet = undefined;
  floor = undefined;
  return { connectMs, bytesPerConn, heapPerConn, rounds, all };
}

/**
 * One measured release: every agent watches for revision `rev`, the admin
 * writes it, and the arrival times come back once every agent has it.
 */
async function releaseRound(client: AdminClient, f: SimFleet, rev: number, round: number, probes?: number[]): Promise<{ rev: number; head: number; sent: number; times: { committedAt: number; arrivals: Float64Array } }> {
  f.watch(rev);
  await new Promise((r) => setTimeout(r, 200));
  const sent = now();
  const committing = client.request({ op: 'set', env: ENV, key: 'k', value: String(rev) });
  let arrived = false;
  let head = rev;
  // Small writes to an environment no agent follows, one after the other, until every agent has the release.
  const probing = probes === undefined ? Promise.resolve() : (async () => {
    for (let i = 0; !arrived; i++) {
      const p0 = now();
      head = Math.max(head, (await client.request({ op: 'set', env: PROBE_ENV, key: `p/${i % 10}`, value: String(i) })).rev);
      if (!arrived) probes.push(now() - p0);
    }
  })();
  const result = await committing;
  const committedAt = now();
  if (result.rev !== rev) throw new Error(`expected revision ${rev}, got ${result.rev}`);
  let got = 0;
  const arrivals = await until(`round ${round}`, async () => {
    const { times } = await f.report(rev);
    got = countReceived(times);
    return got >= AGENTS ? times : false;
  }, 60_000).catch(async (err: Error) => {
    const st = await f.status();
    throw new Error(`${err.message}: ${got} of ${AGENTS} agents have revision ${rev}; ${st.connected} connected, holding ${st.heldMin} to ${st.heldMax}; ${st.gaps} gaps, ${st.errors} errors`);
  });
  arrived = true;
  await probing;
  return { rev, head, sent, times: { committedAt, arrivals } };
}

function countReceived(times: Float64Array): number {
  let n = 0;
  for (const t of times) if (!Number.isNaN(t)) n++;
  return n;
}

/** Small writes timed one after the other while one large request runs. */
interface WritesDuring {
  /** How long the large request took. */
  ms: number;
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface BulkPhase {
  keys: number;
  applyMs: number;
  quietP50Ms: number;
  quietP99Ms: number;
  duringCount: number;
  duringP50Ms: number;
  duringP99Ms: number;
  duringMaxMs: number;
  /** The same during a diff across the apply and during a rollback undoing it. */
  diff: WritesDuring;
  rollback: WritesDuring;
}

interface ServerPhase {
  bulk: BulkPhase | undefined;
  connectMs: number;
  /** Server CPU (all its processes) spent while every agent connected, logged in and caught up, per agent. */
  cpuMsPerConn: number;
  bytesPerConn: number;
  heapPerConn: number;
  rounds: Round[];
  all: number[];
  commitMs: number[];
  /** Small writes to an environment no agent follows, timed while a release went out to every agent. */
  probeMs: number[];
  /** Server CPU (all its processes) per release: from the write until its acknowledgements are in, idle subtracted. */
  cpuMsPerRelease: number[];
  /** Server CPU while every agent is connected and nothing changes, in % of one core (heartbeats included). */
  idleCpuPercent: number;
  idleSeconds: number;
  burst: { releases: number; committedMs: number; deliveredMs: number; releasesPerSecond: number; commitP50Ms: number; commitP99Ms: number };
  snapshot: Record<string, number> | undefined;
  storm: Record<string, number> | undefined;
  final: { gaps: number; errors: number; snapshots: number };
}

/** One run of the vitefa server: connect every agent, measure, release ROUNDS times, then (plaintext only) a burst and a snapshot, and a reconnect storm. */
async function serverPhase(tlsFiles: TlsFiles | undefined, extras: boolean): Promise<ServerPhase> {
  say(`server: vitefa server, ${WORKERS} workers, embedded store${tlsFiles === undefined ? '' : ', TLS'}`);
  serverProc = await startServer(tlsFiles);
  const client = await admin(tlsFiles);
  await client.request({ op: 'env.add', env: ENV });
  await client.request({ op: 'env.add', env: PROBE_ENV });
  let last = (await client.request({ op: 'set', env: ENV, key: 'k', value: '0' })).rev;
  const token = newToken();
  await client.request({ op: 'token.add', name: 'bench-agents', envs: ['*'], id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) });
  fleet = new SimFleet(AGENTS, PROFILE_ARGS);
  profilePids.load.push(...fleet.pids);
  mark(tlsFiles === undefined ? 'connect' : 'connect (TLS)');
  const c0 = Date.now();
  const cpu0 = treeCpuMs(serverProc.pid!);
  fleet.start('protocol', tlsFiles === undefined ? ADDRESSES : TLS_ADDRESSES, ENV, 0.5, 500, token.text, tlsFiles === undefined ? undefined : fs.readFileSync(tlsFiles.ca, 'utf8'));
  const f = fleet;
  const half = fleet.connectedTarget(0.5);
  const connecting = (s: unknown): string => (s ? '' : `connecting: ${((Date.now() - c0) / 1000).toFixed(1)} s`);
  await until('half the agents connected', async () => {
    const s = await f.status();
    return s.connected >= half ? s : false;
  }, 600_000, connecting);
  await settle(serverProc.pid);
  const rssHalf = treeRss(serverProc.pid!);
  const heapHalf = serverHeap.total();
  fleet.grow();
  await until('agents connected and current', async () => {
    const s = await f.status();
    return s.connected >= AGENTS && s.heldMin >= last ? s : false;
  }, 600_000, connecting);
  const connectMs = Date.now() - c0;
  const cpuMsPerConn = (treeCpuMs(serverProc.pid!) - cpu0) / AGENTS;
  say(`  ${AGENTS} agents connected and current in ${(connectMs / 1000).toFixed(1)} s`);
  await settle(serverProc.pid);
  const bytesPerConn = (treeRss(serverProc.pid!) - rssHalf) / (AGENTS - half);
  const heapPerConn = (serverHeap.total() - heapHalf) / (AGENTS - half);

  // Idle: every agent connected, nothing changing (pings and the server's timers only).
  const idleSeconds = Number(args.idle);
  mark('idle');
  const i0 = treeCpuMs(serverProc.pid!);
  const it0 = Date.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idleCpuMsPerMs = (treeCpuMs(serverProc.pid!) - i0) / (Date.now() - it0);
  const idleCpuPercent = idleCpuMsPerMs * 100;
  say(`  idle for ${idleSeconds} s with ${AGENTS} agents connected: server CPU ${idleCpuPercent.toFixed(2)}% of one core`);

  const rounds: Round[] = [];
  const all: number[] = [];
  const commitMs: number[] = [];
  const cpuMsPerRelease: number[] = [];
  /** The acknowledgements of a release come within 3 s (ackDelayMs 2 s, jittered); its CPU is read after this. */
  const ACKS_IN_MS = 4_000;
  let head = last;
  for (let round = 1; round <= ROUNDS; round++) {
    mark(`round ${round}`);
    const before = treeCpuMs(serverProc.pid!);
    const w0 = Date.now() + 200; // releaseRound waits 200 ms before writing
    const { rev, sent, times } = await releaseRound(client, f, head + 1, round);
    commitMs.push(times.committedAt - sent);
    last = head = rev;
    const { samples, received } = latencies(times.arrivals, sent);
    all.push(...samples);
    rounds.push({ summary: summarize(samples), received });
    await new Promise((r) => setTimeout(r, Math.max(0, w0 + ACKS_IN_MS - Date.now())));
    const spent = treeCpuMs(serverProc.pid!) - before;
    cpuMsPerRelease.push(Math.max(0, spent - idleCpuMsPerMs * (Date.now() - w0 + 200)));
    say(`  round ${round}: p50 ${fmtMs(rounds.at(-1)!.summary.p50)} ms, p99 ${fmtMs(rounds.at(-1)!.summary.p99)} ms, max ${fmtMs(rounds.at(-1)!.summary.max)} ms, ${received}/${AGENTS} (commit acknowledged after ${fmtMs(commitMs.at(-1)!)} ms; server CPU ${fmtMs(cpuMsPerRelease.at(-1)!)} ms)`);
  }
  // Writes while a release goes out: small ones to an environment no agent follows, one after the other.
  const probeMs: number[] = [];
  for (let round = 1; round <= Number(args['probe-rounds']); round++) {
    mark(`probe round ${round}`);
    const before = probeMs.length;
    const r = await releaseRound(client, f, head + 1, round, probeMs);
    commitMs.push(r.times.committedAt - r.sent);
    last = r.rev;
    head = r.head;
    const mine = summarize(probeMs.slice(before));
    say(`  probe round ${round}: ${mine.count} writes while the release went out: commit p50 ${fmtMs(mine.p50)} / p99 ${fmtMs(mine.p99)} / max ${fmtMs(mine.max)} ms`);
  }

  // Many small releases in a row, 16 in flight through one admin connection.
  const releases = extras ? Number(args.releases) : 0;
  mark('burst');
  const b0 = now();
  let next = 0;
  const burstMs: number[] = [];
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < releases) {
      const i = next++;
      const r0 = now();
      last = Math.max(last, (await client.request({ op: 'set', env: ENV, key: `burst/${i % 50}`, value: String(i) })).rev);
      burstMs.push(now() - r0);
    }
  }));
  const committedMs = now() - b0;
  await until('burst delivered', async () => ((await f.status()).heldMin >= last ? true : false), 600_000);
  const deliveredMs = now() - b0;
  const burstSummary = summarize(burstMs);
  if (extras) say(`  ${releases} releases: committed in ${fmtMs(committedMs)} ms (${Math.round(releases / (committedMs / 1000))}/s; each acknowledged after p50 ${fmtMs(burstSummary.p50)} / p99 ${fmtMs(burstSummary.p99)} ms), on every agent after ${fmtMs(deliveredMs)} ms`);

  // A large environment snapshot for agents joining at revision 0, while releases go to everyone else.
  let snapshot: Record<string, number> | undefined;
  if (extras && !args['skip-snapshot']) {
    mark('snapshot');
    const keys = Number(args['snapshot-keys']);
    await client.request({ op: 'env.add', env: 'big' });
    const entries: [string, string][] = Array.from({ length: keys }, (_, i) => [`key/${i}`, JSON.stringify({ id: i, host: `10.0.${i % 256}.${i % 200}`, on: true })]);
    const big = await client.request({ op: 'apply', env: 'big', entries, replace: false });
    const joiners = 20;
    last = big.rev;
    const rev = last + 1;
    fleet.watch(rev);
    fleet.watch(big.rev);
    await new Promise((r) => setTimeout(r, 200));
    const j0 = now();
    fleet.join('big', joiners);
    const sent = now();
    const result = await client.request({ op: 'set', env: ENV, key: 'k', value: String(rev) });
    last = result.rev;
    const times = await until('release during snapshots', async () => {
      const { times } = await f.report(rev);
      return countReceived(times) >= AGENTS ? times : false;
    }, 120_000);
    const during = summarize(latencies(times, sent).samples);
    const joined = await until('joiners have the snapshot', async () => {
      const s = await f.status();
      return s.joiners.length >= joiners && s.joiners.every((h) => h >= big.rev) ? true : false;
    }, 120_000);
    void joined;
    const joinMs = now() - j0;
    snapshot = { keys, joiners, p50DuringMs: during.p50, p99DuringMs: during.p99, maxDuringMs: during.max, joinersCurrentMs: joinMs };
    say(`  snapshot of ${keys} keys to ${joiners} joining agents: a release meanwhile reached everyone else at p50 ${fmtMs(during.p50)} / p99 ${fmtMs(during.p99)} / max ${fmtMs(during.max)} ms; joiners current after ${fmtMs(joinMs)} ms`);
  }
  // A bulk apply to an environment no agent follows, while small writes are timed one after the other.
  let bulk: BulkPhase | undefined;
  const bulkKeys = Number(args['bulk-keys']);
  if (extras && bulkKeys > 0) {
    mark('bulk apply');
    await client.request({ op: 'env.add', env: 'bulk' });
    const entries: [string, string][] = Array.from({ length: bulkKeys }, (_, i) => [`key/${i}`, JSON.stringify({ id: i, host: `10.0.${i % 256}.${i % 200}`, on: true })]);
    const quiet: number[] = [];
    for (let i = 0; i < 20; i++) {
      const p0 = now();
      await client.request({ op: 'set', env: PROBE_ENV, key: 'quiet', value: String(i) });
      quiet.push(now() - p0);
    }
    const whileRunning = async (large: () => Promise<unknown>, key: string): Promise<WritesDuring> => {
      const during: number[] = [];
      let done = false;
      const a0 = now();
      const running = large().finally(() => (done = true));
      for (let i = 0; !done; i++) {
        const p0 = now();
        await client.request({ op: 'set', env: PROBE_ENV, key, value: String(i) });
        if (!done) during.push(now() - p0);
      }
      await running;
      const d = summarize(during);
      return { ms: now() - a0, count: d.count, p50Ms: d.p50, p99Ms: d.p99, maxMs: d.max };
    };
    const before = (await client.request({ op: 'env.list' })).envs.find((e) => e.env === 'bulk')!.rev;
    const a = await whileRunning(() => client.request({ op: 'apply', env: 'bulk', entries, replace: false }), 'bulk');
    const q = summarize(quiet);
    say(`  apply of ${bulkKeys} keys: ${fmtMs(a.ms)} ms; ${a.count} small writes meanwhile committed at p50 ${fmtMs(a.p50Ms)} / p99 ${fmtMs(a.p99Ms)} / max ${fmtMs(a.maxMs)} ms (without it: p50 ${fmtMs(q.p50)} / p99 ${fmtMs(q.p99)} ms)`);
    const diff = await whileRunning(() => client.request({ op: 'diff', env: 'bulk', from: before }), 'diff');
    say(`  diff across it: ${fmtMs(diff.ms)} ms; ${diff.count} small writes meanwhile at p50 ${fmtMs(diff.p50Ms)} / p99 ${fmtMs(diff.p99Ms)} / max ${fmtMs(diff.maxMs)} ms`);
    const rollback = await whileRunning(() => client.request({ op: 'rollback', env: 'bulk', rev: before }), 'rollback');
    say(`  rollback undoing it: ${fmtMs(rollback.ms)} ms; ${rollback.count} small writes meanwhile at p50 ${fmtMs(rollback.p50Ms)} / p99 ${fmtMs(rollback.p99Ms)} / max ${fmtMs(rollback.maxMs)} ms`);
    bulk = { keys: bulkKeys, applyMs: a.ms, quietP50Ms: q.p50, quietP99Ms: q.p99, duringCount: a.count, duringP50Ms: a.p50Ms, duringP99Ms: a.p99Ms, duringMaxMs: a.maxMs, diff, rollback };
  }
  client.close();

  // Reconnect storm: SIGKILL the server, start it again, release at once, wait for every agent.
  let storm: Record<string, number> | undefined;
  if (!args['skip-storm']) {
    mark('storm');
    const before = await f.status();
    serverProc.kill('SIGKILL');
    await new Promise((r) => serverProc!.once('exit', r));
    await until('agents notice', async () => ((await f.status()).connected === 0 ? true : false), 60_000);
    const s0 = Date.now();
    serverProc = await startServer(tlsFiles);
    const restarted = Date.now() - s0;
    const again = await admin(tlsFiles);
    const release = await again.request({ op: 'set', env: ENV, key: 'k', value: '"after restart"' });
    again.close();
    const after = await until('every agent current after the restart', async () => {
      const s = await f.status();
      return s.connected >= AGENTS && s.heldMin >= release.rev ? s : false;
    }, 600_000, (s) => (s ? '' : `reconnecting: ${((Date.now() - s0) / 1000).toFixed(1)} s`));
    const stormMs = Date.now() - s0;
    const resumed = after.resumed - before.resumed;
    storm = { agents: AGENTS, serverRestartMs: restarted, allCurrentMs: stormMs, lostReleases: after.gaps - before.gaps, errors: after.errors, resumedSessions: resumed };
    say(`  reconnect storm: server back in ${restarted} ms; all ${AGENTS} agents reconnected and current ${(stormMs / 1000).toFixed(1)} s after the kill; releases lost: ${after.gaps - before.gaps}${tlsFiles === undefined ? '' : `; TLS sessions resumed: ${resumed}`}`);
  }
  const final = await f.status();
  await fleet.close();
  fleet = undefined;
  serverProc.kill('SIGTERM');
  await new Promise((r) => serverProc!.once('exit', r));
  const burst = { releases, committedMs, deliveredMs, releasesPerSecond: releases / (committedMs / 1000), commitP50Ms: burstSummary.p50, commitP99Ms: burstSummary.p99 };
  return { connectMs, cpuMsPerConn, bytesPerConn, heapPerConn, rounds, all, commitMs, probeMs, cpuMsPerRelease, idleCpuPercent, idleSeconds, burst, snapshot, bulk, storm, final };

}


interface ClusterPhase {
  servers: number;
  connectMs: number;
  /** Latencies of every round: of the writer's agents, and of the other servers' agents. */
  writer: number[];
  others: number[];
  rounds: { writer: Summary; others: Summary; received: number }[];
  final: { gaps: number; errors: number; snapshots: number };
}

/** A database of its own for one phase: DB_single or DB_peers, dropped first (a left-over of an earlier run) and after. */
async function freshDatabase(suffix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const mysql = await import('mysql2/promise');
  const base = new URL(args.store!);
  const name = `${base.pathname.replace(/^\//, '') || 'vitefa_bench'}_${suffix}`;
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`database name ${name}: letters, digits and _ only`);
  const server = new URL(base.toString());
  server.pathname = '/';
  const drop = async (): Promise<void> => {
    const conn = await mysql.createConnection(server.toString());
    try {
      await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    } finally {
      await conn.end();
    }
  };
  await drop();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  return { url: url.toString(), drop };
}

/**
 * `count` MySQL-backed servers on one fresh database, the agents spread
 * evenly over them (each server its own ports), every write through the
 * first: the writer's agents get each release from its fan-out, the others'
 * from their servers once the notice has crossed the peer link.
 */
async function clusterPhase(count: number, suffix: string): Promise<ClusterPhase> {
  const { url, drop } = await freshDatabase(suffix);
  const perServer = Math.ceil(AGENTS / count);
  const workers = Math.max(1, Math.ceil(perServer / CONNECTIONS_PER_WORKER));
  say(`${count === 1 ? 'one server' : `${count} peer servers`} on MySQL (${url.replace(/\/\/[^@]*@/, '//')}), ${workers} worker(s) each, ${perServer} agents each`);
  const config = path.join(dataDir, `cluster-${suffix}.json`);
  fs.writeFileSync(config, JSON.stringify({ limits: { pendingHellosPerAddress: AGENTS } }));
  const listens: string[][] = [];
  const procs: ChildProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const base = PORT + 10 + i * 2 + (suffix === 'single' ? 20 : 0);
      const listen = Array.from({ length: Math.max(1, Math.ceil(perServer / 10_000)) }, (_, a) => `127.0.0.${a + 2}:${base}`);
      listens.push(listen);
      const proc = spawn(process.execPath, [CLI, 'server', '--listen', listen.join(','), '--peer-listen', `127.0.0.1:${base + 1}`, '--store', url,
        '--workers', String(workers), '--max-agents', String(perServer), '--config', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, VITEFA_ADMIN_PASSWORD: BENCH_PASSWORD, VITEFA_PASSWORD_ITERATIONS: '4096' },
      });
      procs.push(proc);
      proc.stderr.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n')) if (/declared dead|suspect|exited/.test(line)) say(`  server ${i}: ${line}`);
      });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('listening on')) resolve();
        });
        proc.once('exit', (code) => reject(new Error(`server ${i} exited (${code}): ${out}`)));
      });
    }
    const [host, port] = listens[0][0].split(':');
    const client = await AdminClient.connect({ host: host, port: Number(port), login: { user: 'admin', secret: BENCH_PASSWORD }, connectTimeoutMs: 10_000, requestTimeoutMs: 120_000 });
    await client.request({ op: 'env.add', env: ENV });
    let last = (await client.request({ op: 'set', env: ENV, key: 'k', value: '0' })).rev;
    const token = newToken();
    await client.request({ op: 'token.add', name: 'bench-agents', envs: ['*'], id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) });
    // The other servers see the new token with their next look at the credentials (every second).
    await new Promise((r) => setTimeout(r, 2_000));
    // Interleaved, so the agents of every load process spread evenly over the servers.
    const targets: string[] = [];
    for (let a = 0; a < Math.max(...listens.map((l) => l.length)); a++) for (const l of listens) if (l[a] !== undefined) targets.push(l[a]);
    const serverOf = new Map<string, number>();
    listens.forEach((l, i) => l.forEach((addr) => serverOf.set(addr, i)));
    fleet = new SimFleet(AGENTS);
    const f = fleet;
    const c0 = Date.now();
    fleet.start('protocol', targets, ENV, 1, 500, token.text);
    await until('agents connected and current', async () => {
      const st = await f.status();
      return st.connected >= AGENTS && st.heldMin >= last ? st : false;
    }, 600_000, (st) => (st ? '' : `connecting: ${((Date.now() - c0) / 1000).toFixed(1)} s`));
    const connectMs = Date.now() - c0;
    say(`  ${AGENTS} agents connected and current in ${(connectMs / 1000).toFixed(1)} s`);
    const atWriter = Array.from({ length: AGENTS }, (_, i) => serverOf.get(f.targetOf(targets, i)) === 0);
    await new Promise((r) => setTimeout(r, 2_000));
    const writer: number[] = [];
    const others: number[] = [];
    const rounds: ClusterPhase['rounds'] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const { rev, sent, times: { arrivals } } = await releaseRound(client, f, last + 1, round);
      last = rev;
      const w: number[] = [];
      const o: number[] = [];
      arrivals.forEach((t, i) => {
        if (!Number.isNaN(t)) (atWriter[i] ? w : o).push(t - sent);
      });
      writer.push(...w);
      others.push(...o);
      rounds.push({ writer: summarize(w), others: summarize(o.length > 0 ? o : w), received: countReceived(arrivals) });
      const r = rounds.at(-1)!;
      say(`  round ${round}: writer's agents p50 ${fmtMs(r.writer.p50)} / p99 ${fmtMs(r.writer.p99)} ms${count > 1 ? `; other servers' agents p50 ${fmtMs(r.others.p50)} / p99 ${fmtMs(r.others.p99)} ms` : ''}; ${r.received}/${AGENTS}`);
    }
    const st = await f.status();
    client.close();
    fleet.quiet();
    for (const proc of procs) proc.kill('SIGKILL');
    await fleet.close();
    fleet = undefined;
    return { servers: count, connectMs, writer, others, rounds, final: { gaps: st.gaps, errors: st.errors, snapshots: st.snapshots } };
  } finally {
    for (const proc of procs) proc.kill('SIGKILL');
    await drop().catch(() => undefined);
  }
}

/** `--peers N`: the floor, one MySQL-backed server, and N peers on one database, side by side. */
async function peersMain(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  say(`vitefa bench --peers ${PEERS}: ${AGENTS} agents, ${ROUNDS} rounds, ${os.availableParallelism()} cores (${cpu})`);
  const sample = encodeMessage({ t: MessageType.Release, env: ENV, rev: 1_000_000, prev: 999_999, time: Date.now(), author: `bench@${ADDRESSES[0]}:40000`, op: 'set', changes: [['k', '1000001']] });
  const floorResult = args['skip-floor'] ? undefined : await floorPhase(sample.length);
  const single = await clusterPhase(1, 'single');
  const peers = await clusterPhase(PEERS, 'peers');
  const floorAll = floorResult ? summarize(floorResult.all) : undefined;
  const s1 = summarize(single.writer);
  const w = summarize(peers.writer);
  const o = summarize(peers.others);
  const vs = (x: number, y: number | undefined): string => (y ? `${(x / y).toFixed(2)}×` : '-');
  const rows = [
    ['', 'p50 (ms)', 'p99 (ms)', 'max (ms)', 'p50 / floor', 'p99 / floor'],
    ['floor (bare fan-out, all agents)', fmtMs(floorAll?.p50 ?? NaN), fmtMs(floorAll?.p99 ?? NaN), fmtMs(floorAll?.max ?? NaN), '', ''],
    ['one MySQL-backed server, all agents', fmtMs(s1.p50), fmtMs(s1.p99), fmtMs(s1.max), vs(s1.p50, floorAll?.p50), vs(s1.p99, floorAll?.p99)],
    [`${PEERS} peers: the writer's agents`, fmtMs(w.p50), fmtMs(w.p99), fmtMs(w.max), vs(w.p50, floorAll?.p50), vs(w.p99, floorAll?.p99)],
    [`${PEERS} peers: the other servers' agents`, fmtMs(o.p50), fmtMs(o.p99), fmtMs(o.max), vs(o.p50, floorAll?.p50), vs(o.p99, floorAll?.p99)],
  ];
  process.stdout.write(`\n${table(rows)}\n\nother servers' agents / writer's agents: p50 ${(o.p50 / w.p50).toFixed(2)}, p99 ${(o.p99 / w.p99).toFixed(2)}; median of the rounds' p99: writer ${fmtMs(median(peers.rounds.map((r) => r.writer.p99)))}, others ${fmtMs(median(peers.rounds.map((r) => r.others.p99)))} ms\n`);
  const lost = [single, peers].some((p) => p.final.gaps > 0 || p.rounds.some((r) => r.received < AGENTS));
  if (lost) process.stdout.write('WARNING: some agents missed a release or saw a gap\n');
  const report = {
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ').replace(/\/\/[^@]*@/, '//')}`.trim(),
    machine: { cores: os.availableParallelism(), cpu, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, kernel: os.release() },
    layout: { agents: AGENTS, peers: PEERS, rounds: ROUNDS, frameBytes: sample.length },
    floor: floorAll,
    single: { propagation: s1, connectMs: single.connectMs, rounds: single.rounds.map((r) => ({ ...r.writer, received: r.received })), agentsSaw: single.final },
    peers: {
      writer: w, others: o, ratioOthersToWriterP50: o.p50 / w.p50, ratioOthersToWriterP99: o.p99 / w.p99, connectMs: peers.connectMs,
      rounds: peers.rounds.map((r) => ({ writer: r.writer, others: r.others, received: r.received })), agentsSaw: peers.final,
    },
  };
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  const svgFile = args.svg ?? (args.json ? args.json.replace(/\.json$/, '') + '.svg' : undefined);
  if (svgFile) {
    const series = [
      { label: `${PEERS} peers, other servers' agents (p99 ${fmtMs(o.p99)} ms)`, color: '#d62728', samples: Float64Array.from(peers.others) },
      { label: `${PEERS} peers, the writer's agents (p99 ${fmtMs(w.p99)} ms)`, color: '#ff7f0e', samples: Float64Array.from(peers.writer) },
      { label: `one MySQL-backed server (p99 ${fmtMs(s1.p99)} ms)`, color: '#2ca02c', samples: Float64Array.from(single.writer) },
    ];
    if (floorResult) series.push({ label: `bare fan-out floor (p99 ${fmtMs(floorAll!.p99)} ms)`, color: '#1f77b4', samples: Float64Array.from(floorResult.all) });
    fs.writeFileSync(svgFile, cdfSvg(`Propagation to ${AGENTS} agents over ${PEERS} peers, ${ROUNDS} releases (${os.availableParallelism()} cores)`, series));
  }
  cleanup();
  process.exit(lost ? 1 : 0);
}

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  say(`vitefa bench: ${AGENTS} agents, ${ROUNDS} rounds, ${WORKERS} server workers, ${Math.ceil(AGENTS / 15_000)} load processes, ${os.availableParallelism()} cores (${cpu})`);

  // The release every round sends, to size the floor's frame identically.
  const sample = encodeMessage({ t: MessageType.Release, env: ENV, rev: 1_000_000, prev: 999_999, time: Date.now(), author: `bench@${ADDRESSES[0]}:40000`, op: 'set', changes: [['k', '1000001']] });
  const floorResult = args['skip-floor'] ? undefined : await floorPhase(sample.length);

  const plain = await serverPhase(undefined, true);
  const secure = args.tls ? await serverPhase(makeCertificates(), false) : undefined;
  const { connectMs, bytesPerConn, heapPerConn, rounds, all, commitMs, snapshot, storm, final } = plain;
  const { releases, committedMs, deliveredMs } = plain.burst;
  const server = summarize(all);
  const probes = summarize(plain.probeMs);
  const floorAll = floorResult ? summarize(floorResult.all) : undefined;
  const ratio = (a: number, b: number | undefined): number => (b ? a / b : NaN);
  const rows = [
    ['', 'vitefa server', 'floor (bare fan-out)', 'ratio'],
    ['agents receiving every release', `${Math.min(...rounds.map((r) => r.received))}/${AGENTS}`, floorResult ? `${Math.min(...floorResult.rounds.map((r) => r.received))}/${AGENTS}` : '-', ''],
    ['propagation p50 (ms)', fmtMs(server.p50), fmtMs(floorAll?.p50 ?? NaN), ratio(server.p50, floorAll?.p50).toFixed(2)],
    ['propagation p99 (ms)', fmtMs(server.p99), fmtMs(floorAll?.p99 ?? NaN), ratio(server.p99, floorAll?.p99).toFixed(2)],
    ['propagation max (ms)', fmtMs(server.max), fmtMs(floorAll?.max ?? NaN), ratio(server.max, floorAll?.max).toFixed(2)],
    ['median of round p99s (ms)', fmtMs(median(rounds.map((r) => r.summary.p99))), floorResult ? fmtMs(median(floorResult.rounds.map((r) => r.summary.p99))) : '-', ''],
    ['time to connect all (s)', (connectMs / 1000).toFixed(1), floorResult ? (floorResult.connectMs / 1000).toFixed(1) : '-', ''],
    ['memory per connection, RSS (bytes)', bytesPerConn.toFixed(0), floorResult ? floorResult.bytesPerConn.toFixed(0) : '-', ''],
    ['  of which JS heap (bytes)', heapPerConn.toFixed(0), floorResult ? floorResult.heapPerConn.toFixed(0) : '-', ''],
    ['commit acknowledged, the rounds\' releases (ms, median / max)', `${fmtMs(median(commitMs))} / ${fmtMs(Math.max(...commitMs))}`, '', ''],
    ['writes during a fan-out: commit p50 / p99 / max (ms)', `${fmtMs(probes.p50)} / ${fmtMs(probes.p99)} / ${fmtMs(probes.max)} (${probes.count})`, '', ''],
    [`${releases} small releases in a row: committed / on every agent (s)`, `${(committedMs / 1000).toFixed(2)} / ${(deliveredMs / 1000).toFixed(2)}`, '', ''],
    ['  each acknowledged after p50 / p99 (ms)', `${fmtMs(plain.burst.commitP50Ms)} / ${fmtMs(plain.burst.commitP99Ms)}`, '', ''],
    ['server CPU per release, all processes (ms, median)', `${fmtMs(median(plain.cpuMsPerRelease))} (${((median(plain.cpuMsPerRelease) * 1000) / AGENTS).toFixed(1)} µs per agent)`, '', ''],
    [`server CPU idle, ${plain.idleSeconds} s (% of one core)`, plain.idleCpuPercent.toFixed(2), '', ''],
    ...(plain.bulk === undefined ? [] : [
      [`small writes during an apply of ${plain.bulk.keys} keys: p50 / p99 (ms)`, `${fmtMs(plain.bulk.duringP50Ms)} / ${fmtMs(plain.bulk.duringP99Ms)} (${plain.bulk.duringCount})`, '', ''],
      ['  the same writes alone: p50 / p99 (ms); the apply (ms)', `${fmtMs(plain.bulk.quietP50Ms)} / ${fmtMs(plain.bulk.quietP99Ms)}; ${fmtMs(plain.bulk.applyMs)}`, '', ''],
      ['  during a diff across it: p50 / p99 (ms); the diff (ms)', `${fmtMs(plain.bulk.diff.p50Ms)} / ${fmtMs(plain.bulk.diff.p99Ms)} (${plain.bulk.diff.count}); ${fmtMs(plain.bulk.diff.ms)}`, '', ''],
      ['  during a rollback undoing it: p50 / p99 (ms); the rollback (ms)', `${fmtMs(plain.bulk.rollback.p50Ms)} / ${fmtMs(plain.bulk.rollback.p99Ms)} (${plain.bulk.rollback.count}); ${fmtMs(plain.bulk.rollback.ms)}`, '', ''],
    ]),
  ];
  process.stdout.write(`\n${table(rows)}\n`);
  let tlsReport: Record<string, unknown> | undefined;
  if (secure !== undefined) {
    const t = summarize(secure.all);
    const tlsRows = [
      ['', 'plaintext', 'TLS', 'TLS / plaintext'],
      ['propagation p50 (ms), ratio to the floor', `${fmtMs(server.p50)} (${ratio(server.p50, floorAll?.p50).toFixed(2)})`, `${fmtMs(t.p50)} (${ratio(t.p50, floorAll?.p50).toFixed(2)})`, ratio(t.p50, server.p50).toFixed(2)],
      ['propagation p99 (ms), ratio to the floor', `${fmtMs(server.p99)} (${ratio(server.p99, floorAll?.p99).toFixed(2)})`, `${fmtMs(t.p99)} (${ratio(t.p99, floorAll?.p99).toFixed(2)})`, ratio(t.p99, server.p99).toFixed(2)],
      ['median of round p99s (ms)', fmtMs(median(rounds.map((r) => r.summary.p99))), fmtMs(median(secure.rounds.map((r) => r.summary.p99))), ''],
      ['time to connect all (s)', (connectMs / 1000).toFixed(1), (secure.connectMs / 1000).toFixed(1), ratio(secure.connectMs, connectMs).toFixed(2)],
      ['server CPU per connection, connect + login + catch-up (ms)', plain.cpuMsPerConn.toFixed(3), secure.cpuMsPerConn.toFixed(3), ratio(secure.cpuMsPerConn, plain.cpuMsPerConn).toFixed(2)],
      ['  of which the TLS handshake (ms)', '', (secure.cpuMsPerConn - plain.cpuMsPerConn).toFixed(3), ''],
      ['memory per connection, RSS (bytes)', bytesPerConn.toFixed(0), secure.bytesPerConn.toFixed(0), ratio(secure.bytesPerConn, bytesPerConn).toFixed(2)],
      ['  of which JS heap (bytes)', heapPerConn.toFixed(0), secure.heapPerConn.toFixed(0), ratio(secure.heapPerConn, heapPerConn).toFixed(2)],
      ['reconnect storm, all current (s)', storm ? (storm.allCurrentMs / 1000).toFixed(1) : '-', secure.storm ? (secure.storm.allCurrentMs / 1000).toFixed(1) : '-', storm && secure.storm ? ratio(secure.storm.allCurrentMs, storm.allCurrentMs).toFixed(2) : ''],
      ['releases lost in the storm', storm ? String(storm.lostReleases) : '-', secure.storm ? String(secure.storm.lostReleases) : '-', ''],
    ];
    process.stdout.write(`\n${table(tlsRows)}\n`);
    tlsReport = {
      propagation: { server: t, ratioP50: ratio(t.p50, floorAll?.p50), ratioP99: ratio(t.p99, floorAll?.p99), rounds: secure.rounds.map((r) => ({ ...r.summary, received: r.received })) },
      connectMs: secure.connectMs,
      cpuMsPerConnection: { plaintext: plain.cpuMsPerConn, tls: secure.cpuMsPerConn, handshake: secure.cpuMsPerConn - plain.cpuMsPerConn },
      memory: { bytesPerConnection: secure.bytesPerConn, heapBytesPerConnection: secure.heapPerConn },
      storm: secure.storm,
      agentsSaw: secure.final,
    };
  }
  if (final.gaps > 0 || final.errors > 0) process.stdout.write(`WARNING: ${final.gaps} gaps, ${final.errors} protocol errors seen by agents\n`);

  const report = {
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cores: os.availableParallelism(), cpu, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, kernel: os.release() },
    layout: { agents: AGENTS, serverWorkers: WORKERS, loadProcesses: Math.ceil(AGENTS / 15_000), addresses: ADDRESSES, frameBytes: sample.length, rounds: ROUNDS },
    propagation: { server, floor: floorAll, ratioP50: ratio(server.p50, floorAll?.p50), ratioP99: ratio(server.p99, floorAll?.p99), rounds: rounds.map((r) => ({ ...r.summary, received: r.received })), floorRounds: floorResult?.rounds.map((r) => ({ ...r.summary, received: r.received })) },
    connect: { serverMs: connectMs, floorMs: floorResult?.connectMs },
    memory: {
      method: 'slope between half and all agents connected, each reading after a garbage collection in every process',
      serverBytesPerConnection: bytesPerConn, floorBytesPerConnection: floorResult?.bytesPerConn,
      serverHeapBytesPerConnection: heapPerConn, floorHeapBytesPerConnection: floorResult?.heapPerConn,
    },
    commitAckMs: commitMs,
    writesDuringFanout: probes,
    cpu: {
      msPerRelease: plain.cpuMsPerRelease, medianMsPerRelease: median(plain.cpuMsPerRelease), usPerAgentPerRelease: (median(plain.cpuMsPerRelease) * 1000) / AGENTS,
      idlePercentOfOneCore: plain.idleCpuPercent, idleSeconds: plain.idleSeconds,
    },
    burst: plain.burst,
    bulk: plain.bulk,
    snapshot,
    storm,
    agentsSaw: { gaps: final.gaps, protocolErrors: final.errors, snapshots: final.snapshots },
    tls: tlsReport,
  };
  if (args.json) fs.writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
  writeMarks();
  const svgFile = args.svg ?? (args.json ? args.json.replace(/\.json$/, '') + '.svg' : undefined);
  if (svgFile) {
    const series = [{ label: `vitefa server (p99 ${fmtMs(server.p99)} ms)`, color: '#d62728', samples: Float64Array.from(all) }];
    if (floorResult) series.push({ label: `bare fan-out floor (p99 ${fmtMs(floorAll!.p99)} ms)`, color: '#1f77b4', samples: Float64Array.from(floorResult.all) });
    fs.writeFileSync(svgFile, cdfSvg(`Propagation to ${AGENTS} agents, ${ROUNDS} releases (${os.availableParallelism()} cores)`, series));
  }
  cleanup();
  const lost = final.gaps > 0 || rounds.some((r) => r.received < AGENTS) || (secure !== undefined && (secure.final.gaps > 0 || secure.rounds.some((r) => r.received < AGENTS)));
  process.exit(lost ? 1 : 0);
}

if (!fs.existsSync(CLI)) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
(PEERS > 0 ? peersMain() : main()).catch((err: unknown) => {
  say(`bench failed: ${(err as Error).stack ?? String(err)}`);
  cleanup();
  process.exit(1);
});
