/**
 * Builds from a spec (`nook.json`): a builder sandbox, isolated like any other and with
 * egress only to the spec's allowHosts, runs the steps; each step's result is kept as a
 * hidden cache image keyed by the content of everything before it, so an unchanged spec
 * answers at once and a changed step reruns from there on.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { create as createTar } from 'tar';
import { NookError } from '../api/errors.js';
import { BuildSpec, Preset, type BuildEvent, type BuildResult, type Image } from '../api/schemas.js';
import { log } from '../util/log.js';
import { safeUntar } from '../util/safe-untar.js';
import type { AuditLog } from './audit.js';
import type { CommandRunner } from './commands.js';
import type { FileManager } from './files.js';
import { BUILD_STEP_SOURCE, type ImageConfig, type ImageManager } from './images.js';
import type { SandboxManager } from './sandboxes.js';
import type { SnapshotManager } from './snapshots.js';
import type { TarTransfer } from './tar-transfer.js';

export const SPEC_FILE = 'nook.json';
export const BUILD_LABEL = 'nook.build';
const DEFAULT_STEP_TIMEOUT_MS = 10 * 60_000;
const MAX_COPY_BYTES = 16 * 1024 ** 3;

type Emit = (e: Exclude<BuildEvent, { type: 'done' } | { type: 'error' }>) => void;

interface Step {
  kind: 'packages' | 'copy' | 'run';
  description: string;
  key: string;
  apply: (builderId: string, index: number) => Promise<void>;
}

const sha = (...parts: unknown[]): string => createHash('sha256').update(JSON.stringify(parts)).digest('hex');

/** A digest of a file tree: names, types, modes, contents and link targets, in a fixed order. */
async function treeDigest(path: string, skip: string): Promise<string> {
  const hash = createHash('sha256');
  const visit = async (p: string, rel: string): Promise<void> => {
    if (p === skip) return;
    const st = await fsp.lstat(p);
    hash.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) hash.update(`L${await fsp.readlink(p)}\0`);
    else if (st.isFile()) {
      for await (const chunk of createReadStream(p) as AsyncIterable<Buffer>) hash.update(chunk);
      hash.update('\0');
    } else if (st.isDirectory()) {
      for (const name of (await fsp.readdir(p)).sort()) await visit(join(p, name), `${rel}/${name}`);
    }
  };
  await visit(path, '.');
  return hash.digest('hex');
}

function cacheName(key: string): string {
  return `build-cache-${key.slice(0, 24)}`;
}

export async function readSpec(contextDir: string, specFile = SPEC_FILE): Promise<BuildSpec> {
  const file = resolve(contextDir, specFile);
  if (relative(contextDir, file).startsWith('..')) throw new NookError('INVALID_ARGUMENT', `the spec ${specFile} is outside the build context`);
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message;
    throw new NookError('INVALID_ARGUMENT', `cannot read the build spec ${specFile}: ${why}`, { hint: 'write one with: nook init DIR --preset python' });
  }
  const parsed = BuildSpec.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NookError('INVALID_ARGUMENT', `${specFile}: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}`, {
      hint: 'fields: name, base, packages, copy [{from, to}], run, env, workdir, user, cmd, allowHosts, stepTimeoutMs, memoryMiB',
    });
  }
  return parsed.data;
}

export class BuildManager {
  constructor(
    private readonly images: ImageManager,
    private readonly sandboxes: SandboxManager,
    private readonly snapshots: SnapshotManager,
    private readonly files: FileManager,
    private readonly tar: TarTransfer,
    private readonly audit: AuditLog,
    private readonly commands: CommandRunner,
  ) {}

  /** The base image: a local image, a preset (built on first use), or a registry reference (pulled). */
  private async base(ref: string, emit: Emit): Promise<Image> {
    const progress = (phase: string, percent: number, message: string): void => emit({ type: 'progress', phase: `base: ${phase}`, percent: Math.min(10, percent / 10), message });
    const local = this.images.find(ref);
    if (local) return local;
    if (Preset.safeParse(ref).success) return this.images.ensure(ref, progress);
    if (ref.includes('/')) return this.images.pull({ reference: ref }, progress);
    throw new NookError('IMAGE_NOT_FOUND', `the base ${ref} is neither a local image, a preset nor a registry reference`, {
      hint: `use one of ${Preset.options.join(', ')}, an image from nook image ls, or HOST/REPO:TAG`,
    });
  }

