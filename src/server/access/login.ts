import { randomBytes } from 'node:crypto';
import type { Challenge, Hello, Welcome } from '../../protocol/index.js';
import { MessageType, ProtocolError, WireError } from '../../protocol/index.js';
import { checkProof, decoyVerifier, type AuthContext, type Verifier } from '../../security/scram.js';
import { TOKEN_ITERATIONS } from '../../security/token.js';
import type { AuditRecord } from '../store/types.js';
import type { CredentialBook } from './book.js';
import type { LoginThrottle } from './throttle.js';

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
  throttle: LoginThrottle;
  audit(record: AuditRecord): void;
  /** On a peer port: the verifier of the cluster's secret, the one credential of a peer login. */
  peerVerifier?: Verifier;
}

/** The user name of every peer login (the secret is the cluster's, not a person's). */
export const PEER_USER = 'cluster';

const FAILED = 'login failed: unknown name or wrong secret';

/**
 * The server's side of one SCRAM login. Unknown names get a challenge that
 * looks like a real one (a decoy verifier: same salt every time), so a login
 * never tells whether a name exists, and fail the same way as a wrong
 * password. Failures wait (the throttle) and are audited.
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
    if (hello.user === undefined || hello.nonce === undefined || hello.user.length === 0 || hello.user.length > 128 || hello.nonce.length < 16 || hello.nonce.length > 128) {
      throw new ProtocolError(WireError.AUTH_FAILED, 'a login needs a user (account name or token id) and a nonce in the hello');
    }
    this.ctx = ctx;
    this.role = hello.role;
    this.user = hello.user;
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
      clientNonce: hello.nonce,
      nonce: hello.nonce + randomBytes(18).toString('base64'),
      salt: this.verifier.salt,
      iterations: this.verifier.iterations,
      channelBinding,
    };
  }

  /**
   * What failures of this login are counted under besides the source
   * address: the name tried — except for peers, who all log in as one name:
   * counting that would let anyone slow every server's links down.
   */
  private get throttleName(): string {
    return this.role === 'peer' ? `peer@${this.sourceKey}` : `${this.role}:${this.user}`;
  }

  /** How long to wait before challenging (failed logins slow the next ones down). */
  get delayMs(): number {
    return this.ctx.throttle.delay(this.throttleName, this.sourceKey);
  }

  challenge(): Challenge {
    return { t: MessageType.Challenge, nonce: this.auth.nonce, salt: this.auth.salt, iterations: this.auth.iterations };
  }

  /**
   * Sends the challenge once the throttle's delay (if any) has passed; the
   * session holds its reading on the promise meanwhile, so nothing can be
   * piled up behind a slowed-down login.
   */
  challengeWhenDue(send: (challenge: Challenge) => void): Promise<void> {
    const delay = this.delayMs;
    return new Promise((resolve) => {
      const go = (): void => {
        send(this.challenge());
        resolve();
      };
      if (delay === 0) go();
      else setTimeout(go, delay).unref();
    });
  }

  /** Checks the proof: the principal and the Welcome to send, or a ProtocolError(AUTH_FAILED) after recording the failure. */
  finish(proof: string): { principal: Principal; welcome: Welcome } {
    const signature = this.known === undefined ? undefined : checkProof(this.verifier, this.auth, proof);
    const action = this.role === 'admin' ? 'login' : this.role === 'peer' ? 'peer-login' : 'agent-login';
    if (signature === undefined || this.known === undefined) {
      this.ctx.throttle.failed(this.throttleName, this.sourceKey);
      this.ctx.audit({
        time: Date.now(), actor: this.user.slice(0, 128), addr: this.addr, action, env: '', result: 'failed', code: 'AUTH_FAILED',
        detail: this.known === undefined ? `no ${this.role === 'admin' ? 'account' : this.role === 'peer' ? 'peer credential' : 'token'} of that name` : 'wrong proof',
      });
      throw new ProtocolError(WireError.AUTH_FAILED, FAILED);
    }
    this.ctx.throttle.succeeded(this.throttleName, this.sourceKey);
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
