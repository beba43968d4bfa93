import { VitefaError } from '../../protocol/index.js';

/** How long the request ids of configuration writes are kept: any retry comes well within it. */
export const REQUEST_IDS_KEPT_MS = 24 * 60 * 60 * 1000;

/** Old request ids dropped per write that records one (pruning keeps pace with a write rate of that many per write). */
export const REQUEST_PRUNE_BATCH = 100;

/** What a configuration write with a request id answered, as kept with its release. */
export interface RequestRecord {
  env: string;
  rev: number;
  changed: number;
  time: number;
}

/**
 * Thrown by a store's write when its request id was committed before (a
 * retry): nothing is written again, the caller answers with the record.
 */
export class RequestReplay extends VitefaError {
  constructor(readonly record: RequestRecord) {
    super('E_REQUEST_REPLAY', `request already committed as ${record.env}@${record.rev}`);
  }
}
