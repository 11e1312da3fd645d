#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { VERSION } from '../api/version.js';
import { registerCommands } from './commands/index.js';
import { printError } from './render.js';

const program = new Command()
  .name('nook')
  .description('sandboxes for AI agents and untrusted code: isolated, persistent, fast')
  .version(VERSION)
  .enablePositionalOptions()
  .exitOverride();

// Only the module defining the command is loaded (start-up time; see commands/index.ts).
await registerCommands(program, process.argv.slice(2));

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
