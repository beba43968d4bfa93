/** A store URL fit for a message or a log line: the user and password between // and @ become ***. */
export function redactUrl(spec: string): string {
  return spec.replace(/\/\/[^@/]*@/, '//***@');
}
