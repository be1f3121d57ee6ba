// Invalidator: tells the kernel to drop cached names, attributes and folder
// listings when a record changes, so `ls` shows the change within a second
// although the kernel may cache names and attributes for a minute
// (MountOptions) and keeps the listings of folders inside files/ until told
// otherwise (fi->cache_readdir, set at opendir).
//
// Notifications run on a thread of their own: the kernel may hold a
// directory's lock while it waits for the request that changed it, so a
// notification sent from inside that request could deadlock (libfuse docs
// of fuse_lowlevel_notify_inval_entry).
//
// Sources of change:
//   - this mount: after a rename/rmdir/unlink/setxattr/sidecar edit, the
//     callback posts the other paths of the same record (NodeTable::ByRecord);
//     after a change to a folder's contents (create, mkdir, symlink, unlink,
//     rmdir, rename) the listing of every path of that folder, at once
//     (InvalidateListings): /species/…/files/d and /slides/…/files/d are different
//     inodes, and the kernel drops the cached listing only of the one the
//     change came through; after a new version or setattr of a file, the
//     attributes of its other paths (PostAttrs);
//   - other processes (samplectl, sqlite3, another mount): the thread polls
//     the catalog's external change counter (PRAGMA data_version) and, when
//     it moved, invalidates every name, attribute and cached listing the
//     kernel holds (InvalidateAll).
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "catalog/catalog.h"
#include "fs/node_table.h"

namespace samplefs::fs {

class Invalidator {
 public:
  Invalidator(Catalog& catalog, NodeTable& nodes) : catalog_(catalog), nodes_(nodes) {}
  ~Invalidator() { Stop(); }

  // Starts the thread; `poll_ms` is the external-change polling period.
  void Start(fuse_session* se, int poll_ms = 250);
  void Stop();

  // Drops the kernel's dentry (parent, name) and the attributes of `ino`.
  void PostEntry(fuse_ino_t parent, const std::string& name);
  void PostInode(fuse_ino_t ino);
  // The names and attributes of every bound node standing for this record.
  void PostRecord(NodeKind kind, int64_t record_id);
  // The attributes only of every node standing for this record (a file's
  // size after a publish: its names did not change), but `except`.
  void PostAttrs(NodeKind kind, int64_t record_id, fuse_ino_t except = 0);
  // For a file (one inode, several names): its names other than (parent,
  // name), and its attributes if it has such names (the kernel updates the
  // name a request came through itself).
  void PostRecordExcept(NodeKind kind, int64_t record_id, fuse_ino_t parent, const std::string& name);
  // After a rename of a record's directory (parent, name) to a name in
  // `newparent`: the names and attributes of every node standing for the
  // record, awaited (Drain, within its bound) before it returns, so no old
  // path of the record resolves once the rename replies. The renamed name
  // itself gets no notice: the kernel moves that dentry itself. Its other
  // names in `parent` and `newparent` (normally none) are queued only after
  // the wait, and not awaited: the kernel holds those directories' locks
  // until the rename replies, so such a notice would hold up every notice
  // behind it (this rename's, and the next request's) until the lock goes.
  void PostRenamedRecord(NodeKind kind, int64_t record_id, fuse_ino_t parent, const std::string& name,
                         fuse_ino_t newparent, int timeout_ms = 200);
  // Drops now, from the calling request, the cached listing (and
  // attributes) of every node of the folder entry `folder_id`
  // (NodeKind::kFolder) but `except` (the directory the request came
  // through: the kernel resets that one itself). Safe inside a request:
  // notify_inval_inode takes no inode lock, and a directory has no dirty
  // pages to write back; only the pages of its cached listing, whose locks
  // the kernel never holds while waiting for this daemon. Done at once, so
  // the next `ls` of another path sees the change. A `name` added to or
  // removed from the folder is also dropped from those directories' cached
  // names (queued, see PostEntry): it may be cached there as absent.
  // Returns whether it queued any.
  bool InvalidateListings(int64_t folder_id, fuse_ino_t except, const std::string& name = {});

