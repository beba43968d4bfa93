import { randomUUID } from 'node:crypto';
import { LocalErrorCode, RemoteError, REQUEST_ID, VitefaError, WireError, type AdminResult } from '../protocol/index.js';
import { SCRAM_DEFAULT_ITERATIONS } from '../security/scram.js';
import { clientTls } from '../security/tls.js';
import { parseEndpoint, type Endpoint } from '../transport/client.js';
import { AdminClient } from './client.js';
import { helpText, prepareCommand, type CommandIO, type Prepared } from './commands.js';
import { formatRelease, formatResult, noteFor, styleFor } from './format.js';
import { resolveLogin } from './login.js';
import { askSecret } from './prompt.js';
import { runRepl } from './repl.js';
import { afterLoss, CONFIG_WRITES, unanswered } from './outcome.js';

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

/** `vitefa admin [COMMAND…]`: log in, then one command and exit, or the REPL. */
export async function runAdmin(words: string[], flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (words[0] === 'help' || words[0] === '--help') {
    process.stdout.write(`${helpText(words.slice(1).join(' '))}\n`);
    return;
  }
  // Parse before connecting: a usage error needs no server (nothing is asked, no real verifier is made).
  if (words.length > 0) await prepareCommand(words, { account: '', passwordIterations: 1, newPassword: async () => 'unused-placeholder' });
  if (flags.requestId !== undefined && !REQUEST_ID.test(flags.requestId)) {
    throw new VitefaError(LocalErrorCode.USAGE, `--request-id must be 1 to 128 of A-Z a-z 0-9 . _ : -, got ${JSON.stringify(flags.requestId)}`);
  }
  const endpoint = parseEndpoint(flags.server ?? env.VITEFA_SERVER ?? '127.0.0.1:7400');
  const requestTimeoutMs = requestTimeout(env.VITEFA_REQUEST_TIMEOUT_MS);
  const tls = clientTls({ ca: flags.tlsCa ?? env.VITEFA_TLS_CA, cert: flags.tlsCert ?? env.VITEFA_TLS_CLIENT_CERT, key: flags.tlsKey ?? env.VITEFA_TLS_CLIENT_KEY });
  const login = await resolveLogin(flags, env);
  const connectTimeoutMs = env.VITEFA_CONNECT_TIMEOUT_MS === undefined ? 10_000 : requestTimeout(env.VITEFA_CONNECT_TIMEOUT_MS, 'VITEFA_CONNECT_TIMEOUT_MS');
  const connectTo = (at: Endpoint) => AdminClient.connect({ ...at, login, ...(tls === undefined ? {} : { tls }), connectTimeoutMs, requestTimeoutMs });
  let client = await connectTo(endpoint);
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
    const rid = CONFIG_WRITES.has(prepared.request.op) ? (flags.requestId ?? randomUUID()) : undefined;
    const servers = [endpoint, ...client.peers.map(parseEndpoint)];
    let result: AdminResult;
    // Once an attempt's answer was lost, a later failure says nothing of that attempt: the outcome is unknown.
    let lost: VitefaError | undefined;
    const final = (err: unknown): unknown => (lost === undefined ? unanswered(prepared.request, err, rid) ?? err : afterLoss(prepared.request, lost, err, rid));
    for (let attempt = 1; ; attempt++) {
      try {
        result = await client.request(prepared.request, rid);
        break;
      } catch (err) {
        if (err instanceof VitefaError && err.code === LocalErrorCode.CONNECTION_CLOSED) lost ??= err;
        // The answer to a write with an id was lost with its connection: send it again, same id, to this server or another.
        if (rid === undefined || !lostWithConnection(err) || attempt > RETRIES) throw final(err);
        client.close();
        client = await reconnect(servers, attempt, connectTo).catch(() => {
          throw final(err);
        });
      }
    }
    const style = styleFor(process.stdout, env);
    process.stdout.write(`${formatResult(prepared.request, result, prepared.json, style)}\n`);
    if (prepared.note !== undefined) process.stdout.write(`${noteFor(prepared)}\n`);
  } finally {
    client.close();
  }
}

/** Retries of a configuration write whose connection was lost, after 250 ms, 500 ms, 1 s, 2 s. */
const RETRIES = 4;

/** The request was cut off with its connection (or refused by a server shutting down): the same id may be sent again. */
function lostWithConnection(err: unknown): boolean {
  if (err instanceof RemoteError) return err.status === WireError.SHUTTING_DOWN;
  return err instanceof VitefaError && err.code === LocalErrorCode.CONNECTION_CLOSED;
}

/** A new session for retry `attempt`: after a pause, to each server in turn starting with the next one. */
async function reconnect(servers: Endpoint[], attempt: number, connectTo: (at: Endpoint) => Promise<AdminClient>): Promise<AdminClient> {
  await new Promise((resolve) => setTimeout(resolve, 125 * 2 ** attempt));
  let last: unknown;
  for (let i = 0; i < servers.length; i++) {
    try {
      return await connectTo(servers[(attempt + i) % servers.length]!);
    } catch (err) {
      last = err;
    }
  }
  throw last;
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
