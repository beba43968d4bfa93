import { WireError, type AdminRequest } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import { operation } from '../ops/table.js';
import type { AccountRecord } from '../store/types.js';
import { granted } from './grants.js';
import { ReadScope } from './scope.js';

/**
 * Whether `account`, as it is now, may make `req`: the permission its entry
 * in the table of operations names (ops/table.ts), applied to the account's
 * role and grants. FORBIDDEN, naming what is missing, if it may not.
 */
export function permit(req: AdminRequest, account: AccountRecord): void {
  const need = operation(req.op).permission;
  const isAdmin = account.role === 'admin';
  switch (need) {
    case 'read': {
      // Decided from the grants alone, before the environment is looked up: the same answer whether it exists or not.
      const env = envOf(req);
      if (env === undefined) return;
      const scope = new ReadScope(account);
      if (scope.covers(env)) return;
      throw forbidden(`${account.name} may not read ${env} (reads: ${scope.described})`);
    }
    case 'write': {
      if (isAdmin) return;
      const env = envOf(req) ?? '';
      if (account.role === 'editor' && granted(account.envs, env)) return;
      throw forbidden(account.role === 'editor' ? `${account.name} may not change ${env} (granted: ${account.envs.join(', ') || 'none'})` : `${account.name} is a viewer: ${req.op} needs an editor`);
    }
    case 'admin':
      if (isAdmin) return;
      throw forbidden(`${req.op} needs the admin role (${account.name} is ${account.role})`);
    case 'self': {
      // Acting on the session's own account, unless it names another (which an admin may).
      const other = 'name' in req ? req.name : undefined;
      if (other === undefined || other === account.name || isAdmin) return;
      throw forbidden(`only an admin changes another account's password`);
    }
    default: {
      const unknown: never = need;
      throw forbidden(`unknown permission ${String(unknown)}`);
    }
  }
}

/** The environment a request acts on, if it acts on one. */
export function envOf(req: AdminRequest): string | undefined {
  return 'env' in req && typeof req.env === 'string' ? req.env : undefined;
}

export function forbidden(message: string): RequestError {
  return new RequestError(WireError.FORBIDDEN, message);
}
