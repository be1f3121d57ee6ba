// Access times of reads (issue 18 point 1), relatime-style: a read moves a
// file's atime to now only when the atime is not newer than its mtime or
// ctime, or is a day old; the new atime is kept here in memory and written
// to the catalog in batches (one transaction every kFlushInterval, and at
// unmount), never one catalog write per read. Until written, every answer
// with attributes takes it from here (OverlayLiveAttr, NodeAttr), so all
// the paths of a file agree. A noatime or read-only mount records none.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "catalog/catalog.h"

namespace samplefs::fs {

class AtimeBook {
 public:
  static constexpr std::chrono::seconds kFlushInterval{5};
  // How long the periodic flush waits for another process's write lock
  // before it leaves the atimes pending for the next round: briefly, so
  // that a locked catalog never holds up the operations behind it (the
  // flush at unmount waits the full busy timeout).
  static constexpr int kBackgroundWaitMs = 200;
  static constexpr int64_t kDayNs = int64_t{86400} * 1000000000;

  // `enabled` false (noatime, ro): Accessed never records anything.
  // Start() the writing thread (SetAtime needs it even then).
  AtimeBook(Catalog& catalog, bool enabled) : catalog_(catalog), enabled_(enabled) {}
  ~AtimeBook() { Stop(); }
  AtimeBook(const AtimeBook&) = delete;
  AtimeBook& operator=(const AtimeBook&) = delete;

  // relatime's rule: whether a read at `now_ns` moves an atime.
  static bool Due(int64_t atime_ns, int64_t mtime_ns, int64_t ctime_ns, int64_t now_ns) {
    return atime_ns <= mtime_ns || atime_ns <= ctime_ns || now_ns - atime_ns >= kDayNs;
  }

  bool enabled() const { return enabled_; }
  // A read of entry `id` whose record (or open file) shows these times:
  // records now as its atime if due. Returns whether it did (the caller
  // then drops the attributes the kernel caches for the file's inodes).
  bool Accessed(int64_t id, int64_t atime_ns, int64_t mtime_ns, int64_t ctime_ns);
  // utimensat of a file whose version is still pending: its atime waits
  // here too (written with the next batch), whatever the mount's options.
  void Set(int64_t id, int64_t atime_ns);
  // The atime not yet written for `id`, if any.
  std::optional<int64_t> Pending(int64_t id);
  bool Empty() const { return count_.load(std::memory_order_relaxed) == 0; }
  // utimensat set the atime itself (in the catalog): a pending read's
  // must not overwrite it later.
  void Forget(int64_t id);

  // Starts the thread that writes pending atimes every kFlushInterval.
  void Start();
  // Writes what is pending (one transaction); kept for the next round if
  // the catalog refuses (locked).
  Status Flush(int wait_ms = -1);
  // Stops the thread after a last Flush (unmount).
  void Stop();

 private:
  Catalog& catalog_;
  const bool enabled_;
  std::mutex mu_;
  std::unordered_map<int64_t, int64_t> pending_;  // GUARDED_BY(mu_) entry id -> atime
  std::atomic<size_t> count_{0};
  std::mutex flush_mu_;  // one Flush at a time
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace samplefs::fs
