import fs from 'node:fs';
import path from 'node:path';
import { LocalErrorCode, VitefaError } from '../protocol/index.js';
import type { Login } from '../transport/client.js';
import { askSecret } from './prompt.js';

/** Where `vitefa start` writes its admin login, and where `vitefa admin` looks for one when no user is given. */
export const DEFAULT_LOGIN_FILE = path.join('data', 'admin.login');

export interface LoginFlags {
  user?: string;
  loginFile?: string;
}

const usage = (message: string): VitefaError => new VitefaError(LocalErrorCode.USAGE, message);

/**
 * Who `vitefa admin` logs in as: `--user NAME` (or VITEFA_USER) with the
 * password from VITEFA_PASSWORD, or asked without echo on a terminal; else a
 * login file (`--login-file`, VITEFA_LOGIN_FILE, or ./data/admin.login when
 * present, as `vitefa start` leaves it) holding {"user", "password"},
 * readable by its owner only.
 */
export async function resolveLogin(flags: LoginFlags, env: NodeJS.ProcessEnv = process.env): Promise<Login> {
  const user = flags.user ?? env.VITEFA_USER;
  if (user !== undefined && user !== '') {
    const password = env.VITEFA_PASSWORD ?? (process.stdin.isTTY ? await askSecret(`password for ${user}: `, 'VITEFA_PASSWORD') : undefined);
    if (password === undefined) throw usage(`no password for ${user}: set VITEFA_PASSWORD, or run on a terminal to be asked`);
    return { user, secret: password };
  }
  const file = flags.loginFile ?? env.VITEFA_LOGIN_FILE ?? (fs.existsSync(DEFAULT_LOGIN_FILE) ? DEFAULT_LOGIN_FILE : undefined);
  if (file === undefined) throw usage('log in with --user NAME (or VITEFA_USER; the password from VITEFA_PASSWORD, or asked), or --login-file FILE');
  return readLoginFile(file);
}

export function readLoginFile(file: string): Login {
  let stat: fs.Stats;
  let text: string;
  try {
    stat = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `cannot read the login file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if ((stat.mode & 0o077) !== 0 && process.platform !== 'win32') {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `the login file ${file} may be read by others: chmod 600 ${file}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `the login file ${file} is not JSON of the form {"user": …, "password": …}`);
  }
  const { user, password } = (parsed ?? {}) as { user?: unknown; password?: unknown };
  if (typeof user !== 'string' || typeof password !== 'string' || user === '') {
    throw new VitefaError(LocalErrorCode.BAD_FILE, `the login file ${file} must hold {"user": …, "password": …}`);
  }
  return { user, secret: password };
}

/** Writes a login file readable by its owner only. */
export function writeLoginFile(file: string, user: string, password: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ user, password })}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}
