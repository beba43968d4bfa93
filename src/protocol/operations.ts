/**
 * Every admin operation of the protocol: the `op` of each AdminRequest
 * (requests.ts), as a list the server can check its table of operations
 * against at run time. AdminOp is derived from it, and requests.ts fails to
 * compile when the request union and this list name different operations.
 */
export const ADMIN_OPS = [
  'env.add', 'env.del', 'env.list', 'env.layers', 'env.show',
  'set', 'get', 'del', 'list', 'merge', 'clear', 'unset', 'apply', 'plan',
  'history', 'diff', 'rollback',
  'schema.set', 'schema.get', 'schema.del', 'schema.list', 'schema.history', 'schema.rollback',
  'status', 'status.local',
  'user.add', 'user.del', 'user.list', 'user.passwd',
  'token.add', 'token.del', 'token.list',
  'audit',
  'watch', 'unwatch',
] as const;

/**
 * The operations that write configuration: each makes a release and carries
 * a request id (Request.rid), with which a retry is answered with the first
 * result. The server's table of operations marks exactly these as writes.
 */
export const CONFIG_WRITE_OPS = ['env.add', 'env.del', 'env.layers', 'set', 'del', 'merge', 'clear', 'unset', 'apply', 'rollback', 'schema.set', 'schema.del', 'schema.rollback'] as const satisfies readonly (typeof ADMIN_OPS)[number][];
