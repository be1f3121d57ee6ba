// The PostgreSQL engine (facility mode, SPEC section 6): libpq connection
// set-up, the statement cache, SQLSTATE mapping, reconnection and change
// notifications. Everything PostgreSQL-specific in catalog/ is in this file
// and schema_postgres.cc.
//
// Differences from SQLite the Catalog must not notice:
//   - `?` placeholders become $1, $2 ... when a statement is prepared.
//   - An error inside a transaction aborts the whole transaction in
//     PostgreSQL, while SQLite undoes only the failed statement; the Catalog
//     relies on the latter (an INSERT that meets a unique key is answered
//     with EEXIST and the caller's transaction goes on). So a writing
//     statement inside a transaction runs inside its own savepoint, rolled
//     back alone when it fails.
//   - A lost connection is reconnected at the next call, never in the
//     middle of a transaction: once a transaction lost its connection every
//     call fails until the Catalog rolls it back, so nothing is ever
//     half-recorded.
//   - Every statement is a round trip to the server (~0.24 ms on a loaded
//     machine). A transaction's BEGIN and its deferred writes
//     (Statement::Defer) are not sent alone: they wait, in libpq's pipeline
//     mode, for the next statement whose answer is needed or for the
//     COMMIT, and go with it. A tag edit is two round trips: BEGIN with
//     the reads, the writes with COMMIT.
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "catalog/database.h"
#include "catalog/schema.h"

