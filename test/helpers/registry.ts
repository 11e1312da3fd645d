/**
 * A real OCI registry on loopback (Debian's docker-registry, i.e. distribution 2.8) with
 * Docker's token auth: a small token service here signs ES256 JWTs with a key whose
 * certificate the registry trusts. Nothing here talks to another host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { run } from '../../src/util/proc.js';

export const REGISTRY_USER = 'agent';
export const REGISTRY_PASSWORD = 'correct horse battery staple';

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** Where the registry keeps blobs (tests corrupt them to prove verification). */
  storageDir: string;
  /** Token requests the token service answered, by outcome. */
  tokens: { granted: number; refused: number };
  /** skopeo copy SRC docker://HOST/REPO with the test credentials. */
  push(src: string, repoAndTag: string, all?: boolean): Promise<void>;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = mkdtempSync('/tmp/nook-registry-');
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  await run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=nook-test-token', '-days', '2']);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = readFileSync(certFile, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const tokens = { granted: 0, refused: 0 };

  const tokenServer: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, pass] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(/:(.*)/s) : [];
    // Like public images on a real registry: repositories under public/ may be pulled anonymously.
    const anonymous = !auth && url.searchParams.getAll('scope').every((scope) => /^repository:public\/[^:]+:pull$/.test(scope));
    if (!anonymous && (user !== REGISTRY_USER || pass !== REGISTRY_PASSWORD)) {
      tokens.refused++;
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="nook-test"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', x5c: [certDer] }));
    const claims = b64url(JSON.stringify({ iss: 'nook-test', sub: user ?? 'anonymous', aud: url.searchParams.get('service'), exp: now + 600, nbf: now - 10, iat: now, jti: randomUUID(), access }));
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    tokens.granted++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}`, expires_in: 600 }));
  });
  await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
  const tokenPort = (tokenServer.address() as AddressInfo).port;

  const port = await freePort();
  const storageDir = join(dir, 'storage');
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${storageDir} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      'auth:',
      '  token:',
      `    realm: http://127.0.0.1:${tokenPort}/token`,
      '    service: nook-test-registry',
      '    issuer: nook-test',
      `    rootcertbundle: ${certFile}`,
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await fetch(`http://${host}/v2/`).catch(() => null);
    if (res?.status === 401) break;
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      tokenServer.close();
      throw new Error(`the registry did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    host,
    storageDir,
    tokens,
    async push(src, repoAndTag, all = false) {
      await run(['skopeo', 'copy', '--quiet', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`, src, `docker://${host}/${repoAndTag}`], { timeoutMs: 60_000 });
    },
    async stop() {
      const exited = new Promise((r) => proc.once('exit', r));
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await new Promise((r) => tokenServer.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
