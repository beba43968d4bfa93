import { WireError, type Change, type KeyChange } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import { NO_ACCESS } from './layer-reads.js';
import type { ServerLimits } from '../limits.js';
import {
  checkParents, dependentsOf, flatten, hasMarks, mergedChanges, ownEntry, ownText, type OwnEntry, type UnsetMark,
} from '../model/layers/index.js';
import { entryBytes, type ServerState } from '../releases/state.js';
import type { CommitPlan, EnvView } from '../store/types.js';

/**
 * What a write to one environment's own entries (or to its parent list) commits, worked out
 * under the store's lock from what the store holds: its own changes, and the changes of the
 * merged view of the environment and of every environment built on it (model/layers). An
 * environment that stands alone, with nothing built on it, commits its own changes as ever.
 */
export async function planLayered(
  view: EnvView, state: ServerState, limits: ServerLimits, changes: Change[], parents?: string[],
): Promise<Change[] | CommitPlan> {
  const env = view.env;
  const parentMap: Map<string, readonly string[]> = await view.layout();
  if (parents !== undefined) {
    const existing = await view.exist([...new Set(parents)]);
    const check = checkParents(env, parents, parentMap, (name) => name === env || existing.has(name));
    if (!check.ok) {
      const status = check.refusal.kind === 'missing' ? WireError.ENV_NOT_FOUND : WireError.BAD_REQUEST;
      throw new RequestError(status, check.refusal.message);
    }
  }
  const dependents = dependentsOf(env, parentMap);
  const alone = (parentMap.get(env) ?? []).length === 0 && (parents === undefined || parents.length === 0) && dependents.length === 0;
  if (alone && parents === undefined && !changes.some(([, after]) => after !== null && hasMarks(after))) {
    // Nothing to merge with, and no mark among the new entries: each key's view is its new own value (agents are
    // sent only the values after), so the view changes as the own entries do.
    checkGrowth(state, limits, new Map([[env, changes.map(([key, after]): KeyChange => [key, state.values(env)?.get(key) ?? null, after])]]));
    return changes;
  }
  const layers = new Set<string>();
  const nextMap = parents === undefined ? parentMap : new Map(parentMap).set(env, parents);
  for (const name of [env, ...dependents]) {
    for (const layer of flatten(name, parentMap)) layers.add(layer);
    for (const layer of flatten(name, nextMap)) layers.add(layer);
  }
  const keys = parents === undefined ? [...new Set(changes.map(([key]) => key))] : undefined;
  const own = await view.ownOf([...layers], keys);
  const merged = limited(() => mergedChanges(parentMap, {
    own: (name, key) => own.get(name)?.get(key),
    keys: (name) => own.get(name)?.keys() ?? [],
  }, { env, changes, ...(parents === undefined ? {} : { parents }) }));
  checkGrowth(state, limits, merged);
  return { changes, ...(parents === undefined ? {} : { parents }), merged };
}

/** The own text after a write gives a key a new value: the marks it held are kept. */
export function withValue(before: string | undefined, text: string): string {
  return ownParts(before).rewrite(text)!;
}

/** The own entry's value, and a function giving the own text with another value (or none). */
export function ownParts(before: string | undefined): { entry: OwnEntry; rewrite: (text: string | undefined) => string | null } {
  const entry = before === undefined ? {} : ownEntry(before);
  return {
    entry,
    rewrite: (text) => ownText({ ...(text === undefined ? {} : { text }), ...(entry.unset === undefined ? {} : { unset: entry.unset }) }) ?? null,
  };
}

/** Unset marks one entry may hold. */
export const MAX_MARKS = 64;
/** Bytes of one entry's unset marks (as JSON). */
export const MAX_MARK_BYTES = 16 * 1024;
/** Entries of one environment that may hold unset marks. */
export const MAX_MARKED_ENTRIES = 4096;

/** The own text with one more unset mark (a mark already there is not added twice); bounded by MAX_MARKS and MAX_MARK_BYTES. */
export function withMark(before: string | undefined, mark: UnsetMark): string {
  const entry = before === undefined ? {} : ownEntry(before);
  const marks = [...(entry.unset ?? [])];
  if (!marks.some((m) => m.length === mark.length && m.every((word, i) => word === mark[i]))) marks.push(mark);
  if (marks.length > MAX_MARKS) throw new RequestError(WireError.INVALID_VALUE, `an entry holds at most ${MAX_MARKS} unset marks`);
  const bytes = Buffer.byteLength(JSON.stringify(marks));
  if (bytes > MAX_MARK_BYTES) throw new RequestError(WireError.INVALID_VALUE, `an entry's unset marks may take at most ${MAX_MARK_BYTES} bytes, these would take ${bytes}`);
  return ownText({ ...(entry.text === undefined ? {} : { text: entry.text }), unset: marks })!;
}

