/**
 * Parent lists: the order an environment's layers merge in, the refusals of a proposed list,
 * and who is built on whom. Pure and iterative: every walk keeps its own stack and a visited set,
 * so a cyclic or 10,000-deep map (which the checks below never let into a store, but a hostile or
 * damaged one may hold) ends without overflowing the call stack.
 */

/** env → its parents, lowest first. An environment missing from the map has no parents. */
export type ParentMap = ReadonlyMap<string, readonly string[]>;

export const MAX_PARENTS = 16;
/** The longest parent path allowed, in edges: env → p1 → … → p8 is 8 deep. */
export const MAX_CHAIN_DEPTH = 8;

const ARROW = ' \u2192 ';

function parentsIn(parentsOf: ParentMap, env: string): readonly string[] {
  return parentsOf.get(env) ?? [];
}

/**
 * The layers of `env` in merge order, lowest first, ending with `env` itself.
 *
 * A depth-first, left-to-right walk of the parent lists that places an environment after all of
 * its parents (post-order). An environment reached a second time, through another path, is not
 * placed again: it stays at its first position. For ENV with parents [A, B] this is flatten(A),
 * then flatten(B) without the environments already listed, then ENV. Every environment therefore
 * comes after all of its own parents, whichever path reached it first.
 *
 * A parent the map does not know is a layer with no parents of its own. On a cyclic map the edge
 * that closes a cycle is skipped, so the walk ends (checkParents refuses such maps before a store).
 */
export function flatten(env: string, parentsOf: ParentMap): string[] {
  const out: string[] = [];
  const reached = new Set<string>([env]);
  const stack: { env: string; next: number }[] = [{ env, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const parents = parentsIn(parentsOf, top.env);
    if (top.next < parents.length) {
      const parent = parents[top.next++];
      if (!reached.has(parent)) {
        reached.add(parent);
        stack.push({ env: parent, next: 0 });
      }
    } else {
      stack.pop();
      out.push(top.env);
    }
  }
  return out;
}

/** parent → the environments whose lists name it, in the map's order. */
function childIndex(parentsOf: ParentMap): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const [env, parents] of parentsOf) {
    for (const parent of new Set(parents)) {
      const list = children.get(parent);
      if (list === undefined) children.set(parent, [env]);
      else list.push(env);
    }
  }
  return children;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every environment built on `env`, directly or through a chain, each once, sorted by name (code
 * unit order). Sorted rather than topological because each dependent's view is computed from the
 * own entries of its flattened layers, never from another dependent's view, so no order between
 * them is needed; a sort by name is independent of how the map was built, reads well in a plan,
 * and gives the store one fixed order to lock rows in.
 */
export function dependentsOf(env: string, parentsOf: ParentMap): string[] {
  const children = childIndex(parentsOf);
  const found = new Set<string>([env]);
  const queue = [env];
  for (let i = 0; i < queue.length; i++) {
    for (const child of children.get(queue[i]) ?? []) {
      if (!found.has(child)) {
        found.add(child);
        queue.push(child);
      }
    }
  }
  found.delete(env);
  return [...found].sort(byName);
}

/** The environments whose own parent list names `env`, sorted by name: what `env del` must refuse over. */
export function blockersOfDelete(env: string, parentsOf: ParentMap): string[] {
  const out: string[] = [];
  for (const [other, parents] of parentsOf) {
    if (other !== env && parents.includes(env)) out.push(other);
  }
  return out.sort(byName);
}

export type ParentRefusal =
  | { kind: 'too-many'; count: number; message: string }
  | { kind: 'self'; message: string }
  | { kind: 'twice'; parent: string; message: string }
  | { kind: 'missing'; parent: string; message: string }
  /** `cycle` starts and ends with the same environment, each step from a child to its parent. */
  | { kind: 'cycle'; cycle: string[]; message: string }
  /** `chain` runs from the lowest dependent to the highest parent; more than MAX_CHAIN_DEPTH edges. */
  | { kind: 'too-deep'; chain: string[]; message: string };

export type ParentCheck = { ok: true } | { ok: false; refusal: ParentRefusal };

function refuse(refusal: ParentRefusal): ParentCheck {
  return { ok: false, refusal };
}

/**
 * Whether `env` may take `proposed` as its parent list, given everyone else's lists in `parentsOf`
 * (env's own entry there is ignored). The first refusal in this order is returned, cheapest first:
 * more than MAX_PARENTS, env itself, a parent listed twice, a parent that does not exist, a cycle,
 * a chain more than MAX_CHAIN_DEPTH deep.
 *
 * Depth: an environment is at depth 0, its parents at 1, their parents at 2; the depth of a chain
 * is its number of parent steps. Changing env's list changes the chains of env's dependents too,
 * so the check takes the longest chain through env: from its deepest dependent down to its highest
 * ancestor.
 */
