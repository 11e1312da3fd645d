import type { Command } from 'commander';
import { connect } from '../connect.js';
import { positiveInt } from '../parse.js';
import { printJson, table } from '../render.js';

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit log: who did what, when, with which receipt');

  audit
    .command('ls')
    .description('audit records, newest last')
    .option('--sandbox <name>', 'only this sandbox')
    .option('--action <action>', 'only this action (createSandbox, exec, stopSandbox, ...)')
    .option('--limit <n>', 'at most this many (default 100)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (flags: { sandbox?: string; action?: string; limit?: number; json?: boolean }) => {
      const client = await connect();
      const records = await client.audit.list({ ...(flags.sandbox ? { sandbox: flags.sandbox } : {}), ...(flags.action ? { action: flags.action } : {}), ...(flags.limit ? { limit: flags.limit } : {}) });
      if (flags.json) printJson({ records });
      else
        process.stdout.write(
          table(
            ['SEQ', 'RECEIPT', 'AT', 'ACTOR', 'ACTION', 'SANDBOX', 'OUTCOME'],
            records.map((r) => [String(r.seq), r.id, r.at, r.actor, r.action, r.sandbox ?? '-', r.outcome === 'ok' ? 'ok' : `error ${r.errorCode ?? ''}`]),
          ),
        );
    });

  audit
    .command('show <receipt>')
    .description('one record: actor, action, inputs (digests for secrets), outcome, hashes')
    .option('--json', 'print JSON (the default)')
    .action(async (receipt: string) => {
      const client = await connect();
      printJson(await client.audit.get(receipt));
    });

  audit
    .command('verify')
    .description('check the hash chain end to end; exits non-zero and names the first bad record')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const client = await connect();
      const v = await client.audit.verify();
      if (flags.json) printJson(v);
      else if (v.ok) process.stdout.write(`ok: ${v.records} records, chain intact\n`);
      if (!v.ok) {
        if (!flags.json) process.stderr.write(`nook: audit chain broken at record ${v.firstBad?.seq} (${v.firstBad?.id}): ${v.firstBad?.reason}\n`);
        process.exitCode = 1;
      }
    });

  audit
    .command('export')
    .description('every record as JSON lines, oldest first')
    .action(async () => {
      const client = await connect();
      for await (const r of client.audit.export()) process.stdout.write(JSON.stringify(r) + '\n');
    });

}
