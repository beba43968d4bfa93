import { LocalErrorCode, VitefaError, type AdminRequest } from '../protocol/index.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../security/scram.js';
import { clientTls } from '../security/tls.js';
import { parseEndpoint } from '../transport/client.js';
import { AdminClient } from './client.js';
import { helpText, prepareCommand, type CommandIO, type Prepared } from './commands.js';
import { formatRelease, formatResult, noteFor, styleFor } from './format.js';
import { resolveLogin } from './login.js';
import { askSecret } from './prompt.js';
import { runRepl } from './repl.js';

export interface AdminFlags {
  server?: string;
  user?: string;
  loginFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** `vitefa admin [COMMAND…]`: log in, then one command and exit, or the REPL. */
export async function runAdmin(words: string[], flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (words[0] === 'help' || words[0] === '--help') {
    process.stdout.write(`${helpText(words.slice(1).join(' '))}\n`);
    return;
  }
  // Parse before connecting: a usage error needs no server (nothing is asked, no real verifier is made).
  if (words.length > 0) await prepareCommand(words, { account: '', passwordIterations: 1, newPassword: async () => 'unused-placeholder' });
  const endpoint = parseEndpoint(flags.server ?? env.VITEFA_SERVER ?? '127.0.0.1:7400');
  const requestTimeoutMs = requestTimeout(env.VITEFA_REQUEST_TIMEOUT_MS);
  const tls = clientTls({ ca: flags.tlsCa ?? env.VITEFA_TLS_CA, cert: flags.tlsCert ?? env.VITEFA_TLS_CLIENT_CERT, key: flags.tlsKey ?? env.VITEFA_TLS_CLIENT_KEY });
  const login = await resolveLogin(flags, env);
  const connectTimeoutMs = env.VITEFA_CONNECT_TIMEOUT_MS === undefined ? 10_000 : requestTimeout(env.VITEFA_CONNECT_TIMEOUT_MS, 'VITEFA_CONNECT_TIMEOUT_MS');
  const client = await AdminClient.connect({ ...endpoint, login, ...(tls === undefined ? {} : { tls }), connectTimeoutMs, requestTimeoutMs });
  const io = commandIO(client, env);
  try {
    if (words.length === 0) {
      await runRepl(client, io);
      return;
    }
    const prepared = await prepareCommand(words, io);
    if (prepared.request.op === 'watch') {
      await watch(client, prepared);
      return;
    }
    const result = await client.request(prepared.request).catch((err: unknown) => {
      throw unanswered(prepared.request, err) ?? err;
    });
    const style = styleFor(process.stdout, env);
    process.stdout.write(`${formatResult(prepared.request, result, prepared.json, style)}\n`);
    if (prepared.note !== undefined) process.stdout.write(`${noteFor(prepared)}\n`);
  } finally {
    client.close();
  }
}

/** The admin operations that change something: their outcome matters when no answer comes. */
const WRITE_OPS: ReadonlySet<string> = new Set([
  'env.add', 'env.del', 'set', 'del', 'merge', 'clear', 'apply', 'rollback',
  'user.add', 'user.del', 'user.passwd', 'token.add', 'token.del',
]);

/**
 * A write whose answer never came — none in time, or the connection lost
 * after it was sent — may or may not have been applied: say so, and how to
 * find out, instead of reporting a failure.
 */
function unanswered(req: AdminRequest, err: unknown): VitefaError | undefined {
  if (!WRITE_OPS.has(req.op) || !(err instanceof VitefaError)) return undefined;
  const lost = err.code === LocalErrorCode.REQUEST_TIMEOUT || (err.code === LocalErrorCode.CONNECTION_CLOSED && /before .* was answered/.test(err.message));
  if (!lost) return undefined;
  const where = 'env' in req ? `; \`history ${req.env}\` shows it if it was` : '';
  return new VitefaError(LocalErrorCode.OUTCOME_UNKNOWN, `${err.message}: the ${req.op} may or may not have been applied${where}`, { cause: err });
}

/** What the commands may ask of this process: new passwords (env or terminal), the iterations the server wants. */
export function commandIO(client: AdminClient, env: NodeJS.ProcessEnv = process.env): CommandIO {
  return {
    account: client.account.account,
    passwordIterations: client.account.iterations ?? SCRAM_DEFAULT_ITERATIONS,
    newPassword: async (account) => {
      const given = env.VITEFA_NEW_PASSWORD;
      if (given !== undefined && given !== '') return given;
      const first = await askSecret(`new password for ${account}: `);
      if (first.length < 8) throw new VitefaError(LocalErrorCode.USAGE, 'a password has at least 8 characters');
      if ((await askSecret('again: ')) !== first) throw new VitefaError(LocalErrorCode.USAGE, 'the two passwords differ');
      return first;
    },
  };
}

/** `watch ENV [KEY]`: prints each release as it lands, until Ctrl-C or the server closes. */
async function watch(client: AdminClient, prepared: Prepared): Promise<void> {
  const style = styleFor(process.stdout);
  const result = await client.request(prepared.request);
  if (!prepared.json) process.stderr.write(`${formatResult(prepared.request, result, false, style)}\n`);
  client.onRelease = (release) => {
    if (prepared.json) {
      if (prepared.watchKey === undefined || release.changes.some(([k]) => k === prepared.watchKey)) process.stdout.write(`${JSON.stringify(release)}\n`);
      return;
    }
    const text = formatRelease(release, prepared.watchKey, style);
    if (text !== undefined) process.stdout.write(`${text}\n`);
  };
  await new Promise<void>((resolve, reject) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    client.closed.then(
      (reason) => reject(new VitefaError(LocalErrorCode.CONNECTION_CLOSED, `the server closed the session: ${reason}`)),
      reject,
    );
  });
}

/** VITEFA_REQUEST_TIMEOUT_MS (or another timeout variable): a positive whole number of milliseconds (default 30,000). */
export function requestTimeout(text: string | undefined, name = 'VITEFA_REQUEST_TIMEOUT_MS'): number {
  if (text === undefined || text === '') return 30_000;
  const ms = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(ms) || ms < 1 || ms > 2_147_483_647) {
    throw new VitefaError(LocalErrorCode.USAGE, `${name} must be a whole number of milliseconds from 1 to 2147483647, got ${JSON.stringify(text)}`);
  }
  return ms;
}
