// Conformance tests of the Catalog (SPEC section 2, catalog/catalog.h).
//
// Every test runs against each engine configuration (an in-memory SQLite
// catalog and a file-backed one in WAL mode), like JuiceFS's testMeta: a
// future PostgreSQL engine joins with an Engine value and its opening in
// SetUp. Checks that look at the stored rows use plain SQL through
// Catalog::db(); the few that need SQLite itself (pragma_table_info, temp
// triggers for fault injection) would need an engine's equivalent.
#include "catalog/catalog.h"
#include "catalog/mount_session.h"
#include "catalog/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "catalog/hash.h"
#include "catalog/names.h"
#include "catalog_testing.h"

namespace samplefs {

// gtest prints a Code by name. Identical (inline) in every test file.
inline void PrintTo(Code code, std::ostream* os) { *os << CodeName(code); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// prefix + decimal n. Spelled with += because GCC 12 at -O2 reports a false
// -Wrestrict on `"literal" + std::to_string(n)` (GCC bug 105329), which
// -Werror builds turn into an error.
std::string NameN(std::string prefix, long long n) {
  prefix += std::to_string(n);
  return prefix;
}


const Status& StatusOf(const Status& s) { return s; }
template <class T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

template <class T>
T MustOk(Result<T> r, const char* expr, const char* file, int line) {
  if (!r.ok()) {
    ADD_FAILURE_AT(file, line) << expr << " failed: " << r.status().ToString();
    throw std::runtime_error(std::string(expr) + ": " + r.status().ToString());
  }
  return std::move(r).value();
}
// The value of a Result, failing the test (and leaving it) on an error.
#define MUST(expr) MustOk((expr), #expr, __FILE__, __LINE__)

#define EXPECT_OK(expr)                                                     \
  do {                                                                      \
    const auto& _res = (expr);                                              \
    const auto& _st = StatusOf(_res);                                       \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();               \
  } while (0)
#define ASSERT_OK(expr)                                                     \
  do {                                                                      \
    const auto& _res = (expr);                                              \
    const auto& _st = StatusOf(_res);                                       \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();               \
  } while (0)
#define EXPECT_CODE(expr, expected_code)                                    \
  do {                                                                      \
    const auto& _res = (expr);                                              \
    const auto& _st = StatusOf(_res);                                       \
    EXPECT_EQ(_st.code(), expected_code) << #expr << ": " << _st.ToString(); \
  } while (0)
// `expr` refused with `expected_code`, its message saying `what`.
#define EXPECT_REFUSED(expr, expected_code, what)                              \
  do {                                                                         \
    const auto& _refused = StatusOf(expr);                                     \
    EXPECT_EQ(_refused.code(), expected_code) << #expr << ": " << _refused.ToString(); \
    EXPECT_THAT(_refused.message(), HasSubstr(what)) << #expr;                 \
  } while (0)

// A distinct valid content hash per n (32 lowercase hex digits).
std::string HashN(unsigned n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%032x", n);
  return buf;
}


struct Engine {
  const char* name;
  bool file_backed;
  bool postgres = false;
};

// The PostgreSQL cluster of tools/pg-test-cluster.sh (tools/test.sh starts
// one), or empty: then the PostgreSQL instances skip.
std::string PgTestUrl() {
  const char* u = std::getenv("SAMPLEFS_TEST_PG_URL");
  return u ? u : "";
}

// A URL whose connections work in schema `schema`: each test gets a fresh
// schema of the one test database, much cheaper than a database each.
std::string WithSchema(const std::string& url, const std::string& schema) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
}

class CatalogTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    std::string path = ":memory:";
    if (GetParam().postgres) {
      std::string url = PgTestUrl();
      if (url.empty()) GTEST_SKIP() << "SAMPLEFS_TEST_PG_URL is not set (tools/pg-test-cluster.sh)";
      static int counter = 0;
      schema_ = "catalog_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
      admin_ = MUST(OpenPostgresDatabase(url, {}));
      ASSERT_OK(admin_->Exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; CREATE SCHEMA " + schema_));
      path = WithSchema(url, schema_);
      url_ = path;
    } else if (GetParam().file_backed) {
      dir_ = testing_util::MakeTempDir("samplefs_catalog_test");
      ASSERT_FALSE(dir_.empty()) << std::strerror(errno);
      path = dir_ + "/catalog.db";
    }
    auto opened = Catalog::OpenUrl(path);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    c_ = std::move(opened).value();
  }
  void TearDown() override {
    c_.reset();
    if (admin_) (void)admin_->Exec("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    admin_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // One integer from an SQL statement, straight from the database, to
  // check what the catalog really stored.
  int64_t Scalar(const std::string& sql) {
    auto st = c_->db().Prepare(sql);
    if (!st.ok()) throw std::runtime_error(st.status().ToString());
    StatementScope scope(**st);
    auto row = scope->Step();
    if (!row.ok() || !*row) throw std::runtime_error("no row for " + sql);
    return scope->Int(0);
  }

  // The first row of an SQL query, its first `ncols` columns joined by '|'
  // (NULL for a null), straight from the database.
  std::string Row(const std::string& sql, int ncols) {
    auto st = c_->db().Prepare(sql);
    if (!st.ok()) throw std::runtime_error(st.status().ToString());
    StatementScope scope(**st);
    auto row = scope->Step();
    if (!row.ok() || !*row) throw std::runtime_error("no row for " + sql);
    std::string out;
    for (int i = 0; i < ncols; ++i) {
      if (i) out += '|';
      out += scope->IsNull(i) ? std::string("NULL") : scope->Text(i);
    }
    return out;
  }

  // `created` (a record made with a key), then the record `lookup` finds by
  // that key: the key as stored.
  template <class R, class Lookup>
  static Result<std::string> ReadBack(const Result<R>& created, Lookup lookup, std::string R::*key) {
    SFS_RETURN_IF_ERROR(created.status());
    SFS_ASSIGN_OR_RETURN(R back, lookup());
    return back.*key;
  }

  // Records with their key and parent only, not created yet: what a test
  // of the name rules creates and reads back; the New* helpers below fill
  // in more and create them.
  static Species SpeciesRecord(const std::string& name) { return {.name = name}; }
  static Sample SampleRecord(const std::string& name, int64_t species_id) {
    return {.name = name, .species_id = species_id};
  }
  static Dye DyeRecord(const std::string& name) { return {.short_name = name}; }
  static Slide SlideRecord(const std::string& reference, int64_t sample_id) {
    return {.reference = reference, .sample_id = sample_id};
  }
  static Image ImageRecord(const std::string& name, int64_t slide_id) { return {.slide_id = slide_id, .name = name}; }
  static Labelling LabellingRecord(int64_t slide_id, const std::string& structure, int64_t dye_id) {
    return {.slide_id = slide_id, .structure = structure, .dye_id = dye_id};
  }
  static Entry EntryRecord(int64_t parent, const std::string& name, EntryType type = EntryType::kFile) {
    return {.parent_id = parent, .name = name, .type = type};
  }

  Species NewSpecies(const std::string& name) {
    Species s = SpeciesRecord(name);
    s.species = "Human";
    return MUST(c_->CreateSpecies(s));
  }
  Sample NewSample(const std::string& name, int64_t species_id) {
    return MUST(c_->CreateSample(SampleRecord(name, species_id)));
  }
  Dye NewDye(const std::string& name) {
    Dye d = DyeRecord(name);
    d.long_name = "Long " + name;
    return MUST(c_->CreateDye(d));
  }
  Slide NewSlide(const std::string& reference, int64_t sample_id) {
    return MUST(c_->CreateSlide(SlideRecord(reference, sample_id)));
  }
  Image NewImage(const std::string& name, int64_t slide_id) { return MUST(c_->CreateImage(ImageRecord(name, slide_id))); }
  Entry NewFile(int64_t parent, const std::string& name, unsigned hash_n = 1, uint64_t size = 100) {
    Entry e = EntryRecord(parent, name);
    e.size = size;
    e.hash = HashN(hash_n);
    e.mtime_ns = 1700000000123456789;
    return MUST(c_->CreateEntry(e));
  }
  Entry NewFolder(int64_t parent, const std::string& name) {
    Entry e = EntryRecord(parent, name, EntryType::kFolder);
    e.mode = 0755;
    return MUST(c_->CreateEntry(e));
  }
  Entry NewSymlink(int64_t parent, const std::string& name, const std::string& target) {
    Entry e = EntryRecord(parent, name, EntryType::kSymlink);
    e.target = target;
    e.mode = 0777;
    return MUST(c_->CreateEntry(e));
  }

  // species -> sample -> slide -> image, the chain most tests need.
  struct World {
    Species species;
    Sample sample;
    Dye dye;
    Slide slide;
    Image image;
    Entry root;
  };
  World NewWorld(const std::string& suffix = "") {
    World w;
    w.species = NewSpecies("HeLa" + suffix);
    w.sample = NewSample("P12" + suffix, w.species.id);
    w.dye = NewDye("A647" + suffix);
    w.slide = NewSlide("S-001" + suffix, w.sample.id);
    w.image = NewImage("img0" + suffix, w.slide.id);
    w.root = MUST(c_->FilesRoot(w.image.id));
    return w;
  }

  bool postgres() const { return GetParam().postgres; }

  // Reader connections (docs/DECISIONS.md "Catalog readers"): a catalog in
  // a file or on a server has them, an in-memory one cannot.
  bool can_have_readers() const { return GetParam().file_backed || postgres(); }
  // Up to `readers` reader connections, and a world with one file.
  struct ReaderWorld {
    World w;
    Entry f;
  };
  ReaderWorld WithReaders(int readers, const std::string& file, uint64_t size) {
    c_->EnableReaders(readers);
    ReaderWorld r{NewWorld(), {}};
    r.f = NewFile(r.w.root.id, file, 1, size);
    return r;
  }
  // Reopens the catalog as a new process would.
  void Reopen() {
    c_.reset();
    c_ = MUST(Catalog::OpenUrl(postgres() ? url_ : dir_ + "/catalog.db"));
  }
  // The columns of a table or view, comma-separated.
  std::string Columns(const std::string& relation) {
    std::string out;
    for (const auto& c : MUST(c_->db().ColumnsOf(relation))) out += (out.empty() ? "" : ",") + c;
    return out;
  }

  std::unique_ptr<Catalog> c_;
  std::string dir_;
  std::string schema_, url_;
  std::unique_ptr<Database> admin_;
};

void PrintTo(const Engine& e, std::ostream* os) { *os << e.name; }

INSTANTIATE_TEST_SUITE_P(Engines, CatalogTest,
                         ::testing::Values(Engine{"memory", false}, Engine{"file", true},
                                           Engine{"postgresql", false, true}),
                         [](const ::testing::TestParamInfo<Engine>& p) { return std::string(p.param.name); });

bool IsIso8601Utc(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SSZ
  if (s.size() != 20) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    switch (i) {
      case 4: case 7: if (c != '-') return false; break;
      case 10: if (c != 'T') return false; break;
      case 13: case 16: if (c != ':') return false; break;
      case 19: if (c != 'Z') return false; break;
      default: if (c < '0' || c > '9') return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Species.

TEST_P(CatalogTest, SpeciesCreateReadUpdateDelete) {
  Species in = SpeciesRecord("Rat-Wistar");
  in.species = "Rat";
  in.strain = "Wistar";
  in.notes = "from the animal facility";
  Species s = MUST(c_->CreateSpecies(in));
  EXPECT_GT(s.id, 0);
  EXPECT_EQ(s.name, "Rat-Wistar");
  EXPECT_EQ(s.species, "Rat");
  EXPECT_EQ(s.strain, "Wistar");
  EXPECT_EQ(s.notes, "from the animal facility");

  Species by_name = MUST(c_->SpeciesByName("Rat-Wistar"));
  EXPECT_EQ(by_name.id, s.id);
  EXPECT_EQ(by_name.strain, "Wistar");
  Species by_id = MUST(c_->SpeciesById(s.id));
  EXPECT_EQ(by_id.name, "Rat-Wistar");

  s.name = "Rat-SD";
  s.strain = "Sprague-Dawley";
  ASSERT_OK(c_->UpdateSpecies(s));
  EXPECT_CODE(c_->SpeciesByName("Rat-Wistar"), Code::kNotFound);
  EXPECT_EQ(MUST(c_->SpeciesByName("Rat-SD")).strain, "Sprague-Dawley");

  ASSERT_OK(c_->DeleteSpecies(s.id));
  EXPECT_CODE(c_->SpeciesById(s.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteSpecies(s.id), Code::kNotFound);
}

TEST_P(CatalogTest, SpeciesErrorsNameTheRecord) {
  Species a = NewSpecies("HeLa");
  Species b = NewSpecies("Cos7");

  Species dup = SpeciesRecord("HeLa");
  auto r = c_->CreateSpecies(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "'HeLa'");
  EXPECT_EQ(r.status().to_errno(), EEXIST);

  b.name = "HeLa";  // rename onto a taken name
  Status s = c_->UpdateSpecies(b);
  EXPECT_REFUSED(s, Code::kAlreadyExists, "'HeLa'");
  EXPECT_EQ(MUST(c_->SpeciesById(b.id)).name, "Cos7");

  Species ghost;
  ghost.id = 999;
  ghost.name = "Ghost";
  s = c_->UpdateSpecies(ghost);
  EXPECT_REFUSED(s, Code::kNotFound, "999");

  auto missing = c_->SpeciesByName("Nope");
  EXPECT_REFUSED(missing, Code::kNotFound, "'Nope'");

  // A species with samples cannot be deleted, and nothing is deleted.
  Sample sa = NewSample("P1", a.id);
  NewSample("P2", a.id);
  s = c_->DeleteSpecies(a.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "'HeLa'");
  EXPECT_THAT(s.message(), HasSubstr("2 sample"));
  EXPECT_EQ(s.to_errno(), ENOTEMPTY);
  EXPECT_OK(c_->SpeciesById(a.id));
  EXPECT_OK(c_->SampleById(sa.id));
}

// ---------------------------------------------------------------------------
// Samples.

TEST_P(CatalogTest, SampleCreateReadUpdateDelete) {
  Species hela = NewSpecies("HeLa");
  Species rat = NewSpecies("Rat");
  Sample in = SampleRecord("P12", hela.id);
  in.patient_id = "patient 7";
  in.sample_type = "Cell Culture";
  in.notes = "passage 12";
  Sample s = MUST(c_->CreateSample(in));
  EXPECT_GT(s.id, 0);
  EXPECT_EQ(s.species_id, hela.id);
  EXPECT_EQ(s.patient_id, "patient 7");
  EXPECT_EQ(s.sample_type, "Cell Culture");
  EXPECT_EQ(s.notes, "passage 12");
  EXPECT_EQ(MUST(c_->SampleByName("P12")).id, s.id);
  EXPECT_EQ(MUST(c_->SampleById(s.id)).name, "P12");

  s.name = "R1";
  s.species_id = rat.id;
  s.sample_type = "Tissue Section";
  ASSERT_OK(c_->UpdateSample(s));
  Sample back = MUST(c_->SampleById(s.id));
  EXPECT_EQ(back.name, "R1");
  EXPECT_EQ(back.species_id, rat.id);
  EXPECT_EQ(back.sample_type, "Tissue Section");

  NewSample("H1", hela.id);
  NewSample("H2", hela.id);
  auto of_hela = MUST(c_->ListSamples(hela.id, 0, 100));
  ASSERT_EQ(of_hela.size(), 2u);
  EXPECT_EQ(of_hela[0].name, "H1");
  EXPECT_EQ(of_hela[1].name, "H2");
  EXPECT_EQ(MUST(c_->ListSamples(rat.id, 0, 100)).size(), 1u);
  EXPECT_EQ(MUST(c_->ListSamples(0, 0, 100)).size(), 3u);

  ASSERT_OK(c_->DeleteSample(s.id));
  EXPECT_CODE(c_->SampleById(s.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteSample(s.id), Code::kNotFound);
}

TEST_P(CatalogTest, SampleUniqueAndForeignKeyViolationsAreDistinct) {
  Species hela = NewSpecies("HeLa");
  Sample p = NewSample("P12", hela.id);

  Sample dup = SampleRecord("P12", hela.id);
  auto r = c_->CreateSample(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "sample 'P12' already exists");

  Sample orphan = SampleRecord("P13", 4242);
  r = c_->CreateSample(orphan);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "species 4242");
  EXPECT_EQ(r.status().to_errno(), ENOENT);
  EXPECT_CODE(c_->SampleByName("P13"), Code::kNotFound);

  // Both at once: the name is taken and the species is missing. Either
  // answer is right, but it must be one of the two, not a generic error.
  dup.species_id = 4242;
  r = c_->CreateSample(dup);
  EXPECT_TRUE(r.status().code() == Code::kAlreadyExists ||
              r.status().code() == Code::kReferenceMissing)
      << r.status().ToString();

  p.species_id = 4242;
  Status s = c_->UpdateSample(p);
  EXPECT_REFUSED(s, Code::kReferenceMissing, "species 4242");
  EXPECT_EQ(MUST(c_->SampleById(p.id)).species_id, hela.id);

  Sample other = NewSample("P99", hela.id);
  other.name = "P12";
  s = c_->UpdateSample(other);
  EXPECT_REFUSED(s, Code::kAlreadyExists, "'P12'");

  // A sample with slides cannot be deleted.
  NewSlide("S1", p.id);
  s = c_->DeleteSample(p.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "sample 'P12' still has 1 slide");
  EXPECT_OK(c_->SampleById(p.id));
  EXPECT_OK(c_->SlideByReference("S1"));
}

// ---------------------------------------------------------------------------
// Dyes.

TEST_P(CatalogTest, DyeCreateReadUpdateDelete) {
  Dye in = DyeRecord("A647");
  in.long_name = "Alexa Fluor 647";
  in.spectra_db_name = "Alexa Fluor 647";
  Dye d = MUST(c_->CreateDye(in));
  EXPECT_EQ(d.long_name, "Alexa Fluor 647");
  EXPECT_EQ(MUST(c_->DyeByName("A647")).id, d.id);
  EXPECT_EQ(MUST(c_->DyeById(d.id)).spectra_db_name, "Alexa Fluor 647");

  d.short_name = "AF647";
  d.long_name = "AlexaFluor647";
  ASSERT_OK(c_->UpdateDye(d));
  EXPECT_CODE(c_->DyeByName("A647"), Code::kNotFound);
  EXPECT_EQ(MUST(c_->DyeByName("AF647")).long_name, "AlexaFluor647");

  NewDye("Cy3");
  auto all = MUST(c_->ListDyes(0, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].short_name, "AF647");
  EXPECT_EQ(all[1].short_name, "Cy3");

  ASSERT_OK(c_->DeleteDye(d.id));
  EXPECT_CODE(c_->DyeById(d.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteDye(d.id), Code::kNotFound);
}

TEST_P(CatalogTest, DyeErrors) {
  Dye d = NewDye("A647");
  Dye dup = DyeRecord("A647");
  auto r = c_->CreateDye(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "dye 'A647' already exists");

  // Short names have no spaces (they are typed in query expressions).
  for (std::string bad : {"Alexa 647", "A\t647", "A647\n", "A\r647"}) {
    Dye spaced = DyeRecord(bad);
    EXPECT_CODE(c_->CreateDye(spaced), Code::kInvalidArgument);
    Dye renamed = d;
    renamed.short_name = bad;
    EXPECT_CODE(c_->UpdateDye(renamed), Code::kInvalidArgument);
  }

  // A dye used by a labelling cannot be deleted.
  World w = NewWorld("-w");
  Labelling l = LabellingRecord(w.slide.id, "tubulin", d.id);
  MUST(c_->AddLabelling(l));
  Status s = c_->DeleteDye(d.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "'A647'");
  EXPECT_OK(c_->DyeById(d.id));
  EXPECT_EQ(MUST(c_->LabellingsOfSlide(w.slide.id)).size(), 1u);
}

// ---------------------------------------------------------------------------
// Slides.

TEST_P(CatalogTest, SlideCreateReadUpdateDelete) {
  Species sp = NewSpecies("HeLa");
  Sample sa = NewSample("P12", sp.id);
  Sample sb = NewSample("P13", sp.id);

  Slide in = SlideRecord("S-2024-001", sa.id);
  in.creator = "alice";
  in.notes = "fixed in PFA";
  Slide s = MUST(c_->CreateSlide(in));
  EXPECT_EQ(s.reference, "S-2024-001");
  EXPECT_EQ(s.creator, "alice");
  EXPECT_TRUE(IsIso8601Utc(s.created)) << s.created;
  EXPECT_EQ(s.modified, s.created);
  EXPECT_EQ(MUST(c_->SlideByReference("S-2024-001")).id, s.id);
  EXPECT_EQ(MUST(c_->SlideById(s.id)).notes, "fixed in PFA");

  // An explicit creation time is kept.
  Slide old = SlideRecord("S-1999", sa.id);
  old.created = "1999-12-31T23:59:59Z";
  Slide o = MUST(c_->CreateSlide(old));
  EXPECT_EQ(o.created, "1999-12-31T23:59:59Z");
  EXPECT_EQ(o.modified, "1999-12-31T23:59:59Z");

  // Update: fields change, modified moves to now, created stays.
  o.reference = "S-1999-renamed";
  o.sample_id = sb.id;
  o.notes = "re-imaged";
  ASSERT_OK(c_->UpdateSlide(o));
  Slide back = MUST(c_->SlideById(o.id));
  EXPECT_EQ(back.reference, "S-1999-renamed");
  EXPECT_EQ(back.sample_id, sb.id);
  EXPECT_EQ(back.notes, "re-imaged");
  EXPECT_EQ(back.created, "1999-12-31T23:59:59Z");
  EXPECT_TRUE(IsIso8601Utc(back.modified));
  EXPECT_GT(back.modified, back.created);

  // An update that leaves `created` empty does not erase it.
  back.created.clear();
  back.notes = "again";
  ASSERT_OK(c_->UpdateSlide(back));
  EXPECT_EQ(MUST(c_->SlideById(o.id)).created, "1999-12-31T23:59:59Z");

  auto listed = MUST(c_->ListSlides(Query{}, 0, 10));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].id, s.id);
  EXPECT_EQ(listed[1].id, o.id);

  ASSERT_OK(c_->DeleteSlide(s.id));
  EXPECT_CODE(c_->SlideById(s.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteSlide(s.id), Code::kNotFound);
}

TEST_P(CatalogTest, SlideErrorsAndChildren) {
  World w = NewWorld();
  Slide dup = SlideRecord(w.slide.reference, w.sample.id);
  auto r = c_->CreateSlide(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "slide 'S-001' already exists");

  Slide orphan = SlideRecord("S-002", 777);
  r = c_->CreateSlide(orphan);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "sample 777");

  Slide moved = w.slide;
  moved.sample_id = 777;
  EXPECT_CODE(c_->UpdateSlide(moved), Code::kReferenceMissing);
  Slide ghost;
  ghost.id = 31337;
  ghost.reference = "ghost";
  ghost.sample_id = w.sample.id;
  EXPECT_CODE(c_->UpdateSlide(ghost), Code::kNotFound);

  // Images keep a slide alive; nothing is deleted.
  Status s = c_->DeleteSlide(w.slide.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "slide 'S-001' still has 1 image");
  EXPECT_OK(c_->SlideById(w.slide.id));
  EXPECT_OK(c_->ImageById(w.image.id));

  // Labellings, tags and annotations belong to the slide and go with it.
  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(l));
  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "good"));
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, w.slide.id, "stain", "fresh"));
  ASSERT_OK(c_->DeleteImage(w.image.id));
  ASSERT_OK(c_->DeleteSlide(w.slide.id));
  EXPECT_EQ(Scalar("SELECT count(*) FROM labelling"), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM tagging"), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM annotation"), 0);
  // The tag itself stays (it is a record of its own), now unused.
  Tag good = MUST(c_->TagByName("good"));
  EXPECT_OK(c_->DeleteTag(good.id));
}

