/**
 * Numbered, append-only migrations. Never edit a shipped entry: add the next number.
 * PRAGMA user_version records how many have run.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: sandboxes and images
  `CREATE TABLE sandboxes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     state TEXT NOT NULL,
     image_id TEXT NOT NULL,
     persistent INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     ttl_ms INTEGER,
     expires_at INTEGER,
     spec_json TEXT NOT NULL
   );
   CREATE INDEX sandboxes_expires_at ON sandboxes(expires_at) WHERE expires_at IS NOT NULL;
   CREATE TABLE images (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     preset TEXT,
     state TEXT NOT NULL,
     size_bytes INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     config_json TEXT NOT NULL DEFAULT '{}'
   );`,
  // 2: snapshots; they outlive their sandbox, so they keep its name
  `CREATE TABLE snapshots (
     id TEXT PRIMARY KEY,
     sandbox_id TEXT NOT NULL,
     sandbox_name TEXT NOT NULL,
     name TEXT NOT NULL,
     state TEXT NOT NULL,
     image_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     duration_ms REAL NOT NULL DEFAULT 0,
     size_bytes INTEGER,
     spec_json TEXT NOT NULL,
     UNIQUE (sandbox_id, name)
   );
   CREATE INDEX snapshots_sandbox_name ON snapshots(sandbox_name);`,
  // 3: network decisions (bounded per sandbox) and exposed ports
  `CREATE TABLE network_decisions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     sandbox_id TEXT NOT NULL,
     at INTEGER NOT NULL,
     host TEXT NOT NULL,
     port INTEGER NOT NULL,
     method TEXT NOT NULL,
     allowed INTEGER NOT NULL,
     reason TEXT NOT NULL,
     bytes_up INTEGER NOT NULL,
     bytes_down INTEGER NOT NULL,
     duration_ms REAL NOT NULL,
     learn INTEGER NOT NULL
   );
   CREATE INDEX network_decisions_sandbox ON network_decisions(sandbox_id, id);
   CREATE TABLE exposures (
     sandbox_id TEXT NOT NULL,
     port INTEGER NOT NULL,
     host_port INTEGER NOT NULL,
     token TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (sandbox_id, port)
   );`,
  // 4: background processes
  `CREATE TABLE processes (
     id TEXT PRIMARY KEY,
     sandbox_id TEXT NOT NULL,
     name TEXT,
     argv_json TEXT NOT NULL,
     spec_json TEXT NOT NULL,
     restart TEXT NOT NULL,
     state TEXT NOT NULL,
     exit_code INTEGER,
     signal TEXT,
     started_at INTEGER NOT NULL,
     ended_at INTEGER,
     runs INTEGER NOT NULL DEFAULT 1
   );
   CREATE INDEX processes_sandbox ON processes(sandbox_id);`,
  // 5: the audit log (append-only, hash-chained; seq is assigned by nook, not SQLite)
  `CREATE TABLE audit (
     seq INTEGER PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     at INTEGER NOT NULL,
     actor TEXT NOT NULL,
     action TEXT NOT NULL,
     sandbox_id TEXT,
     sandbox_name TEXT,
     inputs_json TEXT NOT NULL,
     outcome TEXT NOT NULL,
     result_json TEXT NOT NULL,
     error_code TEXT,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   );
   CREATE INDEX audit_sandbox ON audit(sandbox_name);`,
  // 6: profiles (versioned), host settings, compute accounting
  `CREATE TABLE profiles (
     name TEXT NOT NULL,
     version INTEGER NOT NULL,
     state TEXT NOT NULL,
     spec_json TEXT NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (name, version)
   );
   CREATE TABLE host_config (key TEXT PRIMARY KEY, value_json TEXT NOT NULL);
   ALTER TABLE sandboxes ADD COLUMN compute_ms INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE sandboxes ADD COLUMN running_since INTEGER;`,
  // 7: managed volumes
  `CREATE TABLE volumes (
     name TEXT PRIMARY KEY,
     id TEXT NOT NULL UNIQUE,
     size_mib INTEGER NOT NULL,
     state TEXT NOT NULL,
     key_wrapped TEXT NOT NULL,
     key_id TEXT NOT NULL,
     holder_id TEXT,
     guest_path TEXT,
     rw INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL
   );`,
  // 8: E2B-compatible front: E2B's sandbox ids and what E2B's API reports about them
  `CREATE TABLE foreign_ids (
     foreign_id TEXT PRIMARY KEY,
     sandbox_id TEXT NOT NULL UNIQUE REFERENCES sandboxes(id) ON DELETE CASCADE,
     kind TEXT NOT NULL,
     template TEXT NOT NULL,
     metadata_json TEXT NOT NULL,
     on_expiry TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX foreign_ids_kind ON foreign_ids(kind, created_at);`,
];
