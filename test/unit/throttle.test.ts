/**
 * The login throttle's rules, with a clock of the test's own and no socket:
 * the pair is steep, the address bounds many names, a name across addresses
 * only makes an attempt wait (and never beyond its cap), a token is counted
 * by address only, attempts in flight hold their place, and a success
 * forgets only its own pair.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginThrottle, throttleRules, type Admission, type LoginAttempt } from '../../src/server/access/throttle.js';
import { LIMIT_DEFAULTS } from '../../src/server/limits.js';

const rules = throttleRules(LIMIT_DEFAULTS);

function throttle(): { t: LoginThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { t: new LoginThrottle(rules, () => clock.now), clock };
}

/** Admits and settles at once; the admission (with its ticket spent). */
function attempt(t: LoginThrottle, a: LoginAttempt, outcome: 'ok' | 'failed'): Admission {
  const admission = t.admit(a);
  if (admission.admitted) t.settle(admission.ticket, outcome);
  return admission;
}

const refusedFor = (a: Admission): number => (a.admitted ? 0 : a.retryMs);

describe('the login throttle', () => {
  test('the pair is steep: after its burst, one attempt an interval, told how long to wait', () => {
    const { t, clock } = throttle();
    const guess = { source: '10.0.0.1', name: 'vic' };
    for (let i = 0; i < rules.pair.burst; i++) assert.ok(attempt(t, guess, 'failed').admitted, `failure ${i + 1} is checked`);
    const refused = t.admit(guess);
    assert.equal(refused.admitted, false);
    assert.ok(!refused.admitted && refused.retryMs > rules.pair.intervalMs - 100 && refused.retryMs <= rules.pair.intervalMs);
    assert.match(!refused.admitted ? refused.message : '', /too many failed logins of this name from this address: try again in 60 s/);
    clock.now += refusedFor(refused);
    assert.ok(attempt(t, guess, 'failed').admitted, 'one more once one has leaked out');
    assert.equal(t.admit(guess).admitted, false, 'and then none again');
  });

  test('the owner from another address is checked at once, whatever the pair of the attacker holds', () => {
    const { t } = throttle();
    for (let i = 0; i < 50; i++) attempt(t, { source: '10.0.0.1', name: 'vic' }, 'failed');
    assert.ok(t.admit({ source: '10.0.0.2', name: 'vic' }).admitted);
  });

  test('a name failed from many addresses makes an attempt wait, never beyond its cap, and a pass lets it in then', () => {
    const { t, clock } = throttle();
    // Four failures from each of 100 addresses: no pair fills, the name does.
    for (let a = 0; a < 100; a++) for (let i = 0; i < 4; i++) attempt(t, { source: `10.1.0.${a}`, name: 'vic' }, 'failed');
    const owner = { source: '192.0.2.7', name: 'vic' };
    const told = t.admit(owner);
    assert.equal(told.admitted, false);
    assert.ok(refusedFor(told) <= rules.name.waitMs, `a wait of ${refusedFor(told)} ms`);
    assert.match(!told.admitted ? told.message : '', /from many addresses/);
    assert.equal(t.admit(owner).admitted, false, 'coming back early does not help');
    clock.now += refusedFor(told);
    // Others keep failing meanwhile: the pass still lets the owner in.
    for (let a = 100; a < 110; a++) attempt(t, { source: `10.1.0.${a}`, name: 'vic' }, 'failed');
    assert.ok(attempt(t, owner, 'ok').admitted, 'checked after its wait');
  });

  test('a parallel burst gets only as many checks as the bucket has room for', () => {
    const { t } = throttle();
    const guess = { source: '10.0.0.3', name: 'ed' };
    for (let i = 0; i < 2; i++) attempt(t, guess, 'failed');
    const burst = Array.from({ length: 60 }, () => t.admit(guess));
    const admitted = burst.filter((a) => a.admitted);
    assert.equal(admitted.length, rules.pair.burst - 2);
    assert.ok(burst.filter((a) => !a.admitted).every((a) => !a.admitted && /at once/.test(a.message) && a.retryMs >= 200 && a.retryMs <= 400));
    for (const a of admitted) if (a.admitted) t.settle(a.ticket, 'failed');
    assert.ok(refusedFor(t.admit(guess)) > 50_000, 'then it waits for its failures to leak out');
  });

  test('a success forgets its own pair, never its address: interleaving a valid login resets nothing', () => {
    const { t } = throttle();
    const source = '10.0.0.4';
    let checked = 0;
    for (let i = 0; i < 200; i++) {
      assert.ok(attempt(t, { source, name: 'mallory' }, 'ok').admitted || i >= rules.address.burst);
      if (attempt(t, { source, name: `guess-${i}` }, 'failed').admitted) checked++;
    }
    assert.equal(checked, rules.address.burst, 'the address bucket holds its burst, successes or not');
    // The owner's typing mistakes are forgotten once they get in.
    const owner = { source: '10.0.0.5', name: 'vic' };
    for (let i = 0; i < rules.pair.burst - 1; i++) attempt(t, owner, 'failed');
    attempt(t, owner, 'ok');
    for (let i = 0; i < rules.pair.burst - 1; i++) assert.ok(attempt(t, owner, 'failed').admitted);
  });

  test('token and peer logins are counted by address only: naming a token id elsewhere costs its agents nothing', () => {
    const { t } = throttle();
    for (let i = 0; i < 1000; i++) attempt(t, { source: '10.0.0.6' }, 'failed');
    assert.equal(t.admit({ source: '10.0.0.6' }).admitted, false, 'the failing address is held back');
    assert.ok(t.admit({ source: '10.0.0.7' }).admitted, 'any other address is not');
    assert.ok(t.admit({ source: '10.0.0.6', name: 'vic' }).admitted, 'and password logins are counted apart');
  });

  test('over a window, failures stay within burst + window / interval', () => {
    const { t, clock } = throttle();
    let failures = 0;
    const start = clock.now;
    // An attacker retrying every 100 ms for ten minutes, doing as told or not.
    while (clock.now - start < 600_000) {
      if (attempt(t, { source: '10.0.0.8', name: 'vic' }, 'failed').admitted) failures++;
      clock.now += 100;
    }
    assert.ok(failures <= rules.pair.burst + Math.ceil(600_000 / rules.pair.intervalMs), `${failures} failures`);
    assert.ok(failures >= rules.pair.burst + 9, `${failures} failures: the bucket does leak`);
  });

  test('an attempt never settled (its worker died) is given back after a while; buckets empty as they leak', () => {
    const { t, clock } = throttle();
    const guess = { source: '10.0.0.9', name: 'vic' };
    for (let i = 0; i < rules.pair.burst; i++) assert.ok(t.admit(guess).admitted);
    assert.equal(t.admit(guess).admitted, false);
    clock.now += 121_000;
    assert.ok(t.admit(guess).admitted);
    const { t: fresh, clock: c2 } = throttle();
    attempt(fresh, guess, 'failed');
    assert.ok(fresh.size > 0);
    c2.now += rules.address.intervalMs + rules.pair.intervalMs;
    attempt(fresh, { source: '10.9.9.9' }, 'ok');
    fresh.admit(guess);
    assert.ok(fresh.size <= 3);
  });
});