  private async steps(spec: BuildSpec, contextDir: string, specFile: string, baseKey: string, emit: Emit): Promise<Step[]> {
    const steps: Step[] = [];
    let key = baseKey;
    const env = spec.env ?? {};
    const cwd = spec.workdir ?? '/';
    const timeoutMs = spec.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    const shell = (script: string) => async (builderId: string, index: number): Promise<void> => {
      if (spec.workdir) await this.files.mkdir(builderId, spec.workdir, true);
      let tail = '';
      const keep = (b: Buffer, stream: 'stdout' | 'stderr'): void => {
        const text = b.toString('utf8');
        tail = (tail + text).slice(-2000);
        emit({ type: 'log', step: index, stream, text });
      };
      const r = await this.commands.exec(builderId, { argv: ['/bin/sh', '-c', script], env, cwd, user: '0', timeoutMs }, { onStdout: (b) => keep(b, 'stdout'), onStderr: (b) => keep(b, 'stderr') });
      if (r.exitCode !== 0 || r.timedOut) {
        const why = r.timedOut ? `timed out after ${timeoutMs} ms` : r.exitCode === 127 && /not found/.test(tail) ? 'exited 127 (command not found)' : `exited ${r.exitCode}`;
        throw new NookError('IMAGE_BUILD_FAILED', `step ${index + 1} (${script.slice(0, 80)}) ${why}: ${tail.trim().split('\n').slice(-8).join('\n')}`, {
          hint: r.timedOut ? 'raise stepTimeoutMs in the spec' : 'fix the step; steps before it are cached, so the next build starts here',
        });
      }
    };
    if (spec.packages?.length) {
      const list = spec.packages.join(' ');
      key = sha(key, 'packages', spec.packages);
      steps.push({
        kind: 'packages',
        description: `apt-get install ${list}`,
        key,
        apply: shell(`command -v apt-get >/dev/null || { echo 'packages need a Debian-based base image (no apt-get)' >&2; exit 127; }
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${list} && rm -rf /var/lib/apt/lists/*`),
      });
    }
    const root = await fsp.realpath(contextDir);
    // The spec is not part of what it builds: editing it must not invalidate copies.
    const specPath = join(root, specFile);
    for (const c of spec.copy ?? []) {
      const src = await fsp.realpath(resolve(root, c.from)).catch(() => null);
      if (!src) throw new NookError('INVALID_ARGUMENT', `copy: ${c.from} is not in the build context`, { hint: 'copy paths are relative to the directory holding nook.json' });
      if (src !== root && !src.startsWith(`${root}/`)) throw new NookError('INVALID_ARGUMENT', `copy: ${c.from} leads outside the build context`);
      emit({ type: 'progress', phase: 'hash', percent: 10, message: `hashing ${c.from}` });
      const st = await fsp.stat(src);
      key = sha(key, 'copy', c, await treeDigest(src, specPath));
      steps.push({
        kind: 'copy',
        description: `copy ${c.from} -> ${c.to}`,
        key,
        apply: async (builderId) => {
          if (st.isDirectory()) {
            const pack = createTar({ cwd: src, portable: true, filter: (p: string) => resolve(src, p) !== specPath }, ['.']) as unknown as AsyncIterable<Uint8Array>;
            await this.tar.extractInto(builderId, c.to, pack, MAX_COPY_BYTES);
          } else {
            const parent = c.to.split('/').slice(0, -1).join('/') || '/';
            await this.files.mkdir(builderId, parent, true);
            await this.files.write(builderId, c.to, await fsp.readFile(src), st.mode & 0o777);
          }
        },
      });
    }
    for (const script of spec.run ?? []) {
      key = sha(key, 'run', script, env, cwd);
      steps.push({ kind: 'run', description: script.length > 60 ? `${script.slice(0, 57)}...` : script, key, apply: shell(script) });
    }
    return steps;
  }