export function checkParents(
  env: string,
  proposed: readonly string[],
  parentsOf: ParentMap,
  exists: (env: string) => boolean,
): ParentCheck {
  if (proposed.length > MAX_PARENTS) {
    return refuse({
      kind: 'too-many',
      count: proposed.length,
      message: `too many parents for ${JSON.stringify(env)}: ${proposed.length}, at most ${MAX_PARENTS}`,
    });
  }
  if (proposed.includes(env)) {
    return refuse({ kind: 'self', message: `${JSON.stringify(env)} cannot be a parent of itself` });
  }
  const seen = new Set<string>();
  for (const parent of proposed) {
    if (seen.has(parent)) {
      return refuse({ kind: 'twice', parent, message: `parent ${JSON.stringify(parent)} is listed twice` });
    }
    seen.add(parent);
  }
  for (const parent of proposed) {
    if (!exists(parent)) {
      return refuse({ kind: 'missing', parent, message: `parent ${JSON.stringify(parent)} does not exist` });
    }
  }

  const cycle = cycleThrough(env, proposed, parentsOf);
  if (cycle !== undefined) return refuse(cycleRefusal(cycle));

  const effective = new Map(parentsOf).set(env, proposed);
  const up = longestPath(env, (e) => parentsIn(effective, e));
  if (up.kind === 'cycle') return refuse(cycleRefusal(up.path));
  const children = childIndex(effective);
  const down = longestPath(env, (e) => children.get(e) ?? []);
  if (down.kind === 'cycle') return refuse(cycleRefusal(down.path.slice().reverse()));
  if (up.path.length - 1 + (down.path.length - 1) > MAX_CHAIN_DEPTH) {
    const chain = [...down.path.slice(1).reverse(), ...up.path];
    return refuse({
      kind: 'too-deep',
      chain,
      message: `chain more than ${MAX_CHAIN_DEPTH} deep: ${chain.join(ARROW)}`,
    });
  }
  return { ok: true };
}

function cycleRefusal(cycle: string[]): ParentRefusal {
  return { kind: 'cycle', cycle, message: `cycle: ${cycle.join(ARROW)}` };
}

/**
 * The shortest cycle that `proposed` would close through env (env → … → env), found breadth first
 * from the proposed parents in their order, or undefined. env's present list is never followed.
 */
function cycleThrough(env: string, proposed: readonly string[], parentsOf: ParentMap): string[] | undefined {
  const cameFrom = new Map<string, string>();
  const queue: string[] = [];
  for (const parent of proposed) {
    if (!cameFrom.has(parent)) {
      cameFrom.set(parent, env);
      queue.push(parent);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i];
    for (const parent of parentsIn(parentsOf, at)) {
      if (parent === env) {
        const path = [env];
        for (let step: string | undefined = at; step !== undefined && step !== env; step = cameFrom.get(step)) {
          path.push(step);
        }
        return [env, ...path.slice(1).reverse(), env];
      }
      if (!cameFrom.has(parent)) {
        cameFrom.set(parent, at);
        queue.push(parent);
      }
    }
  }
  return undefined;
}

type PathResult = { kind: 'ok' | 'deep' | 'cycle'; path: string[] };

/**
 * The longest path from `start` along `next`, as a list of environments beginning with `start`.
 * Stops as soon as the path is longer than MAX_CHAIN_DEPTH edges ('deep', that path as witness) or
 * meets an environment already on it ('cycle', the cycle as witness), so the work is bounded on
 * any map. Heights are memoised: a diamond is walked once, not once per path.
 */
function longestPath(start: string, next: (env: string) => readonly string[]): PathResult {
  const height = new Map<string, number>();
  const above = new Map<string, string>();
  const onPath = new Set<string>([start]);
  const stack: { env: string; next: number }[] = [{ env: start, next: 0 }];
  // The path on the stack up to `from`, then the memoised longest path onwards from `from`.
  const witness = (prefix: string[], from: string): string[] => {
    const path = [...prefix, from];
    for (let e = above.get(from); e !== undefined; e = above.get(e)) path.push(e);
    return path;
  };
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const nexts = next(top.env);
    if (top.next < nexts.length) {
      const env = nexts[top.next++];
      if (onPath.has(env)) {
        const path = stack.map((s) => s.env);
        return { kind: 'cycle', path: [...path.slice(path.indexOf(env)), env] };
      }
      if (height.has(env)) continue;
      if (stack.length > MAX_CHAIN_DEPTH) return { kind: 'deep', path: [...stack.map((s) => s.env), env] };
      onPath.add(env);
      stack.push({ env, next: 0 });
      continue;
    }
    let best = 0;
    let bestNext: string | undefined;
    for (const env of nexts) {
      const h = (height.get(env) ?? 0) + 1;
      if (h > best) {
        best = h;
        bestNext = env;
      }
    }
    height.set(top.env, best);
    if (bestNext !== undefined) above.set(top.env, bestNext);
    if (stack.length - 1 + best > MAX_CHAIN_DEPTH) {
      return { kind: 'deep', path: witness(stack.slice(0, -1).map((s) => s.env), top.env) };
    }
    stack.pop();
    onPath.delete(top.env);
  }
  return { kind: 'ok', path: witness([], start) };
}
