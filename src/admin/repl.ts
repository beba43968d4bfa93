import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { printable } from '../printable.js';
import { RemoteError, VitefaError, type AdminRequest } from '../protocol/index.js';
import type { AdminClient } from './client.js';
import { CONFIG_WRITES, unanswered } from './outcome.js';
import { COMMAND_NAMES, COMMANDS, findCommand, helpText, prepareCommand, type CommandIO } from './commands.js';
import { formatRelease, formatResult, noteFor, outputOf, styleFor, type Style } from './format.js';
import { isSchemaRefusal, refusalJson, refusalLines, warningLines } from './format-schemas.js';
import { isIncomplete, splitWords } from './words.js';
import { errorText } from '../error-text.js';

const HISTORY_SIZE = 1000;
/** Keys offered for completion, per environment, at most. */
const COMPLETION_KEYS = 10_000;

export interface ReplOptions {
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WriteStream;
  historyFile?: string;
}

/**
 * The interactive admin, logged in once: the prompt shows the account, the
 * server and the environment in use (`use ENV`, after which commands act on
 * it); Tab completes commands, environment names and keys; history is kept
 * in the user's home; a JSON value may spread over several lines while a
 * bracket or quote is open; output is coloured on a terminal (never with
 * NO_COLOR or when piped). Ctrl-C cancels the line (or stops a watch),
 * Ctrl-D leaves. An error prints one line and the REPL goes on.
 */
export async function runRepl(client: AdminClient, io: CommandIO, options: ReplOptions = {}): Promise<void> {
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  const historyFile = options.historyFile ?? process.env.VITEFA_HISTORY_FILE ?? path.join(os.homedir(), '.vitefa_history');
  const style = styleFor(output);
  const terminal = output.isTTY === true;
  let current: string | undefined;
  let envNames: string[] = [];
  const keys = new Map<string, string[]>();
  let pending = '';
  let watching: { env: string; stop: () => void } | undefined;

  const refreshEnvs = async (): Promise<void> => {
    try {
      envNames = (await client.request({ op: 'env.list' })).envs.map((e) => e.env);
    } catch {
      // completion is a convenience: keep the old list
    }
  };
  const keysOf = async (env: string): Promise<string[]> => {
    let known = keys.get(env);
    if (known === undefined) {
      try {
        known = (await client.request({ op: 'list', env })).entries.slice(0, COMPLETION_KEYS).map(([k]) => k);
      } catch {
        known = [];
      }
      keys.set(env, known);
    }
    return known;
  };
  await refreshEnvs();

  const rl = readline.createInterface({
    input,
    output,
    terminal,
    history: loadHistory(historyFile),
    historySize: HISTORY_SIZE,
    completer: (line: string, done: (err: null, result: [string[], string]) => void) => {
      void complete(line, current, envNames, keysOf).then((r) => done(null, r), () => done(null, [[], line]));
    },
  });
  const account = client.account;
  // Names the server sent (and environment names) are shown escaped, here as everywhere.
  const promptText = (): string => {
    const where = style.dim(`@${printable(client.serverId)}`);
    return pending !== '' ? '... ' : `${style.bold(printable(account.account))}${where}${current === undefined ? '' : ` ${style.key(printable(current))}`}> `;
  };
  const prompt = (): void => {
    rl.setPrompt(promptText());
    rl.prompt();
  };
  output.write(`logged in as ${printable(`${account.account} (${account.role}) on ${client.serverId}`)}; type help for commands\n`);

  const run = async (text: string): Promise<boolean> => {
    const words = splitWords(text);
    if (words.length === 0) return true;
    const [first, ...rest] = words;
    if (first === 'quit' || first === 'exit') return false;
    if (first === 'help' || first === '?') {
      output.write(`${helpText(rest.join(' '))}\n`);
      return true;
    }
    if (first === 'use') {
      if (rest.length > 1) throw new VitefaError('E_USAGE', 'usage: use [ENV]');
      if (rest[0] !== undefined) {
        await refreshEnvs();
        if (!envNames.includes(rest[0])) throw new VitefaError('E_USAGE', `environment ${rest[0]} does not exist (env list shows them)`);
      }
      current = rest[0];
      return true;
    }
    const prepared = await prepareCommand(words, io, current);
    if (prepared.request.op === 'watch') {
      await watch(client, prepared.request, prepared.watchKey, style, output, (w) => (watching = w));
      watching = undefined;
      return true;
    }
    // A write carries a request id: if its answer is lost, the error names it, and running it again with it applies it once.
    const rid = CONFIG_WRITES.has(prepared.request.op) ? randomUUID() : undefined;
    const result = await client.request(prepared.request, rid).catch((err: unknown) => {
      // A refusal by schemas with --json: the error as JSON, then its lines as any error's.
      if (prepared.json && isSchemaRefusal(err)) output.write(`${refusalJson(err)}\n`);
      throw unanswered(prepared.request, err, rid) ?? err;
    });
    output.write(`${formatResult(prepared.request, result, outputOf(prepared), style)}\n`);
    if (prepared.note !== undefined) output.write(`${noteFor(prepared)}\n`);
    for (const line of warningLines(result)) output.write(`${line}\n`);
    afterWrite(prepared.request);
    return true;
  };
  const afterWrite = (req: AdminRequest): void => {
    if (req.op === 'env.add' || req.op === 'env.del') void refreshEnvs();
    // A layer's write changes the views built on it too: their keys are asked again.
    if (CONFIG_WRITES.has(req.op)) keys.clear();
    else if ('env' in req && typeof req.env === 'string') keys.delete(req.env);
  };

  await new Promise<void>((resolve) => {
    // Lines are handled one at a time, in order: piped input arrives all at once.
    const queue: string[] = [];
    let busy = false;
    let closed = false;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      watching?.stop();
      resolve();
    };
    const pump = (): void => {
      if (busy) return;
      const line = queue.shift();
      if (line === undefined) {
        if (closed) finish();
        return;
      }
      const text = pending === '' ? line : `${pending}\n${line}`;
      if (isIncomplete(text)) {
        pending = text;
        prompt();
        pump();
        return;
      }
      pending = '';
      if (text.trim() === '') {
        prompt();
        pump();
        return;
      }
      appendHistory(historyFile, text.replace(/\n/g, ' '));
      busy = true;
      const done = (goOn: boolean): void => {
        busy = false;
        if (!goOn) {
          queue.length = 0;
          closed = true;
          rl.close();
          finish();
          return;
        }
        prompt();
        pump();
      };
      run(text).then(done, (err: unknown) => {
        output.write(`${style.bad('error:')} ${describe(err)}\n`);
        // A lost connection ends the session; any other error leaves the prompt.
        done(!client.isClosed && !(err instanceof VitefaError && err.code === 'E_CONNECTION_CLOSED'));
      });
    };
    rl.on('SIGINT', () => {
      if (watching !== undefined) {
        watching.stop();
        return;
      }
      // Ctrl-C cancels what is being typed (a multi-line value too), never the session.
      pending = '';
      rl.write(null, { ctrl: true, name: 'u' });
      output.write('^C\n');
      prompt();
    });
    rl.on('close', () => {
      closed = true;
      if (!busy && queue.length === 0) finish();
    });
    rl.on('line', (line) => {
      queue.push(line);
      pump();
    });
    prompt();
  });
}

