// Database: the SQL engine seam. Everything engine-specific (connection
// set-up, error-code mapping, DDL, transaction-begin syntax, the system
// catalogs, how ids are drawn, how other writers' changes are noticed)
// lives behind this interface, in one file per engine:
// sqlite_database.cc + schema_sqlite.cc, postgres_database.cc +
// schema_postgres.cc. The Catalog and the tools write portable SQL against
// it: `?` placeholders, INSERT ... RETURNING, ON CONFLICT, SAVEPOINT.
//
// Not thread-safe: the Catalog serializes access with its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/status.h"

namespace samplefs {

// A prepared statement, owned by the Database's statement cache and reused.
class Statement {
 public:
  virtual ~Statement() = default;
  // Parameters are 1-based, as in SQL.
  virtual void Bind(int index, int64_t value) = 0;
  virtual void Bind(int index, std::string_view value) = 0;
  virtual void BindNull(int index) = 0;
  // Advances to the next row: true when a row is available, false when the
  // statement is done. Constraint violations come back as kAlreadyExists
  // (unique), kReferenceMissing (foreign key), kInvalidArgument (check);
  // a lock held past the busy timeout as kBusy; a full disk as kNoSpace.
  virtual Result<bool> Step() = 0;
  // Steps until done (for statements that return no rows).
  Status Run();
  // Runs a write whose answer the caller does not need and that is not
  // expected to fail, inside a transaction (an UPDATE of a folder's times,
  // an INSERT ... ON CONFLICT DO NOTHING). An engine behind a server
  // (PostgreSQL) may send it with the next statement whose answer is
  // needed, or with the COMMIT: one round trip for all. Then its failure
  // comes back from that later call or from Commit(), and the whole
  // transaction is rolled back (no savepoint isolates it, unlike Run()).
  // SQLite, and any engine outside a transaction: Run().
  virtual Status Defer() { return Run(); }
  virtual int64_t Int(int column) const = 0;  // 0-based
  virtual std::string Text(int column) const = 0;
  virtual bool IsNull(int column) const = 0;
  // Resets the statement and clears its bindings so it can be reused.
  virtual void Reset() = 0;
};

// Resets a cached statement when leaving scope, so an early return never
// leaves a statement mid-step (which would hold SQLite's read lock).
class StatementScope {
 public:
  explicit StatementScope(Statement& st) : st_(st) {}
  ~StatementScope() { st_.Reset(); }
  Statement* operator->() { return &st_; }
  Statement& operator*() { return st_; }

 private:
  Statement& st_;
};

class Database {
 public:
  virtual ~Database() = default;
  // A cached prepared statement for `sql` (prepared once per connection).
  // kInvalidArgument if the SQL does not compile (a programming error).
  virtual Result<Statement*> Prepare(const std::string& sql) = 0;
  // Runs one or more statements with no parameters (DDL, pragmas).
  virtual Status Exec(const std::string& sql) = 0;
  // Starts the outermost transaction, taking the write lock at once so two
  // writers never deadlock upgrading read locks.
  // `wait_ms` >= 0: how long to wait for another process's write lock,
  // instead of the connection's busy timeout (a background commit that
  // would rather retry later than hold up everyone behind it).
  virtual Status BeginWrite(int wait_ms = -1) = 0;
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;
  // Starts a read-only transaction that sees one snapshot until Commit()
  // (samplectl dump: a consistent document while mounts write).
  virtual Status BeginRead() = 0;
  // Engine name ("sqlite", "postgresql").
  virtual std::string engine() const = 0;
  // Where the catalog is, fit to show (status.json): the SQLite file, or
  // the PostgreSQL URL without its password.
  virtual std::string location() const = 0;
  // A counter that changes when another connection commits: SQLite's
  // PRAGMA data_version; on PostgreSQL the number of change notifications
  // (LISTEN/NOTIFY, sent by triggers) from other sessions, read without a
  // query. Used to invalidate the kernel's caches.
  virtual Result<int64_t> ExternalChangeCounter() = 0;
  // Where other writers' changes are pushed to this connection (PostgreSQL
  // with the listener: NOTIFY), ExternalChangeCounter's value, read without
  // a query: safe from any thread, without the Catalog's lock. nullopt on
  // engines where the counter must be asked for (SQLite).
  virtual std::optional<int64_t> PushedChangeCounter() const { return std::nullopt; }

