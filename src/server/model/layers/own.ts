import type { Layer, OwnEntry, UnsetMark } from './views.js';

/**
 * An environment's own entry for a key as one string, the way both stores keep it and history
 * shows it: the value's JSON text when it holds no unset marks (so an environment that is no
 * layer of anything and unsets nothing keeps exactly what it always kept); otherwise `!` followed
 * by the JSON `{"u": [mark…], "v": "<value's JSON text>"}` ("v" absent when the entry only hides).
 * No JSON text begins with `!`, so the two never meet.
 */
export const MARKED = '!';

/** Whether an own text carries unset marks. */
export function hasMarks(text: string): boolean {
  return text.charCodeAt(0) === 33;
}

/** The own text of an entry; undefined when it holds nothing (no value, no mark). */
export function ownText(entry: OwnEntry): string | undefined {
  const marks = entry.unset ?? [];
  if (marks.length === 0) return entry.text;
  return MARKED + JSON.stringify(entry.text === undefined ? { u: marks } : { u: marks, v: entry.text });
}

/**
 * The entry an own text stands for. A text that does not read as this module writes it (a damaged
 * store) is taken as its value alone, so the value still passes through and nothing throws.
 */
export function ownEntry(text: string): OwnEntry {
  if (!hasMarks(text)) return { text };
  try {
    const parsed = JSON.parse(text.slice(1)) as { u?: unknown; v?: unknown };
    const marks = Array.isArray(parsed.u) ? parsed.u.filter(isMark) : [];
    const out: { text?: string; unset?: UnsetMark[] } = {};
    if (typeof parsed.v === 'string') out.text = parsed.v;
    if (marks.length > 0) out.unset = marks;
    return out;
  } catch {
    return {};
  }
}

function isMark(mark: unknown): mark is UnsetMark {
  return Array.isArray(mark) && mark.every((word) => typeof word === 'string');
}

/** A layer for the model over an environment's own texts, each parsed when it is read. */
export function ownLayer(env: string, own: ReadonlyMap<string, string> | undefined): Layer {
  const entries = {
    get: (key: string): OwnEntry | undefined => {
      const text = own?.get(key);
      return text === undefined ? undefined : ownEntry(text);
    },
    keys: () => own?.keys() ?? new Map<string, string>().keys(),
  };
  return { env, entries: entries as unknown as ReadonlyMap<string, OwnEntry> };
}

/**
 * How an own text is shown to an operator (history, `get --own`, a plan): a value without marks as
 * itself; with marks, the JSON `{"unset": [mark…], "value": <value>}` ("value" absent when the
 * entry only hides). Display only: it is never read back.
 */
export function ownDisplay(text: string): string {
  if (!hasMarks(text)) return text;
  const entry = ownEntry(text);
  const marks = JSON.stringify(entry.unset ?? []);
  return entry.text === undefined ? `{"unset":${marks}}` : `{"unset":${marks},"value":${entry.text}}`;
}
