#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { VERSION } from '../api/version.js';
import { registerDaemonCommands } from './commands/daemon.js';
import { registerExecCommands } from './commands/exec.js';
import { registerImageCommands, registerTemplateCommands } from './commands/image.js';
import { registerBuildCommands } from './commands/build.js';
import { registerSandboxCommands } from './commands/sandbox.js';
import { registerSnapshotCommands } from './commands/snapshot.js';
import { registerNetworkCommands } from './commands/network.js';
import { registerInteractiveCommands } from './commands/interactive.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerRetentionCommands } from './commands/retention.js';
import { registerFileCommands } from './commands/files.js';
import { registerVolumeCommands } from './commands/volume.js';
import { printError } from './render.js';

const program = new Command()
  .name('nook')
  .description('sandboxes for AI agents and untrusted code: isolated, persistent, fast')
  .version(VERSION)
  .enablePositionalOptions()
  .exitOverride();

registerSandboxCommands(program);
registerExecCommands(program);
registerSnapshotCommands(program);
registerNetworkCommands(program);
registerInteractiveCommands(program);
registerAuditCommands(program);
registerRetentionCommands(program);
registerFileCommands(program);
registerVolumeCommands(program);
registerImageCommands(program);
registerTemplateCommands(program);
registerBuildCommands(program);
registerDaemonCommands(program);

const wantsJson = process.argv.slice(2, process.argv.includes('--') ? process.argv.indexOf('--') : undefined).includes('--json');

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    // Commander already printed usage errors and help; keep its exit code (0 for --help).
    process.exitCode = e.exitCode;
    return;
  }
  printError(e, wantsJson);
  process.exitCode = 1;
});
