// NodeTable: inode numbers for the positions of the namespace.
//
// One node per (parent inode, name): a directory reached by two paths has
// two inodes, as the kernel requires. Inode numbers come from a counter and
// are never reused (generation is constant), so a stale inode from the
// kernel can never alias a new node. Nodes are kept while the kernel holds
// lookup references (FUSE lookup count) and dropped on forget.
//
// Thread safety: every method takes the table's mutex; none calls out
// (no catalog access, no fuse_reply_*) while holding it.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/node.h"

namespace samplefs::fs {

struct Node {
  fuse_ino_t ino = 0;
  fuse_ino_t parent = 0;  // the name it was last resolved at (messages, "..")
  std::string name;
  NodeSpec spec;
  uint64_t nlookup = 0;
  // Every (parent, name) bound to this node. A directory has one; a file
  // reached by several paths (views, or a name the kernel looked up again
  // under a directory inode it had re-created) has one per path, all on one
  // inode, so the kernel keeps one size and one page cache for it.
  std::vector<std::pair<fuse_ino_t, std::string>> links;
};

class NodeTable {
 public:
  NodeTable();

  // The node for inode `ino`, or nullptr if the kernel forgot it. Returns a
  // copy so callers never hold a pointer into the table.
  std::optional<Node> Get(fuse_ino_t ino) const;

  // The (parent, name) of `ino` for a path: the name it was last resolved
  // at, unless the kernel has forgotten that directory since (a file or
  // sidecar reached through several views, whose other view's directory
  // went), then another of its names whose directory is still known.
  // nullopt if the kernel forgot `ino`, or every directory it was named in.
  std::optional<std::pair<fuse_ino_t, std::string>> NameOf(fuse_ino_t ino) const;

  // Finds or creates the node for (parent, name) with `spec` and adds
  // `lookups` to its lookup count (1 for lookup/create/readdirplus, 0 for
  // plain readdir). If the existing node at that name stands for something
  // else (the record was replaced), another inode is used for the name; the
  // old one lives on until forgotten. A file or symlink that already has a
  // node (under another path) gets that node: one inode per file, as with
  // hard links, so a size or page cached under one path is never stale
  // under the other (the concurrent difftest read a file as empty through
  // an open descriptor whose directory inode the kernel had dropped and
  // looked up again).
  Node Resolve(fuse_ino_t parent, const std::string& name, const NodeSpec& spec, uint64_t lookups);

  // The inode currently bound to (parent, name), if any (for d_ino).
  std::optional<fuse_ino_t> Find(fuse_ino_t parent, const std::string& name) const;

  // Drops `n` lookups; removes the node when its count reaches zero.
  // Returns true when the node went (the kernel holds no lookup of it).
  bool Forget(fuse_ino_t ino, uint64_t n);

  // Rebinds the name (old_parent, old_name) to (new_parent, new_name) after
  // a rename and returns the node it was bound to; a node already bound
  // there is unbound (it lives on until forgotten). A name nobody bound
  // only unbinds the target.
  std::optional<fuse_ino_t> Rename(fuse_ino_t old_parent, const std::string& old_name, fuse_ino_t new_parent,
                                   const std::string& new_name);
  // Unbinds (parent, name) after an unlink/rmdir.
  void Unbind(fuse_ino_t parent, const std::string& name);
  // Updates the spec of a node (e.g. a file's entry record id changes).
  void SetSpec(fuse_ino_t ino, const NodeSpec& spec);

  // Every bound child of `parent` (for invalidation after external changes).
  std::vector<Node> Children(fuse_ino_t parent) const;
  // All inodes whose spec matches `pred` (invalidation by record).
  template <class Pred>
  std::vector<Node> Select(Pred pred) const {
    std::lock_guard lock(mu_);
    std::vector<Node> out;
    for (const auto& [ino, n] : nodes_)
      if (pred(*n)) out.push_back(*n);
    return out;
  }

  // The nodes standing for a record: O(paths of the record), for
  // invalidation after a change (a scan of the table cost 10 ms per
  // setxattr with 100,000 nodes).
  std::vector<Node> ByRecord(NodeKind kind, int64_t record_id) const;

  size_t size() const;

 private:
  using Key = std::pair<fuse_ino_t, std::string>;
  void UnindexLocked(const Node& node);
  void BindLocked(Node& node, const Key& key);    // unbinds whatever held key
  void UnbindLocked(const Key& key);              // from by_name_ and its node
  mutable std::mutex mu_;
  std::unordered_map<fuse_ino_t, std::unique_ptr<Node>> nodes_;  // GUARDED_BY(mu_)
  std::map<Key, fuse_ino_t> by_name_;                             // GUARDED_BY(mu_)
  std::map<std::pair<int, int64_t>, std::set<fuse_ino_t>> by_record_;  // GUARDED_BY(mu_)
  fuse_ino_t next_ino_ = FUSE_ROOT_ID + 1;                        // GUARDED_BY(mu_)
};

}  // namespace samplefs::fs
