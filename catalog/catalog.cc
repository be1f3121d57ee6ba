#include "catalog/catalog.h"

#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <map>
#include <set>
#include <variant>

#include "catalog/fields.h"
#include "catalog/hash.h"
#include "catalog/names.h"
#include "catalog/schema.h"

namespace samplefs {

// ---------------------------------------------------------------------------
// Small helpers over Database/Statement.

namespace {

using Param = std::variant<std::nullptr_t, int64_t, std::string>;
using Params = std::vector<Param>;

void BindAll(Statement& st, const Params& ps) {
  int i = 1;
  for (const auto& p : ps) {
    if (std::holds_alternative<int64_t>(p)) st.Bind(i, std::get<int64_t>(p));
    else if (std::holds_alternative<std::string>(p)) st.Bind(i, std::string_view(std::get<std::string>(p)));
    else st.BindNull(i);
    ++i;
  }
}

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// Rewrites an engine constraint error into the catalog's words.
Status Explain(const Status& s, const std::string& exists_msg, const std::string& missing_msg) {
  if (s.code() == Code::kAlreadyExists && !exists_msg.empty())
    return Status(Code::kAlreadyExists, exists_msg);
  if (s.code() == Code::kReferenceMissing && !missing_msg.empty())
    return Status(Code::kReferenceMissing, missing_msg);
  return s;
}

Status ValidateText(const std::string& value, const char* field) {
  if (value.size() > 64 * 1024)
    return Status(Code::kTooBig, std::string(field) + " is over 64 KiB");
  if (value.find('\0') != std::string::npos)
    return Status(Code::kInvalidArgument, std::string(field) + " contains a NUL byte");
  if (!IsValidUtf8(value))
    return Status(Code::kInvalidArgument, std::string(field) + " is not valid UTF-8");
  return Status::Ok();
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Record timestamps are stored in one form, "YYYY-MM-DDTHH:MM:SSZ" (UTC), so
// that comparing them as text (query terms after=/before=, ORDER BY in SQL)
// compares the instants. A bare date "YYYY-MM-DD" is accepted and stored as
// the start of that day; anything else (other separators, offsets,
// fractions, impossible dates) is refused rather than stored unsortable.
Status NormalizeTimestamp(const std::string& value, const char* field, std::string* out) {
  auto digits = [&](size_t pos, size_t n, int* v) {
    *v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (i >= value.size() || value[i] < '0' || value[i] > '9') return false;
      *v = *v * 10 + (value[i] - '0');
    }
    return true;
  };
  auto bad = [&] {
    return Status(Code::kInvalidArgument, std::string(field) + " '" + value +
                                              "' is not a UTC timestamp YYYY-MM-DDTHH:MM:SSZ "
                                              "(or a date YYYY-MM-DD)");
  };
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (value.size() != 10 && value.size() != 20) return bad();
  if (!digits(0, 4, &y) || value[4] != '-' || !digits(5, 2, &mo) || value[7] != '-' ||
      !digits(8, 2, &d))
    return bad();
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] + (mo == 2 && IsLeap(y) ? 1 : 0)) return bad();
  if (value.size() == 20) {
    if (value[10] != 'T' || !digits(11, 2, &h) || value[13] != ':' || !digits(14, 2, &mi) ||
        value[16] != ':' || !digits(17, 2, &sec) || value[19] != 'Z')
      return bad();
    if (h > 23 || mi > 59 || sec > 59) return bad();
    *out = value;
  } else {
    *out = value + "T00:00:00Z";
  }
  return Status::Ok();
}

EntryType EntryTypeFromName(const std::string& s) {
  if (s == "folder") return EntryType::kFolder;
  if (s == "symlink") return EntryType::kSymlink;
  return EntryType::kFile;
}

Species ReadSpecies(const Statement& st) {
  return Species{st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4)};
}
Sample ReadSample(const Statement& st) {
  return Sample{st.Int(0), st.Text(1), st.Int(2), st.Text(3), st.Text(4), st.Text(5)};
}
Dye ReadDye(const Statement& st) { return Dye{st.Int(0), st.Text(1), st.Text(2), st.Text(3)}; }
Slide ReadSlide(const Statement& st) {
  return Slide{st.Int(0), st.Text(1), st.Int(2), st.Text(3), st.Text(4), st.Text(5), st.Text(6)};
}
Labelling ReadLabelling(const Statement& st) {
  return Labelling{st.Int(0), st.Int(1), st.Text(2), st.Text(3), st.Text(4), st.Int(5)};
}
Image ReadImage(const Statement& st) {
  return Image{st.Int(0), st.Int(1), st.Text(2), st.Text(3), st.Text(4), st.Text(5)};
}
Entry ReadEntry(const Statement& st) {
  Entry e;
  e.id = st.Int(0);
  e.image_id = st.Int(1);
  e.parent_id = st.IsNull(2) ? 0 : st.Int(2);
  e.name = st.Text(3);
  e.type = EntryTypeFromName(st.Text(4));
  e.size = static_cast<uint64_t>(st.Int(5));
  e.hash = st.Text(6);
  e.mode = static_cast<uint32_t>(st.Int(7));
  e.mtime_ns = st.Int(8);
  e.target = st.Text(9);
  e.kind = st.Text(10);
  e.ctime_ns = st.Int(11);
  e.subfolders = st.Int(12);
  e.atime_ns = st.Int(13);
  e.uid = st.IsNull(14) ? -1 : st.Int(14);
  e.gid = st.IsNull(15) ? -1 : st.Int(15);
  return e;
}
Tag ReadTag(const Statement& st) { return Tag{st.Int(0), st.Text(1)}; }

constexpr const char* kSpeciesCols = "id, name, species, strain, notes";
constexpr const char* kSampleCols = "id, name, species_id, patient_id, sample_type, notes";
constexpr const char* kDyeCols = "id, short_name, long_name, spectra_db_name";
constexpr const char* kSlideCols = "id, reference, sample_id, creator, notes, created, modified";
constexpr const char* kLabellingCols = "id, slide_id, structure, isotype, antibody, dye_id";
constexpr const char* kImageCols = "id, slide_id, name, \"user\", acquired, comments";
constexpr const char* kEntryCols =
    "id, image_id, parent_id, name, type, size, hash, mode, mtime_ns, target, kind, ctime_ns, subfolders, atime_ns, uid, gid";

// Wall-clock time in nanoseconds: an entry's ctime, a folder's times when
// its entries change.
int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}



}  // namespace

// Runs `sql` with `ps`, calling `row` for each result row.
template <class F>
static Status ForRows(Database& db, const std::string& sql, const Params& ps, F row) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  BindAll(*st, ps);
  for (;;) {
    SFS_ASSIGN_OR_RETURN(bool has_row, st->Step());
    if (!has_row) return Status::Ok();
    row(*st);
  }
}

template <class T, class Read>
static Result<std::vector<T>> Rows(Database& db, const std::string& sql, const Params& ps,
                                   Read read) {
  std::vector<T> out;
  SFS_RETURN_IF_ERROR(ForRows(db, sql, ps, [&](const Statement& st) { out.push_back(read(st)); }));
  return out;
}

template <class T, class Read>
static Result<T> OneRow(Database& db, const std::string& sql, const Params& ps, Read read,
                        const std::string& not_found) {
  std::optional<T> out;
  SFS_RETURN_IF_ERROR(ForRows(db, sql, ps, [&](const Statement& st) {
    if (!out) out = read(st);
  }));
  if (!out) return Status(Code::kNotFound, not_found);
  return std::move(*out);
}

static Status Exec(Database& db, const std::string& sql, const Params& ps) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  BindAll(*st, ps);
  return st->Run();
}

// A write whose answer is not needed and that nothing but a lost
// transaction makes fail (Statement::Defer): on PostgreSQL it goes with the
// transaction's next statement or its COMMIT, not in a round trip of its
// own; on SQLite it runs at once, as Exec.
static Status Deferred(Database& db, const std::string& sql, const Params& ps) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  BindAll(*st, ps);
  return st->Defer();
}

// A folder whose entries changed (created, removed, renamed in or out):
// its mtime and ctime become `now`, as a local filesystem's (issue 18), and
// its count of subfolders moves by `subfolders`. One UPDATE in the
// transaction of the change, so the mount and imports agree; deferred
// (the caller checked that the folder exists).
static Status FolderChanged(Database& db, int64_t folder_id, int64_t now, int64_t subfolders) {
  return Deferred(db, "UPDATE entry SET mtime_ns = ?, ctime_ns = ?, subfolders = subfolders + ? WHERE id = ?",
                  {now, now, subfolders, folder_id});
}

// A change of an entry's tags or annotations (its extended attributes) is a
// status change: its ctime becomes now. Other records have no ctime.
static Status EntryXattrsChanged(Database& db, Entity entity, int64_t record_id) {
  if (entity != Entity::kEntry) return Status::Ok();
  return Deferred(db, "UPDATE entry SET ctime_ns = ? WHERE id = ?", {NowNs(), record_id});
}

static Result<int64_t> Count(Database& db, const std::string& sql, const Params& ps) {
  return OneRow<int64_t>(db, sql, ps, [](const Statement& st) { return st.Int(0); }, "no count");
}

// A record kind's table as the lookups, pages and deletes below read it:
// its SQL name (also how messages call it), its columns in the reader's
// order, and the reader.
template <class T>
struct Table {
  const char* name;
  const char* cols;
  T (*read)(const Statement&);
};
const Table<Species> kSpeciesTable{"species", kSpeciesCols, ReadSpecies};
const Table<Sample> kSampleTable{"sample", kSampleCols, ReadSample};
const Table<Dye> kDyeTable{"dye", kDyeCols, ReadDye};
const Table<Slide> kSlideTable{"slide", kSlideCols, ReadSlide};
const Table<Image> kImageTable{"image", kImageCols, ReadImage};
const Table<Entry> kEntryTable{"entry", kEntryCols, ReadEntry};
const Table<Tag> kTagTable{"tag", "id, name", ReadTag};

// The row of `t` that `where` selects; NotFound with `missing` when none.
template <class T>
static Result<T> FindOne(Database& db, const Table<T>& t, const std::string& where, const Params& ps,
                         const std::string& missing) {
  return OneRow<T>(db, std::string("SELECT ") + t.cols + " FROM " + t.name + " WHERE " + where, ps,
                   t.read, missing);
}

