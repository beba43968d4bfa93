import { setImmediate as nextTurn } from 'node:timers/promises';
import { WireError, type BigValue, type KeyChange } from '../../../protocol/index.js';
import { promised } from '../../../promised.js';
import { envNotFound, RequestError } from '../../errors.js';
import type { ChangeRef, HistoryPage, HistoryPageQuery, StoredRelease } from '../types.js';
import type { EnvRecord, LmdbFiles } from './files.js';
import { lightRelease, viaRelease, wholeRelease } from './records.js';

/** Changes of one release in a history page, at most (the rest are counted: StoredRelease.more). */
const PAGE_CHANGES_AT_MOST = 10_000;

/**
 * Reads of the committed releases of the embedded store: the global log
 * after a revision, a range of one environment, a page of its history
 * bounded in bytes, and single values left out of those. Large values are
 * read one release at a time, giving the event loop a turn between them.
 */
export class LmdbHistory {
  constructor(private readonly files: () => LmdbFiles) {}

  releasesSince(after: number, limit: number): Promise<StoredRelease[]> {
    return promised(() => {
      const files = this.files();
      const out: StoredRelease[] = [];
      for (const { key: rev, value: env } of files.log.getRange({ start: after + 1, limit })) {
        const record = files.releases.get([env, rev]);
        if (record === undefined) continue;
        const release = wholeRelease(files, env, rev, record);
        out.push(release);
        // Then the `via` releases it made, by name, each with its changes.
        for (const dep of [...(record.deps ?? [])].sort()) {
          const via = files.via.get([dep, rev]);
          if (via !== undefined) out.push(viaRelease(dep, rev, via, { ...release, changes: release.changes.map((c): KeyChange => [c[0], c[1], c[2]]) }));
        }
      }
      return out;
    });
  }

  async releasesBetween(env: string, from: number, to: number, elideAbove?: number): Promise<StoredRelease[]> {
    const files = this.files();
    const current = files.envs.get(env);
    if (current === undefined) throw envNotFound(env);
    if (elideAbove === undefined) return releasesBetween(files, env, current, from, to);
    // Each release is decoded whole here (its large values too): one at a time, giving the event loop a turn
    // between them, and only its small values kept.
    const start = checkBetween(files, env, current, from, to);
    const revs = [...files.releases.getKeys({ start: [env, start], end: [env, to + 1] })].map((key) => key[1]);
    const out: StoredRelease[] = [];
    for (const rev of revs) {
      const record = files.releases.get([env, rev]);
      if (record !== undefined) out.push(lightRelease(files, env, rev, record, elideAbove));
      await nextTurn();
    }
    return out;
  }

  async historyPage(env: string, q: HistoryPageQuery): Promise<HistoryPage> {
    const files = this.files();
    const current = files.envs.get(env);
    if (current === undefined) throw envNotFound(env);
    const releases: StoredRelease[] = [];
    let used = 0;
    const start: [string, number] = [env, q.before === undefined ? Number.MAX_SAFE_INTEGER : q.before - 1];
    // The revisions first (no value decoded), its own and (unless only those are asked for) its `via` ones,
    // then each release on its own turn of the event loop.
    const range = { start, end: [env, current.created - 1] as [string, number], reverse: true };
    const revs = [...files.releases.getKeys(range)].map((key) => key[1]);
    if (q.own !== true) {
      revs.push(...[...files.via.getKeys(range)].map((key) => key[1]));
      revs.sort((a, b) => b - a);
    }
    for (const rev of revs) {
      if (releases.length >= q.limit) break;
      if (used >= q.maxBytes && releases.length > 0) return { releases, next: releases[releases.length - 1].rev };
      // One at a time, its large values by size and hash only (those kept apart are not even read).
      let whole = readLight(files, env, rev, q.elideAbove);
      if (whole === undefined) continue;
      if (q.key !== undefined) {
        whole = onlyKey(whole, q.key);
        if (whole.changes.length === 0) continue;
      }
      const release: StoredRelease = { ...whole, changes: whole.changes.slice(0, PAGE_CHANGES_AT_MOST) };
      if (whole.big !== undefined) release.big = whole.big.filter(([i]) => i < PAGE_CHANGES_AT_MOST);
      const shownBig = new Set((release.big ?? []).map(([i, side]) => `${i}:${side}`));
      let taken = 0;
      for (const [i, [k, before, after]] of release.changes.entries()) {
        const size = (v: string | null, side: 1 | 2): number => (shownBig.has(`${i}:${side}`) ? 40 : v === null ? 0 : Buffer.byteLength(v));
        const bytes = Buffer.byteLength(k) + size(before, 1) + size(after, 2);
        if (used + bytes > q.maxBytes && !(releases.length === 0 && taken === 0)) {
          used = q.maxBytes;
          break;
        }
        used += bytes;
        taken++;
      }
      if (taken < whole.changes.length) {
        release.changes = release.changes.slice(0, taken);
        if (release.big !== undefined) release.big = release.big.filter(([i]) => i < taken);
        release.more = whole.changes.length - taken;
        releases.push(release);
        return { releases, next: release.rev };
      }
      releases.push(release);
      await nextTurn();
    }
    return { releases };
  }

