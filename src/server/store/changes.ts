import { createHash } from 'node:crypto';
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

/**
 * The chain value of `release` following the chain value `previous`: over what agents are sent —
 * its merged changes when it has them, else its own (only the new values are hashed: agents see no others).
 */
export function chainOfStored(previous: string, release: Omit<StoredRelease, 'chain'>): string {
  return chainOf(previous, release, (release.merged ?? release.changes).map(([key, , after]) => [key, after] as const));
}

/** How a value left out of an answer is named: the first 16 hex digits of the SHA-256 of its JSON text (as MySQL's SHA2 gives). */
export function valueHash(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16);
}

/** `release` with its values longer than `elideAbove` bytes left out (null, listed in `big`): what the MySQL store's reads give. */
export function elided(release: StoredRelease, elideAbove: number): StoredRelease {
  let big: StoredRelease['big'];
  const changes = release.changes.map(([key, before, after], i): KeyChange => {
    const keep = (value: string | null, side: 1 | 2): string | null => {
      if (value === null || value.length * 3 <= elideAbove) return value;
      const bytes = Buffer.byteLength(value);
      if (bytes <= elideAbove) return value;
      (big ??= []).push([i, side, bytes, valueHash(value)]);
      return null;
    };
    return [key, keep(before, 1), keep(after, 2)];
  });
  return big === undefined ? { ...release, changes } : { ...release, changes, big };
}