TEST_P(CatalogTest, SlideTimestampsMustBeIso8601) {
  World w = NewWorld();
  Slide bad = SlideRecord("S-bad", w.sample.id);
  for (std::string t : {"yesterday", "2024-13-01T00:00:00Z", "2024/01/01", "2024-01-01 10:00:00"}) {
    bad.created = t;
    EXPECT_CODE(c_->CreateSlide(bad), Code::kInvalidArgument);
  }
  bad.created = "2024-01-01T10:00:00Z";
  bad.reference = "S-full";
  EXPECT_EQ(MUST(c_->CreateSlide(bad)).created, "2024-01-01T10:00:00Z");
  // A bare date is the start of that day, stored in the one canonical form.
  bad.created = "2024-01-02";
  bad.reference = "S-date";
  Slide dated = MUST(c_->CreateSlide(bad));
  EXPECT_EQ(dated.created, "2024-01-02T00:00:00Z");
  dated.created = "2024-02-30T00:00:00Z";
  EXPECT_CODE(c_->UpdateSlide(dated), Code::kInvalidArgument);
  dated.created = "2024-02-29T23:59:59Z";  // a leap day
  EXPECT_OK(c_->UpdateSlide(dated));
  Image im = ImageRecord("late", w.slide.id);
  im.acquired = "whenever";
  EXPECT_CODE(c_->CreateImage(im), Code::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Labellings.

TEST_P(CatalogTest, LabellingCreateReadDeleteReplace) {
  World w = NewWorld();
  Dye a488 = NewDye("A488");
  Labelling in;
  in.slide_id = w.slide.id;
  in.structure = "tubulin";
  in.isotype = "IgG1";
  in.antibody = "DM1A";
  in.dye_id = w.dye.id;
  Labelling l1 = MUST(c_->AddLabelling(in));
  EXPECT_GT(l1.id, 0);
  EXPECT_EQ(l1.structure, "tubulin");
  EXPECT_EQ(l1.isotype, "IgG1");
  EXPECT_EQ(l1.antibody, "DM1A");
  EXPECT_EQ(l1.dye_id, w.dye.id);
  in.structure = "actin";
  in.dye_id = a488.id;
  Labelling l2 = MUST(c_->AddLabelling(in));

  // Labellings are part of the slide: they move its `modified`.
  {
    Slide aged = MUST(c_->SlideById(w.slide.id));
    ASSERT_OK(c_->db().Exec("UPDATE slide SET modified = '2000-01-01T00:00:00Z'"));
    in.structure = "nucleus";
    Labelling l3 = MUST(c_->AddLabelling(in));
    EXPECT_GT(MUST(c_->SlideById(w.slide.id)).modified, "2000-01-01T00:00:00Z");
    ASSERT_OK(c_->db().Exec("UPDATE slide SET modified = '2000-01-01T00:00:00Z'"));
    ASSERT_OK(c_->DeleteLabelling(l3.id));
    EXPECT_GT(MUST(c_->SlideById(w.slide.id)).modified, "2000-01-01T00:00:00Z");
    EXPECT_EQ(MUST(c_->SlideById(w.slide.id)).created, aged.created);
  }
  auto of_slide = MUST(c_->LabellingsOfSlide(w.slide.id));
  ASSERT_EQ(of_slide.size(), 2u);
  EXPECT_EQ(of_slide[0].id, l1.id);
  EXPECT_EQ(of_slide[1].id, l2.id);
  EXPECT_THAT(MUST(c_->ListStructures()), ElementsAre("actin", "tubulin"));

  ASSERT_OK(c_->DeleteLabelling(l1.id));
  EXPECT_CODE(c_->DeleteLabelling(l1.id), Code::kNotFound);
  EXPECT_EQ(MUST(c_->LabellingsOfSlide(w.slide.id)).size(), 1u);

  Labelling r1, r2;
  r1.structure = "mitochondria";
  r1.dye_id = w.dye.id;
  r2.structure = "nucleus";
  r2.dye_id = a488.id;
  r2.slide_id = 12345;  // ignored: ReplaceLabellings sets the slide
  ASSERT_OK(c_->ReplaceLabellings(w.slide.id, {r1, r2}));
  auto replaced = MUST(c_->LabellingsOfSlide(w.slide.id));
  ASSERT_EQ(replaced.size(), 2u);
  EXPECT_EQ(replaced[0].structure, "mitochondria");
  EXPECT_EQ(replaced[1].structure, "nucleus");
  EXPECT_EQ(replaced[1].slide_id, w.slide.id);
  EXPECT_THAT(MUST(c_->ListStructures()), ElementsAre("mitochondria", "nucleus"));

  ASSERT_OK(c_->ReplaceLabellings(w.slide.id, {}));
  EXPECT_THAT(MUST(c_->LabellingsOfSlide(w.slide.id)), IsEmpty());
  EXPECT_CODE(c_->ReplaceLabellings(999, {r1}), Code::kNotFound);
}

TEST_P(CatalogTest, LabellingReferencesAreChecked) {
  World w = NewWorld();
  Labelling l = LabellingRecord(w.slide.id, "tubulin", 999);
  auto r = c_->AddLabelling(l);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "dye 999 does not exist");

  l.dye_id = w.dye.id;
  l.slide_id = 888;
  r = c_->AddLabelling(l);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "slide 888 does not exist");
  EXPECT_EQ(Scalar("SELECT count(*) FROM labelling"), 0);

  l.slide_id = w.slide.id;
  for (const std::string& bad : std::vector<std::string>{"", "a/b", std::string(256, 's')}) {
    l.structure = bad;
    EXPECT_FALSE(c_->AddLabelling(l).ok()) << "structure '" << bad << "'";
  }
}

TEST_P(CatalogTest, ReplaceLabellingsIsAllOrNothing) {
  World w = NewWorld();
  Dye a488 = NewDye("A488");
  Labelling keep = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(keep));
  keep.structure = "actin";
  keep.dye_id = a488.id;
  MUST(c_->AddLabelling(keep));
  const auto before = MUST(c_->LabellingsOfSlide(w.slide.id));
  const std::string modified_before = MUST(c_->SlideById(w.slide.id)).modified;

  Labelling good, bad;
  good.structure = "nucleus";
  good.dye_id = w.dye.id;
  bad.structure = "mito";
  bad.dye_id = 4040;  // no such dye
  Status s = c_->ReplaceLabellings(w.slide.id, {good, bad});
  EXPECT_REFUSED(s, Code::kReferenceMissing, "dye 4040");

  // An invalid structure name is refused up front.
  Labelling unnamed;
  unnamed.structure = "";
  unnamed.dye_id = w.dye.id;
  EXPECT_CODE(c_->ReplaceLabellings(w.slide.id, {good, unnamed}), Code::kInvalidArgument);

  const auto after = MUST(c_->LabellingsOfSlide(w.slide.id));
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].structure, before[i].structure);
    EXPECT_EQ(after[i].dye_id, before[i].dye_id);
  }
  EXPECT_EQ(MUST(c_->SlideById(w.slide.id)).modified, modified_before);
}

// ---------------------------------------------------------------------------
// Images.

TEST_P(CatalogTest, ImageCreateReadUpdateDelete) {
  World w = NewWorld();
  Slide other = NewSlide("S-002", w.sample.id);

  Image in = ImageRecord("cell 1 (488nm)", w.slide.id);
  in.user = "bob";
  in.acquired = "2024-05-06T07:08:09Z";
  in.comments = "drift at the end";
  Image i = MUST(c_->CreateImage(in));
  EXPECT_EQ(i.slide_id, w.slide.id);
  EXPECT_EQ(i.user, "bob");
  EXPECT_EQ(i.acquired, "2024-05-06T07:08:09Z");
  EXPECT_EQ(i.comments, "drift at the end");

  // Its files/ root exists at once, an empty folder.
  Entry root = MUST(c_->FilesRoot(i.id));
  EXPECT_EQ(root.image_id, i.id);
  EXPECT_EQ(root.parent_id, 0);
  EXPECT_EQ(root.type, EntryType::kFolder);
  EXPECT_EQ(MUST(c_->CountEntries(root.id)), 0);

  Image defaulted = NewImage("no time given", w.slide.id);
  EXPECT_TRUE(IsIso8601Utc(defaulted.acquired)) << defaulted.acquired;

  EXPECT_EQ(MUST(c_->ImageByName(w.slide.id, "cell 1 (488nm)")).id, i.id);
  EXPECT_CODE(c_->ImageByName(other.id, "cell 1 (488nm)"), Code::kNotFound);
  EXPECT_EQ(MUST(c_->ImageById(i.id)).name, "cell 1 (488nm)");

  // The same name is fine in another slide.
  Image twin = NewImage("cell 1 (488nm)", other.id);
  EXPECT_NE(twin.id, i.id);

  // Rename and move to another slide; an empty `acquired` keeps the old one.
  i.name = "cell 1";
  i.slide_id = other.id;
  i.acquired.clear();
  ASSERT_OK(c_->UpdateImage(i));
  Image back = MUST(c_->ImageById(i.id));
  EXPECT_EQ(back.name, "cell 1");
  EXPECT_EQ(back.slide_id, other.id);
  EXPECT_EQ(back.acquired, "2024-05-06T07:08:09Z");

  auto in_other = MUST(c_->ListImages(other.id, 0, 10));
  ASSERT_EQ(in_other.size(), 2u);
  EXPECT_EQ(in_other[0].id, i.id);
  EXPECT_EQ(in_other[1].id, twin.id);
  EXPECT_EQ(MUST(c_->ListImages(w.slide.id, 0, 10)).size(), 2u);

  ASSERT_OK(c_->DeleteImage(i.id));
  EXPECT_CODE(c_->ImageById(i.id), Code::kNotFound);
  EXPECT_CODE(c_->FilesRoot(i.id), Code::kNotFound);
  EXPECT_CODE(c_->EntryById(root.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteImage(i.id), Code::kNotFound);
}

TEST_P(CatalogTest, ImageErrorsLeaveNothingHalfWritten) {
  World w = NewWorld();
  const int64_t entries_before = Scalar("SELECT count(*) FROM entry");

  Image dup = ImageRecord(w.image.name, w.slide.id);
  auto r = c_->CreateImage(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "'img0'");

  Image orphan = ImageRecord("lost", 5150);
  r = c_->CreateImage(orphan);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "slide 5150");

  // Neither failure left an image or a root entry behind.
  EXPECT_EQ(Scalar("SELECT count(*) FROM image"), 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM entry"), entries_before);
  EXPECT_EQ(Scalar("SELECT count(*) FROM entry WHERE image_id NOT IN (SELECT id FROM image)"), 0);

  Image other = NewImage("img1", w.slide.id);
  other.name = w.image.name;
  Status s = c_->UpdateImage(other);
  EXPECT_CODE(s, Code::kAlreadyExists);
  other.name = "img1";
  other.slide_id = 5150;
  EXPECT_CODE(c_->UpdateImage(other), Code::kReferenceMissing);
  Image ghost;
  ghost.id = 9999;
  ghost.slide_id = w.slide.id;
  ghost.name = "ghost";
  EXPECT_CODE(c_->UpdateImage(ghost), Code::kNotFound);

  // Files keep an image alive.
  Entry f = NewFile(w.root.id, "a.tif");
  s = c_->DeleteImage(w.image.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "'img0'");
  EXPECT_OK(c_->ImageById(w.image.id));
  EXPECT_OK(c_->EntryById(f.id));
  EXPECT_OK(c_->FilesRoot(w.image.id));
}

// ---------------------------------------------------------------------------
// Entries: files, folders, symlinks.

TEST_P(CatalogTest, FileCreateReadUpdateDelete) {
  World w = NewWorld();
  Entry in = EntryRecord(w.root.id, "frame_0001.tif", EntryType::kFile);
  in.size = 123456789012;
  in.hash = HashN(0xabcdef);
  in.mode = 0640;
  in.mtime_ns = 1712345678901234567;
  in.kind = "raw";
  Entry f = MUST(c_->CreateEntry(in));
  EXPECT_GT(f.id, 0);
  EXPECT_EQ(f.image_id, w.image.id);
  EXPECT_EQ(f.parent_id, w.root.id);
  EXPECT_EQ(f.name, "frame_0001.tif");
  EXPECT_EQ(f.type, EntryType::kFile);
  EXPECT_EQ(f.size, 123456789012u);
  EXPECT_EQ(f.hash, HashN(0xabcdef));
  EXPECT_EQ(f.mode, 0640u);
  EXPECT_EQ(f.mtime_ns, 1712345678901234567);
  EXPECT_EQ(f.kind, "raw");
  EXPECT_TRUE(f.target.empty());

  Entry by_name = MUST(c_->EntryByName(w.root.id, "frame_0001.tif"));
  EXPECT_EQ(by_name.id, f.id);
  EXPECT_EQ(by_name.size, f.size);
  EXPECT_EQ(MUST(c_->EntryById(f.id)).hash, f.hash);

  f.size = 42;
  f.hash = HashN(7);
  f.mode = 0600;
  f.mtime_ns = 5;
  f.kind = "analysis";
  ASSERT_OK(c_->UpdateEntry(f));
  Entry back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.size, 42u);
  EXPECT_EQ(back.hash, HashN(7));
  EXPECT_EQ(back.mode, 0600u);
  EXPECT_EQ(back.mtime_ns, 5);
  EXPECT_EQ(back.kind, "analysis");
  EXPECT_EQ(back.name, "frame_0001.tif");  // UpdateEntry never renames

  // UpdateEntry needs only the id and the new values.
  Entry partial;
  partial.id = f.id;
  partial.type = EntryType::kFile;
  partial.hash = HashN(8);
  partial.size = 1;
  ASSERT_OK(c_->UpdateEntry(partial));
  EXPECT_EQ(MUST(c_->EntryById(f.id)).hash, HashN(8));

  ASSERT_OK(c_->DeleteEntry(f.id));
  EXPECT_CODE(c_->EntryById(f.id), Code::kNotFound);
  EXPECT_CODE(c_->EntryByName(w.root.id, "frame_0001.tif"), Code::kNotFound);
  EXPECT_CODE(c_->DeleteEntry(f.id), Code::kNotFound);
}