/**
 * A merged view may not grow past keysPerEnv keys or envBytes bytes: its snapshot is one frame
 * every agent must be able to take. Views that shrink are always allowed.
 */
export function checkGrowth(state: ServerState, limits: ServerLimits, merged: ReadonlyMap<string, KeyChange[]>): void {
  for (const [env, changes] of merged) {
    const values = state.values(env);
    const size = state.size(env);
    if (values === undefined || size === undefined) continue;
    let { keys, bytes } = size;
    for (const [key, , after] of changes) {
      const before = values.get(key);
      if (before !== undefined) {
        keys--;
        bytes -= entryBytes(key, before);
      }
      if (after !== null) {
        keys++;
        bytes += entryBytes(key, after);
      }
    }
    if (keys > size.keys && keys > limits.keysPerEnv) {
      throw new RequestError(WireError.INVALID_VALUE, `${env} would hold ${keys} keys, more than the limit of ${limits.keysPerEnv}`);
    }
    if (bytes > size.bytes && bytes > limits.envBytes) {
      throw new RequestError(WireError.INVALID_VALUE, `${env} would hold ${bytes} bytes of keys and values, more than the limit of ${limits.envBytes}`);
    }
  }
}

/** Values larger than this may grow past growthFactor times their size only when the write allows it. */
export const GROWTH_FLOOR_BYTES = 64 * 1024;

/**
 * The size policy on what a write puts in front of agents (docs/limits.md): each value of every view
 * it changes within valueBytes, each view's changes within releaseBytes, and no value made more than
 * growthFactor times larger, past GROWTH_FLOOR_BYTES, unless the write says `allowGrowth`.
 */
export function checkSizes(
  views: ReadonlyMap<string, readonly KeyChange[]>, limits: ServerLimits, allowGrowth: boolean, reads: (env: string) => boolean = () => true,
): void {
  for (const [env, changes] of views) {
    // A view the writer may not read is named by neither its name, nor its keys, nor the sizes of its values.
    if (!reads(env)) {
      checkUnreadable(env, changes, limits, allowGrowth);
      continue;
    }
    let total = 0;
    for (const [key, before, after] of changes) {
      if (after === null) continue;
      const bytes = Buffer.byteLength(after);
      total += Buffer.byteLength(key) + bytes;
      if (bytes > limits.valueBytes) {
        throw new RequestError(WireError.INVALID_VALUE, `${env} ${key} would be ${bytes} bytes; the limit is ${limits.valueBytes} (limits.valueBytes)`);
      }
      if (!allowGrowth && before !== null && bytes > GROWTH_FLOOR_BYTES) {
        const was = Buffer.byteLength(before);
        if (bytes > was * limits.growthFactor) {
          throw new RequestError(WireError.INVALID_VALUE,
            `${env} ${key} would grow from ${was} to ${bytes} bytes, more than ${limits.growthFactor} times (limits.growthFactor; past ${GROWTH_FLOOR_BYTES} bytes); write it with --allow-growth if that is meant`);
        }
      }
    }
    if (total > limits.releaseBytes) {
      throw new RequestError(WireError.INVALID_VALUE, `the release of ${env} would carry ${total} bytes of keys and values; the limit is ${limits.releaseBytes} (limits.releaseBytes)`);
    }
  }
}

/** checkSizes for a view the writer may not read: the same rules, refused without a name or a size. */
function checkUnreadable(env: string, changes: readonly KeyChange[], limits: ServerLimits, allowGrowth: boolean): void {
  try {
    checkSizes(new Map([[env, changes]]), limits, allowGrowth);
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    const rule = /limits\.(\w+)/.exec(err.message)?.[1] ?? 'valueBytes';
    throw new RequestError(err.status, `the write would break limits.${rule} in an environment built on this one that you may not read (${NO_ACCESS})`);
  }
}

/** merge and clear refuse pathological nesting with a RangeError: that is the client's input, not a server fault. */
export function limited<T>(compute: () => T): T {
  try {
    return compute();
  } catch (err) {
    if (err instanceof RangeError) throw new RequestError(WireError.INVALID_VALUE, err.message, { cause: err });
    throw err;
  }
}