template <class T>
static Result<T> FindById(Database& db, const Table<T>& t, int64_t id) {
  return FindOne(db, t, "id = ?", {id}, std::string(t.name) + " " + std::to_string(id) + " does not exist");
}

// One page of the rows of `t` that `where` selects (empty: all), in id
// order, after `after_id`.
template <class T>
static Result<std::vector<T>> Page(Database& db, const Table<T>& t, const std::string& where, Params ps,
                                   int64_t after_id, int limit) {
  ps.push_back(after_id);
  ps.push_back(int64_t{limit});
  return Rows<T>(db, std::string("SELECT ") + t.cols + " FROM " + t.name + " WHERE " + where +
                         (where.empty() ? "" : " AND ") + "id > ? ORDER BY id LIMIT ?",
                 ps, t.read);
}

// Runs an `UPDATE ... WHERE id = ? RETURNING id` of row `id` of `table`,
// in the catalog's words when the row is gone or a constraint refuses it.
static Status UpdateRow(Database& db, const char* table, int64_t id, const std::string& sql, const Params& ps,
                        const std::string& exists_msg, const std::string& missing_msg) {
  auto r = OneRow<int64_t>(db, sql, ps, [](const Statement& st) { return st.Int(0); },
                           std::string(table) + " " + std::to_string(id) + " does not exist");
  return Explain(r.status(), exists_msg, missing_msg);
}

// Deletes row `id` of `table` unless `users_sql` (a count with the id as
// its one parameter) finds rows that still refer to it; then the refusal
// is `shown` + " " + `verb` + " N " + `noun`.
static Status DeleteUnlessUsed(Database& db, const char* table, int64_t id, const std::string& users_sql,
                               const std::string& shown, const char* verb, const char* noun) {
  SFS_ASSIGN_OR_RETURN(int64_t n, Count(db, users_sql, {id}));
  if (n)
    return Status(Code::kNotEmpty, shown + " " + verb + " " + std::to_string(n) + " " + noun);
  return Exec(db, std::string("DELETE FROM ") + table + " WHERE id = ?", {id});
}

const char* EntryTypeName(EntryType t) {
  switch (t) {
    case EntryType::kFile: return "file";
    case EntryType::kFolder: return "folder";
    case EntryType::kSymlink: return "symlink";
  }
  return "file";
}

const char* EntityName(Entity e) {
  switch (e) {
    case Entity::kSpecies: return "species";
    case Entity::kSample: return "sample";
    case Entity::kDye: return "dye";
    case Entity::kSlide: return "slide";
    case Entity::kImage: return "image";
    case Entity::kEntry: return "entry";
  }
  return "entry";
}

std::string KindFromName(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  auto ends = [&](const char* suf) {
    std::string s(suf);
    return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
  };
  for (const char* s : {".h5r", ".csv", ".json"})
    if (ends(s)) return "analysis";
  for (const char* s : {".h5", ".tif", ".tiff", ".nd2", ".czi", ".zarr"})
    if (ends(s)) return "raw";
  return "other";
}

static std::string FormatTime(std::time_t t, bool utc, const char* format) {
  std::tm tm{};
  if (utc) gmtime_r(&t, &tm);
  else localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string Iso8601(std::time_t t) { return FormatTime(t, true, "%Y-%m-%dT%H:%M:%SZ"); }
std::string NowIso8601() { return Iso8601(std::time(nullptr)); }
std::string LocalIso8601(std::time_t t) { return FormatTime(t, false, "%Y-%m-%dT%H:%M:%S"); }

// ---------------------------------------------------------------------------
// Transactions.

// Savepoint statements go through the statement cache: every catalog
// method inside a caller's Transaction opens and releases one, and parsing
// them anew each time was a measurable share of a bulk insert.
static Status RunCached(Database& db, const std::string& sql) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  return st->Run();
}

// SAVEPOINT and RELEASE of a nested transaction: their answers are not
// needed (Statement::Defer: on PostgreSQL they go with the next statement
// or the COMMIT; a failure fails the whole transaction, as a lost one
// would). ROLLBACK TO runs at once.
static Status DeferCached(Database& db, const std::string& sql) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  return st->Defer();
}

namespace {

// The writer connection's lock for a read: no write listener when it ends.
class ReadOnWriter {
 public:
  explicit ReadOnWriter(WriterMutex& mu) : mu_(mu) { mu_.lock_for_read(); }
  ~ReadOnWriter() { mu_.unlock(); }
  ReadOnWriter(const ReadOnWriter&) = delete;
  ReadOnWriter& operator=(const ReadOnWriter&) = delete;

 private:
  WriterMutex& mu_;
};

}  // namespace

void WriterMutex::unlock() {
  if (--depth_ == 0 && wrote_) {
    wrote_ = false;
    if (listener_) listener_();
  }
  mu_.unlock();
}

Transaction::Transaction(Catalog& catalog) : Transaction(catalog, -1) {}

Transaction::Transaction(Catalog& catalog, int wait_ms) : catalog_(catalog), lock_(catalog.mu_) {
  depth_ = ++catalog_.txn_depth_;
  if (depth_ == 1) catalog_.txn_owner_.store(std::this_thread::get_id());
  if (depth_ == 1) begin_status_ = catalog_.db_->BeginWrite(wait_ms);
  else begin_status_ = DeferCached(*catalog_.db_, "SAVEPOINT sp" + std::to_string(depth_));
}

Status Transaction::Commit() {
  if (!begin_status_.ok()) return begin_status_;
  if (done_) return Status(Code::kInvalidArgument, "transaction already ended");
  Status s = depth_ == 1 ? catalog_.db_->Commit()
                         : DeferCached(*catalog_.db_, "RELEASE sp" + std::to_string(depth_));
  if (s.ok()) done_ = true;
  return s;
}

Transaction::~Transaction() {
  if (!done_ && begin_status_.ok()) {
    if (depth_ == 1) {
      (void)catalog_.db_->Rollback();
    } else {
      // ROLLBACK TO undoes the savepoint's work but keeps it open; RELEASE
      // then removes it, leaving the enclosing transaction as it was.
      std::string sp = "sp" + std::to_string(depth_);
      (void)RunCached(*catalog_.db_, "ROLLBACK TO " + sp);
      (void)RunCached(*catalog_.db_, "RELEASE " + sp);
    }
  }
  if (--catalog_.txn_depth_ == 0) catalog_.txn_owner_.store(std::thread::id());
}

// ---------------------------------------------------------------------------
// Reader connections (docs/DECISIONS.md "Catalog readers").

// Where one read method runs: on a reader connection of the pool when the
// thread is not inside a Transaction (which must see its own uncommitted
// changes) and a reader is to be had; on the writer otherwise, under the
// catalog lock as before. Never waits for a reader: past max_readers it
// reads on the writer, so no lock order between the two exists.
class Catalog::ReadLock {
 public:
  explicit ReadLock(Catalog& c) : c_(c) {
    if (c.txn_owner_.load() != std::this_thread::get_id()) reader_ = c.BorrowReader();
    if (reader_) {
      db_ = reader_.get();
    } else {
      c.mu_.lock_for_read();
      writer_ = std::unique_lock<WriterMutex>(c.mu_, std::adopt_lock);
      db_ = c.db_.get();
    }
  }
  ~ReadLock() {
    if (reader_) c_.ReturnReader(std::move(reader_));
  }
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;
  Database& db() { return *db_; }

 private:
  Catalog& c_;
  std::unique_ptr<Database> reader_;
  std::unique_lock<WriterMutex> writer_;
  Database* db_ = nullptr;
};

void Catalog::EnableReaders(int max_readers) {
  std::lock_guard lock(readers_mu_);
  max_readers_ = std::max(0, max_readers);
}

int Catalog::readers_open() {
  std::lock_guard lock(readers_mu_);
  return readers_open_;
}

std::unique_ptr<Database> Catalog::BorrowReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      auto r = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return r;
    }
    if (readers_unavailable_ || readers_open_ >= max_readers_) return nullptr;
    ++readers_open_;  // reserved while it opens, outside the lock
  }
  // Opening needs the writer connection's settings only (path or URL,
  // options), which do not change once open: no catalog lock.
  auto r = db_->OpenReader();
  if (r.ok()) return std::move(*r);
  std::lock_guard lock(readers_mu_);
  --readers_open_;
  // An engine without readers says so at once; a server that refuses one
  // more session may accept it later, but the writer answers meanwhile.
  if (r.status().code() == Code::kInvalidArgument) readers_unavailable_ = true;
  return nullptr;
}

void Catalog::ReturnReader(std::unique_ptr<Database> reader) {
  std::lock_guard lock(readers_mu_);
  idle_readers_.push_back(std::move(reader));
}

// Runs `fn` inside a transaction; commits when it returns OK.
template <class F>
static auto InTxn(Catalog& c, F fn) -> decltype(fn()) {
  Transaction txn(c);
  if (!txn.status().ok()) return txn.status();
  auto r = fn();
  if (!r.ok()) return r;
  Status s = txn.Commit();
  if (!s.ok()) return s;
  return r;
}

// ---------------------------------------------------------------------------
// Opening and migrations.

Result<std::unique_ptr<Catalog>> Catalog::OpenSqlite(const std::string& path,
                                                     const DatabaseOptions& options) {
  SFS_ASSIGN_OR_RETURN(auto db, OpenSqliteDatabase(path, options));
  return Open(std::move(db));
}

Result<std::unique_ptr<Catalog>> Catalog::OpenUrl(const std::string& catalog,
                                                  const DatabaseOptions& options) {
  SFS_ASSIGN_OR_RETURN(auto db, OpenDatabase(catalog, options));
  return Open(std::move(db));
}

Result<std::unique_ptr<Catalog>> Catalog::Open(std::unique_ptr<Database> db) {
  std::unique_ptr<Catalog> c(new Catalog(std::move(db)));
  SFS_RETURN_IF_ERROR(c->Migrate());
  SFS_RETURN_IF_ERROR(c->db_->Exec(c->db_->SessionSql()));
  return c;
}

int Catalog::schema_version() {
  ReadOnWriter lock(mu_);
  auto v = OneRow<std::string>(*db_, "SELECT value FROM meta WHERE key = 'schema_version'", {},
                               [](const Statement& st) { return st.Text(0); }, "");
  return v.ok() ? std::atoi(v->c_str()) : 0;
}

