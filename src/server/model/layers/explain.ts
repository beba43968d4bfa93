/**
 * Provenance of a merged value (`get --explain`): for every leaf, the layer that set it, and which
 * layers' unset marks hid something there. The values are computed by merge.ts exactly as in
 * views.ts; beside them a tree of origins follows the same rules, read off the values before and
 * after each step, so the two cannot disagree about what the value is.
 */
import { clearValue, jsonEqual, MAX_DEPTH, mergeValue, replaceForm, type Json } from '../merge.js';
import type { Layer } from './views.js';

/** Object keys and array indices from the root of the key's value; [] is the value itself. */
export type LeafPath = (string | number)[];

/** A scalar, or an empty object or array, of the merged value. */
export type ExplainedLeaf = {
  path: LeafPath;
  value: Json;
  /** The environment whose own value put this leaf there. */
  layer: string;
  /** Layers whose unset hid something at, above or under this path, in layer order; [] for none. */
  hiddenBy: string[];
};

/**
 * Where an unset hid something: the path of the object key hidden, or of the array whose members
 * were hidden (members have no stable position), or [] for the whole key.
 */
export type Hiding = { layer: string; path: LeafPath };

export type Explanation = { leaves: ExplainedLeaf[]; hidings: Hiding[] };

/** Origins of a subtree: `layer` made it; keys/items not listed come from `layer` too. */
type Origin = { layer: string; keys?: Map<string, Origin>; items?: Origin[] };
type JsonObject = { [k: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function guard(depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError(`JSON value nested deeper than ${MAX_DEPTH} levels`);
}

function keyOrigin(o: Origin, k: string): Origin {
  return o.keys?.get(k) ?? { layer: o.layer };
}

function itemOrigin(o: Origin, i: number): Origin {
  return o.items?.[i] ?? { layer: o.layer };
}

/** The origins of mergeValue(before, patch) = after, as merge.ts decides each place. */
function mergeOrigin(before: Json | undefined, o: Origin | undefined, patch: Json, after: Json, layer: string, depth: number): Origin {
  if (o === undefined || before === undefined || replaceForm(patch) !== undefined) return { layer };
  if (isObject(patch) && isObject(before) && isObject(after)) {
    guard(depth);
    const keys = new Map<string, Origin>();
    for (const k of Object.keys(after)) {
      const inBefore = Object.hasOwn(before, k);
      if (!Object.hasOwn(patch, k)) keys.set(k, keyOrigin(o, k));
      else if (!inBefore) keys.set(k, { layer });
      else keys.set(k, mergeOrigin(before[k], keyOrigin(o, k), patch[k], after[k], layer, depth + 1));
    }
    return { layer: o.layer, keys };
  }
  if (Array.isArray(patch) && Array.isArray(before) && Array.isArray(after)) {
    // A union keeps the members below in order and appends the new ones.
    const items = before.map((_, i) => itemOrigin(o, i));
    for (let i = before.length; i < after.length; i++) items.push({ layer });
    return { layer: o.layer, items };
  }
  return { layer };
}

/**
 * The origins left after clearValue(before, mark) = after (changed, after defined), walking the
 * mark's path as clear does. `hid` receives the places hidden.
 */
function pruneOrigin(o: Origin, before: Json, after: Json, mark: readonly string[], step: number, at: LeafPath, hid: (path: LeafPath) => void): Origin {
  guard(step + 1);
  if (step === mark.length - 1) {
    if (isObject(before) && isObject(after)) {
      const keys = new Map<string, Origin>();
      for (const k of Object.keys(before)) {
        if (Object.hasOwn(after, k)) keys.set(k, keyOrigin(o, k));
        else hid([...at, k]);
      }
      return { layer: o.layer, keys };
    }
    if (Array.isArray(before) && Array.isArray(after)) {
      // Removal by value takes every equal member, so matching in order is exact.
      const items: Origin[] = [];
      for (let i = 0, j = 0; i < before.length; i++) {
        if (j < after.length && jsonEqual(before[i], after[j])) {
          items.push(itemOrigin(o, i));
          j++;
        }
      }
      hid(at);
      return { layer: o.layer, items };
    }
    return o;
  }
  const word = mark[step];
  if (Array.isArray(before) && Array.isArray(after)) {
    const i = Number(word);
    const items = before.map((_, x) => itemOrigin(o, x));
    if (after.length === before.length) {
      items[i] = pruneOrigin(itemOrigin(o, i), before[i], after[i], mark, step + 1, [...at, i], hid);
    } else {
      items.splice(i, 1); // the member, an array emptied by the removal, was cut
      hid([...at, i]);
    }
    return { layer: o.layer, items };
  }
  if (isObject(before) && isObject(after)) {
    const keys = new Map<string, Origin>();
    for (const k of Object.keys(after)) keys.set(k, keyOrigin(o, k));
    if (Object.hasOwn(after, word)) {
      keys.set(word, pruneOrigin(keyOrigin(o, word), before[word], after[word], mark, step + 1, [...at, word], hid));
    } else {
      hid([...at, word]); // an array emptied by the removal, cut from this object
    }
    return { layer: o.layer, keys };
  }
  return o;
}

function related(a: LeafPath, b: LeafPath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function collect(value: Json, o: Origin, path: LeafPath, hidings: Hiding[], out: ExplainedLeaf[], depth: number): void {
  const children: [string | number, Json, Origin][] = [];
  if (Array.isArray(value)) {
    guard(depth);
    value.forEach((v, i) => children.push([i, v, itemOrigin(o, i)]));
  } else if (isObject(value)) {
    guard(depth);
    for (const k of Object.keys(value)) children.push([k, value[k], keyOrigin(o, k)]);
  }
  if (children.length === 0) {
    const hiddenBy = [...new Set(hidings.filter((h) => related(h.path, path)).map((h) => h.layer))];
    out.push({ path, value, layer: o.layer, hiddenBy });
    return;
  }
  for (const [step, v, child] of children) collect(v, child, [...path, step], hidings, out, depth + 1);
}

/**
 * For `key` across `layers` (lowest first): every leaf of the merged value (array members
 * included, in the value's order) with the layer that set it, and every place an unset hid
 * something. A member of an array belongs to the layer that appended it; a later layer giving an
 * equal member changes nothing. The leaves rebuild exactly mergedKey's value.
 */
export function explain(key: string, layers: readonly Layer[]): Explanation {
  let value: Json | undefined;
  let origin: Origin | undefined;
  const hidings: Hiding[] = [];
  for (const layer of layers) {
    const entry = layer.entries.get(key);
    if (entry === undefined) continue;
    for (const mark of entry.unset ?? []) {
      if (value === undefined || origin === undefined) break;
      const cleared = clearValue(value, [...mark]);
      if (!cleared.changed) continue;
      if (cleared.value === undefined) {
        // The whole key, or a root array the mark emptied: either way all of it is hidden.
        hidings.push({ layer: layer.env, path: [] });
        value = undefined;
        origin = undefined;
        continue;
      }
      origin = pruneOrigin(origin, value, cleared.value, mark, 0, [], (path) => hidings.push({ layer: layer.env, path }));
      value = cleared.value;
    }
    if (entry.text === undefined) continue;
    const patch = JSON.parse(entry.text) as Json;
    if (value === undefined || origin === undefined) {
      value = patch; // the lowest value nothing hides stands as written (views.ts)
      origin = { layer: layer.env };
    } else {
      const merged = mergeValue(value, patch);
      origin = mergeOrigin(value, origin, patch, merged, layer.env, 1);
      value = merged;
    }
  }
  const leaves: ExplainedLeaf[] = [];
  if (value !== undefined && origin !== undefined) collect(value, origin, [], hidings, leaves, 1);
  return { leaves, hidings };
}
