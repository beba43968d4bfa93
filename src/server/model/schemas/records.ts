import type { SchemaMode } from '../../../protocol/index.js';

/**
 * How a schema is kept: as an entry of the servers' own environment SCHEMA_ENV, whose releases
 * carry every change of it — versioned, replicated to every server and kept in history as
 * configuration is. The key names the schema (its two patterns, and whether it is whole); the
 * value is its current version: the schema and its mode, or a deletion (the version numbers go on
 * after it, so an old version is never named twice).
 */
export const SCHEMA_ENV = '@schemas';

/** Which schema: its environment and key patterns, and whether it checks whole views. */
export interface SchemaId {
  envPattern: string;
  keyPattern: string;
  whole: boolean;
}

/** A version of a schema as kept (the value of its entry). */
export interface SchemaRecord {
  /** 1 for the first version of this id, one more for each change (deletions included). */
  version: number;
  /** Absent for a deletion. */
  mode?: SchemaMode;
  /** The JSON Schema, canonical JSON text; absent for a deletion. */
  schema?: string;
  /** When (ms since the epoch) and by whom this version was made. */
  time: number;
  author: string;
}

/** The key of a schema's entry: JSON, so that no pattern can be read as another. */
export function schemaKey(id: SchemaId): string {
  return JSON.stringify(id.whole ? [id.envPattern, id.keyPattern, 'whole'] : [id.envPattern, id.keyPattern]);
}

/** The schema an entry's key names; undefined for a key that names none (not written by a server). */
export function schemaIdOf(key: string): SchemaId | undefined {
  try {
    const parsed = JSON.parse(key) as unknown;
    if (!Array.isArray(parsed) || parsed.length < 2 || parsed.length > 3) return undefined;
    const [envPattern, keyPattern, whole] = parsed as unknown[];
    if (typeof envPattern !== 'string' || typeof keyPattern !== 'string' || (whole !== undefined && whole !== 'whole')) return undefined;
    return { envPattern, keyPattern, whole: whole === 'whole' };
  } catch {
    return undefined;
  }
}

export function recordText(record: SchemaRecord): string {
  const by = `"time":${record.time},"author":${JSON.stringify(record.author)}`;
  return record.schema === undefined
    ? `{"v":${record.version},"deleted":true,${by}}`
    : `{"v":${record.version},"mode":${JSON.stringify(record.mode ?? 'enforce')},${by},"schema":${record.schema}}`;
}

/** A version as kept; undefined for a value no server wrote. */
export function recordOf(text: string | null | undefined): SchemaRecord | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as { v?: unknown; mode?: unknown; schema?: unknown; deleted?: unknown; time?: unknown; author?: unknown };
    if (typeof parsed.v !== 'number' || !Number.isInteger(parsed.v) || parsed.v < 1) return undefined;
    const by = { time: typeof parsed.time === 'number' ? parsed.time : 0, author: typeof parsed.author === 'string' ? parsed.author : '' };
    if (parsed.deleted === true) return { version: parsed.v, ...by };
    if (parsed.mode !== 'enforce' && parsed.mode !== 'warn') return undefined;
    if (typeof parsed.schema !== 'object' && typeof parsed.schema !== 'boolean') return undefined;
    return { version: parsed.v, mode: parsed.mode, schema: JSON.stringify(parsed.schema), ...by };
  } catch {
    return undefined;
  }
}

/** How a schema is named to people: "ENV_PATTERN KEY_PATTERN", with " (whole)" for a whole one. */
export function schemaName(id: SchemaId): string {
  return `${id.envPattern} ${id.keyPattern}${id.whole ? ' (whole)' : ''}`;
}
