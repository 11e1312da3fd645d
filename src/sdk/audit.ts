import { routeRefs as routes } from '../api/route-refs.js';
import type { AuditRecord, AuditVerify } from '../api/schemas.js';
import type { Api } from './routes.js';

/** The audit log: a hash chain of every mutating call. `client.audit`. */
export class Audit {
  constructor(private readonly api: Api) {}

  async list(filter: { sandbox?: string; action?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    const query = { sandbox: filter.sandbox, action: filter.action, limit: filter.limit === undefined ? undefined : String(filter.limit) };
    return (await this.api.json(routes.listAudit, {}, { query })).records;
  }

  get(receipt: string): Promise<AuditRecord> {
    return this.api.json(routes.getAudit, { receipt });
  }

  /** Checks the hash chain end to end; names the first bad record. */
  verify(): Promise<AuditVerify> {
    return this.api.json(routes.verifyAudit, {});
  }

  /** Every record, oldest first. */
  export(): AsyncGenerator<AuditRecord> {
    return this.api.stream(routes.exportAudit, {});
  }
}
