// Namespace: what each path of the mount means (SPEC section 4), as plain
// code over the Catalog. FUSE callbacks translate to and from these calls;
// tests call them without a mount.
//
// Errors: kNotFound for a name that is not there (ENOENT), kNameTooLong,
// kInvalidArgument for a malformed query expression (the message says why).
#pragma once

#include <sys/stat.h>

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "fs/node.h"
#include "fs/scratch.h"

namespace samplefs::fs {

struct DirEntry {
  std::string name;
  NodeSpec spec;
  uint64_t next_cookie;  // pass back to List() to continue after this entry
  // Attributes when the listing already knows them (entries of files/), so
  // readdirplus needs no second query per entry.
  std::optional<struct stat> attr = std::nullopt;
};

// Readdir cookies: 0 and 1 are "." and ".." (added by the FUSE layer),
// 2..kRecordCookieBase-1 index the fixed children of a node, and
// kRecordCookieBase + id continues a record listing after record `id`.
// Record ids are never reused, so cookies stay valid while entries are
// deleted (rm -rf during a listing).
inline constexpr uint64_t kFirstCookie = 2;
inline constexpr uint64_t kRecordCookieBase = 64;

struct MountIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  time_t mount_time = 0;
  // -o allow_other: entries show the owner they record (schema v7); a
  // private mount shows its user as the owner of everything, as the only
  // user who can reach it (docs/DECISIONS.md "Owners").
  bool owners = false;
};

// Who creates an entry (the requesting user): recorded as its owner.
struct Owner {
  int64_t uid = -1;
  int64_t gid = -1;
};

class Namespace {
 public:
  Namespace(Catalog& catalog, MountIdentity id) : catalog_(catalog), id_(id) {}

  // What `name` is under `parent`. kNotFound when nothing is there.
  Result<NodeSpec> Lookup(const NodeSpec& parent, const std::string& name);
  // Lookup in a folder (parent.kind == kFolder), with the entry found, so
  // that its attributes (EntryAttr) need no second query: a LOOKUP per file
  // is what `rm -rf` and `ls -l` of a folder listed lean cost.
  Result<Entry> LookupEntry(const NodeSpec& folder, const std::string& name);
  static NodeSpec SpecOf(const Entry& e);

  // stat of a node (st_ino left 0: the FUSE layer owns inode numbers).
  Result<struct stat> Attr(const NodeSpec& node);

  // Lists `dir` from `cookie` (kFirstCookie at the start), calling `emit`
  // per entry until it returns false (reply buffer full) or the listing
  // ends. Pages through the catalog; never loads a whole directory.
  // `fits` (if > 0) is how many entries the caller can take at most: the
  // catalog is asked for pages of that many rows (more pages follow if
  // the estimate was short).
  Status List(const NodeSpec& dir, uint64_t cookie,
              const std::function<bool(const DirEntry&)>& emit, int fits = 0);

  // Contents of a sidecar, status.json (errors come from the FUSE layer).
  Result<std::string> Render(const NodeSpec& node);
  // Adds the mount's own fields to status.json (the FUSE layer's state).
  void set_status_hook(std::function<void(nlohmann::ordered_json&)> hook) { status_hook_ = std::move(hook); }

  // --- changes (SPEC "Creating and changing records with file tools") ----
  // Each returns kPermission (EPERM) with a reason where the operation has
  // no meaning at that place, and changes nothing then.

  // mkdir: creates the record the new directory stands for. `user` becomes
  // a new slide's creator or a new image's user.
  Result<NodeSpec> Mkdir(const NodeSpec& parent, const std::string& name, mode_t mode,
                         const std::string& user, Owner owner = {});
  // rmdir: deletes an empty record (kNotEmpty otherwise).
  Status Rmdir(const NodeSpec& parent, const std::string& name);
  // A new empty file inside files/ (content = the empty object `empty_hash`).
  Result<Entry> CreateFile(const NodeSpec& parent, const std::string& name, mode_t mode,
                           const std::string& empty_hash, Owner owner = {});
  Result<Entry> Symlink(const NodeSpec& parent, const std::string& name, const std::string& target,
                        Owner owner = {});
  // unlink of a file or symlink inside files/.
  Status Unlink(const NodeSpec& parent, const std::string& name);
  // rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE flags. Returns the
  // spec now at the new name.
  Result<NodeSpec> Rename(const NodeSpec& parent, const std::string& name,
                          const NodeSpec& new_parent, const std::string& new_name, unsigned flags);

  // --- editors' temporary files (fs/scratch.h) -------------------------
  // They live in the directories of records (a slide's, an image's ...),
  // keyed by the record, so every path of the directory sees them.

  // The record directory `dir` stands for, if editors may keep temporary
  // files in it.
  static std::optional<ScratchDir> ScratchDirOf(const NodeSpec& dir);
  static NodeSpec ScratchSpec(const ScratchDir& dir, const std::string& name);
  // The temporary file `name` in `parent`, if there is one.
  std::optional<NodeSpec> LookupScratch(const NodeSpec& parent, const std::string& name) const;
  // The temporary file a kScratch spec names; null if it is gone.
  std::shared_ptr<ScratchFile> ScratchOf(const NodeSpec& spec) const;
  ScratchFiles& scratch() { return scratch_; }

  Catalog& catalog() { return catalog_; }
  const MountIdentity& identity() const { return id_; }

 private:
  // The desktop trash (fs/trash.cc, docs/DECISIONS.md "Trash"). Each
  // returns std::nullopt where the trash has nothing to say.
  std::optional<Result<NodeSpec>> LookupTrash(const NodeSpec& parent, const std::string& name);
  std::optional<Status> ListTrash(const NodeSpec& dir, uint64_t cookie,
                                  const std::function<bool(const DirEntry&)>& emit);
  std::optional<Result<struct stat>> TrashAttr(const NodeSpec& n);
  Result<std::string> RenderTrashInfo(int64_t trash_id);
  std::optional<Status> UnlinkTrash(const NodeSpec& parent, const std::string& name, bool dir);
  std::optional<Result<NodeSpec>> RenameTrash(const NodeSpec& parent, const std::string& name,
                                              const NodeSpec& new_parent, const std::string& new_name);

  Result<Query> FilterOf(const NodeSpec& slide_list);
  Result<NodeSpec> LookupTaggedImage(int64_t tag_id, const std::string& name);
  Result<NodeSpec> LookupQueryImage(const std::string& expr, const std::string& name);
  Result<NodeSpec> LookupTaggedFile(int64_t tag_id, const std::string& name);
  // `colon_in_parts`: whether a part of the flat name contains ':' (then
  // another file may share the name).
  Result<std::string> TaggedFileName(const Entry& e, bool* colon_in_parts = nullptr);

  Catalog& catalog_;
  ScratchFiles scratch_;
  std::function<void(nlohmann::ordered_json&)> status_hook_;
  MountIdentity id_;
};

// stat of an entry inside files/ from its record.
struct stat EntryAttr(const Entry& e, const MountIdentity& id);

// Seconds since the epoch of an ISO-8601 UTC timestamp; 0 if malformed.
time_t ParseIso8601(const std::string& s);

}  // namespace samplefs::fs
