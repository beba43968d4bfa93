/**
 * A thread of the bulk pool: checks the keys and values of a large apply, and checks values
 * against schemas (schema-checks.ts), off the event loop that commits every other write.
 */
import os from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import { planEntries, type PlanResult } from './validate.js';
import type { ServerLimits } from '../limits.js';
import { CompiledCache, runCheck, type Found } from '../model/schemas/index.js';

export default function plan(task: { entries: [string, string][]; limits: ServerLimits }): PlanResult {
  return planEntries(task.entries, task.limits);
}

const compiled = new CompiledCache(256);

// The lowest priority for this thread (on Linux a thread's own): a check or a parse that runs long
// takes the cores the committing event loop leaves, never the event loop's own share.
try {
  // Elsewhere the nice value is the whole process's: the server's event loop would go down with the thread.
  if (process.platform === 'linux') os.setPriority(19);
} catch {
  // Not allowed here: the thread runs at the process's priority.
}

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
  /** Told when the check starts, so that its time limit counts from then, not from when it was queued. */
  started?: MessagePort;
}

/** What the items that fail found, by item index (an item not named passed). */
export function check(task: CheckTask): [number, Found[]][] {
  task.started?.postMessage(1);
  task.started?.close();
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
