// Filesystem: the context of one mount, passed to every FUSE callback as the
// session's userdata (no globals). It owns the node table, the namespace,
// the open-file table and the error log; it borrows the catalog and store.
//
// Writes (SPEC section 3/4): a file's new content goes to a staging file of
// the object store (copy-on-write of the old content on the first write,
// unless truncated). The new version is published — staging fsync, link
// into objects/, directory fsync, one catalog transaction — when the last
// writable handle is flushed (so close() reports ENOSPC/EIO), again at
// release if data arrived after flush (shared mmap), and on fsync. Every
// handle reads the current version, the growing staging file included, as
// POSIX has it (docs/DECISIONS.md, "Readers during an overwrite").
//
// Lock order: OpenFile::mu, then the Catalog's mutex, then NodeTable's
// mutex. No lock is held across fuse_reply_*.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "fs/error_log.h"
#include "fs/invalidator.h"
#include "fs/namespace.h"
#include "fs/node_table.h"
#include "fs/scratch.h"

namespace samplefs::fs {

struct FileHandle;  // an open file, fs/filesystem.cc

struct MountOptions {
  bool read_only = false;
  // Seconds the kernel may cache names and attributes. Long, because every
  // change is pushed: changes through the mount by the callbacks (all
  // paths of the record, see Invalidator), changes by other processes by
  // the Invalidator's poll. With 1 s, a warm `ls -lR` that takes longer
  // than a second asked for every attribute again.
  double entry_timeout = 60.0;
  double attr_timeout = 60.0;
};

// The write state of one file (entry), shared by all its open handles.
struct OpenFile {
  std::mutex mu;
  int64_t entry_id = 0;
  int writers = 0;                        // GUARDED_BY(mu) writable handles
  std::unique_ptr<ObjectWriter> writer;   // GUARDED_BY(mu) non-null = unpublished changes
  int64_t mtime_ns = 0;                   // GUARDED_BY(mu) mtime of the pending version
  Status error;                           // GUARDED_BY(mu) sticky write error for flush/fsync
  std::string published_hash;             // GUARDED_BY(mu) last version published here
  // The last record of a file unlinked or replaced by rename while open:
  // POSIX lets open handles fstat, read and write it until the last close
  // (the data of such writes is never published).
  std::optional<Entry> orphan;            // GUARDED_BY(mu)
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
  ScratchFiles& scratch() { return scratch_; }
  Invalidator& invalidator() { return invalidator_; }
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

    // The OpenFile of an entry, created on first use.
  std::shared_ptr<OpenFile> Acquire(int64_t entry_id);
  // Drops the table's reference when no handle uses it any more.
  void MaybeRelease(const std::shared_ptr<OpenFile>& of);
  // The OpenFile of an entry if one exists.
  std::shared_ptr<OpenFile> Find(int64_t entry_id);

  // Publishes the pending version of `of` (caller holds of->mu): object
  // store publish, then one transaction updating the entry's hash, size and
  // mtime. On success the writer is gone; on failure it is kept (so a later
  // fsync/close can retry) and the error returned.
  Status PublishLocked(OpenFile& of);
  // Starts a writer for `of` if none (caller holds of->mu), copying the
  // current content unless `truncate_to_zero`.
  Status EnsureWriterLocked(OpenFile& of, bool truncate_to_zero);

  // The kernel may keep an inode's page cache only while the content it
  // cached is still current: remembers the hash each inode last served.
  bool KeepCache(fuse_ino_t ino, const std::string& hash);

  // Counts new versions of files committed by PublishLocked. A listing that
  // sees it move re-reads its files' attributes: the kernel caches what
  // readdirplus answers, and a close does not make it discard an answer
  // that was read from the catalog just before the publish committed.
  uint64_t publish_epoch() const { return publish_epoch_.load(); }

 private:
  Catalog& catalog_;
  ObjectStore& store_;
  MountOptions options_;
  NodeTable nodes_;
  Namespace ns_;
  ErrorLog errors_;
  ScratchFiles scratch_;
  Invalidator invalidator_;
  std::string empty_hash_;
  fuse_session* session_ = nullptr;

  std::mutex handles_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<FileHandle>> handles_;  // GUARDED_BY(handles_mu_)
  uint64_t next_handle_ = 1;                                           // GUARDED_BY(handles_mu_)
    std::mutex files_mu_;
  std::unordered_map<int64_t, std::shared_ptr<OpenFile>> files_;  // GUARDED_BY(files_mu_)
  std::mutex cache_mu_;
  std::unordered_map<fuse_ino_t, std::string> cached_hash_;  // GUARDED_BY(cache_mu_)
  std::atomic<uint64_t> publish_epoch_{0};
};

}  // namespace samplefs::fs