TEST_P(CatalogTest, FolderAndSymlinkCreateReadUpdateDelete) {
  World w = NewWorld();
  Entry dir = NewFolder(w.root.id, "Pos0");
  EXPECT_EQ(dir.type, EntryType::kFolder);
  EXPECT_TRUE(dir.hash.empty());
  EXPECT_EQ(dir.mode, 0755u);
  Entry sub = NewFolder(dir.id, "zarr.zarr");
  Entry inner = NewFile(sub.id, ".zarray");
  EXPECT_EQ(inner.image_id, w.image.id);

  Entry link = NewSymlink(dir.id, "latest", "zarr.zarr/.zarray");
  EXPECT_EQ(link.type, EntryType::kSymlink);
  EXPECT_EQ(link.target, "zarr.zarr/.zarray");
  EXPECT_TRUE(link.hash.empty());
  EXPECT_EQ(MUST(c_->EntryByName(dir.id, "latest")).target, "zarr.zarr/.zarray");

  link.target = "../elsewhere";
  link.mtime_ns = 99;
  ASSERT_OK(c_->UpdateEntry(link));
  EXPECT_EQ(MUST(c_->EntryById(link.id)).target, "../elsewhere");

  dir.mode = 0700;
  dir.mtime_ns = 77;
  ASSERT_OK(c_->UpdateEntry(dir));
  EXPECT_EQ(MUST(c_->EntryById(dir.id)).mode, 0700u);
  // The root folder's own mode and mtime can change (chmod on files/).
  Entry root = w.root;
  root.mtime_ns = 1234;
  ASSERT_OK(c_->UpdateEntry(root));
  EXPECT_EQ(MUST(c_->FilesRoot(w.image.id)).mtime_ns, 1234);

  auto listed = MUST(c_->ListEntries(dir.id, 0, 10));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].name, "zarr.zarr");
  EXPECT_EQ(listed[1].name, "latest");
  EXPECT_EQ(MUST(c_->CountEntries(dir.id)), 2);
  EXPECT_EQ(MUST(c_->CountEntries(w.root.id)), 1);

  // A folder with children cannot be deleted.
  Status s = c_->DeleteEntry(dir.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "'Pos0'");
  EXPECT_OK(c_->EntryById(inner.id));
  EXPECT_CODE(c_->DeleteEntry(sub.id), Code::kNotEmpty);
  // Nor can the root folder, ever.
  EXPECT_CODE(c_->DeleteEntry(w.root.id), Code::kPermission);

  ASSERT_OK(c_->DeleteEntry(link.id));
  ASSERT_OK(c_->DeleteEntry(inner.id));
  ASSERT_OK(c_->DeleteEntry(sub.id));
  ASSERT_OK(c_->DeleteEntry(dir.id));
  EXPECT_EQ(MUST(c_->CountEntries(w.root.id)), 0);
  EXPECT_OK(c_->DeleteImage(w.image.id));
}

TEST_P(CatalogTest, EntryErrors) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "a.tif");
  Entry dir = NewFolder(w.root.id, "dir");

  Entry dup = EntryRecord(w.root.id, "a.tif");
  dup.hash = HashN(2);
  auto r = c_->CreateEntry(dup);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "'a.tif'");
  dup.type = EntryType::kFolder;  // a folder may not take a file's name either
  EXPECT_CODE(c_->CreateEntry(dup), Code::kAlreadyExists);

  Entry under_file = EntryRecord(f.id, "x");
  under_file.hash = HashN(3);
  EXPECT_CODE(c_->CreateEntry(under_file), Code::kInvalidArgument);

  Entry orphan = EntryRecord(424242, "x");
  orphan.hash = HashN(3);
  r = c_->CreateEntry(orphan);
  EXPECT_REFUSED(r, Code::kReferenceMissing, "424242");

  Entry no_hash = EntryRecord(dir.id, "x");
  EXPECT_CODE(c_->CreateEntry(no_hash), Code::kInvalidArgument);
  for (std::string bad_hash : {HashN(1).substr(1), HashN(1) + "0", std::string(32, 'A'),
                               std::string(31, '0') + "/", std::string(32, 'g')}) {
    no_hash.hash = bad_hash;
    SCOPED_TRACE(bad_hash);
    EXPECT_CODE(c_->CreateEntry(no_hash), Code::kInvalidArgument);
  }

  Entry bad_kind = EntryRecord(dir.id, "y");
  bad_kind.hash = HashN(4);
  bad_kind.kind = "precious";
  EXPECT_CODE(c_->CreateEntry(bad_kind), Code::kInvalidArgument);

  Entry link = EntryRecord(dir.id, "link", EntryType::kSymlink);
  EXPECT_CODE(c_->CreateEntry(link), Code::kInvalidArgument);  // no target
  link.target = std::string(4096, 't');
  EXPECT_CODE(c_->CreateEntry(link), Code::kInvalidArgument);
  link.target = std::string("a\0b", 3);
  EXPECT_CODE(c_->CreateEntry(link), Code::kInvalidArgument);

  // UpdateEntry: missing entry, invalid values, a change of type.
  Entry ghost = f;
  ghost.id = 777777;
  EXPECT_CODE(c_->UpdateEntry(ghost), Code::kNotFound);
  Entry bad = f;
  bad.hash = "not a hash";
  EXPECT_CODE(c_->UpdateEntry(bad), Code::kInvalidArgument);
  bad = f;
  bad.kind = "precious";
  EXPECT_CODE(c_->UpdateEntry(bad), Code::kInvalidArgument);
  bad = f;
  bad.type = EntryType::kFolder;
  Status s = c_->UpdateEntry(bad);
  EXPECT_REFUSED(s, Code::kInvalidArgument, "file");
  Entry back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.type, EntryType::kFile);
  EXPECT_EQ(back.hash, f.hash);

  // Nothing of the above was stored.
  EXPECT_EQ(MUST(c_->CountEntries(dir.id)), 0);
  EXPECT_EQ(MUST(c_->CountEntries(w.root.id)), 2);
}

// ---------------------------------------------------------------------------
// Tags.

TEST_P(CatalogTest, TagCreateReadDelete) {
  Tag good = MUST(c_->CreateTag("good"));
  EXPECT_EQ(good.name, "good");
  EXPECT_EQ(MUST(c_->TagByName("good")).id, good.id);
  EXPECT_EQ(MUST(c_->TagById(good.id)).name, "good");
  auto r = c_->CreateTag("good");
  EXPECT_REFUSED(r, Code::kAlreadyExists, "tag 'good' already exists");
  // A comma separates tags in sidecars and views, so no tag contains one.
  EXPECT_CODE(c_->CreateTag("a,b"), Code::kInvalidArgument);
  EXPECT_CODE(c_->CreateTag(""), Code::kInvalidArgument);

  Tag bad = MUST(c_->CreateTag("needs review"));
  auto all = MUST(c_->ListTags(0, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "good");
  EXPECT_EQ(all[1].name, "needs review");

  ASSERT_OK(c_->DeleteTag(bad.id));
  EXPECT_CODE(c_->TagById(bad.id), Code::kNotFound);
  EXPECT_CODE(c_->DeleteTag(bad.id), Code::kNotFound);
  EXPECT_CODE(c_->TagByName("needs review"), Code::kNotFound);
}

TEST_P(CatalogTest, TaggingAnyRecord) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "a.tif");
  Entry g = NewFile(w.root.id, "b.tif");

  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "good"));  // creates the tag
  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "archived"));
  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "good"));  // twice is once
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("archived", "good"));
  ASSERT_OK(c_->AddTag(Entity::kImage, w.image.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kEntry, f.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kEntry, g.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kSpecies, w.species.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kSample, w.sample.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kDye, w.dye.id, "good"));
  // Same record id, different entity: no confusion.
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kImage, w.image.id)), ElementsAre("good"));

  Tag good = MUST(c_->TagByName("good"));
  EXPECT_THAT(MUST(c_->TaggedRecords(Entity::kEntry, good.id, 0, 10)), ElementsAre(f.id, g.id));
  EXPECT_THAT(MUST(c_->TaggedRecords(Entity::kSlide, good.id, 0, 10)), ElementsAre(w.slide.id));
  auto tagged_files = MUST(c_->ListTaggedEntries(good.id, 0, 10));
  ASSERT_EQ(tagged_files.size(), 2u);
  EXPECT_EQ(tagged_files[0].name, "a.tif");
  EXPECT_EQ(MUST(c_->ListTaggedEntries(good.id, f.id, 10)).size(), 1u);

  // A tag in use cannot be deleted.
  Status s = c_->DeleteTag(good.id);
  EXPECT_REFUSED(s, Code::kNotEmpty, "'good'");
  EXPECT_THAT(s.message(), HasSubstr("7 record"));

  ASSERT_OK(c_->RemoveTag(Entity::kSlide, w.slide.id, "good"));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("archived"));
  EXPECT_CODE(c_->RemoveTag(Entity::kSlide, w.slide.id, "good"), Code::kNotFound);
  EXPECT_CODE(c_->RemoveTag(Entity::kSlide, w.slide.id, "never-made"), Code::kNotFound);

  // Deleting a tagged record removes its taggings.
  ASSERT_OK(c_->DeleteEntry(f.id));
  EXPECT_THAT(MUST(c_->TaggedRecords(Entity::kEntry, good.id, 0, 10)), ElementsAre(g.id));
}

TEST_P(CatalogTest, SetTagsReplacesAllOrNothing) {
  World w = NewWorld();
  ASSERT_OK(c_->SetTags(Entity::kSlide, w.slide.id, {"b", "a", "c", "a"}));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("a", "b", "c"));
  ASSERT_OK(c_->SetTags(Entity::kSlide, w.slide.id, {"c", "d"}));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("c", "d"));

  // An invalid name anywhere in the list changes nothing.
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
           {"e", ""}, {"e", "x/y"}, {"e", "a,b"}, {"e", std::string(256, 't')}, {"e", "\xff"}}) {
    Status s = c_->SetTags(Entity::kSlide, w.slide.id, bad);
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(s.code() == Code::kInvalidArgument || s.code() == Code::kNameTooLong)
        << s.ToString();
    EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("c", "d"));
  }
  EXPECT_CODE(c_->TagByName("e"), Code::kNotFound);

  ASSERT_OK(c_->SetTags(Entity::kSlide, w.slide.id, {}));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), IsEmpty());
}

TEST_P(CatalogTest, TagsAndAnnotationsNeedAnExistingRecord) {
  World w = NewWorld();
  const std::pair<Entity, int64_t> missing[] = {
      {Entity::kSpecies, 9001}, {Entity::kSample, 9002}, {Entity::kDye, 9003},
      {Entity::kSlide, 9004},   {Entity::kImage, 9005},  {Entity::kEntry, 9006}};
  for (auto [entity, id] : missing) {
    Status s = c_->AddTag(entity, id, "good");
    EXPECT_REFUSED(s, Code::kReferenceMissing, std::string(EntityName(entity)) + NameN(" ", id));
    EXPECT_CODE(c_->SetTags(entity, id, {"good"}), Code::kReferenceMissing);
    s = c_->SetAnnotation(entity, id, "k", "v");
    EXPECT_REFUSED(s, Code::kReferenceMissing, std::to_string(id));
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM tagging"), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM annotation"), 0);
  // A slide id is not an image id: the record must exist in its own table.
  Slide s2 = NewSlide("S-2", w.sample.id);
  EXPECT_CODE(c_->AddTag(Entity::kImage, s2.id, "good"), Code::kReferenceMissing);
}

// ---------------------------------------------------------------------------
// Annotations.

TEST_P(CatalogTest, AnnotationsCreateReadUpdateDelete) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "a.tif");
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, w.slide.id, "stain", "fresh"));
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, w.slide.id, "batch", "7"));
  ASSERT_OK(c_->SetAnnotation(Entity::kEntry, f.id, "stain", "other record"));
  EXPECT_EQ(MUST(c_->Annotation(Entity::kSlide, w.slide.id, "stain")), "fresh");
  auto all = MUST(c_->AnnotationsOf(Entity::kSlide, w.slide.id));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], std::make_pair(std::string("batch"), std::string("7")));
  EXPECT_EQ(all[1], std::make_pair(std::string("stain"), std::string("fresh")));

  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, w.slide.id, "stain", "old"));  // overwrite
  EXPECT_EQ(MUST(c_->Annotation(Entity::kSlide, w.slide.id, "stain")), "old");
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, w.slide.id, "empty", ""));  // empty value is a value
  EXPECT_EQ(MUST(c_->Annotation(Entity::kSlide, w.slide.id, "empty")), "");

  ASSERT_OK(c_->RemoveAnnotation(Entity::kSlide, w.slide.id, "stain"));
  auto gone = c_->Annotation(Entity::kSlide, w.slide.id, "stain");
  EXPECT_REFUSED(gone, Code::kNotFound, "'stain'");
  EXPECT_CODE(c_->RemoveAnnotation(Entity::kSlide, w.slide.id, "stain"), Code::kNotFound);
  EXPECT_EQ(MUST(c_->Annotation(Entity::kEntry, f.id, "stain")), "other record");

  EXPECT_CODE(c_->SetAnnotation(Entity::kSlide, w.slide.id, "", "v"), Code::kInvalidArgument);
  EXPECT_CODE(c_->SetAnnotation(Entity::kSlide, w.slide.id, std::string(256, 'k'), "v"),
              Code::kInvalidArgument);
  EXPECT_CODE(c_->SetAnnotation(Entity::kSlide, w.slide.id, "k", std::string("a\0b", 3)),
              Code::kInvalidArgument);
  EXPECT_CODE(c_->SetAnnotation(Entity::kSlide, w.slide.id, "k", "\xC0\xAF"),
              Code::kInvalidArgument);
  EXPECT_CODE(c_->SetAnnotation(Entity::kSlide, w.slide.id, "k", std::string(65 * 1024, 'v')),
              Code::kTooBig);

  // Deleting the record removes its annotations, only its own.
  ASSERT_OK(c_->DeleteEntry(f.id));
  EXPECT_THAT(MUST(c_->AnnotationsOf(Entity::kEntry, f.id)), IsEmpty());
  EXPECT_EQ(MUST(c_->AnnotationsOf(Entity::kSlide, w.slide.id)).size(), 2u);
}

// ---------------------------------------------------------------------------
// Names and values: the same rules for every key, stored literally.

