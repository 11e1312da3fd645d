import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens (creating if needed) the state database in WAL mode and runs pending migrations.
 * The database holds env values and exposure tokens: it is root-only (0600), and so are its
 * WAL and shared-memory files (SQLite gives them the main file's mode).
 */
export function openDb(path: string): Db {
  closeSync(openSync(path, 'a', 0o600));
  // A database made by an older nook (0644): tighten it and any WAL left beside it.
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`state database is at schema version ${current}, newer than this nook (${MIGRATIONS.length}); upgrade nook`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    const sql = MIGRATIONS[v] ?? '';
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
