/** A real nookd with the E2B front on a free loopback port, and the options E2B's SDK needs to reach it. */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { startDaemon, type TestDaemon } from './daemon.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startE2bDaemon(): Promise<{ d: TestDaemon; url: string; token: string; opts: { apiUrl: string; sandboxUrl: string; apiKey: string } }> {
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const d = await startDaemon({ NOOK_E2B_LISTEN: `127.0.0.1:${port}`, NOOK_TOKEN: token });
  const url = `http://127.0.0.1:${port}`;
  return { d, url, token, opts: { apiUrl: url, sandboxUrl: url, apiKey: token } };
}

