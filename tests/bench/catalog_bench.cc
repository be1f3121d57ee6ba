// Throughput of the catalog (SQLite, file-backed, WAL) for what a mount
// does most: record files (cp -r, rsync, acquisition software), look
// entries up by name and by id (every lookup/getattr), and list folders in
// pages (readdir).
//
// Catalogs live under $SAMPLEFS_BENCH_DIR (default /var/tmp), not /tmp,
// which may be a tmpfs: the figures are for a real disk. The 1,000,000-file
// catalog for the lookup benchmarks is built once per run, in one
// transaction, and removed at exit. Figures: tests/bench/README.md.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace samplefs {
namespace {

constexpr int kFolders = 100;
constexpr int kFilesPerFolder = 10000;  // 100 x 10,000 = 1,000,000 files

// A directory of this run's catalogs, removed with everything in it at exit.
const std::string& BenchDir() {
  struct Dir {
    std::string path;
    Dir() {
      const char* d = std::getenv("SAMPLEFS_BENCH_DIR");
      path = std::string(d && *d ? d : "/var/tmp") + "/samplefs_catalog_bench." +
             std::to_string(::getpid());
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

std::string HashOf(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

std::string FileName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "frame_%07d.tif", i);
  return buf;
}

void RemoveCatalog(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}

// A catalog with one species/sample/slide/image; returns the files/ root.
Result<int64_t> MakeImage(Catalog& c) {
  Species sp;
  sp.name = "HeLa";
  SFS_ASSIGN_OR_RETURN(sp, c.CreateSpecies(sp));
  Sample sa;
  sa.name = "P1";
  sa.species_id = sp.id;
  SFS_ASSIGN_OR_RETURN(sa, c.CreateSample(sa));
  Slide sl;
  sl.reference = "S1";
  sl.sample_id = sa.id;
  SFS_ASSIGN_OR_RETURN(sl, c.CreateSlide(sl));
  Image im;
  im.name = "img";
  im.slide_id = sl.id;
  SFS_ASSIGN_OR_RETURN(im, c.CreateImage(im));
  SFS_ASSIGN_OR_RETURN(Entry root, c.FilesRoot(im.id));
  return root.id;
}

Entry FileEntry(int64_t parent, int i) {
  Entry e;
  e.parent_id = parent;
  e.name = FileName(i);
  e.type = EntryType::kFile;
  e.size = 4u << 20;
  e.hash = HashOf(static_cast<uint64_t>(parent) << 32 | static_cast<uint32_t>(i));
  e.mtime_ns = 1700000000000000000 + i;
  e.kind = "raw";
  return e;
}

// --- inserts ---------------------------------------------------------------

// N file records under one image root, in one Transaction (cp -r of an
// acquisition folder committed as one unit).
void BM_InsertEntriesOneTransaction(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string path = BenchDir() + "/insert.db";
  for (auto _ : state) {
    state.PauseTiming();
    RemoveCatalog(path);
    auto c = Catalog::OpenSqlite(path);
    if (!c.ok()) return state.SkipWithError(c.status().ToString().c_str());
    auto root = MakeImage(**c);
    if (!root.ok()) return state.SkipWithError(root.status().ToString().c_str());
    state.ResumeTiming();
    {
      Transaction txn(**c);
      for (int i = 0; i < n; ++i) {
        auto e = (*c)->CreateEntry(FileEntry(*root, i));
        if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
      }
      Status s = txn.Commit();
      if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
    }
    state.PauseTiming();
    c->reset();
    state.ResumeTiming();
  }
  RemoveCatalog(path);
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_InsertEntriesOneTransaction)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

// The same, one commit per file (a tool that closes files one by one with
// no surrounding transaction): the cost of a WAL commit.
void BM_InsertEntriesCommitEach(benchmark::State& state) {
  const std::string path = BenchDir() + "/insert_each.db";
  RemoveCatalog(path);
  auto c = Catalog::OpenSqlite(path);
  if (!c.ok()) return state.SkipWithError(c.status().ToString().c_str());
  auto root = MakeImage(**c);
  if (!root.ok()) return state.SkipWithError(root.status().ToString().c_str());
  int i = 0;
  for (auto _ : state) {
    auto e = (*c)->CreateEntry(FileEntry(*root, i++));
    if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  c->reset();
  RemoveCatalog(path);
}
BENCHMARK(BM_InsertEntriesCommitEach)->Unit(benchmark::kMicrosecond)->UseRealTime();

// --- lookups on 1,000,000 files --------------------------------------------

struct BigCatalog {
  std::string path;
  std::unique_ptr<Catalog> catalog;
  std::vector<int64_t> folders;
  int64_t min_id = 0, max_id = 0;
  double build_seconds = 0;
  Status status;

  BigCatalog() {
    path = BenchDir() + "/lookup.db";
    RemoveCatalog(path);
    auto t0 = std::chrono::steady_clock::now();
    auto c = Catalog::OpenSqlite(path);
    if (!c.ok()) {
      status = c.status();
      return;
    }
    catalog = std::move(c).value();
    status = Build();
    build_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (status.ok())
      std::fprintf(stderr, "built a catalog of %d files in %.1f s\n", kFolders * kFilesPerFolder,
                   build_seconds);
  }
  ~BigCatalog() {
    catalog.reset();
    RemoveCatalog(path);
  }

  Status Build() {
    Transaction txn(*catalog);
    SFS_RETURN_IF_ERROR(txn.status());
    SFS_ASSIGN_OR_RETURN(int64_t root, MakeImage(*catalog));
    for (int f = 0; f < kFolders; ++f) {
      Entry dir;
      dir.parent_id = root;
      dir.name = "Pos" + std::to_string(f);
      dir.type = EntryType::kFolder;
      SFS_ASSIGN_OR_RETURN(dir, catalog->CreateEntry(dir));
      folders.push_back(dir.id);
      for (int i = 0; i < kFilesPerFolder; ++i) {
        SFS_ASSIGN_OR_RETURN(Entry e, catalog->CreateEntry(FileEntry(dir.id, i)));
        if (!min_id) min_id = e.id;
        max_id = e.id;
      }
    }
    return txn.Commit();
  }
};

BigCatalog& Big() {
  static BigCatalog big;
  return big;
}

void BM_EntryByName(benchmark::State& state) {
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> folder(0, kFolders - 1), file(0, kFilesPerFolder - 1);
  for (auto _ : state) {
    auto e = big.catalog->EntryByName(big.folders[folder(rng)], FileName(file(rng)));
    if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
    benchmark::DoNotOptimize(e->size);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EntryByName)->UseRealTime();

void BM_EntryByNameMissing(benchmark::State& state) {  // negative lookups (stat of new files)
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  std::mt19937_64 rng(43);
  std::uniform_int_distribution<int> folder(0, kFolders - 1), file(0, kFilesPerFolder - 1);
  for (auto _ : state) {
    auto e = big.catalog->EntryByName(big.folders[folder(rng)], FileName(file(rng)) + ".tmp");
    benchmark::DoNotOptimize(e.ok());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EntryByNameMissing)->UseRealTime();

void BM_EntryById(benchmark::State& state) {
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  std::mt19937_64 rng(44);
  std::uniform_int_distribution<int64_t> id(big.min_id, big.max_id);
  for (auto _ : state) {
    auto e = big.catalog->EntryById(id(rng));
    if (!e.ok()) return state.SkipWithError(e.status().ToString().c_str());
    benchmark::DoNotOptimize(e->size);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EntryById)->UseRealTime();

// Lists one 10,000-entry folder completely, `page` entries per call, as
// readdir does; items are entries listed.
void BM_ListEntriesPaging(benchmark::State& state) {
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  const int page = static_cast<int>(state.range(0));
  size_t f = 0;
  int64_t listed = 0;
  for (auto _ : state) {
    int64_t folder = big.folders[f++ % big.folders.size()];
    int64_t after = 0;
    for (;;) {
      auto entries = big.catalog->ListEntries(folder, after, page);
      if (!entries.ok()) return state.SkipWithError(entries.status().ToString().c_str());
      if (entries->empty()) break;
      listed += static_cast<int64_t>(entries->size());
      after = entries->back().id;
    }
  }
  if (listed != state.iterations() * kFilesPerFolder) state.SkipWithError("wrong count");
  state.SetItemsProcessed(listed);
}
BENCHMARK(BM_ListEntriesPaging)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// One row of the file_info view by id (what an analysis script joining on
// a file does), and a whole-catalog aggregate over it.
void BM_FileInfoOneRow(benchmark::State& state) {
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  std::mt19937_64 rng(45);
  std::uniform_int_distribution<int64_t> id(big.min_id, big.max_id);
  auto st = big.catalog->db().Prepare("SELECT path, slide, species FROM file_info WHERE file_id = ?");
  if (!st.ok()) return state.SkipWithError(st.status().ToString().c_str());
  for (auto _ : state) {
    StatementScope scope(**st);
    scope->Bind(1, id(rng));
    auto row = scope->Step();
    if (!row.ok() || !*row) return state.SkipWithError("no row");
    benchmark::DoNotOptimize(scope->Text(0));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FileInfoOneRow)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_FileInfoAllRows(benchmark::State& state) {
  BigCatalog& big = Big();
  if (!big.status.ok()) return state.SkipWithError(big.status.ToString().c_str());
  auto st = big.catalog->db().Prepare("SELECT count(*), sum(length(path)) FROM file_info");
  if (!st.ok()) return state.SkipWithError(st.status().ToString().c_str());
  for (auto _ : state) {
    StatementScope scope(**st);
    auto row = scope->Step();
    if (!row.ok() || !*row || scope->Int(0) != kFolders * kFilesPerFolder)
      return state.SkipWithError("wrong count");
  }
  state.SetItemsProcessed(state.iterations() * kFolders * kFilesPerFolder);
}
BENCHMARK(BM_FileInfoAllRows)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();

}  // namespace
}  // namespace samplefs

BENCHMARK_MAIN();
