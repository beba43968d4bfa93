import { randomBytes } from 'node:crypto';
import {
  REQUEST_ID, WireError, wireErrorName,
  type AdminRequest, type AuditEntry, type DoneResult, type ResultOf, type VerifierFields,
} from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS, makeVerifier } from '../../security/scram.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import { RequestError, wireAnswer } from '../errors.js';
import type { Hub } from '../ops/hub.js';
import type { AccountRecord, AuditRecord, Store } from '../store/types.js';
import { CredentialBook } from './book.js';
import type { LoginContext } from './login.js';
import type { LoginGate } from './throttle.js';
import { checkGrants, checkName, checkRole, granted } from './grants.js';
import { envOf, PERMISSIONS } from './permissions.js';
import { ReadScope } from './scope.js';

/** Who sent an admin request: the account its session logged in as, and from where. */
export interface Caller {
  /** The request id a configuration write came with, if any (see Request.rid). */
  requestId?: string;
  account: string;
  /**
   * The identity (AccountRecord.uid) of the account the session logged in
   * as: a request is refused once the account of that name is another one
   * (deleted and made again). Absent for the server's own callers.
   */
  uid?: string;
  addr: string;
}

export interface AccessOptions {
  /** Iterations of the password derivation for accounts this server creates. */
  passwordIterations: number;
  /** The first admin's password; when unset one is generated and printed once. */
  adminPassword: string | undefined;
  /** How often to look for credential changes made through other servers (0: never). */
  pollMs: number;
  log: (line: string) => void;
}

/** Audit entries waiting to be written at most; beyond, the oldest are dropped (and counted in the log). */
const AUDIT_QUEUE = 100_000;
const AUDIT_FLUSH_MS = 200;

/**
 * The one place every admin request passes: it finds the caller's account
 * as it is now (a deleted account can do nothing more, a changed role
 * applies at once), checks the operation's permission (permissions.ts),
 * runs the request (accounts, tokens and audit here, configuration in the
 * hub) and records the outcome in the audit trail, refusals included.
 */
export class AccessControl {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly options: AccessOptions;
  private current = CredentialBook.empty();
  private readonly listeners = new Set<(book: CredentialBook) => void>();
  private readonly queue: AuditRecord[] = [];
  private flushing = false;
  private flushTimer?: NodeJS.Timeout;
  /** Closed: what is audited later (a request finishing during the stop) is written by the last flush or dropped, never retried by a timer that would keep the process alive. */
  private closed = false;
  private poller?: NodeJS.Timeout;
  private dropped = 0;
  /** The store's secret for decoy logins, once open. */
  decoySecret: Buffer = Buffer.alloc(32);

  constructor(store: Store, hub: Hub, options: AccessOptions) {
    this.store = store;
    this.hub = hub;
    this.options = options;
  }

  get book(): CredentialBook {
    return this.current;
  }

  /**
   * What the logins of this process's own ports check against: the
   * credentials in force, the store's decoy secret (read at open), the
   * server's one throttle, this audit trail.
   */
  loginContext(passwordIterations: number, throttle: LoginGate): LoginContext {
    const access = this; // the getter below has its own `this`
    return {
      book: () => access.book,
      get decoySecret() {
        return access.decoySecret;
      },
      passwordIterations,
      throttle,
      audit: (record) => access.audit(record),
    };
  }

