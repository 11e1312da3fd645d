import { promises as fsp } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import { IMAGE_NAME_PATTERN, oneOf, PRESETS } from '../../api/constants.js';
import type { BuildResult, BuildSpec, Preset } from '../../api/schemas.js';
import type { NookClient } from '../../sdk/client.js';
import { connect } from '../connect.js';
import { progressBar } from '../progress.js';
import { printJson } from '../render.js';

/** What `nook init --preset P` writes besides the spec: a sample task that runs as is. */
const SAMPLES: Record<Preset, { file: string; text: string; check: string; cmd: string[] }> = {
  minimal: { file: 'task.sh', text: 'echo "hello from a nook sandbox: $(uname -sr)"\n', check: 'sh -n task.sh', cmd: ['sh', 'task.sh'] },
  python: {
    file: 'task.py',
    text: '"""A sample task: `nook up` starts it as the sandbox\'s main process."""\nimport sys\n\nprint(f"hello from a nook sandbox: python {sys.version.split()[0]}")\n',
    check: 'python3 -m py_compile task.py',
    cmd: ['python3', 'task.py'],
  },
  base: { file: 'task.sh', text: 'echo "hello from a nook sandbox: $(python3 --version)"\n', check: 'bash -n task.sh', cmd: ['bash', 'task.sh'] },
  node: { file: 'task.js', text: "// A sample task: `nook up` starts it as the sandbox's main process.\nconsole.log(`hello from a nook sandbox: node ${process.version}`);\n", check: 'node --check task.js', cmd: ['node', 'task.js'] },
  browser: {
    file: 'task.py',
    text: [
      '"""A sample task: headless Chromium renders a page; pages on the network need the allow-list."""',
      'import subprocess',
      '',
      'page = "data:text/html,<title>nook</title><h1>hello from a nook sandbox</h1>"',
      'dom = subprocess.run(["chromium-headless", "--dump-dom", page], capture_output=True, text=True, timeout=60).stdout',
      'print(dom)',
      '',
    ].join('\n'),
    check: 'python3 -m py_compile task.py',
    cmd: ['python3', 'task.py'],
  },
  desktop: {
    file: 'task.sh',
    text: '# A sample task: a terminal on the sandbox\'s display (drive it with nook desktop ...).\nDISPLAY=:0 xterm -title nook &\necho "hello from a nook desktop sandbox"\n',
    check: 'sh -n task.sh',
    cmd: ['sh', 'task.sh'],
  },
};

function specFor(name: string, preset: Preset): BuildSpec {
  const s = SAMPLES[preset];
  return { name, base: preset, copy: [{ from: '.', to: '/work/app' }], workdir: '/work/app', run: [s.check], cmd: s.cmd };
}

/** A valid image name from a directory name. */
function imageNameFor(dir: string): string {
  const n = basename(resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 63);
  return IMAGE_NAME_PATTERN.test(n) ? n : 'app';
}

async function runBuild(client: NookClient, dir: string, flags: { spec?: string; json?: boolean; quiet?: boolean }): Promise<BuildResult> {
  const bar = progressBar(`building ${dir}`, !flags.json && !flags.quiet);
  const result = await client.builds.run(dir, {
    ...(flags.spec ? { spec: flags.spec } : {}),
    onProgress: (e) => bar.onProgress(e),
    // Step output goes to stderr, so --json on stdout stays clean.
    onLog: (e) => {
      if (!flags.quiet) process.stderr.write(e.text);
    },
  });
  bar.done();
  return result;
}

