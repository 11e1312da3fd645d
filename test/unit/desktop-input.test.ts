/** The daemon's checks on desktop input: what may reach xdotool's argv, and what is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPoint, checkText, parseKeyCombo } from '../../src/core/desktop-input.js';
import { cookieTokens } from '../../src/net/expose.js';

const screen = { width: 1280, height: 800 };

describe('desktop input checks', () => {
  it('points: inside the screen only, the message names the bound', () => {
    checkPoint(screen, 0, 0);
    checkPoint(screen, 1279, 799);
    assert.throws(() => checkPoint(screen, 1280, 0), /x 1280 is off the screen: it is 1280x800, so x goes from 0 to 1279/);
    assert.throws(() => checkPoint(screen, 0, 800), /y 800 is off the screen/);
  });

  it('keys: a grammar and an allow-list, spelled as xdotool wants', () => {
    assert.equal(parseKeyCombo('ctrl+l'), 'ctrl+l');
    assert.equal(parseKeyCombo('Return'), 'Return');
    assert.equal(parseKeyCombo('enter'), 'Return');
    assert.equal(parseKeyCombo('Control+Shift+t'), 'ctrl+shift+t');
    assert.equal(parseKeyCombo('alt+f4'), 'alt+F4');
    assert.equal(parseKeyCombo('ctrl++'), 'ctrl+plus');
    assert.equal(parseKeyCombo('cmd+pageup'), 'super+Page_Up');
    assert.equal(parseKeyCombo('shift'), 'shift');
    for (const bad of ['ctrl+bogus', 'a b', 'a exec sh', 'ctrl+', '+', 'F25', '--window', 'ctrl+l\n', 'Return;id', 'hyper+a']) {
      assert.throws(() => parseKeyCombo(bad), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT', bad);
    }
  });

  it('text: printable, tab and newline pass; other control characters are refused with where', () => {
    assert.equal(checkText('echo "$(id)" --help\tx\n'), 'echo "$(id)" --help\tx\n');
    assert.equal(checkText('héllo ☃ 日本'), 'héllo ☃ 日本');
    assert.throws(() => checkText('a\u001b[2J'), /U\+001b at offset 1/);
    assert.throws(() => checkText('\u0003'), /U\+0003/);
    assert.throws(() => checkText('x\u007f'), /U\+007f/);
    assert.throws(() => checkText('x\u009b'), /U\+009b/);
    assert.throws(() => checkText('\r'), /U\+000d/);
  });

  it('exposure cookies: only nook_token* names, decoded, bounded', () => {
    const head = 'GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; nook_token_8080=abc%2Fd; other=2\r\ncookie: nook_token=zz\r\n';
    assert.deepEqual(cookieTokens(head), ['abc/d', 'zz']);
    assert.deepEqual(cookieTokens('GET / HTTP/1.1\r\nCookie: nook_token=%\r\n'), []);
    const many = `GET / HTTP/1.1\r\nCookie: ${Array.from({ length: 100 }, (_, i) => `nook_token${i}=t`).join('; ')}\r\n`;
    assert.equal(cookieTokens(many).length, 16);
  });
});
