import { createHash } from 'node:crypto';
import { VitefaError, type AdminRequest } from '../../protocol/index.js';

/** How long the request ids of configuration writes are kept: any retry comes well within it. */
export const REQUEST_IDS_KEPT_MS = 24 * 60 * 60 * 1000;

/** Old request ids dropped per write that records one (pruning keeps pace with a write rate of that many per write). */
export const REQUEST_PRUNE_BATCH = 100;

/** What a configuration write with a request id answered, as kept with its release, and whose write it was. */
export interface RequestRecord {
  env: string;
  rev: number;
  changed: number;
  time: number;
  /** The account that wrote it (absent or '' for ids kept before authors were: they match any). */
  author?: string;
  /** Its operation (absent or '' as for `author`). */
  op?: string;
  /** requestDigest() of the request (absent or '' as for `author`). */
  digest?: string;
}

/**
 * Thrown by a store's write, inside its transaction (which it aborts), when
 * its request id was committed before (a retry): nothing is written again.
 * It never leaves the store's caller: `orReplay` turns it into a value.
 */
export class RequestReplay extends VitefaError {
  constructor(readonly record: RequestRecord) {
    super('E_REQUEST_REPLAY', `request already committed as ${record.env}@${record.rev}`);
  }
}

/** A write whose request id was committed before: what that write answered, to answer with again (if replayRefusal allows). */
export interface Replay {
  kind: 'replay';
  record: RequestRecord;
}

/** What a store's write did: `written` (its outcome), or — its request id was committed before — the Replay of that first write, as a value. */
export async function orReplay<T>(write: Promise<T>): Promise<{ kind: 'written'; outcome: T } | Replay> {
  try {
    return { kind: 'written', outcome: await write };
  } catch (err) {
    if (err instanceof RequestReplay) return { kind: 'replay', record: err.record };
    throw err;
  }
}

/** SHA-256 (hex) of a request, its fields in a fixed order: the same request always gives the same digest. */
export function requestDigest(req: AdminRequest): string {
  return createHash('sha256').update(JSON.stringify(sorted(req))).digest('hex');
}

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, sorted(v)]));
}

/** The write a request id came with this time. */
export interface RequestOrigin {
  rid: string;
  author: string;
  op: string;
  env: string;
  digest: string;
}

/**
 * Why a write may not be answered from the record its request id found — or
 * undefined when it is the same request again (a retry): by the same
 * account, the same operation on the same environment, the same request.
 * A request id is a promise of exactly once for one write of one account;
 * another account's id names nothing of its write (not even where it went).
 */
export function replayRefusal(kept: RequestRecord, now: RequestOrigin): string | undefined {
  const known = (field: string | undefined): field is string => field !== undefined && field !== '';
  if (known(kept.author) && kept.author !== now.author) {
    return `request id ${now.rid} was used by another account; give this write an id of its own`;
  }
  if (kept.env !== now.env || (known(kept.op) && kept.op !== now.op) || (known(kept.digest) && kept.digest !== now.digest)) {
    return `request id ${now.rid} was used for ${kept.env}@${kept.rev} by another request${known(kept.op) ? ` (${kept.op})` : ''}; give this write an id of its own`;
  }
  return undefined;
}
