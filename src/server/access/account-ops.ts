import { randomBytes } from 'node:crypto';
import { WireError, type AuditEntry, type DoneResult, type ResultOf, type VerifierFields } from '../../protocol/index.js';
import { SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS } from '../../security/scram.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import { RequestError } from '../errors.js';
import { checkedHandlers, type Handlers } from '../ops/table.js';
import type { ServerState } from '../releases/state.js';
import type { Store } from '../store/types.js';
import type { CredentialBook } from './book.js';
import { checkGrants, checkName, checkRole } from './grants.js';

/** Who asks: the account its session logged in as (see Caller). */
export interface AccountCall {
  account: string;
}

/** What the handlers of access control's operations work with. */
export interface AccountDesk {
  store: Store;
  /** The configuration in memory (a watch starts at an environment's revision). */
  state: ServerState;
  /** The credentials in force. */
  book(): CredentialBook;
  /** Reads the credentials again after a change (they apply at once). */
  reload(): Promise<void>;
  /** Writes the audit entries waiting, so that the audit trail read next holds them. */
  flushAudit(): Promise<void>;
}

/**
 * The handlers of the operations access control runs (ops/table.ts):
 * accounts, tokens, the audit trail, and the start and end of a session's
 * watch of an environment (the session follows it once allowed).
 */
export function accountHandlers(desk: AccountDesk): Handlers<'access', AccountCall> {
  const changed = async (done: string): Promise<DoneResult> => {
    await desk.reload();
    return { done };
  };
  return checkedHandlers('access', {
    'user.add': async (req) => {
      await desk.store.access.createAccount({
        name: checkName(req.name, 'account'), role: checkRole(req.role), envs: checkGrants(req.envs), reads: checkGrants(req.reads ?? []),
        uid: newUid(), verifier: checkVerifier(req.verifier, SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS), created: Date.now(),
      });
      return changed(`account ${req.name} added (${req.role})`);
    },
    'user.del': async (req) => {
      await desk.store.access.deleteAccount(req.name);
      return changed(`account ${req.name} deleted`);
    },
    'user.list': () => ({
      users: desk.book().accountList.map((a) => ({ name: a.name, role: a.role, envs: a.envs, reads: a.reads, created: a.created })),
    }),
    'user.passwd': async (req, call) => {
      const name = req.name ?? call.account;
      await desk.store.access.setVerifier(name, checkVerifier(req.verifier, SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS));
      return changed(`password of ${name} changed`);
    },
    'token.add': async (req) => {
      if (!/^[0-9a-f]{12}$/.test(req.id)) throw new RequestError(WireError.BAD_REQUEST, 'a token id is 12 hexadecimal digits');
      await desk.store.access.createToken({
        name: checkName(req.name, 'token'), id: req.id, envs: checkGrants(req.envs),
        verifier: checkVerifier(req.verifier, TOKEN_ITERATIONS, TOKEN_ITERATIONS), created: Date.now(),
      });
      return changed(`token ${req.name} added`);
    },
    'token.del': async (req) => {
      await desk.store.access.deleteToken(req.name);
      return changed(`token ${req.name} revoked`);
    },
    'token.list': () => ({ tokens: desk.book().tokenList.map((t) => ({ name: t.name, id: t.id, envs: t.envs, created: t.created })) }),
    audit: async (req) => {
      await desk.flushAudit();
      const entries: AuditEntry[] = await desk.store.access.audit({
        ...(req.env === undefined ? {} : { env: req.env }),
        ...(req.user === undefined ? {} : { actor: req.user }),
        ...(req.since === undefined ? {} : { since: req.since }),
        limit: Math.min(req.limit ?? 100, 10_000),
      });
      return { entries };
    },
    watch: (req): ResultOf['watch'] => {
      const rev = desk.state.rev(req.env);
      if (rev === undefined) throw new RequestError(WireError.ENV_NOT_FOUND, `environment ${req.env} does not exist`);
      return { env: req.env, rev };
    },
    unwatch: (req) => ({ done: `stopped watching ${req.env}` }),
  });
}

/** A new account identity (AccountRecord.uid). */
export function newUid(): string {
  return randomBytes(12).toString('hex');
}

function checkVerifier(v: VerifierFields, min: number, max: number): VerifierFields {
  const ok = (b64: string, bytes: number): boolean => b64.length <= 64 && Buffer.from(b64, 'base64').length === bytes;
  if (v.iterations < min || v.iterations > max || !ok(v.storedKey, 32) || !ok(v.serverKey, 32) || v.salt.length > 64 || Buffer.from(v.salt, 'base64').length < 8) {
    throw new RequestError(WireError.BAD_REQUEST, `invalid verifier: ${min === max ? `${min} iteration` : `${min} to ${max} iterations`}, a salt of 8 bytes or more, 32-byte keys`);
  }
  return { salt: v.salt, iterations: v.iterations, storedKey: v.storedKey, serverKey: v.serverKey };
}