  /** Loads the credentials; on a store without accounts, creates `admin`. */
  async open(): Promise<void> {
    this.decoySecret = await this.store.access.secret('decoy-logins', 32);
    await this.bootstrap();
    await this.reload();
    if (this.options.pollMs > 0) this.poll();
  }

  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.poller);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    return this.flush();
  }

  onChange(listener: (book: CredentialBook) => void): void {
    this.listeners.add(listener);
  }

  private async bootstrap(): Promise<void> {
    const given = this.options.adminPassword;
    const password = given ?? randomBytes(18).toString('base64url');
    const admin: AccountRecord = {
      name: 'admin', role: 'admin', envs: ['*'], reads: ['*'], uid: newUid(), created: Date.now(),
      verifier: makeVerifier(password, this.options.passwordIterations),
    };
    if (!(await this.store.access.createAccount(admin, true))) return;
    this.audit({ time: Date.now(), actor: 'server', addr: '', action: 'user.add', env: '', result: 'ok', code: '', detail: 'first account admin (role admin)' });
    if (given === undefined) {
      // Printed once, here, and never again: nothing else ever shows it.
      this.options.log(`created the account admin with the password ${password} (shown only now; change it with: vitefa admin passwd)`);
    } else {
      this.options.log('created the account admin with the password from VITEFA_ADMIN_PASSWORD');
    }
  }

  private async reload(): Promise<void> {
    this.current = new CredentialBook(await this.store.access.load());
    for (const listener of this.listeners) listener(this.current);
  }

  /** Credentials changed through another server of the same store are picked up within `pollMs`. */
  private poll(): void {
    this.poller = setTimeout(() => {
      this.store.access.stamp().then(
        (stamp) => (stamp !== this.current.stamp ? this.reload() : undefined),
        () => undefined, // the store is down: the credentials in memory stay in force
      ).catch((err: unknown) => reportFault('reloading credentials', err)).finally(() => this.poll());
    }, this.options.pollMs);
    this.poller.unref();
  }

  async execute(req: AdminRequest, caller: Caller): Promise<unknown> {
    const time = Date.now();
    try {
      // Checked here, not where the request arrived, so that its refusal is audited like any other.
      if (caller.requestId !== undefined && !REQUEST_ID.test(caller.requestId)) {
        throw new RequestError(WireError.BAD_REQUEST, 'a request id is 1 to 128 of A-Z a-z 0-9 . _ : -');
      }
      const account = this.permit(req, caller);
      const result = await this.run(req, caller);
      this.audit(auditEntry(req, caller, time, 'ok'));
      // Reads about several environments show the ones the account reads (permit checked the others).
      return new ReadScope(account).answer(req.op, result as ResultOf[typeof req.op]);
    } catch (err) {
      this.audit(auditEntry(req, caller, time, { error: err }));
      throw err;
    }
  }

  /** The caller's account as it is now, if it may make this request; FORBIDDEN otherwise. */
  private permit(req: AdminRequest, caller: Caller): AccountRecord {
    const account = this.current.account(caller.account);
    if (account === undefined) throw forbidden(`the account ${caller.account} no longer exists`);
    if (caller.uid !== undefined && caller.uid !== account.uid) {
      throw forbidden(`the account ${caller.account} this session logged in as no longer exists (it was deleted; the account of that name now is another): log in again`);
    }
    const need = PERMISSIONS[req.op];
    const isAdmin = account.role === 'admin';
    switch (need) {
      case 'read': {
        // Decided from the grants alone, before the environment is looked up: the same answer whether it exists or not.
        const env = envOf(req);
        if (env === undefined || req.op === 'unwatch') return account;
        const scope = new ReadScope(account);
        if (scope.covers(env)) return account;
        throw forbidden(`${account.name} may not read ${env} (reads: ${scope.described})`);
      }
      case 'write': {
        if (isAdmin) return account;
        const env = envOf(req) ?? '';
        if (account.role === 'editor' && granted(account.envs, env)) return account;
        throw forbidden(account.role === 'editor' ? `${account.name} may not change ${env} (granted: ${account.envs.join(', ') || 'none'})` : `${account.name} is a viewer: ${req.op} needs an editor`);
      }
      case 'admin':
        if (isAdmin) return account;
        throw forbidden(`${req.op} needs the admin role (${account.name} is ${account.role})`);
      case 'self':
        if (req.op === 'user.passwd' && (req.name === undefined || req.name === account.name || isAdmin)) return account;
        throw forbidden(`only an admin changes another account's password`);
      default: {
        const unknown: never = need;
        throw forbidden(`unknown permission ${String(unknown)}`);
      }
    }
  }

  private async run(req: AdminRequest, caller: Caller): Promise<unknown> {
    switch (req.op) {
      case 'user.add': {
        await this.store.access.createAccount({
          name: checkName(req.name, 'account'), role: checkRole(req.role), envs: checkGrants(req.envs), reads: checkGrants(req.reads ?? []),
          uid: newUid(), verifier: checkVerifier(req.verifier, SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS), created: Date.now(),
        });
        return this.changed(`account ${req.name} added (${req.role})`);
      }
      case 'user.del':
        await this.store.access.deleteAccount(req.name);
        return this.changed(`account ${req.name} deleted`);
      case 'user.list':
        return { users: this.current.accountList.map((a) => ({ name: a.name, role: a.role, envs: a.envs, reads: a.reads, created: a.created })) } satisfies ResultOf['user.list'];
      case 'user.passwd': {
        const name = req.name ?? caller.account;
        await this.store.access.setVerifier(name, checkVerifier(req.verifier, SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS));
        return this.changed(`password of ${name} changed`);
      }
      case 'token.add':
        if (!/^[0-9a-f]{12}$/.test(req.id)) throw new RequestError(WireError.BAD_REQUEST, 'a token id is 12 hexadecimal digits');
        await this.store.access.createToken({
          name: checkName(req.name, 'token'), id: req.id, envs: checkGrants(req.envs),
          verifier: checkVerifier(req.verifier, TOKEN_ITERATIONS, TOKEN_ITERATIONS), created: Date.now(),
        });
        return this.changed(`token ${req.name} added`);
      case 'token.del':
        await this.store.access.deleteToken(req.name);
        return this.changed(`token ${req.name} revoked`);
      case 'token.list':
        return { tokens: this.current.tokenList.map((t) => ({ name: t.name, id: t.id, envs: t.envs, created: t.created })) } satisfies ResultOf['token.list'];
      case 'audit': {
        await this.flush();
        const entries = await this.store.access.audit({
          ...(req.env === undefined ? {} : { env: req.env }),
          ...(req.user === undefined ? {} : { actor: req.user }),
          ...(req.since === undefined ? {} : { since: req.since }),
          limit: Math.min(req.limit ?? 100, 10_000),
        });
        return { entries: entries satisfies AuditEntry[] };
      }
      case 'watch': {
        const rev = this.hub.state.rev(req.env);
        if (rev === undefined) throw new RequestError(WireError.ENV_NOT_FOUND, `environment ${req.env} does not exist`);
        return { env: req.env, rev } satisfies ResultOf['watch'];
      }
      case 'unwatch':
        return { done: `stopped watching ${req.env}` } satisfies DoneResult;
      default:
        return this.hub.execute(req, caller.account, caller.requestId);
    }
  }

  private async changed(done: string): Promise<DoneResult> {
    await this.reload();
    return { done };
  }

  /** Records an entry; entries are written in batches, a moment later. */
  audit(record: AuditRecord): void {
    this.queue.push(record);
    if (this.queue.length > AUDIT_QUEUE) {
      this.queue.shift();
      if (this.dropped++ % 1000 === 0) this.options.log(`audit entries are waiting for the store: ${this.dropped} dropped so far`);
    }
    if (this.closed) return;
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, AUDIT_FLUSH_MS);
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue.splice(0, 1000);
    try {
      await this.store.access.appendAudit(batch);
    } catch {
      // The store is down: keep them (ahead of newer ones) and try again.
      this.queue.unshift(...batch);
    } finally {
      this.flushing = false;
    }
    if (this.queue.length > 0 && !this.closed) {
      this.flushTimer ??= setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, 1000);
    }
  }
}

