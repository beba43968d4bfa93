/** The one way work is raced against a deadline (milliseconds since the epoch). */

/** Thrown when the deadline came first. */
export class DeadlinePassed extends Error {
  constructor() {
    super('the time for this write ran out');
  }
}

/**
 * What `work` gives if it settles by `deadline`; otherwise DeadlinePassed, and
 * `late` (if given) receives the work that runs on unheeded, to release what
 * it holds when it settles.
 */
export async function beforeDeadline<T>(work: Promise<T>, deadline: number, late?: (work: Promise<T>) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlinePassed()), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work, expired]);
  } catch (err) {
    if (err instanceof DeadlinePassed) late?.(work);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
