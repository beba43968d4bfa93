/**
 * The small shapes the messages, requests and results are built from.
 * Values of configuration keys travel as JSON text (UTF-8 strings): the
 * server validates them once, agents store the same bytes, and every
 * language can read them back.
 */

/** [key, JSON text] */
export type Entry = [key: string, json: string];
/** [key, JSON text, or null when the key is deleted] */
export type Change = [key: string, json: string | null];
/** [key, old JSON text or null, new JSON text or null] */
export type KeyChange = [key: string, before: string | null, after: string | null];

export interface EnvRev {
  env: string;
  /** Revision held; 0 means nothing is held. */
  rev: number;
  /**
   * The chain value of what is held at `rev` (see Release.chain), when the
   * holder knows it: a server that finds another chain value at that
   * revision sends a snapshot instead of releases.
   */
  chain?: string;
}

/**
 * Environments the servers keep for themselves (the schemas, docs/schemas.md) start with this:
 * no environment a client names may (the request checkers refuse it), so none is ever read,
 * written, followed or listed through the operations of environments.
 */
export const RESERVED_ENV_PREFIX = '@';
