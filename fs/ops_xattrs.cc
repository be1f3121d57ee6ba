// The callbacks of extended attributes: getxattr, listxattr, setxattr,
// removexattr (the names and values are fs/xattr.h's).
#include <cstring>
#include <string_view>

#include "fs/fuse_ops.h"
#include "fs/notices.h"
#include "fs/xattr.h"

namespace samplefs::fs {

namespace {

// security.*, system.* and trusted.* never reach the catalog: the kernel
// asks for security.capability before every write, and ls -l for ACLs.
bool IsUserXattr(const char* name) { return std::strncmp(name, "user.", 5) == 0; }

// A file's derived fields describe the version its readers see: while a
// version is pending (being written, or closed and not yet committed), its
// hash and size, not the record's. Without this a script that records
// checksums right after cp got the empty file's hash. Returns false when the
// catalog answers.
bool PendingFileXattr(Filesystem& fs, const NodeSpec& spec, std::string_view name, Result<std::string>* out) {
  if (spec.kind != NodeKind::kFile) return false;
  const bool hash = name == "user.samplefs.hash", size = name == "user.samplefs.size";
  if (!hash && !size) return false;
  auto of = fs.files().Find(spec.record_id);
  if (!of) return false;
  std::lock_guard lock(of->mu);
  if (!of->writer) return false;
  if (size) {
    *out = std::to_string(of->writer->size());
  } else {
    auto digest = of->writer->Digest();
    if (!digest.ok()) *out = digest.status();
    else *out = "xxh3-128:" + digest->hex();
  }
  return true;
}

bool IsEntry(const NodeSpec& spec) {
  return spec.kind == NodeKind::kFile || spec.kind == NodeKind::kFolder || spec.kind == NodeKind::kSymlink;
}

// An entry's names and tags: memoized a moment, or on PostgreSQL until
// another writer's change is notified (XattrMemo), else one catalog
// statement, then memoized.
Result<EntryXattrs> EntryXattrsOf(Filesystem& fs, fuse_ino_t ino, const NodeSpec& spec) {
  const int64_t now = Filesystem::MonotonicNs();
  const std::optional<int64_t> changes = fs.catalog().PushedChangeCounter();
  if (auto memo = fs.xattr_memo().Get(ino, spec.record_id, now, changes)) return std::move(*memo);
  const uint64_t epoch = fs.xattr_memo().epoch();
  SFS_ASSIGN_OR_RETURN(EntryXattrs x, ReadEntryXattrs(fs.catalog(), spec.record_id));
  fs.xattr_memo().Put(ino, spec.record_id, x, epoch, now, changes);
  return x;
}

}  // namespace

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  SFS_FUSE_TRY
  // EOPNOTSUPP, not ENODATA: ls -l then stops asking for ACLs and
  // security.selinux on every file of the mount (8x faster cold ls -lR).
  if (!IsUserXattr(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Result<std::string> v = Status(Code::kNotFound, "");
  if (IsEntry(node->spec) && std::strcmp(name, "user.xdg.tags") == 0) {
    auto x = EntryXattrsOf(fs, ino, node->spec);
    if (!x.ok()) v = x.status();
    else if (!x->tags.empty()) v = std::move(x->tags);
  } else if (!PendingFileXattr(fs, node->spec, name, &v)) {
    v = GetXattr(fs.catalog(), node->spec, name);
  }
  if (!v.ok()) {
    if (v.status().is_not_found()) return (void)fuse_reply_err(req, ENODATA);
    return ReplyStatus(req, "getxattr", fs.PathOf(ino), v.status());
  }
  if (size == 0) return (void)fuse_reply_xattr(req, v->size());
  if (v->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, v->data(), v->size());
  SFS_FUSE_CATCH("getxattr")
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Result<std::vector<std::string>> names = std::vector<std::string>();
  if (IsEntry(node->spec)) {
    auto x = EntryXattrsOf(fs, ino, node->spec);
    if (x.ok()) names = std::move(x->names);
    else names = x.status();
  } else {
    names = ListXattrs(fs.catalog(), node->spec);
  }
  if (!names.ok()) return ReplyStatus(req, "listxattr", fs.PathOf(ino), names.status());
  std::string out;
  for (const auto& n : *names) {
    out += n;
    out.push_back('\0');
  }
  if (size == 0) return (void)fuse_reply_xattr(req, out.size());
  if (out.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, out.data(), out.size());
  SFS_FUSE_CATCH("listxattr")
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  if (!IsUserXattr(name)) {
    // EOPNOTSUPP for ACLs makes cp -a fall back to chmod, which we store.
    if (std::strncmp(name, "trusted.", 8) == 0) return (void)fuse_reply_err(req, EPERM);
    return (void)fuse_reply_err(req, EOPNOTSUPP);
  }
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Status s = SetXattr(fs.catalog(), node->spec, name, std::string(value, size), flags);
  if (!s.ok()) {
    if (s.is_not_found()) {
      fs.errors().Add("setxattr", fs.PathOf(ino), s.message());
      return (void)fuse_reply_err(req, ENODATA);
    }
    return ReplyStatus(req, "setxattr", fs.PathOf(ino), s);
  }
  PostXattrChanged(fs, ino, node->spec, name);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("setxattr")
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  if (!IsUserXattr(name)) return (void)fuse_reply_err(req, ENODATA);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Status s = RemoveXattr(fs.catalog(), node->spec, name);
  if (!s.ok()) {
    if (s.is_not_found()) return (void)fuse_reply_err(req, ENODATA);
    return ReplyStatus(req, "removexattr", fs.PathOf(ino), s);
  }
  PostXattrChanged(fs, ino, node->spec, name);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("removexattr")
}

}  // namespace samplefs::fs
