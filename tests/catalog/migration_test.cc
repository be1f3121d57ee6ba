// Tests of catalog files: schema versions and migration (catalog/schema.h),
// and what SPEC section 2 promises other programs that open the same file
// (WAL mode, foreign keys, 0600, readers while a mount writes).
//
// Old catalogs are built from SqliteSchemaV1Sql() plus INSERTs through the
// plain sqlite3 C API, as an old samplefs (or a user's script) left them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/schema.h"
#include "catalog_testing.h"

namespace samplefs {

// gtest prints a Code by name. Identical (inline) in every test file.
inline void PrintTo(Code code, std::ostream* os) { *os << CodeName(code); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// prefix + decimal n. Spelled with += because GCC 12 at -O2 reports a false
// -Wrestrict on `"literal" + std::to_string(n)` (GCC bug 105329), which
// -Werror builds turn into an error.
std::string NameN(std::string prefix, long long n) {
  prefix += std::to_string(n);
  return prefix;
}



template <class T>
T Must(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

// A raw sqlite3 connection, as sqlite3(1) or pandas would have.
class RawDb {
 public:
  explicit RawDb(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path + ": " + sqlite3_errmsg(db_));
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Runs SQL; returns the SQLite result code, leaving the message in error().
  int Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    error_ = err ? err : "";
    sqlite3_free(err);
    return rc;
  }
  void MustExec(const std::string& sql) {
    if (Exec(sql) != SQLITE_OK) throw std::runtime_error(sql + ": " + error_);
  }
  // All rows of a query, each row's columns joined by '|'. Sets rc().
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* st = nullptr;
    rc_ = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr);
    if (rc_ != SQLITE_OK) {
      error_ = sqlite3_errmsg(db_);
      return out;
    }
    while ((rc_ = sqlite3_step(st)) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        if (i) row += '|';
        const auto* t = sqlite3_column_text(st, i);
        row += t ? reinterpret_cast<const char*>(t) : "NULL";
      }
      out.push_back(row);
    }
    if (rc_ != SQLITE_DONE) error_ = sqlite3_errmsg(db_);
    sqlite3_finalize(st);
    return out;
  }
  std::string One(const std::string& sql) {
    auto rows = Rows(sql);
    if (rows.size() != 1) throw std::runtime_error(sql + NameN(": ", rows.size()) + " rows, " + error_);
    return rows[0];
  }
  int rc() const { return rc_; }
  const std::string& error() const { return error_; }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_OK;
  std::string error_;
};

const char* kV1Data = R"SQL(
INSERT INTO species(id, name, species, strain) VALUES (1, 'HeLa', 'Human', ''), (2, 'Rat-Wistar', 'Rat', 'Wistar');
INSERT INTO sample(id, name, species_id, sample_type) VALUES (1, 'P12', 1, 'Cell Culture');
INSERT INTO dye(id, short_name, long_name) VALUES (1, 'A647', 'Alexa Fluor 647'), (2, 'A488', 'Alexa Fluor 488');
INSERT INTO slide(id, reference, sample_id, creator, notes, created, modified)
  VALUES (1, 'S-001', 1, 'alice', 'it''s old', '2023-05-01T10:00:00Z', '2023-05-02T10:00:00Z');
INSERT INTO labelling(slide_id, structure, dye_id) VALUES (1, 'tubulin', 1), (1, 'actin', 2);
INSERT INTO image(id, slide_id, name, user, acquired) VALUES (1, 1, 'img0', 'bob', '2023-05-01T11:00:00Z');
INSERT INTO entry(id, image_id, parent_id, name, type, mode, mtime_ns) VALUES (1, 1, NULL, '', 'folder', 493, 0);
INSERT INTO entry(id, image_id, parent_id, name, type, mode, mtime_ns) VALUES (2, 1, 1, 'Pos0', 'folder', 493, 0);
INSERT INTO entry(id, image_id, parent_id, name, type, mode, mtime_ns) VALUES (9, 1, 1, 'x.zarr', 'folder', 493, 0);
INSERT INTO entry(id, image_id, parent_id, name, type, size, hash, mode, mtime_ns) VALUES
  (3, 1, 2, 'a.tif', 'file', 100, '0000000000000000000000000000000a', 420, 1700000000000000001),
  (4, 1, 1, 'B.TIFF', 'file', 200, '0000000000000000000000000000000b', 420, 2),
  (5, 1, 1, 'res.h5r', 'file', 300, '0000000000000000000000000000000c', 420, 3),
  (6, 1, 1, 'data.h5', 'file', 400, '0000000000000000000000000000000d', 420, 4),
  (7, 1, 1, 't.csv', 'file', 500, '0000000000000000000000000000000a', 420, 5),
  (8, 1, 1, 'notes.txt', 'file', 600, '0000000000000000000000000000000e', 420, 6),
  (10, 1, 9, '.zarray', 'file', 10, '0000000000000000000000000000000f', 420, 7),
  (12, 1, 1, 'meta.JSON', 'file', 20, '00000000000000000000000000000010', 420, 8),
  (13, 1, 1, 'stack.nd2', 'file', 30, '00000000000000000000000000000011', 420, 9),
  (14, 1, 1, 'tif', 'file', 40, '00000000000000000000000000000012', 420, 10);
