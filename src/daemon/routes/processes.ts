/** Background processes: start, list, get, kill, and their logs as NDJSON (optionally followed). */
import type { Hono } from 'hono';
import { routes } from '../../api/routes.js';
import type { LogEvent } from '../../api/schemas.js';
import { parseBody } from '../http/body.js';
import { readQuery } from '../http/input.js';
import { errorEvent, ndjson } from '../http/ndjson.js';
import { on, param, ref, type RouteDeps } from './deps.js';

export function register(app: Hono, { nook, answer }: RouteDeps): void {
  const procs = nook.processes;
  on(app, 'startProcess', async (c) => answer(c, await procs.start(ref(c), await parseBody(c, routes.startProcess.body))));
  on(app, 'listProcesses', (c) => answer(c, { processes: procs.list(ref(c)) }));
  on(app, 'getProcess', (c) => answer(c, procs.get(ref(c), param(c, 'proc'))));
  on(app, 'killProcess', async (c) => {
    const req = await parseBody(c, routes.killProcess.body);
    return answer(c, await procs.kill(ref(c), param(c, 'proc'), req.signal));
  });
  on(app, 'processLogs', (c) => {
    const proc = param(c, 'proc');
    procs.get(ref(c), proc); // unknown sandbox or process: an HTTP error before the stream
    const q = readQuery(c, routes.processLogs.query);
    const opts = { follow: q.follow, ...(q.tail !== undefined ? { tail: q.tail } : {}), ...(q.since !== undefined ? { sinceMs: q.since } : {}) };
    return ndjson<LogEvent>(c, nook.audit, (emit, signal) => procs.streamLogs(ref(c), proc, opts, emit, signal), errorEvent);
  });
}
