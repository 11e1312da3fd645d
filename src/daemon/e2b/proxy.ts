/**
 * sandbox.getHost(port): a request for any port but envd's reaches that port in the sandbox
 * through nook's exposed ports (the port is exposed on first use; the exposure's token is
 * added here, so the caller needs only the sandbox's access token or the API key).
 */
import type { Context } from 'hono';
import type { Nook } from '../../core/nook.js';
import type { E2bSandbox } from './sandboxes.js';

/** Headers that belong to this hop, or to E2B's routing, and never go on to the sandbox. */
const HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'x-api-key', 'x-access-token', 'e2b-sandbox-id', 'e2b-sandbox-port', 'e2b-traffic-access-token', 'content-length']);

export async function proxyToPort(c: Context, nook: Nook, sb: E2bSandbox, port: number): Promise<Response> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return c.json({ code: 400, message: `port ${port} is not 1-65535` }, 400);
  const exposure = await nook.network.expose(sb.record.id, port);
  const headers = new Headers();
  c.req.raw.headers.forEach((v, k) => {
    if (!HOP.has(k.toLowerCase())) headers.set(k, v);
  });
  headers.set('x-nook-token', exposure.token);
  const url = new URL(c.req.url);
  const hasBody = c.req.method !== 'GET' && c.req.method !== 'HEAD';
  try {
    const res = await fetch(`http://127.0.0.1:${exposure.hostPort}${url.pathname}${url.search}`, {
      method: c.req.method,
      headers,
      redirect: 'manual',
      signal: c.req.raw.signal,
      ...(hasBody ? { body: c.req.raw.body, duplex: 'half' } : {}),
    } as RequestInit);
    const out = new Headers(res.headers);
    out.delete('content-encoding');
    out.delete('content-length');
    out.delete('transfer-encoding');
    return new Response(res.body, { status: res.status, headers: out });
  } catch (e) {
    return c.json({ code: 502, message: `nothing answered on port ${port} in the sandbox: ${(e as Error).message}` }, 502);
  }
}
