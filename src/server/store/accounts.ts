import type { AccountRecord } from './types.js';

/** An account as a store may hold it: records written before read grants and identities lack them. */
export type StoredAccount = Omit<AccountRecord, 'reads' | 'uid'> & { reads?: string[] | null; uid?: string };

/**
 * An account as both stores load it. One stored before read grants existed
 * reads every environment (`*`), as every account did then. One stored
 * without an identity (before identities, or by an older server sharing the
 * database) gets one from its creation time: re-creating the account gives
 * it another.
 */
export function loadedAccount(stored: StoredAccount): AccountRecord {
  return {
    ...stored,
    reads: stored.reads ?? ['*'],
    uid: stored.uid === undefined || stored.uid === '' ? `created-${stored.created}` : stored.uid,
  };
}
