import type { Command } from 'commander';
import { NookError } from '../../api/errors.js';
import type { NetworkShow } from '../../api/schemas.js';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { age, printJson, table } from '../render.js';

function showText(n: NetworkShow): string {
  const head = `mode: ${n.policy.mode}\nallow: ${n.policy.allow.length ? n.policy.allow.join(', ') : '(nothing)'}\n`;
  if (n.decisions.length === 0) return `${head}no connections yet\n`;
  return (
    head +
    '\n' +
    table(
      ['WHEN', 'HOST', 'PORT', 'VIA', 'DECISION', 'UP', 'DOWN', 'REASON'],
      n.decisions.map((d) => [`${age(d.at)} ago`, d.host, String(d.port), d.method, d.allowed ? 'allowed' : 'DENIED', String(d.bytesUp), String(d.bytesDown), d.reason]),
    )
  );
}

export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('egress policy: closed by default, allow-listed hosts through a proxy');

  const change = (name: 'allow' | 'deny', description: string): void => {
    network
      .command(`${name} <sandbox> <hosts...>`)
      .description(description)
      .option('--json', 'print JSON')
      .action(async (ref: string, hosts: string[], flags: { json?: boolean }) => {
        const client = await connect();
        const sb = await client.sandboxes.get(ref);
        const r = await sb.network[name](...hosts);
        if (flags.json) printJson(r);
        else process.stdout.write(showText({ ...r, decisions: [] }).split('\n').slice(0, 2).join('\n') + '\n');
      });
  };
  change('allow', 'let a sandbox reach these hosts (host, *.suffix, IP or CIDR, optional :port); applies at once');
  change('deny', 'take hosts off the allow-list; applies at once');

  network
    .command('mode <sandbox> <mode>')
    .description('none (loopback only), allowlist, or learn (allow and record everything, then: nook network suggest)')
    .option('--json', 'print JSON')
    .action(async (ref: string, mode: string, flags: { json?: boolean }) => {
      const client = await connect();
      const r = await (await client.sandboxes.get(ref)).network.set({ mode: mode as 'none' });
      if (flags.json) printJson(r);
      else process.stdout.write(`${ref}: network ${r.policy.mode}\n`);
    });

  network
    .command('show <sandbox>')
    .description('policy and recent decisions: host, allowed or denied and why, bytes, time')
    .option('--limit <n>', 'how many decisions', positiveInt)
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { limit?: number; json?: boolean }) => {
      const client = await connect();
      const r = await (await client.sandboxes.get(ref)).network.show(flags.limit ? { limit: flags.limit } : {});
      if (flags.json) printJson(r);
      else process.stdout.write(showText(r));
    });

  network
    .command('suggest <sandbox>')
    .description('the allow-list that the sandbox\'s learn-mode runs needed')
    .option('--json', 'print JSON')
    .action(async (ref: string, flags: { json?: boolean }) => {
      const client = await connect();
      const allow = await (await client.sandboxes.get(ref)).network.suggest();
      if (flags.json) printJson({ allow });
      else process.stdout.write(allow.length ? `${allow.map((h) => `--allow-host ${h}`).join(' ')}\n` : 'nothing was used\n');
    });

  program
    .command('expose <args...>')
    .usage('<sandbox> <port> | ls <sandbox> | rm <sandbox> <port>')
    .description('expose a sandbox port on the host loopback behind a token (the sandbox gets no network); ls and rm manage them')
    .option('--host-port <port>', 'host port to listen on (default: any free one)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (args: string[], flags: { hostPort?: number; json?: boolean }) => {
      const [first = '', second, third] = args;
      const client = await connect();
      if (first === 'ls' && second) {
        const list = await (await client.sandboxes.get(second)).exposures.list();
        if (flags.json) printJson({ exposures: list });
        else process.stdout.write(table(['PORT', 'URL', 'ACTIVE'], list.map((e) => [String(e.port), e.url, e.active ? 'yes' : 'no (sandbox paused)'])));
      } else if (first === 'rm' && second && third) {
        const e = await (await client.sandboxes.get(second)).exposures.remove(positiveInt(third));
        if (flags.json) printJson(e);
        else process.stdout.write(`${second}:${e.port} no longer exposed\n`);
      } else if (second && !third) {
        const e = await (await client.sandboxes.get(first)).expose(positiveInt(second), flags.hostPort ? { hostPort: flags.hostPort } : {});
        if (flags.json) printJson(e);
        else process.stdout.write(`${e.url}\n`);
      } else {
        throw new NookError('INVALID_ARGUMENT', `nook expose ${args.join(' ')}: expected SANDBOX PORT, ls SANDBOX, or rm SANDBOX PORT`);
      }
    });
}
