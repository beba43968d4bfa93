import type { AccountRecord, Credentials, TokenRecord } from '../store/types.js';

/**
 * The credentials a server checks logins against, as a lookup: accounts by
 * name, agent tokens by id. Plain data (verifiers only), so the primary can
 * hand it to every worker.
 */
export class CredentialBook {
  readonly stamp: number;
  private readonly accounts: Map<string, AccountRecord>;
  private readonly tokens: Map<string, TokenRecord>;
  private readonly tokenNames: Map<string, TokenRecord>;

  constructor(credentials: Credentials) {
    this.stamp = credentials.stamp;
    this.accounts = new Map(credentials.accounts.map((a) => [a.name, a]));
    this.tokens = new Map(credentials.tokens.map((t) => [t.id, t]));
    this.tokenNames = new Map(credentials.tokens.map((t) => [t.name, t]));
  }

  static empty(): CredentialBook {
    return new CredentialBook({ accounts: [], tokens: [], stamp: 0 });
  }

  account(name: string): AccountRecord | undefined {
    return this.accounts.get(name);
  }

  token(id: string): TokenRecord | undefined {
    return this.tokens.get(id);
  }

  tokenNamed(name: string): TokenRecord | undefined {
    return this.tokenNames.get(name);
  }

  get accountList(): AccountRecord[] {
    return [...this.accounts.values()];
  }

  get tokenList(): TokenRecord[] {
    return [...this.tokenNames.values()];
  }

  toCredentials(): Credentials {
    return { accounts: this.accountList, tokens: this.tokenList, stamp: this.stamp };
  }
}
