/**
 * A thread of the bulk pool: checks the keys and values of a large apply
 * off the event loop that commits every other write.
 */
import { planEntries, type PlanResult } from './validate.js';
import type { ServerLimits } from '../limits.js';

export default function plan(task: { entries: [string, string][]; limits: ServerLimits }): PlanResult {
  return planEntries(task.entries, task.limits);
}
