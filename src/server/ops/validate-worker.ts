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

/** A schema check sent to the thread: the schemas' JSON texts, and items naming one of them by index. */
export interface CheckTask {
  schemas: string[];
  items: { s: number; key?: string; value?: string; entries?: [string, string][] }[];
}

/** What each item of a CheckTask found (nothing: it passed). */
export function check(task: CheckTask): Found[][] {
  return task.items.map((item) => runCheck(compiled.get(task.schemas[item.s]).validate, item));
}
