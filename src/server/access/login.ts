import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Challenge, Hello, Role, Welcome } from '../../protocol/index.js';
import { MessageType, PROTOCOL_VERSION, ProtocolError, WireError } from '../../protocol/index.js';
import { checkProof, decoyVerifier, type AuthContext, type Verifier } from '../../security/scram.js';
import { channelBinding } from '../../security/tls.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import type { AuditRecord } from '../store/types.js';
import type { CredentialBook } from './book.js';
import type { LoginAttempt, LoginGate } from './throttle.js';

/** Who a session acts as, once it has logged in. */
export type Principal =
  /** `uid`: the account's identity when it logged in (AccountRecord.uid); its requests are checked against it. */
  | { kind: 'user'; name: string; uid: string; role: string; envs: readonly string[] }
  | { kind: 'agent'; name: string; id: string; envs: readonly string[] }
  /** Another server of the cluster: it proved it holds the cluster's secret. `name` is the server id it gave. */
  | { kind: 'peer'; name: string; envs: readonly string[] };

/** What the logins of one server process share. */
export interface LoginContext {
  book(): CredentialBook;
  /** The cluster's secret for decoy challenges (the same on every server of a store). */
  decoySecret: Buffer;
  /** The iteration count of new accounts, also given for names that do not exist. */
  passwordIterations: number;
  /** Whether a login may be checked now (failed logins make the next ones wait). */
  throttle: LoginGate;
  audit(record: AuditRecord): void;
  /** On a peer port: the verifier of the cluster's secret, the one credential of a peer login. */
  peerVerifier?: Verifier;
}

/** The user name of every peer login (the secret is the cluster's, not a person's). */
export const PEER_USER = 'cluster';

const FAILED = 'login failed: unknown name or wrong secret';

/** The lengths a hello's `user` and `nonce` may have, in characters (docs/protocol.md, Hello). */
const USER_MAX = 128;
const NONCE_MIN = 16;
const NONCE_MAX = 128;

/** The user and nonce a hello starts its login with; AUTH_FAILED, saying which is missing or of what wrong length, otherwise. */
function helloLogin(hello: Hello): { user: string; nonce: string } {
  const { user, nonce } = hello;
  if (user === undefined || user.length === 0) throw new ProtocolError(WireError.AUTH_FAILED, 'a login needs a user (account name or token id) in the hello');
  if (user.length > USER_MAX) throw new ProtocolError(WireError.AUTH_FAILED, `the hello's user is ${user.length} characters long: at most ${USER_MAX}`);
  if (nonce === undefined) throw new ProtocolError(WireError.AUTH_FAILED, 'a login needs a nonce in the hello');
  if (nonce.length < NONCE_MIN || nonce.length > NONCE_MAX) {
    throw new ProtocolError(WireError.AUTH_FAILED, `the hello's nonce is ${nonce.length} characters long: a nonce is ${NONCE_MIN} to ${NONCE_MAX} characters`);
  }
  return { user, nonce };
}

/**
 * The server's side of one SCRAM login. Unknown names get a challenge that
 * looks like a real one (a decoy verifier: same salt every time), so a login
 * never tells whether a name exists, and fail the same way as a wrong
 * password. A proof is checked only once the throttle admits it: one that
 * may not be checked now is answered at once with THROTTLED and how long to
 * wait. Failures are counted there and audited.
 */
export class LoginExchange {
  private readonly ctx: LoginContext;
  private readonly role: 'agent' | 'admin' | 'peer';
  private readonly user: string;
  private readonly addr: string;
  private readonly sourceKey: string;
  private readonly auth: AuthContext;
  private readonly verifier: Verifier;
  private readonly known: Principal | undefined;

  constructor(ctx: LoginContext, hello: Hello, addr: string, sourceKey: string, channelBinding: string) {
    if (hello.role !== 'agent' && hello.role !== 'admin' && hello.role !== 'peer') throw new Error(`no login for role ${hello.role}`);
    const { user, nonce } = helloLogin(hello);
    this.ctx = ctx;
    this.role = hello.role;
    this.user = user;
    this.addr = addr;
    this.sourceKey = sourceKey;
    const book = ctx.book();
    let verifier: Verifier | undefined;
    if (this.role === 'admin') {
      const account = book.account(this.user);
      if (account !== undefined) {
        verifier = account.verifier;
        this.known = { kind: 'user', name: account.name, uid: account.uid, role: account.role, envs: account.envs };
      }
    } else if (this.role === 'peer') {
      if (this.user === PEER_USER && ctx.peerVerifier !== undefined) {
        verifier = ctx.peerVerifier;
        this.known = { kind: 'peer', name: hello.id.slice(0, 255), envs: [] };
      }
    } else {
      const token = book.token(this.user);
      if (token !== undefined) {
        verifier = token.verifier;
        this.known = { kind: 'agent', name: token.name, id: token.id, envs: token.envs };
      }
    }
    this.verifier = verifier ?? decoyVerifier(`${this.role}:${this.user}`, ctx.decoySecret, this.role === 'admin' ? ctx.passwordIterations : TOKEN_ITERATIONS);
    this.auth = {
      role: this.role,
      user: this.user,
      clientNonce: nonce,
      nonce: nonce + randomBytes(18).toString('base64'),
      salt: this.verifier.salt,
      iterations: this.verifier.iterations,
      channelBinding,
    };
  }

