/**
 * Merged views, key by key: what an environment's layers give for each key, merged in order with
 * the Qbix rules of merge.ts (docs/merge-and-clear.md). Pure: texts in, texts out.
 */
import { clearValue, mergeValue, type Json } from '../merge.js';

/**
 * An unset mark: the words after KEY of `unset ENV KEY [PATH…]`, read exactly as `clear` reads
 * them (docs/merge-and-clear.md): the last word names the object key(s) or array value(s) to hide
 * from the node the other words reach, and an array left empty is cut from its parent. No words:
 * the whole key is hidden.
 */
export type UnsetMark = readonly string[];

/**
 * One layer's own entry for a key: its JSON value text (as stored, valid JSON), its unset marks,
 * or both. The marks hide what the layers below give; then the layer's own value merges on top,
 * so a mark never hides the value of its own layer.
 */
export type OwnEntry = { readonly text?: string; readonly unset?: readonly UnsetMark[] };

/** One layer: an environment's name and its own entries. Layers are passed lowest first (flatten's order). */
export type Layer = { readonly env: string; readonly entries: ReadonlyMap<string, OwnEntry> };

/** key → merged JSON text. */
export type View = ReadonlyMap<string, string>;

/** What the layers so far give: the untouched text of the one layer that gave it, or a merged value. */
type Below = { text: string } | { value: Json } | undefined;

function valueOf(below: NonNullable<Below>): Json {
  return 'text' in below ? (JSON.parse(below.text) as Json) : below.value;
}

/** Applies a layer's marks to what the layers below give (undefined: nothing, or all hidden). */
function hide(below: Below, marks: readonly UnsetMark[]): Below {
  let out = below;
  for (const mark of marks) {
    // A mark over nothing hides nothing now; it is kept and applies once a parent gives the key.
    if (out === undefined) return undefined;
    if (mark.length === 0) return undefined;
    const cleared = clearValue(valueOf(out), [...mark]);
    if (cleared.changed) out = cleared.value === undefined ? undefined : { value: cleared.value };
  }
  return out;
}

/**
 * The merged value of `key` across `layers` (lowest first) as JSON text, or undefined when no layer
 * gives it or unsets hide it all. Fold, layer by layer: the layer's unset marks hide what is below,
 * then the layer's value merges over what is left (mergeValue). The lowest value that nothing hides
 * stands as written, as `set` stores it; so a key that one layer alone gives (and no mark touches)
 * passes through byte for byte, without being parsed. Values deeper than merge.ts's MAX_DEPTH throw
 * its RangeError.
 */
export function mergedKey(key: string, layers: readonly Layer[]): string | undefined {
  let below: Below;
  for (const layer of layers) {
    const entry = layer.entries.get(key);
    if (entry === undefined) continue;
    if (entry.unset !== undefined) below = hide(below, entry.unset);
    if (entry.text === undefined) continue;
    below =
      below === undefined
        ? { text: entry.text }
        : { value: mergeValue(valueOf(below), JSON.parse(entry.text) as Json) };
  }
  if (below === undefined) return undefined;
  return 'text' in below ? below.text : JSON.stringify(below.value);
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every key any layer names, with its merged text; keys sorted, keys wholly hidden left out. */
export function mergedView(layers: readonly Layer[]): Map<string, string> {
  const keys = new Set<string>();
  for (const layer of layers) for (const key of layer.entries.keys()) keys.add(key);
  const view = new Map<string, string>();
  for (const key of [...keys].sort(byName)) {
    const text = mergedKey(key, layers);
    if (text !== undefined) view.set(key, text);
  }
  return view;
}

/**
 * The keys whose merged text differs between two views, sorted: changed, added or gone. Compared
 * as text, the bytes agents hold, so a change agents would see is never missed.
 */
export function changedKeys(before: View, after: View): string[] {
  const changed: string[] = [];
  for (const [key, text] of after) if (before.get(key) !== text) changed.push(key);
  for (const key of before.keys()) if (!after.has(key)) changed.push(key);
  return changed.sort(byName);
}