INSERT INTO entry(id, image_id, parent_id, name, type, mode, mtime_ns, target) VALUES (11, 1, 1, 'l.tif', 'symlink', 511, 0, 'a.tif');
INSERT INTO tag(id, name) VALUES (1, 'good'), (2, 'raw-data');
INSERT INTO tagging(tag_id, entity, record_id) VALUES (1, 'slide', 1), (2, 'entry', 3), (1, 'entry', 5);
)SQL";

class CatalogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("samplefs_migration_test");
    ASSERT_FALSE(dir_.empty()) << std::strerror(errno);
    path_ = dir_ + "/catalog.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void MakeV1(const std::string& path, const std::string& extra_sql = "") {
    RawDb db(path);
    db.MustExec("PRAGMA foreign_keys=ON; BEGIN;" + SqliteSchemaV1Sql() + kV1Data + extra_sql + "COMMIT;");
  }

  // A catalog at schema `version` as an older samplefs left it: v1 with its
  // data, each step up to `version`, then `extra_sql`. Call it through
  // ASSERT_NO_FATAL_FAILURE.
  void MakeVersion(int version, const std::string& extra_sql = "") {
    std::string ladder;
    for (int v = 1; v < version; ++v) ladder += SqliteMigrationSql(v);
    RawDb db(path_);
    db.MustExec("PRAGMA foreign_keys=ON; BEGIN;" + SqliteSchemaV1Sql() + kV1Data + ladder + extra_sql + "COMMIT;");
    ASSERT_EQ(db.One("SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(version));
  }

  // Opens the catalog made by MakeVersion: migrated to the current version.
  std::unique_ptr<Catalog> OpenMigrated() {
    auto c = Must(Catalog::OpenSqlite(path_));
    EXPECT_EQ(c->schema_version(), kSchemaVersion);
    return c;
  }

  // The migrated catalog's schema is a fresh catalog's.
  void ExpectFreshSchema() {
    const std::string fresh = dir_ + "/fresh.db";
    Must(Catalog::OpenSqlite(fresh)).reset();
    EXPECT_EQ(SchemaOf(path_), SchemaOf(fresh));
  }

  // Issue 18's steps add entry columns that old rows get values for. A
  // catalog at `version` with one more folder `name` in Pos0/ (inserted
  // with `columns` = `values`), migrated: `check` gets the catalog's
  // files/, Pos0/, that folder and Pos0/a.tif; the schema is a fresh
  // catalog's after.
  struct Migrated {
    Entry root, pos0, folder, a;
  };
  void CheckMigration(int version, const std::string& name, const std::string& columns, const std::string& values,
                      const std::function<void(const Migrated&)>& check) {
    ASSERT_NO_FATAL_FAILURE(MakeVersion(version, "INSERT INTO entry(id, image_id, parent_id, name, type, mode, " +
                                                     columns + ") VALUES (15, 1, 2, '" + name + "', 'folder', 493, " +
                                                     values + ");"));
    {
      auto c = OpenMigrated();
      Migrated m;
      m.root = Must(c->FilesRoot(1));
      m.pos0 = Must(c->EntryByName(m.root.id, "Pos0"));
      m.folder = Must(c->EntryByName(m.pos0.id, name));
      m.a = Must(c->EntryByName(m.pos0.id, "a.tif"));
      check(m);
    }
    ExpectFreshSchema();
  }

  // Every schema object as "type|name|tbl_name|sql", for comparing schemas.
  static std::set<std::string> SchemaOf(const std::string& path) {
    RawDb db(path, SQLITE_OPEN_READONLY);
    auto rows = db.Rows("SELECT type, name, tbl_name, sql FROM sqlite_master");
    return {rows.begin(), rows.end()};
  }

  std::string dir_, path_;
};

TEST_F(CatalogFileTest, FreshCatalogIsCurrentVersion) {
  auto c = Must(Catalog::OpenSqlite(path_));
  EXPECT_EQ(c->schema_version(), kSchemaVersion);
  EXPECT_EQ(kSchemaVersion, 7);
  c.reset();
  RawDb db(path_);
  EXPECT_EQ(db.One("SELECT value FROM meta WHERE key = 'schema_version'"), std::to_string(kSchemaVersion));
  // Reopening changes nothing.
  auto before = SchemaOf(path_);
  auto again = Must(Catalog::OpenSqlite(path_));
  EXPECT_EQ(again->schema_version(), kSchemaVersion);
  EXPECT_EQ(SchemaOf(path_), before);
}

TEST_F(CatalogFileTest, MigratesVersion1WithItsData) {
  ASSERT_NO_FATAL_FAILURE(MakeVersion(1));
  auto c = OpenMigrated();

  // The records are all there.
  Species hela = Must(c->SpeciesByName("HeLa"));
  EXPECT_EQ(hela.species, "Human");
  EXPECT_EQ(Must(c->SpeciesByName("Rat-Wistar")).strain, "Wistar");
  Sample p12 = Must(c->SampleByName("P12"));
  EXPECT_EQ(p12.species_id, hela.id);
  Slide s = Must(c->SlideByReference("S-001"));
  EXPECT_EQ(s.notes, "it's old");
  EXPECT_EQ(s.created, "2023-05-01T10:00:00Z");
  EXPECT_EQ(Must(c->LabellingsOfSlide(s.id)).size(), 2u);
  Image img = Must(c->ImageByName(s.id, "img0"));
  Entry root = Must(c->FilesRoot(img.id));
  EXPECT_EQ(Must(c->CountEntries(root.id)), 11);
  Entry pos0 = Must(c->EntryByName(root.id, "Pos0"));
  Entry a = Must(c->EntryByName(pos0.id, "a.tif"));
  EXPECT_EQ(a.size, 100u);
  EXPECT_EQ(a.mtime_ns, 1700000000000000001);
  EXPECT_THAT(Must(c->TagsOf(Entity::kSlide, s.id)), ElementsAre("good"));
  EXPECT_THAT(Must(c->TagsOf(Entity::kEntry, a.id)), ElementsAre("raw-data"));

  // Kinds are derived from file names, as KindFromName does for new files.
  const std::pair<const char*, const char*> kinds[] = {
      {"B.TIFF", "raw"},       {"res.h5r", "analysis"}, {"data.h5", "raw"},
      {"t.csv", "analysis"},   {"notes.txt", "other"},  {"meta.JSON", "analysis"},
      {"stack.nd2", "raw"},    {"tif", "other"},        {"x.zarr", "other"},  // a folder
      {"l.tif", "other"}};                                                    // a symlink
  for (auto [name, kind] : kinds) {
    Entry e = Must(c->EntryByName(root.id, name));
    EXPECT_EQ(e.kind, kind) << name;
    if (e.type == EntryType::kFile) {
      EXPECT_EQ(e.kind, KindFromName(name)) << name;
    }
  }
  EXPECT_EQ(a.kind, "raw");

  // v2 features work on the migrated catalog.
  ASSERT_TRUE(c->SetAnnotation(Entity::kSlide, s.id, "stain", "fresh").ok());
  auto q = Must(Query::Parse("stain=fresh,tag=good"));
  EXPECT_EQ(Must(c->ListSlides(q, 0, 10)).size(), 1u);
  // Cleanup triggers exist now: deleting a tagged file removes its tagging.
  ASSERT_TRUE(c->DeleteEntry(Must(c->EntryByName(root.id, "res.h5r")).id).ok());
  c.reset();

  // The views answer.
  RawDb db(path_);
  EXPECT_EQ(db.One("SELECT count(*) FROM tagging WHERE entity = 'entry'"), "1");
  EXPECT_EQ(db.One("SELECT count(*) FROM file_info"), "9");
  EXPECT_EQ(db.One("SELECT path FROM entry_path WHERE id = 10"), "x.zarr/.zarray");
  EXPECT_EQ(db.One("SELECT path, kind, slide, sample, species, labellings, tags, file_tags "
                   "FROM file_info WHERE file_id = 3"),
            "Pos0/a.tif|raw|S-001|P12|HeLa|tubulin:A647;actin:A488|good|raw-data");
  EXPECT_EQ(db.One("SELECT image, user, slide FROM image_info"), "img0|bob|S-001");
}

TEST_F(CatalogFileTest, MigratedSchemaEqualsFreshSchema) {
  MakeV1(path_);
  Must(Catalog::OpenSqlite(path_)).reset();
  const std::string fresh = dir_ + "/fresh.db";
  Must(Catalog::OpenSqlite(fresh)).reset();
  auto migrated = SchemaOf(path_), created = SchemaOf(fresh);
  EXPECT_EQ(migrated, created);
  EXPECT_GT(created.size(), 20u);
}

// A version 2 catalog (v1 + the 1 -> 2 step, exactly what samplefs 2 wrote)
// gains labelling_info, file_info.mount_path and the lower(name) indexes,
// keeps its data, and ends with the fresh schema.
TEST_F(CatalogFileTest, MigratesVersion2WithItsData) {
  ASSERT_NO_FATAL_FAILURE(MakeVersion(2));
  {
    RawDb db(path_);
    ASSERT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE name = 'labelling_info'"), "0");
  }
  auto c = OpenMigrated();
  Slide s = Must(c->SlideByReference("S-001"));
  EXPECT_EQ(Must(c->LabellingsOfSlide(s.id)).size(), 2u);
  // Names ignore case in queries (the indexes serve that).
  EXPECT_EQ(Must(c->ListSlides(Must(Query::Parse("species=hela,dye=a647")), 0, 10)).size(), 1u);
  c.reset();
  {
    RawDb db(path_);
    EXPECT_EQ(db.One("SELECT slide, sample, species, structure, dye FROM labelling_info ORDER BY labelling_id LIMIT 1"),
              "S-001|P12|HeLa|tubulin|A647");
    EXPECT_EQ(db.One("SELECT count(*) FROM labelling_info"), "2");
    // file_info keeps its columns in order and adds mount_path at the end.
    EXPECT_EQ(db.One("SELECT path, mount_path FROM file_info WHERE file_id = 3"),
              "Pos0/a.tif|slides/S-001/images/img0/files/Pos0/a.tif");
    EXPECT_EQ(db.One("SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info('file_info') "
                     "WHERE cid < 8 OR name = 'mount_path' ORDER BY cid)"),
              "file_id,path,size,hash,mode,mtime_ns,kind,file_tags,mount_path");
    EXPECT_EQ(db.One("SELECT name FROM pragma_table_info('file_info') ORDER BY cid DESC LIMIT 1"), "mount_path");
    EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%lower%'"), "5");
  }
  ExpectFreshSchema();
}

// A version 3 catalog gains entry.ctime_ns (its mtime) and
// entry.subfolders (counted from the tree), keeps its data, and ends with
// the fresh schema (issue 18).
TEST_F(CatalogFileTest, MigratesVersion3WithItsData) {
  CheckMigration(3, "sub", "mtime_ns", "77", [](const Migrated& m) {
    EXPECT_EQ(m.root.subfolders, 2);  // Pos0, x.zarr
    EXPECT_EQ(m.pos0.subfolders, 1);
    EXPECT_EQ(m.folder.subfolders, 0);
    EXPECT_EQ(m.folder.ctime_ns, 77);
    EXPECT_EQ(m.a.ctime_ns, 1700000000000000001);
    EXPECT_EQ(m.a.subfolders, 0);
  });
}

// A version 6 catalog gains entry.atime_ns (its mtime, including a time
// before 1970) and entry.uid/gid (not recorded: NULL, shown as the
// mounting user), keeps its data, and ends with the fresh schema (issue 18,
// points 1 and 8).
TEST_F(CatalogFileTest, MigratesVersion6WithItsData) {
  CheckMigration(6, "old", "mtime_ns, ctime_ns", "-123456789, 5", [](const Migrated& m) {
    EXPECT_EQ(m.folder.atime_ns, -123456789);
    EXPECT_EQ(m.folder.mtime_ns, -123456789);
    EXPECT_EQ(m.folder.ctime_ns, 5);
    EXPECT_EQ(m.folder.uid, -1);
    EXPECT_EQ(m.folder.gid, -1);
    EXPECT_EQ(m.a.atime_ns, 1700000000000000001);
    EXPECT_EQ(m.a.uid, -1);
  });
}

TEST_F(CatalogFileTest, NewerCatalogIsRefused) {
  Must(Catalog::OpenSqlite(path_)).reset();
  {
    RawDb db(path_);
    db.MustExec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  }
  auto before = SchemaOf(path_);
  auto r = Catalog::OpenSqlite(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTooNew);
  EXPECT_THAT(r.status().message(), HasSubstr("99"));
  EXPECT_THAT(r.status().message(), HasSubstr("upgrade samplefs"));
  EXPECT_EQ(r.status().to_errno(), EPROTO);
  // Untouched.
  RawDb db(path_);
  EXPECT_EQ(db.One("SELECT value FROM meta WHERE key = 'schema_version'"), "99");
  EXPECT_EQ(SchemaOf(path_), before);
}

TEST_F(CatalogFileTest, FailedMigrationLeavesVersion1) {
  // A v1 catalog where someone already made a table named `annotation`:
  // the migration's CREATE TABLE fails half-way through the ladder.
  MakeV1(path_, "CREATE TABLE annotation (note TEXT); INSERT INTO annotation VALUES ('mine');");
  auto before = SchemaOf(path_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto r = Catalog::OpenSqlite(path_);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("migration from schema version 1"));
    EXPECT_THAT(r.status().message(), HasSubstr("annotation"));
  }
  RawDb db(path_);
  EXPECT_EQ(db.One("SELECT value FROM meta WHERE key = 'schema_version'"), "1");
  EXPECT_EQ(db.One("SELECT count(*) FROM pragma_table_info('entry') WHERE name = 'kind'"), "0");
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type IN ('view', 'trigger')"), "0");
  EXPECT_EQ(db.One("SELECT note FROM annotation"), "mine");
  EXPECT_EQ(SchemaOf(path_), before);
  EXPECT_EQ(db.One("SELECT count(*) FROM entry"), "14");
}

