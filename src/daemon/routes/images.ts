/** Images: list, get, remove; build from a preset or a context (nook.json), pull, import and export OCI layouts. */
import { createReadStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import type { Context, Hono } from 'hono';
import { routes } from '../../api/routes.js';
import type { BuildEvent, Image, ProgressEvent } from '../../api/schemas.js';
import type { ProgressFn } from '../../core/images.js';
import { listTemplates } from '../../core/templates.js';
import { parseBody, receiveBounded, tarBody } from '../http/body.js';
import { readQuery } from '../http/input.js';
import { errorEvent, ndjson } from '../http/ndjson.js';
import { on, param, type RouteDeps } from './deps.js';
import { STATE_MIN_FREE_BYTES } from '../../util/fs.js';

/** Upper bound of an uploaded build context (it may unpack to twice that). */
const MAX_CONTEXT_BYTES = Number(process.env.NOOK_MAX_CONTEXT_BYTES ?? 1024 ** 3);
/** Upper bound of an uploaded image archive. */
const MAX_IMPORT_BYTES = Number(process.env.NOOK_MAX_IMPORT_BYTES ?? 16 * 1024 ** 3);

export function register(app: Hono, deps: RouteDeps): void {
  const { nook, answer } = deps;
  const images = nook.images;
  /** An image job answered as JSON, or (stream: true) as NDJSON progress events ending in the image. */
  const imageJob = async (c: Context, stream: boolean | undefined, job: (progress: ProgressFn) => Promise<Image>): Promise<Response> => {
    if (!stream) return answer(c, await job(() => undefined));
    return ndjson<ProgressEvent>(
      c,
      nook.audit,
      async (emit) => emit({ type: 'done', image: await job((phase, percent, message) => emit({ type: 'progress', phase, percent, message })) }),
      errorEvent,
    );
  };

  on(app, 'listTemplates', (c) => answer(c, { templates: listTemplates() }));
  on(app, 'listImages', (c) => answer(c, { images: images.list(readQuery(c, routes.listImages.query).all) }));
  on(app, 'buildSpec', async (c) => {
    const q = readQuery(c, routes.buildSpec.query);
    // The body is read inside the build, so a refused upload is a stream's error event like any other.
    const build = (emit: Parameters<typeof nook.builds.build>[2]) =>
      nook.builds.buildUpload(nook.paths.tmpDir, (file) => receiveBounded(tarBody(c), file, MAX_CONTEXT_BYTES), MAX_CONTEXT_BYTES * 2, q.spec, emit);
    if (!q.stream) return answer(c, await build(() => undefined));
    return ndjson<BuildEvent>(c, nook.audit, async (emit) => emit({ type: 'done', result: await build(emit) }), errorEvent);
  });
  on(app, 'getImage', (c) => answer(c, images.get(param(c, 'name'))));
  on(app, 'exportImage', async (c) => {
    const { file, cleanup } = await images.exportLayout(param(c, 'name'), nook.paths.tmpDir, STATE_MIN_FREE_BYTES);
    const size = (await fsp.stat(file)).size;
    const body = Readable.toWeb(createReadStream(file).on('close', () => void cleanup())) as ReadableStream<Uint8Array>;
    return new Response(body, { headers: { 'content-type': 'application/x-tar', 'content-length': String(size) } });
  });
  on(app, 'importImage', async (c) => {
    const { name } = readQuery(c, routes.importImage.query);
    return answer(c, await images.importUpload(name, nook.paths.tmpDir, (file) => receiveBounded(tarBody(c), file, MAX_IMPORT_BYTES)));
  });
  on(app, 'removeImage', async (c) => answer(c, await images.remove(param(c, 'name'))));
  on(app, 'pullImage', async (c) => {
    const req = await parseBody(c, routes.pullImage.body);
    const pull = { reference: req.reference, ...(req.name ? { name: req.name } : {}), ...(req.auth ? { auth: req.auth } : {}), ...(req.replace ? { replace: true } : {}), ...(req.policy ? { policy: req.policy } : {}) };
    return imageJob(c, req.stream, (progress) => images.pull(pull, progress));
  });
  on(app, 'buildImage', async (c) => {
    const req = await parseBody(c, routes.buildImage.body);
    const build = { preset: req.preset, ...(req.name ? { name: req.name } : {}), ...(req.rebuild ? { rebuild: true } : {}) };
    return imageJob(c, req.stream, (progress) => images.build(build, progress));
  });
}