namespace samplefs {

namespace {

constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;

// libpq's messages end in a newline and may span lines; one line reads
// better in logs and .samplefs/errors.
std::string OneLine(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

// The errno a lost or refused connection reaches the kernel with: the
// committer retries kIo later (as with a locked catalog), and `ls` prints
// "Connection refused", which says what is wrong.
constexpr const char* kUnreachablePrefix = "catalog database unreachable: ";
Status Unreachable(const std::string& msg) {
  return Status(Code::kIo, kUnreachablePrefix + msg, ECONNREFUSED);
}

Status PgStatus(PGconn* conn, const PGresult* res, const std::string& context) {
  if (PQstatus(conn) == CONNECTION_BAD) return Unreachable(OneLine(PQerrorMessage(conn)));
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = context + ": " + OneLine(res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
  std::string st = state ? state : "";
  if (st == "23505") return Status(Code::kAlreadyExists, msg);
  if (st == "23503") return Status(Code::kReferenceMissing, msg);
  if (st.rfind("23", 0) == 0 || st.rfind("22", 0) == 0) return Status(Code::kInvalidArgument, msg);
  // Serialization failure, deadlock, lock timeout, canceled statement (a
  // statement_timeout): someone else held what we needed; try again later.
  if (st == "40001" || st == "40P01" || st == "55P03" || st == "57014") return Status(Code::kBusy, msg);
  if (st == "53100") return Status(Code::kNoSpace, msg, ENOSPC);
  if (st == "25006") return Status(Code::kReadOnly, msg);
  if (st == "54000") return Status(Code::kTooBig, msg);
  if (st.rfind("42", 0) == 0) return Status(Code::kInvalidArgument, msg);
  if (st.rfind("08", 0) == 0 || st.rfind("57P", 0) == 0) return Unreachable(msg);
  if (st == "28000" || st == "28P01" || st == "42501") return Status(Code::kPermission, msg, EACCES);
  return Status(Code::kIo, msg, EIO);
}

// `?` -> `$n` and `?NNN` -> `$NNN` (SQLite's numbered form), outside
// quoted strings and identifiers. `count` is the number of parameters.
std::string Numbered(const std::string& sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  char quote = 0;
  int n = 0, highest = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      if (c == quote) quote = 0;
      out += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      out += c;
    } else if (c == '?') {
      size_t j = i + 1;
      while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
      int k = j > i + 1 ? std::atoi(sql.substr(i + 1, j - i - 1).c_str()) : ++n;
      highest = std::max(highest, k);
      out += '$';
      out += std::to_string(k);
      i = j - 1;
    } else {
      out += c;
    }
  }
  *count = highest;
  return out;
}

std::string FirstWord(const std::string& sql) {
  size_t b = sql.find_first_not_of(" \t\n(");
  if (b == std::string::npos) return "";
  size_t e = b;
  while (e < sql.size() && std::isalpha(static_cast<unsigned char>(sql[e]))) ++e;
  std::string w = sql.substr(b, e - b);
  for (char& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return w;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

class PostgresDatabase;

class PostgresStatement final : public Statement {
 public:
  PostgresStatement(PostgresDatabase* db, std::string sql, int nparams, std::string name)
      : db_(db), sql_(std::move(sql)), name_(std::move(name)), params_(nparams), types_(nparams, 0) {
    std::string w = FirstWord(sql_);
    // Utility and transaction-control statements cannot be prepared
    // server-side; everything else is (so bad SQL fails at Prepare).
    preparable_ = true;
    for (const char* u : {"SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "END", "START", "SET",
                          "RESET", "SHOW", "LISTEN", "UNLISTEN", "NOTIFY", "CREATE", "DROP", "ALTER",
                          "TRUNCATE", "VACUUM", "ANALYZE", "LOCK", "GRANT", "REVOKE", "COMMENT"})
      if (w == u) preparable_ = false;
    writes_ = w == "INSERT" || w == "UPDATE" || w == "DELETE";
  }
  void Bind(int i, int64_t v) override {
    if (i < 1 || i > static_cast<int>(params_.size())) return;
    params_[i - 1] = std::to_string(v);
    types_[i - 1] = kInt8Oid;
  }
  void Bind(int i, std::string_view v) override {
    if (i < 1 || i > static_cast<int>(params_.size())) return;
    params_[i - 1] = std::string(v);
    types_[i - 1] = kTextOid;
  }
  void BindNull(int i) override {
    if (i < 1 || i > static_cast<int>(params_.size())) return;
    params_[i - 1].reset();
  }
  Result<bool> Step() override;
  Status Defer() override;
  int64_t Int(int c) const override {
    if (!res_ || PQgetisnull(res_.get(), row_, c)) return 0;
    const char* v = PQgetvalue(res_.get(), row_, c);
    if (v[0] == 't' && v[1] == 0) return 1;  // booleans (EXISTS, comparisons)
    if (v[0] == 'f' && v[1] == 0) return 0;
    return std::strtoll(v, nullptr, 10);
  }
  std::string Text(int c) const override {
    if (!res_ || PQgetisnull(res_.get(), row_, c)) return {};
    return std::string(PQgetvalue(res_.get(), row_, c), PQgetlength(res_.get(), row_, c));
  }
  bool IsNull(int c) const override { return !res_ || PQgetisnull(res_.get(), row_, c); }
  void Reset() override {
    res_.reset();
    executed_ = false;
    row_ = -1;
    for (auto& p : params_) p.reset();
    std::fill(types_.begin(), types_.end(), 0);
  }

 private:
  friend class PostgresDatabase;
  PostgresDatabase* db_;
  std::string sql_;   // with $n placeholders
  std::string name_;  // of the server-side prepared statement
  std::vector<std::optional<std::string>> params_;
  std::vector<Oid> types_;
  bool preparable_ = false;
  bool writes_ = false;
  uint64_t prepared_in_ = 0;  // the connection generation it was prepared on
  PgResult res_;
  bool executed_ = false;
  int row_ = -1;
};

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::string url, DatabaseOptions options) : url_(std::move(url)), options_(options) {}
  ~PostgresDatabase() override {
    StopListener();
    cache_.clear();
    if (conn_) PQfinish(conn_);
  }

  void SetConnectionObserver(ConnectionObserver observer) override { observer_ = std::move(observer); }

  // A session of its own, read-only, without the listener: in READ
  // COMMITTED each statement sees what was committed before it began, and
  // no row lock a writer holds delays a plain SELECT.
  Result<std::unique_ptr<Database>> OpenReader() override;

  // An outage begins with the first failure that says the server is gone
  // (reported once), and ends with the next connection made.
  Status Watch(Status s) {
    if (!down_ && s.code() == Code::kIo && s.message().rfind(kUnreachablePrefix, 0) == 0 &&
        (!conn_ || PQstatus(conn_) != CONNECTION_OK)) {
      down_ = true;
      if (observer_) observer_(false, s.message().substr(std::strlen(kUnreachablePrefix)));
    }
    return s;
  }

  Status Connect() {
    if (conn_) PQfinish(conn_);
    sent_.clear();
    deferred_error_ = Status::Ok();
    conn_ = ConnectNew(url_, options_);
    if (PQstatus(conn_) != CONNECTION_OK) return Watch(Unreachable(OneLine(PQerrorMessage(conn_))));
    if (down_) {
      down_ = false;
      if (observer_) observer_(true, "connected again to " + RedactCatalogUrl(url_));
    }
    ++generation_;
    connects_->fetch_add(1);
    backend_pid_.store(PQbackendPID(conn_));
    // The busy timeout's counterpart: how long a statement waits for a
    // row lock another session holds.
    std::string setup = "SET lock_timeout = " + std::to_string(options_.busy_timeout_ms) +
                        "; SET client_min_messages = warning;";
    if (options_.read_only) setup += " SET default_transaction_read_only = on;";
    return ExecRaw(setup);
  }

  static PGconn* ConnectNew(const std::string& url, const DatabaseOptions& options) {
    // The URL (or key=value string) is expanded as "dbname"; its values
    // override the defaults before it. libpq itself reads ~/.pgpass,
    // PGPASSFILE, PGSERVICE and the PG* environment.
    std::string timeout = std::to_string(std::max(1, options.busy_timeout_ms / 1000));
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), "samplefs", url.c_str(), nullptr};
    return PQconnectdbParams(keys, values, 1);
  }

