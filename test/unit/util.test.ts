import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputCapture } from '../../src/core/output.js';
import { formatDurationMs, parseDurationMs } from '../../src/util/duration.js';
import { unescapeMountField } from '../../src/util/fs.js';
import { newId } from '../../src/util/ids.js';
import { KeyedMutex } from '../../src/util/keyed-mutex.js';
import { UndoStack } from '../../src/util/undo.js';

describe('durations', () => {
  it('parses units, combinations and bare seconds', () => {
    assert.equal(parseDurationMs('500ms'), 500);
    assert.equal(parseDurationMs('30s'), 30_000);
    assert.equal(parseDurationMs('10'), 10_000);
    assert.equal(parseDurationMs('1h30m'), 5_400_000);
    assert.equal(parseDurationMs('7d'), 604_800_000);
    assert.equal(parseDurationMs('1.5s'), 1500);
  });
  it('rejects what is not a duration', () => {
    for (const bad of ['', 'soon', '10x', '1h nonsense', 'h', '-5s']) assert.equal(parseDurationMs(bad), null, bad);
  });
  it('formats for people', () => {
    assert.equal(formatDurationMs(250), '250ms');
    assert.equal(formatDurationMs(45_000), '45s');
    assert.equal(formatDurationMs(3_600_000), '60m');
    assert.equal(formatDurationMs(5 * 86_400_000), '5d');
  });
});

describe('OutputCapture', () => {
  it('keeps each stream up to the cap, forwards only what it keeps, flags truncation', () => {
    const live: string[] = [];
    const c = new OutputCapture(5, { onStdout: (b) => live.push(b.toString()) });
    c.stdout(Buffer.from('abc'));
    c.stdout(Buffer.from('defgh'));
    c.stdout(Buffer.from('ij'));
    c.stderr(Buffer.from('12345'));
    assert.deepEqual(c.result(), { stdout: 'abcde', stderr: '12345', truncated: true });
    assert.deepEqual(live, ['abc', 'de']);
  });
  it('is not truncated at exactly the cap', () => {
    const c = new OutputCapture(3, {});
    c.stdout(Buffer.from('abc'));
    assert.equal(c.result().truncated, false);
  });
  it('a zero cap keeps nothing', () => {
    const c = new OutputCapture(0, {});
    c.stdout(Buffer.from('x'));
    assert.deepEqual(c.result(), { stdout: '', stderr: '', truncated: true });
  });
});

describe('KeyedMutex', () => {
  it('runs work for one key one at a time, other keys in parallel', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    const slow = (tag: string, ms: number) => async () => {
      order.push(`start ${tag}`);
      await new Promise((r) => setTimeout(r, ms));
      order.push(`end ${tag}`);
    };
    await Promise.all([m.run('a', slow('a1', 30)), m.run('a', slow('a2', 1)), m.run('b', slow('b1', 1))]);
    assert.ok(order.indexOf('end a1') < order.indexOf('start a2'));
    assert.ok(order.indexOf('start b1') < order.indexOf('end a1'));
  });
  it('keeps going after a failure', async () => {
    const m = new KeyedMutex();
    await assert.rejects(m.run('k', async () => Promise.reject(new Error('boom'))));
    assert.equal(await m.run('k', async () => 42), 42);
  });
});

describe('UndoStack', () => {
  it('undoes newest first and survives a failing undo', async () => {
    const u = new UndoStack();
    const done: string[] = [];
    u.push('one', () => void done.push('one'));
    u.push('two', () => {
      throw new Error('cannot');
    });
    u.push('three', async () => void done.push('three'));
    const logged: string[] = [];
    await u.rollback((m) => logged.push(m));
    assert.deepEqual(done, ['three', 'one']);
    assert.match(logged[0] ?? '', /undoing two failed: cannot/);
  });
});

describe('ids', () => {
  it('are prefixed, lower-case and valid sandbox names once the underscore is swapped', () => {
    const id = newId('sb');
    assert.match(id, /^sb_[a-z2-7]{12}$/);
    assert.notEqual(newId('sb'), id);
  });
});

describe('unescapeMountField', () => {
  it('decodes every octal escape the kernel writes in mountinfo', () => {
    assert.equal(unescapeMountField('/a\\040b\\011c\\012d\\134e'), '/a b\tc\nd\\e');
    assert.equal(unescapeMountField('/plain/path'), '/plain/path');
  });
});
