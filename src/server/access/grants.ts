import { WireError } from '../../protocol/index.js';
import { RequestError } from '../errors.js';
import type { AccountRole } from '../store/types.js';
import { quoted } from '../ops/validate.js';

/**
 * Environment grants: an exact name (`shop`), a prefix (`prod/*`: every
 * environment whose name starts with `prod/`), or `*` (every environment).
 */
export type Grants = readonly string[];

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const GRANT = /^(\*|[A-Za-z0-9][A-Za-z0-9._\-/]*(\/\*)?)$/;
export const ROLES: readonly AccountRole[] = ['viewer', 'editor', 'admin'];

/** Whether `grants` cover `env`. */
export function granted(grants: Grants, env: string): boolean {
  for (const g of grants) {
    if (g === '*' || g === env) return true;
    if (g.endsWith('/*') && env.startsWith(g.slice(0, -1))) return true;
  }
  return false;
}

/** An account or token name: 1 to 64 of letters, digits, `.` `_` `@` `-`, starting with a letter or digit. */
export function checkName(name: string, what: string): string {
  if (!NAME.test(name)) {
    throw new RequestError(WireError.BAD_REQUEST, `invalid ${what} name ${quoted(name)}: 1 to 64 letters, digits, '.', '_', '@', '-'`);
  }
  return name;
}

export function checkRole(role: string): AccountRole {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new RequestError(WireError.BAD_REQUEST, `invalid role ${quoted(role)}: one of ${ROLES.join(', ')}`);
  }
  return role as AccountRole;
}

export function checkGrants(grants: readonly string[]): string[] {
  if (grants.length > 256) throw new RequestError(WireError.BAD_REQUEST, 'at most 256 environment grants');
  for (const g of grants) {
    if (g.length > 130 || !GRANT.test(g) || g.includes('//')) {
      throw new RequestError(WireError.BAD_REQUEST, `invalid environment grant ${quoted(g)}: a name, a prefix such as prod/*, or *`);
    }
  }
  return [...new Set(grants)];
}
