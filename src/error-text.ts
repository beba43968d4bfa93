/** The text of anything thrown: an Error's message, or the thrown value as a string. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