  changeValues(env: string, refs: ChangeRef[]): Promise<(string | null)[]> {
    return promised(() => {
      const files = this.files();
      return refs.map((ref) => {
        // A `via` release shows the changes of the write it came through: its values are that write's.
        const source = files.releases.get([env, ref.rev]) === undefined ? files.via.get([env, ref.rev])?.via ?? env : env;
        const record = files.releases.get([source, ref.rev]);
        const index = record?.changes.findIndex(([k]) => k === ref.key) ?? -1;
        if (record === undefined || index < 0) return null;
        const apart = record.out?.some(([i, side]) => i === index && side === ref.side) === true;
        return apart ? files.outValues.get([source, ref.rev, index, ref.side]) ?? null : record.changes[index][ref.side];
      });
    });
  }
}

/** The release of `env` at `rev`, its own or a `via` one, light (lightRelease); undefined when there is none. */
function readLight(files: LmdbFiles, env: string, rev: number, elideAbove: number): StoredRelease | undefined {
  const own = files.releases.get([env, rev]);
  if (own !== undefined) return lightRelease(files, env, rev, own, elideAbove);
  const via = files.via.get([env, rev]);
  const source = via === undefined ? undefined : files.releases.get([via.via, rev]);
  if (via === undefined || source === undefined) return undefined;
  return viaRelease(env, rev, via, lightRelease(files, via.via, rev, source, elideAbove));
}

/** Releases of the current incarnation of `env` with from < rev <= to, ascending, read whole (a rollback's view). */
export function releasesBetween(files: LmdbFiles, env: string, current: EnvRecord, from: number, to: number): StoredRelease[] {
  const start = checkBetween(files, env, current, from, to);
  const out: StoredRelease[] = [];
  for (const { key, value } of files.releases.getRange({ start: [env, start], end: [env, to + 1] })) {
    out.push(wholeRelease(files, env, key[1], value));
  }
  return out;
}

/** REVISION_NOT_FOUND when the range is not in the history kept; else the first revision of the range. */
function checkBetween(files: LmdbFiles, env: string, current: EnvRecord, from: number, to: number): number {
  if (from < current.floor || from > files.head || to > files.head) {
    throw new RequestError(
      WireError.REVISION_NOT_FOUND,
      `revision ${from < current.floor ? from : to} of ${env} is not in the history kept (from ${current.floor} to ${files.head})`,
    );
  }
  return Math.max(from + 1, current.created);
}

/** The changes of `release` to `key` alone, with the values left out renumbered. */
function onlyKey(release: StoredRelease, key: string): StoredRelease {
  const index = release.changes.findIndex(([k]) => k === key);
  if (index < 0) return { ...release, changes: [], big: [] };
  const big = (release.big ?? []).filter(([i]) => i === index).map(([, side, bytes, sha]): BigValue => [0, side, bytes, sha]);
  const out: StoredRelease = { ...release, changes: [release.changes[index]] };
  if (big.length > 0) out.big = big;
  else delete out.big;
  return out;
}
