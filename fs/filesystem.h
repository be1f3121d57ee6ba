// Filesystem: the context of one mount, passed to every FUSE callback as the
// session's userdata (no globals). It owns the node table, the namespace,
// the open files and their handles, the committer and the error log; it
// borrows the catalog and store. The callbacks are in fs/ops_*.cc, grouped
// by what they do (docs/DECISIONS.md, "Layers").
//
// Writes (SPEC section 3/4): a file's new content goes to a staging file of
// the object store (copy-on-write of the old content on the first write,
// unless truncated). When the last writable handle is released (the kernel
// sends RELEASE after close() returned, and after any shared-mmap
// writeback), the version is sealed and handed to the Committer, which
// publishes it — staging fsync, link into objects/, directory fsync, one
// catalog transaction — in batches with the other versions of that moment
// (fs/committer.h). fsync() and truncate(1) hand it over and wait; so does
// close() with `-o sync_close`. close() reports the errors known by then
// (a write that failed with ENOSPC/EIO). Every handle reads the current
// version, the growing staging file included, as POSIX has it
// (docs/DECISIONS.md, "Readers during an overwrite").
//
// Lock order: OpenFile::mu, then the Catalog's mutex, then NodeTable's
// mutex (fs/open_files.h). No lock is held across fuse_reply_*.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "fs/atimes.h"
#include "fs/attributes.h"
#include "fs/committer.h"
#include "fs/error_log.h"
#include "fs/invalidator.h"
#include "fs/namespace.h"
#include "fs/node_table.h"
#include "fs/open_files.h"
#include "fs/page_cache.h"
#include "fs/xattr.h"

