import { LocalErrorCode, VitefaError } from '../../../protocol/index.js';
import { redactUrl } from '../urls.js';

/** Where to connect, from a mysql://user:pass@host:port/db URL. */
export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The URL without the password, for logs and errors. */
  description: string;
}

export function parseMysqlUrl(spec: string): MysqlTarget {
  let url: URL;
  try {
    url = new URL(spec);
  } catch (cause) {
    throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: use mysql://user:pass@host:port/db`, { cause });
  }
  const decode = (part: string): string => {
    try {
      return decodeURIComponent(part);
    } catch (cause) {
      throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: bad %-escape`, { cause });
    }
  };
  const database = decode(url.pathname.replace(/^\//, ''));
  if (url.protocol !== 'mysql:' || url.hostname === '' || database === '' || database.includes('/')) {
    throw new VitefaError(LocalErrorCode.USAGE, `invalid store URL ${redactUrl(spec)}: use mysql://user:pass@host:port/db`);
  }
  const port = url.port === '' ? 3306 : Number(url.port);
  // URL keeps the brackets of an IPv6 literal: fine in the description, not for connecting.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const user = decode(url.username);
  const description = `mysql://${url.username === '' ? '' : `${url.username}@`}${url.hostname}:${port}/${url.pathname.slice(1)}`;
  return { host, port, user, password: decode(url.password), database, description };
}