// The schema version a database holds: 0 for an empty database (a new
// catalog), kCorrupt for one that is not a samplefs catalog, so that
// pointing samplefs at someone else's database never writes into it.
static Result<int> StoredSchemaVersion(Database& db) {
  // One snapshot: another process may create the schema meanwhile.
  SFS_ASSIGN_OR_RETURN(auto presence, db.InspectSchema());
  const bool has_meta = presence.has_meta;
  const int64_t objects = presence.objects;
  if (!has_meta) {
    if (objects)
      return Status(Code::kCorrupt, "the database is not a samplefs catalog (it has " +
                                        std::to_string(objects) + " schema objects but no meta table)");
    return 0;
  }
  auto v = OneRow<std::string>(db, "SELECT value FROM meta WHERE key = 'schema_version'", {},
                               [](const Statement& st) { return st.Text(0); }, "");
  if (!v.ok() && !v.status().is_not_found()) return v.status();
  int version = 0;
  bool valid = v.ok() && !v->empty() && v->size() <= 6;
  if (valid) {
    for (char ch : *v) {
      if (ch < '0' || ch > '9') valid = false;
      else version = version * 10 + (ch - '0');
    }
  }
  if (!valid || version < 1)
    return Status(Code::kCorrupt, "the catalog has no valid schema_version in its meta table");
  return version;
}

static Status TooNew(int version) {
  return Status(Code::kTooNew, "the catalog has schema version " + std::to_string(version) +
                                   ", newer than this samplefs (" + std::to_string(kSchemaVersion) +
                                   "); upgrade samplefs to open it");
}

Status Catalog::Migrate() {
  std::lock_guard lock(mu_);
  // Look first without the write lock, so that a current catalog opens
  // read-only and never waits for a writer.
  SFS_ASSIGN_OR_RETURN(int version, StoredSchemaVersion(*db_));
  if (version > kSchemaVersion) return TooNew(version);
  if (version == kSchemaVersion) return Status::Ok();

  Transaction txn(*this);
  if (!txn.status().ok()) {
    const Status& s = txn.status();
    return Status(s.code(), version == 0 ? "cannot create the catalog schema: " + s.message()
                                         : "the catalog has schema version " + std::to_string(version) +
                                               " and must be migrated to " + std::to_string(kSchemaVersion) +
                                               ", which needs write access: " + s.message());
  }
  // Look again under the write lock: another process (samplectl and a
  // mount started together) may have created or migrated it meanwhile.
  SFS_ASSIGN_OR_RETURN(version, StoredSchemaVersion(*db_));
  if (version > kSchemaVersion) return TooNew(version);
  if (version == 0) {
    Status s = db_->Exec(db_->SchemaSql());
    if (!s.ok()) return Status(s.code(), "cannot create the catalog schema: " + s.message());
    return txn.Commit();
  }
  // The whole ladder runs in one transaction: a failure leaves the
  // catalog exactly at its old version.
  for (int v = version; v < kSchemaVersion; ++v) {
    std::string sql = db_->MigrationSql(v);
    if (sql.empty())
      return Status(Code::kCorrupt, "no migration from schema version " + std::to_string(v));
    Status s = db_->Exec(sql);
    if (!s.ok())
      return Status(s.code(), "migration from schema version " + std::to_string(v) +
                                  " failed: " + s.message());
  }
  return txn.Commit();
}

Status Catalog::CheckRecordExists(const char* table, int64_t id, const char* what) {
  SFS_ASSIGN_OR_RETURN(int64_t n, Count(*db_, std::string("SELECT count(*) FROM ") + table +
                                                  " WHERE id = ?", {id}));
  if (!n) return Status(Code::kReferenceMissing, std::string(what) + " " + std::to_string(id) +
                                                     " does not exist");
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Species.

static Status ValidateSpeciesFields(const Species& s) {
  SFS_RETURN_IF_ERROR(ValidateName(s.name, "species name"));
  SFS_RETURN_IF_ERROR(ValidateText(s.species, "species"));
  SFS_RETURN_IF_ERROR(ValidateText(s.strain, "species strain"));
  return ValidateText(s.notes, "species notes");
}

Result<Species> Catalog::CreateSpecies(const Species& s) {
  SFS_RETURN_IF_ERROR(ValidateSpeciesFields(s));
  std::lock_guard lock(mu_);
  auto r = OneRow<Species>(
      *db_, std::string("INSERT INTO species(id, name, species, strain, notes) VALUES (" + db_->NewIdSql("species") + ", ?, ?, ?, ?) RETURNING ") + kSpeciesCols,
      {s.name, s.species, s.strain, s.notes}, ReadSpecies, "");
  if (!r.ok()) return Explain(r.status(), "species " + Quoted(s.name) + " already exists", "");
  return r;
}

Result<Species> Catalog::SpeciesByName(const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kSpeciesTable, "name = ?", {name}, "species " + Quoted(name) + " does not exist");
}

Result<Species> Catalog::SpeciesById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kSpeciesTable, id);
}

Status Catalog::UpdateSpecies(const Species& s) {
  SFS_RETURN_IF_ERROR(ValidateSpeciesFields(s));
  std::lock_guard lock(mu_);
  return UpdateRow(*db_, "species", s.id,
                   "UPDATE species SET name = ?, species = ?, strain = ?, notes = ? WHERE id = ? RETURNING id",
                   {s.name, s.species, s.strain, s.notes, s.id},
                   "species " + Quoted(s.name) + " already exists", "");
}

Status Catalog::DeleteSpecies(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Species sp, SpeciesById(id));
    return DeleteUnlessUsed(*db_, "species", id, "SELECT count(*) FROM sample WHERE species_id = ?",
                            "species " + Quoted(sp.name), "still has", "sample(s)");
  });
}

Result<std::vector<Species>> Catalog::ListSpecies(int64_t after_id, int limit) {
  ReadLock read(*this);
  return Page(read.db(), kSpeciesTable, "", {}, after_id, limit);
}

// ---------------------------------------------------------------------------
// Samples.

static Status ValidateSampleFields(const Sample& s) {
  SFS_RETURN_IF_ERROR(ValidateName(s.name, "sample name"));
  SFS_RETURN_IF_ERROR(ValidateText(s.patient_id, "sample patient_id"));
  SFS_RETURN_IF_ERROR(ValidateText(s.sample_type, "sample type"));
  return ValidateText(s.notes, "sample notes");
}

Result<Sample> Catalog::CreateSample(const Sample& s) {
  SFS_RETURN_IF_ERROR(ValidateSampleFields(s));
  std::lock_guard lock(mu_);
  auto r = OneRow<Sample>(
      *db_, std::string("INSERT INTO sample(id, name, species_id, patient_id, sample_type, notes) VALUES (") +
                  db_->NewIdSql("sample") + ", ?, ?, ?, ?, ?) RETURNING " + kSampleCols,
      {s.name, s.species_id, s.patient_id, s.sample_type, s.notes}, ReadSample, "");
  if (!r.ok())
    return Explain(r.status(), "sample " + Quoted(s.name) + " already exists",
                   "species " + std::to_string(s.species_id) + " does not exist");
  return r;
}

Result<Sample> Catalog::SampleByName(const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kSampleTable, "name = ?", {name}, "sample " + Quoted(name) + " does not exist");
}

Result<Sample> Catalog::SampleById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kSampleTable, id);
}

Status Catalog::UpdateSample(const Sample& s) {
  SFS_RETURN_IF_ERROR(ValidateSampleFields(s));
  std::lock_guard lock(mu_);
  return UpdateRow(*db_, "sample", s.id,
                   "UPDATE sample SET name = ?, species_id = ?, patient_id = ?, sample_type = ?, notes = ? "
                   "WHERE id = ? RETURNING id",
                   {s.name, s.species_id, s.patient_id, s.sample_type, s.notes, s.id},
                   "sample " + Quoted(s.name) + " already exists",
                   "species " + std::to_string(s.species_id) + " does not exist");
}

Status Catalog::DeleteSample(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Sample sa, SampleById(id));
    return DeleteUnlessUsed(*db_, "sample", id, "SELECT count(*) FROM slide WHERE sample_id = ?",
                            "sample " + Quoted(sa.name), "still has", "slide(s)");
  });
}

Result<std::vector<Sample>> Catalog::ListSamples(int64_t species_id, int64_t after_id, int limit) {
  ReadLock read(*this);
  if (species_id) return Page(read.db(), kSampleTable, "species_id = ?", {species_id}, after_id, limit);
  return Page(read.db(), kSampleTable, "", {}, after_id, limit);
}

// ---------------------------------------------------------------------------
// Dyes.

// Short names have no white space: they are typed in query expressions and
// shell commands ("dye=A647").
static Status ValidateDyeFields(const Dye& d) {
  SFS_RETURN_IF_ERROR(ValidateName(d.short_name, "dye short name"));
  if (d.short_name.find_first_of(" \t\n\r\v\f") != std::string::npos)
    return Status(Code::kInvalidArgument, "dye short name " + Quoted(d.short_name) + " contains white space");
  SFS_RETURN_IF_ERROR(ValidateText(d.long_name, "dye long_name"));
  return ValidateText(d.spectra_db_name, "dye spectra_db_name");
}

Result<Dye> Catalog::CreateDye(const Dye& d) {
  SFS_RETURN_IF_ERROR(ValidateDyeFields(d));
  std::lock_guard lock(mu_);
  auto r = OneRow<Dye>(*db_, std::string("INSERT INTO dye(id, short_name, long_name, spectra_db_name) VALUES (") +
                                     db_->NewIdSql("dye") + ", ?, ?, ?) RETURNING " + kDyeCols,
                       {d.short_name, d.long_name, d.spectra_db_name}, ReadDye, "");
  if (!r.ok()) return Explain(r.status(), "dye " + Quoted(d.short_name) + " already exists", "");
  return r;
}

Result<Dye> Catalog::DyeByName(const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kDyeTable, "short_name = ?", {name}, "dye " + Quoted(name) + " does not exist");
}

Result<Dye> Catalog::DyeById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kDyeTable, id);
}

Status Catalog::UpdateDye(const Dye& d) {
  SFS_RETURN_IF_ERROR(ValidateDyeFields(d));
  std::lock_guard lock(mu_);
  return UpdateRow(*db_, "dye", d.id,
                   "UPDATE dye SET short_name = ?, long_name = ?, spectra_db_name = ? WHERE id = ? RETURNING id",
                   {d.short_name, d.long_name, d.spectra_db_name, d.id},
                   "dye " + Quoted(d.short_name) + " already exists", "");
}

