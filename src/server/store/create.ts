import { LocalErrorCode, VitefaError } from '../../protocol/index.js';
import { LmdbStore } from './lmdb/store.js';
import { MysqlStore } from './mysql/store.js';
import type { Store } from './types.js';
import { redactUrl } from './urls.js';

export interface StoreOptions {
  retainReleases: number;
  /** Audit entries kept (default 1,000,000). */
  retainAudit?: number;
}

/** A store from its spec: a mysql:// URL, or a folder for the embedded LMDB store. */
export function createStore(spec: string, options: StoreOptions): Store {
  if (/^mysql:\/\//i.test(spec)) return new MysqlStore(spec, options);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new VitefaError(LocalErrorCode.USAGE, `unsupported store ${redactUrl(spec)}: use a folder or mysql://user:pass@host:port/db`);
  }
  return new LmdbStore(spec, options);
}
