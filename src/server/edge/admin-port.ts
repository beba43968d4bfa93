import type { AccessControl } from '../access/control.js';
import type { LoginContext } from '../access/login.js';
import { ConnectionHost } from './host.js';
import type { Hub } from '../ops/hub.js';
import type { ServerLimits } from '../limits.js';
import type { ServerState } from '../releases/state.js';
import type { Endpoint } from '../../transport/client.js';

export interface AdminPortOptions {
  serverId: string;
  listen: Endpoint;
  limits: ServerLimits;
  login: LoginContext;
  log?: (line: string) => void;
}

/**
 * The admin port (--admin-listen): a host for admin sessions only, run by
 * the process that commits — the primary of a cluster, which writes to no
 * agent — so that an operator's write and its answer never wait behind a
 * fan-out in a worker, and cross no internal channel. Watches are fed by the
 * same hub; agents are refused at their hello.
 */
export function adminPort(options: AdminPortOptions, hub: Hub, state: ServerState, access: AccessControl): ConnectionHost {
  const host = new ConnectionHost({
    serverId: options.serverId,
    listen: [options.listen],
    limits: options.limits,
    maxAgents: 0,
    adminsOnly: true,
    login: options.login,
    ...(options.log === undefined ? {} : { log: options.log }),
  }, state, access);
  hub.onRelease((release) => host.publish(release));
  access.onChange((book) => host.credentialsChanged(book));
  return host;
}
