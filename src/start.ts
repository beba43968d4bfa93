import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminClient } from './admin/client.js';
import { RemoteError, WireError } from './protocol/index.js';
import { parseEndpoint } from './transport/client.js';

export interface StartFlags {
  listen: string;
  data: string;
}

const DEMO_ENV = 'demo';

/**
 * `vitefa start` (npm start): a server on the embedded store and an agent,
 * each its own process as in production, plus a `demo` environment to try.
 * Ctrl-C stops both.
 */
export async function runStart(flags: StartFlags): Promise<void> {
  const endpoint = parseEndpoint(flags.listen);
  const cli = fileURLToPath(import.meta.url).replace(/start\.(js|ts)$/, 'cli.$1');
  const execArgv = cli.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const children: ChildProcess[] = [];
  const run = (name: string, args: string[]): ChildProcess => {
    const child = spawn(process.execPath, [...execArgv, cli, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => {
      if (!stopping) {
        process.stderr.write(`vitefa start: ${name} exited (${signal ?? code}); stopping\n`);
        stop(1);
      }
    });
    children.push(child);
    return child;
  };
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const child of children) child.kill('SIGTERM');
    Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))))).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));

  // A host-sized server: one worker per core (the 100,000-agent default would start seven).
  run('server', ['server', '--listen', flags.listen, '--store', path.join(flags.data, 'server'), '--max-agents', '10000']);
  const client = await connectWithRetry(endpoint, 15_000);
  try {
    await client.request({ op: 'env.add', env: DEMO_ENV });
  } catch (err) {
    if (!(err instanceof RemoteError && err.status === WireError.ENV_EXISTS)) throw err;
  } finally {
    client.close();
  }
  const agentStore = path.join(flags.data, 'agent');
  run('agent', ['agent', '--servers', flags.listen, '--store', agentStore]);
  const storeFlag = agentStore === path.join('data', 'agent') ? '' : ` --store ${agentStore}`;
  const serverFlag = flags.listen === '127.0.0.1:7400' ? '' : ` --server ${flags.listen}`;
  process.stdout.write(
    [
      '',
      `vitefa is running: server on ${flags.listen}, agent store in ${agentStore}, environment "${DEMO_ENV}" ready.`,
      'In another shell:',
      `  npx vitefa admin${serverFlag} set ${DEMO_ENV} greeting '"hello"'`,
      `  npx vitefa read${storeFlag} ${DEMO_ENV} greeting`,
      `  npx vitefa admin${serverFlag}            # the REPL; type help`,
      'Ctrl-C stops both.',
      '',
    ].join('\n'),
  );
}

async function connectWithRetry(endpoint: { host: string; port: number }, withinMs: number): Promise<AdminClient> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await AdminClient.connect({ ...endpoint, connectTimeoutMs: 2000, requestTimeoutMs: 10_000 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