  // Drops now the kernel's cached listing of directory `dir` (safe inside a
  // request, for the reasons given above).
  void DropListing(fuse_ino_t dir);

  // Generated directories (every directory but files/ and the folders in
  // it: views, records' directories, tags, queries, the root, the trash)
  // list records from anywhere in the catalog. The kernel keeps every
  // directory's listing (OpOpendir: no OPENDIR, so FOPEN_CACHE_DIR for
  // all), so a listing of one from its first entry marks it here, and
  // every write to the catalog through this mount (the catalog's write
  // listener, before the writing request replies) drops the listings of
  // the marked ones and unmarks them: a view is never listed from a cache
  // older than the last write, and a write costs nothing while no view is
  // cached (a copy into files/ while `find` walks folders). Changes by
  // other processes drop every listing (InvalidateAll).
  // Returns the write generation to pass to ListingReplied.
  uint64_t NoteGeneratedListing(fuse_ino_t dir);
  // After the reply to that listing: if a write ended while it was read,
  // the kernel may cache what the write changed, so it is dropped again
  // (queued: the kernel stores the reply after this returns).
  void ListingReplied(fuse_ino_t dir, uint64_t generation);
  // Drops the marked listings now (safe inside a request, as DropListing):
  // the catalog's write listener (Start installs it, Stop removes it).
  // Editors' temporary files (fs/scratch.h) change no listing: they are
  // not listed.
  void DropGeneratedListings();
  uint64_t generated_listings_dropped() const { return generated_dropped_.load(); }

  // Waits until everything posted so far was sent, at most `timeout_ms`:
  // for requests that hold no lock the posted notifications may need (a
  // sidecar's close, setxattr), so a change reads back at once through
  // every path. The bound keeps a wrong call a delay, never a deadlock.
  void Drain(int timeout_ms = 200);

  uint64_t notifications() const { return sent_.load(); }

  // How the notices reach the kernel: by default
  // fuse_lowlevel_notify_inval_entry and _inval_inode on the session
  // Start was given. Unit tests put functions here (before Start, with a
  // null session) that record the notices instead: no mount needed.
  struct Kernel {
    std::function<int(fuse_ino_t parent, const std::string& name)> inval_entry;
    std::function<int(fuse_ino_t ino, off_t off)> inval_inode;
  };
  void SetKernelForTesting(Kernel kernel) { kernel_ = std::move(kernel); }

 private:
  enum class What : uint8_t {
    kEntry,     // the dentry (ino = parent, name)
    kAttr,      // the attributes of ino
    kListing,   // the attributes and cached listing of directory ino
  };
  struct Item {
    What what;
    fuse_ino_t ino;
    std::string name;
  };
  void Push(Item item);
  void Run(int poll_ms);
  void InvalidateAll();
  // Whether notices can be sent: Start was called, with a session or a
  // test's Kernel.
  bool attached() const { return started_ && (se_ != nullptr || kernel_.inval_inode != nullptr); }
  int InvalEntry(fuse_ino_t parent, const std::string& name);
  int InvalInode(fuse_ino_t ino, off_t off);

  Catalog& catalog_;
  NodeTable& nodes_;
  fuse_session* se_ = nullptr;
  bool started_ = false;
  Kernel kernel_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)
  uint64_t posted_ = 0;     // GUARDED_BY(mu_) items ever queued
  uint64_t done_ = 0;       // GUARDED_BY(mu_) items ever sent (or dropped)
  std::condition_variable done_cv_;
  std::atomic<uint64_t> sent_{0};

  std::mutex listed_mu_;
  std::unordered_set<fuse_ino_t> listed_;  // GUARDED_BY(listed_mu_) generated directories the kernel may cache
  std::atomic<uint64_t> write_generation_{0};
  std::atomic<uint64_t> generated_dropped_{0};
};

}  // namespace samplefs::fs
