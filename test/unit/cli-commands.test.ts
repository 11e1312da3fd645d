/**
 * The CLI loads only the module defining the command it runs (src/cli/commands/index.ts):
 * the map must name exactly the top-level commands and aliases each module registers, or a
 * command would be missing when run directly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { COMMAND_MODULES, modulesFor, registerCommands } from '../../src/cli/commands/index.js';

function topLevelNames(program: Command): string[] {
  return program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
}

describe('CLI command map', () => {
  it('each module registers exactly the commands the map gives it', async () => {
    for (const [name, entry] of Object.entries(COMMAND_MODULES)) {
      const program = new Command();
      for (const register of await entry.load()) register(program);
      assert.deepEqual(topLevelNames(program).sort(), [...entry.commands].sort(), name);
    }
  });

  it('no command is claimed by two modules', () => {
    const all = Object.values(COMMAND_MODULES).flatMap((e) => [...e.commands]);
    assert.deepEqual(all.filter((c, i) => all.indexOf(c) !== i), []);
  });

  it('a command line loads its own module; --version none; help and typos all', async () => {
    assert.deepEqual(modulesFor(['exec', 'sb', '--', 'true']), ['exec']);
    assert.deepEqual(modulesFor(['rm', 'sb']), ['sandbox']);
    assert.deepEqual(modulesFor(['--version']), []);
    const all = Object.keys(COMMAND_MODULES);
    assert.deepEqual(modulesFor([]), all);
    assert.deepEqual(modulesFor(['--help']), all);
    assert.deepEqual(modulesFor(['help', 'exec']), all);
    assert.deepEqual(modulesFor(['exce']), all);
    const program = new Command();
    await registerCommands(program, ['help']);
    assert.equal(topLevelNames(program).length, all.flatMap((m) => [...COMMAND_MODULES[m as keyof typeof COMMAND_MODULES].commands]).length);
  });
});