/**
 * The audit entry of a request: ok, or, with the error it ended with,
 * refused (FORBIDDEN, BAD_REQUEST, …) or failed (the store, the server).
 * Every request of an account is recorded with one, wherever it was refused.
 */
export function auditEntry(req: AdminRequest, caller: Caller, time: number, outcome: 'ok' | { error: unknown }): AuditRecord {
  const record: AuditRecord = {
    time, actor: caller.account, addr: caller.addr, action: req.op, env: envOf(req) ?? '', result: 'ok', code: '', detail: describe(req),
  };
  if (outcome === 'ok') return record;
  const { status, message } = wireAnswer(outcome.error, 'internal error');
  record.result = status === WireError.STORE_UNAVAILABLE || status === WireError.INTERNAL ? 'failed' : 'refused';
  record.code = wireErrorName(status) ?? String(status);
  record.detail = `${record.detail}${record.detail ? ': ' : ''}${message}`.slice(0, 500);
  return record;
}

/** A new account identity (AccountRecord.uid). */
function newUid(): string {
  return randomBytes(12).toString('hex');
}

function forbidden(message: string): RequestError {
  return new RequestError(WireError.FORBIDDEN, message);
}

function checkVerifier(v: VerifierFields, min: number, max: number): VerifierFields {
  const ok = (b64: string, bytes: number): boolean => b64.length <= 64 && Buffer.from(b64, 'base64').length === bytes;
  if (v.iterations < min || v.iterations > max || !ok(v.storedKey, 32) || !ok(v.serverKey, 32) || v.salt.length > 64 || Buffer.from(v.salt, 'base64').length < 8) {
    throw new RequestError(WireError.BAD_REQUEST, `invalid verifier: ${min === max ? `${min} iteration` : `${min} to ${max} iterations`}, a salt of 8 bytes or more, 32-byte keys`);
  }
  return { salt: v.salt, iterations: v.iterations, storedKey: v.storedKey, serverKey: v.serverKey };
}

