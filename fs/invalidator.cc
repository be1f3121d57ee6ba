#include "fs/invalidator.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace samplefs::fs {

void Invalidator::Start(fuse_session* se, int poll_ms) {
  se_ = se;
  stop_ = false;
  thread_ = std::thread([this, poll_ms] { Run(poll_ms); });
}

void Invalidator::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Invalidator::PostEntry(fuse_ino_t parent, const std::string& name) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({true, parent, name});
  }
  cv_.notify_one();
}

void Invalidator::PostInode(fuse_ino_t ino) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({false, ino, {}});
  }
  cv_.notify_one();
}

void Invalidator::PostRecord(NodeKind kind, int64_t record_id) {
  for (const Node& n : nodes_.ByRecord(kind, record_id)) {
    for (const auto& [parent, name] : n.links) PostEntry(parent, name);
    PostInode(n.ino);
  }
}

void Invalidator::InvalidateAll() {
  // Directories' attributes and contents, and files' attributes: names
  // expire by themselves within entry_timeout.
  for (const Node& n : nodes_.Select([](const Node&) { return true; })) {
    if (n.ino == FUSE_ROOT_ID) continue;
    int rc = fuse_lowlevel_notify_inval_inode(se_, n.ino, -1, 0);
    if (rc == 0) ++sent_;
  }
}

void Invalidator::Run(int poll_ms) {
  int64_t last = -1;
  if (auto v = catalog_.ExternalChangeCounter(); v.ok()) last = *v;
  auto next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms);
  for (;;) {
    std::deque<Item> items;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_poll, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      items.swap(queue_);
    }
    for (const auto& it : items) {
      // ENOENT just means the kernel had nothing cached.
      int rc = it.entry ? fuse_lowlevel_notify_inval_entry(se_, it.ino, it.name.c_str(), it.name.size())
                        : fuse_lowlevel_notify_inval_inode(se_, it.ino, -1, 0);
      if (rc == 0) ++sent_;
    }
    if (std::chrono::steady_clock::now() >= next_poll) {
      next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(poll_ms);
      auto v = catalog_.ExternalChangeCounter();
      if (v.ok() && *v != last) {
        if (last != -1) {
          spdlog::debug("catalog changed by another process: invalidating cached entries");
          InvalidateAll();
        }
        last = *v;
      }
    }
  }
}

}  // namespace samplefs::fs
