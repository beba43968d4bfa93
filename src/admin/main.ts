import { randomUUID } from 'node:crypto';
import { LocalErrorCode, REQUEST_ID, VitefaError, type AdminResult, type RemoteError, type ResultOf } from '../protocol/index.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../security/scram.js';
import { clientTls } from '../security/tls.js';
import { backoffDelay } from '../transport/backoff.js';
import { endpointText, type Endpoint } from '../transport/client.js';
import { AdminClient } from './client.js';
import { COMMANDS, findCommand, helpText, prepareCommand, type CommandIO, type Prepared } from './commands.js';
import { formatRelease, formatResult, noteFor, outputOf, styleFor } from './format.js';
import { isSchemaRefusal, refusalJson, refusalLines, warningLines } from './format-schemas.js';
import { resolveLogin } from './login.js';
import { askSecret } from './prompt.js';
import { runRepl } from './repl.js';
import { afterLoss, CONFIG_WRITES, cutOff, isWrite, mayRetry, notRetried, RETRIES, unanswered } from './outcome.js';
import { parseServers, ServerList } from './servers.js';

export interface AdminFlags {
  server?: string;
  user?: string;
  loginFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** The request id of a configuration write (else a new one per run): the same id from two runs applies once. */
  requestId?: string;
}

/** The options of `vitefa admin` itself, which may also follow the command's words. */
const ADMIN_OPTIONS: Readonly<Record<string, keyof AdminFlags>> = {
  '--server': 'server', '--user': 'user', '--login-file': 'loginFile', '--tls-ca': 'tlsCa', '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey', '--request-id': 'requestId',
};

/**
 * The command's words and the admin options among them: an option after the
 * command's words is the admin's (`set ENV KEY VALUE --request-id ID`) unless
 * the command has one of that name (`audit --user U` filters by U; the login
 * is `vitefa admin --user NAME audit …`). Words after `--` are all the command's.
 */
export function adminOptionsAmong(words: readonly string[], flags: AdminFlags): { words: string[]; flags: AdminFlags } {
  const own = findCommand(words.filter((w) => !w.startsWith('-')))?.name;
  const ownUsage = own === undefined ? '' : COMMANDS[own].usage;
  const out: string[] = [];
  const found: AdminFlags = { ...flags };
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === '--') {
      out.push(...words.slice(i + 1));
      break;
    }
    const eq = word.startsWith('--') ? word.indexOf('=') : -1;
    const name = eq > 0 ? word.slice(0, eq) : word;
    const key = ADMIN_OPTIONS[name];
    if (key === undefined || new RegExp(`\\[${name}[ \\]]`).test(ownUsage)) {
      out.push(word);
      continue;
    }
    const value = eq > 0 ? word.slice(eq + 1) : words[++i];
    if (value === undefined) throw new VitefaError(LocalErrorCode.USAGE, `${name} needs a value`);
    found[key] = value;
  }
  return { words: out, flags: found };
}

