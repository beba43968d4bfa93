/**
 * A release whose chain value does not follow what this server holds: its
 * history and the store's (or a peer's) disagree. It is not applied.
 */
export class ChainBroken extends Error {
  override readonly name = 'ChainBroken';
  constructor(readonly env: string, readonly rev: number, readonly held: string, readonly expected: string, readonly got: string, message?: string) {
    super(message ?? `the release ${env}@${rev} does not follow this server's history: its chain value is ${got}, but following ${held || '(the start)'} it would be ${expected}`);
  }
}