  /**
   * Builds from an uploaded context: `receive` writes the archive into a private temp dir,
   * where it is unpacked (bounded, nothing leaves the dir) and built; the dir goes afterwards.
   */
  async buildUpload(tmpDir: string, receive: (file: string) => Promise<void>, maxUnpackedBytes: number, specFile: string | undefined, emit: Emit): Promise<BuildResult> {
    await fsp.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const dir = await fsp.mkdtemp(join(tmpDir, 'build-'));
    try {
      const upload = join(dir, 'context.tar');
      const context = join(dir, 'context');
      await fsp.mkdir(context);
      await receive(upload);
      await safeUntar(createReadStream(upload), context, maxUnpackedBytes);
      return await this.build(context, specFile ?? SPEC_FILE, emit);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  async build(contextDir: string, specFile: string, emit: Emit): Promise<BuildResult> {
    const started = Date.now();
    const spec = await readSpec(contextDir, specFile);
    if (spec.name.startsWith('build-cache-')) throw new NookError('INVALID_NAME', 'image names starting with build-cache- are kept for the step cache');
    const base = await this.base(spec.base, emit);
    const steps = await this.steps(spec, contextDir, specFile, sha('base', base.id, base.digest), emit);
    const finalKey = sha(steps[steps.length - 1]?.key ?? sha('base', base.id), 'final', spec.name, spec.env ?? {}, spec.workdir ?? null, spec.user ?? null, spec.cmd ?? null);
    const config: ImageConfig = {
      env: { ...base.config.env, ...(spec.env ?? {}) },
      ...(spec.workdir ? { cwd: spec.workdir } : base.config.cwd ? { cwd: base.config.cwd } : {}),
      ...(spec.user ? { user: spec.user } : base.config.user ? { user: base.config.user } : {}),
      ...(spec.cmd ? { cmd: spec.cmd } : base.config.cmd.length ? { cmd: base.config.cmd } : {}),
      source: `build:${spec.name}`,
      specDigest: finalKey,
    };
    this.audit.note({ build: { name: spec.name, base: base.name, baseId: base.id, specDigest: finalKey, steps: steps.length } });

    const existing = this.images.find(spec.name);
    if (existing && this.images.config(existing.id).specDigest === finalKey) {
      emit({ type: 'progress', phase: 'done', percent: 100, message: `${spec.name} is up to date` });
      return { image: existing, upToDate: true, steps: steps.map((s, index) => ({ index, kind: s.kind, description: s.description, cached: true, durationMs: 0 })), specDigest: finalKey, durationMs: Date.now() - started };
    }

    // The longest run of steps already cached.
    let from = 0;
    let startImage = base;
    for (let i = steps.length - 1; i >= 0; i--) {
      const hit = this.images.find(cacheName(steps[i]?.key ?? ''));
      if (hit) {
        from = i + 1;
        startImage = hit;
        break;
      }
    }
    const report: BuildResult['steps'] = steps.map((s, index) => ({ index, kind: s.kind, description: s.description, cached: index < from, durationMs: 0 }));
    const builderName = `build-${randomBytes(5).toString('hex')}`;
    emit({ type: 'progress', phase: 'builder', percent: 10, message: `starting builder ${builderName} from ${startImage.name}` });
    const builder = await this.sandboxes.create({
      name: builderName,
      image: startImage.name,
      persistent: false,
      labels: { [BUILD_LABEL]: spec.name },
      ...(spec.memoryMiB ? { memoryMiB: spec.memoryMiB } : {}),
      ...(spec.allowHosts?.length ? { allowHosts: spec.allowHosts, network: 'allowlist' as const } : {}),
    });
    try {
      for (let i = from; i < steps.length; i++) {
        const step = steps[i];
        if (!step) continue;
        emit({ type: 'progress', phase: `step ${i + 1}/${steps.length}`, percent: 10 + Math.floor((i / steps.length) * 85), message: `${step.kind}: ${step.description}` });
        const t0 = Date.now();
        await step.apply(builder.id, i);
        const cached = await this.snapshots.commitAs(builder.id, cacheName(step.key), { env: config.env, source: `${BUILD_STEP_SOURCE}${spec.name}`, specDigest: step.key });
        log('build step', { image: spec.name, step: i + 1, kind: step.kind, ms: Date.now() - t0, cache: cached.name });
        const r = report[i];
        if (r) r.durationMs = Date.now() - t0;
      }
      emit({ type: 'progress', phase: 'commit', percent: 96, message: `committing ${spec.name}` });
      if (existing) {
        await this.images.remove(existing.name).catch((e: unknown) => {
          if (!(e instanceof NookError) || e.code !== 'IMAGE_IN_USE') throw e;
          // In use: the old image stays, under another name, until its sandboxes and snapshots are gone.
          this.images.rename(existing.id, `${spec.name.split(':')[0] ?? 'image'}-prev-${existing.id.slice(4, 12)}`.slice(0, 63));
        });
      }
      const image = await this.snapshots.commitAs(builder.id, spec.name, config);
      emit({ type: 'progress', phase: 'done', percent: 100, message: `${spec.name} built` });
      return { image: this.images.get(image.id), upToDate: false, steps: report, specDigest: finalKey, durationMs: Date.now() - started };
    } finally {
      await this.sandboxes.destroy(builder.id).catch((e: Error) => log('build: builder not destroyed', { name: builderName, error: e.message }));
    }
  }

  /** Startup: builders a crash interrupted are destroyed (their work is in the step cache). */
  async reconcile(): Promise<void> {
    for (const sb of this.sandboxes.list().filter((s) => s.labels[BUILD_LABEL] !== undefined)) {
      await this.sandboxes.destroy(sb.id).catch(() => undefined);
      log('reconcile: removed an interrupted builder', { name: sb.name });
    }
  }
}
