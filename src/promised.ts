/**
 * What an async function without an await gives, for functions that must
 * return a promise: `body` runs now (synchronously, as an async function's
 * body does), its result is the promise's value, and a throw from it rejects
 * the promise instead of reaching the caller.
 */
export function promised<T>(body: () => T): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(body());
  });
}
