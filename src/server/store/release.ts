import type { KeyChange } from '../../protocol/index.js';
import { chainOfStored } from './changes.js';
import type { CommitMeta, StoredRelease } from './types.js';

/** What identifies a release and who made it: the columns or record fields a store keeps beside its changes. */
export interface ReleaseHeader {
  env: string;
  rev: number;
  prev: number;
  time: number;
  author: string;
  op: string;
  /** The release deleted the environment (a store may keep it as a flag or a number). */
  drop?: boolean;
  /** '' or absent: committed before the store kept chains. */
  chain?: string;
}

/**
 * A stored release from what a store read back: `drop` only when set, `chain`
 * only when known. Both stores build the releases they read with this.
 */
export function releaseFrom(header: ReleaseHeader, changes: KeyChange[] = []): StoredRelease {
  const release: StoredRelease = {
    env: header.env, rev: header.rev, prev: header.prev, time: header.time, author: header.author, op: header.op, changes,
  };
  if (header.drop === true) release.drop = true;
  if (header.chain !== undefined && header.chain !== '') release.chain = header.chain;
  return release;
}

/**
 * A new release of `env` at `rev`, following revision `prev` whose chain
 * value is `previousChain`, stamped with the write's author, operation and
 * time, its own chain value worked out. Both stores commit what this gives.
 */
export function newRelease(
  env: string, rev: number, prev: number, meta: CommitMeta, changes: KeyChange[], previousChain: string, drop = false,
): StoredRelease {
  const release = releaseFrom({ env, rev, prev, time: meta.time, author: meta.author, op: meta.op, drop }, changes);
  release.chain = chainOfStored(previousChain, release);
  return release;
}
