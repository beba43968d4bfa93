import type { BigValue, KeyChange } from '../../../protocol/index.js';
import { elided, valueHash } from '../changes.js';
import { releaseFrom } from '../release.js';
import type { StoredRelease } from '../types.js';
import type { LmdbFiles, ReleaseRecord, ViaRecord } from './files.js';

/** Values longer than this (bytes) are kept apart from their release's record. */
const OUT_OF_LINE_BYTES = 4096;

/**
 * Writes `release` (inside the caller's transaction): its record, its large
 * values apart, its place in the global log, and the head. Inside a
 * transaction each put is made at once; the promise it returns is not waited
 * for (`void`), as in every transaction of this store.
 */
export function writeRelease(files: LmdbFiles, release: StoredRelease, deps: string[] = []): void {
  const { env, rev } = release;
  // The header and changes only: `merged` and `group` live in memory, a `via` release is a ViaRecord.
  const record: ReleaseRecord = { prev: release.prev, time: release.time, author: release.author, op: release.op, changes: release.changes };
  if (release.drop === true) record.drop = true;
  if (release.chain !== undefined) record.chain = release.chain;
  if (release.parents !== undefined) record.parents = release.parents;
  if (deps.length > 0) record.deps = deps;
  let out: BigValue[] | undefined;
  const changes = record.changes.map(([key, before, after], i): KeyChange => {
    const keep = (value: string | null, side: 1 | 2): string | null => {
      if (value === null || value.length <= OUT_OF_LINE_BYTES / 3) return value;
      const bytes = Buffer.byteLength(value);
      if (bytes <= OUT_OF_LINE_BYTES) return value;
      void files.outValues.put([env, rev, i, side], value);
      (out ??= []).push([i, side, bytes, valueHash(value)]);
      return null;
    };
    return [key, keep(before, 1), keep(after, 2)];
  });
  void files.releases.put([env, rev], out === undefined ? record : { ...record, changes, out });
  void files.log.put(rev, env);
  void files.meta.put('head', rev);
}

/** Writes the `via` release `release` of its environment (inside the caller's transaction): its header only. */
export function writeVia(files: LmdbFiles, release: StoredRelease): void {
  void files.via.put([release.env, release.rev], { via: release.via!, prev: release.prev, chain: release.chain ?? '' });
}

/**
 * The `via` release of `env` at `rev` as read back: the header of `v`, the time, author and
 * operation of the write it came through, and that write's own changes (`source`, read as the
 * caller reads it: whole or light).
 */
export function viaRelease(env: string, rev: number, v: ViaRecord, source: StoredRelease): StoredRelease {
  const out = releaseFrom({ env, rev, prev: v.prev, time: source.time, author: source.author, op: source.op, chain: v.chain, via: v.via }, source.changes);
  if (source.big !== undefined) out.big = source.big;
  return out;
}

/** A release whole: its values kept apart read back in. */
export function wholeRelease(files: LmdbFiles, env: string, rev: number, r: ReleaseRecord): StoredRelease {
  const out = lightRelease(files, env, rev, r);
  if (r.out !== undefined) {
    out.changes = out.changes.map((c): KeyChange => [c[0], c[1], c[2]]);
    for (const [i, side] of r.out) out.changes[i][side] = files.outValues.get([env, rev, i, side]) ?? null;
  }
  return out;
}

/**
 * A release with its values longer than `elideAbove` left out (StoredRelease.big): those kept apart are never
 * read for it (their size and hash are in the record); without `elideAbove`, the values kept apart are null.
 */
export function lightRelease(files: LmdbFiles, env: string, rev: number, r: ReleaseRecord, elideAbove?: number): StoredRelease {
  const out = releaseFrom({ ...r, env, rev }, r.changes);
  if (elideAbove === undefined) return out;
  const inline = elided(out, elideAbove);
  if (r.out === undefined) return inline;
  const big = [...(inline.big ?? [])];
  for (const entry of r.out) {
    const [i, side, bytes] = entry;
    if (bytes > elideAbove) big.push(entry);
    else inline.changes[i][side] = files.outValues.get([env, rev, i, side]) ?? null;
  }
  big.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return big.length === 0 ? inline : { ...inline, big };
}