Status Catalog::DeleteDye(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Dye d, DyeById(id));
    return DeleteUnlessUsed(*db_, "dye", id, "SELECT count(*) FROM labelling WHERE dye_id = ?",
                            "dye " + Quoted(d.short_name), "is used by", "labelling(s)");
  });
}

Result<std::vector<Dye>> Catalog::ListDyes(int64_t after_id, int limit) {
  ReadLock read(*this);
  return Page(read.db(), kDyeTable, "", {}, after_id, limit);
}

// ---------------------------------------------------------------------------
// Slides.

static Status ValidateSlideFields(const Slide& s) {
  SFS_RETURN_IF_ERROR(ValidateName(s.reference, "slide reference"));
  SFS_RETURN_IF_ERROR(ValidateText(s.creator, "slide creator"));
  return ValidateText(s.notes, "slide notes");
}

Result<Slide> Catalog::CreateSlide(const Slide& s) {
  SFS_RETURN_IF_ERROR(ValidateSlideFields(s));
  std::string created = NowIso8601(), modified;
  if (!s.created.empty()) SFS_RETURN_IF_ERROR(NormalizeTimestamp(s.created, "slide created", &created));
  if (s.modified.empty()) modified = created;
  else SFS_RETURN_IF_ERROR(NormalizeTimestamp(s.modified, "slide modified", &modified));
  std::lock_guard lock(mu_);
  auto r = OneRow<Slide>(
      *db_, std::string("INSERT INTO slide(id, reference, sample_id, creator, notes, created, modified) VALUES (") +
                  db_->NewIdSql("slide") + ", ?, ?, ?, ?, ?, ?) RETURNING " + kSlideCols,
      {s.reference, s.sample_id, s.creator, s.notes, created, modified}, ReadSlide, "");
  if (!r.ok())
    return Explain(r.status(), "slide " + Quoted(s.reference) + " already exists",
                   "sample " + std::to_string(s.sample_id) + " does not exist");
  return r;
}

Result<Slide> Catalog::SlideByReference(const std::string& reference) {
  ReadLock read(*this);
  return FindOne(read.db(), kSlideTable, "reference = ?", {reference},
                 "slide " + Quoted(reference) + " does not exist");
}

Result<Slide> Catalog::SlideById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kSlideTable, id);
}

Status Catalog::UpdateSlide(const Slide& s) {
  SFS_RETURN_IF_ERROR(ValidateSlideFields(s));
  // An empty `created` keeps the stored one (it is never erased).
  std::string created;
  if (!s.created.empty()) SFS_RETURN_IF_ERROR(NormalizeTimestamp(s.created, "slide created", &created));
  std::lock_guard lock(mu_);
  return UpdateRow(*db_, "slide", s.id,
                   "UPDATE slide SET reference = ?, sample_id = ?, creator = ?, notes = ?, "
                   "created = coalesce(nullif(?, ''), created), modified = ? WHERE id = ? RETURNING id",
                   {s.reference, s.sample_id, s.creator, s.notes, created, NowIso8601(), s.id},
                   "slide " + Quoted(s.reference) + " already exists",
                   "sample " + std::to_string(s.sample_id) + " does not exist");
}

Status Catalog::DeleteSlide(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Slide sl, SlideById(id));
    return DeleteUnlessUsed(*db_, "slide", id, "SELECT count(*) FROM image WHERE slide_id = ?",
                            "slide " + Quoted(sl.reference), "still has", "image(s)");
  });
}

// Builds "WHERE ..." for a slide query over `slide s JOIN sample sa JOIN
// species sp` (catalog/query.h): one condition per term, each answered by
// an index.
static Status SlideQueryWhere(const Query& q, std::string* where, Params* ps) {
  std::vector<std::string> texts;
  SFS_RETURN_IF_ERROR(SlideQuerySql(q, where, &texts));
  for (auto& t : texts) ps->push_back(std::move(t));
  return Status::Ok();
}

static const char* kSlideQueryFrom =
    " FROM slide s JOIN sample sa ON sa.id = s.sample_id JOIN species sp ON sp.id = sa.species_id"
    " WHERE 1 = 1";

Result<std::vector<Slide>> Catalog::ListSlides(const Query& query, int64_t after_id, int limit) {
  std::string where;
  Params ps;
  SFS_RETURN_IF_ERROR(SlideQueryWhere(query, &where, &ps));
  ps.push_back(after_id);
  ps.push_back(int64_t{limit});
  ReadLock read(*this);
  return Rows<Slide>(read.db(),
                     "SELECT s.id, s.reference, s.sample_id, s.creator, s.notes, s.created, s.modified" +
                         std::string(kSlideQueryFrom) + where + " AND s.id > ? ORDER BY s.id LIMIT ?",
                     ps, ReadSlide);
}

Result<bool> Catalog::SlideMatches(const Query& query, int64_t slide_id) {
  std::string where;
  Params ps;
  SFS_RETURN_IF_ERROR(SlideQueryWhere(query, &where, &ps));
  ps.push_back(slide_id);
  ReadLock read(*this);
  SFS_ASSIGN_OR_RETURN(int64_t n, Count(read.db(), "SELECT count(*)" + std::string(kSlideQueryFrom) +
                                                  where + " AND s.id = ?", ps));
  return n > 0;
}

Status Catalog::CheckQueryKeys(const Query& query) {
  ReadLock read(*this);
  for (const auto& t : query.terms) {
    if (FindQueryKey(t.key)) continue;
    SFS_ASSIGN_OR_RETURN(int64_t n, Count(read.db(),
                                          "SELECT count(*) FROM (SELECT 1 FROM annotation "
                                          "WHERE key = ? AND entity = 'slide' LIMIT 1) x",
                                          {t.key}));
    if (n) continue;
    std::string fields, annotations;
    for (const auto& k : QueryKeys()) fields += std::string(fields.empty() ? "" : ", ") + k.key;
    SFS_ASSIGN_OR_RETURN(auto keys, Rows<std::string>(read.db(),
                                                      "SELECT DISTINCT key FROM annotation WHERE entity = 'slide' "
                                                      "ORDER BY key LIMIT 51",
                                                      {}, [](const Statement& st) { return st.Text(0); }));
    for (size_t i = 0; i < keys.size() && i < 50; ++i) annotations += (i ? ", " : "") + keys[i];
    if (keys.size() > 50) annotations += ", ...";
    return Status(Code::kReferenceMissing,
                  "query key '" + t.key + "' is neither a field nor an annotation key of any slide; known keys: " +
                      fields + (annotations.empty() ? " (no slide has annotations)" : "; annotation keys: " + annotations));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Catalog::ListStructures() {
  ReadLock read(*this);
  return Rows<std::string>(read.db(), "SELECT DISTINCT structure FROM labelling ORDER BY structure", {},
                           [](const Statement& st) { return st.Text(0); });
}

// ---------------------------------------------------------------------------
// Labellings.

static Status ValidateLabelling(const Labelling& l) {
  SFS_RETURN_IF_ERROR(ValidateName(l.structure, "labelled structure"));
  SFS_RETURN_IF_ERROR(ValidateText(l.isotype, "labelling isotype"));
  return ValidateText(l.antibody, "labelling antibody");
}

// Labellings are part of their slide: adding or removing one moves the
// slide's `modified`, as editing the slide does.
Result<Labelling> Catalog::AddLabelling(const Labelling& l) {
  SFS_RETURN_IF_ERROR(ValidateLabelling(l));
  return InTxn(*this, [&]() -> Result<Labelling> {
    auto r = OneRow<Labelling>(
        *db_, std::string("INSERT INTO labelling(id, slide_id, structure, isotype, antibody, dye_id) VALUES (") +
                    db_->NewIdSql("labelling") + ", ?, ?, ?, ?, ?) RETURNING " + kLabellingCols,
        {l.slide_id, l.structure, l.isotype, l.antibody, l.dye_id}, ReadLabelling, "");
    if (r.status().code() == Code::kReferenceMissing) {
      // Two foreign keys: say which one points nowhere.
      SFS_RETURN_IF_ERROR(CheckRecordExists("slide", l.slide_id, "slide"));
      SFS_RETURN_IF_ERROR(CheckRecordExists("dye", l.dye_id, "dye"));
    }
    if (!r.ok()) return r;
    SFS_RETURN_IF_ERROR(
        Exec(*db_, "UPDATE slide SET modified = ? WHERE id = ?", {NowIso8601(), l.slide_id}));
    return r;
  });
}

Result<std::vector<Labelling>> Catalog::LabellingsOfSlide(int64_t slide_id) {
  ReadLock read(*this);
  return Rows<Labelling>(read.db(), std::string("SELECT ") + kLabellingCols +
                                   " FROM labelling WHERE slide_id = ? ORDER BY id",
                         {slide_id}, ReadLabelling);
}

Status Catalog::DeleteLabelling(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(int64_t slide_id,
                         OneRow<int64_t>(*db_, "DELETE FROM labelling WHERE id = ? RETURNING slide_id",
                                         {id}, [](const Statement& st) { return st.Int(0); },
                                         "labelling " + std::to_string(id) + " does not exist"));
    return Exec(*db_, "UPDATE slide SET modified = ? WHERE id = ?", {NowIso8601(), slide_id});
  });
}

Status Catalog::ReplaceLabellings(int64_t slide_id, const std::vector<Labelling>& labellings) {
  for (const auto& l : labellings) SFS_RETURN_IF_ERROR(ValidateLabelling(l));
  return InTxn(*this, [&]() -> Status {
    SFS_RETURN_IF_ERROR(SlideById(slide_id).status());
    SFS_RETURN_IF_ERROR(Exec(*db_, "DELETE FROM labelling WHERE slide_id = ?", {slide_id}));
    for (auto l : labellings) {
      l.slide_id = slide_id;
      SFS_RETURN_IF_ERROR(AddLabelling(l).status());
    }
    return Exec(*db_, "UPDATE slide SET modified = ? WHERE id = ?", {NowIso8601(), slide_id});
  });
}

// ---------------------------------------------------------------------------
// Images.

static Status ValidateImageFields(const Image& i) {
  SFS_RETURN_IF_ERROR(ValidateName(i.name, "image name"));
  SFS_RETURN_IF_ERROR(ValidateText(i.user, "image user"));
  return ValidateText(i.comments, "image comments");
}