TEST_P(CatalogTest, EveryRecordKeyObeysTheNameRules) {
  World w = NewWorld();
  const std::string k255(255, 'k');
  const std::vector<std::string> good = {
      "with space", "it's", "\"quoted\"", "x'); DROP TABLE slide;--",
      "\xC3\x9C\x62\x65r \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x94\xAC", k255, "...", "%_"};
  struct Bad {
    std::string name;
    Code code;
  };
  const std::vector<Bad> bad = {
      {"", Code::kInvalidArgument},         {std::string(256, 'k'), Code::kNameTooLong},
      {"a/b", Code::kInvalidArgument},      {std::string("a\0b", 3), Code::kInvalidArgument},
      {".", Code::kInvalidArgument},        {"..", Code::kInvalidArgument},
      {"\xFF\xFE", Code::kInvalidArgument}, {"\xED\xA0\x80", Code::kInvalidArgument}};

  // One creator per kind of key; each returns the stored key read back by
  // its lookup, so a name is checked both ways.
  int n = 0;
  struct Kind {
    const char* what;
    std::function<Result<std::string>(const std::string&)> create_and_read;
    bool spaces_ok;
  };
  const std::vector<Kind> kinds = {
      {"species", [&](const std::string& name) {
         return ReadBack(c_->CreateSpecies(SpeciesRecord(name)), [&] { return c_->SpeciesByName(name); }, &Species::name);
       }, true},
      {"sample", [&](const std::string& name) {
         return ReadBack(c_->CreateSample(SampleRecord(name, w.species.id)), [&] { return c_->SampleByName(name); },
                         &Sample::name);
       }, true},
      {"dye", [&](const std::string& name) {
         return ReadBack(c_->CreateDye(DyeRecord(name)), [&] { return c_->DyeByName(name); }, &Dye::short_name);
       }, false},
      {"slide", [&](const std::string& name) {
         return ReadBack(c_->CreateSlide(SlideRecord(name, w.sample.id)), [&] { return c_->SlideByReference(name); },
                         &Slide::reference);
       }, true},
      {"image", [&](const std::string& name) {
         return ReadBack(c_->CreateImage(ImageRecord(name, w.slide.id)),
                         [&] { return c_->ImageByName(w.slide.id, name); }, &Image::name);
       }, true},
      {"file", [&](const std::string& name) {
         Entry e = EntryRecord(w.root.id, name);
         e.hash = HashN(static_cast<unsigned>(++n));
         return ReadBack(c_->CreateEntry(e), [&] { return c_->EntryByName(w.root.id, name); }, &Entry::name);
       }, true},
      {"tag", [&](const std::string& name) {
         return ReadBack(c_->CreateTag(name), [&] { return c_->TagByName(name); }, &Tag::name);
       }, true},
      {"structure", [&](const std::string& name) -> Result<std::string> {
         Labelling l = LabellingRecord(w.slide.id, name, w.dye.id);
         SFS_ASSIGN_OR_RETURN(Labelling added, c_->AddLabelling(l));
         return added.structure;
       }, true},
  };
  for (const auto& kind : kinds) {
    for (const auto& name : good) {
      if (!kind.spaces_ok && name.find(' ') != std::string::npos) continue;
      auto r = kind.create_and_read(name);
      ASSERT_TRUE(r.ok()) << kind.what << " '" << name << "': " << r.status().ToString();
      EXPECT_EQ(*r, name) << kind.what;
    }
    for (const auto& b : bad) {
      auto r = kind.create_and_read(b.name);
      EXPECT_EQ(r.status().code(), b.code)
          << kind.what << " of " << b.name.size() << " bytes: " << r.status().ToString();
    }
  }
  // Renames obey the same rules.
  Species sp = w.species;
  sp.name = "a/b";
  EXPECT_CODE(c_->UpdateSpecies(sp), Code::kInvalidArgument);
  Slide sl = w.slide;
  sl.reference = std::string(256, 'r');
  EXPECT_CODE(c_->UpdateSlide(sl), Code::kNameTooLong);
  Entry f = NewFile(w.root.id, "plain");
  EXPECT_CODE(c_->MoveEntry(f.id, w.root.id, "..", false), Code::kInvalidArgument);
  EXPECT_CODE(c_->MoveEntry(f.id, w.root.id, std::string(256, 'm'), false), Code::kNameTooLong);
}

TEST_P(CatalogTest, SqlInjectionIsStoredLiterally) {
  World w = NewWorld();
  const std::string evil = "x'); DROP TABLE slide;--";
  const std::string evil2 = "\"; DELETE FROM entry; SELECT \"";
  Slide in = SlideRecord(evil, w.sample.id);
  in.creator = evil2;
  in.notes = "Robert'); DROP TABLE species;--";
  Slide s = MUST(c_->CreateSlide(in));
  EXPECT_EQ(MUST(c_->SlideByReference(evil)).id, s.id);
  EXPECT_EQ(MUST(c_->SlideById(s.id)).creator, evil2);
  EXPECT_EQ(MUST(c_->SlideById(s.id)).notes, "Robert'); DROP TABLE species;--");

  Entry f = NewFile(w.root.id, evil);
  ASSERT_OK(c_->AddTag(Entity::kEntry, f.id, evil));
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, s.id, evil, evil2));
  EXPECT_EQ(MUST(c_->Annotation(Entity::kSlide, s.id, evil)), evil2);
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ElementsAre(evil));
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, evil)).id, f.id);

  // Query values are parameters too.
  EXPECT_THAT(MUST(c_->ListSlides(Query{{{"creator", "x' OR '1'='1"}}}, 0, 10)), IsEmpty());
  auto by_creator = MUST(c_->ListSlides(Query{{{"creator", evil2}}}, 0, 10));
  ASSERT_EQ(by_creator.size(), 1u);
  EXPECT_EQ(by_creator[0].reference, evil);
  ASSERT_OK(c_->SetAnnotation(Entity::kSlide, s.id, "stain", evil));
  EXPECT_EQ(MUST(c_->ListSlides(Query{{{"stain", evil}}}, 0, 10)).size(), 1u);
  // Query keys are restricted to [A-Za-z0-9_.-], also when built in code.
  EXPECT_CODE(c_->ListSlides(Query{{{evil, evil2}}}, 0, 10), Code::kInvalidArgument);
  EXPECT_CODE(c_->ListSlides(Query{{{"a=b", "c"}}}, 0, 10), Code::kInvalidArgument);

  // Every table is still there and whole.
  EXPECT_EQ(Scalar("SELECT count(*) FROM slide"), 2);
  EXPECT_EQ(Scalar("SELECT count(*) FROM species"), 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM entry"), 2);
}

TEST_P(CatalogTest, TextFieldsAreValidated) {
  World w = NewWorld();
  Slide s = w.slide;
  s.notes = std::string("a\0b", 3);
  Status st = c_->UpdateSlide(s);
  EXPECT_REFUSED(st, Code::kInvalidArgument, "notes");
  s.notes = "caf\xE9";
  EXPECT_CODE(c_->UpdateSlide(s), Code::kInvalidArgument);
  s.notes = std::string(64 * 1024 + 1, 'n');
  EXPECT_CODE(c_->UpdateSlide(s), Code::kTooBig);
  s.notes = std::string(64 * 1024, 'n');  // exactly the limit is fine
  EXPECT_OK(c_->UpdateSlide(s));

  Species sp = SpeciesRecord("Mouse");
  sp.strain = "\xFF";
  st = c_->CreateSpecies(sp).status();
  EXPECT_REFUSED(st, Code::kInvalidArgument, "strain");
  Image im = ImageRecord("i", w.slide.id);
  im.comments = std::string("\0", 1);
  EXPECT_CODE(c_->CreateImage(im), Code::kInvalidArgument);
  EXPECT_CODE(c_->ImageByName(w.slide.id, "i"), Code::kNotFound);
}

// ---------------------------------------------------------------------------
// Ids are never reused: a deleted record's id never names a new one, even
// when it was the newest (SQLite alone would hand out max(id) + 1 again), so
// an open file, a cached node or an export cannot reach the wrong record.

TEST_P(CatalogTest, IdsAreNeverReused) {
  World w = NewWorld();
  Species sp = NewSpecies("Newest");
  ASSERT_OK(c_->DeleteSpecies(sp.id));
  EXPECT_GT(NewSpecies("Next").id, sp.id);

  Entry f = NewFile(w.root.id, "newest");
  ASSERT_OK(c_->DeleteEntry(f.id));
  EXPECT_GT(NewFile(w.root.id, "next").id, f.id);

  Tag t = MUST(c_->CreateTag("newest"));
  ASSERT_OK(c_->DeleteTag(t.id));
  EXPECT_GT(MUST(c_->CreateTag("next")).id, t.id);

  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  Labelling l1 = MUST(c_->AddLabelling(l));
  ASSERT_OK(c_->ReplaceLabellings(w.slide.id, {}));
  EXPECT_GT(MUST(c_->AddLabelling(l)).id, l1.id);

  // An image and, by cascade, its root folder entry.
  Image im = NewImage("newest", w.slide.id);
  Entry root = MUST(c_->FilesRoot(im.id));
  ASSERT_OK(c_->DeleteImage(im.id));
  Image im2 = NewImage("next", w.slide.id);
  EXPECT_GT(im2.id, im.id);
  EXPECT_GT(MUST(c_->FilesRoot(im2.id)).id, root.id);
}

// ---------------------------------------------------------------------------
// Paging: every record exactly once, also while records are deleted.

// Pages through `list(after_id, limit)` and returns the ids seen, calling
// `between(page_ids)` after each page.
template <class List, class Between>
std::vector<int64_t> PageAll(List list, int limit, Between between) {
  std::vector<int64_t> seen;
  int64_t after = 0;
  for (int guard = 0; guard < 10000; ++guard) {
    auto page = list(after, limit);
    if (!page.ok()) {
      ADD_FAILURE() << page.status().ToString();
      break;
    }
    if (page->empty()) break;
    EXPECT_LE(static_cast<int>(page->size()), limit);
    std::vector<int64_t> ids;
    for (const auto& rec : *page) {
      if constexpr (std::is_same_v<std::decay_t<decltype(rec)>, int64_t>) ids.push_back(rec);
      else ids.push_back(rec.id);
    }
    for (int64_t id : ids) {
      EXPECT_GT(id, after) << "pages go forward";
      seen.push_back(id);
    }
    after = ids.back();
    between(ids);
  }
  return seen;
}

void ExpectExactlyOnce(const std::vector<int64_t>& seen, std::vector<int64_t> expected) {
  std::sort(expected.begin(), expected.end());
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), seen.size()) << "duplicates";
  EXPECT_EQ(seen, expected);
}

TEST_P(CatalogTest, PagingReturnsEverythingExactlyOnce) {
  World w = NewWorld();
  std::vector<int64_t> species{w.species.id}, samples{w.sample.id}, dyes{w.dye.id},
      slides{w.slide.id}, images{w.image.id}, entries, tags, tagged;
  for (int i = 0; i < 53; ++i) {
    std::string n = std::to_string(i);
    species.push_back(NewSpecies("sp" + n).id);
    samples.push_back(NewSample("sa" + n, w.species.id).id);
    dyes.push_back(NewDye("dye" + n).id);
    slides.push_back(NewSlide("sl" + n, w.sample.id).id);
    images.push_back(NewImage("im" + n, w.slide.id).id);
    entries.push_back(NewFile(w.root.id, "f" + n, static_cast<unsigned>(i)).id);
    tags.push_back(MUST(c_->CreateTag("t" + n)).id);
    ASSERT_OK(c_->AddTag(Entity::kEntry, entries.back(), "every"));
    tagged.push_back(entries.back());
  }
  tags.push_back(MUST(c_->TagByName("every")).id);
  const int64_t every = tags.back();
  auto none = [](const std::vector<int64_t>&) {};
  for (int limit : {1, 7, 53, 1000}) {
    SCOPED_TRACE(NameN("limit ", limit));
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListSpecies(a, l); }, limit, none), species);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListSamples(0, a, l); }, limit, none), samples);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListDyes(a, l); }, limit, none), dyes);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListSlides(Query{}, a, l); }, limit, none), slides);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListImages(w.slide.id, a, l); }, limit, none), images);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListEntries(w.root.id, a, l); }, limit, none), entries);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListTags(a, l); }, limit, none), tags);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->TaggedRecords(Entity::kEntry, every, a, l); }, limit, none), tagged);
    ExpectExactlyOnce(PageAll([&](int64_t a, int l) { return c_->ListTaggedEntries(every, a, l); }, limit, none), tagged);
  }
}

TEST_P(CatalogTest, PagingWhileDeleting) {
  World w = NewWorld();
  std::vector<int64_t> entries, tags;
  for (int i = 0; i < 100; ++i) {
    entries.push_back(NewFile(w.root.id, NameN("f", i), static_cast<unsigned>(i)).id);
    tags.push_back(MUST(c_->CreateTag(NameN("t", i))).id);
  }
  // After each page delete one record already seen and one not yet seen
  // (a few ids ahead). The listing must still return every record that
  // existed throughout exactly once, and none of the deleted unseen ones.
  auto run = [&](std::vector<int64_t> all, auto list, auto remove) {
    std::set<int64_t> seen_so_far, deleted_unseen;
    std::set<int64_t> alive(all.begin(), all.end());
    auto seen = PageAll(list, 6, [&](const std::vector<int64_t>& page) {
      seen_so_far.insert(page.begin(), page.end());
      int64_t back_id = page.front();
      if (alive.count(back_id)) {
        ASSERT_OK(remove(back_id));
        alive.erase(back_id);
      }
      auto ahead = alive.upper_bound(page.back());
      for (int k = 0; k < 3 && ahead != alive.end(); ++k) ++ahead;
      if (ahead != alive.end()) {
        int64_t id = *ahead;
        ASSERT_OK(remove(id));
        alive.erase(id);
        deleted_unseen.insert(id);
      }
    });
    std::vector<int64_t> expected;
    for (int64_t id : all)
      if (!deleted_unseen.count(id)) expected.push_back(id);
    ExpectExactlyOnce(seen, expected);
    EXPECT_GT(deleted_unseen.size(), 5u);
  };
  run(entries, [&](int64_t a, int l) { return c_->ListEntries(w.root.id, a, l); },
      [&](int64_t id) { return c_->DeleteEntry(id); });
  run(tags, [&](int64_t a, int l) { return c_->ListTags(a, l); },
      [&](int64_t id) { return c_->DeleteTag(id); });
}

// ---------------------------------------------------------------------------
// MoveEntry.

// The desktop trash (docs/DECISIONS.md "Trash"): a trashed entry leaves its
// folder, listings, tags and file_info but keeps its object; it restores to
// its place or is emptied for good.
TEST_P(CatalogTest, TrashMovesRestoresAndEmpties) {
  World w = NewWorld();
  Entry dir = NewFolder(w.root.id, "dir");
  Entry f = NewFile(dir.id, "a.tif", 7);
  Entry sub = NewFolder(w.root.id, "sub");
  Entry g = NewFile(sub.id, "b.tif", 8);
  ASSERT_OK(c_->AddTag(Entity::kEntry, f.id, "good"));
  ASSERT_OK(c_->AddTag(Entity::kEntry, g.id, "good"));
  const int64_t files_before = Scalar("SELECT count(*) FROM file_info");

  TrashItem t = MUST(c_->TrashEntry(f.id, 1000, "a.tif", "slides/S1/images/cell01/files/dir/a.tif",
                                    "2026-01-02T03:04:05"));
  EXPECT_EQ(t.entry_id, f.id);
  EXPECT_EQ(t.original_parent_id, dir.id);
  EXPECT_EQ(t.original_name, "a.tif");
  EXPECT_EQ(MUST(c_->CountEntries(dir.id)), 0);
  EXPECT_TRUE(MUST(c_->ListEntries(dir.id, 0, 100)).empty());
  EXPECT_CODE(c_->EntryByName(dir.id, "a.tif"), Code::kNotFound);
  // The name is free again, and the trashed entry is not listed at the root.
  Entry again = NewFile(dir.id, "a.tif", 9);
  for (const Entry& e : MUST(c_->ListEntries(w.root.id, 0, 100))) EXPECT_NE(e.id, f.id);
  // A folder goes with its subtree.
  MUST(c_->TrashEntry(sub.id, 1000, "sub", "slides/S1/images/cell01/files/sub", "2026-03-01T00:00:00"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM file_info"), files_before - 2 + 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM file_info WHERE file_id = " + std::to_string(g.id)), 0);
  EXPECT_TRUE(MUST(c_->ListTaggedEntries(MUST(c_->TagByName("good")).id, 0, 100)).empty());
  EXPECT_EQ(Scalar("SELECT count(*) FROM trash_info WHERE uid = 1000"), 2);
  // Objects stay referenced while in the trash.
  std::set<std::string> hashes;
  ASSERT_OK(c_->ForEachReferencedHash([&](const std::string& h) { hashes.insert(h); return Status::Ok(); }));
  EXPECT_TRUE(hashes.count(f.hash));
  EXPECT_TRUE(hashes.count(g.hash));

  EXPECT_CODE(c_->TrashEntry(again.id, 1000, "a.tif", "x", "2026-01-02T03:04:05"), Code::kAlreadyExists);
  EXPECT_CODE(c_->TrashEntry(w.root.id, 1000, "root", "x", "2026-01-02T03:04:05"), Code::kPermission);
  EXPECT_EQ(MUST(c_->ListTrash(1000)).size(), 2u);
  EXPECT_TRUE(MUST(c_->ListTrash(1001)).empty());
  EXPECT_EQ(MUST(c_->ListTrash(-1)).size(), 2u);

  // Restore says why not while the name is taken, then puts it back.
  auto r = c_->RestoreTrash(t.id, 0, "");
  EXPECT_CODE(r, Code::kAlreadyExists);
  ASSERT_OK(c_->DeleteEntry(again.id));
  Entry back = MUST(c_->RestoreTrash(t.id, 0, ""));
  EXPECT_EQ(back.id, f.id);
  EXPECT_EQ(MUST(c_->EntryByName(dir.id, "a.tif")).id, f.id);
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ElementsAre("good"));
  EXPECT_EQ(MUST(c_->ListTrash(1000)).size(), 1u);

  // Emptying: --older-than keeps newer ones; then everything goes.
  MUST(c_->TrashEntry(f.id, 1000, "a.tif", "slides/S1/images/cell01/files/dir/a.tif", "2026-04-01T00:00:00"));
  EXPECT_EQ(MUST(c_->EmptyTrash(1000, "2026-03-15T00:00:00")), 1);
  EXPECT_CODE(c_->EntryById(g.id), Code::kNotFound);
  EXPECT_CODE(c_->EntryById(sub.id), Code::kNotFound);
  EXPECT_EQ(MUST(c_->EmptyTrash(1000, "")), 1);
  EXPECT_CODE(c_->EntryById(f.id), Code::kNotFound);
  EXPECT_TRUE(MUST(c_->ListTrash(-1)).empty());

  // A trashed entry whose folder is gone restores elsewhere only.
  Entry h = NewFile(dir.id, "c.tif", 10);
  TrashItem th = MUST(c_->TrashEntry(h.id, 1000, "c.tif", "p/c.tif", "2026-05-01T00:00:00"));
  ASSERT_OK(c_->DeleteEntry(dir.id));
  EXPECT_CODE(c_->RestoreTrash(th.id, 0, ""), Code::kReferenceMissing);
  EXPECT_EQ(MUST(c_->RestoreTrash(th.id, w.root.id, "c2.tif")).parent_id, w.root.id);

  // An image whose only entries are in the trash says so instead of
  // deleting them with it.
  ASSERT_OK(c_->DeleteEntry(h.id));
  Entry last = NewFile(w.root.id, "d.tif", 11);
  MUST(c_->TrashEntry(last.id, 1000, "d.tif", "p/d.tif", "2026-05-01T00:00:00"));
  auto del = c_->DeleteImage(w.image.id);
  EXPECT_REFUSED(del, Code::kNotEmpty, "in the trash");
  EXPECT_EQ(MUST(c_->EmptyTrash(-1, "")), 1);
  EXPECT_OK(c_->DeleteImage(w.image.id));
}

