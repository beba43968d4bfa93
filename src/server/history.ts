import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Change, KeyChange } from '../protocol/index.js';
import type { StoredRelease } from './store/types.js';

/** Changes looked at between two turns of the event loop while a diff or rollback is worked out. */
export const NET_SLICE = 4096;

/**
 * The net effect of consecutive releases: for each key, its value before the
 * first and after the last; keys that end where they started are left out.
 * Large ones are worked out in slices of NET_SLICE changes, letting the event
 * loop serve the writes and agents meanwhile: a diff across a 100,000-key
 * release is otherwise some 50 ms of one unbroken turn.
 */
export async function netChanges(releases: StoredRelease[], slice = NET_SLICE): Promise<KeyChange[]> {
  const net = new Map<string, KeyChange>();
  let seen = 0;
  for (const release of releases) {
    for (const [key, before, after] of release.changes) {
      const known = net.get(key);
      if (known === undefined) net.set(key, [key, before, after]);
      else known[2] = after;
      if (++seen % slice === 0) await nextTurn();
    }
  }
  return [...net.values()].filter(([, before, after]) => before !== after).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Changes that undo `releases` (the releases after the revision rolled back to). */
export async function rollbackChanges(releases: StoredRelease[]): Promise<Change[]> {
  return (await netChanges(releases)).map(([key, before]) => [key, before]);
}

/** Turns a change list around: what leads from `after` back to `before`. */
export function invert(changes: KeyChange[]): KeyChange[] {
  return changes.map(([key, before, after]) => [key, after, before]);
}