export function registerBuildCommands(program: Command): void {
  program
    .command('init <dir>')
    .description(`write a build spec (nook.json) and a sample task into DIR (presets: ${PRESETS.join(', ')})`)
    .option('--preset <preset>', 'base and sample task', 'python')
    .option('--name <image>', 'name of the image it builds (default: the directory name)')
    .option('--force', 'replace an existing nook.json')
    .option('--json', 'print what was written as JSON')
    .action(async (dir: string, flags: { preset: string; name?: string; force?: boolean; json?: boolean }) => {
      const preset = flags.preset;
      if (!oneOf(PRESETS, preset)) throw new NookError('INVALID_ARGUMENT', `unknown preset ${flags.preset}`, { hint: `use one of ${PRESETS.join(', ')}` });
      const name = flags.name ?? imageNameFor(dir);
      if (!IMAGE_NAME_PATTERN.test(name)) throw new NookError('INVALID_NAME', `${name} is not a valid image name`, { hint: 'lower-case letters, digits, . _ -' });
      await fsp.mkdir(dir, { recursive: true });
      const specPath = join(dir, 'nook.json');
      if (!flags.force && (await fsp.stat(specPath).catch(() => null))) {
        throw new NookError('NAME_TAKEN', `${specPath} already exists`, { hint: 'edit it, or pass --force to replace it' });
      }
      const spec = specFor(name, preset);
      const sample = SAMPLES[preset];
      await fsp.writeFile(specPath, `${JSON.stringify(spec, null, 2)}\n`);
      const samplePath = join(dir, sample.file);
      const wroteSample = !(await fsp.stat(samplePath).catch(() => null));
      if (wroteSample) await fsp.writeFile(samplePath, sample.text);
      const written = [specPath, ...(wroteSample ? [samplePath] : [])];
      if (flags.json) printJson({ spec, written });
      else process.stdout.write(`wrote ${written.join(', ')}\nnext: nook build ${dir} && nook up ${dir} --name ${name.split(':')[0]}\n`);
    });

  program
    .command('build <dir>')
    .description('build the image DIR/nook.json describes, in an isolated builder sandbox; unchanged steps come from the cache')
    .option('--spec <file>', 'spec file inside DIR (default nook.json)')
    .option('-q, --quiet', 'no step output')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, flags: { spec?: string; quiet?: boolean; json?: boolean }) => {
      const client = await connect();
      const r = await runBuild(client, dir, flags);
      if (flags.json) printJson(r);
      else {
        const ran = r.steps.filter((s) => !s.cached).length;
        process.stdout.write(`${r.image.name} ${r.image.id} ${r.upToDate ? 'up to date' : `${ran} step(s) run, ${r.steps.length - ran} cached`} (${r.durationMs} ms)\n`);
      }
    });

  program
    .command('up <dir>')
    .description('build DIR if needed, then create and start a sandbox from it; the spec\'s cmd runs as the process named main')
    .requiredOption('--name <name>', 'sandbox name')
    .option('--replace', 'replace a sandbox of that name running an older image')
    .option('--spec <file>', 'spec file inside DIR (default nook.json)')
    .option('-q, --quiet', 'no step output')
    .option('--json', 'print JSON')
    .action(async (dir: string, flags: { name: string; replace?: boolean; spec?: string; quiet?: boolean; json?: boolean }) => {
      const client = await connect();
      const built = await runBuild(client, dir, flags);
      const image = built.image;
      let sb = await client.sandboxes.get(flags.name).catch((e: unknown) => {
        if (e instanceof NookError && e.code === 'SANDBOX_NOT_FOUND') return null;
        throw e;
      });
      let action: 'created' | 'unchanged' | 'replaced' = 'created';
      if (sb && sb.data.image === image.name) {
        action = 'unchanged';
        if (sb.data.state !== 'running') await sb.resume();
      } else if (sb) {
        if (!flags.replace) {
          throw new NookError('NAME_TAKEN', `sandbox ${flags.name} runs image ${sb.data.image}, not the new ${image.name}`, { hint: `nook up ${dir} --name ${flags.name} --replace (its files go), or another --name` });
        }
        await sb.destroy();
        sb = null;
        action = 'replaced';
      }
      let main: string | null = null;
      if (!sb) {
        sb = await client.sandboxes.create({ name: flags.name, image: image.name });
        if (image.config.cmd.length > 0) main = (await sb.processes.start([...image.config.entrypoint, ...image.config.cmd], { name: 'main', restart: 'on-resume' })).id;
      }
      const out = { sandbox: sb.name, image: image.name, action, build: { upToDate: built.upToDate, durationMs: built.durationMs }, mainProcess: main };
      if (flags.json) printJson(out);
      else process.stdout.write(`${out.sandbox} ${action} from ${image.name}${main ? `; main process ${main} (nook logs ${out.sandbox} main -f)` : ''}\n`);
    });
}