  // Before every call: a lost connection is re-made, unless a transaction
  // was open on it (then the caller must roll back first).
  Status Ready() {
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return Status::Ok();
    return Watch(Reconnect());
  }
  // During an outage a session tries again at most every 500 ms, unless
  // another session of this catalog (the writer, a reader) connected since
  // its last try: the server is back, and a lookup right after the mount's
  // first successful write must not fail for the rest of the 500 ms.
  Status Reconnect() {
    if (txn_open_) return Unreachable("the connection was lost during a transaction");
    auto now = std::chrono::steady_clock::now();
    const uint64_t connects = connects_->load();
    if (conn_ && now < next_reconnect_ && connects == connects_seen_)
      return Unreachable(OneLine(PQerrorMessage(conn_)) + " (reconnecting)");
    next_reconnect_ = now + std::chrono::milliseconds(500);
    connects_seen_ = connects;
    return Connect();
  }

  Status ExecRaw(const std::string& sql) {
    SFS_RETURN_IF_ERROR(Settle());
    return Watch(ExecRawOnce(sql));
  }
  Status ExecRawOnce(const std::string& sql) {
    PgResult r(PQexec(conn_, sql.c_str()));
    auto st = PQresultStatus(r.get());
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return Status::Ok();
    std::string head = sql.substr(0, sql.find_first_of(";\n"));
    if (head.size() > 60) head = head.substr(0, 60) + "...";
    return PgStatus(conn_, r.get(), "SQL failed [" + head + "]");
  }

  Result<Statement*> Prepare(const std::string& sql) override {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second.get();
    int n = 0;
    std::string numbered = Numbered(sql, &n);
    auto owned = std::make_unique<PostgresStatement>(this, numbered, n,
                                                     "s" + std::to_string(++statements_));
    // Prepared at once with the parameter types left to the server, so SQL
    // that does not compile fails here as the interface says. Where the
    // server cannot infer a type (`? IS NULL`), the statement is prepared
    // at its first execution with the types of the values bound then.
    if (owned->preparable_) {
      SFS_RETURN_IF_ERROR(Ready());
      SFS_RETURN_IF_ERROR(Settle());  // PQprepare waits for its answer
      PgResult p(PQprepare(conn_, owned->name_.c_str(), owned->sql_.c_str(), 0, nullptr));
      if (PQresultStatus(p.get()) == PGRES_COMMAND_OK) {
        owned->prepared_in_ = generation_;
      } else {
        const char* state = PQresultErrorField(p.get(), PG_DIAG_SQLSTATE);
        if (!state || std::strcmp(state, "42P18") != 0)
          return PgStatus(conn_, p.get(), "cannot prepare [" + sql + "]");
        if (PQtransactionStatus(conn_) == PQTRANS_INERROR)
          return PgStatus(conn_, p.get(), "cannot prepare [" + sql + "]");
      }
    }
    Statement* raw = owned.get();
    cache_.emplace(sql, std::move(owned));
    return raw;
  }

