/** The bound on destroys finishing after their answer: slots, back-pressure, drain. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DetachedDestroys } from '../../src/core/detached-destroys.js';

/** A destroy the test ends when it wants. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('DetachedDestroys', () => {
  it('never has more than max pending: the caller after them waits for a slot, then detaches', async () => {
    const q = new DetachedDestroys(2);
    const gates = [gate(), gate(), gate()];
    await q.start(() => gates[0]!.promise);
    await q.start(() => gates[1]!.promise);
    assert.equal(q.count, 2);
    let begun = false;
    const third = q.start(() => {
      begun = true;
      return gates[2]!.promise;
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(begun, false, 'the third waits: its run has not answered');
    assert.equal(q.count, 2);
    gates[0]!.open();
    await third;
    assert.equal(begun, true);
    assert.equal(q.count, 2);
    gates[1]!.open();
    gates[2]!.open();
    await q.drain();
    assert.equal(q.count, 0);
  });

  it('a begin that throws or declines takes no slot; a failed destroy frees its slot', async () => {
    const q = new DetachedDestroys(1);
    await assert.rejects(q.start(() => {
      throw new Error('no such sandbox');
    }), /no such sandbox/);
    await q.start(() => null);
    assert.equal(q.count, 0);
    await q.start(() => Promise.reject(new Error('crun delete failed')));
    await q.drain();
    assert.equal(q.count, 0);
    let ran = false;
    await q.start(async () => {
      ran = true;
    });
    await q.drain();
    assert.ok(ran);
  });

  it('a burst of callers is served one slot at a time, each begin seeing a free slot', async () => {
    const q = new DetachedDestroys(3);
    let maxSeen = 0;
    const gates = Array.from({ length: 12 }, gate);
    const all = gates.map((g) => q.start(() => {
      maxSeen = Math.max(maxSeen, q.count + 1);
      return g.promise;
    }));
    for (const g of gates) {
      await new Promise((r) => setTimeout(r, 1));
      g.open();
    }
    await Promise.all(all);
    await q.drain();
    assert.equal(maxSeen, 3);
  });
});