Result<Image> Catalog::CreateImage(const Image& i) {
  SFS_RETURN_IF_ERROR(ValidateImageFields(i));
  std::string acquired = NowIso8601();
  if (!i.acquired.empty()) SFS_RETURN_IF_ERROR(NormalizeTimestamp(i.acquired, "image acquired", &acquired));
  return InTxn(*this, [&]() -> Result<Image> {
    auto r = OneRow<Image>(*db_, std::string("INSERT INTO image(id, slide_id, name, \"user\", acquired, comments) VALUES (") +
                                         db_->NewIdSql("image") + ", ?, ?, ?, ?, ?) RETURNING " + kImageCols,
                           {i.slide_id, i.name, i.user, acquired, i.comments}, ReadImage, "");
    if (!r.ok())
      return Explain(r.status(), "image " + Quoted(i.name) + " already exists in this slide",
                     "slide " + std::to_string(i.slide_id) + " does not exist");
    SFS_RETURN_IF_ERROR(Exec(*db_,
                             "INSERT INTO entry(id, image_id, parent_id, name, type, mode, mtime_ns) VALUES (" +
                                 db_->NewIdSql("entry") + ", ?, NULL, '', 'folder', 493, 0)",
                             {r->id}));
    return r;
  });
}

Result<Image> Catalog::ImageByName(int64_t slide_id, const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kImageTable, "slide_id = ? AND name = ?", {slide_id, name},
                 "image " + Quoted(name) + " does not exist");
}

Result<Image> Catalog::ImageById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kImageTable, id);
}

Status Catalog::UpdateImage(const Image& i) {
  SFS_RETURN_IF_ERROR(ValidateImageFields(i));
  // An empty `acquired` keeps the stored one.
  std::string acquired;
  if (!i.acquired.empty()) SFS_RETURN_IF_ERROR(NormalizeTimestamp(i.acquired, "image acquired", &acquired));
  std::lock_guard lock(mu_);
  return UpdateRow(*db_, "image", i.id,
                   "UPDATE image SET slide_id = ?, name = ?, \"user\" = ?, "
                   "acquired = coalesce(nullif(?, ''), acquired), comments = ? WHERE id = ? RETURNING id",
                   {i.slide_id, i.name, i.user, acquired, i.comments, i.id},
                   "image " + Quoted(i.name) + " already exists in that slide",
                   "slide " + std::to_string(i.slide_id) + " does not exist");
}

Status Catalog::DeleteImage(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Image im, ImageById(id));
    SFS_ASSIGN_OR_RETURN(int64_t n, Count(*db_, "SELECT count(*) FROM entry WHERE image_id = ? "
                                                "AND parent_id IS NOT NULL", {id}));
    if (n) {
      SFS_ASSIGN_OR_RETURN(int64_t trashed, Count(*db_, "SELECT count(*) FROM trash_info WHERE image_id = ?", {id}));
      if (trashed)
        return Status(Code::kNotEmpty, "image " + Quoted(im.name) + " has " + std::to_string(trashed) +
                                           " entr" + (trashed == 1 ? "y" : "ies") +
                                           " in the trash; restore or empty them first (samplectl trash)");
      return Status(Code::kNotEmpty, "image " + Quoted(im.name) + " still has " +
                                         std::to_string(n) + " file(s) or folder(s)");
    }
    return Exec(*db_, "DELETE FROM image WHERE id = ?", {id});
  });
}

Result<std::vector<Image>> Catalog::ListImages(int64_t slide_id, int64_t after_id, int limit) {
  ReadLock read(*this);
  return Page(read.db(), kImageTable, "slide_id = ?", {slide_id}, after_id, limit);
}

Result<std::vector<Image>> Catalog::ListImagesMatching(const Query& query, int64_t after_id,
                                                      int limit) {
  std::string where;
  Params ps;
  SFS_RETURN_IF_ERROR(SlideQueryWhere(query, &where, &ps));
  ps.push_back(after_id);
  ps.push_back(int64_t{limit});
  ReadLock read(*this);
  return Rows<Image>(read.db(),
                     "SELECT i.id, i.slide_id, i.name, i.\"user\", i.acquired, i.comments FROM image i "
                     "WHERE i.slide_id IN (SELECT s.id" + std::string(kSlideQueryFrom) + where +
                         ") AND i.id > ? ORDER BY i.id LIMIT ?",
                     ps, ReadImage);
}

// ---------------------------------------------------------------------------
// Entries.

Result<Entry> Catalog::FilesRoot(int64_t image_id) {
  ReadLock read(*this);
  return OneRow<Entry>(read.db(), std::string("SELECT ") + kEntryCols +
                                 " FROM entry WHERE image_id = ? AND parent_id IS NULL",
                       {image_id}, ReadEntry, "image " + std::to_string(image_id) + " does not exist");
}

// The content fields of an entry (what UpdateEntry may change).
static Status ValidateEntryContent(const Entry& e) {
  if (e.type == EntryType::kFile && !IsHashHex(e.hash))
    return Status(Code::kInvalidArgument,
                  "file " + (e.name.empty() ? std::to_string(e.id) : Quoted(e.name)) +
                      " has no valid content hash (32 lowercase hex digits)");
  if (e.type == EntryType::kSymlink) {
    if (e.target.empty() || e.target.size() > 4095)
      return Status(Code::kInvalidArgument, "symlink target must be 1..4095 bytes");
    SFS_RETURN_IF_ERROR(ValidateText(e.target, "symlink target"));
  }
  if (e.kind != "raw" && e.kind != "analysis" && e.kind != "other")
    return Status(Code::kInvalidArgument, "kind must be raw, analysis or other, not " + Quoted(e.kind));
  return Status::Ok();
}

static Status ValidateEntryFields(const Entry& e) {
  SFS_RETURN_IF_ERROR(ValidateName(e.name, "file name"));
  return ValidateEntryContent(e);
}

Result<Entry> Catalog::CreateEntry(const Entry& e) {
  SFS_RETURN_IF_ERROR(ValidateEntryFields(e));
  return InTxn(*this, [&]() -> Result<Entry> {
    // A new entry's ctime is now, whatever mtime it is given (cp -a); its
    // folder's times become now too.
    const int64_t now = NowNs();
    // One statement reads the parent (it must be a folder; the entry joins
    // its image) and inserts: on PostgreSQL one round trip less per file
    // created. An owner given (the mount's requesting user) takes the
    // group of a setgid folder, as on a local filesystem (shared group
    // folders).
    auto r = OneRow<Entry>(
        *db_, std::string("INSERT INTO entry(id, image_id, parent_id, name, type, size, hash, mode, "
                          "mtime_ns, target, kind, ctime_ns, atime_ns, uid, gid) SELECT ") +
                  db_->NewIdSql("entry") +
                  ", p.image_id, p.id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                  "CASE WHEN CAST(?13 AS BIGINT) < 0 THEN NULL WHEN (p.mode & 1024) <> 0 THEN p.gid "
                  "ELSE CAST(?13 AS BIGINT) END FROM entry p WHERE p.id = ?1 AND p.type = 'folder' RETURNING " +
                  kEntryCols,
        {e.parent_id, e.name, std::string(EntryTypeName(e.type)), static_cast<int64_t>(e.size),
         e.type == EntryType::kFile ? Param(e.hash) : Param(nullptr), int64_t{e.mode & 07777}, e.mtime_ns,
         e.type == EntryType::kSymlink ? Param(e.target) : Param(nullptr), e.kind, now,
         e.atime_ns == Entry::kTimeUnset ? e.mtime_ns : e.atime_ns, e.uid >= 0 ? Param(e.uid) : Param(nullptr),
         int64_t{e.gid >= 0 ? e.gid : -1}},
        ReadEntry, "");
    if (r.status().is_not_found()) {
      // No row: no such parent, or not a folder.
      auto found = EntryById(e.parent_id);
      if (found.status().is_not_found())
        return Status(Code::kReferenceMissing, "parent folder " + std::to_string(e.parent_id) + " of " +
                                                   Quoted(e.name) + " does not exist");
      SFS_RETURN_IF_ERROR(found.status());
      return Status(Code::kInvalidArgument, "parent of " + Quoted(e.name) + " is not a folder");
    }
    if (!r.ok()) return Explain(r.status(), Quoted(e.name) + " already exists", "");
    SFS_RETURN_IF_ERROR(FolderChanged(*db_, e.parent_id, now, e.type == EntryType::kFolder ? 1 : 0));
    return r;
  });
}

Result<Entry> Catalog::EntryById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kEntryTable, id);
}

Result<Entry> Catalog::EntryByName(int64_t parent_id, const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kEntryTable, "parent_id = ? AND name = ?", {parent_id, name},
                 Quoted(name) + " does not exist");
}

Status Catalog::UpdateEntry(const Entry& e, int64_t ctime_ns) {
  // Only the content fields are written, so only they are checked (the
  // caller's name and parent_id are ignored); this applies to an image's
  // root folder as to any other entry.
  SFS_RETURN_IF_ERROR(ValidateEntryContent(e));
  std::lock_guard lock(mu_);
  auto r = OneRow<int64_t>(
      *db_,
      "UPDATE entry SET size = ?, hash = ?, mode = ?, mtime_ns = ?, target = ?, kind = ?, ctime_ns = ? "
      "WHERE id = ? AND type = ? RETURNING id",
      {static_cast<int64_t>(e.size), e.type == EntryType::kFile ? Param(e.hash) : Param(nullptr),
       int64_t{e.mode & 07777}, e.mtime_ns,
       e.type == EntryType::kSymlink ? Param(e.target) : Param(nullptr), e.kind, ctime_ns ? ctime_ns : NowNs(), e.id,
       std::string(EntryTypeName(e.type))},
      [](const Statement& st) { return st.Int(0); },
      "entry " + std::to_string(e.id) + " does not exist");
  if (r.status().is_not_found()) {
    // No row: either no such entry, or one of another type.
    SFS_ASSIGN_OR_RETURN(Entry old, EntryById(e.id));
    return Status(Code::kInvalidArgument, Quoted(old.name) + " is a " + EntryTypeName(old.type) +
                                              ", not a " + EntryTypeName(e.type) +
                                              "; an entry's type cannot change");
  }
  return r.status();
}

