/**
 * Which module defines each top-level command, so `nook exec ...` loads the exec module
 * alone and `nook --version` none (start-up time: see bench/cli.ts). Help, unknown commands
 * and anything else load them all. test/unit/cli-commands.test.ts checks this map against
 * what each module registers.
 */
import type { Command } from 'commander';

type Register = (program: Command) => void;

/** In help order. */
export const COMMAND_MODULES = {
  sandbox: { commands: ['create', 'ls', 'list', 'inspect', 'stop', 'resume', 'destroy', 'rm'], load: async (): Promise<Register[]> => [(await import('./sandbox.js')).registerSandboxCommands] },
  exec: { commands: ['exec', 'run'], load: async (): Promise<Register[]> => [(await import('./exec.js')).registerExecCommands] },
  snapshot: { commands: ['snapshot', 'fork', 'commit', 'recycle'], load: async (): Promise<Register[]> => [(await import('./snapshot.js')).registerSnapshotCommands] },
  network: { commands: ['network', 'expose'], load: async (): Promise<Register[]> => [(await import('./network.js')).registerNetworkCommands] },
  interactive: { commands: ['shell', 'ps', 'logs', 'attach', 'kill', 'events'], load: async (): Promise<Register[]> => [(await import('./interactive.js')).registerInteractiveCommands] },
  audit: { commands: ['audit'], load: async (): Promise<Register[]> => [(await import('./audit.js')).registerAuditCommands] },
  retention: { commands: ['done', 'retained', 'gc', 'usage', 'profile', 'config'], load: async (): Promise<Register[]> => [(await import('./retention.js')).registerRetentionCommands] },
  files: { commands: ['cp', 'fs'], load: async (): Promise<Register[]> => [(await import('./files.js')).registerFileCommands] },
  volume: { commands: ['volume'], load: async (): Promise<Register[]> => [(await import('./volume.js')).registerVolumeCommands] },
  image: {
    commands: ['image', 'template'],
    load: async (): Promise<Register[]> => {
      const m = await import('./image.js');
      return [m.registerImageCommands, m.registerTemplateCommands];
    },
  },
  build: { commands: ['init', 'build', 'up'], load: async (): Promise<Register[]> => [(await import('./build.js')).registerBuildCommands] },
  desktop: { commands: ['desktop'], load: async (): Promise<Register[]> => [(await import('./desktop.js')).registerDesktopCommands] },
  daemon: { commands: ['daemon', 'status', 'console'], load: async (): Promise<Register[]> => [(await import('./daemon.js')).registerDaemonCommands] },
} as const;

type ModuleName = keyof typeof COMMAND_MODULES;

/**
 * The modules to load for this command line: none for --version, the one defining the
 * command when argv[0] names one, else every module (help, suggestions for a typo).
 */
export function modulesFor(argv: string[]): ModuleName[] {
  const first = argv[0];
  if (first === '--version' || first === '-V') return [];
  const all = Object.keys(COMMAND_MODULES) as ModuleName[];
  const owner = all.find((m) => first !== undefined && (COMMAND_MODULES[m].commands as readonly string[]).includes(first));
  return owner ? [owner] : all;
}

/** Registers the commands `argv` (without node and script) needs on `program`. */
export async function registerCommands(program: Command, argv: string[]): Promise<void> {
  for (const name of modulesFor(argv)) for (const register of await COMMAND_MODULES[name].load()) register(program);
}
