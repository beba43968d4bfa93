import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { RemoteError, VitefaError } from '../protocol/index.js';
import type { AdminClient } from './client.js';
import { COMMAND_NAMES, formatResult, helpText, parseCommand } from './commands.js';
import { splitWords } from './words.js';

const HISTORY_FILE = process.env.VITEFA_HISTORY_FILE ?? path.join(os.homedir(), '.vitefa_history');
const HISTORY_SIZE = 1000;

/** Commands whose first argument is an environment name (for completion). */
const TAKES_ENV = new Set(COMMAND_NAMES.filter((c) => !['env add', 'env list'].includes(c)));

/**
 * The interactive admin: readline with persistent history, help and tab
 * completion of command and environment names, over the same commands as
 * the one-shot mode. An error prints one line and the REPL goes on.
 */
export async function runRepl(client: AdminClient, input = process.stdin, output = process.stdout): Promise<void> {
  let envNames: string[] = [];
  const refreshEnvs = async (): Promise<void> => {
    try {
      envNames = (await client.request({ op: 'env.list' })).envs.map((e) => e.env);
    } catch {
      // completion is a convenience; keep the old list
    }
  };
  await refreshEnvs();
  const rl = readline.createInterface({
    input,
    output,
    prompt: 'vitefa> ',
    history: loadHistory(),
    historySize: HISTORY_SIZE,
    terminal: (output as NodeJS.WriteStream).isTTY === true,
    completer: (line: string): [string[], string] => complete(line, envNames),
  });
  output.write(`connected to ${client.serverId}; type help for commands\n`);
  rl.prompt();
  for await (const line of rl) {
    const trimmed = line.trim();
    if (trimmed === 'quit' || trimmed === 'exit') break;
    if (trimmed === 'help' || trimmed === '?') output.write(`${helpText()}\n`);
    else if (trimmed !== '') {
      appendHistory(trimmed);
      try {
        const { request, json } = parseCommand(splitWords(trimmed));
        const result = await client.request(request);
        output.write(`${formatResult(request, result, json)}\n`);
        if (request.op === 'env.add' || request.op === 'env.del') await refreshEnvs();
      } catch (err) {
        output.write(`error: ${describe(err)}\n`);
        if (err instanceof VitefaError && err.code === 'E_CONNECTION_CLOSED') break;
      }
    }
    rl.prompt();
  }
  rl.close();
}

function complete(line: string, envs: string[]): [string[], string] {
  const words = line.split(/\s+/);
  const last = words[words.length - 1] ?? '';
  const before = words.slice(0, -1).join(' ');
  if (words.length <= 2 && !COMMAND_NAMES.includes(before)) {
    const hits = COMMAND_NAMES.filter((c) => c.startsWith(line.trimStart()));
    if (hits.length > 0) return [hits.map((h) => h.split(' ').slice(words.length - 1).join(' ')), last];
  }
  if (TAKES_ENV.has(before)) return [envs.filter((e) => e.startsWith(last)), last];
  return [[], last];
}

export function describe(err: unknown): string {
  if (err instanceof RemoteError || err instanceof VitefaError) return err.message;
  return (err as Error)?.message ?? String(err);
}

function loadHistory(): string[] {
  try {
    return fs.readFileSync(HISTORY_FILE, 'utf8').split('\n').filter(Boolean).reverse().slice(0, HISTORY_SIZE);
  } catch {
    return [];
  }
}

function appendHistory(line: string): void {
  try {
    fs.appendFileSync(HISTORY_FILE, `${line}\n`);
  } catch {
    // history is best effort (read-only home)
  }
}
