import { randomBytes } from 'node:crypto';
import { RESERVED_ENV_PREFIX, REQUEST_ID, WireError, wireErrorName, type AdminRequest, type ResultOf } from '../../protocol/index.js';
import { reportFault } from '../../log.js';
import { makeVerifier } from '../../security/scram.js';
import { RequestError, wireAnswer } from '../errors.js';
import type { Hub } from '../ops/hub.js';
import { operation, runHandler, type Handlers, type OpsRunBy, type RequestOf } from '../ops/table.js';
import type { AccountRecord, AuditRecord, Store } from '../store/types.js';
import { accountHandlers, newUid, type AccountCall } from './account-ops.js';
import { CredentialBook } from './book.js';
import type { LoginContext } from './login.js';
import type { LoginGate } from './throttle.js';
import { envOf, forbidden, permit } from './permissions.js';
import { ReadScope } from './scope.js';
import { AuditQueue } from './audit-queue.js';

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
  /** Where adminPassword came from, as the log says it when it creates the account (default: "from VITEFA_ADMIN_PASSWORD"). */
  adminPasswordFrom?: string;
  /** How often to look for credential changes made through other servers (0: never). */
  pollMs: number;
  log: (line: string) => void;
}

/**
 * The one place every admin request passes: it finds the caller's account
 * as it is now (a deleted account can do nothing more, a changed role
 * applies at once), checks the permission of the operation's entry in the
 * table of operations (ops/table.ts, permissions.ts), runs it with the
 * handler of the layer that runs it (the hub's, or account-ops.ts's) and
 * records the outcome in the audit trail (AuditQueue), refusals included.
 */
export class AccessControl {
  private readonly store: Store;
  private readonly hub: Hub;
  private readonly options: AccessOptions;
  private current = CredentialBook.empty();
  private readonly listeners = new Set<(book: CredentialBook) => void>();
  private readonly audits: AuditQueue;
  private poller?: NodeJS.Timeout;
  /** The store's secret for decoy logins, once open. */
  decoySecret: Buffer = Buffer.alloc(32);
  private readonly handlers: Handlers<'access', AccountCall>;

  constructor(store: Store, hub: Hub, options: AccessOptions) {
    this.store = store;
    this.hub = hub;
    this.options = options;
    this.audits = new AuditQueue(store, options.log);
    this.handlers = accountHandlers({
      store, state: hub.state, book: () => this.current, reload: () => this.reload(), flushAudit: () => this.audits.flush(),
    });
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
    const decoySecret = (): Buffer => this.decoySecret; // the getter below has its own `this`
    return {
      book: () => this.book,
      get decoySecret() {
        return decoySecret();
      },
      passwordIterations,
      throttle,
      audit: (record) => this.audit(record),
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
    clearTimeout(this.poller);
    return this.audits.close();
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
      this.options.log(`created the account admin with the password ${this.options.adminPasswordFrom ?? 'from VITEFA_ADMIN_PASSWORD'}`);
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
      refuseReserved(req);
      const account = this.allowed(req, caller);
      const result = await this.run(req, caller, account);
      this.audit(auditEntry(req, caller, time, 'ok'));
      // Reads about several environments show the ones the account reads (permit checked the others).
      return new ReadScope(account).answer(req.op, result as ResultOf[typeof req.op]);
    } catch (err) {
      this.audit(auditEntry(req, caller, time, { error: err }));
      throw err;
    }
  }

  /** The caller's account as it is now, if it may make this request; FORBIDDEN otherwise. */
  private allowed(req: AdminRequest, caller: Caller): AccountRecord {
    const account = this.current.account(caller.account);
    if (account === undefined) throw forbidden(`the account ${caller.account} no longer exists`);
    if (caller.uid !== undefined && caller.uid !== account.uid) {
      throw forbidden(`the account ${caller.account} this session logged in as no longer exists (it was deleted; the account of that name now is another): log in again`);
    }
    permit(req, account);
    return account;
  }

  /** Runs a request with the handler of the layer its entry names. */
  private async run(req: AdminRequest, caller: Caller, account: AccountRecord): Promise<unknown> {
    if (operation(req.op).runBy === 'hub') {
      const scope = new ReadScope(account);
      return this.hub.execute(req, caller.account, caller.requestId, scope.all ? undefined : (env) => scope.covers(env));
    }
    return runHandler(this.handlers, req as RequestOf<OpsRunBy<'access'>>, caller);
  }

  /** Records an entry; entries are written in batches, a moment later. */
  audit(record: AuditRecord): void {
    this.audits.push(record);
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

/** What a request did, for the audit: its entry's description (names and counts, never a value or a secret). */
function describe(req: AdminRequest): string {
  return operation(req.op).audit?.(req) ?? '';
}

/**
 * The servers' own environments (RESERVED_ENV_PREFIX: the schemas) are nobody's to name: a request
 * that names one, as its environment or a parent, is told it does not exist, as any unknown name is.
 */
function refuseReserved(req: AdminRequest): void {
  const named = [...('env' in req && typeof req.env === 'string' ? [req.env] : []), ...('parents' in req ? req.parents : [])];
  const reserved = named.find((env) => env.startsWith(RESERVED_ENV_PREFIX));
  if (reserved === undefined) return;
  if (req.op === 'env.add') throw new RequestError(WireError.INVALID_VALUE, `invalid environment name ${JSON.stringify(reserved.slice(0, 80))}: a name starts with a letter or digit`);
  throw new RequestError(WireError.ENV_NOT_FOUND, `environment ${JSON.stringify(reserved.slice(0, 80))} does not exist: names starting with ${RESERVED_ENV_PREFIX} are the servers' own`);
}
