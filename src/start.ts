import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminClient } from './admin/client.js';
import { readLoginFile, writeLoginFile } from './admin/login.js';
import { RemoteError, WireError } from './protocol/index.js';
import { makeVerifier } from './security/scram.js';
import { newToken, parseToken, TOKEN_ITERATIONS } from './security/token.js';
import { parseEndpoint, type Login } from './transport/client.js';

export interface StartFlags {
  listen: string;
  data: string;
}

const DEMO_ENV = 'demo';
const AGENT_TOKEN_NAME = 'start-agent';

/**
 * `vitefa start` (npm start): a server on the embedded store and an agent,
 * each its own process as in production, plus a `demo` environment to try.
 * The first run takes the admin account's password from
 * VITEFA_ADMIN_PASSWORD, or makes one when that is unset, and writes it to
 * DATA/admin.login (readable by its owner only), which `vitefa admin` uses
 * when run from the same folder, and a token for its agent in
 * DATA/agent.token. Later runs ignore the variable (the account exists) and
 * say so when it differs from the login file. Ctrl-C stops both.
 */
export async function runStart(flags: StartFlags): Promise<void> {
  const endpoint = parseEndpoint(flags.listen);
  const cli = fileURLToPath(import.meta.url).replace(/start\.(js|ts)$/, 'cli.$1');
  const execArgv = cli.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const children: ChildProcess[] = [];
  const run = (name: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess => {
    const child = spawn(process.execPath, [...execArgv, cli, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
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
    void Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))))).then(() => process.exit(code));
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));

  const loginFile = path.join(flags.data, 'admin.login');
  const serverDir = path.join(flags.data, 'server');
  let login: Login | undefined;
  // Set only when this run chose the password (below), never inherited.
  const serverEnv: NodeJS.ProcessEnv = { VITEFA_START_LOGIN_FILE: '' };
  const given = process.env.VITEFA_ADMIN_PASSWORD === '' ? undefined : process.env.VITEFA_ADMIN_PASSWORD;
  const accountsExist = fs.existsSync(serverDir);
  if (fs.existsSync(loginFile)) {
    login = readLoginFile(loginFile);
  } else if (!accountsExist) {
    // A fresh folder: the first admin's password is VITEFA_ADMIN_PASSWORD when it is set (the server
    // reads the same variable), else one this run chooses; either way it is kept for `vitefa admin`.
    const password = given ?? randomBytes(18).toString('base64url');
    writeLoginFile(loginFile, 'admin', password);
    login = { user: 'admin', secret: password };
    serverEnv.VITEFA_ADMIN_PASSWORD = password;
    // The server names where the password is, rather than the variable it was handed over in.
    if (given === undefined) serverEnv.VITEFA_START_LOGIN_FILE = loginFile;
  }
  if (accountsExist && given !== undefined && given !== login?.secret) {
    // The server makes the first account only in a store without accounts: the variable would change nothing.
    const kept = login === undefined ? '' : ` (its password is the one in ${loginFile})`;
    process.stderr.write(`vitefa start: VITEFA_ADMIN_PASSWORD is ignored: the account admin already exists in ${serverDir}${kept}; change its password with: vitefa admin passwd\n`);
  }
  // A host-sized server: one worker per core (the 100,000-agent default would start seven).
  run('server', ['server', '--listen', flags.listen, '--store', serverDir, '--max-agents', '10000'], serverEnv);
  if (login === undefined) {
    process.stderr.write(`vitefa start: ${loginFile} is gone, so this run cannot log in to set up the demo; the server runs, and the agent starts only with ${path.join(flags.data, 'agent.token')}\n`);
  }
  const tokenFile = path.join(flags.data, 'agent.token');
  if (login !== undefined) {
    const client = await connectWithRetry(endpoint, login, 15_000);
    try {
      await client.request({ op: 'env.add', env: DEMO_ENV }).catch((err: unknown) => {
        if (!(err instanceof RemoteError && err.status === WireError.ENV_EXISTS)) throw err;
      });
      if (!fs.existsSync(tokenFile) || parseToken(fs.readFileSync(tokenFile, 'utf8')) === undefined) {
        await client.request({ op: 'token.del', name: AGENT_TOKEN_NAME }).catch(() => undefined);
        const token = newToken();
        await client.request({ op: 'token.add', name: AGENT_TOKEN_NAME, envs: ['*'], id: token.id, verifier: makeVerifier(token.secret, TOKEN_ITERATIONS) });
        fs.writeFileSync(tokenFile, `${token.text}\n`, { mode: 0o600 });
      }
    } finally {
      client.close();
    }
  }
  if (!fs.existsSync(tokenFile)) return;
  const agentStore = path.join(flags.data, 'agent');
  run('agent', ['agent', '--servers', flags.listen, '--store', agentStore, '--token-file', tokenFile]);
  const storeFlag = agentStore === path.join('data', 'agent') ? '' : ` --store ${agentStore}`;
  const serverFlag = flags.listen === '127.0.0.1:7400' ? '' : ` --server ${flags.listen}`;
  const loginFlag = loginFile === path.join('data', 'admin.login') ? '' : ` --login-file ${loginFile}`;
  process.stdout.write(
    [
      '',
      `vitefa is running: server on ${flags.listen}, agent store in ${agentStore}, environment "${DEMO_ENV}" ready.`,
      `The admin account's password is in ${loginFile} (owner-only); vitefa admin uses it from this folder.`,
      'In another shell:',
      `  npx vitefa admin${serverFlag}${loginFlag} set ${DEMO_ENV} greeting '"hello"'`,
      `  npx vitefa read${storeFlag} ${DEMO_ENV} greeting`,
      `  npx vitefa admin${serverFlag}${loginFlag}            # the REPL; type help`,
      'Ctrl-C stops both.',
      '',
    ].join('\n'),
  );
}

async function connectWithRetry(endpoint: { host: string; port: number }, login: Login, withinMs: number): Promise<AdminClient> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await AdminClient.connect({ ...endpoint, login, connectTimeoutMs: 2000, requestTimeoutMs: 10_000 });
    } catch (err) {
      if (Date.now() > deadline || (err instanceof RemoteError && err.status === WireError.AUTH_FAILED)) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