  /**
   * What the throttle counts this attempt under: an account name with its
   * source address; a token or a peer by its source address alone (a token
   * id is public and its secret cannot be guessed; every peer logs in as one
   * name).
   */
  private get attempt(): LoginAttempt {
    return this.role === 'admin' ? { source: this.sourceKey, name: this.user } : { source: this.sourceKey };
  }

  challenge(): Challenge {
    return { t: MessageType.Challenge, nonce: this.auth.nonce, salt: this.auth.salt, iterations: this.auth.iterations };
  }

  /**
   * Checks the proof once the throttle admits it: the principal and the
   * Welcome to send; a ProtocolError(THROTTLED) with how long to wait when it
   * may not be checked now; a ProtocolError(AUTH_FAILED) after recording the
   * failure. Admission, check and outcome follow each other at once, so the
   * throttle counts what is in flight for a moment only.
   */
  async finish(proof: string): Promise<{ principal: Principal; welcome: Welcome }> {
    const admission = await this.ctx.throttle.admit(this.attempt);
    if (!admission.admitted) throw new ProtocolError(WireError.THROTTLED, admission.message, { retryMs: admission.retryMs });
    const settle = (outcome: 'ok' | 'failed'): void => this.ctx.throttle.settle(admission.ticket, outcome);
    const signature = this.known === undefined ? undefined : checkProof(this.verifier, this.auth, proof);
    const action = this.role === 'admin' ? 'login' : this.role === 'peer' ? 'peer-login' : 'agent-login';
    if (signature === undefined || this.known === undefined) {
      settle('failed');
      this.ctx.audit({
        time: Date.now(), actor: this.user.slice(0, 128), addr: this.addr, action, env: '', result: 'failed', code: 'AUTH_FAILED',
        detail: this.known === undefined ? `no ${this.role === 'admin' ? 'account' : this.role === 'peer' ? 'peer credential' : 'token'} of that name` : 'wrong proof',
      });
      throw new ProtocolError(WireError.AUTH_FAILED, FAILED);
    }
    settle('ok');
    if (this.role === 'admin') {
      this.ctx.audit({ time: Date.now(), actor: this.known.name, addr: this.addr, action, env: '', result: 'ok', code: '', detail: 'logged in' });
    }
    const p = this.known;
    return {
      principal: p,
      welcome: {
        t: MessageType.Welcome, signature, account: p.name, role: p.kind === 'user' ? p.role : p.kind, envs: [...p.envs],
        ...(p.kind === 'user' ? { iterations: this.ctx.passwordIterations } : {}),
      },
    };
  }
}

/**
 * The login step of one connection, the same on the client port and the
 * peer port: the client's hello (sent once, in this protocol version, in a
 * role the port serves), the server's challenge, then the client's proof.
 * Over TLS the login is bound to the TLS session.
 */
export class LoginStep {
  private readonly ctx: LoginContext;
  private readonly socket: Duplex;
  private readonly addr: string;
  private readonly source: string;
  private exchange: LoginExchange | undefined;
  private said = false;

  /** `source`: the source address (an IPv6 /64) the throttle counts the attempt under. */
  constructor(ctx: LoginContext, socket: Duplex, addr: string, source: string) {
    this.ctx = ctx;
    this.socket = socket;
    this.addr = addr;
    this.source = source;
  }

  /** The challenge to answer `hello` with; `serves` throws (UNEXPECTED_MESSAGE) for a role this port does not serve. */
  hello(hello: Hello, serves: (role: Role) => void): Challenge {
    if (this.said) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'hello sent twice');
    this.said = true;
    if (hello.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(WireError.VERSION_MISMATCH, `protocol version ${hello.v} is not supported (server speaks ${PROTOCOL_VERSION})`);
    }
    serves(hello.role);
    this.exchange = new LoginExchange(this.ctx, hello, this.addr, this.source, channelBinding(this.socket));
    return this.exchange.challenge();
  }

  /** Checks the proof (see LoginExchange.finish); one proof per hello. */
  proof(proof: string): Promise<{ principal: Principal; welcome: Welcome }> {
    const exchange = this.exchange;
    if (exchange === undefined) throw new ProtocolError(WireError.UNEXPECTED_MESSAGE, 'a proof before the hello');
    this.exchange = undefined;
    return exchange.finish(proof);
  }
}
