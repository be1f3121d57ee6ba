#include "fs/invalidator.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace samplefs::fs {

void Invalidator::Start(fuse_session* se, int poll_ms) {
  se_ = se;
  started_ = true;
  stop_ = false;
  thread_ = std::thread([this, poll_ms] {
    pthread_setname_np(pthread_self(), "sfs-invalidate");
    Run(poll_ms);
  });
  catalog_.SetWriteListener([this] { DropGeneratedListings(); });
}

void Invalidator::Stop() {
  if (started_) catalog_.SetWriteListener(nullptr);
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  done_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Invalidator::Push(Item item) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(item));
    ++posted_;
  }
  cv_.notify_one();
}

void Invalidator::Drain(int timeout_ms) {
  std::unique_lock lock(mu_);
  if (!thread_.joinable()) return;
  const uint64_t target = posted_;
  done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [&] { return stop_ || done_ >= target; });
}

int Invalidator::InvalEntry(fuse_ino_t parent, const std::string& name) {
  if (kernel_.inval_entry) return kernel_.inval_entry(parent, name);
  return fuse_lowlevel_notify_inval_entry(se_, parent, name.c_str(), name.size());
}

int Invalidator::InvalInode(fuse_ino_t ino, off_t off) {
  if (kernel_.inval_inode) return kernel_.inval_inode(ino, off);
  return fuse_lowlevel_notify_inval_inode(se_, ino, off, 0);
}

void Invalidator::PostEntry(fuse_ino_t parent, const std::string& name) {
  Push({What::kEntry, parent, name});
}

void Invalidator::PostInode(fuse_ino_t ino) { Push({What::kAttr, ino, {}}); }

void Invalidator::PostRecord(NodeKind kind, int64_t record_id) { PostRecordExcept(kind, record_id, 0, {}); }

void Invalidator::PostRecordExcept(NodeKind kind, int64_t record_id, fuse_ino_t parent, const std::string& name) {
  for (const Node& n : nodes_.ByRecord(kind, record_id)) {
    bool others = parent == 0;  // no exception: the attributes always go
    for (const auto& link : n.links) {
      if (link.first == parent && link.second == name) continue;
      PostEntry(link.first, link.second);
      others = true;
    }
    if (others) PostInode(n.ino);
  }
}

void Invalidator::PostRenamedRecord(NodeKind kind, int64_t record_id, fuse_ino_t parent, const std::string& name,
                                    fuse_ino_t newparent, int timeout_ms) {
  const std::vector<Node> nodes = nodes_.ByRecord(kind, record_id);
  auto renamed = [&](const std::pair<fuse_ino_t, std::string>& link) {
    return link.first == parent && link.second == name;
  };
  auto locked = [&](fuse_ino_t dir) { return dir == parent || dir == newparent; };
  for (const Node& n : nodes) {
    for (const auto& link : n.links)
      if (!locked(link.first)) PostEntry(link.first, link.second);
    PostInode(n.ino);
  }
  if (nodes.empty()) return;
  Drain(timeout_ms);
  for (const Node& n : nodes)
    for (const auto& link : n.links)
      if (locked(link.first) && !renamed(link)) PostEntry(link.first, link.second);
}

void Invalidator::PostAttrs(NodeKind kind, int64_t record_id, fuse_ino_t except) {
  for (const Node& n : nodes_.ByRecord(kind, record_id))
    if (n.ino != except) PostInode(n.ino);
}

bool Invalidator::InvalidateListings(int64_t folder_id, fuse_ino_t except, const std::string& name) {
  if (!attached()) return false;
  bool posted = false;
  for (const Node& n : nodes_.ByRecord(NodeKind::kFolder, folder_id)) {
    if (n.ino == except) continue;
    if (InvalInode(n.ino, 0) == 0) ++sent_;
    // The name may be cached as absent there (a negative lookup reply):
    // queued, because dropping a dentry takes the directory's lock, which
    // another request through that path may hold while it waits for us.
    if (!name.empty()) {
      PostEntry(n.ino, name);
      posted = true;
    }
  }
  return posted;
}

void Invalidator::DropListing(fuse_ino_t dir) {
  if (attached() && InvalInode(dir, 0) == 0) ++sent_;
}

uint64_t Invalidator::NoteGeneratedListing(fuse_ino_t dir) {
  std::lock_guard lock(listed_mu_);
  listed_.insert(dir);
  return write_generation_.load();
}

void Invalidator::ListingReplied(fuse_ino_t dir, uint64_t generation) {
  if (write_generation_.load() == generation) return;
  Push({What::kListing, dir, {}});
}

void Invalidator::DropGeneratedListings() {
  write_generation_.fetch_add(1);
  std::unordered_set<fuse_ino_t> dirs;
  {
    std::lock_guard lock(listed_mu_);
    if (listed_.empty()) return;
    dirs.swap(listed_);
  }
  if (!attached()) return;
  for (fuse_ino_t dir : dirs)
    if (InvalInode(dir, 0) == 0) ++sent_;
  generated_dropped_.fetch_add(dirs.size());
}

void Invalidator::InvalidateAll() {
  // Names first (entry_timeout is long: a name renamed or deleted by
  // another process would otherwise still resolve), then attributes, and
  // for folders the cached listing too (offset 0 drops the directory's
  // pages, which hold it; -1 would drop only the attributes). Files keep
  // their pages: open() compares the object each inode last served
  // (Filesystem::KeepCache).
  std::vector<Node> all = nodes_.Select([](const Node&) { return true; });
  for (const Node& n : all) {
    if (n.ino == FUSE_ROOT_ID) continue;
    for (const auto& [parent, name] : n.links)
      if (InvalEntry(parent, name) == 0) ++sent_;
  }
  // Every directory's listing: folders' and generated ones' alike (the
  // root's too: another process may have filled a trash).
  {
    std::lock_guard lock(listed_mu_);
    listed_.clear();
  }
  for (const Node& n : all) {
    off_t off = n.spec.is_dir() ? 0 : -1;
    if (InvalInode(n.ino, off) == 0) ++sent_;
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
      int rc = 0;
      switch (it.what) {
        case What::kEntry:
          rc = InvalEntry(it.ino, it.name);
          break;
        case What::kAttr:
          rc = InvalInode(it.ino, -1);
          break;
        case What::kListing:
          rc = InvalInode(it.ino, 0);
          break;
      }
      if (rc == 0) ++sent_;
    }
    if (!items.empty()) {
      {
        std::lock_guard lock(mu_);
        done_ += items.size();
      }
      done_cv_.notify_all();
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
