import { MessageType, PROTOCOL_VERSION, type Challenge, type Message, type Welcome } from '../../src/protocol/index.js';
import { clientProof, newNonce, sameSignature } from '../../src/security/scram.js';
import { parseToken } from '../../src/security/token.js';

/**
 * The client's side of a login for tests that speak the protocol by hand:
 * the hello to send, the proof answering the server's challenge, and the
 * check of the server's signature in its Welcome.
 */
export class ScramClient {
  readonly role: 'agent' | 'admin' | 'peer';
  readonly user: string;
  private readonly secret: string;
  private readonly nonce = newNonce();
  private expected = '';

  constructor(role: 'agent' | 'admin' | 'peer', user: string, secret: string) {
    this.role = role;
    this.user = user;
    this.secret = secret;
  }

  /** For an agent token `vta_<id>_<secret>`. */
  static agent(token: string): ScramClient {
    const parts = parseToken(token);
    if (parts === undefined) throw new Error(`not a token: ${token}`);
    return new ScramClient('agent', parts.id, parts.secret);
  }

  hello(id = 'test-client'): Message {
    return { t: MessageType.Hello, v: PROTOCOL_VERSION, role: this.role, id, user: this.user, nonce: this.nonce };
  }

  proof(challenge: Challenge, channelBinding = ''): Message {
    const { proof, expectedSignature } = clientProof(this.secret, {
      role: this.role, user: this.user, clientNonce: this.nonce, nonce: challenge.nonce, salt: challenge.salt,
      iterations: challenge.iterations, channelBinding,
    });
    this.expected = expectedSignature;
    return { t: MessageType.Proof, proof };
  }

  /** Whether the Welcome's signature shows the server holds the verifier. */
  verify(welcome: Welcome): boolean {
    return sameSignature(welcome.signature, this.expected);
  }
}
