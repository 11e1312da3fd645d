/** The daemon's checks on desktop input: what may reach xdotool's argv, and what is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPoint, checkText, parseKeyCombo } from '../../src/core/desktop-input.js';
import { pathToken, tokenOf } from '../../src/net/expose.js';

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

  it('viewer tokens: the first path segment counts; a cookie never does', () => {
    const t = 'QsFadFFOC394ab1hNGQsrYB-GYdemOtP';
    assert.equal(pathToken(`GET /${t}/vnc.html?x=1 HTTP/1.1\r\nHost: x\r\n`), t);
    assert.equal(pathToken(`GET /${t}/websockify HTTP/1.1\r\n`), t);
    assert.equal(pathToken(`GET /${t}?a HTTP/1.1`), t);
    assert.equal(pathToken('GET /vnc.html HTTP/1.1'), null, 'not token-shaped');
    assert.equal(pathToken(`GET //${t}/ HTTP/1.1`), null);
    assert.equal(pathToken(`GET http://h/${t}/ HTTP/1.1`), null);
    assert.equal(pathToken(`GET /${t}%2F/ HTTP/1.1`), null, 'no decoding: the segment is taken as sent');
    const cookie = `GET /vnc.html HTTP/1.1\r\nCookie: nook_token_8080=${t}\r\n`;
    assert.equal(tokenOf(cookie), null);
    assert.equal(pathToken(cookie), null);
  });
});
