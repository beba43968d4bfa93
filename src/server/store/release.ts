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
  if (header.via !== undefined && header.via !== '') release.via = header.via;
  if (header.parents !== undefined) release.parents = header.parents;
  return release;
}

/**
 * A new release of `env` at `rev`, following revision `prev` whose chain
 * value is `previousChain`, stamped with the write's author, operation and
 * time, its own chain value worked out (over `layered.merged` when given:
 * what agents are sent). Both stores commit what this gives.
 */
export function newRelease(
  env: string, rev: number, prev: number, meta: CommitMeta, changes: KeyChange[], previousChain: string, drop = false,
  layered: { merged?: KeyChange[]; via?: string; parents?: string[] } = {},
): StoredRelease {
  const release = releaseFrom({ env, rev, prev, time: meta.time, author: meta.author, op: meta.op, drop, via: layered.via, parents: layered.parents }, changes);
  if (layered.merged !== undefined) release.merged = layered.merged;
  release.chain = chainOfStored(previousChain, release);
  return release;
}