/** Follows `env` until `stop` (Ctrl-C): prints each release (only `key`'s change when given). */
async function watch(
  client: AdminClient, request: AdminRequest, key: string | undefined, style: Style, output: NodeJS.WritableStream,
  started: (w: { env: string; stop: () => void }) => void,
): Promise<void> {
  if (request.op !== 'watch') return;
  const result = await client.request(request);
  output.write(`${formatResult(request, result, 'text', style)}\n`);
  client.onRelease = (release) => {
    if (release.env !== request.env) return;
    const text = formatRelease(release, key, style);
    if (text !== undefined) output.write(`${text}\n`);
  };
  await new Promise<void>((resolve) => {
    started({ env: request.env, stop: resolve });
    void client.closed.then(() => resolve());
  });
  client.onRelease = undefined;
  await client.request({ op: 'unwatch', env: request.env }).catch(() => undefined);
}

/** Where commands that do not take an environment first take environment names (by the count of words before). */
const ENV_WORDS: Readonly<Record<string, (before: number) => boolean>> = {
  status: (n) => n === 0,
  'env del': (n) => n === 0,
  'schema list': (n) => n === 0,
  // ENV, then its parents.
  'env layers': () => true,
};

/** Completion: command names first, then environment names where one goes, then keys of the environment. */
async function complete(line: string, current: string | undefined, envs: string[], keysOf: (env: string) => Promise<string[]>): Promise<[string[], string]> {
  const words = line.split(/\s+/);
  const last = words[words.length - 1] ?? '';
  const done = words.slice(0, -1);
  const found = done.length > 0 ? findCommand(done) : undefined;
  if (found === undefined) {
    const typed = line.trimStart();
    const names = [...COMMAND_NAMES, 'help', 'use', 'quit'];
    const hits = names.filter((c) => c.startsWith(typed));
    if (hits.length > 0) return [hits.map((h) => h.split(' ').slice(words.length - 1).join(' ')), last];
    if (done[0] === 'use' && done.length === 1) return [envs.filter((e) => e.startsWith(last)), last];
    if (done[0] === 'help') return [COMMAND_NAMES.filter((c) => c.startsWith(words.slice(1).join(' '))), last];
    return [[], last];
  }
  const spec = COMMANDS[found.name];
  if (!spec.envFirst) return [ENV_WORDS[found.name]?.(found.rest.length) === true ? envs.filter((e) => e.startsWith(last)) : [], last];
  const args = current === undefined ? found.rest : [current, ...found.rest];
  if (args.length === 0) return [envs.filter((e) => e.startsWith(last)), last];
  if (args.length === 1) {
    const keys = await keysOf(args[0]);
    return [keys.filter((k) => k.startsWith(last)), last];
  }
  return [[], last];
}

/**
 * An error as one line for people: its message, control characters escaped
 * (it may quote what a server sent); a refusal by schemas as its lines, one
 * per violation.
 */
export function describe(err: unknown): string {
  if (isSchemaRefusal(err)) return refusalLines(err).join('\n');
  if (err instanceof RemoteError || err instanceof VitefaError) return printable(err.message);
  return printable(errorText(err));
}

function loadHistory(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).reverse().slice(0, HISTORY_SIZE);
  } catch {
    return [];
  }
}

function appendHistory(file: string, line: string): void {
  try {
    fs.appendFileSync(file, `${line}\n`, { mode: 0o600 });
  } catch {
    // history is best effort (a read-only home)
  }
}
