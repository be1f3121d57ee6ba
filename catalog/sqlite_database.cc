// The SQLite engine: connection set-up, the statement cache, error mapping
// and the schema DDL. Everything SQLite-specific in catalog/ is in this file.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <list>
#include <thread>
#include <unordered_map>

#include "catalog/database.h"
#include "catalog/schema.h"
#include "catalog/unique_fd.h"

namespace samplefs {

namespace {

Status SqliteStatus(sqlite3* db, int rc, const std::string& context) {
  int ext = sqlite3_extended_errcode(db);
  std::string msg = context + ": " + sqlite3_errmsg(db);
  switch (ext) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Status(Code::kAlreadyExists, msg);
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Status(Code::kReferenceMissing, msg);
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return Status(Code::kInvalidArgument, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Status(Code::kBusy, msg);
    case SQLITE_FULL: return Status(Code::kNoSpace, msg, ENOSPC);
    case SQLITE_READONLY: return Status(Code::kReadOnly, msg);
    case SQLITE_TOOBIG: return Status(Code::kTooBig, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return Status(Code::kCorrupt, msg);
    case SQLITE_CANTOPEN: return Status(Code::kNotFound, msg);
    default: return Status(Code::kIo, msg, EIO);
  }
}

class SqliteStatement final : public Statement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* st) : db_(db), st_(st) {}
  ~SqliteStatement() override { sqlite3_finalize(st_); }
  // Stepped and not reset yet: someone is reading its rows.
  bool busy() const { return sqlite3_stmt_busy(st_) != 0; }
  void Bind(int i, int64_t v) override { sqlite3_bind_int64(st_, i, v); }
  void Bind(int i, std::string_view v) override {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) override { sqlite3_bind_null(st_, i); }
  Result<bool> Step() override {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    Status s = SqliteStatus(db_, rc, "SQL failed");
    sqlite3_reset(st_);
    return s;
  }
  int64_t Int(int c) const override { return sqlite3_column_int64(st_, c); }
  std::string Text(int c) const override {
    const auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, c))
             : std::string();
  }
  bool IsNull(int c) const override { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  void Reset() override {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_;
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(sqlite3* db, const DatabaseOptions& options, std::string path)
      : db_(db), busy_timeout_ms_(options.busy_timeout_ms), read_only_(options.read_only), path_(std::move(path)) {}
  ~SqliteDatabase() override {
    cache_.clear();  // finalize statements before closing
    lru_.clear();
    sqlite3_close(db_);
  }

  Result<Statement*> Prepare(const std::string& sql) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.statement.get();
    }
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) {
      // A plain SQLITE_ERROR here is SQL that does not compile (syntax, a
      // missing table): a programming error, kInvalidArgument as the
      // interface says, not an I/O error. Busy, corrupt etc. keep theirs.
      Status s = SqliteStatus(db_, rc, "cannot prepare [" + sql + "]");
      if ((rc & 0xff) == SQLITE_ERROR) return Status(Code::kInvalidArgument, s.message());
      return s;
    }
    auto owned = std::make_unique<SqliteStatement>(db_, st);
    Statement* raw = owned.get();
    lru_.push_front(sql);
    cache_.emplace(sql, Cached{std::move(owned), lru_.begin()});
    Evict();
    return raw;
  }

  Status Exec(const std::string& sql) override {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      // Name the statement (its start): a failed pragma, a failed migration
      // step and a failed savepoint otherwise read the same.
      size_t start = sql.find_first_not_of(" \t\n");
      std::string head = start == std::string::npos ? std::string() : sql.substr(start);
      head = head.substr(0, head.find_first_of(";\n"));
      if (head.size() > 60) head = head.substr(0, 60) + "...";
      Status s = SqliteStatus(db_, rc, "SQL failed [" + head + "]");
      sqlite3_free(err);
      return s;
    }
    return Status::Ok();
  }

  Status BeginWrite(int wait_ms) override {
    if (wait_ms < 0) return Exec("BEGIN IMMEDIATE");
    sqlite3_busy_timeout(db_, wait_ms);
    Status s = Exec("BEGIN IMMEDIATE");
    sqlite3_busy_timeout(db_, busy_timeout_ms_);  // the write lock is ours (or not) now
    return s;
  }
  Status Commit() override { return Exec("COMMIT"); }
  Status Rollback() override {
    // After some errors SQLite has already rolled back; that is fine.
    if (sqlite3_get_autocommit(db_)) return Status::Ok();
    return Exec("ROLLBACK");
  }
  // Deferred: the read snapshot starts at the first SELECT and lasts (WAL)
  // until COMMIT, without blocking writers.
  Status BeginRead() override { return Exec("BEGIN"); }
  std::string engine() const override { return "sqlite"; }
  std::string location() const override { return path_; }

  Result<SchemaPresence> InspectSchema() override {
    SFS_ASSIGN_OR_RETURN(Statement * st,
                         Prepare("SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                 "name = 'meta'), (SELECT count(*) FROM sqlite_master)"));
    StatementScope scope(*st);
    SFS_ASSIGN_OR_RETURN(bool row, st->Step());
    SchemaPresence p;
    if (row) {
      p.has_meta = st->Int(0) > 0;
      p.objects = st->Int(1);
    }
    return p;
  }

  Result<std::vector<std::string>> IntegrityProblems() override {
    std::vector<std::string> out;
    SFS_RETURN_IF_ERROR(ForText("PRAGMA integrity_check", [&](Statement& st) {
      if (st.Text(0) != "ok") out.push_back(st.Text(0));
    }));
    SFS_RETURN_IF_ERROR(ForText("PRAGMA foreign_key_check", [&](Statement& st) {
      out.push_back(st.Text(0) + " row " + std::to_string(st.Int(1)) + " refers to a missing " +
                    st.Text(2) + " row");
    }));
    return out;
  }

  Result<std::vector<std::string>> ListRelations() override {
    std::vector<std::string> out;
    SFS_RETURN_IF_ERROR(ForText("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name "
                                "NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
                                [&](Statement& st) { out.push_back(st.Text(0)); }));
    return out;
  }
  Result<std::vector<std::string>> ColumnsOf(const std::string& relation) override {
    std::vector<std::string> out;
    SFS_ASSIGN_OR_RETURN(Statement * st, Prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid"));
    StatementScope scope(*st);
    st->Bind(1, std::string_view(relation));
    for (;;) {
      SFS_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back(st->Text(0));
    }
    return out;
  }
  std::string TypeOfSql(const std::string& expr) const override { return "typeof(" + expr + ")"; }

  // One more than any id the table ever had. A plain INTEGER PRIMARY KEY
  // takes max(id) + 1, so the next record would reuse the id of a newest
  // record just deleted, and an open file, a cached node or an export
  // naming the old record would then reach the new one. The ids of deleted
  // newest rows are kept in meta ('id_floor.<table>') by SessionSql's TEMP
  // triggers. Safe because SQLite has one writer at a time (BEGIN
  // IMMEDIATE); PostgreSQL uses sequences instead.
  std::string NewIdSql(const std::string& table) const override {
    return "(SELECT coalesce(max(x), 0) + 1 FROM (SELECT max(id) AS x FROM " + table +
           " UNION ALL SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'id_floor." + table + "') AS ids)";
  }

  Result<int64_t> ExternalChangeCounter() override {
    SFS_ASSIGN_OR_RETURN(Statement * st, Prepare("PRAGMA data_version"));
    StatementScope scope(*st);
    SFS_ASSIGN_OR_RETURN(bool row, st->Step());
    return row ? st->Int(0) : int64_t{0};
  }

  std::string SchemaSql() const override { return SqliteSchemaSql(); }
  std::string MigrationSql(int from) const override { return SqliteMigrationSql(from); }
  std::string SessionSql() const override { return SqliteSessionSql(); }

  // A WAL reader: each statement reads the newest committed snapshot and
  // never waits for the writer (WAL readers and the writer do not block
  // each other). query_only: a programming error that writes through a
  // reader fails instead of bypassing the writer's lock order.
  Result<std::unique_ptr<Database>> OpenReader() override {
    if (path_ == ":memory:") return Database::OpenReader();
    DatabaseOptions o;
    o.busy_timeout_ms = busy_timeout_ms_;
    o.read_only = read_only_;
    o.create = false;
    SFS_ASSIGN_OR_RETURN(auto reader, OpenSqliteDatabase(path_, o));
    // A smaller page cache than the writer's 64 MiB: a mount keeps several
    // readers, and the kernel's page cache holds the file besides.
    SFS_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only=1; PRAGMA cache_size=-16384;"));
    return reader;
  }

 private:
  template <class F>
  Status ForText(const std::string& sql, F fn) {
    SFS_ASSIGN_OR_RETURN(Statement * st, Prepare(sql));
    StatementScope scope(*st);
    for (;;) {
      SFS_ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) return Status::Ok();
      fn(*st);
    }
  }

  // Bounded: the query directories build new SQL for every expression a
  // user types, so an unbounded cache grew with every query ever listed
  // (each prepared statement holds its compiled program). The least
  // recently prepared go first; one still being stepped is kept (its
  // caller holds it), so a caller's statement stays valid until it is
  // reset, which StatementScope does at the end of every use.
  static constexpr size_t kMaxCachedStatements = 256;
  struct Cached {
    std::unique_ptr<SqliteStatement> statement;
    std::list<std::string>::iterator lru;
  };
  void Evict() {
    auto it = lru_.end();
    while (cache_.size() > kMaxCachedStatements && it != lru_.begin()) {
      --it;
      auto c = cache_.find(*it);
      if (c->second.statement->busy()) continue;
      cache_.erase(c);
      it = lru_.erase(it);
    }
  }

  sqlite3* db_;
  int busy_timeout_ms_;
  bool read_only_;
  std::string path_;
  std::list<std::string> lru_;  // most recently prepared first
  std::unordered_map<std::string, Cached> cache_;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path,
                                                    const DatabaseOptions& options) {
  bool memory = path == ":memory:" || path.empty();
  if (!memory && options.create && !options.read_only) {
    // Create the file ourselves so that it is 0600 whatever the umask.
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return Status::FromErrno(errno, "cannot create catalog " + path);
  }
  int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  // An in-memory catalog is always created read-write (READONLY together
  // with READWRITE is not a valid combination for sqlite3_open_v2).
  if (memory) flags |= SQLITE_OPEN_MEMORY | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  else flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(memory ? ":memory:" : path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = db ? SqliteStatus(db, rc, "cannot open catalog " + path)
                  : Status(Code::kIo, "cannot open catalog " + path);
    sqlite3_close(db);
    return s;
  }
  auto database = std::make_unique<SqliteDatabase>(db, options, memory ? ":memory:" : path);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  // WAL lets samplectl, sqlite3 and pandas read while the mount writes;
  // synchronous=NORMAL is durable across application crashes in WAL mode,
  // and object data is fsynced separately before any commit names it.
  // A 64 MiB page cache (SQLite's default is 2 MiB): a transaction that
  // records 100,000 files otherwise spills dirty pages to the WAL halfway,
  // and lookups in a catalog of a million files miss the cache (see
  // tests/bench/README.md). It is an upper bound, allocated as used.
  SFS_RETURN_IF_ERROR(database->Exec(
      "PRAGMA foreign_keys=ON; PRAGMA recursive_triggers=ON; PRAGMA cache_size=-65536;"));
  if (!memory && !options.read_only) {
    // Switching a new file to WAL needs an exclusive lock, and SQLite does
    // not call the busy handler for it: two processes opening a new catalog
    // at once (samplectl and a mount) would see "database is locked". Retry
    // for the busy timeout instead.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
    for (;;) {
      Status s = database->Exec("PRAGMA journal_mode=WAL");
      if (s.ok()) break;
      if (s.code() != Code::kBusy || std::chrono::steady_clock::now() >= deadline) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    SFS_RETURN_IF_ERROR(database->Exec("PRAGMA synchronous=NORMAL"));
  }
  return std::unique_ptr<Database>(std::move(database));
}

}  // namespace samplefs