  // --- what the tools need of the engine's own catalogs -----------------
  struct SchemaPresence {
    bool has_meta = false;  // a table named meta exists (in the current schema)
    int64_t objects = 0;    // tables, views, indexes, sequences, triggers there
  };
  // One snapshot of both, so a concurrent `samplectl init` is seen whole.
  virtual Result<SchemaPresence> InspectSchema() = 0;
  // The engine's own consistency checks (SQLite integrity_check and
  // foreign_key_check; PostgreSQL: foreign keys and unique indexes
  // validated by queries): one line per problem, empty when sound.
  virtual Result<std::vector<std::string>> IntegrityProblems() = 0;
  // The tables and views a user may query, sorted (tables first), and the
  // columns of one in order (empty if it does not exist).
  virtual Result<std::vector<std::string>> ListRelations() = 0;
  virtual Result<std::vector<std::string>> ColumnsOf(const std::string& relation) = 0;
  // An SQL expression that yields `expr`'s type as "integer", "text",
  // "real" or "null" (samplectl export writes JSON numbers as numbers).
  virtual std::string TypeOfSql(const std::string& expr) const = 0;

  // The SQL expression that yields a new, never used id for `table`
  // (SQLite: one more than any id the table ever held; PostgreSQL: the
  // table's identity sequence, safe with many writers).
  virtual std::string NewIdSql(const std::string& table) const = 0;
  // The DDL of the current schema and the migration from `from` to from+1.
  virtual std::string SchemaSql() const = 0;
  virtual std::string MigrationSql(int from_version) const = 0;
  // Run on every connection once the schema is current: what the engine
  // needs so that no id is ever reused (see NewIdSql in catalog.cc).
  virtual std::string SessionSql() const = 0;

  // Called when the connection to a database server is lost (`up` false,
  // with the reason) and when it is made again: once each per outage, from
  // the thread that noticed (holding the catalog). Engines without a
  // server (SQLite) never call it.
  using ConnectionObserver = std::function<void(bool up, const std::string& message)>;
  virtual void SetConnectionObserver(ConnectionObserver observer) { (void)observer; }

  // Another connection to the same catalog, for reads only (Catalog
  // readers): an SQLite WAL reader with query_only set; a PostgreSQL
  // session in READ COMMITTED with default_transaction_read_only, without
  // the listener. kInvalidArgument where there is no "same catalog" to reach
  // (an in-memory SQLite database).
  virtual Result<std::unique_ptr<Database>> OpenReader() {
    return Status(Code::kInvalidArgument, "this " + engine() + " catalog has no reader connections");
  }
};

struct DatabaseOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
  bool create = true;  // create the file if missing (mode 0600)
  // PostgreSQL: listen for other sessions' changes (a second connection;
  // only mounts need it).
  bool listen = false;
};

// Opens an SQLite catalog file (":memory:" for tests).
Result<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path,
                                                    const DatabaseOptions& options);
// Opens a PostgreSQL catalog through libpq. `url` is a libpq connection URI
// (postgresql://user@host:5432/db?sslmode=...) or key=value string;
// passwords come the libpq way (~/.pgpass, PGPASSFILE, PGSERVICE,
// PGPASSWORD), and no message ever contains one (RedactCatalogUrl).
// Unreachable server: kUnavailable.
Result<std::unique_ptr<Database>> OpenPostgresDatabase(const std::string& url,
                                                      const DatabaseOptions& options);
// Picks the engine from the catalog setting: postgresql:// or postgres://
// URLs open PostgreSQL; sqlite:///abs/path and plain paths open SQLite.
Result<std::unique_ptr<Database>> OpenDatabase(const std::string& catalog,
                                              const DatabaseOptions& options);

// True for a catalog given as a PostgreSQL URL (postgresql:// or postgres://).
bool IsPostgresUrl(const std::string& catalog);
// The SQLite file a catalog setting names ("sqlite:///x" -> "/x"), or the
// setting itself.
std::string SqlitePathOf(const std::string& catalog);
// The catalog setting fit for logs, status.json and messages: a password in
// the URL (user:secret@, password=secret) replaced by "***".
std::string RedactCatalogUrl(const std::string& catalog);

}  // namespace samplefs
