import type { Command } from 'commander';
import { NookClient } from '../../sdk/client.js';
import { connect } from '../connect.js';
import { printJson } from '../render.js';

export function registerDaemonCommands(program: Command): void {
  const daemon = program
    .command('daemon')
    .description('run nookd in the foreground (the CLI starts it in the background on demand)')
    .option('--tcp <host:port>', 'also listen on TCP; requires NOOK_TOKEN or NOOK_TOKEN_FILE')
    .action(async (flags: { tcp?: string }) => {
      // Loaded only here: the daemon's modules (SQLite, drivers) would slow every other command.
      const { guardProcess, runDaemon } = await import('../../daemon/main.js');
      guardProcess();
      await runDaemon(flags.tcp ? { tcp: flags.tcp } : {});
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
    .description('daemon status: version, runtime, cgroup kind, storage, sandbox count')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const h = await client.health();
      if (flags.json) printJson(h);
      else
        process.stdout.write(
          `nookd ${h.version} (pid ${h.pid})\nstate dir: ${h.stateDir}\nruntime:   ${h.runtime.name} ${h.runtime.version}\ncgroup:    ${h.cgroup}\nstorage:   ${h.storage.driver}\nsandboxes: ${h.sandboxes}\n`,
        );
    });
}
