import { chainOf, type Change, type KeyChange } from '../../protocol/index.js';
import type { StoredRelease } from './types.js';

/**
 * Turns planned changes into [key, before, after] triples, dropping those
 * that change nothing. A key changed twice in one plan keeps its last value.
 */
export function keyChangesFrom(planned: Change[], read: (key: string) => string | undefined): KeyChange[] {
  const last = new Map<string, string | null>();
  for (const [key, value] of planned) last.set(key, value);
  const out: KeyChange[] = [];
  for (const [key, after] of last) {
    const before = read(key) ?? null;
    if (before !== after) out.push([key, before, after]);
  }
  return out;
}

/** The chain value of `release` following the chain value `previous` (only the new values are hashed: agents see no others). */
export function chainOfStored(previous: string, release: Omit<StoredRelease, 'chain'>): string {
  return chainOf(previous, release, release.changes.map(([key, , after]) => [key, after] as const));
}
