import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import { parseEndpoint } from '../transport/client.js';
import { AdminClient } from './client.js';
import { formatResult, helpText, parseCommand } from './commands.js';
import { runRepl } from './repl.js';

export interface AdminFlags {
  server?: string;
  token?: string;
}

/** `vitefa admin [COMMAND…]`: one command and exit, or the REPL. */
export async function runAdmin(words: string[], flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (words.length === 1 && (words[0] === 'help' || words[0] === '--help')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  // Parse before connecting: a usage error needs no server.
  const command = words.length > 0 ? parseCommand(words) : undefined;
  const endpoint = parseEndpoint(flags.server ?? env.VITEFA_SERVER ?? '127.0.0.1:7400');
  const client = await AdminClient.connect({
    ...endpoint,
    token: flags.token ?? env.VITEFA_ADMIN_TOKEN,
    connectTimeoutMs: 5000,
    requestTimeoutMs: requestTimeout(env.VITEFA_REQUEST_TIMEOUT_MS),
  });
  try {
    if (command === undefined) {
      await runRepl(client);
      return;
    }
    const result = await client.request(command.request);
    process.stdout.write(`${formatResult(command.request, result, command.json)}\n`);
  } finally {
    client.close();
  }
}

/** VITEFA_REQUEST_TIMEOUT_MS: a positive whole number of milliseconds (default 30,000). */
export function requestTimeout(text: string | undefined): number {
  if (text === undefined || text === '') return 30_000;
  const ms = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(ms) || ms < 1 || ms > 2_147_483_647) {
    throw new VitefaError(LocalErrorCode.USAGE, `VITEFA_REQUEST_TIMEOUT_MS must be a whole number of milliseconds from 1 to 2147483647, got ${JSON.stringify(text)}`);
  }
  return ms;
}