TEST_P(CatalogTest, MoveEntryRenamesAndMoves) {
  World w = NewWorld();
  Entry a = NewFolder(w.root.id, "a");
  Entry b = NewFolder(w.root.id, "b");
  Entry f = NewFile(a.id, "old.tif");
  ASSERT_OK(c_->AddTag(Entity::kEntry, f.id, "keep"));

  EXPECT_EQ(MUST(c_->MoveEntry(f.id, a.id, "new.tif", false)), 0);
  EXPECT_CODE(c_->EntryByName(a.id, "old.tif"), Code::kNotFound);
  Entry moved = MUST(c_->EntryByName(a.id, "new.tif"));
  EXPECT_EQ(moved.id, f.id);  // same record: the id survives a rename
  EXPECT_EQ(moved.hash, f.hash);

  EXPECT_EQ(MUST(c_->MoveEntry(f.id, b.id, "new.tif", false)), 0);
  EXPECT_EQ(MUST(c_->EntryById(f.id)).parent_id, b.id);
  EXPECT_EQ(MUST(c_->CountEntries(a.id)), 0);
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ElementsAre("keep"));

  // Moving onto itself is a no-op.
  EXPECT_EQ(MUST(c_->MoveEntry(f.id, b.id, "new.tif", true)), 0);
  EXPECT_OK(c_->EntryById(f.id));

  // A folder moves with its subtree.
  Entry sub = NewFolder(b.id, "sub");
  Entry deep = NewFile(sub.id, "deep.csv");
  EXPECT_EQ(MUST(c_->MoveEntry(b.id, a.id, "b-moved", false)), 0);
  EXPECT_EQ(MUST(c_->EntryById(deep.id)).parent_id, sub.id);
  EXPECT_EQ(MUST(c_->EntryByName(a.id, "b-moved")).id, b.id);
}

// Issue 18: a folder's times follow its entries (create, delete, rename in
// and out), its subfolder count follows mkdir/rmdir/move of folders, and
// an entry's ctime follows every change of it but not its mtime.
// Schema v7 (issue 18, points 1, 6 and 8): atime and owners are stored as
// given, times before 1970 too; reads' atimes go in one batch without
// touching ctime; utimensat's atime and chown move ctime.
TEST_P(CatalogTest, AtimeOwnersAndTimesBefore1970) {
  World w = NewWorld();
  Entry e = EntryRecord(w.root.id, "old.tif");
  e.hash = HashN(3);
  e.mtime_ns = -157766400000000001;  // 1965, one nanosecond before a second
  e.atime_ns = -1;
  e.uid = 1234;
  e.gid = 5678;
  Entry f = MUST(c_->CreateEntry(e));
  EXPECT_EQ(f.mtime_ns, -157766400000000001);
  EXPECT_EQ(f.atime_ns, -1);
  EXPECT_EQ(f.uid, 1234);
  EXPECT_EQ(f.gid, 5678);
  EXPECT_EQ(Row("SELECT mtime_ns, atime_ns, uid, gid FROM entry WHERE id = " + std::to_string(f.id), 4),
            "-157766400000000001|-1|1234|5678");
  // Not given: atime is the mtime, the owner not recorded.
  Entry g = NewFile(w.root.id, "g.tif");
  EXPECT_EQ(g.atime_ns, g.mtime_ns);
  EXPECT_EQ(g.uid, -1);
  EXPECT_EQ(Row("SELECT uid, gid FROM entry WHERE id = " + std::to_string(g.id), 2), "NULL|NULL");
  // UpdateEntry leaves atime and owner alone.
  f.mtime_ns = -1;
  f.atime_ns = 42;
  f.uid = 1;
  ASSERT_OK(c_->UpdateEntry(f));
  Entry back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.mtime_ns, -1);
  EXPECT_EQ(back.atime_ns, -1);
  EXPECT_EQ(back.uid, 1234);
  // A batch of reads' atimes: no ctime change, gone ids skipped.
  ASSERT_OK(c_->db().Exec("UPDATE entry SET ctime_ns = 7 WHERE id IN (" + std::to_string(f.id) + ", " +
                          std::to_string(g.id) + ")"));
  ASSERT_OK(c_->SetAtimes({{f.id, 100}, {g.id, 200}, {999999, 300}}));
  EXPECT_EQ(MUST(c_->EntryById(f.id)).atime_ns, 100);
  EXPECT_EQ(MUST(c_->EntryById(g.id)).atime_ns, 200);
  EXPECT_EQ(MUST(c_->EntryById(f.id)).ctime_ns, 7);
  // utimensat's atime and chown/chgrp are status changes.
  ASSERT_OK(c_->SetEntryAtime(f.id, -5));
  back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.atime_ns, -5);
  EXPECT_GT(back.ctime_ns, 7);
  ASSERT_OK(c_->SetEntryOwner(g.id, -1, 99));
  back = MUST(c_->EntryById(g.id));
  EXPECT_EQ(back.uid, -1);
  EXPECT_EQ(back.gid, 99);
  EXPECT_GT(back.ctime_ns, 7);
  ASSERT_OK(c_->SetEntryOwner(g.id, 5, -1));
  EXPECT_EQ(Row("SELECT uid, gid FROM entry WHERE id = " + std::to_string(g.id), 2), "5|99");
  EXPECT_TRUE(c_->SetEntryOwner(999999, 1, 1).is_not_found());
  EXPECT_TRUE(c_->SetEntryAtime(999999, 1).is_not_found());
  EXPECT_EQ(c_->SetEntryOwner(g.id, -1, -1).code(), Code::kOk);
}

// The 6 -> 7 step on this engine (PostgreSQL has no file to build an old
// catalog in, so the columns are dropped from a fresh one): atime starts at
// the mtime, owners unrecorded.
TEST_P(CatalogTest, MigratesVersion6ToAtimeAndOwners) {
  if (!postgres() && !GetParam().file_backed) GTEST_SKIP() << "needs a catalog to reopen";
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "f.tif");
  ASSERT_OK(c_->db().Exec("ALTER TABLE entry DROP COLUMN atime_ns; ALTER TABLE entry DROP COLUMN uid; "
                          "ALTER TABLE entry DROP COLUMN gid; "
                          "UPDATE meta SET value = '6' WHERE key = 'schema_version'"));
  Reopen();
  EXPECT_EQ(c_->schema_version(), kSchemaVersion);
  Entry back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.atime_ns, f.mtime_ns);
  EXPECT_EQ(back.uid, -1);
  EXPECT_EQ(back.gid, -1);
  EXPECT_EQ(Columns("entry").find("atime_ns,uid,gid") != std::string::npos, true) << Columns("entry");
}

TEST_P(CatalogTest, FolderTimesCtimeAndSubfolders) {
  World w = NewWorld();
  auto now = [] {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  };
  Entry a = NewFolder(w.root.id, "a");
  Entry b = NewFolder(w.root.id, "b");
  EXPECT_EQ(MUST(c_->FilesRoot(w.image.id)).subfolders, 2);
  auto age = [&](int64_t id) {
    ASSERT_OK(c_->db().Exec("UPDATE entry SET mtime_ns = 1000, ctime_ns = 1000 WHERE id = " + std::to_string(id)));
  };
  age(a.id);
  age(b.id);
  int64_t t0 = now();
  Entry f = NewFile(a.id, "f.tif");
  Entry back = MUST(c_->EntryById(a.id));
  EXPECT_GE(back.mtime_ns, t0);
  EXPECT_EQ(back.ctime_ns, back.mtime_ns);
  EXPECT_EQ(back.subfolders, 0);
  EXPECT_GE(f.ctime_ns, t0);  // a new entry's ctime is now, whatever its mtime

  // A rename touches both folders and the entry's ctime, not its mtime.
  age(a.id);
  age(f.id);
  ASSERT_OK(c_->MoveEntry(f.id, b.id, "g.tif", false).status());
  EXPECT_GE(MUST(c_->EntryById(a.id)).mtime_ns, t0);
  EXPECT_GE(MUST(c_->EntryById(b.id)).mtime_ns, t0);
  back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.mtime_ns, 1000);
  EXPECT_GE(back.ctime_ns, t0);

  // chmod/utimens (UpdateEntry), tags and annotations change the ctime.
  age(f.id);
  back = MUST(c_->EntryById(f.id));
  back.mtime_ns = 5;
  ASSERT_OK(c_->UpdateEntry(back));
  back = MUST(c_->EntryById(f.id));
  EXPECT_EQ(back.mtime_ns, 5);
  EXPECT_GE(back.ctime_ns, t0);
  for (int i = 0; i < 4; ++i) {
    age(f.id);
    if (i == 0) ASSERT_OK(c_->AddTag(Entity::kEntry, f.id, "t"));
    if (i == 1) ASSERT_OK(c_->RemoveTag(Entity::kEntry, f.id, "t"));
    if (i == 2) ASSERT_OK(c_->SetAnnotation(Entity::kEntry, f.id, "k", "v"));
    if (i == 3) ASSERT_OK(c_->RemoveAnnotation(Entity::kEntry, f.id, "k"));
    EXPECT_GE(MUST(c_->EntryById(f.id)).ctime_ns, t0) << i;
  }

  // Folders move between counts; a delete touches its folder.
  Entry sub = NewFolder(a.id, "sub");
  EXPECT_EQ(MUST(c_->EntryById(a.id)).subfolders, 1);
  ASSERT_OK(c_->MoveEntry(sub.id, b.id, "sub", false).status());
  EXPECT_EQ(MUST(c_->EntryById(a.id)).subfolders, 0);
  EXPECT_EQ(MUST(c_->EntryById(b.id)).subfolders, 1);
  ASSERT_OK(c_->MoveEntry(sub.id, b.id, "sub2", false).status());
  EXPECT_EQ(MUST(c_->EntryById(b.id)).subfolders, 1);
  Entry other = NewFolder(a.id, "other");
  ASSERT_OK(c_->MoveEntry(other.id, b.id, "sub2", true).status());  // replaces an empty folder
  EXPECT_EQ(MUST(c_->EntryById(a.id)).subfolders, 0);
  EXPECT_EQ(MUST(c_->EntryById(b.id)).subfolders, 1);
  age(b.id);
  ASSERT_OK(c_->DeleteEntry(other.id));
  back = MUST(c_->EntryById(b.id));
  EXPECT_EQ(back.subfolders, 0);
  EXPECT_GE(back.mtime_ns, t0);
  EXPECT_GE(back.ctime_ns, t0);
}

// Issue 13: rsync, editors and tempfile+os.replace write under a
// temporary name; the record must take the kind of the final name.
TEST_P(CatalogTest, MoveEntryTakesTheKindOfTheNewName) {
  World w = NewWorld();
  World w2 = NewWorld("-2");
  Entry a = NewFolder(w.root.id, "a");
  auto file = [&](int64_t parent, const std::string& name) {
    Entry e = EntryRecord(parent, name, EntryType::kFile);
    e.hash = HashN(1);
    e.kind = KindFromName(name);  // as the mount creates files
    return MUST(c_->CreateEntry(e));
  };
  auto kind = [&](const Entry& e) { return MUST(c_->EntryById(e.id)).kind; };

  Entry rsynced = file(a.id, ".raw_0001.tif.Xa81Qz");  // rsync's temporary name
  ASSERT_EQ(rsynced.kind, "other");
  EXPECT_EQ(MUST(c_->MoveEntry(rsynced.id, a.id, "raw_0001.tif", false)), 0);
  EXPECT_EQ(kind(rsynced), "raw");
  // Across folders and images, and back to a name with no kind.
  EXPECT_EQ(MUST(c_->MoveEntry(rsynced.id, w2.root.id, "fit.h5r", false)), 0);
  EXPECT_EQ(kind(rsynced), "analysis");
  EXPECT_EQ(MUST(c_->MoveEntry(rsynced.id, w.root.id, "fit.bak", false)), 0);
  EXPECT_EQ(kind(rsynced), "other");

  // Renamed over an existing file (os.replace): the survivor is the
  // renamed record, with the kind of the name it took.
  Entry old = file(a.id, "table.csv");
  Entry tmp = file(a.id, "tmpk3j_x9");
  EXPECT_EQ(MUST(c_->MoveEntry(tmp.id, a.id, "table.csv", true)), old.id);
  EXPECT_EQ(kind(tmp), "analysis");

  // A kind set by hand, one the name would not give, survives renames.
  Entry manual = file(a.id, "stack.dat");
  manual.kind = "raw";
  ASSERT_OK(c_->UpdateEntry(manual));
  EXPECT_EQ(MUST(c_->MoveEntry(manual.id, a.id, "stack2.dat", false)), 0);
  EXPECT_EQ(kind(manual), "raw");

  // Folders and symlinks keep theirs ("other").
  Entry zarr = NewFolder(a.id, "tmp-folder");
  EXPECT_EQ(MUST(c_->MoveEntry(zarr.id, a.id, "stack.ome.zarr", false)), 0);
  EXPECT_EQ(kind(zarr), "other");
}

TEST_P(CatalogTest, MoveEntryToAnotherImageCarriesTheSubtree) {
  World w = NewWorld();
  Image other = NewImage("img1", w.slide.id);
  Entry other_root = MUST(c_->FilesRoot(other.id));
  Entry dir = NewFolder(w.root.id, "Pos0");
  Entry sub = NewFolder(dir.id, "sub");
  Entry f1 = NewFile(dir.id, "a.tif");
  Entry f2 = NewFile(sub.id, "b.tif");
  Entry link = NewSymlink(sub.id, "l", "../a.tif");
  Entry lone = NewFile(w.root.id, "lone.txt");

  EXPECT_EQ(MUST(c_->MoveEntry(dir.id, other_root.id, "Pos0", false)), 0);
  for (int64_t id : {dir.id, sub.id, f1.id, f2.id, link.id})
    EXPECT_EQ(MUST(c_->EntryById(id)).image_id, other.id) << "entry " << id;
  EXPECT_EQ(MUST(c_->EntryById(lone.id)).image_id, w.image.id);
  EXPECT_EQ(Scalar(NameN("SELECT count(*) FROM entry WHERE image_id = ", other.id)), 6);

  // A single file, too.
  EXPECT_EQ(MUST(c_->MoveEntry(lone.id, sub.id, "lone.txt", false)), 0);
  EXPECT_EQ(MUST(c_->EntryById(lone.id)).image_id, other.id);

  // The old image is empty now and can go.
  EXPECT_EQ(MUST(c_->CountEntries(w.root.id)), 0);
  EXPECT_OK(c_->DeleteImage(w.image.id));
  EXPECT_EQ(MUST(c_->CountEntries(sub.id)), 3);
}

TEST_P(CatalogTest, MoveEntryReplaceRules) {
  World w = NewWorld();
  Entry src = NewFile(w.root.id, "src.tif", 1);
  Entry dst = NewFile(w.root.id, "dst.tif", 2);
  ASSERT_OK(c_->AddTag(Entity::kEntry, dst.id, "doomed"));
  ASSERT_OK(c_->SetAnnotation(Entity::kEntry, dst.id, "k", "v"));

  // Without replace: kAlreadyExists, nothing changes.
  auto r = c_->MoveEntry(src.id, w.root.id, "dst.tif", false);
  EXPECT_REFUSED(r, Code::kAlreadyExists, "'dst.tif'");
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "dst.tif")).id, dst.id);
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "src.tif")).id, src.id);

  // With replace: the target record goes (with its tags), its id is returned.
  EXPECT_EQ(MUST(c_->MoveEntry(src.id, w.root.id, "dst.tif", true)), dst.id);
  Entry now = MUST(c_->EntryByName(w.root.id, "dst.tif"));
  EXPECT_EQ(now.id, src.id);
  EXPECT_EQ(now.hash, HashN(1));
  EXPECT_CODE(c_->EntryById(dst.id), Code::kNotFound);
  EXPECT_EQ(Scalar(NameN("SELECT count(*) FROM tagging WHERE record_id = ", dst.id)), 0);
  EXPECT_EQ(Scalar(NameN("SELECT count(*) FROM annotation WHERE record_id = ", dst.id)), 0);

  // Symlink over a file: fine.
  Entry link = NewSymlink(w.root.id, "link", "dst.tif");
  EXPECT_EQ(MUST(c_->MoveEntry(link.id, w.root.id, "dst.tif", true)), src.id);

  // Folder over a non-empty folder: kNotEmpty, nothing changes.
  Entry d1 = NewFolder(w.root.id, "d1");
  Entry d2 = NewFolder(w.root.id, "d2");
  Entry inside = NewFile(d2.id, "inside");
  r = c_->MoveEntry(d1.id, w.root.id, "d2", true);
  EXPECT_CODE(r, Code::kNotEmpty);
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "d1")).id, d1.id);
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "d2")).id, d2.id);
  EXPECT_OK(c_->EntryById(inside.id));

  // Folder over an empty folder: replaced.
  Entry d3 = NewFolder(w.root.id, "d3");
  EXPECT_EQ(MUST(c_->MoveEntry(d1.id, w.root.id, "d3", true)), d3.id);
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "d3")).id, d1.id);

  // Folder over file: kNotADirectory, file over folder: kIsADirectory (as
  // rename(2)); nothing changes.
  Entry file = NewFile(w.root.id, "file", 9);
  EXPECT_CODE(c_->MoveEntry(d1.id, w.root.id, "file", true), Code::kNotADirectory);
  EXPECT_CODE(c_->MoveEntry(file.id, w.root.id, "d2", true), Code::kIsADirectory);
  EXPECT_EQ(c_->MoveEntry(d1.id, w.root.id, "file", true).status().to_errno(), ENOTDIR);
  EXPECT_EQ(c_->MoveEntry(file.id, w.root.id, "d2", true).status().to_errno(), EISDIR);
  EXPECT_OK(c_->EntryById(file.id));
  EXPECT_EQ(MUST(c_->EntryByName(w.root.id, "d2")).id, d2.id);
}

