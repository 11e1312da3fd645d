/**
 * An attacker's (and a crash's) review of the fast copy's one-time handoff socket, against a
 * real daemon: what a daemon killed while a relay waits for its file leaves in the socket
 * directory.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { hostProcessesWith, startDaemon, waitFor, type TestDaemon } from '../helpers/daemon.js';

/** Starts a fast copy over the unix socket and resolves with the handoff socket's path (the copy is left waiting). */
function startFastCopy(socketPath: string, ref: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: `/v1/sandboxes/${ref}/files/fast-copy`, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => {
        text += b.toString();
        const ready = text.split('\n').map((l) => (l ? (JSON.parse(l) as { type: string; socket?: string }) : undefined)).find((e) => e?.type === 'ready');
        if (ready?.socket) resolve(ready.socket);
      });
      res.on('error', () => undefined);
      res.on('end', () => reject(new Error(`no ready event: ${text}`)));
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify(body));
  });
}

describe('red team: fast copy', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startDaemon();
    await d.client.sandboxes.create({ name: 'cp', image: 'minimal' });
  });
  after(async () => {
    await d?.teardown();
  });

  it('a daemon killed while a relay waits for its file leaves no handoff socket and no relay behind', async () => {
    const socket = await startFastCopy(d.socket, 'cp', { direction: 'in', path: '/work/x' });
    assert.ok(existsSync(socket), 'the relay listens');
    await d.kill9();
    // The relay dies with the daemon (PR_SET_PDEATHSIG).
    await waitFor(() => hostProcessesWith(socket).length === 0, 5000, 'the relay to die with the daemon');
    await d.start();
    assert.equal(existsSync(socket), false, `the one-time socket ${socket} outlived its daemon`);
  });
});
