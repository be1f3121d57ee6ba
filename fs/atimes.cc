#include "fs/atimes.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <vector>

namespace samplefs::fs {

namespace {
int64_t WallNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

bool AtimeBook::Accessed(int64_t id, int64_t atime_ns, int64_t mtime_ns, int64_t ctime_ns) {
  if (!enabled_) return false;
  const int64_t now = WallNs();
  std::lock_guard lock(mu_);
  auto it = pending_.find(id);
  if (it != pending_.end()) atime_ns = it->second;
  if (!Due(atime_ns, mtime_ns, ctime_ns, now)) return false;
  pending_[id] = now;
  count_.store(pending_.size(), std::memory_order_relaxed);
  return true;
}

void AtimeBook::Set(int64_t id, int64_t atime_ns) {
  std::lock_guard lock(mu_);
  pending_[id] = atime_ns;
  count_.store(pending_.size(), std::memory_order_relaxed);
}

std::optional<int64_t> AtimeBook::Pending(int64_t id) {
  if (Empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  return it->second;
}

void AtimeBook::Forget(int64_t id) {
  if (Empty()) return;
  std::lock_guard lock(mu_);
  pending_.erase(id);
  count_.store(pending_.size(), std::memory_order_relaxed);
}

Status AtimeBook::Flush(int wait_ms) {
  std::lock_guard flush_lock(flush_mu_);
  std::vector<std::pair<int64_t, int64_t>> batch;
  {
    std::lock_guard lock(mu_);
    batch.assign(pending_.begin(), pending_.end());
  }
  if (batch.empty()) return Status::Ok();
  // The values stay pending (and shown from here) until written: a getattr
  // meanwhile reads either the book or the new record, never the old one.
  Status s = catalog_.SetAtimes(batch, wait_ms);
  if (!s.ok()) {
    spdlog::warn("access times of {} files not written yet: {}", batch.size(), s.message());
    return s;
  }
  std::lock_guard lock(mu_);
  for (const auto& [id, atime] : batch) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second == atime) pending_.erase(it);
  }
  count_.store(pending_.size(), std::memory_order_relaxed);
  return s;
}

void AtimeBook::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sfs-atimes");
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, kFlushInterval, [this] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      (void)Flush(kBackgroundWaitMs);
      lock.lock();
    }
  });
}

void AtimeBook::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)Flush();
}

}  // namespace samplefs::fs