/** `vitefa admin [COMMAND…]`: log in, then one command and exit, or the REPL. */
export async function runAdmin(given: string[], givenFlags: AdminFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { words, flags } = adminOptionsAmong(given, givenFlags);
  if (words.includes('--help') || words.includes('-h')) {
    const named = findCommand(words.filter((w) => w !== '--help' && w !== '-h'));
    process.stdout.write(`${helpText(named?.name)}\n`);
    return;
  }
  if (words[0] === 'help') {
    process.stdout.write(`${helpText(words.slice(1).join(' '))}\n`);
    return;
  }
  // Parse before connecting: a usage error needs no server (nothing is asked, no real verifier is made).
  if (words.length > 0) await prepareCommand(words, { account: '', passwordIterations: 1, newPassword: () => Promise.resolve('unused-placeholder') });
  if (flags.requestId !== undefined && !REQUEST_ID.test(flags.requestId)) {
    throw new VitefaError(LocalErrorCode.USAGE, `--request-id must be 1 to 128 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(flags.requestId)}`);
  }
  const servers = new ServerList(parseServers(flags.server ?? env.VITEFA_SERVER ?? '127.0.0.1:7400'));
  const requestTimeoutMs = requestTimeout(env.VITEFA_REQUEST_TIMEOUT_MS);
  const tls = clientTls({ ca: flags.tlsCa ?? env.VITEFA_TLS_CA, cert: flags.tlsCert ?? env.VITEFA_TLS_CLIENT_CERT, key: flags.tlsKey ?? env.VITEFA_TLS_CLIENT_KEY });
  const login = await resolveLogin(flags, env);
  const connectTimeoutMs = env.VITEFA_CONNECT_TIMEOUT_MS === undefined ? 10_000 : requestTimeout(env.VITEFA_CONNECT_TIMEOUT_MS, 'VITEFA_CONNECT_TIMEOUT_MS');
  const connectTo = (at: Endpoint) => AdminClient.connect({
    ...at, login, ...(tls === undefined ? {} : { tls }), connectTimeoutMs, requestTimeoutMs,
    // A throttled login is tried again after the wait the server names, when that fits in the connect timeout: said on stderr.
    onThrottled: (_retryMs, message) => void process.stderr.write(`vitefa admin: ${endpointText(at)} throttles this login (${message}); waiting\n`),
  });
  let { client, index } = await servers.connect(connectTo);
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
    const req = prepared.request;
    const rid = CONFIG_WRITES.has(req.op) ? (flags.requestId ?? randomUUID()) : undefined;
    let result: AdminResult;
    // Once a write's answer was lost, a later failure says nothing of that attempt: the outcome is unknown.
    let lost: VitefaError | undefined;
    const final = (err: unknown): unknown => (lost === undefined ? unanswered(req, err, rid) ?? err : afterLoss(req, lost, err, rid));
    for (let attempt = 1; ; attempt++) {
      try {
        result = await client.request(req, rid);
        break;
      } catch (err) {
        if (isSchemaRefusal(err) && lost === undefined) {
          refused(err, prepared.json);
          return;
        }
        if (!mayRetry(req, rid, err) || attempt > RETRIES) throw final(err);
        if (isWrite(req.op) && cutOff(err)) lost ??= err;
        client.close();
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, 125, 125 * 2 ** RETRIES, 'none')));
        // The next server of the list first, this one last.
        ({ client, index } = await servers.connect(connectTo, index + 1).catch((again: unknown) => {
          throw lost === undefined ? notRetried(err, again) : afterLoss(req, lost, again, rid);
        }));
      }
    }
    const style = styleFor(process.stdout, env);
    process.stdout.write(`${formatResult(req, result, outputOf(prepared), style)}\n`);
    if (prepared.note !== undefined) process.stdout.write(`${noteFor(prepared)}\n`);
    // Written, and failing schemas in warn mode: said on stderr, the result on stdout as ever.
    for (const line of warningLines(result)) process.stderr.write(`${line}\n`);
    // A dry run the schemas would refuse fails as the apply would (a script can gate on it).
    if (req.op === 'plan' && ((result as ResultOf['plan']).violations?.length ?? 0) > 0) process.exitCode = 1;
  } finally {
    client.close();
  }
}

/**
 * A write refused by schemas (nothing was written): printed here, since the
 * command line prints an error as one line — `vitefa: not applied: N schema
 * violations`, then a line per violation, each escaped; exit 1 as for any
 * failure. With --json, the error and its violations as JSON on stdout besides.
 */
function refused(err: RemoteError, json: boolean): void {
  if (json) process.stdout.write(`${refusalJson(err)}\n`);
  process.stderr.write(`vitefa: ${refusalLines(err).join('\n')}\n`);
  process.exitCode = 1;
}

/** What the commands may ask of this process: new passwords (env or terminal), the iterations the server wants. */
export function commandIO(client: AdminClient, env: NodeJS.ProcessEnv = process.env): CommandIO {
  return {
    account: client.account.account,
    passwordIterations: client.account.iterations ?? SCRAM_DEFAULT_ITERATIONS,
    newPassword: async (account) => {
      const given = env.VITEFA_NEW_PASSWORD;
      if (given !== undefined && given !== '') return given;
      const first = await askSecret(`new password for ${account}: `, 'VITEFA_NEW_PASSWORD');
      if (first.length < 8) throw new VitefaError(LocalErrorCode.USAGE, 'a password has at least 8 characters');
      if ((await askSecret('again: ', 'VITEFA_NEW_PASSWORD')) !== first) throw new VitefaError(LocalErrorCode.USAGE, 'the two passwords differ');
      return first;
    },
  };
}

/** `watch ENV [KEY]`: prints each release as it lands, until Ctrl-C or the server closes. */
async function watch(client: AdminClient, prepared: Prepared): Promise<void> {
  const style = styleFor(process.stdout);
  const result = await client.request(prepared.request);
  if (!prepared.json) process.stderr.write(`${formatResult(prepared.request, result, 'text', style)}\n`);
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