TEST_P(CatalogTest, MoveEntryRefusesImpossibleMoves) {
  World w = NewWorld();
  Entry a = NewFolder(w.root.id, "a");
  Entry b = NewFolder(a.id, "b");
  Entry c = NewFolder(b.id, "c");
  Entry f = NewFile(w.root.id, "f");

  auto r = c_->MoveEntry(a.id, c.id, "a", false);  // into its own subtree
  EXPECT_CODE(r, Code::kInvalidArgument);
  EXPECT_CODE(c_->MoveEntry(a.id, b.id, "x", false), Code::kInvalidArgument);
  EXPECT_CODE(c_->MoveEntry(a.id, a.id, "x", false), Code::kInvalidArgument);  // into itself
  EXPECT_EQ(MUST(c_->EntryById(a.id)).parent_id, w.root.id);
  // Moving down is fine for a file, and moving a subfolder up is fine.
  EXPECT_OK(c_->MoveEntry(c.id, w.root.id, "c", false));
  EXPECT_OK(c_->MoveEntry(f.id, b.id, "f", false));

  EXPECT_CODE(c_->MoveEntry(w.root.id, a.id, "root", false), Code::kPermission);
  Entry g = NewFile(w.root.id, "g");
  EXPECT_CODE(c_->MoveEntry(g.id, f.id, "g", false), Code::kInvalidArgument);  // parent is a file
  EXPECT_CODE(c_->MoveEntry(g.id, 987654, "g", false), Code::kReferenceMissing);
  EXPECT_CODE(c_->MoveEntry(987654, w.root.id, "g2", false), Code::kNotFound);
  EXPECT_CODE(c_->MoveEntry(g.id, w.root.id, "", false), Code::kInvalidArgument);
  EXPECT_CODE(c_->MoveEntry(g.id, w.root.id, "x/y", false), Code::kInvalidArgument);
  EXPECT_EQ(MUST(c_->EntryById(g.id)).name, "g");
}

// ---------------------------------------------------------------------------
// Never a half-written record: a failure injected into the LAST statement
// of a multi-statement method (a temporary trigger that aborts) must undo
// the statements before it.

class InjectedFailure {
 public:
  // `when` is the trigger's WHEN condition over NEW.
  InjectedFailure(Catalog& c, const std::string& event_and_table, const std::string& when)
      : c_(c) {
    Status s = c_.db().engine() == "postgresql"
                   ? c_.db().Exec("CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS "
                                  "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; "
                                  "CREATE TRIGGER injected_failure BEFORE " + event_and_table +
                                  " FOR EACH ROW WHEN (" + when + ") EXECUTE FUNCTION injected_failure()")
                   : c_.db().Exec("CREATE TEMP TRIGGER injected_failure BEFORE " + event_and_table +
                                  " WHEN " + when + " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  ~InjectedFailure() {
    (void)c_.db().Exec(c_.db().engine() == "postgresql"
                           ? "DROP FUNCTION IF EXISTS injected_failure() CASCADE"
                           : "DROP TRIGGER IF EXISTS temp.injected_failure");
  }

 private:
  Catalog& c_;
};

TEST_P(CatalogTest, CreateImageIsAtomic) {
  World w = NewWorld();
  {
    // The image row goes in, then its root entry fails.
    InjectedFailure fail(*c_, "INSERT ON entry", "NEW.parent_id IS NULL");
    Image i = ImageRecord("half", w.slide.id);
    auto r = c_->CreateImage(i);
    EXPECT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("injected failure"));
  }
  EXPECT_CODE(c_->ImageByName(w.slide.id, "half"), Code::kNotFound);
  EXPECT_EQ(Scalar("SELECT count(*) FROM image"), 1);
  EXPECT_EQ(Scalar("SELECT count(*) FROM entry"), 1);
  NewImage("half", w.slide.id);  // and the name is free
}

TEST_P(CatalogTest, ReplaceLabellingsIsAtomicAtItsLastInsert) {
  World w = NewWorld();
  Labelling old = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  Labelling kept = MUST(c_->AddLabelling(old));
  {
    InjectedFailure fail(*c_, "INSERT ON labelling", "NEW.structure = 'third'");
    Labelling a = old, b = old, c = old;
    a.structure = "first";
    b.structure = "second";
    c.structure = "third";
    EXPECT_FALSE(c_->ReplaceLabellings(w.slide.id, {a, b, c}).ok());
  }
  auto now = MUST(c_->LabellingsOfSlide(w.slide.id));
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].id, kept.id);
  EXPECT_EQ(now[0].structure, "tubulin");
}

TEST_P(CatalogTest, SetTagsIsAtomicAtItsLastTagging) {
  World w = NewWorld();
  ASSERT_OK(c_->SetTags(Entity::kSlide, w.slide.id, {"old1", "old2"}));
  Tag t = MUST(c_->CreateTag("zzz"));
  {
    InjectedFailure fail(*c_, "INSERT ON tagging", NameN("NEW.tag_id = ", t.id));
    EXPECT_FALSE(c_->SetTags(Entity::kSlide, w.slide.id, {"new1", "new2", "zzz"}).ok());
  }
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kSlide, w.slide.id)), ElementsAre("old1", "old2"));
  EXPECT_CODE(c_->TagByName("new1"), Code::kNotFound);  // tags made on the way are undone too
}

// Statement::Defer: on PostgreSQL the deferred writes wait in the
// pipeline and go with the next statement that needs an answer, or with
// the COMMIT. One failing in the middle of a batch fails the transaction
// whole: nothing before or after it is recorded, and the error names the
// statement and keeps its code (a unique key: kAlreadyExists). SQLite runs
// each at once and reports the failure from Defer itself.
TEST_P(CatalogTest, DeferredWriteFailureMidBatchRollsBackEverything) {
  Database& db = c_->db();
  const std::string insert = "INSERT INTO tag(id, name) VALUES (" + db.NewIdSql("tag") + ", ?)";
  auto defer = [&](const std::string& name) {
    auto st = db.Prepare(insert);
    if (!st.ok()) return st.status();
    StatementScope scope(**st);
    scope->Bind(1, name);
    return scope->Defer();
  };
  MUST(c_->CreateTag("taken"));
  // Failure reported at the COMMIT.
  ASSERT_OK(db.BeginWrite());
  Status s = defer("before");
  ASSERT_OK(s);
  s = defer("taken");
  if (s.ok()) s = defer("after");
  if (s.ok()) {
    EXPECT_TRUE(postgres()) << "SQLite reports the failure at once";
    s = db.Commit();
  } else {
    EXPECT_FALSE(postgres()) << "PostgreSQL sends the statement later";
    ASSERT_OK(db.Rollback());
  }
  EXPECT_EQ(s.code(), Code::kAlreadyExists) << s.ToString();
  if (postgres()) {
    EXPECT_THAT(s.message(), HasSubstr("INSERT INTO tag"));  // which of the batch
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM tag WHERE name IN ('before', 'after')"), 0);

  // Failure reported by the next statement that needs an answer; every
  // call after it in the transaction says the same, and the commit too.
  ASSERT_OK(db.BeginWrite());
  ASSERT_OK(defer("before"));
  s = defer("taken");
  if (s.ok()) {
    // (Preparing a new statement waits for an answer too: it may be the
    // call that reports.)
    Status read;
    auto st = db.Prepare("SELECT count(*) FROM tag");
    if (!st.ok()) {
      read = st.status();
    } else {
      StatementScope scope(**st);
      read = scope->Step().status();
    }
    EXPECT_EQ(read.code(), Code::kAlreadyExists) << read.ToString();
    EXPECT_THAT(read.message(), HasSubstr("INSERT INTO tag"));
    EXPECT_EQ(defer("after").code(), Code::kAlreadyExists);
    EXPECT_EQ(db.Commit().code(), Code::kAlreadyExists);
  } else {
    ASSERT_OK(db.Rollback());
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM tag WHERE name IN ('before', 'after')"), 0);

  // The connection is sound afterwards, and deferred writes that succeed
  // are recorded, seen by the transaction's own reads on the way.
  ASSERT_OK(db.BeginWrite());
  ASSERT_OK(defer("before"));
  ASSERT_OK(defer("after"));
  EXPECT_EQ(Scalar("SELECT count(*) FROM tag WHERE name IN ('before', 'after')"), 2);
  ASSERT_OK(defer("third"));
  ASSERT_OK(db.Commit());
  EXPECT_EQ(Scalar("SELECT count(*) FROM tag WHERE name IN ('before', 'after', 'third')"), 3);
}

// A catalog method's deferred write that fails inside a caller's
// Transaction fails the caller's transaction whole on PostgreSQL (no
// savepoint isolates it); on SQLite the method fails at once. Either way
// nothing of the transaction is recorded once it does not commit.
TEST_P(CatalogTest, DeferredWriteFailureInsideACallersTransaction) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "a.tif");
  Status s;
  {
    Transaction txn(*c_);
    ASSERT_OK(txn.status());
    MUST(c_->CreateTag("kept-if-committed"));
    InjectedFailure fail(*c_, "UPDATE ON entry", NameN("NEW.id = ", f.id));
    s = c_->SetTags(Entity::kEntry, f.id, {"x"});  // its ctime UPDATE fails
    if (s.ok()) s = txn.Commit();
  }
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("injected failure"));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), IsEmpty());
  EXPECT_CODE(c_->TagByName("kept-if-committed"), Code::kNotFound);
  // And the catalog goes on.
  ASSERT_OK(c_->SetTags(Entity::kEntry, f.id, {"x", "y"}));
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ElementsAre("x", "y"));
}

