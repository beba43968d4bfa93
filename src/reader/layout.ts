/**
 * The agent store's on-disk layout, shared by the writer (the agent) and the
 * readers. Documented in docs/store-layout.md: any change here is a format
 * change and must bump LAYOUT_FORMAT.
 *
 * One LMDB environment (a folder holding data.mdb and lock.mdb), written in
 * LMDB's 0.9 data format so that liblmdb and the bindings of other languages
 * can open it. Three named databases, every key and value plain UTF-8:
 *   values     "<env>\0<key>" -> JSON text of the value
 *   revisions  "<env>"        -> revision as decimal digits
 *   meta       "format"       -> LAYOUT_FORMAT as decimal digits
 */
export const LAYOUT_FORMAT = 1;

export const DB_VALUES = 'values';
export const DB_REVISIONS = 'revisions';
export const DB_META = 'meta';

/** A file beside data.mdb rewritten after each commit, so readers can wait with fs.watch instead of polling. */
export const NOTIFY_FILE = 'notify';

export const DEFAULT_AGENT_STORE = './data/agent';

const SEPARATOR = 0;

export function valueKey(env: string, key: string): Buffer {
  const envBytes = Buffer.byteLength(env);
  const out = Buffer.allocUnsafe(envBytes + 1 + Buffer.byteLength(key));
  out.write(env, 0);
  out[envBytes] = SEPARATOR;
  out.write(key, envBytes + 1);
  return out;
}

/** The range of value keys of one environment: [start, end). */
export function envRange(env: string): { start: Buffer; end: Buffer } {
  const start = Buffer.concat([Buffer.from(env), Buffer.from([SEPARATOR])]);
  const end = Buffer.concat([Buffer.from(env), Buffer.from([SEPARATOR + 1])]);
  return { start, end };
}

/** The key part of a value key whose environment prefix is `prefixBytes` long (env plus separator). */
export function keyOf(valueKeyBytes: Uint8Array, prefixBytes: number): string {
  return Buffer.from(valueKeyBytes.buffer, valueKeyBytes.byteOffset + prefixBytes, valueKeyBytes.length - prefixBytes).toString('utf8');
}

export function envKey(env: string): Buffer {
  return Buffer.from(env);
}
