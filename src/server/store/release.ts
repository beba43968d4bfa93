import type { KeyChange } from '../../protocol/index.js';
import { chainOfStored } from './changes.js';
import type { CommitMeta, ReleaseHeader, StoredRelease } from './types.js';

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
