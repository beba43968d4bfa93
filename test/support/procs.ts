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

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'vitefa-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A port that was free a moment ago, outside the ephemeral range
 * (32768-60999 here) so no outgoing connection can be holding it.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const ok = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, host, () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found');
}

/** Polls `check` until it returns a value other than undefined/false, or fails after the deadline. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

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
      env: { ...process.env, ...options.env },
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

  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
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
export async function startServer(dataDir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ proc: Proc; address: string }> {
  for (let attempt = 0; ; attempt++) {
    const address = `127.0.0.1:${await freePort()}`;
    // Two workers (one per core): the cluster path, without the seven workers of the 100,000-agent default.
    const sizing = extra.some((a) => a === '--workers' || a === '--max-agents') ? [] : ['--max-agents', '2000'];
    const proc = new Proc(['server', '--listen', address, '--store', dataDir, ...sizing, ...extra], { env });
    const result = await Promise.race([
      proc.waitForOutput(/listening on/, 20_000).then(() => 'up' as const),
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
