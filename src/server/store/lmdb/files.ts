import path from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { LocalErrorCode, VitefaError, type BigValue } from '../../../protocol/index.js';
import { newStoreId } from '../identity.js';
import type { RequestRecord } from '../requests.js';
import type { MemberRecord, StoredRelease } from '../types.js';
import type { AccessDbs } from './access.js';

/**
 * Layout version of the embedded store; bump with a migration when it changes. 2: parent lists,
 * `via` records and own entries (layered environments); a store at 1 reads as it is.
 */
const SCHEMA_VERSION = 2;

/** An environment's record in the `envs` database. */
export interface EnvRecord {
  rev: number;
  /** Releases up to this revision were pruned; history is complete after it (0: nothing pruned). */
  floor: number;
  /** Releases of this environment still kept. */
  kept: number;
  /** Revision of the release that created this incarnation (an environment deleted and created again starts afresh). */
  created: number;
  /** Chain value of the release at `rev` (absent in stores written before chains). */
  chain?: string;
  /** The environment's parent list, lowest first (absent: none). */
  parents?: string[];
}

/**
 * A `via` release of an environment, under [env, rev] in the `via` database: made by the write to
 * `via` at `rev` (whose release record holds the changes and lists this environment in `deps`).
 */
export interface ViaRecord {
  via: string;
  prev: number;
  chain: string;
}

/**
 * A release as kept under its [env, rev] key. Values longer than
 * OUT_OF_LINE_BYTES are kept apart (`out`: [change, side, bytes, sha256],
 * the value null in `changes`, its text in the `release-values` database),
 * so that reading history or working out a diff never decodes them: their
 * size and hash are in the record. Records written before this have every
 * value in line.
 */
export type ReleaseRecord = Omit<StoredRelease, 'env' | 'rev' | 'big' | 'more' | 'merged' | 'group' | 'via'> & {
  out?: BigValue[];
  /** The environments that got a `via` release at this revision (ViaRecord). */
  deps?: string[];
};

/** The databases of one LMDB environment, open, and the head revision (kept here, written with each release). */
export interface LmdbFiles {
  root: RootDatabase;
  meta: Database<number, string>;
  envs: Database<EnvRecord, string>;
  /** "<env>\0<key>" -> JSON text. */
  values: Database<string, string>;
  releases: Database<ReleaseRecord, [string, number]>;
  /** Values kept apart from their release: [env, rev, change, side] -> JSON text. */
  outValues: Database<string, [string, number, number, number]>;
  /** Global order of releases: rev -> env. */
  log: Database<string, number>;
  /** The `via` releases: [env, rev] -> ViaRecord. */
  via: Database<ViaRecord, [string, number]>;
  access: AccessDbs;
  servers: Database<MemberRecord, string>;
  /** Rows written for peers' proofs: key -> [secret, time]. */
  proofs: Database<[Buffer, number], string>;
  /** Request ids of configuration writes -> what they answered; and [time, id] to prune them by age. */
  requests: Database<RequestRecord, string>;
  requestTimes: Database<number, [number, string]>;
  /** The highest revision committed. */
  head: number;
}

/** Opens (or creates) the store's databases in `dir`, gives the store an id if it has none, and checks the layout version. */
export async function openFiles(dir: string): Promise<LmdbFiles> {
  const root = open({ path: path.join(dir, 'store'), maxDbs: 16, mapSize: 1 << 30 });
  const meta = root.openDB<number, string>({ name: 'meta' });
  const files: LmdbFiles = {
    root,
    meta,
    envs: root.openDB({ name: 'envs' }),
    values: root.openDB({ name: 'values' }),
    releases: root.openDB({ name: 'releases' }),
    log: root.openDB({ name: 'log' }),
    via: root.openDB({ name: 'via' }),
    access: {
      root,
      meta: meta,
      accounts: root.openDB({ name: 'accounts' }),
      tokens: root.openDB({ name: 'tokens' }),
      audit: root.openDB({ name: 'audit' }),
    },
    servers: root.openDB({ name: 'servers' }),
    requests: root.openDB({ name: 'requests' }),
    requestTimes: root.openDB({ name: 'request-times' }),
    proofs: root.openDB({ name: 'proofs' }),
    outValues: root.openDB({ name: 'release-values' }),
    head: 0,
  };
  try {
    // The store id, made once (a store from an older build gets one now).
    if (meta.get('store-id') === undefined) await (meta as unknown as Database<unknown, string>).put('store-id', newStoreId());
    const schema = meta.get('schema');
    if (schema === undefined || schema < SCHEMA_VERSION) {
      // Nothing to convert from 1: what it holds is what 2 holds for environments built on nothing.
      await meta.put('schema', SCHEMA_VERSION);
    } else if (schema > SCHEMA_VERSION) {
      throw new VitefaError(
        LocalErrorCode.SCHEMA_TOO_NEW,
        `store ${dir} has schema ${schema}, newer than this build knows (${SCHEMA_VERSION})`,
      );
    }
  } catch (err) {
    await root.close();
    throw err;
  }
  files.head = meta.get('head') ?? 0;
  return files;
}

/**
 * Value keys are "<env>\0<key>": environment names and keys never contain
 * control characters, so "<env>\0" .. "<env>\u0001" holds exactly one
 * environment's keys, whatever characters the keys use.
 */
export const valueKey = (env: string, key: string): string => `${env}\u0000${key}`;
export const valueRange = (env: string): { start: string; end: string } => ({ start: `${env}\u0000`, end: `${env}\u0001` });

/** Every key and value of `env`. */
export function readValues(files: LmdbFiles, env: string): Map<string, string> {
  const values = new Map<string, string>();
  const prefix = env.length + 1;
  for (const { key, value } of files.values.getRange(valueRange(env))) values.set(key.slice(prefix), value);
  return values;
}