/** What a request did, for the audit: names and counts, never a value or a secret. */
function describe(req: AdminRequest): string {
  switch (req.op) {
    case 'set': case 'get': case 'del': case 'merge': return `key ${req.key.slice(0, 256)}`;
    // The last word of a path may be a value to take out of an array: only the words before it are names.
    case 'clear': return `key ${req.key.slice(0, 256)}${req.path.length > 1 ? ` path ${req.path.slice(0, -1).join('.').slice(0, 200)}` : ''}${req.path.length ? ', removing what the last path word names (not recorded)' : ''}`;
    case 'apply': return `${req.entries.length} keys${req.replace ? ', replacing the rest' : ''}`;
    case 'list': return req.prefix === undefined ? '' : `prefix ${req.prefix.slice(0, 256)}`;
    case 'history': return req.key === undefined ? '' : `key ${req.key.slice(0, 256)}`;
    case 'diff': return `from ${req.from}${req.to === undefined ? '' : ` to ${req.to}`}`;
    case 'rollback': return `to ${req.rev}`;
    case 'user.add': return `account ${req.name.slice(0, 64)} role ${req.role.slice(0, 16)}${req.envs.length ? ` envs ${req.envs.join(',').slice(0, 200)}` : ''}${req.reads?.length ? ` reads ${req.reads.join(',').slice(0, 200)}` : ''}`;
    case 'user.del': return `account ${req.name.slice(0, 64)}`;
    case 'user.passwd': return req.name === undefined ? 'own password' : `account ${req.name.slice(0, 64)}`;
    case 'token.add': return `token ${req.name.slice(0, 64)} id ${req.id.slice(0, 12)}${req.envs.length ? ` envs ${req.envs.join(',').slice(0, 200)}` : ''}`;
    case 'token.del': return `token ${req.name.slice(0, 64)}`;
    case 'audit': return '';
    default: return '';
  }
}
