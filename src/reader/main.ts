import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import { printable } from '../printable.js';
import { DEFAULT_AGENT_STORE } from './layout.js';
import { ConfigReader } from './reader.js';

export interface ReadFlags {
  store?: string;
  json?: boolean;
  /** Exactly as stored, for pipes: control characters are not escaped. */
  raw?: boolean;
  meta?: boolean;
}

/**
 * `vitefa read ENV [KEY]`: a value (strings bare unless --json) or the whole
 * environment as JSON; with --meta, the revision and chain value held, and
 * the layers behind a layered environment's view with their revisions. What is printed for people shows control characters
 * escaped (printable.ts: a value's line breaks and tabs stay); --json and
 * --raw print the stored text exactly.
 */
export async function runRead(env: string, key: string | undefined, flags: ReadFlags): Promise<void> {
  if (flags.raw === true && (flags.json === true || flags.meta === true)) {
    throw new VitefaError(LocalErrorCode.USAGE, `--raw does not go with ${flags.json === true ? '--json' : '--meta'}`);
  }
  const exact = flags.json === true || flags.raw === true;
  const shown = (text: string): string => (exact ? text : printable(text, true));
  const reader = ConfigReader.open(flags.store ?? process.env.VITEFA_AGENT_STORE ?? DEFAULT_AGENT_STORE);
  try {
    if (flags.meta === true) {
      const rev = reader.revision(env);
      if (rev === 0) throw new VitefaError(LocalErrorCode.NOT_FOUND, `environment ${env} is not in the agent store ${reader.dir}`);
      const chain = reader.chain(env);
      // Read in the same synchronous run as the revision: one snapshot of the store.
      const layers = reader.layers(env);
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify({ env, rev, chain, ...(layers.length === 0 ? {} : { layers }) })}\n`);
        return;
      }
      process.stdout.write(`${printable(`${env} revision ${rev} chain ${chain === '' ? '(not known)' : chain}`)}\n`);
      if (layers.length > 0) process.stdout.write(`${printable(`layers: ${layers.map((l) => `${l.env}@${l.rev}`).join(' ')}`)}\n`);
      return;
    }
    if (key === undefined) {
      if (reader.revision(env) === 0) throw new VitefaError(LocalErrorCode.NOT_FOUND, `environment ${env} is not in the agent store ${reader.dir}`);
      // Indented JSON: its line breaks are its own; inside its strings, \uXXXX means the same to a JSON reader.
      process.stdout.write(`${shown(JSON.stringify(reader.list(env), null, 2))}\n`);
      return;
    }
    const text = reader.getText(env, key);
    if (text === undefined) {
      throw new VitefaError(
        LocalErrorCode.NOT_FOUND,
        reader.revision(env) === 0 ? `environment ${env} is not in the agent store ${reader.dir}` : `key ${key} is not in ${env}`,
      );
    }
    const value: unknown = JSON.parse(text);
    process.stdout.write(`${shown(typeof value === 'string' && flags.json !== true ? value : text)}\n`);
  } finally {
    await reader.close();
  }
}
