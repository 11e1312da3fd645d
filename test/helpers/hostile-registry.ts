/** What the hostile-registry tests share: the registry API's routing, and a count of the daemon's bsdtar children. */
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Routes `/v2/library/REPO/{manifests,blobs}/REF` over `repos`: answers a manifest or a 404
 * itself, and hands a known blob to `blob` (each test decides how it lies).
 */
export function routeRegistry<B>(
  repos: Map<string, { manifest: Buffer; blobs: Map<string, B> }>,
  req: IncomingMessage,
  res: ServerResponse,
  blob: (b: B, repo: string) => void,
): void {
  const m = /^\/v2\/library\/([^/]+)\/(manifests|blobs)\/(.+)$/.exec(req.url ?? '');
  const served = m?.[1] ? repos.get(m[1]) : undefined;
  if (!m || !served) return void res.writeHead(404).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
  if (m[2] === 'manifests') return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(served.manifest);
  const found = served.blobs.get((m[3] ?? '').replace(/^sha256:/, ''));
  if (found === undefined) return void res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
  blob(found, m[1] ?? '');
}

/** Processes whose parent is `pid` (the daemon) and whose command is bsdtar: a lister or an extractor left running. */
export function bsdtarChildren(pid: number): number {
  let n = 0;
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let stat = '';
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      // gone meanwhile
    }
    const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
    if (m?.[1] === 'bsdtar' && Number(m[2]) === pid) n++;
  }
  return n;
}
