import { ImageNotFoundError, InternalError } from '../api/error-classes.js';
import { routeRefs as routes } from '../api/route-refs.js';
import { oneOf, PRESETS } from '../api/constants.js';
import type { BuildImageRequest, Image, Preset, ProgressEvent, PullImageRequest, PullPolicy, Template } from '../api/schemas.js';
import type { Api } from './routes.js';
import { toError } from './errors.js';

/** Follows a build or pull: progress to the callback, the image at the end. */
async function untilDone(events: AsyncGenerator<ProgressEvent>, onProgress: ((e: ProgressEvent) => void) | undefined): Promise<Image> {
  for await (const event of events) {
    if (event.type === 'done') return event.image;
    if (event.type === 'error') throw toError(event.error, 500);
    onProgress?.(event);
  }
  throw new InternalError('the image stream ended without a result');
}

/** Images: built from presets, pulled from registries, imported, committed. `client.images`. */
export class Images {
  constructor(private readonly api: Api) {}

  /** Images; `all` includes the build step cache. */
  async list(options: { all?: boolean } = {}): Promise<Image[]> {
    return (await this.api.json(routes.listImages, {}, options.all ? { query: { all: 'true' } } : {})).images;
  }

  get(name: string): Promise<Image> {
    return this.api.json(routes.getImage, { name });
  }

  /** Builds an image from a preset, reporting progress as it goes. */
  build(options: { preset: Preset; name?: string; rebuild?: boolean; onProgress?: (e: ProgressEvent) => void }): Promise<Image> {
    const { onProgress, ...body } = options;
    return untilDone(this.api.stream(routes.buildImage, {}, { body: { ...body, stream: true } satisfies BuildImageRequest }), onProgress);
  }

  /**
   * Pulls an image from an OCI registry: `client.images.pull('127.0.0.1:5000/library/python:3.12')`.
   * The local name defaults to the repository's last part and tag (`python:3.12`).
   */
  pull(
    reference: string,
    options: { name?: string; auth?: { username: string; password: string }; replace?: boolean; policy?: PullPolicy; onProgress?: (e: ProgressEvent) => void } = {},
  ): Promise<Image> {
    const { onProgress, ...rest } = options;
    return untilDone(this.api.stream(routes.pullImage, {}, { body: { reference, ...rest, stream: true } satisfies PullImageRequest }), onProgress);
  }

  /**
   * The image, built first when it is a preset that was never built, or pulled when `name` is a
   * registry reference (`127.0.0.1:5000/team/tool:1`), as the pull policy says.
   */
  async ensure(name: string, onProgress?: (e: ProgressEvent) => void, pull: PullPolicy = 'missing'): Promise<Image> {
    if (name.includes('/')) return this.pull(name, { policy: pull, ...(onProgress ? { onProgress } : {}) });
    try {
      return await this.get(name);
    } catch (e) {
      if (!(e instanceof ImageNotFoundError) || !oneOf(PRESETS, name) || pull === 'never') throw e;
      return this.build({ preset: name, ...(onProgress ? { onProgress } : {}) });
    }
  }

  /** Writes the image to `file` as an OCI image layout tar (importable by other OCI tools). */
  async export(name: string, file: string): Promise<{ file: string; sizeBytes: number }> {
    const sizeBytes = await this.api.download(routes.exportImage, { name }, file);
    return { file, sizeBytes };
  }

  /** A new image from an OCI image layout tar or a `docker save` archive. */
  import(file: string, options: { name: string }): Promise<Image> {
    return this.api.json(routes.importImage, {}, { bodyFile: file, query: { name: options.name } });
  }

  /** Refused (ImageInUseError, naming them) while sandboxes or snapshots need it. */
  remove(name: string): Promise<Image> {
    return this.api.json(routes.removeImage, { name });
  }
}

/** Named templates: an image preset plus create defaults. `client.templates`. */
export class Templates {
  constructor(private readonly api: Api) {}

  /** Named templates: `client.sandboxes.create({ template: 'node' })`. */
  async list(): Promise<Template[]> {
    return (await this.api.json(routes.listTemplates, {})).templates;
  }
}
