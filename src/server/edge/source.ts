/**
 * The key a source address is counted under: an IPv4 address, or the /64
 * network of an IPv6 one (a host is given a /64, so its addresses count as one).
 */
export function sourceKey(host: string): string {
  if (!host.includes(':') || host.startsWith('::ffff:')) return host.replace(/^::ffff:/, '');
  const [head = '', tail = ''] = host.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = host.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** The source key of a peer named HOST:PORT (an IPv6 host unbracketed, as a socket gives it). */
export function sourceOf(addr: string): string {
  const colon = addr.lastIndexOf(':');
  return sourceKey(colon > 0 ? addr.slice(0, colon) : addr);
}
