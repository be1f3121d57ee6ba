// Publish cost of the object store against a plain write + fsync.
//
// Both benchmarks write 1 GiB in 1 MiB chunks to the same filesystem (a
// store under $SAMPLEFS_BENCH_DIR, default /var/tmp) and make it durable.
// Every iteration writes different bytes, so ObjectWriter never takes the
// deduplication path, and the file of the previous iteration is removed
// outside the timed region. Target (tests/bench/README.md): publishing
// costs at most 10% more time than the plain write + fsync.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "catalog/object_store.h"

namespace samplefs {
namespace {

constexpr uint64_t kChunk = uint64_t{1} << 20;
constexpr uint64_t kTotal = uint64_t{1} << 30;
int g_seed = 0;  // bumped per iteration so no two files are equal

std::string BenchDir() {
  const char* d = std::getenv("SAMPLEFS_BENCH_DIR");
  std::string base = d && *d ? d : "/var/tmp";
  return base + "/samplefs_object_store_bench";
}

// Cheap deterministic data: a counter pattern that differs per chunk and
// per iteration.
void FillChunk(std::vector<uint64_t>& chunk, uint64_t index) {
  const uint64_t tag = (static_cast<uint64_t>(g_seed) << 48) | (index << 24);
  for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = tag | j;
}

std::unique_ptr<ObjectStore> OpenStore(benchmark::State& state) {
  auto store = ObjectStore::Open(BenchDir());
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return nullptr;
  }
  return std::move(store).value();
}

struct Phases {
  double write_s = 0;    // the Write()/write() calls
  double durable_s = 0;  // Publish() (fsync, hash digest, link, dir fsync) or fsync()
};

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// One 1 GiB object written in order and published.
Status PublishOnce(ObjectStore& store, std::vector<uint64_t>& chunk, Phases* ph, ContentHash* hash) {
  ++g_seed;
  const auto t0 = std::chrono::steady_clock::now();
  SFS_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, store.NewWriter());
  for (uint64_t off = 0, i = 0; off < kTotal; off += kChunk, ++i) {
    FillChunk(chunk, i);
    SFS_RETURN_IF_ERROR(writer->Write(chunk.data(), kChunk, off));
  }
  ph->write_s += Since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  SFS_ASSIGN_OR_RETURN(PublishedObject pub, writer->Publish());
  ph->durable_s += Since(t1);
  *hash = pub.hash;
  return Status::Ok();
}

// The same bytes with plain write() + fsync(), for comparison.
Status PlainOnce(const std::string& path, std::vector<uint64_t>& chunk, Phases* ph) {
  ++g_seed;
  const auto t0 = std::chrono::steady_clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  for (uint64_t off = 0, i = 0; off < kTotal; off += kChunk, ++i) {
    FillChunk(chunk, i);
    const char* p = reinterpret_cast<const char*>(chunk.data());
    for (size_t done = 0; done < kChunk;) {
      ssize_t n = ::write(fd, p + done, kChunk - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = n < 0 ? errno : EIO;
        ::close(fd);
        return Status::FromErrno(err, "write " + path);
      }
      done += static_cast<size_t>(n);
    }
  }
  ph->write_s += Since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  ph->durable_s += Since(t1);
  if (rc != 0) return Status::FromErrno(err, "fsync " + path);
  return Status::Ok();
}

void ReportPhases(benchmark::State& state, const Phases& ph, const char* durable_name) {
  const double n = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kTotal));
  state.counters["write_ms"] = benchmark::Counter(ph.write_s * 1e3 / n);
  state.counters[durable_name] = benchmark::Counter(ph.durable_s * 1e3 / n);
}

// The first gigabyte a process writes is slower on this VM (guest memory
// touched for the first time), so each benchmark runs one untimed round
// before measuring.
void BM_PublishViaObjectWriter(benchmark::State& state) {
  auto store = OpenStore(state);
  if (!store) return;
  std::vector<uint64_t> chunk(kChunk / sizeof(uint64_t));
  Phases warmup, ph;
  ContentHash hash;
  Status st = PublishOnce(*store, chunk, &warmup, &hash);
  if (st.ok()) st = store->Remove(hash);
  if (!st.ok()) {
    state.SkipWithError(st.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    st = PublishOnce(*store, chunk, &ph, &hash);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
    state.PauseTiming();
    (void)store->Remove(hash);
    state.ResumeTiming();
  }
  ReportPhases(state, ph, "publish_ms");
}

void BM_PlainWriteFsync(benchmark::State& state) {
  auto store = OpenStore(state);  // same filesystem and tree as the store
  if (!store) return;
  const std::string path = store->root() + "/staging/plain_write_bench.dat";
  std::vector<uint64_t> chunk(kChunk / sizeof(uint64_t));
  Phases warmup, ph;
  Status st = PlainOnce(path, chunk, &warmup);
  ::unlink(path.c_str());
  if (!st.ok()) {
    state.SkipWithError(st.ToString().c_str());
    return;
  }
  for (auto _ : state) {
    st = PlainOnce(path, chunk, &ph);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
    state.PauseTiming();
    ::unlink(path.c_str());
    state.ResumeTiming();
  }
  ReportPhases(state, ph, "fsync_ms");
}

BENCHMARK(BM_PlainWriteFsync)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PublishViaObjectWriter)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace samplefs

BENCHMARK_MAIN();
