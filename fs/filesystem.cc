// The context of one mount (fs/filesystem.h): its parts, the handle table,
// the closes in flight, the shutdown and the statfs cache. The callbacks are
// in fs/ops_*.cc.
#include "fs/filesystem.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ctime>

#include "fs/file_handle.h"

namespace samplefs::fs {

void Filesystem::NoteLeanListing(fuse_ino_t dir) {
  std::lock_guard lock(lean_mu_);
  // Bounded: a folder forgotten here just costs a LOOKUP per file if its
  // lean listing is still cached and then stat'ed.
  if (lean_listed_.size() >= 65536) lean_listed_.clear();
  lean_listed_.insert(dir);
}

bool Filesystem::TakeLeanListing(fuse_ino_t dir) {
  std::lock_guard lock(lean_mu_);
  return lean_listed_.erase(dir) > 0;
}

int64_t Filesystem::MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Filesystem::Filesystem(Catalog& catalog, ObjectStore& store, MountOptions options)
    : catalog_(catalog),
      store_(store),
      options_(options),
      ns_(catalog, MountIdentity{getuid(), getgid(), time(nullptr), options.allow_other}),
      invalidator_(catalog, nodes_),
      files_(catalog, store, committer_, empty_hash_),
      atimes_(catalog, !options.read_only && !options.noatime),
      committer_(catalog, files_, errors_) {
  atimes_.Start();
  ns_.set_status_hook([this](nlohmann::ordered_json& j) {
    j["mount"] = {{"kernel_inodes", nodes_.size()},
                  {"listings", RichListings() ? "rich" : "lean"},
                  {"writes_behind", writes_behind_.load(std::memory_order_relaxed)},
                  // Versions published: data synced, and duplicates dropped
                  // before any sync (docs/DECISIONS.md "Object store").
                  {"data_syncs", store_.data_syncs()},
                  {"early_dedups", store_.early_dedups()},
                  // Directory listings (docs/DECISIONS.md "Listings"): the
                  // kernel opens directories itself and keeps listings;
                  // OPENDIRs and listings the daemon answered (from their
                  // first entry), and generated ones dropped by writes.
                  {"kernel_opens_directories", kernel_opens_directories()},
                  {"opendirs", opendirs_.load(std::memory_order_relaxed)},
                  {"listings_answered", listings_answered_.load(std::memory_order_relaxed)},
                  {"generated_listings_dropped", invalidator_.generated_listings_dropped()}};
  });
}

Status Filesystem::Prepare() {
  empty_hash_ = ContentHash::Of("", 0).hex();
  return EnsureEmptyObject();
}

Status Filesystem::EnsureEmptyObject() {
  if (options_.read_only) return Status::Ok();
  // New files point at the empty object without a publish, and gc removes
  // it whenever no record uses it (samplectl gc while mounted). Touching it
  // spares it for gc's grace period, as a deduplicating publish does; a
  // missing one is published again.
  // Touched once every 10 s (plenty for gc's grace period, 1 h by
  // default), which spares a copy of many small files a metadata write per
  // file; in between, a stat finds it still there (gc --grace 0 may take
  // it at any time).
  const int64_t now = static_cast<int64_t>(time(nullptr));
  const ContentHash empty = *ContentHash::FromHex(empty_hash_);
  if (now - empty_touched_.load() < 10 && store_.Exists(empty)) return Status::Ok();
  if (!store_.Touch(empty).ok()) {
    SFS_ASSIGN_OR_RETURN(auto w, store_.NewWriter());
    SFS_RETURN_IF_ERROR(w->Publish().status());
  }
  empty_touched_.store(now);
  return Status::Ok();
}

std::string Filesystem::PathOf(fuse_ino_t ino, const std::string& child) const {
  std::string path = child.empty() ? "" : "/" + child;
  for (int depth = 0; ino != FUSE_ROOT_ID && depth < 64; ++depth) {
    auto n = nodes_.NameOf(ino);
    if (!n) return "?" + path;
    path = "/" + n->second + path;
    ino = n->first;
  }
  return path.empty() ? "/" : path;
}

uint64_t Filesystem::AddHandle(std::shared_ptr<FileHandle> handle) {
  std::lock_guard lock(handles_mu_);
  uint64_t id = next_handle_++;
  handles_.emplace(id, std::move(handle));
  return id;
}

std::shared_ptr<FileHandle> Filesystem::GetHandle(uint64_t id) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(id);
  return it == handles_.end() ? nullptr : it->second;
}

std::shared_ptr<FileHandle> Filesystem::TakeHandle(uint64_t id) {
  std::lock_guard lock(handles_mu_);
  auto it = handles_.find(id);
  if (it == handles_.end()) return nullptr;
  auto h = std::move(it->second);
  handles_.erase(it);
  return h;
}

void Filesystem::CloseStarted() {
  std::lock_guard lock(closing_mu_);
  ++closing_;
}

void Filesystem::CloseEnded() {
  {
    std::lock_guard lock(closing_mu_);
    --closing_;
  }
  closing_cv_.notify_all();
}

Status Filesystem::WaitForCommits(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  {
    // close() has returned for these, and their RELEASE is on its way: a
    // few ms. Bounded, because a dup()ed descriptor flushes without a
    // release.
    std::unique_lock lock(closing_mu_);
    closing_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return closing_ == 0; });
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (!committer_.Drain(std::max(left, std::chrono::milliseconds(0))))
    return Status(Code::kBusy, std::to_string(committer_.pending()) +
                                   " closed files are still waiting to be recorded (see .samplefs/errors)");
  return Status::Ok();
}

Filesystem::ShutdownReport Filesystem::Shutdown() {
  // The session loop has ended (a signal, an unmount): no RELEASE comes
  // any more. A version that a close() sealed and that nothing changed
  // since is committed like any other; a version still open for writing
  // (cp killed halfway, a lazy unmount under a running copy) is dropped:
  // committing it would record a truncated file as if complete. Then the
  // committer makes a last attempt at everything queued, retries included.
  ShutdownReport report;
  for (auto& of : files_.All()) {
    std::lock_guard lock(of->mu);
    if (!of->writer || of->sealed) continue;
    const std::string path = "file #" + std::to_string(of->entry_id);
    if (of->error.ok() && of->writer->sealed_at(of->writer->generation())) {
      files_.SealLocked(of, true, path);
    } else {
      spdlog::warn("{} was still open for writing at unmount: its new version is dropped", path);
      files_.DropVersionLocked(*of);
      ++report.dropped_open;
    }
  }
  committer_.Stop();
  atimes_.Stop();  // the reads' atimes still in memory
  report.committed = committer_.committed();
  report.not_recorded = committer_.given_up();
  return report;
}

Result<CatalogUsage> Filesystem::CachedUsage() {
  std::lock_guard lock(usage_mu_);
  int64_t now = MonotonicNs();
  if (usage_at_ns_ == 0 || now - usage_at_ns_ >= kUsageMaxAgeNs) {
    auto u = catalog_.Usage();
    if (!u.ok()) {
      // A catalog locked by another program should not make df fail: the
      // last answer is a few seconds old at worst.
      if (usage_at_ns_ == 0) return u.status();
      spdlog::warn("statfs: counting the catalog failed, reporting the last count: {}", u.status().ToString());
      return usage_;
    }
    usage_ = *u;
    usage_at_ns_ = now;
  }
  return usage_;
}

void Filesystem::ForgetNode(fuse_ino_t ino, uint64_t n) {
  if (nodes_.Forget(ino, n)) page_cache_.Forget(ino);
}

}  // namespace samplefs::fs
