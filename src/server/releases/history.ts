import { setImmediate as nextTurn } from 'node:timers/promises';
import type { BigValue, Change, KeyChange } from '../../protocol/index.js';
import type { ChangeRef, StoredRelease } from '../store/types.js';

/** Changes looked at between two turns of the event loop while a diff or rollback is worked out. */
export const NET_SLICE = 4096;

/** A value a store left out (too large to read whole for an answer): its size, hash, and where to fetch it. */
export class LeftOut {
  constructor(readonly bytes: number, readonly sha: string, readonly ref: ChangeRef) {}
  same(other: NetValue): boolean {
    return other instanceof LeftOut && other.bytes === this.bytes && other.sha === this.sha;
  }
}

/** A value in a net change: JSON text, absent (null), or left out. */
export type NetValue = string | null | LeftOut;

export interface NetChange {
  key: string;
  before: NetValue;
  after: NetValue;
}

const same = (a: NetValue, b: NetValue): boolean => (a instanceof LeftOut ? a.same(b) : a === b);

/**
 * The net effect of consecutive releases: for each key, its value before the
 * first and after the last; keys that end where they started are left out.
 * Values a store left out (StoredRelease.big) are compared by size and hash.
 * Large ones are worked out in slices of NET_SLICE changes, letting the event
 * loop serve the writes and agents meanwhile: a diff across a 100,000-key
 * release is otherwise some 50 ms of one unbroken turn.
 */
export async function netValues(releases: StoredRelease[], slice = NET_SLICE): Promise<NetChange[]> {
  const net = new Map<string, NetChange>();
  let seen = 0;
  for (const release of releases) {
    const big = new Map((release.big ?? []).map(([i, side, bytes, sha]) => [`${i}:${side}`, [bytes, sha] as const]));
    for (const [i, [key, before, after]] of release.changes.entries()) {
      const value = (text: string | null, side: 1 | 2): NetValue => {
        const left = big.get(`${i}:${side}`);
        return left === undefined ? text : new LeftOut(left[0], left[1], { rev: release.rev, key, side });
      };
      const known = net.get(key);
      if (known === undefined) net.set(key, { key, before: value(before, 1), after: value(after, 2) });
      else known.after = value(after, 2);
      if (++seen % slice === 0) await nextTurn();
    }
  }
  return [...net.values()].filter((c) => !same(c.before, c.after)).sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** The net effect of consecutive releases read whole (no value left out), as [key, before, after]. */
export async function netChanges(releases: StoredRelease[], slice = NET_SLICE): Promise<KeyChange[]> {
  return (await netValues(releases, slice)).map(({ key, before, after }) => [key, before as string | null, after as string | null]);
}

/** Changes that undo `releases` (the releases after the revision rolled back to). */
export async function rollbackChanges(releases: StoredRelease[]): Promise<Change[]> {
  return (await netChanges(releases)).map(([key, before]) => [key, before]);
}

/** Turns a change list around: what leads from `after` back to `before`. */
export function invert(changes: KeyChange[]): KeyChange[] {
  return changes.map(([key, before, after]) => [key, after, before]);
}

/** Bytes an answer carries for a value: its text, or a little for one left out. */
export function shownBytes(value: NetValue): number {
  return value instanceof LeftOut ? 40 : value === null ? 0 : Buffer.byteLength(value);
}

/**
 * One page of net changes: those after key `after`, until `maxBytes` of keys
 * and values are shown (at least one change). Values left out are listed in
 * `big` by their index in the page.
 */
export function pageOf(net: NetChange[], after: string | undefined, maxBytes: number): { changes: KeyChange[]; big: BigValue[]; left: LeftOut[][]; next?: string } {
  let start = 0;
  if (after !== undefined) {
    // Sorted by key: the first one after `after`.
    let lo = 0;
    let hi = net.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (net[mid].key <= after) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const changes: KeyChange[] = [];
  const big: BigValue[] = [];
  const left: LeftOut[][] = [];
  let used = 0;
  for (let i = start; i < net.length; i++) {
    const c = net[i];
    const bytes = Buffer.byteLength(c.key) + shownBytes(c.before) + shownBytes(c.after);
    if (changes.length > 0 && used + bytes > maxBytes) return { changes, big, left, next: changes[changes.length - 1][0] };
    used += bytes;
    const index = changes.length;
    const out = (v: NetValue, side: 1 | 2): string | null => {
      if (!(v instanceof LeftOut)) return v;
      big.push([index, side, v.bytes, v.sha]);
      (left[index] ??= []).push(v);
      return null;
    };
    changes.push([c.key, out(c.before, 1), out(c.after, 2)]);
  }
  return { changes, big, left };
}
