/**
 * Tracing to stderr, switched on by VITEFA_TRACE: a comma-separated list of
 * areas (conn, server, agent, admin, store, fanout) or `*` for all.
 */
const setting = (process.env.VITEFA_TRACE ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const all = setting.includes('*');
const areas = new Set(setting);

export function tracing(area: string): boolean {
  return all || areas.has(area);
}

export function trace(area: string, message: string): void {
  if (all || areas.has(area)) process.stderr.write(`[${new Date().toISOString()}] ${area}: ${message}\n`);
}