// Another connection's commit moves the counter pushed by NOTIFY, which
// a mount's caches compare without a query (fs/xattr.h XattrMemo); SQLite
// has none.
TEST_P(CatalogTest, PushedChangeCounterMovesOnAnotherConnectionsCommit) {
  if (!postgres()) {
    EXPECT_FALSE(c_->PushedChangeCounter().has_value());
    return;
  }
  EXPECT_FALSE(c_->PushedChangeCounter().has_value()) << "no listener unless asked for";
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "a.tif");
  DatabaseOptions o;
  o.listen = true;
  auto mount = MUST(Catalog::OpenUrl(url_, o));
  auto other = MUST(Catalog::OpenUrl(url_));
  ASSERT_TRUE(mount->PushedChangeCounter().has_value());
  auto waits_for_change = [&](int64_t before) {
    for (int i = 0; i < 200; ++i) {
      if (*mount->PushedChangeCounter() != before) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  // The listener's first connection counts as a change: wait it out.
  (void)waits_for_change(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int64_t before = *mount->PushedChangeCounter();
  ASSERT_OK(other->SetTags(Entity::kEntry, f.id, {"good"}));
  EXPECT_TRUE(waits_for_change(before)) << "another session's tag edit was not notified";
  // Its own commits are not counted (the mount told its kernel itself).
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  before = *mount->PushedChangeCounter();
  ASSERT_OK(mount->SetTags(Entity::kEntry, f.id, {"bad"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(*mount->PushedChangeCounter(), before);
}

// CreateEntry reads its parent inside its INSERT (one round trip on
// PostgreSQL): the new entry joins the parent's image, takes the group of
// a setgid folder when an owner is given, and the refusals still say why.
TEST_P(CatalogTest, CreateEntryReadsItsParentInItsInsert) {
  World w = NewWorld();
  Entry shared;
  shared.parent_id = w.root.id;
  shared.name = "shared";
  shared.type = EntryType::kFolder;
  shared.mode = 02775;
  shared.uid = 1000;
  shared.gid = 4242;
  shared = MUST(c_->CreateEntry(shared));
  EXPECT_EQ(shared.image_id, w.image.id);
  EXPECT_EQ(shared.gid, 4242);
  auto file_in = [&](int64_t parent, const std::string& name, int64_t gid) {
    Entry e;
    e.parent_id = parent;
    e.name = name;
    e.type = EntryType::kFile;
    e.hash = HashN(1);
    e.uid = gid < 0 ? -1 : 1001;
    e.gid = gid;
    return c_->CreateEntry(e);
  };
  EXPECT_EQ(MUST(file_in(shared.id, "a", 1001)).gid, 4242);         // the setgid folder's group
  EXPECT_EQ(MUST(file_in(shared.id, "b", -1)).gid, -1);             // no owner given: none
  EXPECT_EQ(MUST(file_in(w.root.id, "c", 1001)).gid, 1001);         // an ordinary folder
  EXPECT_EQ(MUST(file_in(w.root.id, "d", 4000000000)).gid, 4000000000);  // gids past 2^31
  EXPECT_EQ(MUST(file_in(shared.id, "a2", 1001)).image_id, w.image.id);
  EXPECT_EQ(Scalar(NameN("SELECT subfolders FROM entry WHERE id = ", w.root.id)), 1);
  // Refusals: the name taken, no such parent, a parent that is a file.
  EXPECT_CODE(file_in(shared.id, "a", 1001), Code::kAlreadyExists);
  EXPECT_CODE(file_in(987654, "x", 1001), Code::kReferenceMissing);
  Entry a = MUST(c_->EntryByName(shared.id, "a"));
  auto under_file = file_in(a.id, "x", 1001);
  EXPECT_CODE(under_file, Code::kInvalidArgument);
  EXPECT_THAT(under_file.status().message(), HasSubstr("not a folder"));
}

// The committer's record of a closed version: one statement, no read.
TEST_P(CatalogTest, RecordFileVersionWritesTheVersionOrReportsTheFileGone) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "frame.tif");
  ASSERT_EQ(f.mode & 07777, 0644);
  const int64_t ctime_before = f.ctime_ns;
  // A chmod carried by the version, and a ctime later than the record's.
  EXPECT_TRUE(MUST(c_->RecordFileVersion(f.id, HashN(7), 65536, 1234567890, 0600, ctime_before + 1000)));
  Entry e = MUST(c_->EntryById(f.id));
  EXPECT_EQ(e.hash, HashN(7));
  EXPECT_EQ(e.size, 65536u);
  EXPECT_EQ(e.mtime_ns, 1234567890);
  EXPECT_EQ(e.mode & 07777, 0600);
  EXPECT_EQ(e.ctime_ns, ctime_before + 1000);
  EXPECT_EQ(e.name, "frame.tif");
  EXPECT_EQ(e.kind, f.kind);
  // No mode: kept. An earlier ctime than the record's: the record's stays.
  EXPECT_TRUE(MUST(c_->RecordFileVersion(f.id, HashN(8), 5, 42, -1, 1)));
  e = MUST(c_->EntryById(f.id));
  EXPECT_EQ(e.hash, HashN(8));
  EXPECT_EQ(e.size, 5u);
  EXPECT_EQ(e.mode & 07777, 0600);
  EXPECT_EQ(e.ctime_ns, ctime_before + 1000);
  // Gone, or not a file: false, and nothing written.
  EXPECT_FALSE(MUST(c_->RecordFileVersion(987654, HashN(9), 1, 1, -1, 0)));
  EXPECT_FALSE(MUST(c_->RecordFileVersion(w.root.id, HashN(9), 1, 1, -1, 0)));
  EXPECT_EQ(MUST(c_->EntryById(w.root.id)).type, EntryType::kFolder);
  EXPECT_CODE(c_->RecordFileVersion(f.id, "not a hash", 1, 1, -1, 0), Code::kInvalidArgument);
  EXPECT_EQ(MUST(c_->EntryById(f.id)).hash, HashN(8));
}

TEST_P(CatalogTest, MoveEntryIsAtomic) {
  World w = NewWorld();
  Image other = NewImage("img1", w.slide.id);
  Entry other_root = MUST(c_->FilesRoot(other.id));
  Entry dir = NewFolder(w.root.id, "dir");
  Entry deep = NewFile(dir.id, "deep");
  Entry empty_target = NewFolder(other_root.id, "dir");
  {
    // The replaced folder is deleted and the folder moved, then updating
    // the image of its subtree fails.
    InjectedFailure fail(*c_, "UPDATE OF image_id ON entry", NameN("NEW.id = ", deep.id));
    EXPECT_FALSE(c_->MoveEntry(dir.id, other_root.id, "dir", true).ok());
  }
  Entry d = MUST(c_->EntryById(dir.id));
  EXPECT_EQ(d.parent_id, w.root.id);
  EXPECT_EQ(d.image_id, w.image.id);
  EXPECT_EQ(MUST(c_->EntryById(deep.id)).image_id, w.image.id);
  EXPECT_OK(c_->EntryById(empty_target.id));  // the replaced folder is back
  // Without the failure the same move works.
  EXPECT_EQ(MUST(c_->MoveEntry(dir.id, other_root.id, "dir", true)), empty_target.id);
  EXPECT_EQ(MUST(c_->EntryById(deep.id)).image_id, other.id);
}

TEST_P(CatalogTest, DeleteWithChildrenDeletesNothing) {
  // kNotEmpty for every record kind that has children; each time the
  // parent and every child are still there.
  World w = NewWorld();
  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(l));
  Entry dir = NewFolder(w.root.id, "dir");
  NewFile(dir.id, "f");
  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "t"));
  const int64_t rows_before =
      Scalar("SELECT (SELECT count(*) FROM species) + (SELECT count(*) FROM sample) + "
             "(SELECT count(*) FROM dye) + (SELECT count(*) FROM slide) + "
             "(SELECT count(*) FROM labelling) + (SELECT count(*) FROM image) + "
             "(SELECT count(*) FROM entry) + (SELECT count(*) FROM tag) + "
             "(SELECT count(*) FROM tagging)");
  EXPECT_CODE(c_->DeleteSpecies(w.species.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteSample(w.sample.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteDye(w.dye.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteSlide(w.slide.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteImage(w.image.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteEntry(dir.id), Code::kNotEmpty);
  EXPECT_CODE(c_->DeleteTag(MUST(c_->TagByName("t")).id), Code::kNotEmpty);
  EXPECT_EQ(Scalar("SELECT (SELECT count(*) FROM species) + (SELECT count(*) FROM sample) + "
                   "(SELECT count(*) FROM dye) + (SELECT count(*) FROM slide) + "
                   "(SELECT count(*) FROM labelling) + (SELECT count(*) FROM image) + "
                   "(SELECT count(*) FROM entry) + (SELECT count(*) FROM tag) + "
                   "(SELECT count(*) FROM tagging)"),
            rows_before);
}

// ---------------------------------------------------------------------------
// Transactions.

TEST_P(CatalogTest, TransactionRollsBackUnlessCommitted) {
  {
    Transaction txn(*c_);
    ASSERT_OK(txn.status());
    NewSpecies("Rolled");
  }
  EXPECT_CODE(c_->SpeciesByName("Rolled"), Code::kNotFound);
  {
    Transaction txn(*c_);
    NewSpecies("Kept");
    ASSERT_OK(txn.Commit());
    EXPECT_CODE(txn.Commit(), Code::kInvalidArgument);  // only once
  }
  EXPECT_OK(c_->SpeciesByName("Kept"));
  // After all that, a plain call still works (depth back to 0).
  NewSpecies("After");
  EXPECT_EQ(MUST(c_->ListSpecies(0, 10)).size(), 2u);
}

TEST_P(CatalogTest, NestedTransactionsAreSavepoints) {
  {
    Transaction outer(*c_);
    NewSpecies("A");
    {
      Transaction inner(*c_);
      NewSpecies("B");
    }  // rolled back: B only
    {
      Transaction inner(*c_);
      NewSpecies("C");
      {
        Transaction innermost(*c_);
        NewSpecies("D");
        ASSERT_OK(innermost.Commit());
      }
      ASSERT_OK(inner.Commit());
    }
    EXPECT_CODE(c_->SpeciesByName("B"), Code::kNotFound);
    EXPECT_OK(c_->SpeciesByName("D"));
    ASSERT_OK(outer.Commit());
  }
  EXPECT_OK(c_->SpeciesByName("A"));
  EXPECT_CODE(c_->SpeciesByName("B"), Code::kNotFound);
  EXPECT_OK(c_->SpeciesByName("C"));
  EXPECT_OK(c_->SpeciesByName("D"));

  {
    Transaction outer(*c_);
    {
      Transaction inner(*c_);
      NewSpecies("E");
      ASSERT_OK(inner.Commit());
    }
  }  // the outer rollback undoes the committed savepoint too
  EXPECT_CODE(c_->SpeciesByName("E"), Code::kNotFound);
}

TEST_P(CatalogTest, FailedCallInsideATransactionUndoesOnlyItself) {
  World w = NewWorld();
  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(l));
  {
    Transaction txn(*c_);
    NewSpecies("Inside");
    Species dup = SpeciesRecord("Inside");
    EXPECT_CODE(c_->CreateSpecies(dup), Code::kAlreadyExists);
    Labelling bad = l;
    bad.dye_id = 31337;
    EXPECT_CODE(c_->ReplaceLabellings(w.slide.id, {bad}), Code::kReferenceMissing);
    Image orphan = ImageRecord("x", 31337);
    EXPECT_CODE(c_->CreateImage(orphan), Code::kReferenceMissing);
    NewSpecies("Also");
    ASSERT_OK(txn.Commit());
  }
  EXPECT_OK(c_->SpeciesByName("Inside"));
  EXPECT_OK(c_->SpeciesByName("Also"));
  auto ls = MUST(c_->LabellingsOfSlide(w.slide.id));
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].structure, "tubulin");
  EXPECT_EQ(Scalar("SELECT count(*) FROM image"), 1);
}

TEST_P(CatalogTest, TransactionHoldsOtherThreadsOff) {
  std::atomic<bool> done{false};
  std::thread other;
  {
    Transaction txn(*c_);
    NewSpecies("First");
    other = std::thread([&] {
      Species s = SpeciesRecord("Second");
      auto r = c_->CreateSpecies(s);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(done) << "another thread got in while a Transaction was open";
    ASSERT_OK(txn.Commit());
  }
  other.join();
  EXPECT_TRUE(done);
  auto all = MUST(c_->ListSpecies(0, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "First");
  EXPECT_EQ(all[1].name, "Second");
}

TEST_P(CatalogTest, ConcurrentWritersFromManyThreads) {
  World w = NewWorld();
  constexpr int kThreads = 4, kPerThread = 100;
  std::vector<int64_t> folders;
  for (int t = 0; t < kThreads; ++t) folders.push_back(NewFolder(w.root.id, NameN("t", t)).id);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Entry e = EntryRecord(folders[t], NameN("f", i));
        e.hash = HashN(static_cast<unsigned>(t * 1000 + i));
        if (!c_->CreateEntry(e).ok()) ++failures;
        if (!c_->EntryByName(folders[t], e.name).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(MUST(c_->CountEntries(folders[t])), kPerThread);
}

// ---------------------------------------------------------------------------
// Whole catalog.

TEST_P(CatalogTest, StatsCountEverything) {
  CatalogStats empty = MUST(c_->Stats());
  EXPECT_EQ(empty.species, 0);
  EXPECT_EQ(empty.files, 0);
  EXPECT_EQ(empty.folders, 0);
  EXPECT_EQ(empty.file_bytes, 0);

  World w = NewWorld();
  World w2 = NewWorld("-2");
  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(l));
  Entry dir = NewFolder(w.root.id, "dir");
  NewFile(w.root.id, "a", 1, 1000);
  NewFile(dir.id, "a-copy", 1, 1000);  // same content: one object
  NewFile(w2.root.id, "b", 2, 24);
  NewFile(w2.root.id, "empty", 3, 0);
  NewSymlink(dir.id, "l", "../a");
  ASSERT_OK(c_->AddTag(Entity::kSlide, w.slide.id, "good"));
  MUST(c_->CreateTag("unused"));
  ASSERT_OK(c_->SetAnnotation(Entity::kImage, w.image.id, "k", "v"));
  ASSERT_OK(c_->SetAnnotation(Entity::kImage, w.image.id, "k2", "v"));

  CatalogStats s = MUST(c_->Stats());
  EXPECT_EQ(s.species, 2);
  EXPECT_EQ(s.samples, 2);
  EXPECT_EQ(s.dyes, 2);
  EXPECT_EQ(s.slides, 2);
  EXPECT_EQ(s.labellings, 1);
  EXPECT_EQ(s.images, 2);
  EXPECT_EQ(s.files, 4);
  EXPECT_EQ(s.folders, 1);  // image roots are not counted
  EXPECT_EQ(s.symlinks, 1);
  EXPECT_EQ(s.tags, 2);
  EXPECT_EQ(s.annotations, 2);
  EXPECT_EQ(s.file_bytes, 2024);
  EXPECT_EQ(s.distinct_objects, 3);
  EXPECT_EQ(s.distinct_bytes, 1024);

  // What statfs reports: the same object bytes; records are 8 entries
  // (2 image roots, a folder, 4 files, a symlink), 2 each of images,
  // slides, samples, species, dyes and tags.
  CatalogUsage u = MUST(c_->Usage());
  EXPECT_EQ(u.object_bytes, s.distinct_bytes);
  EXPECT_EQ(u.records, 20);
  EXPECT_EQ(s.trash_items, 0);
  EXPECT_TRUE(MUST(c_->TrashUids()).empty());

  // The trash is counted apart (issue 17): dir (a-copy and l) and b, for
  // two uids; the objects stay stored.
  MUST(c_->TrashEntry(dir.id, 1000, "dir", "slides/x/images/y/files/dir", "2026-01-01T00:00:00"));
  Entry b = MUST(c_->EntryByName(w2.root.id, "b"));
  MUST(c_->TrashEntry(b.id, 7, "b", "slides/x/images/y/files/b", "2026-01-01T00:00:00"));
  CatalogStats t = MUST(c_->Stats());
  EXPECT_EQ(t.files, 2);
  EXPECT_EQ(t.folders, 0);
  EXPECT_EQ(t.symlinks, 0);
  EXPECT_EQ(t.file_bytes, 1000);
  EXPECT_EQ(t.trash_items, 2);
  EXPECT_EQ(t.trashed_files, 2);
  EXPECT_EQ(t.trashed_folders, 1);
  EXPECT_EQ(t.trashed_symlinks, 1);
  EXPECT_EQ(t.trashed_bytes, 1024);
  EXPECT_EQ(t.distinct_bytes, s.distinct_bytes);
  EXPECT_EQ(MUST(c_->TrashUids()), (std::vector<int64_t>{7, 1000}));
}

// Ids are node ids, open-file keys and export keys: the id of a deleted
// newest record must not come back (SQLite's plain INTEGER PRIMARY KEY
// would hand out max(id) + 1 again). Found by tests/stress/difftest.py: a
// file unlinked while open, then a new folder took its id, and the open
// descriptor's reads and writes reached the folder.
TEST_P(CatalogTest, IdsOfDeletedNewestRecordsAreNeverReused) {
  World w = NewWorld();
  Entry f = NewFile(w.root.id, "f");
  ASSERT_OK(c_->DeleteEntry(f.id));
  Entry dir = NewFolder(w.root.id, "d");
  EXPECT_GT(dir.id, f.id);

  Species sp = NewSpecies("Gone");
  ASSERT_OK(c_->DeleteSpecies(sp.id));
  EXPECT_GT(NewSpecies("Next").id, sp.id);
  Dye dye = NewDye("Gone");
  ASSERT_OK(c_->DeleteDye(dye.id));
  EXPECT_GT(NewDye("Next").id, dye.id);
  Tag tag = MUST(c_->CreateTag("gone"));
  ASSERT_OK(c_->DeleteTag(tag.id));
  EXPECT_GT(MUST(c_->CreateTag("next")).id, tag.id);

  // A cascade (the image's files/ root goes with the image) counts too.
  Image img = NewImage("gone", w.slide.id);
  Entry root = MUST(c_->FilesRoot(img.id));
  ASSERT_OK(c_->DeleteImage(img.id));
  Image img2 = NewImage("next", w.slide.id);
  EXPECT_GT(img2.id, img.id);
  EXPECT_GT(MUST(c_->FilesRoot(img2.id)).id, root.id);

  // And across a reopen: the floor is stored in the catalog.
  Entry last = NewFile(w.root.id, "last");
  ASSERT_OK(c_->DeleteEntry(last.id));
  if (GetParam().file_backed || postgres()) Reopen();
  EXPECT_GT(NewFile(w.root.id, "after").id, last.id);
}

TEST_P(CatalogTest, ForEachReferencedHashVisitsEachObjectOnce) {
  World w = NewWorld();
  World w2 = NewWorld("-2");
  // More distinct objects than any sensible page, to cross page boundaries.
  std::set<std::string> expected;
  {
    Transaction txn(*c_);
    for (unsigned i = 0; i < 2500; ++i) {
      NewFile(i % 2 ? w.root.id : w2.root.id, NameN("f", i), i % 2100);
      expected.insert(HashN(i % 2100));
    }
    NewFolder(w.root.id, "dir");
    NewSymlink(w.root.id, "link", "f1");
    ASSERT_OK(txn.Commit());
  }
  std::multiset<std::string> seen;
  ASSERT_OK(c_->ForEachReferencedHash([&](const std::string& h) {
    seen.insert(h);
    // The callback may use the catalog (gc looks things up).
    auto files = c_->CountEntries(w.root.id);
    return files.status();
  }));
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), expected);

  // An error from the callback stops the walk and comes back.
  int calls = 0;
  Status s = c_->ForEachReferencedHash([&](const std::string&) {
    return ++calls == 3 ? Status(Code::kIo, "stop here") : Status::Ok();
  });
  EXPECT_CODE(s, Code::kIo);
  EXPECT_EQ(s.message(), "stop here");
  EXPECT_EQ(calls, 3);
}

// The views of docs/SCHEMA.md: their columns are an interface (analysis
// scripts select them by name), so they are pinned here.
TEST_P(CatalogTest, AnalysisViews) {
  EXPECT_EQ(Columns("entry_path"), "id,path");
  EXPECT_EQ(Columns("slide_info"),
            "slide_id,slide,sample,sample_type,patient_id,species,organism,strain,creator,notes,"
            "created,modified,labellings,tags");
  EXPECT_EQ(Columns("image_info"),
            "image_id,image,user,acquired,comments,slide_id,slide,sample,sample_type,patient_id,"
            "species,organism,strain,creator,notes,created,modified,labellings,tags,image_tags");
  EXPECT_EQ(Columns("file_info"),
            "file_id,path,size,hash,mode,mtime_ns,kind,file_tags,image_id,image,user,acquired,"
            "comments,slide_id,slide,sample,sample_type,patient_id,species,organism,strain,creator,"
            "notes,created,modified,labellings,tags,image_tags,mount_path");  // mount_path: v3
  EXPECT_EQ(Columns("labelling_info"),
            "labelling_id,slide_id,slide,sample,species,structure,isotype,antibody,dye,dye_long_name");

  World w = NewWorld();
  Dye a488 = NewDye("A488");
  Labelling l = LabellingRecord(w.slide.id, "tubulin", w.dye.id);
  MUST(c_->AddLabelling(l));
  l.structure = "actin";
  l.dye_id = a488.id;
  MUST(c_->AddLabelling(l));
  ASSERT_OK(c_->SetTags(Entity::kSlide, w.slide.id, {"good", "archived"}));
  ASSERT_OK(c_->SetTags(Entity::kImage, w.image.id, {"best"}));
  Slide bare = NewSlide("S-bare", w.sample.id);  // no images, labellings or tags
  Entry pos = NewFolder(w.root.id, "Pos0");
  Entry sub = NewFolder(pos.id, "sub dir");
  Entry deep = NewFile(sub.id, "b.tif", 7, 4096);
  Entry top = NewFile(w.root.id, "a.csv", 8, 12);
  NewSymlink(pos.id, "link", "sub dir/b.tif");
  NewFolder(w.root.id, "empty");
  ASSERT_OK(c_->AddTag(Entity::kEntry, deep.id, "checked"));

  EXPECT_EQ(Scalar("SELECT count(*) FROM file_info"), 2);  // files only
  EXPECT_EQ(Scalar("SELECT count(*) FROM entry_path"), 6);  // every entry below files/
  EXPECT_EQ(Row(NameN("SELECT path FROM entry_path WHERE id = ", sub.id), 1), "Pos0/sub dir");
  const std::string deep_row =
      NameN("SELECT path, size, hash, mtime_ns, kind, file_tags, image, slide, sample, species, "
            "organism, labellings, tags, image_tags FROM file_info WHERE file_id = ", deep.id);
  EXPECT_EQ(Row(deep_row, 14), "Pos0/sub dir/b.tif|4096|" + HashN(7) +
                                   "|1700000000123456789|other|checked|img0|S-001|P12|HeLa|Human|"
                                   "tubulin:A647;actin:A488|archived,good|best");
  EXPECT_EQ(Row(NameN("SELECT path, file_tags FROM file_info WHERE file_id = ", top.id), 2),
            "a.csv|NULL");
  EXPECT_EQ(Scalar("SELECT count(*) FROM slide_info"), 2);
  EXPECT_EQ(Row("SELECT slide, labellings, tags FROM slide_info WHERE slide_id = " +
                    std::to_string(bare.id), 3),
            "S-bare|NULL|NULL");
  EXPECT_EQ(Scalar("SELECT count(*) FROM image_info"), 1);

  // Views follow renames and moves at once: nothing is denormalized.
  Image other = NewImage("img1", bare.id);
  ASSERT_OK(c_->MoveEntry(pos.id, MUST(c_->FilesRoot(other.id)).id, "Moved", false).status());
  EXPECT_EQ(Row("SELECT path, image, slide, labellings FROM file_info WHERE file_id = " +
                    std::to_string(deep.id), 4),
            "Moved/sub dir/b.tif|img1|S-bare|NULL");
}

TEST_P(CatalogTest, DeletingAnImageCleansUpItsRootsTagsToo) {
  World w = NewWorld();
  ASSERT_OK(c_->AddTag(Entity::kEntry, w.root.id, "root-tag"));
  ASSERT_OK(c_->SetAnnotation(Entity::kEntry, w.root.id, "k", "v"));
  ASSERT_OK(c_->AddTag(Entity::kImage, w.image.id, "image-tag"));
  ASSERT_OK(c_->DeleteImage(w.image.id));
  EXPECT_EQ(Scalar("SELECT count(*) FROM tagging"), 0);
  EXPECT_EQ(Scalar("SELECT count(*) FROM annotation"), 0);
}

TEST_P(CatalogTest, SchemaVersionIsCurrent) {
  EXPECT_EQ(c_->schema_version(), kSchemaVersion);
  if (postgres()) {
    EXPECT_EQ(c_->db().engine(), "postgresql");
    return;
  }
  EXPECT_EQ(c_->db().engine(), "sqlite");
  EXPECT_EQ(Scalar("PRAGMA foreign_keys"), 1);
}

TEST_P(CatalogTest, DatabaseSeamErrors) {
  // SQL that does not compile is a programming error: kInvalidArgument,
  // with the statement in the message.
  auto st = c_->db().Prepare("SELEKT 1");
  EXPECT_REFUSED(st, Code::kInvalidArgument, "SELEKT 1");
  EXPECT_CODE(c_->db().Prepare("SELECT * FROM no_such_table"), Code::kInvalidArgument);
  // The same statement is prepared once and reused.
  auto a = MUST(c_->db().Prepare("SELECT count(*) FROM species"));
  auto b = MUST(c_->db().Prepare("SELECT count(*) FROM species"));
  EXPECT_EQ(a, b);
  // Constraint errors of the engine map to the catalog's codes.
  World w = NewWorld();
  EXPECT_CODE(c_->db().Exec("INSERT INTO species(name) VALUES ('HeLa')"), Code::kAlreadyExists);
  EXPECT_CODE(c_->db().Exec("INSERT INTO sample(name, species_id) VALUES ('x', 999)"),
              Code::kReferenceMissing);
  EXPECT_CODE(c_->db().Exec("INSERT INTO entry(image_id, parent_id, name, type, mode, mtime_ns) "
                            "VALUES (1, 1, 'x', 'socket', 0, 0)"),
              Code::kInvalidArgument);
}

}  // namespace
}  // namespace samplefs

namespace samplefs {
namespace {

// A newer schema is refused by every engine, and nothing is written to it.
TEST_P(CatalogTest, NewerSchemaIsRefused) {
  if (!GetParam().file_backed && !postgres()) GTEST_SKIP() << "needs a catalog that outlives a connection";
  ASSERT_OK(c_->db().Exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'"));
  c_.reset();
  auto r = Catalog::OpenUrl(postgres() ? url_ : dir_ + "/catalog.db");
  EXPECT_REFUSED(r, Code::kTooNew, "schema version 99");
}

// Ids are never reused: on PostgreSQL they come from sequences, so even a
// rolled-back insert's id is never handed out again.
TEST_P(CatalogTest, IdsComeFromTheEngine) {
  Species a = NewSpecies("A");
  {
    Transaction txn(*c_);
    NewSpecies("rolled back");
  }
  Species b = NewSpecies("B");
  EXPECT_GT(b.id, a.id);
  ASSERT_OK(c_->DeleteSpecies(b.id));
  EXPECT_GT(NewSpecies("C").id, b.id);
}

TEST(CatalogUrlTest, PasswordsNeverShow) {
  EXPECT_EQ(RedactCatalogUrl("postgresql://lab:s3cret@db.example:5432/samplefs?sslmode=require"),
            "postgresql://lab:***@db.example:5432/samplefs?sslmode=require");
  EXPECT_EQ(RedactCatalogUrl("postgres://lab@db/x?sslmode=verify-full&password=s3cret&application_name=a"),
            "postgres://lab@db/x?sslmode=verify-full&password=***&application_name=a");
  EXPECT_EQ(RedactCatalogUrl("postgresql://lab@db/x?PASSWORD=s3cret"), "postgresql://lab@db/x?password=***");
  EXPECT_EQ(RedactCatalogUrl("postgresql:///x?host=/run/postgresql"), "postgresql:///x?host=/run/postgresql");
  EXPECT_EQ(RedactCatalogUrl("/home/lab/catalog.db"), "/home/lab/catalog.db");
  EXPECT_EQ(SqlitePathOf("sqlite:///home/lab/catalog.db"), "/home/lab/catalog.db");
  EXPECT_EQ(SqlitePathOf("/home/lab/catalog.db"), "/home/lab/catalog.db");
  EXPECT_TRUE(IsPostgresUrl("postgresql://x"));
  EXPECT_FALSE(IsPostgresUrl("sqlite:///x"));
}

// An unreachable server is a clear error (ECONNREFUSED), whose message
// does not contain the password.
TEST(CatalogUrlTest, UnreachableServerSaysSoWithoutThePassword) {
  DatabaseOptions o;
  o.busy_timeout_ms = 1000;
  auto r = OpenDatabase("postgresql://lab:s3cret@/x?host=/nonexistent-samplefs-socket-dir", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().to_errno(), ECONNREFUSED);
  EXPECT_THAT(r.status().message(), HasSubstr("unreachable"));
  EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr("s3cret")));
}

// Live mounts (schema v4): register, heartbeat, list, end; a row removed
// behind the mount's back comes back at its next heartbeat.
TEST_P(CatalogTest, MountSessions) {
  int64_t a = MUST(RegisterMountSession(*c_, "lab-pc", 101, "/mnt/a", 1000));
  int64_t b = MUST(RegisterMountSession(*c_, "scope-2", 202, "/mnt/b", 1005));
  EXPECT_NE(a, b);
  auto all = MUST(ListMountSessions(*c_));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].host, "lab-pc");
  EXPECT_EQ(all[0].pid, 101);
  EXPECT_EQ(all[0].mountpoint, "/mnt/a");
  EXPECT_EQ(all[0].started, 1000);
  EXPECT_EQ(all[0].heartbeat, 1000);
  ASSERT_TRUE(HeartbeatMountSession(*c_, all[0], 1010).ok());
  EXPECT_EQ(MUST(ListMountSessions(*c_))[0].heartbeat, 1010);
  ASSERT_TRUE(DeleteMountSession(*c_, a).ok());
  ASSERT_TRUE(HeartbeatMountSession(*c_, all[0], 1020).ok());
  all = MUST(ListMountSessions(*c_));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_EQ(all[0].started, 1000);
  EXPECT_EQ(all[0].heartbeat, 1020);
  ASSERT_TRUE(EndMountSession(*c_, a).ok());
  ASSERT_TRUE(EndMountSession(*c_, b).ok());
  EXPECT_TRUE(MUST(ListMountSessions(*c_)).empty());
}

