// Extended attributes of records (SPEC section 4, "Extended attributes").
//
//   user.xdg.tags          comma-separated tags (freedesktop convention)
//   user.xdg.comment       notes / comments of the record
//   user.samplefs.<field>  each field (RecordFields); hash is read-only
//   user.<anything else>   a free annotation stored in the catalog
//
// Only user.* names reach these functions: security.*, system.* and
// trusted.* are answered by the FUSE layer without touching the catalog.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "fs/node.h"

namespace samplefs::fs {

inline constexpr size_t kMaxXattrValue = 64 * 1024;

// The record a node's xattrs belong to, if it stands for one.
std::optional<std::pair<Entity, int64_t>> XattrRecord(const NodeSpec& node);

// Names of the xattrs a node carries (empty values are omitted).
Result<std::vector<std::string>> ListXattrs(Catalog& catalog, const NodeSpec& node);

// The value of `name`; kNotFound (-> ENODATA) when the node has none.
Result<std::string> GetXattr(Catalog& catalog, const NodeSpec& node, const std::string& name);

// setxattr of a user.* name. `flags` are XATTR_CREATE / XATTR_REPLACE.
// kPermission for a read-only field (EPERM), kInvalidArgument for a value
// that is not UTF-8 or not valid for the field, kTooBig over 64 KiB,
// kAlreadyExists (XATTR_CREATE) / kNotFound (XATTR_REPLACE, -> ENODATA).
Status SetXattr(Catalog& catalog, const NodeSpec& node, const std::string& name,
                const std::string& value, int flags);
// removexattr: kNotFound (-> ENODATA) when absent; kPermission for fields
// that cannot be empty.
Status RemoveXattr(Catalog& catalog, const NodeSpec& node, const std::string& name);

// The xattrs of a file, folder or symlink: the names listxattr shows and
// the value of user.xdg.tags ("" when it has no tags), from one statement.
struct EntryXattrs {
  std::vector<std::string> names;
  std::string tags;
};
Result<EntryXattrs> ReadEntryXattrs(Catalog& catalog, int64_t entry_id);

// getfattr -d asks four times in a row about one file: listxattr for the
// size, listxattr for the names, getxattr of user.xdg.tags for the size,
// then for the value. Each answer used to be a catalog statement (and
// each a round trip through the catalog lock); the memo answers the last
// three from the first's statement. An answer is kept kMemoNs for its
// inode and dropped by any change made through the mount (Changed(), from
// fs/notices.cc); another process's change shows after at most kMemoNs,
// far within the kernel's own caches' delay for such changes (the
// Invalidator's poll). docs/DECISIONS.md "Extended attributes of files".
//
// Where other writers' changes are pushed (PostgreSQL's NOTIFY:
// Catalog::PushedChangeCounter), an answer is kept instead until that
// counter moves, however long: a warm getfattr -d asks the catalog
// nothing, and another mount's change is seen as soon as its notification
// arrives (issue 15).
class XattrMemo {
 public:
  static constexpr int64_t kMemoNs = 100'000'000;  // 0.1 s
  static constexpr size_t kMaxEntries = 4096;
  static constexpr size_t kMaxPushedEntries = 65536;  // ~10 MB at most
  // The epoch to pass to Put: read it before reading the catalog, so an
  // answer read before a change is never kept after it.
  uint64_t epoch();
  // `changes`: Catalog::PushedChangeCounter(), read before the catalog
  // (Put) and now (Get).
  std::optional<EntryXattrs> Get(fuse_ino_t ino, int64_t record_id, int64_t now_ns,
                                 std::optional<int64_t> changes = std::nullopt);
  void Put(fuse_ino_t ino, int64_t record_id, const EntryXattrs& answer, uint64_t epoch, int64_t now_ns,
           std::optional<int64_t> changes = std::nullopt);
  // Something changed through the mount: forget every answer.
  void Changed();

 private:
  struct Memo {
    int64_t record_id;
    int64_t until_ns;
    EntryXattrs answer;
    std::optional<int64_t> changes;  // kept until the pushed counter moves
  };
  std::mutex mu_;
  uint64_t epoch_ = 0;                          // GUARDED_BY(mu_)
  std::unordered_map<fuse_ino_t, Memo> memos_;  // GUARDED_BY(mu_)
};

// "a,b" <-> {"a","b"}: split on ',', trim spaces, drop empties and duplicates.
std::vector<std::string> SplitTags(const std::string& value);
std::string JoinTags(const std::vector<std::string>& tags);

}  // namespace samplefs::fs
