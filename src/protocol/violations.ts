import type { SchemaViolation } from './results.js';

/** One line per violation: `prod/eu db.pool.max must be <= 500 (schema prod/* db.* v3, /maximum)`. */
export function violationLine(v: SchemaViolation): string {
  const where = `${v.key}${v.path.split('/').slice(1).map((s) => `.${s.replace(/~1/g, '/').replace(/~0/g, '~')}`).join('')}`;
  return `${v.env}${where === '' ? '' : ` ${where}`} ${v.message} (schema ${v.schema} v${v.version}, /${v.keyword})`;
}

/** The lines of a refusal or of warnings, each after `prefix`: at most `max`, then how many more. */
export function violationLines(prefix: string, violations: readonly SchemaViolation[], more: number, max = 20): string[] {
  const shown = violations.slice(0, max);
  const rest = violations.length - shown.length + more;
  return [...shown.map((v) => `${prefix}: ${violationLine(v)}`), ...(rest > 0 ? [`… and ${rest} more`] : [])];
}
