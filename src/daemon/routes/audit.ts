/** The audit log: records (filtered), one record, the hash-chain check, and an NDJSON export. */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import { readQuery } from '../http/input.js';
import { NDJSON } from '../http/ndjson.js';
import { on, param, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const audit = nook.audit;
  on(app, 'listAudit', (c) => {
    const q = readQuery(c, routes.listAudit.query);
    return answer(c, { records: audit.list({ ...(q.sandbox ? { sandbox: q.sandbox } : {}), ...(q.action ? { action: q.action } : {}), limit: q.limit }) });
  });
  // Before {receipt}: these two are fixed paths under the same prefix.
  on(app, 'verifyAudit', (c) => answer(c, audit.verify()));
  on(app, 'exportAudit', () => {
    const encoder = new TextEncoder();
    const records = audit.all();
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = records.next();
        if (next.done) controller.close();
        else controller.enqueue(encoder.encode(JSON.stringify(next.value) + '\n'));
      },
    });
    return new Response(body, { headers: { 'content-type': NDJSON } });
  });
  on(app, 'getAudit', (c) => answer(c, audit.get(param(c, 'receipt'))));
}