Result<bool> Catalog::RecordFileVersion(int64_t id, const std::string& hash, uint64_t size, int64_t mtime_ns,
                                         int mode, int64_t ctime_ns) {
  if (!IsHashHex(hash))
    return Status(Code::kInvalidArgument, "file " + std::to_string(id) + " has no valid content hash");
  std::lock_guard lock(mu_);
  auto r = OneRow<int64_t>(
      *db_,
      "UPDATE entry SET hash = ?1, size = ?2, mtime_ns = ?3, "
      "mode = CASE WHEN CAST(?4 AS BIGINT) < 0 THEN mode ELSE CAST(?4 AS BIGINT) END, "
      "ctime_ns = CASE WHEN ctime_ns > CAST(?5 AS BIGINT) THEN ctime_ns ELSE CAST(?5 AS BIGINT) END "
      "WHERE id = ?6 AND type = 'file' RETURNING id",
      {hash, static_cast<int64_t>(size), mtime_ns, int64_t{mode < 0 ? -1 : (mode & 07777)}, ctime_ns, id},
      [](const Statement& st) { return st.Int(0); }, "file " + std::to_string(id) + " does not exist");
  if (r.status().is_not_found()) return false;
  SFS_RETURN_IF_ERROR(r.status());
  return true;
}

Status Catalog::SetEntryAtime(int64_t id, int64_t atime_ns) {
  std::lock_guard lock(mu_);
  auto r = OneRow<int64_t>(*db_, "UPDATE entry SET atime_ns = ?, ctime_ns = ? WHERE id = ? RETURNING id",
                           {atime_ns, NowNs(), id}, [](const Statement& st) { return st.Int(0); },
                           "entry " + std::to_string(id) + " does not exist");
  return r.status();
}

Status Catalog::SetAtimes(const std::vector<std::pair<int64_t, int64_t>>& id_atime, int wait_ms) {
  if (id_atime.empty()) return Status::Ok();
  Transaction txn(*this, wait_ms);
  SFS_RETURN_IF_ERROR(txn.status());
  for (const auto& [id, atime] : id_atime)
    SFS_RETURN_IF_ERROR(Exec(*db_, "UPDATE entry SET atime_ns = ? WHERE id = ?", {atime, id}));
  return txn.Commit();
}

Status Catalog::SetEntryOwner(int64_t id, int64_t uid, int64_t gid) {
  std::lock_guard lock(mu_);
  auto r = OneRow<int64_t>(
      *db_,
      "UPDATE entry SET uid = CASE WHEN ? < 0 THEN uid ELSE ? END, "
      "gid = CASE WHEN ? < 0 THEN gid ELSE ? END, ctime_ns = ? WHERE id = ? RETURNING id",
      {uid, uid, gid, gid, NowNs(), id}, [](const Statement& st) { return st.Int(0); },
      "entry " + std::to_string(id) + " does not exist");
  return r.status();
}

Status Catalog::DeleteEntry(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Entry e, EntryById(id));
    if (e.parent_id == 0) return Status(Code::kPermission, "files/ of an image cannot be deleted");
    if (e.type == EntryType::kFolder) {
      SFS_ASSIGN_OR_RETURN(int64_t n, Count(*db_, "SELECT count(*) FROM entry WHERE parent_id = ?", {id}));
      if (n) return Status(Code::kNotEmpty, "folder " + Quoted(e.name) + " is not empty");
    }
    SFS_RETURN_IF_ERROR(Exec(*db_, "DELETE FROM entry WHERE id = ?", {id}));
    return FolderChanged(*db_, e.parent_id, NowNs(), e.type == EntryType::kFolder ? -1 : 0);
  });
}

Result<int64_t> Catalog::MoveEntry(int64_t id, int64_t new_parent_id, const std::string& new_name,
                                   bool replace) {
  SFS_RETURN_IF_ERROR(ValidateName(new_name, "file name"));
  return InTxn(*this, [&]() -> Result<int64_t> {
    SFS_ASSIGN_OR_RETURN(Entry e, EntryById(id));
    if (e.parent_id == 0) return Status(Code::kPermission, "files/ of an image cannot be moved");
    auto found = EntryById(new_parent_id);
    if (found.status().is_not_found())
      return Status(Code::kReferenceMissing,
                    "target folder " + std::to_string(new_parent_id) + " does not exist");
    SFS_ASSIGN_OR_RETURN(Entry parent, std::move(found));
    if (parent.type != EntryType::kFolder)
      return Status(Code::kInvalidArgument, "target of the move is not a folder");
    if (e.type == EntryType::kFolder) {
      // Refuse moving a folder into its own subtree (it would detach a cycle).
      int64_t cur = new_parent_id;
      while (cur) {
        if (cur == id) return Status(Code::kInvalidArgument, "cannot move a folder into itself");
        SFS_ASSIGN_OR_RETURN(Entry p, EntryById(cur));
        cur = p.parent_id;
      }
    }
    int64_t replaced = 0;
    auto existing = EntryByName(new_parent_id, new_name);
    if (existing.ok()) {
      if (existing->id == id) return int64_t{0};  // rename onto itself: no-op
      if (!replace) return Status(Code::kAlreadyExists, Quoted(new_name) + " already exists");
      bool src_dir = e.type == EntryType::kFolder, dst_dir = existing->type == EntryType::kFolder;
      if (src_dir != dst_dir)
        return Status(src_dir ? Code::kNotADirectory : Code::kIsADirectory,
                      src_dir ? Quoted(new_name) + " is not a folder" : Quoted(new_name) + " is a folder");
      SFS_RETURN_IF_ERROR(DeleteEntry(existing->id));
      replaced = existing->id;
    } else if (!existing.status().is_not_found()) {
      return existing.status();
    }
    // A file's kind follows its final name: rsync, editors and
    // tempfile+os.replace write under a temporary name and rename. A kind
    // set by hand (one its name would not give) stays.
    std::string kind = e.kind;
    if (e.type == EntryType::kFile && e.kind == KindFromName(e.name)) kind = KindFromName(new_name);
    // Entries below a moved folder change image too.
    // A rename changes the entry's ctime and both folders' mtime and ctime;
    // a folder moves from one folder's count of subfolders to the other's.
    const int64_t now = NowNs();
    SFS_RETURN_IF_ERROR(Exec(*db_, "UPDATE entry SET parent_id = ?, name = ?, image_id = ?, kind = ?, ctime_ns = ? WHERE id = ?",
                             {new_parent_id, new_name, parent.image_id, kind, now, id}));
    const int64_t moved_folders = e.type == EntryType::kFolder && e.parent_id != new_parent_id ? 1 : 0;
    SFS_RETURN_IF_ERROR(FolderChanged(*db_, e.parent_id, now, -moved_folders));
    if (new_parent_id != e.parent_id) SFS_RETURN_IF_ERROR(FolderChanged(*db_, new_parent_id, now, moved_folders));
    if (e.type == EntryType::kFolder && parent.image_id != e.image_id) {
      SFS_RETURN_IF_ERROR(Exec(*db_,
                               "WITH RECURSIVE sub(id) AS (SELECT id FROM entry WHERE parent_id = ? "
                               "UNION ALL SELECT e.id FROM entry e JOIN sub ON e.parent_id = sub.id) "
                               "UPDATE entry SET image_id = ? WHERE id IN (SELECT id FROM sub)",
                               {id, parent.image_id}));
    }
    return replaced;
  });
}

Result<std::vector<Entry>> Catalog::ListEntries(int64_t parent_id, int64_t after_id, int limit) {
  ReadLock read(*this);
  return Page(read.db(), kEntryTable, "parent_id = ? AND name NOT LIKE '/%'", {parent_id}, after_id, limit);
}

Result<int64_t> Catalog::CountEntries(int64_t parent_id) {
  ReadLock read(*this);
  return Count(read.db(), "SELECT count(*) FROM entry WHERE parent_id = ? AND name NOT LIKE '/%'", {parent_id});
}

Result<std::vector<Entry>> Catalog::ListTaggedEntries(int64_t tag_id, int64_t after_id, int limit) {
  ReadLock read(*this);
  return Rows<Entry>(read.db(), std::string("SELECT ") + kEntryCols +
                               " FROM entry WHERE id IN (SELECT record_id FROM tagging WHERE "
                               "tag_id = ? AND entity = 'entry' AND record_id > ?) AND NOT EXISTS (SELECT 1 FROM "
                               "entry_path ep WHERE ep.id = entry.id AND ep.path LIKE '/%') ORDER BY id LIMIT ?",
                     {tag_id, after_id, int64_t{limit}}, ReadEntry);
}

// ---------------------------------------------------------------------------
// Trash (docs/DECISIONS.md "Trash"). A trashed entry moves to its image's
// root under the name '/' || trash.id, which no file tool can create.

namespace {
constexpr const char* kTrashCols =
    "t.id, t.entry_id, t.uid, t.name, t.original_parent_id, t.original_name, t.original_path, "
    "t.deleted_at, e.type, e.size FROM trash t JOIN entry e ON e.id = t.entry_id";
TrashItem ReadTrashItem(const Statement& st) {
  TrashItem t;
  t.id = st.Int(0);
  t.entry_id = st.Int(1);
  t.uid = st.Int(2);
  t.name = st.Text(3);
  t.original_parent_id = st.IsNull(4) ? 0 : st.Int(4);
  t.original_name = st.Text(5);
  t.original_path = st.Text(6);
  t.deleted_at = st.Text(7);
  t.type = EntryTypeFromName(st.Text(8));
  t.size = static_cast<uint64_t>(st.Int(9));
  return t;
}
}  // namespace

Result<TrashItem> Catalog::TrashEntry(int64_t entry_id, int64_t uid, const std::string& trash_name,
                                      const std::string& original_path, const std::string& deleted_at) {
  SFS_RETURN_IF_ERROR(ValidateName(trash_name, "trash name"));
  SFS_RETURN_IF_ERROR(ValidateText(original_path, "original path"));
  return InTxn(*this, [&]() -> Result<TrashItem> {
    SFS_ASSIGN_OR_RETURN(Entry e, EntryById(entry_id));
    if (e.parent_id == 0) return Status(Code::kPermission, "files/ of an image cannot be trashed");
    if (e.name.rfind('/', 0) == 0) return Status(Code::kAlreadyExists, "entry " + std::to_string(entry_id) + " is in the trash already");
    if (TrashItemByName(uid, trash_name).ok())
      return Status(Code::kAlreadyExists, Quoted(trash_name) + " is in the trash already");
    SFS_ASSIGN_OR_RETURN(Entry root, FilesRoot(e.image_id));
    SFS_ASSIGN_OR_RETURN(
        int64_t id,
        OneRow<int64_t>(*db_,
                        "INSERT INTO trash(entry_id, uid, name, original_parent_id, original_name, "
                        "original_path, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        {entry_id, uid, trash_name, e.parent_id, e.name, original_path, deleted_at},
                        [](const Statement& st) { return st.Int(0); }, ""));
    SFS_RETURN_IF_ERROR(Exec(*db_, "UPDATE entry SET parent_id = ?, name = ? WHERE id = ?",
                             {root.id, "/" + std::to_string(id), entry_id}));
    return TrashItemById(id);
  });
}

