/**
 * A thread of the bulk pool: checks the keys and values of a large apply, and checks values
 * against schemas (schema-checks.ts), off the event loop that commits every other write.
 */
import { planEntries, type PlanResult } from './validate.js';
import type { ServerLimits } from '../limits.js';
import { CompiledCache, runCheck, type Found } from '../model/schemas/index.js';

export default function plan(task: { entries: [string, string][]; limits: ServerLimits }): PlanResult {
  return planEntries(task.entries, task.limits);
}

const compiled = new CompiledCache(256);

/**
 * A schema check sent to the thread, in columns (what crosses the thread is copied: a hundred
 * thousand small objects cost more than the checks): the schemas' JSON texts; for each item, the
 * index of its schema, its key, and its value (JSON text) or, for a whole view, its entries.
 */
export interface CheckTask {
  schemas: string[];
  s: number[];
  keys: (string | null)[];
  values: (string | null)[];
  /** Whole views, by item index. */
  wholes: [number, [string, string][]][];
}

/** What the items that fail found, by item index (an item not named passed). */
export function check(task: CheckTask): [number, Found[]][] {
  const out: [number, Found[]][] = [];
  const wholes = new Map(task.wholes);
  const validators = task.schemas.map((text) => compiled.get(text).validate);
  for (let i = 0; i < task.s.length; i++) {
    const key = task.keys[i];
    const value = task.values[i];
    const item = value === null || value === undefined ? { entries: wholes.get(i) ?? [] } : { ...(key === null || key === undefined ? {} : { key }), value };
    const found = runCheck(validators[task.s[i]], item);
    if (found.length > 0) out.push([i, found]);
  }
  return out;
}
