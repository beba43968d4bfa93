import type { Change, KeyChange } from '../protocol/index.js';
import type { StoredRelease } from './store/types.js';

/**
 * The net effect of consecutive releases: for each key, its value before the
 * first and after the last; keys that end where they started are left out.
 */
export function netChanges(releases: StoredRelease[]): KeyChange[] {
  const net = new Map<string, KeyChange>();
  for (const release of releases) {
    for (const [key, before, after] of release.changes) {
      const seen = net.get(key);
      if (seen === undefined) net.set(key, [key, before, after]);
      else seen[2] = after;
    }
  }
  return [...net.values()].filter(([, before, after]) => before !== after).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Changes that undo `releases` (the releases after the revision rolled back to). */
export function rollbackChanges(releases: StoredRelease[]): Change[] {
  return netChanges(releases).map(([key, before]) => [key, before]);
}

/** Turns a change list around: what leads from `after` back to `before`. */
export function invert(changes: KeyChange[]): KeyChange[] {
  return changes.map(([key, before, after]) => [key, after, before]);
}