Result<std::vector<TrashItem>> Catalog::ListTrash(int64_t uid) {
  ReadLock read(*this);
  if (uid < 0) return Rows<TrashItem>(read.db(), std::string("SELECT ") + kTrashCols + " ORDER BY t.id", {}, ReadTrashItem);
  return Rows<TrashItem>(read.db(), std::string("SELECT ") + kTrashCols + " WHERE t.uid = ? ORDER BY t.id", {uid},
                         ReadTrashItem);
}

Result<TrashItem> Catalog::TrashItemByName(int64_t uid, const std::string& trash_name) {
  ReadLock read(*this);
  return OneRow<TrashItem>(read.db(), std::string("SELECT ") + kTrashCols + " WHERE t.uid = ? AND t.name = ?",
                           {uid, trash_name}, ReadTrashItem, Quoted(trash_name) + " is not in the trash");
}

Result<std::vector<int64_t>> Catalog::TrashUids() {
  ReadLock read(*this);
  return Rows<int64_t>(read.db(), "SELECT DISTINCT uid FROM trash ORDER BY uid", {},
                       [](const Statement& st) { return st.Int(0); });
}

Result<TrashItem> Catalog::TrashItemById(int64_t id) {
  ReadLock read(*this);
  return OneRow<TrashItem>(read.db(), std::string("SELECT ") + kTrashCols + " WHERE t.id = ?", {id}, ReadTrashItem,
                           "trash item " + std::to_string(id) + " does not exist");
}

Result<Entry> Catalog::RestoreTrash(int64_t trash_id, int64_t parent_id, const std::string& name) {
  return InTxn(*this, [&]() -> Result<Entry> {
    SFS_ASSIGN_OR_RETURN(TrashItem t, TrashItemById(trash_id));
    int64_t to = parent_id ? parent_id : t.original_parent_id;
    std::string as = name.empty() ? t.original_name : name;
    if (to == 0)
      return Status(Code::kReferenceMissing, "the folder of " + Quoted(t.original_path) +
                                                 " no longer exists; restore it to another folder");
    if (EntryByName(to, as).ok())
      return Status(Code::kAlreadyExists, Quoted(t.original_path) + " exists again; restore it under another name");
    SFS_ASSIGN_OR_RETURN(int64_t hidden, Count(*db_, "SELECT count(*) FROM entry_path WHERE id = ? AND path LIKE '/%'", {to}));
    if (hidden) return Status(Code::kReferenceMissing, "the folder of " + Quoted(t.original_path) + " is in the trash");
    SFS_RETURN_IF_ERROR(Exec(*db_, "DELETE FROM trash WHERE id = ?", {trash_id}));
    SFS_RETURN_IF_ERROR(MoveEntry(t.entry_id, to, as, false).status());
    return EntryById(t.entry_id);
  });
}

Status Catalog::DeleteTrashItem(int64_t trash_id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(TrashItem t, TrashItemById(trash_id));
    // The subtree goes with it (ON DELETE CASCADE), and the trash row.
    return Exec(*db_, "DELETE FROM entry WHERE id = ?", {t.entry_id});
  });
}

Result<int64_t> Catalog::EmptyTrash(int64_t uid, const std::string& before) {
  return InTxn(*this, [&]() -> Result<int64_t> {
    SFS_ASSIGN_OR_RETURN(std::vector<TrashItem> items, ListTrash(uid));
    int64_t n = 0;
    for (const TrashItem& t : items) {
      if (!before.empty() && !(t.deleted_at < before)) continue;
      SFS_RETURN_IF_ERROR(Exec(*db_, "DELETE FROM entry WHERE id = ?", {t.entry_id}));
      ++n;
    }
    return n;
  });
}

// ---------------------------------------------------------------------------
// Tags.

Result<Tag> Catalog::CreateTag(const std::string& name) {
  SFS_RETURN_IF_ERROR(ValidateName(name, "tag name"));
  if (name.find(',') != std::string::npos)
    return Status(Code::kInvalidArgument, "tag name " + Quoted(name) + " contains ','");
  std::lock_guard lock(mu_);
  auto r = OneRow<Tag>(*db_, "INSERT INTO tag(id, name) VALUES (" + db_->NewIdSql("tag") + ", ?) RETURNING id, name", {name}, ReadTag, "");
  if (!r.ok()) return Explain(r.status(), "tag " + Quoted(name) + " already exists", "");
  return r;
}

Result<Tag> Catalog::TagByName(const std::string& name) {
  ReadLock read(*this);
  return FindOne(read.db(), kTagTable, "name = ?", {name}, "tag " + Quoted(name) + " does not exist");
}

Result<Tag> Catalog::TagById(int64_t id) {
  ReadLock read(*this);
  return FindById(read.db(), kTagTable, id);
}

Status Catalog::DeleteTag(int64_t id) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Tag t, TagById(id));
    return DeleteUnlessUsed(*db_, "tag", id, "SELECT count(*) FROM tagging WHERE tag_id = ?",
                            "tag " + Quoted(t.name), "is still on", "record(s)");
  });
}

Result<std::vector<Tag>> Catalog::ListTags(int64_t after_id, int limit) {
  ReadLock read(*this);
  return Page(read.db(), kTagTable, "", {}, after_id, limit);
}

Result<std::vector<std::string>> Catalog::TagsOf(Entity entity, int64_t record_id) {
  ReadLock read(*this);
  return Rows<std::string>(read.db(),
                           "SELECT t.name FROM tagging g JOIN tag t ON t.id = g.tag_id "
                           "WHERE g.entity = ? AND g.record_id = ? ORDER BY t.name",
                           {std::string(EntityName(entity)), record_id},
                           [](const Statement& st) { return st.Text(0); });
}

// Tags and annotations name their record by (entity, id) with no foreign
// key (none can point at "any table"), so the catalog checks the record.
static Status CheckEntityExists(Database& db, Entity entity, int64_t record_id) {
  const std::string table = EntityName(entity);  // a fixed table name, never user text
  SFS_ASSIGN_OR_RETURN(int64_t n, Count(db, "SELECT count(*) FROM " + table + " WHERE id = ?", {record_id}));
  if (!n) return Status(Code::kReferenceMissing, table + " " + std::to_string(record_id) + " does not exist");
  return Status::Ok();
}

Status Catalog::AddTag(Entity entity, int64_t record_id, const std::string& name) {
  return InTxn(*this, [&]() -> Status {
    SFS_RETURN_IF_ERROR(CheckEntityExists(*db_, entity, record_id));
    auto t = TagByName(name);
    if (!t.ok() && t.status().is_not_found()) t = CreateTag(name);
    if (!t.ok()) return t.status();
    SFS_RETURN_IF_ERROR(Exec(*db_, "INSERT INTO tagging(tag_id, entity, record_id) VALUES (?, ?, ?) "
                                   "ON CONFLICT DO NOTHING",
                             {t->id, std::string(EntityName(entity)), record_id}));
    return EntryXattrsChanged(*db_, entity, record_id);
  });
}

Status Catalog::RemoveTag(Entity entity, int64_t record_id, const std::string& name) {
  return InTxn(*this, [&]() -> Status {
    SFS_ASSIGN_OR_RETURN(Tag t, TagByName(name));
    auto r = OneRow<int64_t>(*db_,
                             "DELETE FROM tagging WHERE tag_id = ? AND entity = ? AND record_id = ? "
                             "RETURNING tag_id",
                             {t.id, std::string(EntityName(entity)), record_id},
                             [](const Statement& st) { return st.Int(0); },
                             "the record does not carry tag " + Quoted(name));
    SFS_RETURN_IF_ERROR(r.status());
    return EntryXattrsChanged(*db_, entity, record_id);
  });
}

Status Catalog::SetTags(Entity entity, int64_t record_id, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    SFS_RETURN_IF_ERROR(ValidateName(n, "tag name"));
    if (n.find(',') != std::string::npos)
      return Status(Code::kInvalidArgument, "tag name " + Quoted(n) + " contains ','");
  }
  return InTxn(*this, [&]() -> Status {
    const std::string ent = EntityName(entity);
    // One statement reads what the edit needs: whether the record exists
    // (0), the tags it carries (1) and which of the wanted tags exist (2).
    // Only the difference is then written: the taggings that stay are not
    // deleted and inserted again (setfattr of user.xdg.tags on 10,000
    // files rewrote every tag's index page per file), and the writes are
    // deferred (on PostgreSQL they go with the COMMIT: a tag edit is two
    // round trips, tests/bench/README.md).
    std::string sql = "SELECT 0, count(*), '' FROM " + ent +  // a fixed table name, never user text
                      " WHERE id = ?1 UNION ALL SELECT 1, tag_id, '' FROM tagging WHERE entity = ?2 "
                      "AND record_id = ?1";
    Params ps{record_id, ent};
    if (!names.empty()) {
      sql += " UNION ALL SELECT 2, id, name FROM tag WHERE name IN (";
      for (size_t i = 0; i < names.size(); ++i) {
        sql += (i ? ", ?" : "?") + std::to_string(i + 3);
        ps.push_back(names[i]);
      }
      sql += ")";
    }
    bool exists = false;
    std::set<int64_t> had, want;
    std::map<std::string, int64_t> known;
    SFS_RETURN_IF_ERROR(ForRows(*db_, sql, ps, [&](const Statement& st) {
      switch (st.Int(0)) {
        case 0: exists = st.Int(1) > 0; break;
        case 1: had.insert(st.Int(1)); break;
        default: known[st.Text(2)] = st.Int(1);
      }
    }));
    if (!exists)
      return Status(Code::kReferenceMissing, ent + " " + std::to_string(record_id) + " does not exist");
    for (const auto& n : names) {
      auto k = known.find(n);
      int64_t id = 0;
      if (k != known.end()) {
        id = k->second;
      } else {
        SFS_ASSIGN_OR_RETURN(Tag t, CreateTag(n));
        id = known[n] = t.id;
      }
      if (!want.insert(id).second || had.count(id)) continue;
      SFS_RETURN_IF_ERROR(Deferred(*db_, "INSERT INTO tagging(tag_id, entity, record_id) VALUES (?, ?, ?) "
                                         "ON CONFLICT DO NOTHING",
                                   {id, ent, record_id}));
    }
    for (int64_t id : had)
      if (!want.count(id))
        SFS_RETURN_IF_ERROR(Deferred(*db_, "DELETE FROM tagging WHERE tag_id = ? AND entity = ? AND record_id = ?",
                                     {id, ent, record_id}));
    return EntryXattrsChanged(*db_, entity, record_id);
  });
}

