import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

/** Rebuilds dist/ once when any source is newer, so real processes run the code under test. */
function ensureBuilt(): void {
  const built = fs.existsSync(CLI) ? fs.statSync(CLI).mtimeMs : 0;
  const newest = (dir: string): number =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }, 0);
  if (newest(path.join(ROOT, 'src')) > built) {
    const result = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`build failed:\n${result.stdout}${result.stderr}`);
  }
}
ensureBuilt();

export { ADMIN_PASSWORD, tempDir, waitFor } from './common.js';
import { ADMIN_PASSWORD, waitFor } from './common.js';

/** Where test processes record the ports they have taken (one file per port, created exclusively). */
const PORT_LOCKS = path.join(os.tmpdir(), 'vitefa-test-ports');
/** Ports handed out: outside the ephemeral range (32768-60999 here), which port 0 would draw from. */
const PORT_FIRST = 20000;
const PORT_COUNT = 12000;
const taken: string[] = [];
process.on('exit', () => {
  for (const lock of taken) fs.rmSync(lock, { force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock file of `port` for this process; a lock left by a dead process is taken over. */
function lockPort(port: number): boolean {
  const lock = path.join(PORT_LOCKS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      taken.push(lock);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(lock, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      fs.rmSync(lock, { force: true });
    }
  }
  return false;
}

let nextPort = PORT_FIRST + ((process.pid * 97) % PORT_COUNT);

/**
 * A port for a test server, taken so that it cannot collide: test processes
 * running at the same time each take a port by creating its lock file
 * exclusively (so no two of them get the same one), and the port is checked
 * free on `host`. Ports stay outside the ephemeral range, so no outgoing
 * connection holds one (binding port 0 would draw from that range).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  fs.mkdirSync(PORT_LOCKS, { recursive: true });
  for (let i = 0; i < PORT_COUNT; i++) {
    const port = PORT_FIRST + ((nextPort++ - PORT_FIRST) % PORT_COUNT);
    if (!lockPort(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, host, () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port found');
}

/**
 * What every process a test starts gets unless the test says otherwise: its
 * servers make the account admin with ADMIN_PASSWORD (with the least
 * iterations the server accepts, so logins are quick), and its admin
 * commands log in as admin.
 */
export const TEST_ENV: NodeJS.ProcessEnv = {
  VITEFA_ADMIN_PASSWORD: ADMIN_PASSWORD,
  VITEFA_PASSWORD_ITERATIONS: '4096',
  VITEFA_USER: 'admin',
  VITEFA_PASSWORD: ADMIN_PASSWORD,
};

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to standard input, which is then closed. */
  input?: string;
}

/** A running `vitefa` process with its output collected. */
export class Proc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], options: RunOptions = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...TEST_ENV, ...options.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (options.input !== undefined) this.child.stdin!.end(options.input);
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  // Generous: on a loaded machine (two heavy test files at once on two cores) a process may take seconds to start.
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return waitFor(`output matching ${pattern} (got: ${this.output.slice(-500)})`, () => this.output.match(pattern) ?? undefined, timeoutMs);
  }

  /** Graceful stop (SIGTERM) and wait for exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Runs a `vitefa` command to completion. */
export function run(args: string[], options: RunOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = new Proc(args, options);
  return proc.exited.then((code) => ({ code, stdout: proc.stdout, stderr: proc.stderr }));
}

/** Starts a server on a free port; retries on a port taken in the meantime. */
export async function startServer(dataDir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, startTimeoutMs = 20_000): Promise<{ proc: Proc; address: string }> {
  for (let attempt = 0; ; attempt++) {
    const address = `127.0.0.1:${await freePort()}`;
    // Two workers (one per core): the cluster path, without the seven workers of the 100,000-agent default.
    const sizing = extra.some((a) => a === '--workers' || a === '--max-agents') ? [] : ['--max-agents', '2000'];
    // A server of a MySQL store opens its peer port too: one more port from the pool, not the listen port + 1.
    const peerPort = dataDir.startsWith('mysql://') && !extra.includes('--peer-listen') ? ['--peer-listen', `127.0.0.1:${await freePort()}`] : [];
    const proc = new Proc(['server', '--listen', address, '--store', dataDir, ...sizing, ...peerPort, ...extra], { env });
    const result = await Promise.race([
      proc.waitForOutput(/listening on/, startTimeoutMs).then(() => 'up' as const),
      proc.exited.then(() => 'exited' as const),
    ]);
    if (result === 'up') return { proc, address };
    if (attempt >= 3 || !/EADDRINUSE/.test(proc.output)) throw new Error(`server did not start: ${proc.output}`);
  }
}

/** Every process started through `track` is killed when `killAll` runs (test teardown). */
export class Procs {
  private readonly all: Proc[] = [];
  track<T extends Proc>(proc: T): T {
    this.all.push(proc);
    return proc;
  }
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.stop('SIGKILL')));
  }
}

/** Makes an agent token through `vitefa admin token add` and returns it. */
export async function agentToken(address: string, name: string, envs: string[] = ['*']): Promise<string> {
  const made = await run(['admin', '--server', address, 'token', 'add', name, ...envs]);
  if (made.code !== 0) throw new Error(`token add failed: ${made.stderr}`);
  const token = made.stdout.split('\n').find((l) => l.startsWith('vta_'));
  if (token === undefined) throw new Error(`no token in: ${made.stdout}`);
  return token;
}
