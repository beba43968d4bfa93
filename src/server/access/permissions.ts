import type { AdminOp, AdminRequest } from '../../protocol/index.js';

/**
 * What each admin operation needs, in one table the server checks before
 * running any request:
 * - `read`: any account (viewer, editor, admin), every environment;
 * - `write`: an editor in an environment granted to it, or an admin;
 * - `admin`: an admin;
 * - `self`: any account, acting on itself (changing its own password).
 */
export type Need = 'read' | 'write' | 'admin' | 'self';

export const PERMISSIONS: { [K in AdminOp]: Need } = {
  'env.list': 'read',
  get: 'read',
  list: 'read',
  history: 'read',
  diff: 'read',
  status: 'read',
  'status.local': 'read',
  watch: 'read',
  unwatch: 'read',
  set: 'write',
  del: 'write',
  merge: 'write',
  clear: 'write',
  apply: 'write',
  rollback: 'write',
  'env.add': 'admin',
  'env.del': 'admin',
  'user.add': 'admin',
  'user.del': 'admin',
  'user.list': 'admin',
  'token.add': 'admin',
  'token.del': 'admin',
  'token.list': 'admin',
  audit: 'admin',
  // Without a name: one's own password; with another's name it needs admin (checked where it runs).
  'user.passwd': 'self',
};

/** The environment a request acts on, if it acts on one. */
export function envOf(req: AdminRequest): string | undefined {
  return 'env' in req && typeof req.env === 'string' ? req.env : undefined;
}