namespace samplefs::fs {

class FileHandle;  // an open file, fs/file_handle.h

struct MountOptions {
  bool read_only = false;
  // Seconds the kernel may cache names and attributes. Long, because every
  // change is pushed: changes through the mount by the callbacks (all
  // paths of the record, see Invalidator), changes by other processes by
  // the Invalidator's poll. With 1 s, a warm `ls -lR` that takes longer
  // than a second asked for every attribute again.
  double entry_timeout = 60.0;
  double attr_timeout = 60.0;
  // Seconds the kernel may remember that a name inside files/ does not
  // exist (rsync and cp look a name up before creating it, and rsync again
  // before its rename). Short, because a name created by another process
  // cannot be pushed (the kernel's absent names are not known here); names
  // created through the mount are pushed to every path of the folder.
  double negative_timeout = 1.0;
  // close() of the last writable handle publishes and commits the version
  // before it returns, and reports a failure (a locked catalog, EIO): the
  // behaviour before batched commits, 10x slower for many small files.
  bool sync_close = false;
  // -o noatime: reads never move atimes (nothing kept, nothing written).
  bool noatime = false;
  // -o allow_other: entries show the owners they record (MountIdentity).
  bool allow_other = false;
};

// Lean or rich folder listings (Filesystem::RichListings), on a clock the
// caller passes (nanoseconds), so tests can drive it.
class ListingPolicy {
 public:
  static constexpr int64_t kRichWindow = int64_t{30} * 1000000000;
  // Rich until a lookup of a listed file was kRichWindow ago.
  bool Rich(int64_t now_ns) const { return now_ns < rich_until_.load(std::memory_order_relaxed); }
  void FileLookedUp(int64_t now_ns) { rich_until_.store(now_ns + kRichWindow, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> rich_until_{INT64_MIN};
};

class Filesystem {
 public:
  Filesystem(Catalog& catalog, ObjectStore& store, MountOptions options);

  // Ensures the empty object exists (new files point at it).
  Status Prepare();
  // Before a record of a new file points at the empty object: makes sure it
  // exists and is young (see the definition).
  Status EnsureEmptyObject();

  static const fuse_lowlevel_ops& Operations();

  Catalog& catalog() { return catalog_; }
  ObjectStore& store() { return store_; }
  NodeTable& nodes() { return nodes_; }
  Namespace& ns() { return ns_; }
  ErrorLog& errors() { return errors_; }
  ScratchFiles& scratch() { return ns_.scratch(); }
  OpenFiles& files() { return files_; }
  Invalidator& invalidator() { return invalidator_; }
  AtimeBook& atimes() { return atimes_; }
  const MountOptions& options() const { return options_; }
  const std::string& empty_hash() const { return empty_hash_; }
  void set_session(fuse_session* se) { session_ = se; }
  fuse_session* session() const { return session_; }

  // The path of an inode from the mount root, for messages.
  std::string PathOf(fuse_ino_t ino, const std::string& child = {}) const;

  // Open file handles by id (fuse_file_info::fh). An operation holds a
  // reference for its duration: the kernel sends RELEASE without waiting
  // for a READ it abandoned (the reader was killed or interrupted), so a
  // raw pointer could be freed under a reply in flight (ASan found it).
  uint64_t AddHandle(std::shared_ptr<FileHandle> handle);
  std::shared_ptr<FileHandle> GetHandle(uint64_t id);   // null if unknown
  std::shared_ptr<FileHandle> TakeHandle(uint64_t id);  // removes it

  Committer& committer() { return committer_; }
  // After the session loop (signal, unmount): commits every version a
  // close() returned for (RELEASE may never have come), drops the versions
  // still open for writing (never committed; the file keeps its previous
  // version), and stops the committer.
  struct ShutdownReport {
    uint64_t committed = 0;    // versions recorded during the whole mount
    int dropped_open = 0;      // still open for writing at the end
    uint64_t not_recorded = 0; // gave up (kept sealed for the next mount)
  };
  ShutdownReport Shutdown();
  // Close of a last writable handle seen, its RELEASE not yet (fsyncdir).
  void CloseStarted();
  void CloseEnded();
  // Until everything closed so far is committed (fsyncdir); kBusy if the
  // committer still has work after `timeout` (a locked catalog).
  Status WaitForCommits(std::chrono::milliseconds timeout);
  // The kernel may keep an inode's page cache only while the content it
  // cached is still current (fs/page_cache.h).
  PageCachePolicy& page_cache() { return page_cache_; }
  // Entries' xattrs answered a moment ago (getfattr -d asks four times).
  XattrMemo& xattr_memo() { return xattr_memo_; }
  // Drops `n` lookups of a node; once the kernel holds none, what is kept
  // about its inode goes too (FORGET, and replies the kernel refused).
  void ForgetNode(fuse_ino_t ino, uint64_t n);

  // Counts commits of new versions (Committer::publish_epoch).
  uint64_t publish_epoch() const { return committer_.publish_epoch(); }

  // Whether readdirplus of a folder answers its files with attributes
  // (docs/DECISIONS.md, "Lean and rich listings"). Without them the kernel
  // creates no inode for the files (what find needs); with them a stat
  // after the listing (ls -l, file managers) costs no LOOKUP. Lean, until a
  // LOOKUP of a file in a folder shows that listed files are being stat'ed:
  // then rich for ListingPolicy::kRichWindow.
  bool RichListings() const { return listing_.Rich(MonotonicNs()); }
  // Whether the kernel opens directories without asking (FUSE
  // FUSE_CAP_NO_OPENDIR_SUPPORT, set at init): OpOpendir then answers
  // ENOSYS once and no OPENDIR/RELEASEDIR reaches the daemon again.
  bool kernel_opens_directories() const { return kernel_opens_dirs_.load(); }
  void set_kernel_opens_directories(bool v) { kernel_opens_dirs_.store(v); }
  // Counters for status.json: OPENDIR requests, listings answered from
  // their first entry.
  void CountOpendir() { opendirs_.fetch_add(1, std::memory_order_relaxed); }
  void CountListing() { listings_answered_.fetch_add(1, std::memory_order_relaxed); }
  void FileLookedUp() { listing_.FileLookedUp(MonotonicNs()); }
  static int64_t MonotonicNs();
  // Folders whose listing the kernel may hold without attributes: a file
  // LOOKUP in one drops that listing (see OpLookup), so that the rest of an
  // `ls -l` reading it from the kernel's cache is listed again, with them.
  void NoteLeanListing(fuse_ino_t dir);
  bool TakeLeanListing(fuse_ino_t dir);  // whether it was noted; forgets it
  // Writes answered before they reached the staging file (write-behind,
  // OpWrite), for status.json.
  void NoteWriteBehind() { writes_behind_.fetch_add(1, std::memory_order_relaxed); }
  // Catalog::Usage(), at most kUsageMaxAgeNs old: statfs comes often (file
  // managers, df, every cp that checks for room) and the query scans the
  // hash index with the catalog lock held. When the query fails (a locked
  // catalog) the last answer, if any.
  static constexpr int64_t kUsageMaxAgeNs = 2'000'000'000;
  Result<CatalogUsage> CachedUsage();

 private:
  Catalog& catalog_;
  ObjectStore& store_;
  MountOptions options_;
  NodeTable nodes_;
  Namespace ns_;
  ErrorLog errors_;
  Invalidator invalidator_;
  std::atomic<bool> kernel_opens_dirs_{false};
  std::atomic<uint64_t> opendirs_{0};
  std::atomic<uint64_t> listings_answered_{0};
  std::string empty_hash_;
  fuse_session* session_ = nullptr;

  std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<FileHandle>> handles_;  // GUARDED_BY(handles_mu_)
  uint64_t next_handle_ = 1;                                           // GUARDED_BY(handles_mu_)
  OpenFiles files_;
  PageCachePolicy page_cache_;
  XattrMemo xattr_memo_;
  std::atomic<uint64_t> writes_behind_{0};
  ListingPolicy listing_;
  std::mutex lean_mu_;
  std::unordered_set<fuse_ino_t> lean_listed_;  // GUARDED_BY(lean_mu_)
  std::atomic<int64_t> empty_touched_{0};  // when EnsureEmptyObject last touched it
  std::mutex usage_mu_;  // one Usage() query at a time; later callers take its answer
  CatalogUsage usage_;      // GUARDED_BY(usage_mu_)
  int64_t usage_at_ns_ = 0;  // GUARDED_BY(usage_mu_) MonotonicNs(); 0: never
  std::mutex closing_mu_;
  std::condition_variable closing_cv_;
  int closing_ = 0;  // GUARDED_BY(closing_mu_)
  AtimeBook atimes_;
  // Last: stopped (its thread joined) before the members it uses go.
  Committer committer_;
};

}  // namespace samplefs::fs