TEST_F(CatalogFileTest, CatalogWithoutVersionIsRefused) {
  {
    RawDb db(path_);
    db.MustExec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }
  auto r = Catalog::OpenSqlite(path_);
  EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("schema_version"));
}

TEST_F(CatalogFileTest, OtherDatabasesAndGarbageAreRefused) {
  {
    RawDb db(path_);
    db.MustExec("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)");
  }
  auto r = Catalog::OpenSqlite(path_);
  EXPECT_FALSE(r.ok()) << "an unrelated database was taken over";
  EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().ToString();
  {
    RawDb db(path_);
    EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE name = 'species'"), "0");
  }

  const std::string junk = dir_ + "/junk.db";
  std::ofstream(junk) << std::string(8192, 'j');
  r = Catalog::OpenSqlite(junk);
  EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().ToString();
}

TEST_F(CatalogFileTest, MissingFileWithoutCreate) {
  DatabaseOptions o;
  o.create = false;
  auto r = Catalog::OpenSqlite(dir_ + "/nope.db", o);
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nope.db"));
  o.create = true;
  o.read_only = true;
  r = Catalog::OpenSqlite(dir_ + "/nope.db", o);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nope.db"));
}

// ---------------------------------------------------------------------------
// What other programs see.

TEST_F(CatalogFileTest, WalModeForeignKeysAndPrivateFiles) {
  mode_t old_umask = ::umask(0);  // the mode must not depend on the umask
  auto c = Must(Catalog::OpenSqlite(path_));
  ::umask(old_umask);
  Species sp;
  sp.name = "HeLa";
  ASSERT_TRUE(c->CreateSpecies(sp).ok());

  auto pragma = [&](const std::string& name) {
    auto st = Must(c->db().Prepare("PRAGMA " + name));
    StatementScope scope(*st);
    EXPECT_TRUE(Must(scope->Step()));
    return scope->Text(0);
  };
  EXPECT_EQ(pragma("journal_mode"), "wal");
  EXPECT_EQ(pragma("foreign_keys"), "1");

  for (const std::string& f : {path_, path_ + "-wal", path_ + "-shm"}) {
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  // WAL mode is a property of the file: a plain sqlite3 connection sees it.
  RawDb db(path_);
  EXPECT_EQ(db.One("PRAGMA journal_mode"), "wal");
}

TEST_F(CatalogFileTest, ReadersReadWhileATransactionIsOpen) {
  auto c = Must(Catalog::OpenSqlite(path_));
  Species sp;
  sp.name = "Committed";
  ASSERT_TRUE(c->CreateSpecies(sp).ok());
  RawDb reader(path_, SQLITE_OPEN_READONLY);
  {
    Transaction txn(*c);
    ASSERT_TRUE(txn.status().ok());
    sp.name = "Pending";
    ASSERT_TRUE(c->CreateSpecies(sp).ok());
    // The reader neither waits nor sees uncommitted work.
    EXPECT_EQ(reader.Rows("SELECT name FROM species ORDER BY id"), std::vector<std::string>{"Committed"});
    EXPECT_EQ(reader.rc(), SQLITE_DONE) << reader.error();
    EXPECT_EQ(reader.One("SELECT count(*) FROM file_info"), "0");
    ASSERT_TRUE(txn.Commit().ok());
  }
  EXPECT_EQ(reader.Rows("SELECT name FROM species ORDER BY id"),
            (std::vector<std::string>{"Committed", "Pending"}));
}

TEST_F(CatalogFileTest, ExternalChangeCounterSeesOtherWriters) {
  auto c = Must(Catalog::OpenSqlite(path_));
  int64_t before = Must(c->ExternalChangeCounter());
  Species sp;
  sp.name = "Own";
  ASSERT_TRUE(c->CreateSpecies(sp).ok());
  EXPECT_EQ(Must(c->ExternalChangeCounter()), before) << "own commits do not count";
  {
    RawDb other(path_);
    other.MustExec("INSERT INTO tag(name) VALUES ('from outside')");
  }
  EXPECT_NE(Must(c->ExternalChangeCounter()), before);
  EXPECT_TRUE(c->TagByName("from outside").ok());
}

TEST_F(CatalogFileTest, SecondWriterGetsBusy) {
  DatabaseOptions quick;
  quick.busy_timeout_ms = 50;
  auto a = Must(Catalog::OpenSqlite(path_, quick));
  auto b = Must(Catalog::OpenSqlite(path_, quick));
  Species sp;
  {
    Transaction txn(*a);
    sp.name = "A";
    ASSERT_TRUE(a->CreateSpecies(sp).ok());
    sp.name = "B";
    auto r = b->CreateSpecies(sp);
    EXPECT_EQ(r.status().code(), Code::kBusy) << r.status().ToString();
    EXPECT_EQ(r.status().to_errno(), EBUSY);
    Transaction other(*b);
    EXPECT_EQ(other.status().code(), Code::kBusy);
    EXPECT_EQ(other.Commit().code(), Code::kBusy);
    // b can still read the committed state.
    EXPECT_EQ(b->SpeciesByName("A").status().code(), Code::kNotFound);
    ASSERT_TRUE(txn.Commit().ok());
  }
  EXPECT_TRUE(b->SpeciesByName("A").ok());
  sp.name = "B";
  EXPECT_TRUE(b->CreateSpecies(sp).ok());
}

TEST_F(CatalogFileTest, ATransactionMayWaitLessThanTheBusyTimeout) {
  DatabaseOptions slow;
  slow.busy_timeout_ms = 3000;
  auto a = Must(Catalog::OpenSqlite(path_, slow));
  auto b = Must(Catalog::OpenSqlite(path_, slow));
  Transaction held(*a);
  ASSERT_TRUE(held.status().ok());
  auto t0 = std::chrono::steady_clock::now();
  {
    Transaction quick(*b, 100);  // a background commit: retried later
    EXPECT_EQ(quick.status().code(), Code::kBusy);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(80));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
  // The connection's own timeout is back for the next transaction.
  t0 = std::chrono::steady_clock::now();
  {
    Transaction patient(*b);
    EXPECT_EQ(patient.status().code(), Code::kBusy);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  ASSERT_TRUE(held.Commit().ok());
  Transaction after(*b, 0);
  EXPECT_TRUE(after.status().ok());
}

TEST_F(CatalogFileTest, TwoProcessesWriteTheSameCatalog) {
  // Two connections (a mount and samplectl) writing at once: BEGIN
  // IMMEDIATE plus the busy timeout serialize them; nothing is lost and
  // nobody sees kBusy under normal contention.
  auto a = Must(Catalog::OpenSqlite(path_));
  auto b = Must(Catalog::OpenSqlite(path_));
  std::vector<Status> failures[2];
  auto work = [&](Catalog* c, int who) {
    for (int i = 0; i < 150; ++i) {
      Species sp;
      sp.name = NameN("w", who) + NameN("-", i);
      auto r = c->CreateSpecies(sp);
      if (!r.ok()) failures[who].push_back(r.status());
      Transaction txn(*c);
      if (!txn.status().ok()) {
        failures[who].push_back(txn.status());
        continue;
      }
      auto t = c->CreateTag(NameN("t", who) + NameN("-", i));
      if (!t.ok()) failures[who].push_back(t.status());
      Status s = txn.Commit();
      if (!s.ok()) failures[who].push_back(s);
    }
  };
  std::thread ta(work, a.get(), 0), tb(work, b.get(), 1);
  ta.join();
  tb.join();
  for (auto& f : failures)
    for (auto& s : f) ADD_FAILURE() << s.ToString();
  EXPECT_EQ(Must(a->Stats()).species, 300);
  EXPECT_EQ(Must(b->Stats()).tags, 300);
}

TEST_F(CatalogFileTest, IdsAreNeverReusedAcrossReopens) {
  int64_t deleted = 0;
  {
    auto c = Must(Catalog::OpenSqlite(path_));
    Species sp;
    sp.name = "Newest";
    deleted = Must(c->CreateSpecies(sp)).id;
    ASSERT_TRUE(c->DeleteSpecies(deleted).ok());
  }
  auto c = Must(Catalog::OpenSqlite(path_));
  Species sp;
  sp.name = "Next";
  EXPECT_GT(Must(c->CreateSpecies(sp)).id, deleted);
}

TEST_F(CatalogFileTest, ReadOnlyCatalog) {
  {
    auto c = Must(Catalog::OpenSqlite(path_));
    Species sp;
    sp.name = "HeLa";
    ASSERT_TRUE(c->CreateSpecies(sp).ok());
  }
  DatabaseOptions ro;
  ro.read_only = true;
  auto c = Must(Catalog::OpenSqlite(path_, ro));
  EXPECT_TRUE(c->SpeciesByName("HeLa").ok());
  Species sp;
  sp.name = "Rat";
  auto r = c->CreateSpecies(sp);
  EXPECT_EQ(r.status().code(), Code::kReadOnly) << r.status().ToString();
  EXPECT_EQ(r.status().to_errno(), EROFS);
  EXPECT_EQ(c->DeleteSpecies(Must(c->SpeciesByName("HeLa")).id).code(), Code::kReadOnly);
}

TEST_F(CatalogFileTest, ReadOnlyOpenOfAnOldCatalogDoesNotMigrate) {
  MakeV1(path_);
  DatabaseOptions ro;
  ro.read_only = true;
  auto r = Catalog::OpenSqlite(path_, ro);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kReadOnly) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("version 1"));
  RawDb db(path_);
  EXPECT_EQ(db.One("SELECT value FROM meta WHERE key = 'schema_version'"), "1");
}

