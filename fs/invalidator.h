// Invalidator: tells the kernel to drop cached names and attributes when a
// record changes, so `ls` shows the change within a second.
//
// Notifications run on a thread of their own: the kernel may hold a
// directory's lock while it waits for the request that changed it, so a
// notification sent from inside that request could deadlock (libfuse docs
// of fuse_lowlevel_notify_inval_entry).
//
// Sources of change:
//   - this mount: after a rename/rmdir/unlink/setxattr/sidecar edit, the
//     callback posts the other paths of the same record (NodeTable::Select);
//   - other processes (samplectl, sqlite3, another mount): the thread polls
//     the catalog's external change counter (PRAGMA data_version) and, when
//     it moved, invalidates every directory and file the kernel holds.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

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
  // Every bound node standing for this record, except under `except_parent`.
  void PostRecord(NodeKind kind, int64_t record_id);

  uint64_t notifications() const { return sent_.load(); }

 private:
  struct Item {
    bool entry;
    fuse_ino_t ino;
    std::string name;
  };
  void Run(int poll_ms);
  void InvalidateAll();

  Catalog& catalog_;
  NodeTable& nodes_;
  fuse_session* se_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)
  std::atomic<uint64_t> sent_{0};
};

}  // namespace samplefs::fs