// gc's rule: now - grace, or a live mount's start - grace - 1 if earlier;
// sessions without a heartbeat for kLiveSessionSec do not count.
TEST(GcCutoff, LiveMountsMoveItBack) {
  const int64_t now = 100000;
  EXPECT_EQ(GcCutoff({}, now, 3600), now - 3600);
  EXPECT_EQ(GcCutoff({}, now, 0), now);
  MountSession live;
  live.started = now - 7200;
  live.heartbeat = now - 5;
  EXPECT_EQ(GcCutoff({live}, now, 3600), now - 7200 - 3600 - 1);
  EXPECT_EQ(GcCutoff({live}, now, 0), now - 7200 - 1);
  // Started after now - grace: the grace period is the tighter bound.
  MountSession recent = live;
  recent.started = now - 60;
  EXPECT_EQ(GcCutoff({recent}, now, 3600), now - 3600 - 60 - 1);
  EXPECT_EQ(GcCutoff({recent}, now, 0), now - 61);
  // The oldest live start wins.
  EXPECT_EQ(GcCutoff({recent, live}, now, 0), now - 7201);
  // No heartbeat for a minute: not live, ignored; stale after 5 minutes.
  MountSession dead = live;
  dead.heartbeat = now - kLiveSessionSec;
  EXPECT_FALSE(SessionIsLive(dead, now));
  EXPECT_FALSE(SessionIsStale(dead, now));
  EXPECT_EQ(GcCutoff({dead}, now, 0), now);
  dead.heartbeat = now - kStaleSessionSec - 1;
  EXPECT_TRUE(SessionIsStale(dead, now));
  EXPECT_TRUE(SessionIsLive(live, now));
}


// ---------------------------------------------------------------------------
// Reader connections (issue 14 item 5, docs/DECISIONS.md "Catalog readers").

// The write listener (Catalog::SetWriteListener: a mount drops the kernel's
// cached listings of generated directories there) runs once per write that
// ends, a Transaction's included (once, when it ends, not per statement),
// and never for a read, on the writer or on a reader.
TEST_P(CatalogTest, TheWriteListenerRunsOncePerWriteAndNeverForARead) {
  int calls = 0;
  c_->SetWriteListener([&] { ++calls; });
  World w = NewWorld();  // writes
  calls = 0;
  Species s;
  s.name = "Mouse";
  (void)MUST(c_->CreateSpecies(s));
  EXPECT_EQ(calls, 1);
  // A failed write counts too (it may have written part before failing).
  EXPECT_FALSE(c_->CreateSpecies(s).ok());
  EXPECT_EQ(calls, 2);
  {
    Transaction txn(*c_);
    ASSERT_OK(txn.status());
    Species a, b;
    a.name = "Rat";
    b.name = "Yeast";
    (void)MUST(c_->CreateSpecies(a));
    (void)MUST(c_->CreateSpecies(b));
    EXPECT_EQ(calls, 2) << "not before the transaction ends";
    ASSERT_OK(txn.Commit());
  }
  EXPECT_EQ(calls, 3);
  // Reads: without readers (on the writer, under its lock) and with them.
  for (int readers : {0, 2}) {
    if (readers) c_->EnableReaders(readers);
    calls = 0;
    (void)MUST(c_->SpeciesByName("Mouse"));
    (void)MUST(c_->Stats());
    (void)MUST(c_->ExternalChangeCounter());
    (void)MUST(c_->TrashUids());
    (void)MUST(c_->EntryById(w.root.id));
    EXPECT_GT(c_->schema_version(), 0);
    ASSERT_OK(c_->ForEachReferencedHash([](const std::string&) { return Status::Ok(); }));
    EXPECT_EQ(calls, 0) << "readers " << readers;
  }
  c_->SetWriteListener(nullptr);
  Species z;
  z.name = "Zebrafish";
  (void)MUST(c_->CreateSpecies(z));
  EXPECT_EQ(calls, 0);
}


// A read from a thread outside the transaction answers while another
// thread holds the writer in an open transaction, with the last committed
// state; the transaction's own thread reads its uncommitted changes; once
// committed, the next read anywhere sees them. Without readers the read
// waits on the catalog lock until the transaction ends (here: never, as
// the transaction waits for the read), so the bounded wait below fails.
TEST_P(CatalogTest, ReadsDoNotWaitBehindAnOpenTransaction) {
  auto [w, f] = WithReaders(4, "frame.tif", 100);
  ASSERT_OK(c_->SetTags(Entity::kEntry, f.id, {"old"}));
  ASSERT_OK(c_->SetAnnotation(Entity::kEntry, f.id, "stage", "before"));

  std::promise<void> written, read_done;
  auto txn_thread = std::async(std::launch::async, [&] {
    Transaction txn(*c_);
    EXPECT_OK(txn.status());
    Entry e = MUST(c_->EntryById(f.id));
    e.size = 200;
    e.hash = HashN(2);
    EXPECT_OK(c_->UpdateEntry(e));
    EXPECT_OK(c_->SetTags(Entity::kEntry, f.id, {"new"}));
    EXPECT_OK(c_->SetAnnotation(Entity::kEntry, f.id, "stage", "during"));
    // Read-your-writes inside the transaction: the writer answers.
    EXPECT_EQ(MUST(c_->EntryById(f.id)).size, 200u);
    EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ::testing::ElementsAre("new"));
    EXPECT_EQ(MUST(c_->Annotation(Entity::kEntry, f.id, "stage")), "during");
    written.set_value();
    // Hold the transaction open until the other thread has read (bounded,
    // so a catalog without readers fails the test instead of hanging).
    read_done.get_future().wait_for(std::chrono::seconds(10));
    EXPECT_OK(txn.Commit());
  });
  written.get_future().wait();

  if (can_have_readers()) {
    auto reads = std::async(std::launch::async, [&] {
      Entry e = MUST(c_->EntryById(f.id));
      Entry by_name = MUST(c_->EntryByName(w.root.id, "frame.tif"));
      auto listed = MUST(c_->ListEntries(w.root.id, 0, 10));
      auto tags = MUST(c_->TagsOf(Entity::kEntry, f.id));
      auto keys = MUST(c_->XattrKeysOf(Entity::kEntry, f.id));
      auto stage = MUST(c_->Annotation(Entity::kEntry, f.id, "stage"));
      return std::make_tuple(e.size, by_name.size, listed.size(), tags, keys.tags, stage);
    });
    ASSERT_EQ(reads.wait_for(std::chrono::seconds(5)), std::future_status::ready)
        << "a read waited behind another thread's open transaction";
    auto [size, by_name_size, listed, tags, key_tags, stage] = reads.get();
    // The last committed state, not the open transaction's.
    EXPECT_EQ(size, 100u);
    EXPECT_EQ(by_name_size, 100u);
    EXPECT_EQ(listed, 1u);
    EXPECT_THAT(tags, ::testing::ElementsAre("old"));
    EXPECT_THAT(key_tags, ::testing::ElementsAre("old"));
    EXPECT_EQ(stage, "before");
    EXPECT_GE(c_->readers_open(), 1);
  } else {
    // An in-memory SQLite catalog has no second connection: reads stay on
    // the writer (and wait for the transaction, as before).
    EXPECT_EQ(c_->readers_open(), 0);
  }
  read_done.set_value();
  txn_thread.get();

  // Committed: every read sees it at once (a reader's next statement
  // reads the newest snapshot), from this thread and from others.
  EXPECT_EQ(MUST(c_->EntryById(f.id)).size, 200u);
  EXPECT_THAT(MUST(c_->TagsOf(Entity::kEntry, f.id)), ::testing::ElementsAre("new"));
  auto other = std::async(std::launch::async, [&] { return MUST(c_->Annotation(Entity::kEntry, f.id, "stage")); });
  EXPECT_EQ(other.get(), "during");
  EXPECT_THAT(MUST(c_->ListTaggedEntries(MUST(c_->TagByName("new")).id, 0, 10)), ::testing::SizeIs(1));
  auto keys = MUST(c_->XattrKeysOf(Entity::kEntry, f.id));
  EXPECT_TRUE(keys.tagged);
  EXPECT_THAT(keys.tags, ::testing::ElementsAre("new"));
  EXPECT_THAT(keys.annotation_keys, ::testing::ElementsAre("stage"));
}

// Many threads reading at once while a writer commits one change after
// another: every read answers (no reader is shared by two threads, none is
// left mid-statement), sees a committed value, and the pool stays within
// its bound. A write through a reader connection is refused.
TEST_P(CatalogTest, ReadersServeManyThreadsWithinTheirBound) {
  if (!can_have_readers()) GTEST_SKIP() << "no readers for an in-memory catalog";
  auto [w, f] = WithReaders(3, "a.tif", 1);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread writer([&] {
    for (uint64_t size = 2; size <= 40; ++size) {
      Transaction txn(*c_);
      Entry e = MUST(c_->EntryById(f.id));
      e.size = size;
      EXPECT_OK(c_->UpdateEntry(e));
      EXPECT_OK(txn.Commit());
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t)
    readers.emplace_back([&] {
      uint64_t last = 0;
      for (int i = 0; !stop || i < 50; ++i) {  // some reads even if the writer is quick
        auto e = c_->EntryById(f.id);
        if (!e.ok() || e->size < last || e->size > 40) ++bad;
        else last = e->size;  // never goes back to an older commit
        if (!c_->ListEntries(w.root.id, 0, 10).ok()) ++bad;
        ++reads;
      }
    });
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_LE(c_->readers_open(), 3);
  EXPECT_EQ(MUST(c_->EntryById(f.id)).size, 40u);

  auto reader = c_->db().OpenReader();
  ASSERT_OK(reader.status());
  Status s = (*reader)->Exec("DELETE FROM tag");
  EXPECT_FALSE(s.ok());
}

// A PostgreSQL reader whose session ended while it sat idle in the pool
// (the server restarted, or ended it) answers the next read on a new
// session, as the writer does once the server is back. Without the retry,
// the first read on each idle reader after a restart failed ("server
// closed the connection unexpectedly": ECONNREFUSED for an ls), up to one
// failure per reader of the mount.
TEST_P(CatalogTest, PostgresReaderReconnectsAfterItsSessionEnded) {
  if (!postgres()) GTEST_SKIP() << "PostgreSQL sessions only";
  // The sessions of this database (other tests' schemas share it).
  auto sessions = [&] {
    std::set<int64_t> pids;
    Statement* st = MUST(c_->db().Prepare(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"));
    StatementScope scope(*st);
    while (MUST(st->Step())) pids.insert(st->Int(0));
    return pids;
  };
  const std::set<int64_t> before = sessions();
  auto [w, f] = WithReaders(1, "a.tif", 7);
  // Reads outside any transaction opened the reader; it sits idle in the pool.
  ASSERT_EQ(MUST(c_->EntryById(f.id)).size, 7u);
  ASSERT_EQ(c_->readers_open(), 1);
  std::vector<int64_t> reader;
  for (int64_t pid : sessions())
    if (!before.count(pid)) reader.push_back(pid);
  ASSERT_EQ(reader.size(), 1u);
  // End the reader's session, as a server restart does, and wait until
  // it is gone.
  ASSERT_OK(c_->db().Exec("SELECT pg_terminate_backend(" + std::to_string(reader[0]) + ")"));
  for (int i = 0; i < 100 && sessions().count(reader[0]); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(sessions().count(reader[0]));
  auto again = c_->EntryById(f.id);
  ASSERT_OK(again.status());
  EXPECT_EQ(again->size, 7u);
  EXPECT_EQ(MUST(c_->ListEntries(w.root.id, 0, 10)).size(), 1u);
  EXPECT_EQ(c_->readers_open(), 1);
}

}  // namespace
}  // namespace samplefs