Result<std::vector<int64_t>> Catalog::TaggedRecords(Entity entity, int64_t tag_id, int64_t after_id,
                                                    int limit) {
  ReadLock read(*this);
  return Rows<int64_t>(read.db(),
                       "SELECT record_id FROM tagging WHERE tag_id = ? AND entity = ? AND "
                       "record_id > ? ORDER BY record_id LIMIT ?",
                       {tag_id, std::string(EntityName(entity)), after_id, int64_t{limit}},
                       [](const Statement& st) { return st.Int(0); });
}

// ---------------------------------------------------------------------------
// Annotations.

Result<Annotations> Catalog::AnnotationsOf(Entity entity, int64_t record_id) {
  ReadLock read(*this);
  return Rows<std::pair<std::string, std::string>>(
      read.db(), "SELECT key, value FROM annotation WHERE entity = ? AND record_id = ? ORDER BY key",
      {std::string(EntityName(entity)), record_id},
      [](const Statement& st) { return std::make_pair(st.Text(0), st.Text(1)); });
}

Result<Catalog::XattrKeys> Catalog::XattrKeysOf(Entity entity, int64_t record_id) {
  ReadLock read(*this);
  XattrKeys out;
  // Tags first (column 0 is 0), then annotation keys (1), each sorted as
  // TagsOf and AnnotationsOf sort them.
  SFS_RETURN_IF_ERROR(ForRows(
      read.db(),
      "SELECT 0, t.name FROM tagging g JOIN tag t ON t.id = g.tag_id "
      "WHERE g.entity = ?1 AND g.record_id = ?2 "
      "UNION ALL SELECT 1, key FROM annotation WHERE entity = ?1 AND record_id = ?2 ORDER BY 1, 2",
      {std::string(EntityName(entity)), record_id}, [&](const Statement& st) {
        if (st.Int(0) == 0) out.tags.push_back(st.Text(1));
        else out.annotation_keys.push_back(st.Text(1));
      }));
  out.tagged = !out.tags.empty();
  return out;
}

Result<std::string> Catalog::Annotation(Entity entity, int64_t record_id, const std::string& key) {
  ReadLock read(*this);
  return OneRow<std::string>(read.db(),
                             "SELECT value FROM annotation WHERE entity = ? AND record_id = ? AND key = ?",
                             {std::string(EntityName(entity)), record_id, key},
                             [](const Statement& st) { return st.Text(0); },
                             "no annotation " + Quoted(key));
}

Status Catalog::SetAnnotation(Entity entity, int64_t record_id, const std::string& key,
                              const std::string& value) {
  if (key.empty() || key.size() > 255) return Status(Code::kInvalidArgument, "annotation key must be 1..255 bytes");
  SFS_RETURN_IF_ERROR(ValidateText(key, "annotation key"));
  SFS_RETURN_IF_ERROR(ValidateText(value, "annotation value"));
  return InTxn(*this, [&]() -> Status {
    SFS_RETURN_IF_ERROR(CheckEntityExists(*db_, entity, record_id));
    // Deferred: an upsert meets no unique key (PostgreSQL: sent with the
    // COMMIT).
    SFS_RETURN_IF_ERROR(Deferred(*db_,
                                 "INSERT INTO annotation(entity, record_id, key, value) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (entity, record_id, key) DO UPDATE SET value = excluded.value",
                                 {std::string(EntityName(entity)), record_id, key, value}));
    return EntryXattrsChanged(*db_, entity, record_id);
  });
}

Status Catalog::RemoveAnnotation(Entity entity, int64_t record_id, const std::string& key) {
  return InTxn(*this, [&]() -> Status {
    auto r = OneRow<int64_t>(*db_,
                             "DELETE FROM annotation WHERE entity = ? AND record_id = ? AND key = ? "
                             "RETURNING record_id",
                             {std::string(EntityName(entity)), record_id, key},
                             [](const Statement& st) { return st.Int(0); },
                             "no annotation " + Quoted(key));
    SFS_RETURN_IF_ERROR(r.status());
    return EntryXattrsChanged(*db_, entity, record_id);
  });
}

// ---------------------------------------------------------------------------
// Whole catalog.

Result<CatalogStats> Catalog::Stats() {
  ReadOnWriter lock(mu_);
  // All the counts from one snapshot (another process may commit between
  // two of them): a read transaction of their own, unless the caller's
  // transaction is open on this thread.
  if (txn_depth_ > 0) return CountEverything();
  SFS_RETURN_IF_ERROR(db_->BeginRead());
  auto r = CountEverything();
  Status end = r.ok() ? db_->Commit() : db_->Rollback();
  if (r.ok() && !end.ok()) return end;
  return r;
}

Result<CatalogStats> Catalog::CountEverything() {
  CatalogStats s;
  struct { const char* sql; int64_t* out; } qs[] = {
      {"SELECT count(*) FROM species", &s.species},
      {"SELECT count(*) FROM sample", &s.samples},
      {"SELECT count(*) FROM dye", &s.dyes},
      {"SELECT count(*) FROM slide", &s.slides},
      {"SELECT count(*) FROM labelling", &s.labellings},
      {"SELECT count(*) FROM image", &s.images},
      {"SELECT count(*) FROM entry WHERE type = 'file'", &s.files},
      {"SELECT count(*) FROM entry WHERE type = 'folder' AND parent_id IS NOT NULL", &s.folders},
      {"SELECT count(*) FROM entry WHERE type = 'symlink'", &s.symlinks},
      {"SELECT count(*) FROM tag", &s.tags},
      {"SELECT count(*) FROM annotation", &s.annotations},
      {"SELECT coalesce(sum(size), 0) FROM entry WHERE type = 'file'", &s.file_bytes},
      {"SELECT count(*) FROM (SELECT DISTINCT hash FROM entry WHERE hash IS NOT NULL) AS objects", &s.distinct_objects},
      {"SELECT coalesce(sum(size), 0) FROM (SELECT hash, max(size) AS size FROM entry "
       "WHERE hash IS NOT NULL GROUP BY hash) AS objects", &s.distinct_bytes},
  };
  for (auto& q : qs) {
    SFS_ASSIGN_OR_RETURN(*q.out, Count(*db_, q.sql, {}));
  }
  // The trash: each trashed entry and its subtree (a handful of rows,
  // walked from the trash table down entry_parent), taken out of the
  // counts above.
  const std::string trashed =
      "WITH RECURSIVE t(id) AS (SELECT entry_id FROM trash UNION ALL "
      "SELECT e.id FROM entry e JOIN t ON e.parent_id = t.id) "
      "SELECT ";
  const std::string from = " FROM entry e JOIN t ON e.id = t.id";
  struct { std::string sql; int64_t* out; int64_t* live; } ts[] = {
      {"SELECT count(*) FROM trash", &s.trash_items, nullptr},
      {trashed + "count(*)" + from + " WHERE e.type = 'file'", &s.trashed_files, &s.files},
      {trashed + "count(*)" + from + " WHERE e.type = 'folder'", &s.trashed_folders, &s.folders},
      {trashed + "count(*)" + from + " WHERE e.type = 'symlink'", &s.trashed_symlinks, &s.symlinks},
      {trashed + "coalesce(sum(e.size), 0)" + from + " WHERE e.type = 'file'", &s.trashed_bytes, &s.file_bytes},
  };
  for (auto& q : ts) {
    SFS_ASSIGN_OR_RETURN(*q.out, Count(*db_, q.sql, {}));
    if (q.live) *q.live -= *q.out;
  }
  return s;
}

Result<CatalogUsage> Catalog::Usage() {
  ReadLock read(*this);
  CatalogUsage u;
  SFS_ASSIGN_OR_RETURN(u.object_bytes,
                       Count(read.db(),
                             "SELECT coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM entry "
                             "WHERE hash IS NOT NULL GROUP BY hash) AS objects",
                             {}));
  SFS_ASSIGN_OR_RETURN(u.records, Count(read.db(),
                                        "SELECT (SELECT count(*) FROM entry) + (SELECT count(*) FROM image) + "
                                        "(SELECT count(*) FROM slide) + (SELECT count(*) FROM sample) + "
                                        "(SELECT count(*) FROM species) + (SELECT count(*) FROM dye) + "
                                        "(SELECT count(*) FROM tag)",
                                        {}));
  return u;
}

Status Catalog::ForEachReferencedHash(const std::function<Status(const std::string&)>& fn) {
  // Pages through the hash index in hash order, so memory stays flat for
  // millions of objects and `fn` runs without the catalog lock (it may call
  // the catalog). A hash recorded during the walk may be missed if it sorts
  // before the current page; gc's grace period covers such young objects.
  constexpr int kPage = 1024;
  std::string after;  // "" sorts before every hash
  for (;;) {
    std::vector<std::string> page;
    {
      ReadOnWriter lock(mu_);
      SFS_RETURN_IF_ERROR(ForRows(*db_,
                                  "SELECT DISTINCT hash FROM entry WHERE hash IS NOT NULL AND hash > ? "
                                  "ORDER BY hash LIMIT ?",
                                  {after, int64_t{kPage}},
                                  [&](const Statement& st) { page.push_back(st.Text(0)); }));
    }
    for (const auto& h : page) SFS_RETURN_IF_ERROR(fn(h));
    if (page.size() < static_cast<size_t>(kPage)) return Status::Ok();
    after = page.back();
  }
}

Result<int64_t> Catalog::ExternalChangeCounter() {
  ReadOnWriter lock(mu_);
  return db_->ExternalChangeCounter();
}

}  // namespace samplefs