  // Runs a statement (the Step of a fresh execution).
  //
  // A reader (a read-only session outside any transaction: Catalog
  // readers) whose connection died while it sat idle in the pool (the
  // server restarted, failed over, or ended the session) learns so only
  // from the next statement; that statement is run once more on a new
  // connection instead of failing a lookup or readdir after the server is
  // back. Reads outside a transaction are safe to repeat; the writer is
  // not retried (a write may have been applied before the connection broke).
  Status Execute(PostgresStatement& st) {
    // Only a connection that looked alive: during an outage a dead one
    // keeps failing at once (Reconnect's pace), without a second attempt.
    const bool was_up = conn_ && PQstatus(conn_) == CONNECTION_OK;
    Status s = ExecuteOnce(st);
    if (!s.ok() && was_up && options_.read_only && !txn_open_ && PQstatus(conn_) == CONNECTION_BAD)
      s = ExecuteOnce(st);
    return Watch(s);
  }
  Status ExecuteOnce(PostgresStatement& st) {
    // A deferred write failed: the transaction is lost, say why.
    if (!deferred_error_.ok()) return deferred_error_;
    SFS_RETURN_IF_ERROR(Ready());
    const int n = static_cast<int>(st.params_.size());
    std::vector<const char*> values(n);
    for (int i = 0; i < n; ++i) values[i] = st.params_[i] ? st.params_[i]->c_str() : nullptr;
    // A failed write in a transaction must not abort the transaction.
    const bool guard = st.writes_ && InTransaction();
    // With what is waiting in the pipeline (a deferred BEGIN, deferred
    // writes), or in a savepoint of its own: one round trip.
    if (Pipelinable(st) && (guard || !sent_.empty())) return ExecuteInPipeline(st, n, values.data(), guard);
    SFS_RETURN_IF_ERROR(Settle());
    if (guard) SFS_RETURN_IF_ERROR(ExecRaw("SAVEPOINT samplefs_stmt"));
    PGresult* res = nullptr;
    if (st.preparable_) {
      if (st.prepared_in_ != generation_) {
        PgResult p(PQprepare(conn_, st.name_.c_str(), st.sql_.c_str(), n, st.types_.data()));
        if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) {
          Status s = PgStatus(conn_, p.get(), "cannot prepare [" + st.sql_ + "]");
          if (guard) RollbackStatement();
          return s;
        }
        st.prepared_in_ = generation_;
      }
      res = PQexecPrepared(conn_, st.name_.c_str(), n, values.data(), nullptr, nullptr, 0);
    } else {
      res = PQexecParams(conn_, st.sql_.c_str(), n, st.types_.data(), values.data(), nullptr, nullptr, 0);
    }
    PgResult r(res);
    auto rs = PQresultStatus(r.get());
    if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) {
      Status s = PgStatus(conn_, r.get(), "SQL failed");
      if (guard) RollbackStatement();
      return s;
    }
    if (guard) SFS_RETURN_IF_ERROR(ExecRaw("RELEASE SAVEPOINT samplefs_stmt"));
    st.res_ = std::move(r);
    return Status::Ok();
  }

  bool InTransaction() const { return txn_open_ || PQtransactionStatus(conn_) == PQTRANS_INTRANS; }
  // Whether `st` can be sent without waiting: prepared on this connection
  // (or never prepared: utility statements).
  bool Pipelinable(const PostgresStatement& st) const {
    return !st.preparable_ || st.prepared_in_ == generation_;
  }

  // --- the pipeline -----------------------------------------------------
  // Commands sent and not answered yet (libpq pipeline mode), in order: a
  // transaction's BEGIN and its deferred writes, then the commands of the
  // call that needs an answer now. Sync() reads every answer back: one
  // round trip for all. Each round trip is a switch to the server process
  // and back; a `cp -r` of 10,000 files made some 60,000 of them for
  // savepoints alone, a tag edit twelve (tests/bench/README.md,
  // "Facility: SQLite and PostgreSQL").
  struct Sent {
    std::string what;  // the SQL, for messages
    bool deferred;
  };
  static constexpr size_t kMaxUnanswered = 256;  // then synced: libpq's buffers stay small

  Status EnterPipeline() {
    if (PQpipelineStatus(conn_) != PQ_PIPELINE_OFF) return Status::Ok();
    if (PQenterPipelineMode(conn_) != 1) return PgStatus(conn_, nullptr, "cannot enter pipeline mode");
    return Status::Ok();
  }
  bool SendText(const std::string& sql, bool deferred) {
    if (PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) return false;
    sent_.push_back({sql, deferred});
    return true;
  }
  bool SendStatement(PostgresStatement& st, int n, const char* const* values, bool deferred) {
    int ok = st.preparable_
                 ? PQsendQueryPrepared(conn_, st.name_.c_str(), n, values, nullptr, nullptr, 0)
                 : PQsendQueryParams(conn_, st.sql_.c_str(), n, st.types_.data(), values, nullptr, nullptr, 0);
    if (ok != 1) return false;
    sent_.push_back({st.sql_, deferred});
    return true;
  }
  // A command could not be sent (the connection broke): what was sent is
  // read back and dropped.
  Status SendFailed() {
    Status s = PgStatus(conn_, nullptr, "cannot send a statement");
    std::vector<PgResult> ignored;
    (void)Sync(&ignored);
    return Watch(s);
  }

  // Sends a sync and reads one result per command sent (`results`, in
  // order), then leaves pipeline mode. The first failure of a deferred
  // command is returned (and kept: the transaction is lost; every later
  // command was skipped by the server), as is a lost connection; the
  // caller judges its own commands' results.
  Status Sync(std::vector<PgResult>* results) {
    std::vector<Sent> sent = std::move(sent_);
    sent_.clear();
    results->clear();
    results->resize(sent.size());
    bool ok = PQpipelineSync(conn_) == 1;
    for (size_t i = 0; ok && i < sent.size(); ++i) {
      // A command's results, then a null; a null first: nothing more comes.
      while (PGresult* r = PQgetResult(conn_)) {
        if (!(*results)[i]) (*results)[i].reset(r);
        else PQclear(r);
      }
      ok = (*results)[i] != nullptr;
    }
    bool synced = false;
    if (ok) {
      PGresult* r = PQgetResult(conn_);
      synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
      PQclear(r);
    }
    if (PQexitPipelineMode(conn_) != 1) {
      // Still in pipeline mode with commands pending: this connection can
      // run nothing else. Dropped; the next call reconnects (the open
      // transaction, if any, is reported lost).
      Status s = Unreachable("pipeline left unfinished: " + OneLine(PQerrorMessage(conn_)));
      PQfinish(conn_);
      conn_ = nullptr;
      return s;
    }
    for (size_t i = 0; i < sent.size(); ++i) {
      const PGresult* r = (*results)[i].get();
      if (!r) break;
      auto rs = PQresultStatus(r);
      if (rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK) continue;
      if (rs == PGRES_PIPELINE_ABORTED || !sent[i].deferred) break;  // the caller's to judge
      std::string what = sent[i].what.substr(0, 80) + (sent[i].what.size() > 80 ? "..." : "");
      deferred_error_ = Watch(PgStatus(conn_, r, "SQL failed [" + what + "]"));
      return deferred_error_;
    }
    if (!synced) {
      const PGresult* last = nullptr;
      for (auto& r : *results)
        if (r) last = r.get();
      return Watch(PgStatus(conn_, last, "SQL failed"));
    }
    return Status::Ok();
  }
  // Sends whatever waits in the pipeline and reads the answers (before a
  // command that cannot be pipelined).
  Status Settle() {
    if (sent_.empty() && (!conn_ || PQpipelineStatus(conn_) == PQ_PIPELINE_OFF)) return Status::Ok();
    std::vector<PgResult> ignored;
    return Sync(&ignored);
  }

  // A statement whose answer is needed now, after what waits in the
  // pipeline; a write inside a transaction also in a savepoint of its own
  // (a failure must not abort the transaction): SAVEPOINT, the statement
  // and RELEASE. All in one round trip.
  Status ExecuteInPipeline(PostgresStatement& st, int n, const char* const* values, bool guard) {
    SFS_RETURN_IF_ERROR(EnterPipeline());
    const size_t first = sent_.size();
    bool sent = !guard || SendText("SAVEPOINT samplefs_stmt", false);
    sent = sent && SendStatement(st, n, values, false);
    if (guard) sent = sent && SendText("RELEASE SAVEPOINT samplefs_stmt", false);
    if (!sent) return SendFailed();
    std::vector<PgResult> results;
    SFS_RETURN_IF_ERROR(Sync(&results));
    size_t at = first;
    if (guard && PQresultStatus(results[at++].get()) != PGRES_COMMAND_OK)
      return PgStatus(conn_, results[first].get(), "SQL failed [SAVEPOINT]");
    PgResult& mine = results[at];
    auto rs = PQresultStatus(mine.get());
    if (rs != PGRES_TUPLES_OK && rs != PGRES_COMMAND_OK) {
      Status s = PgStatus(conn_, mine.get(), "SQL failed");
      if (guard) RollbackStatement();
      return s;
    }
    if (guard && PQresultStatus(results[at + 1].get()) != PGRES_COMMAND_OK)
      return PgStatus(conn_, results[at + 1].get(), "SQL failed [RELEASE SAVEPOINT]");
    st.res_ = std::move(mine);
    return Status::Ok();
  }

  // Statement::Defer: inside a transaction, sent now and answered with the
  // next call that needs an answer (or the COMMIT).
  Status Defer(PostgresStatement& st) {
    if (!deferred_error_.ok()) return deferred_error_;
    if (!txn_open_ || !conn_ || PQstatus(conn_) != CONNECTION_OK || !Pipelinable(st)) return st.Run();
    const int n = static_cast<int>(st.params_.size());
    std::vector<const char*> values(n);
    for (int i = 0; i < n; ++i) values[i] = st.params_[i] ? st.params_[i]->c_str() : nullptr;
    SFS_RETURN_IF_ERROR(EnterPipeline());
    if (!SendStatement(st, n, values.data(), true)) return SendFailed();
    st.executed_ = true;
    st.res_.reset();
    if (sent_.size() >= kMaxUnanswered) return Settle();
    return Status::Ok();
  }

  void RollbackStatement() {
    if (PQstatus(conn_) != CONNECTION_OK) return;
    (void)ExecRaw("ROLLBACK TO SAVEPOINT samplefs_stmt; RELEASE SAVEPOINT samplefs_stmt");
  }

  Status Exec(const std::string& sql) override {
    SFS_RETURN_IF_ERROR(Ready());
    return ExecRaw(sql);
  }

  // BEGIN is not sent alone: it waits in the pipeline for the
  // transaction's first statement (PostgreSQL takes no lock at BEGIN, so
  // nothing is lost by starting later). Should it fail, that statement
  // says so.
  Status BeginWrite(int wait_ms) override {
    SFS_RETURN_IF_ERROR(Ready());
    SFS_RETURN_IF_ERROR(Settle());
    deferred_error_ = Status::Ok();
    SFS_RETURN_IF_ERROR(EnterPipeline());
    bool sent = SendText("BEGIN", true);
    if (wait_ms >= 0)
      sent = sent && SendText("SET LOCAL lock_timeout = " + std::to_string(std::max(wait_ms, 1)), true);
    if (!sent) return SendFailed();
    txn_open_ = true;
    return Status::Ok();
  }
  Status BeginRead() override {
    SFS_RETURN_IF_ERROR(Ready());
    Status s = ExecRaw("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (s.ok()) txn_open_ = true;
    return s;
  }
  Status Commit() override {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      txn_open_ = false;
      sent_.clear();
      deferred_error_ = Status::Ok();
      return Unreachable("the connection was lost before the commit; nothing was recorded");
    }
    if (!deferred_error_.ok()) {
      Status s = deferred_error_;
      (void)Rollback();
      return s;
    }
    if (!sent_.empty()) {
      // The deferred writes and the COMMIT: one round trip.
      const size_t at = sent_.size();
      if (!SendText("COMMIT", false)) {
        Status s = SendFailed();
        (void)Rollback();
        return s;
      }
      std::vector<PgResult> results;
      Status s = Sync(&results);
      if (!s.ok()) {
        (void)Rollback();  // a deferred write failed: the COMMIT was skipped
        return s;
      }
      txn_open_ = false;
      const PGresult* r = results[at].get();
      if (PQresultStatus(r) != PGRES_COMMAND_OK) return PgStatus(conn_, r, "COMMIT failed");
      if (std::strcmp(PQcmdStatus(const_cast<PGresult*>(r)), "ROLLBACK") == 0)
        return Status(Code::kBusy, "the transaction was rolled back by the server");
      return Status::Ok();
    }
    bool aborted = PQtransactionStatus(conn_) == PQTRANS_INERROR;
    PgResult r(PQexec(conn_, "COMMIT"));
    txn_open_ = false;
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return PgStatus(conn_, r.get(), "COMMIT failed");
    // COMMIT of an aborted transaction "succeeds" as a ROLLBACK.
    if (aborted || std::strcmp(PQcmdStatus(r.get()), "ROLLBACK") == 0)
      return Status(Code::kBusy, "the transaction was rolled back by the server");
    return Status::Ok();
  }
  Status Rollback() override {
    txn_open_ = false;
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      sent_.clear();
      deferred_error_ = Status::Ok();
      return Status::Ok();
    }
    (void)Settle();  // whatever failed there is undone below
    deferred_error_ = Status::Ok();
    if (!conn_ || PQtransactionStatus(conn_) == PQTRANS_IDLE) return Status::Ok();
    return ExecRaw("ROLLBACK");
  }
  std::string engine() const override { return "postgresql"; }
  std::string location() const override { return RedactCatalogUrl(url_); }

  Result<int64_t> ExternalChangeCounter() override { return changes_.load(); }
  std::optional<int64_t> PushedChangeCounter() const override {
    if (!listening_) return std::nullopt;
    return changes_.load();
  }

  Result<SchemaPresence> InspectSchema() override {
    SFS_ASSIGN_OR_RETURN(auto rows,
                         Query("SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = current_schema() AND c.relname = 'meta' "
                               "AND c.relkind IN ('r', 'p')), (SELECT count(*) FROM pg_class c JOIN "
                               "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema())",
                               {}));
    SchemaPresence p;
    if (!rows.empty()) {
      p.has_meta = std::atoll(rows[0][0].c_str()) > 0;
      p.objects = std::atoll(rows[0][1].c_str());
    }
    return p;
  }

  Result<std::vector<std::string>> IntegrityProblems() override {
    // PostgreSQL enforces foreign keys and checks pages itself; what can
    // still be wrong is an index left invalid by a failed CREATE INDEX
    // CONCURRENTLY, or a constraint added NOT VALID by hand.
    std::vector<std::string> out;
    SFS_ASSIGN_OR_RETURN(auto idx, Query("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = "
                                         "i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                                         "WHERE n.nspname = current_schema() AND NOT i.indisvalid",
                                         {}));
    for (auto& r : idx) out.push_back("index " + r[0] + " is invalid (REINDEX it)");
    SFS_ASSIGN_OR_RETURN(auto cons, Query("SELECT conname FROM pg_constraint k JOIN pg_namespace n ON "
                                          "n.oid = k.connamespace WHERE n.nspname = current_schema() "
                                          "AND NOT k.convalidated",
                                          {}));
    for (auto& r : cons) out.push_back("constraint " + r[0] + " is not validated");
    return out;
  }

  Result<std::vector<std::string>> ListRelations() override {
    SFS_ASSIGN_OR_RETURN(auto rows, Query("SELECT table_name FROM information_schema.tables WHERE "
                                          "table_schema = current_schema() ORDER BY table_type, table_name",
                                          {}));
    std::vector<std::string> out;
    for (auto& r : rows) out.push_back(r[0]);
    return out;
  }
  Result<std::vector<std::string>> ColumnsOf(const std::string& relation) override {
    SFS_ASSIGN_OR_RETURN(auto rows, Query("SELECT column_name FROM information_schema.columns WHERE "
                                          "table_schema = current_schema() AND table_name = $1 "
                                          "ORDER BY ordinal_position",
                                          {relation}));
    std::vector<std::string> out;
    for (auto& r : rows) out.push_back(r[0]);
    return out;
  }
  std::string TypeOfSql(const std::string& e) const override {
    return "CASE WHEN " + e + " IS NULL THEN 'null' WHEN pg_typeof(" + e +
           ") IN ('bigint'::regtype, 'integer'::regtype, 'smallint'::regtype) THEN 'integer' "
           "WHEN pg_typeof(" + e + ") IN ('double precision'::regtype, 'real'::regtype, "
           "'numeric'::regtype) THEN 'real' ELSE 'text' END";
  }
  std::string NewIdSql(const std::string& table) const override {
    return "nextval('" + table + "_id_seq')";
  }

  std::string SchemaSql() const override { return PostgresSchemaSql(); }
  std::string MigrationSql(int from) const override { return PostgresMigrationSql(from); }
  std::string SessionSql() const override { return ""; }

  // --- change notifications --------------------------------------------
  // A second connection LISTENs on the schema's channel; the schema's
  // triggers NOTIFY on every statement that changes a table, whoever runs
  // it (a mount, samplectl, psql). Our own session's notifications are
  // not counted: this mount already told the kernel.
  void StartListener() {
    if (::pipe2(wake_, O_CLOEXEC) != 0) return;
    listener_ = std::thread([this] { Listen(); });
    listening_ = true;
  }
  void StopListener() {
    if (!listener_.joinable()) return;
    stop_.store(true);
    (void)!::write(wake_[1], "x", 1);
    listener_.join();
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

 private:
  // A one-off query with text parameters, rows of text.
  Result<std::vector<std::vector<std::string>>> Query(const std::string& sql,
                                                      const std::vector<std::string>& params) {
    SFS_RETURN_IF_ERROR(Ready());
    SFS_RETURN_IF_ERROR(Settle());
    std::vector<const char*> values;
    for (auto& p : params) values.push_back(p.c_str());
    PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return PgStatus(conn_, r.get(), "SQL failed");
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r.get()); ++j) row.emplace_back(PQgetvalue(r.get(), i, j));
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void Listen() {
    PGconn* conn = nullptr;
    while (!stop_.load()) {
      if (!conn || PQstatus(conn) != CONNECTION_OK) {
        if (conn) PQfinish(conn);
        conn = ConnectNew(url_, options_);
        bool ok = PQstatus(conn) == CONNECTION_OK;
        if (ok) {
          PgResult r(PQexec(conn, "SELECT 'samplefs.' || coalesce(current_schema(), 'public')"));
          ok = PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1;
          if (ok) {
            char* ident = PQescapeIdentifier(conn, PQgetvalue(r.get(), 0, 0),
                                             std::strlen(PQgetvalue(r.get(), 0, 0)));
            PgResult l(PQexec(conn, (std::string("LISTEN ") + ident).c_str()));
            PQfreemem(ident);
            ok = PQresultStatus(l.get()) == PGRES_COMMAND_OK;
          }
        }
        if (ok) {
          // Whatever changed while we were not listening is unknown: count
          // it as a change.
          changes_.fetch_add(1);
        } else {
          pollfd p{wake_[0], POLLIN, 0};
          ::poll(&p, 1, 1000);
          continue;
        }
      }
      pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wake_[0], POLLIN, 0}};
      int n = ::poll(fds, 2, 5000);
      if (n < 0) continue;
      if (fds[1].revents) break;
      if (!PQconsumeInput(conn)) continue;  // the connection broke: re-made above
      while (PGnotify* note = PQnotifies(conn)) {
        if (note->be_pid != backend_pid_.load()) changes_.fetch_add(1);
        PQfreemem(note);
      }
    }
    if (conn) PQfinish(conn);
  }

  std::string url_;
  DatabaseOptions options_;
  PGconn* conn_ = nullptr;
  uint64_t generation_ = 0;  // of conn_: prepared statements live as long
  uint64_t statements_ = 0;  // names handed out
  bool txn_open_ = false;
  std::vector<Sent> sent_;   // in the pipeline, not answered yet
  Status deferred_error_;    // a deferred command failed: the transaction's fate until Rollback
  std::chrono::steady_clock::time_point next_reconnect_{};
  // Connections made by this session and by those opened from it
  // (OpenReader), shared; the count at this session's last try.
  std::shared_ptr<std::atomic<uint64_t>> connects_ = std::make_shared<std::atomic<uint64_t>>(0);
  uint64_t connects_seen_ = 0;
  std::unordered_map<std::string, std::unique_ptr<PostgresStatement>> cache_;
  std::atomic<int64_t> changes_{0};
  std::atomic<int> backend_pid_{0};
  std::thread listener_;
  bool listening_ = false;  // set once, before the database is shared
  ConnectionObserver observer_;  // GUARDED_BY(the catalog's mutex)
  bool down_ = false;            // GUARDED_BY(the catalog's mutex) an outage was reported
  std::atomic<bool> stop_{false};
  int wake_[2] = {-1, -1};
};

Result<bool> PostgresStatement::Step() {
  if (!executed_) {
    executed_ = true;
    row_ = -1;
    Status s = db_->Execute(*this);
    if (!s.ok()) {
      res_.reset();
      return s;
    }
  }
  if (!res_) return false;
  ++row_;
  return row_ < PQntuples(res_.get());
}

Status PostgresStatement::Defer() {
  if (executed_) return Run();
  return db_->Defer(*this);
}

}  // namespace

Result<std::unique_ptr<Database>> OpenPostgresDatabase(const std::string& url,
                                                      const DatabaseOptions& options) {
  auto db = std::make_unique<PostgresDatabase>(url, options);
  SFS_RETURN_IF_ERROR(db->Connect());
  if (options.listen) db->StartListener();
  return std::unique_ptr<Database>(std::move(db));
}

namespace {
Result<std::unique_ptr<Database>> PostgresDatabase::OpenReader() {
  DatabaseOptions o = options_;
  o.listen = false;
  o.read_only = true;
  auto db = std::make_unique<PostgresDatabase>(url_, o);
  db->connects_ = connects_;
  SFS_RETURN_IF_ERROR(db->Connect());
  return std::unique_ptr<Database>(std::move(db));
}
}  // namespace

}  // namespace samplefs