TEST_F(CatalogFileTest, ConcurrentFirstOpensCreateTheSchemaOnce) {
  for (int round = 0; round < 10; ++round) {
    const std::string path = dir_ + NameN("/race", round) + ".db";
    std::vector<Status> results(3);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < results.size(); ++t) {
      threads.emplace_back([&, t] {
        auto c = Catalog::OpenSqlite(path);
        results[t] = c.status();
        if (c.ok() && (*c)->schema_version() != kSchemaVersion) results[t] = Status(Code::kCorrupt, "bad version");
      });
    }
    for (auto& th : threads) th.join();
    for (const auto& s : results) EXPECT_TRUE(s.ok()) << "round " << round << ": " << s.ToString();
  }
}

TEST(SchemaSqlTest, LadderIsComplete) {
  // Every version below the current one has a step, and nothing beyond.
  for (int v = 1; v < kSchemaVersion; ++v) EXPECT_FALSE(SqliteMigrationSql(v).empty()) << v;
  EXPECT_TRUE(SqliteMigrationSql(kSchemaVersion).empty());
  EXPECT_TRUE(SqliteMigrationSql(0).empty());
  EXPECT_THAT(SqliteSchemaV1Sql(), HasSubstr("'schema_version', '1'"));
  EXPECT_THAT(SqliteSchemaSql(), HasSubstr("'schema_version', '7'"));
}

}  // namespace
}  // namespace samplefs
