// Database: the SQL engine seam. Everything engine-specific (connection
// set-up, error-code mapping, DDL, transaction-begin syntax) lives behind
// this interface, in one file per engine (sqlite_database.cc today,
// postgres_database.cc for a facility). The Catalog writes portable SQL
// against it: `?` placeholders, INSERT ... RETURNING, ON CONFLICT, SAVEPOINT.
//
// Not thread-safe: the Catalog serializes access with its own mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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
  // Engine name ("sqlite", "postgresql").
  virtual std::string engine() const = 0;
  // A counter that changes when another connection commits (SQLite's
  // PRAGMA data_version); used to invalidate the kernel's caches.
  virtual Result<int64_t> ExternalChangeCounter() = 0;
  // The DDL of the current schema and the migration from `from` to from+1.
  virtual std::string SchemaSql() const = 0;
  virtual std::string MigrationSql(int from_version) const = 0;
  // Run on every connection once the schema is current: what the engine
  // needs so that no id is ever reused (see NewIdSql in catalog.cc).
  virtual std::string SessionSql() const = 0;
};

struct DatabaseOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
  bool create = true;  // create the file if missing (mode 0600)
};

// Opens an SQLite catalog file (":memory:" for tests).
Result<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path,
                                                    const DatabaseOptions& options);

}  // namespace samplefs
