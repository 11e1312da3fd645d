import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { NookClient } from '../../sdk/client.js';
import { connect, daemonEntry } from '../connect.js';
import { printJson } from '../render.js';
import type { PoolInfo } from '../../api/schemas.js';

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs the installed nookd (dist/src/daemon/main.js beside this CLI) in the foreground:
 * the CLI does not load the daemon's code, it execs it, passing stdio, signals and the
 * exit status through.
 */
function runNookd(args: string[]): Promise<never> {
  const child = spawn(process.execPath, [daemonEntry(), ...args], { stdio: 'inherit', env: process.env });
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  for (const s of FORWARDED_SIGNALS) process.on(s, forward);
  return new Promise((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
      // Die the way nookd died, so a supervisor sees the same thing.
      if (signal) process.kill(process.pid, signal);
      process.exit(code ?? 1);
    });
  });
}

export function registerDaemonCommands(program: Command): void {
  const daemon = program
    .command('daemon')
    .description('run nookd in the foreground (the CLI starts it in the background on demand)')
    .option('--tcp <host:port>', 'also listen on TCP; requires NOOK_TOKEN or NOOK_TOKEN_FILE')
    .action(async (flags: { tcp?: string }) => {
      await runNookd(flags.tcp ? ['--tcp', flags.tcp] : []);
    });

  daemon
    .command('stop')
    .description('stop the daemon; sandboxes keep running unless --release')
    .option('--release', 'first stop every sandbox\'s compute and unmount storage (files are kept)')
    .option('--json', 'print JSON')
    .action(async (flags: { release?: boolean; json?: boolean }) => {
      const client = new NookClient();
      const h = await client.shutdown({ release: flags.release ?? false });
      if (flags.json) printJson(h);
      else process.stdout.write(`nookd (pid ${h.pid}) stopping${flags.release ? ', releasing compute and storage' : ''}\n`);
    });

  program
    .command('status')
    .description('daemon status: version, runtime, cgroup kind, storage, sandbox count, warm pools and their idle cost')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const h = await client.health();
      if (flags.json) printJson(h);
      else
        process.stdout.write(
          `nookd ${h.version} (pid ${h.pid})\nstate dir: ${h.stateDir}\nruntime:   ${h.runtime.name} ${h.runtime.version}\ncgroup:    ${h.cgroup}\nstorage:   ${h.storage.driver}\nsandboxes: ${h.sandboxes}\n` +
            (h.pools ?? []).map(poolLine).join(''),
        );
    });

  program
    .command('console')
    .description('print a link that opens the web console logged in (single use, valid for two minutes; needs NOOK_TCP on the daemon)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const login = await client.consoleLogin();
      if (flags.json) printJson({ url: login.url, expiresAt: login.expiresAt });
      else process.stdout.write(`${login.url}\n(open it before ${login.expiresAt}; it works once)\n`);
    });
}

const MiB = 1024 * 1024;

/** `pool python: 4/4 ready, idle 3.1 MiB memory, 0.1 MiB disk; 12 taken, 1 missed` (+ the error while it backs off). */
function poolLine(p: PoolInfo): string {
  const cost = `idle ${(p.idleMemoryBytes / MiB).toFixed(1)} MiB memory, ${(p.idleDiskBytes / MiB).toFixed(1)} MiB disk`;
  const failing = p.lastError ? `\n  last start failed (${p.failures}x, retry ${p.retryAt ?? 'soon'}): ${p.lastError}` : '';
  return `pool ${p.image}: ${p.ready}/${p.size} ready, ${cost}; ${p.takes} taken, ${p.misses} missed${failing}\n`;
}
