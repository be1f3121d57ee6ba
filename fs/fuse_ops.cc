// The operations table and what the callbacks share (fs/fuse_ops.h).
#include "fs/fuse_ops.h"

#include <pwd.h>

#include <cstdlib>

namespace samplefs::fs {

namespace {

void OpInit(void* userdata, fuse_conn_info* conn) {
  // Directories open in the kernel, with no OPENDIR/RELEASEDIR round trip
  // (two of a warm `find`'s requests per directory, each waiting for a
  // daemon thread under load); the kernel then keeps every directory's
  // listing (Invalidator::NoteGeneratedListing says how generated ones
  // stay current).
  static_cast<Filesystem*>(userdata)->set_kernel_opens_directories(
      (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0 && getenv("SAMPLEFS_OPENDIR") == nullptr);
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  // Always readdirplus: every listed entry gets its node and attributes in
  // one pass, and d_ino always equals st_ino.
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  // Writeback caching would let the kernel report a write as done before
  // the staging file has it; keep writes synchronous so errors reach write().
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->max_write = 1024 * 1024;
  conn->max_readahead = 1024 * 1024;
  // RELEASE is a background request: with the kernel's default of 12 in
  // flight, a copy of many small files queues its closes in the kernel,
  // where the committer cannot batch them and fsyncdir cannot see them.
  conn->max_background = 256;
  conn->congestion_threshold = 192;
}

}  // namespace

Owner RequestOwner(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Owner{static_cast<int64_t>(ctx->uid), static_cast<int64_t>(ctx->gid)};
}

std::string UserName(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct passwd pw, *res = nullptr;
  char buf[1024];
  if (getpwuid_r(ctx->uid, &pw, buf, sizeof buf, &res) == 0 && res) return res->pw_name;
  return std::to_string(ctx->uid);
}

void ReplyStatus(fuse_req_t req, const char* op, const std::string& path, const Status& s) {
  if (IsQuietErrno(s)) return (void)fuse_reply_err(req, s.to_errno());
  switch (s.code()) {
    case Code::kNotFound:
    case Code::kOk:
      break;
    default:
      Fs(req).errors().Add(op, path, s.message());
  }
  fuse_reply_err(req, s.ok() ? EIO : s.to_errno());
}

bool ParentSpec(fuse_req_t req, fuse_ino_t parent, NodeSpec* spec) {
  auto node = Fs(req).nodes().Get(parent);
  if (!node) {
    fuse_reply_err(req, ESTALE);
    return false;
  }
  *spec = node->spec;
  return true;
}

double AttrTimeout(const Filesystem& fs, const NodeSpec& spec) {
  if (spec.kind == NodeKind::kErrorsFile || spec.kind == NodeKind::kStatusFile) return 0;
  return fs.options().attr_timeout;
}

fuse_entry_param EntryParam(Filesystem& fs, const Node& node, const struct stat& st) {
  fuse_entry_param e{};
  e.ino = node.ino;
  e.generation = 0;
  e.attr = st;
  e.attr.st_ino = InodeNumber(node.ino, node.spec);
  e.attr_timeout = AttrTimeout(fs, node.spec);
  e.entry_timeout = fs.options().entry_timeout;
  return e;
}

void ReplyNewEntry(fuse_req_t req, fuse_ino_t parent, const std::string& name, const NodeSpec& spec,
                   const char* op, const Entry* found) {
  Filesystem& fs = Fs(req);
  Node node = fs.nodes().Resolve(parent, name, spec, 1);
  auto attrs = [&]() -> Result<struct stat> {
    if (!found) return NodeAttr(fs, node.ino, spec);
    // The entry the lookup found, not an open file's and read while no
    // commit round recorded versions (Committer::publish_epoch): no version
    // of it was pending or being committed, so it is the record NodeAttr
    // would read. A file opened since then changes its size through the
    // kernel, which drops attributes of a reply older than its own change.
    struct stat a = EntryAttr(*found, fs.ns().identity());
    a.st_ino = InodeNumber(node.ino, spec);
    OverlayAtime(fs, spec, &a);
    return a;
  };
  auto st = attrs();
  if (!st.ok()) {
    fs.ForgetNode(node.ino, 1);
    return ReplyStatus(req, op, fs.PathOf(parent, name), st.status());
  }
  fuse_entry_param e = EntryParam(fs, node, *st);
  if (fuse_reply_entry(req, &e) != 0) fs.ForgetNode(node.ino, 1);
}

const fuse_lowlevel_ops& Filesystem::Operations() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = OpInit;
    o.lookup = OpLookup;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = OpGetattr;
    o.setattr = OpSetattr;
    o.readlink = OpReadlink;
    o.mknod = OpMknod;
    o.mkdir = OpMkdir;
    o.unlink = OpUnlink;
    o.rmdir = OpRmdir;
    o.symlink = OpSymlink;
    o.rename = OpRename;
    o.link = OpLink;
    o.open = OpOpen;
    o.create = OpCreate;
    o.read = OpRead;
    o.write = OpWrite;
    o.flush = OpFlush;
    o.release = OpRelease;
    o.fsync = OpFsync;
    o.fsyncdir = OpFsyncdir;
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.readdirplus = OpReaddirplus;
    o.statfs = OpStatfs;
    o.setxattr = OpSetxattr;
    o.getxattr = OpGetxattr;
    o.listxattr = OpListxattr;
    o.removexattr = OpRemovexattr;
    o.fallocate = OpFallocate;
    o.copy_file_range = OpCopyFileRange;
    return o;
  }();
  return ops;
}

}  // namespace samplefs::fs
