import { printable } from '../printable.js';
import {
  MAX_VIOLATIONS, RemoteError, violationLines, WireError,
  type AdminRequest, type AdminResult, type SchemaGetResult, type SchemaVersion, type SchemaViolation, type SchemaWriteResult, type StatusResult,
} from '../protocol/index.js';

/*
 * How the answers about schemas print for people (docs/schemas.md): a
 * schema with its header, its versions, what a schema write did, the
 * warnings a write in warn mode comes back with, a refusal's violations, and
 * the schemas status names. What the server sent arrives here with its
 * control characters escaped (format.ts), or is escaped here (warnings,
 * refusals): every violation line is violations.ts's.
 */

/** The colours these lines use (format.ts's Style). */
interface Paint {
  dim(text: string): string;
  bold(text: string): string;
}

/** A schema as it is named, in lines and in violations: `prod/* db.*`, with ` (whole)` for a whole-environment schema. */
export function schemaName(s: { envPattern: string; keyPattern: string; whole?: boolean }): string {
  return `${s.envPattern} ${s.keyPattern}${s.whole === true ? ' (whole)' : ''}`;
}

/** Keys that fail a schema, or environments for a whole one. */
function failingText(n: number, whole: boolean): string {
  return `${n} ${whole ? 'environment' : 'key'}${n === 1 ? '' : 's'}`;
}

/** A time as format.ts shows times: ISO 8601, to the second when whole. */
const time = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');

/** `schema get`: a header line (version, mode, author, time), then the schema as JSON indented by 2 spaces. */
export function formatSchemaGet(shown: SchemaGetResult, sent: SchemaGetResult, style: Paint): string {
  const head = style.bold(`schema ${schemaName(shown)} v${shown.version}  ${shown.mode}  by ${shown.author}  ${time(shown.time)}`);
  let body: string;
  try {
    // From the text as sent: JSON.stringify escapes control characters in strings, printable() the rest.
    body = printable(JSON.stringify(JSON.parse(sent.schema), null, 2), true);
  } catch {
    body = shown.schema;
  }
  return `${head}\n${body}`;
}

/** `schema history`: one line per version, newest first. */
export function formatSchemaHistory(versions: readonly SchemaVersion[], style: Paint): string {
  if (versions.length === 0) return '(no history)';
  return versions.map((v) => [
    style.bold(`v${v.version}`), `rev ${v.rev}`, time(v.time), v.deleted === true ? 'deleted' : v.mode ?? 'enforce', `by ${v.author}`,
    ...(v.deleted === true ? [] : [style.dim(`${v.bytes} B`)]),
  ].join('  ')).join('\n');
}

/** What schema set, del or rollback did. */
export function schemaWritten(request: Extract<AdminRequest, { op: 'schema.set' | 'schema.del' | 'schema.rollback' }>, w: SchemaWriteResult): string {
  const name = `schema ${schemaName(w)}`;
  if (w.replayed === true) return `${name}: this request id was applied before, as version ${w.version} (revision ${w.rev}); nothing was written now`;
  if (w.changed === 0) return `${name}: nothing changed (v${w.version})`;
  if (w.deleted === true) return `${name}: deleted (v${w.version}, revision ${w.rev})`;
  const again = request.op === 'schema.rollback' ? `, the schema of v${request.version} again` : '';
  const failing = w.failing !== undefined && w.failing > 0 ? `; ${failingText(w.failing, w.whole)} fail${w.failing === 1 ? 's' : ''} it now` : '';
  return `${name}: v${w.version}${again}, ${w.mode ?? 'enforce'} mode (revision ${w.rev})${failing}`;
}

/**
 * A write's warnings (schemas in warn mode: it was written), each a line
 * `warning: …`, then `… and N more`; none for any other answer. A schema
 * write's own warnings are counted by `failing`.
 */
export function warningLines(result: AdminResult): string[] {
  const w = result as { warnings?: SchemaViolation[]; warningsMore?: number; failing?: number };
  if (w.warnings === undefined || w.warnings.length === 0) return [];
  const more = w.warningsMore ?? Math.max(0, (w.failing ?? 0) - w.warnings.length);
  return violationLines('warning', w.warnings, more, MAX_VIOLATIONS).map((line) => printable(line));
}

/** A write refused by a schema in enforce mode (SCHEMA_VIOLATION): nothing was written. */
export function isSchemaRefusal(err: unknown): err is RemoteError {
  return err instanceof RemoteError && err.status === WireError.SCHEMA_VIOLATION;
}

/**
 * A refusal as lines for people: the server's message (`not applied: N
 * schema violations`, then a line per violation), each line escaped. A
 * message of one line is followed by the violations the error carries.
 */
export function refusalLines(err: RemoteError): string[] {
  const lines = err.message.split('\n');
  if (lines.length === 1 && err.violations !== undefined && err.violations.length > 0) {
    lines.push(...violationLines('refused', err.violations, err.more ?? 0, MAX_VIOLATIONS));
  }
  return lines.map((line) => printable(line));
}

/** A refusal for `--json`: the error's code, wire status and message, with its violations (and `more`, when some were left out). */
export function refusalJson(err: RemoteError): string {
  return JSON.stringify({
    code: err.code, status: err.status, message: err.message, violations: err.violations ?? [],
    ...(err.more === undefined ? {} : { more: err.more }),
  });
}

/** `status`: a line per schema in warn mode that something fails. */
export function schemaWarningLines(warnings: StatusResult['schemaWarnings']): string[] {
  return (warnings ?? []).map((w) => `schema warnings: ${w.schema} v${w.version}: ${failingText(w.failing, w.schema.endsWith(' (whole)'))} fail${w.failing === 1 ? 's' : ''} (warn mode)`);
}
