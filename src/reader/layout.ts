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
 *   chains     "<env>"        -> chain value of the release held (an addition:
 *                                 readers of the three above need not know it)
 *   meta       "layers/<env>" -> for an environment built on others, its layers
 *                                 and their revisions (an addition, as chains)
 */
import * as lmdb from 'lmdb';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';

export const LAYOUT_FORMAT = 1;

export const DB_VALUES = 'values';
export const DB_REVISIONS = 'revisions';
export const DB_META = 'meta';
/** Added in place (no format change): "<env>" -> the chain value of the release held (16 hex digits). */
export const DB_CHAINS = 'chains';

/** A file beside data.mdb rewritten after each commit, so readers can wait with fs.watch instead of polling. */
export const NOTIFY_FILE = 'notify';

export const DEFAULT_AGENT_STORE = './data/agent';

/**
 * lmdb-js key encoder for keys that are plain UTF-8 strings (lmdb-js's default
 * ordered-binary encoding would escape the 0x00 separator). The key is written
 * straight into lmdb's key buffer: no Buffer per lookup.
 */
export const UTF8_KEYS = {
  writeKey(key: string | Uint8Array, target: Buffer, start: number): number {
    // lmdb-js hands its own range bounds (bytes) through here too.
    if (typeof key !== 'string') {
      target.set(key, start);
      return start + key.length;
    }
    return start + target.write(key, start, 'utf8');
  },
  readKey(buffer: Uint8Array, start: number, end: number): string {
    return Buffer.from(buffer.buffer, buffer.byteOffset + start, end - start).toString('utf8');
  },
};

/** The key of `key` in `env` in the values database. */
export function valueKey(env: string, key: string): string {
  return `${env}\u0000${key}`;
}

/** The `meta` keys of the layers behind each environment's view: "layers/<env>" (docs/store-layout.md). */
export const META_LAYERS_PREFIX = 'layers/';

/** The `meta` key holding the layers behind `env`'s view: a JSON array of [env, rev] pairs, lowest layer first. */
export function layersKey(env: string): string {
  return `${META_LAYERS_PREFIX}${env}`;
}

/** The keys of one environment in the values database: [start, end). */
export function envRange(env: string): { start: string; end: string } {
  return { start: `${env}\u0000`, end: `${env}\u0001` };
}

/** Options that open the three databases the same way in the agent and in readers. */
export const DB_OPTIONS = { keyEncoder: UTF8_KEYS, encoding: 'binary' } as const;

/**
 * The store must be in LMDB's 0.9 data format so other languages can read it.
 * lmdb-js's prebuilt binaries write a newer format; `npm install` rebuilds it
 * (scripts/build-lmdb.mjs). Refuse to create a store no other reader can open.
 */
export function assertDataFormatV1(): void {
  // `version` is exported by lmdb at run time but missing from its type declarations.
  const lmdbVersion = (lmdb as unknown as { version: { major: number; minor: number; patch: number; versionString: string } }).version;
  if (lmdbVersion.major !== 0 || lmdbVersion.minor !== 9 || lmdbVersion.patch >= 90) {
    throw new VitefaError(
      LocalErrorCode.STORE_OPEN,
      `lmdb native module is ${lmdbVersion.versionString}, which writes a data format other LMDB readers cannot open; run: npm run build:lmdb`,
    );
  }
}
