// The FUSE low-level callbacks: translate kernel requests into Namespace
// and Catalog calls and back. Every callback has a last-resort catch that
// logs and answers EIO, so no exception crosses into libfuse.
#include "fs/filesystem.h"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "catalog/crash_point.h"
#include "catalog/names.h"
#include "fs/sidecar.h"
#include "fs/xattr.h"

namespace samplefs::fs {

namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// An open file descriptor of an object, shared so that a read in flight
// keeps it open while another thread moves the handle to a newer object.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

// One open file (fuse_file_info::fh is its id in Filesystem's handle table).
struct FileHandle {
  enum class Kind { kObject, kText, kLive, kScratch, kSidecarEdit };
  Kind kind = Kind::kObject;
  std::shared_ptr<Fd> fd;          // kObject: the object read
  std::string text;                // kText: rendered sidecar/status/errors
  std::shared_ptr<OpenFile> of;    // kLive: a file being written
  bool writable = false;
  NodeSpec spec;
  fuse_ino_t ino = 0;
  std::mutex mu;                   // guards fd/fd_hash of a kLive handle
  std::string fd_hash;
  std::shared_ptr<ScratchFile> scratch;  // kScratch
  // kSidecarEdit: the document being written, applied at flush.
  std::string edit;
  bool edited = false;
  bool oversize = false;
  // kLive: flushed as the last writable handle; its RELEASE (which hands
  // the version to the committer) is on its way (Filesystem::closing_).
  bool closing = false;
};

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

namespace {

// The record a directory stands for, where editors may keep temporary files.
std::optional<std::pair<Entity, int64_t>> RecordDir(const NodeSpec& s) {
  switch (s.kind) {
    case NodeKind::kSpecies: return std::make_pair(Entity::kSpecies, s.record_id);
    case NodeKind::kSample: return std::make_pair(Entity::kSample, s.record_id);
    case NodeKind::kDye: return std::make_pair(Entity::kDye, s.record_id);
    case NodeKind::kSlide: return std::make_pair(Entity::kSlide, s.record_id);
    case NodeKind::kImage: return std::make_pair(Entity::kImage, s.record_id);
    default: return std::nullopt;
  }
}

NodeSpec ScratchSpec(Entity e, int64_t id, const std::string& name) {
  NodeSpec s;
  s.kind = NodeKind::kScratch;
  s.entity = e;
  s.record_id = id;
  s.text = name;
  return s;
}

Filesystem* Fs(fuse_req_t req) { return static_cast<Filesystem*>(fuse_req_userdata(req)); }
// The handle of an open file; null for an unknown id. The caller's
// reference keeps it alive even if a release for it arrives meanwhile.
std::shared_ptr<FileHandle> Handle(fuse_req_t req, fuse_file_info* fi) {
  return Fs(req)->GetHandle(fi->fh);
}

std::string UserName(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct passwd pw, *res = nullptr;
  char buf[1024];
  if (getpwuid_r(ctx->uid, &pw, buf, sizeof buf, &res) == 0 && res) return res->pw_name;
  return std::to_string(ctx->uid);
}

// Answers an error. Refusals (an operation that has no meaning, a bad
// name or value) also go to .samplefs/errors with their reason.
void ReplyStatus(fuse_req_t req, const char* op, const std::string& path, const Status& s) {
  Filesystem* fs = Fs(req);
  switch (s.code()) {
    case Code::kNotFound:
    case Code::kOk:
      break;
    default:
      fs->errors().Add(op, path, s.message());
  }
  fuse_reply_err(req, s.ok() ? EIO : s.to_errno());
}

#define SFS_FUSE_TRY try {
#define SFS_FUSE_CATCH(op)                                           \
  }                                                                  \
  catch (const std::exception& e) {                                  \
    spdlog::error("{} failed with an exception: {}", op, e.what());  \
    fuse_reply_err(req, EIO);                                        \
  }                                                                  \
  catch (...) {                                                      \
    spdlog::error("{} failed with an unknown exception", op);        \
    fuse_reply_err(req, EIO);                                        \
  }

// What the catalog does not know: the size and mtime of a version being
// written, and the error log's size. Every reply that carries attributes
// (lookup, getattr, readdirplus) applies it, or the kernel caches the
// record's size for attr_timeout and `ls -l` disagrees with stat and read.
void OverlayPendingLocked(const OpenFile& of, struct stat* st) {
  if (of.pending_mode) st->st_mode = (st->st_mode & S_IFMT) | *of.pending_mode;
  if (of.writer) {
    st->st_size = static_cast<off_t>(of.writer->size());
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = of.mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = of.mtime_ns % 1000000000;
  }
}

void OverlayLiveAttr(Filesystem* fs, const NodeSpec& spec, struct stat* st) {
  if (spec.kind == NodeKind::kFile) {
    if (auto of = fs->Find(spec.record_id)) {
      std::lock_guard lock(of->mu);
      OverlayPendingLocked(*of, st);
    }
  } else if (spec.kind == NodeKind::kErrorsFile) {
    st->st_size = static_cast<off_t>(fs->errors().size());
  }
}

// Attributes of a node, including a pending (unpublished) version's size.
Result<struct stat> NodeAttr(Filesystem* fs, fuse_ino_t ino, const NodeSpec& spec) {
  if (spec.kind == NodeKind::kScratch) {
    auto f = fs->scratch().Get(spec.entity, spec.record_id, spec.text);
    if (!f) return Status(Code::kNotFound, "'" + spec.text + "' does not exist");
    struct stat st {};
    const auto& id = fs->ns().identity();
    st.st_ino = ino;
    st.st_uid = id.uid;
    st.st_gid = id.gid;
    st.st_nlink = 1;
    st.st_mode = S_IFREG | f->mode;
    std::lock_guard lock(f->mu);
    st.st_size = static_cast<off_t>(f->data.size());
    st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec = f->mtime_ns / 1000000000;
    st.st_mtim.tv_nsec = st.st_ctim.tv_nsec = st.st_atim.tv_nsec = f->mtime_ns % 1000000000;
    return st;
  }
  // A file's record and its pending version are read under the OpenFile's
  // lock: a publish between the two would answer the old record's size
  // (0 for a new file), and the kernel would cache it after close().
  auto of = spec.kind == NodeKind::kFile ? fs->Find(spec.record_id) : nullptr;
  std::unique_lock<std::mutex> of_lock;
  if (of) of_lock = std::unique_lock<std::mutex>(of->mu);
  auto attr = fs->ns().Attr(spec);
  if (!attr.ok() && attr.status().is_not_found() && of && of->orphan) {
    attr = EntryAttr(*of->orphan, fs->ns().identity());
    attr->st_nlink = 0;
  }
  SFS_ASSIGN_OR_RETURN(struct stat st, std::move(attr));
  st.st_ino = InodeNumber(ino, spec);
  if (of) OverlayPendingLocked(*of, &st);
  else OverlayLiveAttr(fs, spec, &st);
  return st;
}

// Before a name of a file goes away (unlink, rename over it): if handles
// are open on it, they keep its record (OpenFile::orphan).
void KeepOrphanIfOpen(Filesystem* fs, const NodeSpec& parent, const std::string& name) {
  if (!fs->AnyOpenFiles()) return;  // spares a catalog query per file of rm -rf
  auto child = fs->ns().Lookup(parent, name);
  if (!child.ok() || child->kind != NodeKind::kFile) return;
  auto of = fs->Find(child->record_id);
  if (!of) return;
  // Read under the lock, so that a commit is either in the record read
  // here or updates the orphan itself (CommitPublished).
  std::lock_guard lock(of->mu);
  auto e = fs->catalog().EntryById(child->record_id);
  if (!e.ok()) return;
  of->orphan = std::move(*e);
}

fuse_entry_param EntryParam(Filesystem* fs, const Node& node, const struct stat& st) {
  fuse_entry_param e{};
  e.ino = node.ino;
  e.generation = 0;
  e.attr = st;
  e.attr.st_ino = InodeNumber(node.ino, node.spec);
  e.attr_timeout = fs->options().attr_timeout;
  e.entry_timeout = fs->options().entry_timeout;
  return e;
}

// Resolves a new child node and answers the request with it.
void ReplyNewEntry(fuse_req_t req, fuse_ino_t parent, const std::string& name, const NodeSpec& spec,
                   const char* op, const Entry* found = nullptr) {
  Filesystem* fs = Fs(req);
  Node node = fs->nodes().Resolve(parent, name, spec, 1);
  auto attrs = [&]() -> Result<struct stat> {
    if (!found) return NodeAttr(fs, node.ino, spec);
    // The entry the lookup found, read after OpLookup saw no open file: no
    // version was pending or being committed, so it is the record NodeAttr
    // would read. A file opened since then changes its size through the
    // kernel, which drops attributes of a reply older than its own change.
    struct stat a = EntryAttr(*found, fs->ns().identity());
    a.st_ino = InodeNumber(node.ino, spec);
    return a;
  };
  auto st = attrs();
  if (!st.ok()) {
    fs->nodes().Forget(node.ino, 1);
    return ReplyStatus(req, op, fs->PathOf(parent, name), st.status());
  }
  fuse_entry_param e = EntryParam(fs, node, *st);
  if (fuse_reply_entry(req, &e) != 0) fs->nodes().Forget(node.ino, 1);
}

// structures/<s> exists only while a labelling names it: after a slide's
// labellings change (slide.json, rmdir of the slide) a vanished structure's
// cached name would otherwise still stat for entry_timeout. Structure nodes
// all have record id 0, so this reaches every one of them.
void PostStructures(Filesystem* fs) { fs->invalidator().PostRecord(NodeKind::kStructure, 0); }

// After a change to the record at (parent, name): every other path of it.
void PostChanged(Filesystem* fs, fuse_ino_t parent, const std::string& name) {
  if (auto ino = fs->nodes().Find(parent, name))
    if (auto n = fs->nodes().Get(*ino)) {
      if (n->spec.kind == NodeKind::kFile || n->spec.kind == NodeKind::kSymlink) {
        // A file is one inode (NodeTable): the kernel updates the name the
        // request came through itself; only its other names need a note.
        // (Most files have one name: renames and unlinks of rsync and rm
        // then cost no notification.)
        fs->invalidator().PostRecordExcept(n->spec.kind, n->spec.record_id, parent, name);
        return;
      }
      fs->invalidator().PostRecord(n->spec.kind, n->spec.record_id);
      if (n->spec.kind == NodeKind::kSlide) PostStructures(fs);
    }
}

enum class Notices { kQueue, kAwait };

// After a change to the record a node stands for (tags, fields, sidecar).
// kAwait: the notices are sent before the reply (within Drain's bound), so a
// record renamed through a sidecar's close or user.samplefs.reference is
// gone from every path when close() or setfattr returns (the test of the
// latter flaked under load while they were still queued). Only for requests
// that hold no directory lock: the notices drop names in the record's
// parents (a rename holds the sidecar's directory and queues instead). A
// file's, folder's or symlink's xattrs change no name and no attribute the
// kernel caches: nothing to wait for.
void PostChangedNode(Filesystem* fs, const NodeSpec& spec, Notices notices) {
  fs->invalidator().PostRecord(spec.kind, spec.record_id);
  if (spec.kind == NodeKind::kSidecar) {
    static const std::pair<Entity, NodeKind> kDirs[] = {
        {Entity::kSpecies, NodeKind::kSpecies}, {Entity::kSample, NodeKind::kSample},
        {Entity::kDye, NodeKind::kDye}, {Entity::kSlide, NodeKind::kSlide},
        {Entity::kImage, NodeKind::kImage}};
    for (auto [e, k] : kDirs)
      if (e == spec.entity) fs->invalidator().PostRecord(k, spec.record_id);
    if (spec.entity == Entity::kSlide) PostStructures(fs);
  }
  if (notices == Notices::kAwait && spec.kind != NodeKind::kFile && spec.kind != NodeKind::kSymlink &&
      spec.kind != NodeKind::kFolder)
    fs->invalidator().Drain();
}

// After a change to the contents of directory `dir` (inode `ino`) made
// through the mount: the kernel keeps listings of folders inside files/
// (OpOpendir) and drops only the one of the inode the change came through,
// so every other path of the folder is told, before the reply (see
// Invalidator::InvalidateListings), so that the next `ls` of any path
// shows the change. Other directories are never cached.
void DropListings(Filesystem* fs, const NodeSpec& dir, fuse_ino_t ino, const std::string& name) {
  // The name may be cached as absent through the other paths (negative
  // lookups, MountOptions::negative_timeout): those notices are queued (the
  // kernel takes the other directory's lock for them) and awaited, within
  // Drain's bound, so a stat through any path finds what `ls` shows. Most
  // folders have one path: nothing is queued and nothing awaited.
  if (dir.kind == NodeKind::kFolder && fs->invalidator().InvalidateListings(dir.record_id, ino, name))
    fs->invalidator().Drain();
}

bool ParentSpec(fuse_req_t req, fuse_ino_t parent, NodeSpec* spec) {
  auto node = Fs(req)->nodes().Get(parent);
  if (!node) {
    fuse_reply_err(req, ESTALE);
    return false;
  }
  *spec = node->spec;
  return true;
}


// ---------------------------------------------------------------------------

void OpInit(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
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

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  // The entry found gives the reply's attributes only if no file was open
  // before it was read: a version being committed meanwhile would make it
  // stale, and the kernel would keep the old size for attr_timeout
  // (NodeAttr reads the record after looking for the open file instead).
  // The concurrent difftest caught the other order.
  const bool none_open = !fs->AnyOpenFiles();
  std::optional<Entry> found;
  auto child = [&]() -> Result<NodeSpec> {
    if (ps.kind != NodeKind::kFolder || !none_open) return fs->ns().Lookup(ps, name);
    auto e = fs->ns().LookupEntry(ps, name);
    if (!e.ok()) return e.status();
    found = std::move(*e);
    return Namespace::SpecOf(*found);
  }();
  if (!child.ok() && child.status().is_not_found()) {
    if (auto dir = RecordDir(ps); dir && fs->scratch().Get(dir->first, dir->second, name))
      child = ScratchSpec(dir->first, dir->second, name);
  }
  if (!child.ok() && child.status().is_not_found() && ps.kind == NodeKind::kFolder &&
      fs->options().negative_timeout > 0) {
    // Remembered as absent for negative_timeout (see MountOptions).
    fuse_entry_param e{};
    e.entry_timeout = fs->options().negative_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (!child.ok()) return ReplyStatus(req, "lookup", fs->PathOf(parent, name), child.status());
  // A file the kernel holds no inode for: listed lean and now stat'ed.
  // Listings turn rich; one that the kernel caches lean is dropped, so the
  // reader that stats (ls -l after ls) gets the rest of it with attributes
  // instead of sending a LOOKUP per file (it continues from its cookie).
  if (child->kind == NodeKind::kFile || child->kind == NodeKind::kSymlink) {
    fs->FileLookedUp();
    if (ps.kind == NodeKind::kFolder && fs->TakeLeanListing(parent)) fs->invalidator().DropListing(parent);
  }
  ReplyNewEntry(req, parent, name, *child, "lookup", found ? &*found : nullptr);
  SFS_FUSE_CATCH("lookup")
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req)->nodes().Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Fs(req)->nodes().Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  auto st = NodeAttr(fs, ino, node->spec);
  if (!st.ok()) return ReplyStatus(req, "getattr", fs->PathOf(ino), st.status());
  fuse_reply_attr(req, &*st, fs->options().attr_timeout);
  SFS_FUSE_CATCH("getattr")
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  const NodeSpec& spec = node->spec;
  std::string path = fs->PathOf(ino);
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    const auto& id = fs->ns().identity();
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != id.uid) ||
        ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != id.gid))
      return ReplyStatus(req, "chown", path,
                         Status(Code::kPermission, "files in the catalog belong to the mounting user"));
  }
  bool is_entry = spec.kind == NodeKind::kFile || spec.kind == NodeKind::kFolder ||
                  spec.kind == NodeKind::kSymlink;
  std::shared_ptr<FileHandle> fh = fi ? Handle(req, fi) : nullptr;
  if (spec.kind == NodeKind::kScratch) {
    auto f = fs->scratch().Get(spec.entity, spec.record_id, spec.text);
    if (!f) return (void)fuse_reply_err(req, ENOENT);
    std::lock_guard lock(f->mu);
    if (to_set & FUSE_SET_ATTR_SIZE) {
      if (static_cast<size_t>(attr->st_size) > ScratchFiles::kMaxFileBytes)
        return ReplyStatus(req, "truncate", path, Status(Code::kTooBig, "temporary files are limited to 1 MiB"));
      f->data.resize(static_cast<size_t>(attr->st_size));
    }
    if (to_set & FUSE_SET_ATTR_MODE) f->mode = attr->st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_MTIME)
      f->mtime_ns = static_cast<int64_t>(attr->st_mtim.tv_sec) * 1000000000 + attr->st_mtim.tv_nsec;
  } else if (spec.kind == NodeKind::kSidecar && fh && fh->kind == FileHandle::Kind::kSidecarEdit &&
             (to_set & FUSE_SET_ATTR_SIZE)) {
    std::lock_guard lock(fh->mu);
    if (static_cast<size_t>(attr->st_size) > kMaxSidecarBytes) fh->oversize = true;
    else fh->edit.resize(static_cast<size_t>(attr->st_size));
    fh->edited = true;
  } else if (!is_entry) {
    // A chmod to the mode the node already has changes nothing and is
    // accepted: vim fchmods the sidecar it just saved, cp -p restores modes.
    bool same_mode = false;
    if ((to_set & FUSE_SET_ATTR_MODE) && !(to_set & FUSE_SET_ATTR_SIZE)) {
      auto cur = NodeAttr(fs, ino, spec);
      same_mode = cur.ok() && (cur->st_mode & 07777) == (attr->st_mode & 07777);
    }
    if ((to_set & FUSE_SET_ATTR_SIZE) || ((to_set & FUSE_SET_ATTR_MODE) && !same_mode))
      return ReplyStatus(req, "setattr", path,
                         Status(Code::kPermission, std::string("cannot change the size or mode of ") +
                                                       NodeKindName(spec.kind)));
    // Times of records and generated files are derived; touching them is
    // accepted and has no effect (tar and cp -a set them on directories).
  } else {
    int64_t id = spec.record_id;
    if ((to_set & FUSE_SET_ATTR_SIZE) && spec.kind == NodeKind::kFile) {
      auto of = fh && fh->of ? fh->of : fs->Acquire(id);
      Status s;
      std::shared_ptr<CommitJob> job;
      {
        std::lock_guard lock(of->mu);
        s = fs->EnsureWriterLocked(*of, attr->st_size == 0);
        if (s.ok()) s = of->writer->Truncate(static_cast<uint64_t>(attr->st_size));
        if (s.ok()) of->mtime_ns = NowNs();
        // truncate(1) with no open handle commits at once, and says if it failed.
        if (s.ok() && of->writers == 0) job = fs->SealLocked(of, false, path);
        if (!s.ok() && of->writers == 0 && !of->sealed) fs->DropVersionLocked(*of);
      }
      if (job) {
        s = Committer::Wait(*job);
        std::lock_guard lock(of->mu);
        // Reported, so not kept (as a failed write is not).
        if (!s.ok() && of->writers == 0 && of->writer == job->writer) {
          fs->DropVersionLocked(*of);
          of->sealed = false;
        }
      }
      fs->MaybeRelease(of);
      if (!s.ok()) return ReplyStatus(req, "truncate", path, s);
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
      return ReplyStatus(req, "truncate", path, Status(Code::kInvalidArgument, "not a file"));
    }
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
      int64_t mtime = -1;
      if (to_set & FUSE_SET_ATTR_MTIME_NOW) mtime = NowNs();
      else if (to_set & FUSE_SET_ATTR_MTIME)
        mtime = static_cast<int64_t>(attr->st_mtim.tv_sec) * 1000000000 + attr->st_mtim.tv_nsec;
      bool pending = false;
      if (spec.kind == NodeKind::kFile) {
        if (auto of = fs->Find(id)) {
          std::lock_guard lock(of->mu);
          // A version not yet committed takes the time and mode with it
          // (cp -a, rsync and tar set both right after close): no
          // transaction of their own.
          if (of->writer) {
            if (mtime >= 0) of->mtime_ns = mtime;
            if (to_set & FUSE_SET_ATTR_MODE) of->pending_mode = attr->st_mode & 07777;
            pending = true;
          }
        }
      }
      if (!pending) {
        Transaction txn(fs->catalog());
        auto e = fs->catalog().EntryById(id);
        Status s = txn.status();
        if (s.ok()) s = e.status();
        if (s.ok()) {
          if ((to_set & FUSE_SET_ATTR_MODE) && e->type != EntryType::kSymlink) e->mode = attr->st_mode & 07777;
          if (mtime >= 0) e->mtime_ns = mtime;
          s = fs->catalog().UpdateEntry(*e);
        }
        if (s.ok()) s = txn.Commit();
        if (!s.ok()) return ReplyStatus(req, "setattr", path, s);
      }
    }
  }
  auto st = NodeAttr(fs, ino, spec);
  if (!st.ok()) return ReplyStatus(req, "setattr", path, st.status());
  // The reply updates this inode; the record's other inodes (a folder has
  // one per path) cache the old mode, size or time for attr_timeout
  // otherwise. This inode is left alone: the notice would arrive after the
  // reply and throw away the attributes it carries (rsync's stat after
  // utimensat then costs a GETATTR).
  if (is_entry) fs->invalidator().PostAttrs(spec.kind, spec.record_id, ino);
  fuse_reply_attr(req, &*st, fs->options().attr_timeout);
  SFS_FUSE_CATCH("setattr")
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  if (node->spec.kind != NodeKind::kSymlink) return (void)fuse_reply_err(req, EINVAL);
  auto e = fs->catalog().EntryById(node->spec.record_id);
  if (!e.ok()) return ReplyStatus(req, "readlink", fs->PathOf(ino), e.status());
  fuse_reply_readlink(req, e->target.c_str());
  SFS_FUSE_CATCH("readlink")
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  auto spec = fs->ns().Mkdir(ps, name, mode & ~fuse_req_ctx(req)->umask, UserName(req));
  if (!spec.ok()) return ReplyStatus(req, "mkdir", fs->PathOf(parent, name), spec.status());
  DropListings(fs, ps, parent, name);
  ReplyNewEntry(req, parent, name, *spec, "mkdir");
  SFS_FUSE_CATCH("mkdir")
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  if (!S_ISREG(mode))
    return ReplyStatus(req, "mknod", fs->PathOf(parent, name),
                       Status(Code::kPermission, "device nodes, FIFOs and sockets cannot be "
                                                 "stored in the catalog"));
  // mknod(S_IFREG) creates an empty regular file: tar --xattrs does this
  // to set a file's attributes before it writes the data.
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status ready = fs->EnsureEmptyObject();
  if (!ready.ok()) return ReplyStatus(req, "mknod", fs->PathOf(parent, name), ready);
  auto e = fs->ns().CreateFile(ps, name, mode & ~fuse_req_ctx(req)->umask, fs->empty_hash());
  if (!e.ok()) return ReplyStatus(req, "mknod", fs->PathOf(parent, name), e.status());
  DropListings(fs, ps, parent, name);
  NodeSpec spec;
  spec.kind = NodeKind::kFile;
  spec.record_id = e->id;
  ReplyNewEntry(req, parent, name, spec, "mknod");
  SFS_FUSE_CATCH("mknod")
}

void OpLink(fuse_req_t req, fuse_ino_t, fuse_ino_t parent, const char* name) {
  Filesystem* fs = Fs(req);
  ReplyStatus(req, "link", fs->PathOf(parent, name),
              Status(Code::kPermission, "hard links cannot be stored in the catalog; copy the file "
                                        "(identical contents are stored once) or use a symlink"));
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status s;
  auto dir = RecordDir(ps);
  if (dir && fs->scratch().Get(dir->first, dir->second, name)) {
    s = fs->scratch().Remove(dir->first, dir->second, name);
  } else {
    KeepOrphanIfOpen(fs, ps, name);
    s = fs->ns().Unlink(ps, name);
  }
  if (!s.ok()) return ReplyStatus(req, "unlink", fs->PathOf(parent, name), s);
  PostChanged(fs, parent, name);
  DropListings(fs, ps, parent, name);
  fs->nodes().Unbind(parent, name);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("unlink")
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status s = fs->ns().Rmdir(ps, name);
  if (!s.ok()) return ReplyStatus(req, "rmdir", fs->PathOf(parent, name), s);
  PostChanged(fs, parent, name);
  DropListings(fs, ps, parent, name);
  fs->nodes().Unbind(parent, name);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("rmdir")
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  auto e = fs->ns().Symlink(ps, name, link);
  if (!e.ok()) return ReplyStatus(req, "symlink", fs->PathOf(parent, name), e.status());
  DropListings(fs, ps, parent, name);
  NodeSpec spec;
  spec.kind = NodeKind::kSymlink;
  spec.record_id = e->id;
  ReplyNewEntry(req, parent, name, spec, "symlink");
  SFS_FUSE_CATCH("symlink")
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps, nps;
  if (!ParentSpec(req, parent, &ps) || !ParentSpec(req, newparent, &nps)) return;
  auto dir = RecordDir(ps);
  if (dir && fs->scratch().Get(dir->first, dir->second, name)) {
    // An editor's temporary file: renamed over the sidecar it is applied,
    // renamed to another temporary name it just moves.
    std::string path = fs->PathOf(newparent, newname);
    if (!(RecordDir(nps) == dir))
      return ReplyStatus(req, "rename", path, Status(Code::kPermission, "temporary files stay in their directory"));
    auto target = fs->ns().Lookup(nps, newname);
    if (target.ok() && target->kind == NodeKind::kSidecar) {
      auto f = fs->scratch().Get(dir->first, dir->second, name);
      std::string doc;
      {
        std::lock_guard lock(f->mu);
        doc = f->data;
      }
      Status s = ApplySidecar(fs->catalog(), dir->first, dir->second, doc);
      if (!s.ok()) return ReplyStatus(req, "rename", path, s);
      PostChangedNode(fs, *target, Notices::kQueue);
      (void)fs->scratch().Remove(dir->first, dir->second, name);
      if (auto ino = fs->nodes().Rename(parent, name, newparent, newname)) fs->nodes().SetSpec(*ino, *target);
      return (void)fuse_reply_err(req, 0);
    }
    if (target.ok()) return ReplyStatus(req, "rename", path, Status(Code::kPermission, "cannot replace " + std::string(NodeKindName(target->kind))));
    if ((flags & 1) && fs->scratch().Get(dir->first, dir->second, newname))
      return ReplyStatus(req, "rename", path, Status(Code::kAlreadyExists, "'" + std::string(newname) + "' exists"));
    Status s = fs->scratch().Rename(dir->first, dir->second, name, newname);
    if (!s.ok()) return ReplyStatus(req, "rename", path, s);
    if (auto ino = fs->nodes().Rename(parent, name, newparent, newname))
      fs->nodes().SetSpec(*ino, ScratchSpec(dir->first, dir->second, newname));
    return (void)fuse_reply_err(req, 0);
  }
  KeepOrphanIfOpen(fs, nps, newname);  // replaced by the rename
  auto r = fs->ns().Rename(ps, name, nps, newname, flags);
  if (!r.ok()) return ReplyStatus(req, "rename", fs->PathOf(parent, name), r.status());
  PostChanged(fs, parent, name);  // also the old name on other paths
  if (nps == ps) {
    DropListings(fs, ps, parent, newname);
  } else {
    DropListings(fs, ps, parent, {});
    DropListings(fs, nps, newparent, newname);
  }
  fs->nodes().Rename(parent, name, newparent, newname);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("rename")
}

// Opens a file's current object for reading (kNotFound/kCorrupt -> EIO
// with a log line naming the object).
Result<std::shared_ptr<Fd>> OpenEntryObject(Filesystem* fs, const Entry& e, const std::string& path) {
  auto h = ContentHash::FromHex(e.hash);
  if (!h) return Status(Code::kCorrupt, "file record has an invalid hash");
  if (e.size == 0 && e.hash == fs->empty_hash()) {
    // Nothing to read: an empty file opens even if gc --grace 0 removed
    // the empty object between a create and its record.
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open /dev/null");
    return std::make_shared<Fd>(fd);
  }
  auto fd = fs->store().OpenObject(*h);
  if (!fd.ok()) {
    spdlog::error("object {} of {} cannot be opened: {}", e.hash, path, fd.status().ToString());
    return Status(Code::kCorrupt, "object " + e.hash + " is missing from the store");
  }
  auto owned = std::make_shared<Fd>(*fd);
  // An object shorter (or longer) than its record would read as a silently
  // different file (cp copies half and succeeds); one fstat catches it.
  // Flipped bytes are left to fsck --verify (see DECISIONS.md, Faults).
  struct stat st;
  if (::fstat(owned->fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != e.size) {
    spdlog::error("object {} of {} has {} bytes but its record says {}: changed behind the catalog's back",
                  e.hash, path, static_cast<int64_t>(st.st_size), e.size);
    return Status(Code::kCorrupt, "object " + e.hash + " is damaged: its size differs from the record's");
  }
  return owned;
}

// A handle opened write-only (how cp and tar open a file) bypasses the
// kernel's page cache: each write() goes from the caller's buffer to the
// staging file with one copy fewer, and a copied file does not sit in memory
// twice (the mount's pages and the staging file's). The kernel drops cached
// pages of the range a direct write covers, so other handles stay coherent.
// Handles that can read keep the page cache: mmap needs it (rsync opens its
// temporary file O_RDWR).
unsigned WriteOnlyDirect(const fuse_file_info* fi) { return (fi->flags & O_ACCMODE) == O_WRONLY ? 1 : 0; }

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  const NodeSpec& spec = node->spec;
  std::string path = fs->PathOf(ino);
  bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
  auto h = std::make_unique<FileHandle>();
  h->spec = spec;
  h->ino = ino;
  h->writable = writable;
  switch (spec.kind) {
    case NodeKind::kFile: {
      if (writable) {
        if (fs->options().read_only) return ReplyStatus(req, "open", path, Status(Code::kReadOnly, "read-only mount"));
        fs->committer().Throttle();
        h->kind = FileHandle::Kind::kLive;
        h->of = fs->Acquire(spec.record_id);
        Status s;
        {
          std::lock_guard lock(h->of->mu);
          ++h->of->writers;
          if (fi->flags & O_TRUNC) {
            auto e = fs->catalog().EntryById(spec.record_id);
            s = e.status();
            // Truncating an empty file changes nothing: no new version.
            if (s.ok() && (e->size > 0 || h->of->writer)) {
              s = fs->EnsureWriterLocked(*h->of, true);
              if (s.ok()) s = h->of->writer->Truncate(0);
              h->of->mtime_ns = NowNs();
            }
          }
          if (!s.ok()) --h->of->writers;
        }
        if (!s.ok()) {
          fs->MaybeRelease(h->of);
          return ReplyStatus(req, "open", path, s);
        }
        fi->keep_cache = 0;
        fi->direct_io = WriteOnlyDirect(fi);
      } else {
        auto of = fs->Find(spec.record_id);
        bool live = false;
        if (of) {
          std::lock_guard lock(of->mu);
          live = of->writer != nullptr;
        }
        if (live) {
          h->kind = FileHandle::Kind::kLive;
          h->of = of;
          fi->keep_cache = 0;
        } else {
          auto e = fs->catalog().EntryById(spec.record_id);
          if (!e.ok()) return ReplyStatus(req, "open", path, e.status());
          auto fd = OpenEntryObject(fs, *e, path);
          if (!fd.ok()) return ReplyStatus(req, "open", path, fd.status());
          h->kind = FileHandle::Kind::kObject;
          h->fd = *fd;
          h->fd_hash = e->hash;
          // Held so an unlink or rename over the file can leave its record
          // to this handle (fstat of an open, deleted file).
          h->of = fs->Acquire(spec.record_id);
          // Objects never change: the kernel may keep cached pages as long
          // as this inode still shows the same object.
          fi->keep_cache = fs->KeepCache(ino, e->hash);
        }
      }
      break;
    }
    case NodeKind::kSidecar:
    case NodeKind::kStatusFile:
    case NodeKind::kErrorsFile: {
      if (writable && spec.kind == NodeKind::kSidecar) {
        if (fs->options().read_only) return ReplyStatus(req, "open", path, Status(Code::kReadOnly, "read-only mount"));
        // The document is edited in memory and applied when closed.
        h->kind = FileHandle::Kind::kSidecarEdit;
        if (fi->flags & O_TRUNC) {
          h->edited = true;
        } else {
          auto t = fs->ns().Render(spec);
          if (!t.ok()) return ReplyStatus(req, "open", path, t.status());
          h->edit = std::move(*t);
        }
        fi->direct_io = 1;
        break;
      }
      if (writable)
        return ReplyStatus(req, "open", path, Status(Code::kPermission, "generated files are read-only"));
      h->kind = FileHandle::Kind::kText;
      if (spec.kind == NodeKind::kErrorsFile) {
        h->text = fs->errors().Text();
      } else {
        auto t = fs->ns().Render(spec);
        if (!t.ok()) return ReplyStatus(req, "open", path, t.status());
        h->text = std::move(*t);
      }
      // Generated text may change size between stat and read.
      fi->direct_io = 1;
      break;
    }
    case NodeKind::kScratch: {
      h->kind = FileHandle::Kind::kScratch;
      h->scratch = fs->scratch().Get(spec.entity, spec.record_id, spec.text);
      if (!h->scratch) return (void)fuse_reply_err(req, ENOENT);
      if (writable && (fi->flags & O_TRUNC)) {
        std::lock_guard lock(h->scratch->mu);
        h->scratch->data.clear();
      }
      fi->direct_io = 1;
      break;
    }
    default:
      return (void)fuse_reply_err(req, EISDIR);
  }
  // close() of a read-only handle has nothing to report (OpFlush acts on
  // writers only): spare the FLUSH round trip (cat, cmp, rsync's lchmod).
  if (!writable) fi->noflush = 1;
  fi->fh = fs->AddHandle(std::move(h));
  if (fuse_reply_open(req, fi) != 0) {
    auto drop = fs->TakeHandle(fi->fh);
    if (drop->of) {
      if (drop->writable) {
        std::lock_guard lock(drop->of->mu);
        --drop->of->writers;
      }
      fs->MaybeRelease(drop->of);
    }
  }
  SFS_FUSE_CATCH("open")
}

// Answers create() with a writable handle on the file `node` (resolved with
// one lookup reference, which is dropped again if the answer fails).
// `truncate` empties a non-empty file first; `mtime_ns` seeds the pending
// version's time (0: keep).
void ReplyWritableCreate(fuse_req_t req, fuse_file_info* fi, const Node& node,
                         const struct stat& st, bool truncate, int64_t mtime_ns,
                         const std::string& path) {
  Filesystem* fs = Fs(req);
  fs->committer().Throttle();
  auto h = std::make_unique<FileHandle>();
  h->spec = node.spec;
  h->ino = node.ino;
  h->writable = true;
  h->kind = FileHandle::Kind::kLive;
  h->of = fs->Acquire(node.spec.record_id);
  Status s;
  {
    std::lock_guard lock(h->of->mu);
    ++h->of->writers;
    if (truncate && (st.st_size > 0 || h->of->writer)) {
      s = fs->EnsureWriterLocked(*h->of, true);
      if (s.ok()) s = h->of->writer->Truncate(0);
      h->of->mtime_ns = NowNs();
    } else if (mtime_ns) {
      h->of->mtime_ns = mtime_ns;
    }
    if (!s.ok()) --h->of->writers;
  }
  if (!s.ok()) {
    fs->MaybeRelease(h->of);
    fs->nodes().Forget(node.ino, 1);
    return ReplyStatus(req, "create", path, s);
  }
  fuse_entry_param ep = EntryParam(fs, node, st);
  fi->direct_io = WriteOnlyDirect(fi);
  fi->fh = fs->AddHandle(std::move(h));
  if (fuse_reply_create(req, &ep, fi) != 0) {
    auto drop = fs->TakeHandle(fi->fh);
    {
      std::lock_guard lock(drop->of->mu);
      --drop->of->writers;
    }
    fs->MaybeRelease(drop->of);
    fs->nodes().Forget(node.ino, 1);
  }
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  std::string path = fs->PathOf(parent, name);
  if (!S_ISREG(mode)) return ReplyStatus(req, "create", path, Status(Code::kPermission, "only regular files"));
  if (auto dir = RecordDir(ps)) {
    // Editors' temporary files next to a sidecar (see fs/scratch.h).
    if (fs->ns().Lookup(ps, name).ok())
      return ReplyStatus(req, "create", path, Status(Code::kAlreadyExists, "'" + std::string(name) + "' exists"));
    Status valid = ValidateName(name);
    if (!valid.ok()) return ReplyStatus(req, "create", path, valid);
    auto f = fs->scratch().Create(dir->first, dir->second, name, mode & ~fuse_req_ctx(req)->umask);
    if (!f.ok()) return ReplyStatus(req, "create", path, f.status());
    NodeSpec spec = ScratchSpec(dir->first, dir->second, name);
    Node node = fs->nodes().Resolve(parent, name, spec, 1);
    auto st = NodeAttr(fs, node.ino, spec);
    if (!st.ok()) {
      fs->nodes().Forget(node.ino, 1);
      return ReplyStatus(req, "create", path, st.status());
    }
    auto h = std::make_unique<FileHandle>();
    h->spec = spec;
    h->ino = node.ino;
    h->writable = true;
    h->kind = FileHandle::Kind::kScratch;
    h->scratch = *f;
    fi->direct_io = 1;
    fuse_entry_param ep = EntryParam(fs, node, *st);
    fi->fh = fs->AddHandle(std::move(h));
    if (fuse_reply_create(req, &ep, fi) != 0) {
      fs->TakeHandle(fi->fh);
      fs->nodes().Forget(node.ino, 1);
    }
    return;
  }
  Status ready = fs->EnsureEmptyObject();
  if (!ready.ok()) return ReplyStatus(req, "create", path, ready);
  auto e = fs->ns().CreateFile(ps, name, mode & ~fuse_req_ctx(req)->umask, fs->empty_hash());
  if (!e.ok()) {
    // O_CREAT without O_EXCL on an existing name is an open.
    if (e.status().is_exists() && !(fi->flags & O_EXCL)) {
      auto existing = fs->ns().Lookup(ps, name);
      if (existing.ok() && existing->kind == NodeKind::kFile) {
        Node node = fs->nodes().Resolve(parent, name, *existing, 1);
        auto st = NodeAttr(fs, node.ino, *existing);
        if (!st.ok()) {
          fs->nodes().Forget(node.ino, 1);
          return ReplyStatus(req, "create", path, st.status());
        }
        return ReplyWritableCreate(req, fi, node, *st, fi->flags & O_TRUNC, 0, path);
      }
    }
    return ReplyStatus(req, "create", path, e.status());
  }
  DropListings(fs, ps, parent, name);
  NodeSpec spec;
  spec.kind = NodeKind::kFile;
  spec.record_id = e->id;
  Node node = fs->nodes().Resolve(parent, name, spec, 1);
  auto st = NodeAttr(fs, node.ino, spec);
  if (!st.ok()) {
    fs->nodes().Forget(node.ino, 1);
    return ReplyStatus(req, "create", path, st.status());
  }
  ReplyWritableCreate(req, fi, node, *st, false, e->mtime_ns, path);
  SFS_FUSE_CATCH("create")
}

void ReplyFromFd(fuse_req_t req, const std::shared_ptr<Fd>& fd, size_t size, off_t off) {
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = fd->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  switch (h->kind) {
    case FileHandle::Kind::kText: {
      if (static_cast<size_t>(off) >= h->text.size()) return (void)fuse_reply_buf(req, nullptr, 0);
      size_t n = std::min(size, h->text.size() - static_cast<size_t>(off));
      fuse_reply_buf(req, h->text.data() + off, n);
      return;
    }
    case FileHandle::Kind::kScratch:
    case FileHandle::Kind::kSidecarEdit: {
      std::unique_lock lock(h->kind == FileHandle::Kind::kScratch ? h->scratch->mu : h->mu);
      const std::string& data = h->kind == FileHandle::Kind::kScratch ? h->scratch->data : h->edit;
      if (static_cast<size_t>(off) >= data.size()) return (void)fuse_reply_buf(req, nullptr, 0);
      size_t n = std::min(size, data.size() - static_cast<size_t>(off));
      std::string chunk = data.substr(static_cast<size_t>(off), n);
      lock.unlock();
      fuse_reply_buf(req, chunk.data(), chunk.size());
      return;
    }
    case FileHandle::Kind::kObject: {
      // Every handle reads the current version. The kernel keeps one page
      // cache per inode: a handle still reading the object it opened would
      // fill it with stale pages, and its short reads shrink the cached
      // size, which the writer's own reads then return (the concurrent
      // difftest caught this). Until a new version appears, splice as is.
      std::shared_ptr<Fd> fd;
      if (!h->of) return ReplyFromFd(req, h->fd, size, off);
      {
        std::lock_guard lock(h->of->mu);
        std::lock_guard hl(h->mu);
        if (!h->of->writer && (h->of->published_hash.empty() || h->of->published_hash == h->fd_hash)) fd = h->fd;
      }
      if (fd) return ReplyFromFd(req, fd, size, off);
      [[fallthrough]];  // into kLive: the staging file or the new object
    }
    case FileHandle::Kind::kLive: {
      std::shared_ptr<Fd> fd;
      {
        std::unique_lock lock(h->of->mu);
        if (h->of->writer) {
          // The growing staging file: copy out under the lock, because a
          // publish may retire the staging file right after.
          std::unique_ptr<char[]> buf(new char[size]);  // not zeroed: only *n bytes are sent
          auto n = h->of->writer->Read(buf.get(), size, static_cast<uint64_t>(off));
          lock.unlock();
          if (!n.ok()) return ReplyStatus(req, "read", fs->PathOf(h->ino), n.status());
          fuse_reply_buf(req, buf.get(), *n);
          return;
        }
        std::lock_guard hl(h->mu);
        auto e = fs->catalog().EntryById(h->spec.record_id);
        if (!e.ok() && e.status().is_not_found() && h->of->orphan) e = *h->of->orphan;
        if (!e.ok()) return ReplyStatus(req, "read", fs->PathOf(h->ino), e.status());
        if (!h->fd || h->fd_hash != e->hash) {
          auto nfd = OpenEntryObject(fs, *e, fs->PathOf(h->ino));
          if (!nfd.ok()) return ReplyStatus(req, "read", fs->PathOf(h->ino), nfd.status());
          h->fd = *nfd;
          h->fd_hash = e->hash;
        }
        fd = h->fd;
      }
      return ReplyFromFd(req, fd, size, off);
    }
  }
  SFS_FUSE_CATCH("read")
}

// Write-behind: may this write be answered before it is in the staging
// file? FUSE writes are synchronous for the program (cp waits for every
// answer), so copying a large file costs the sum of the program's read, the
// transfer, the page-cache write and the hash; answering first overlaps
// the last two with the program's next read, on the other core (a 2 GiB cp
// 1.3-1.7 s -> 1.0-1.2 s, docs/DECISIONS.md "Write-behind"). Only large writes deep
// into a file: the first kWriteBehindFrom bytes of every file are written
// before the answer, so small files (most of a copy's files) keep every
// error in the write() that caused it; and only while the store's disk has
// room (ObjectStore::WriteBehindRoom, -o write_behind_min_free), so ENOSPC
// on a nearly full disk is also reported by the write() that meets it.
constexpr uint64_t kWriteBehindFrom = uint64_t{8} << 20;
constexpr size_t kWriteBehindMinWrite = size_t{64} << 10;

bool WriteBehind(Filesystem* fs, size_t size, off_t off) {
  return size >= kWriteBehindMinWrite && static_cast<uint64_t>(off) + size > kWriteBehindFrom &&
         fs->store().WriteBehindRoom();
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  if (h->kind == FileHandle::Kind::kScratch || h->kind == FileHandle::Kind::kSidecarEdit) {
    bool scratch = h->kind == FileHandle::Kind::kScratch;
    std::lock_guard lock(scratch ? h->scratch->mu : h->mu);
    std::string& data = scratch ? h->scratch->data : h->edit;
    size_t limit = scratch ? ScratchFiles::kMaxFileBytes : kMaxSidecarBytes;
    size_t end = static_cast<size_t>(off) + size;
    if (end > limit) {
      if (scratch) return (void)fuse_reply_err(req, EFBIG);
      // Accepted but not kept: the close reports the document as too big.
      h->oversize = true;
      h->edited = true;
      return (void)fuse_reply_write(req, size);
    }
    if (data.size() < end) data.resize(end);
    data.replace(static_cast<size_t>(off), size, buf, size);
    h->edited = true;
    return (void)fuse_reply_write(req, size);
  }
  if (!h->writable || !h->of) return (void)fuse_reply_err(req, EBADF);
  Status s;
  bool answered = false;
  {
    std::lock_guard lock(h->of->mu);
    s = h->of->error;
    if (s.ok()) s = fs->EnsureWriterLocked(*h->of, false);
    if (s.ok() && WriteBehind(fs, size, off)) {
      // Answered first: the program reads its next block while this one
      // is written and hashed. The lock is held until the bytes are in the
      // staging file, so whatever follows the answer (a read, stat,
      // truncate, fsync or close of any handle) sees them.
      fuse_reply_write(req, size);
      answered = true;
      fs->NoteWriteBehind();
    }
    if (s.ok()) s = h->of->writer->Write(buf, size, static_cast<uint64_t>(off));
    if (s.ok()) h->of->mtime_ns = NowNs();
    // A failed write makes the pending version incomplete: it is never
    // published, and close() reports the error again (also the next write
    // and fsync, for a write that was answered before it failed).
    else if (h->of->error.ok()) h->of->error = s;
  }
  if (answered) {
    if (!s.ok()) fs->errors().Add("write", fs->PathOf(h->ino), s.message() + " (reported by the next write or close)");
    return;
  }
  if (!s.ok()) return ReplyStatus(req, "write", fs->PathOf(h->ino), s);
  fuse_reply_write(req, size);
  SFS_FUSE_CATCH("write")
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  Status s;
  if (h->kind == FileHandle::Kind::kSidecarEdit) {
    std::lock_guard lock(h->mu);
    if (h->edited) {
      h->edited = false;
      s = h->oversize ? Status(Code::kInvalidArgument, "document is over the 1 MiB limit")
                      : ApplySidecar(fs->catalog(), h->spec.entity, h->spec.record_id, h->edit);
      if (s.ok()) {
        PostChangedNode(fs, h->spec, Notices::kAwait);  // flush holds no lock
      }
      // Every rejection of a document is EINVAL at close (SPEC section 4).
      if (!s.ok() && s.code() != Code::kBusy && s.code() != Code::kIo && s.code() != Code::kNoSpace)
        s = Status(Code::kInvalidArgument, s.message());
    }
  } else if (h->writable && h->of) {
    std::shared_ptr<CommitJob> job;
    {
      std::lock_guard lock(h->of->mu);
      s = h->of->error;
      // The last writer's close: the version is committed at release (data
      // of a shared mmap may still come), or here with -o sync_close. A
      // version that failed is dropped at release, which still records a
      // chmod it carried: `sync DIR` waits for that release too.
      // Every close() of a writer seals what it leaves (a small file beside
      // the staging file), so that a daemon killed before the commit loses
      // nothing whose close() returned 0: the next mount verifies and
      // records it (ObjectStore's seals, catalog/recovery.h).
      if (s.ok() && h->of->writer && !h->of->sealed)
        s = h->of->writer->WriteSeal(fs->SealOf(*h->of, fs->PathOf(h->ino), true), false);
      if (h->of->writers == 1 && h->of->writer) {
        if (s.ok() && fs->options().sync_close) {
          job = fs->SealLocked(h->of, false, fs->PathOf(h->ino));
        } else if (!h->closing) {
          h->closing = true;
          fs->CloseStarted();
        }
      }
    }
    if (job) {
      s = Committer::Wait(*job);
      if (s.ok()) CrashPoint("before-reply");
    }
  }
  if (!s.ok()) return ReplyStatus(req, "close", fs->PathOf(h->ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("flush")
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = fs->TakeHandle(fi->fh);
  if (!h) return (void)fuse_reply_err(req, 0);
  if (h->writable && h->of) {
    std::lock_guard lock(h->of->mu);
    if (--h->of->writers == 0) {
      if (!h->of->error.ok()) {
        // The error was reported at write/close; drop the incomplete version.
        if (!h->of->sealed) fs->DropVersionLocked(*h->of);
        h->of->error = Status::Ok();
      } else if (h->of->writer && !h->of->sealed) {
        // Committed in the background with the other versions of this
        // moment; failures are retried and logged (fs/committer.h).
        fs->SealLocked(h->of, true, fs->PathOf(h->ino));
      }
    }
  }
  if (h->closing) fs->CloseEnded();
  if (h->of) fs->MaybeRelease(h->of);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("release")
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  Status s;
  std::shared_ptr<CommitJob> job;
  if (h->of) {
    std::lock_guard lock(h->of->mu);
    s = h->of->error;
    if (s.ok() && h->of->writer) {
      if (h->of->writers > 0 && !h->of->sealed) {
        // Still open for writing: made durable and recoverable where it is
        // (staging data, seal and directory fsynced), not published. An
        // acquisition that fsyncs every few MiB would otherwise publish a
        // new object of the whole file each time: a store growing with the
        // sum of the file's prefixes. The object is published once, when
        // the version is closed.
        s = h->of->writer->WriteSeal(fs->SealOf(*h->of, fs->PathOf(ino), false), true);
        if (s.ok()) CrashPoint("before-reply");
      } else {
        job = fs->SealLocked(h->of, false, fs->PathOf(ino));
      }
    }
  }
  if (job) {
    s = Committer::Wait(*job);
    if (s.ok()) CrashPoint("before-reply");
  }
  if (!s.ok()) return ReplyStatus(req, "fsync", fs->PathOf(ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fsync")
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  SFS_FUSE_TRY
  // Every directory change is committed before its reply; what this waits
  // for is the files closed before it, committed in the background (`sync
  // DIR` is the barrier for scripts that read the catalog next).
  Filesystem* fs = Fs(req);
  Status s = fs->WaitForCommits(std::chrono::seconds(60));
  if (!s.ok()) return ReplyStatus(req, "fsync", fs->PathOf(ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fsyncdir")
}

void OpFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  if (mode != 0) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if (!h->writable || !h->of) return (void)fuse_reply_err(req, EBADF);
  Status s;
  {
    std::lock_guard lock(h->of->mu);
    s = fs->EnsureWriterLocked(*h->of, false);
    uint64_t end = static_cast<uint64_t>(offset + length);
    if (s.ok() && end > h->of->writer->size()) s = h->of->writer->Truncate(end);
  }
  if (!s.ok()) return ReplyStatus(req, "fallocate", fs->PathOf(h->ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fallocate")
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                     off_t off_out, fuse_file_info* fi_out, size_t len, int) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto in = Handle(req, fi_in);
  auto out = Handle(req, fi_out);
  if (!in || !out) return (void)fuse_reply_err(req, EBADF);
  // Whole-file copy of a published file into an empty new file: record the
  // same object (an instant, deduplicated copy). Anything else falls back
  // to the kernel's read/write copy.
  if (in->kind == FileHandle::Kind::kObject && out->writable && out->of && off_in == 0 && off_out == 0) {
    auto src = fs->catalog().EntryById(in->spec.record_id);
    if (src.ok() && src->hash == in->fd_hash && len >= src->size) {
      std::lock_guard lock(out->of->mu);
      auto dst = fs->catalog().EntryById(out->spec.record_id);
      if (dst.ok() && !out->of->writer && dst->size == 0 && out->of->error.ok()) {
        dst->hash = src->hash;
        dst->size = src->size;
        dst->mtime_ns = NowNs();
        Status s = fs->catalog().UpdateEntry(*dst);
        if (!s.ok()) return ReplyStatus(req, "copy_file_range", fs->PathOf(out->ino), s);
        // The kernel updates the written inode itself (a file has one
        // inode for all its paths).
        fs->invalidator().PostAttrs(NodeKind::kFile, dst->id, out->ino);
        fuse_reply_write(req, src->size);
        return;
      }
    }
  }
  fuse_reply_err(req, EOPNOTSUPP);
  SFS_FUSE_CATCH("copy_file_range")
}

void OpReaddirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  // Not zeroed (the kernel asks for 128 KiB: zeroing it was 15% of the
  // daemon's time in a cold find); fuse_add_direntry* write every byte of
  // the entries they add, and only those `pos` bytes are sent.
  std::unique_ptr<char[]> buf(new char[size]);
  size_t pos = 0;
  auto add = [&](const std::string& name, const struct stat& st, fuse_entry_param* e, off_t next) {
    size_t need = plus ? fuse_add_direntry_plus(req, buf.get() + pos, size - pos, name.c_str(), e, next)
                       : fuse_add_direntry(req, buf.get() + pos, size - pos, name.c_str(), &st, next);
    if (need > size - pos) return false;
    pos += need;
    return true;
  };
  uint64_t cookie = static_cast<uint64_t>(off);
  // "." and ".." (the kernel takes no lookup reference for them).
  for (; cookie < kFirstCookie; ++cookie) {
    fuse_entry_param e{};
    e.attr.st_mode = S_IFDIR;
    e.attr.st_ino = cookie == 0 ? ino : node->parent;
    if (!add(cookie == 0 ? "." : "..", e.attr, &e, static_cast<off_t>(cookie + 1))) break;
  }
  Status s;
  if (cookie >= kFirstCookie) {
    const uint64_t epoch = fs->publish_epoch();  // before the page is read
    // The smallest entry: a name of 8 bytes or less (padded to 8).
    const size_t min_entry = plus ? fuse_add_direntry_plus(req, nullptr, 0, "x", nullptr, 0)
                                  : fuse_add_direntry(req, nullptr, 0, "x", nullptr, 0);
    const int fits = static_cast<int>((size - pos) / min_entry) + 1;
    // Files without attributes: no node here and no inode in the kernel
    // (plain readdir always; readdirplus unless listings are rich).
    const bool lean = !plus || !fs->RichListings();
    bool any_lean = false;
    // A lean READDIRPLUS answers at most this many files (the kernel asks
    // for ~6,000 entries' worth here): an `ls -l` stats each file of the
    // first answer with a LOOKUP before its next getdents turns listings
    // rich, so the answer's size is what that switch costs.
    int lean_left = 512;
    s = fs->ns().List(node->spec, cookie, [&](const DirEntry& d) {
      if (lean && (d.spec.kind == NodeKind::kFile || d.spec.kind == NodeKind::kSymlink)) {
        fuse_entry_param e{};  // ino 0: "no attributes for this entry"
        e.attr.st_mode = d.spec.kind == NodeKind::kFile ? S_IFREG : S_IFLNK;
        e.attr.st_ino = InodeNumber(0, d.spec);
        if (!add(d.name, e.attr, &e, static_cast<off_t>(d.next_cookie))) return false;
        any_lean = true;
        return !plus || --lean_left > 0;
      }
      struct stat st {};
      // An open file's record is read again under its lock (NodeAttr): the
      // listed one may predate a publish that just happened; so may any
      // file's once a publish committed during the listing (the concurrent
      // difftest saw ls report a closed file's previous size).
      bool open_file = d.spec.kind == NodeKind::kFile &&
                       (fs->Find(d.spec.record_id) || fs->publish_epoch() != epoch);
      if (d.attr && !open_file) {
        st = *d.attr;
        OverlayLiveAttr(fs, d.spec, &st);
      } else {
        auto a = NodeAttr(fs, 0, d.spec);
        if (!a.ok()) return true;  // vanished while listing: skip it
        st = *a;
      }
      Node child = fs->nodes().Resolve(ino, d.name, d.spec, plus ? 1 : 0);
      st.st_ino = InodeNumber(child.ino, d.spec);
      fuse_entry_param e = EntryParam(fs, child, st);
      if (!add(d.name, st, &e, static_cast<off_t>(d.next_cookie))) {
        if (plus) fs->nodes().Forget(child.ino, 1);
        return false;
      }
      return true;
    }, fits);
    if (any_lean && plus && node->spec.kind == NodeKind::kFolder) fs->NoteLeanListing(ino);
  }
  if (!s.ok() && pos == 0) return ReplyStatus(req, "readdir", fs->PathOf(ino), s);
  fuse_reply_buf(req, buf.get(), pos);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SFS_FUSE_TRY
  auto node = Fs(req)->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  // Folders inside files/ are the large directories (SPEC section 4: up to
  // 100,000 entries): the kernel keeps their listings (FOPEN_CACHE_DIR)
  // across opens (keep_cache; without it every opendir drops the cache).
  // Every change to a folder's contents through the mount drops the
  // listings of all its paths (DropListings), and a change by another
  // process drops them all (Invalidator's poll).
  // Generated directories (views, queries, tags) change with records
  // elsewhere and are not cached.
  if (node->spec.kind == NodeKind::kFolder) {
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
  }
  fuse_reply_open(req, fi);
  SFS_FUSE_CATCH("opendir")
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  SFS_FUSE_TRY
  OpReaddirCommon(req, ino, size, off, false);
  SFS_FUSE_CATCH("readdir")
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  SFS_FUSE_TRY
  OpReaddirCommon(req, ino, size, off, true);
  SFS_FUSE_CATCH("readdirplus")
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  SFS_FUSE_TRY
  // df's "used" is f_blocks - f_bfree: the bytes of the objects the
  // catalog references, while free/avail are the store disk's (what can
  // still be written). So the size is the sum of the two, not the disk's:
  // the disk also holds other things, which are not this mount's
  // (docs/DECISIONS.md, "df and stat -f").
  Filesystem* fs = Fs(req);
  uint64_t avail = 0, free_files = 0;
  Status s = fs->store().Space(&avail, nullptr, &free_files);
  if (!s.ok()) return ReplyStatus(req, "statfs", "/", s);
  auto usage = fs->CachedUsage();
  if (!usage.ok()) return ReplyStatus(req, "statfs", "/", usage.status());
  constexpr uint64_t kBlock = 4096;
  const uint64_t used_blocks = (static_cast<uint64_t>(usage->object_bytes) + kBlock - 1) / kBlock;
  struct statvfs st {};
  st.f_bsize = kBlock;
  st.f_frsize = kBlock;
  st.f_bfree = avail / kBlock;
  st.f_bavail = st.f_bfree;
  st.f_blocks = used_blocks + st.f_bfree;
  st.f_ffree = free_files;
  st.f_favail = free_files;
  st.f_files = static_cast<uint64_t>(usage->records) + free_files;
  st.f_namemax = kMaxNameBytes;
  fuse_reply_statfs(req, &st);
  SFS_FUSE_CATCH("statfs")
}

// security.*, system.* and trusted.* never reach the catalog: the kernel
// asks for security.capability before every write, and ls -l for ACLs.
bool IsUserXattr(const char* name) { return std::strncmp(name, "user.", 5) == 0; }

// A file's derived fields describe the version its readers see: while a
// version is pending (being written, or closed and not yet committed), its
// hash and size, not the record's. Without this a script that records
// checksums right after cp got the empty file's hash. Returns false when the
// catalog answers.
bool PendingFileXattr(Filesystem* fs, const NodeSpec& spec, std::string_view name, Result<std::string>* out) {
  if (spec.kind != NodeKind::kFile) return false;
  const bool hash = name == "user.samplefs.hash", size = name == "user.samplefs.size";
  if (!hash && !size) return false;
  auto of = fs->Find(spec.record_id);
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

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  SFS_FUSE_TRY
  // EOPNOTSUPP, not ENODATA: ls -l then stops asking for ACLs and
  // security.selinux on every file of the mount (8x faster cold ls -lR).
  if (!IsUserXattr(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Result<std::string> v = Status(Code::kNotFound, "");
  if (!PendingFileXattr(fs, node->spec, name, &v)) v = GetXattr(fs->catalog(), node->spec, name);
  if (!v.ok()) {
    if (v.status().is_not_found()) return (void)fuse_reply_err(req, ENODATA);
    return ReplyStatus(req, "getxattr", fs->PathOf(ino), v.status());
  }
  if (size == 0) return (void)fuse_reply_xattr(req, v->size());
  if (v->size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, v->data(), v->size());
  SFS_FUSE_CATCH("getxattr")
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  auto names = ListXattrs(fs->catalog(), node->spec);
  if (!names.ok()) return ReplyStatus(req, "listxattr", fs->PathOf(ino), names.status());
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
  Filesystem* fs = Fs(req);
  if (!IsUserXattr(name)) {
    // EOPNOTSUPP for ACLs makes cp -a fall back to chmod, which we store.
    if (std::strncmp(name, "trusted.", 8) == 0) return (void)fuse_reply_err(req, EPERM);
    return (void)fuse_reply_err(req, EOPNOTSUPP);
  }
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Status s = SetXattr(fs->catalog(), node->spec, name, std::string(value, size), flags);
  if (!s.ok()) {
    if (s.is_not_found()) {
      fs->errors().Add("setxattr", fs->PathOf(ino), s.message());
      return (void)fuse_reply_err(req, ENODATA);
    }
    return ReplyStatus(req, "setxattr", fs->PathOf(ino), s);
  }
  PostChangedNode(fs, node->spec, Notices::kAwait);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("setxattr")
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  SFS_FUSE_TRY
  Filesystem* fs = Fs(req);
  if (!IsUserXattr(name)) return (void)fuse_reply_err(req, ENODATA);
  auto node = fs->nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  Status s = RemoveXattr(fs->catalog(), node->spec, name);
  if (!s.ok()) {
    if (s.is_not_found()) return (void)fuse_reply_err(req, ENODATA);
    return ReplyStatus(req, "removexattr", fs->PathOf(ino), s);
  }
  PostChangedNode(fs, node->spec, Notices::kAwait);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("removexattr")
}

}  // namespace

// ---------------------------------------------------------------------------

Filesystem::Filesystem(Catalog& catalog, ObjectStore& store, MountOptions options)
    : catalog_(catalog),
      store_(store),
      options_(options),
      ns_(catalog, MountIdentity{getuid(), getgid(), time(nullptr)}),
      invalidator_(catalog, nodes_),
      committer_([this](std::vector<CommitJob*>& jobs, std::vector<Result<PublishedObject>>& objects,
                        std::vector<Status>& out) { CommitBatch(jobs, objects, out); },
                 [this](CommitJob& job, const Status& s, bool final) { CommitFailed(job, s, final); }) {
  ns_.set_status_hook([this](nlohmann::ordered_json& j) {
    j["mount"] = {{"kernel_inodes", nodes_.size()},
                  {"listings", RichListings() ? "rich" : "lean"},
                  {"writes_behind", writes_behind_.load(std::memory_order_relaxed)}};
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
    auto n = nodes_.Get(ino);
    if (!n) return "?" + path;
    path = "/" + n->name + path;
    ino = n->parent;
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

std::shared_ptr<OpenFile> Filesystem::Acquire(int64_t entry_id) {
  std::lock_guard lock(files_mu_);
  auto& slot = files_[entry_id];
  if (!slot) {
    slot = std::make_shared<OpenFile>();
    slot->entry_id = entry_id;
  }
  return slot;
}

bool Filesystem::AnyOpenFiles() {
  std::lock_guard lock(files_mu_);
  return !files_.empty();
}

std::shared_ptr<OpenFile> Filesystem::Find(int64_t entry_id) {
  std::lock_guard lock(files_mu_);
  auto it = files_.find(entry_id);
  return it == files_.end() ? nullptr : it->second;
}

void Filesystem::MaybeRelease(const std::shared_ptr<OpenFile>& of) {
  std::lock_guard lock(files_mu_);
  auto it = files_.find(of->entry_id);
  if (it == files_.end() || it->second != of) return;
  std::lock_guard ol(of->mu);
  // The table holds one reference and `of` is another: nobody else uses it.
  if (of->writers == 0 && !of->writer && of.use_count() <= 2) files_.erase(it);
}

Status Filesystem::EnsureWriterLocked(OpenFile& of, bool truncate_to_zero) {
  if (of.writer && !of.sealed && !of.writer->published()) return Status::Ok();
  SFS_ASSIGN_OR_RETURN(auto writer, store_.NewWriter());
  if (of.writer) {
    // Handed to the committer (final: it may be hashing it), or published
    // to the store but not recorded (the catalog transaction failed, e.g.
    // the catalog was locked; objects are immutable): that version is the
    // pending one, and changes go on in a copy of it.
    if (!truncate_to_zero) SFS_RETURN_IF_ERROR(writer->CopyFrom(of.writer->fd(), of.writer->size()));
    of.writer = std::move(writer);
    of.sealed = false;
    return Status::Ok();
  }
  if (!truncate_to_zero) {
    auto found = catalog_.EntryById(of.entry_id);
    if (!found.ok() && found.status().is_not_found() && of.orphan) found = *of.orphan;
    SFS_ASSIGN_OR_RETURN(Entry e, std::move(found));
    of.mtime_ns = e.mtime_ns;
    if (e.size > 0) {
      // Copy-on-write: the new version starts as the old content.
      // A missing or damaged object is EIO naming it, as for a read.
      SFS_ASSIGN_OR_RETURN(std::shared_ptr<Fd> fd, OpenEntryObject(this, e, "file #" + std::to_string(e.id)));
      SFS_RETURN_IF_ERROR(writer->CopyFrom(fd->fd, e.size));
    }
  }
  of.writer = std::move(writer);
  return Status::Ok();
}

std::shared_ptr<CommitJob> Filesystem::SealLocked(const std::shared_ptr<OpenFile>& of, bool background,
                                                  const std::string& path) {
  auto job = std::make_shared<CommitJob>();
  // Normally sealed by the close() before; data of a shared mmap written
  // back after it changes the content. Best effort: the version is being
  // committed now, and a failure here only narrows what a crash recovers.
  if (!of->sealed) {
    Status sealed = of->writer->WriteSeal(SealOf(*of, path, true), false);
    if (!sealed.ok()) spdlog::warn("sealing {}: {}", path, sealed.ToString());
  }
  // A writer handed over again (fsync while its release is being retried)
  // is the same version: whichever job records it first, the other finds
  // it recorded.
  if (!of->sealed) ++of->sealed_version;
  of->sealed = true;
  ++of->jobs;
  job->of = of;
  job->writer = of->writer;
  job->version = of->sealed_version;
  job->mtime_ns = of->mtime_ns;
  job->path = path;
  job->background = background;
  committer_.Submit(job);
  return job;
}

// The record update of one job, in the caller's transaction (of->mu held).
// Returns false if the job is recorded already or its file is gone.
Result<bool> Filesystem::RecordLocked(CommitJob& job, const PublishedObject& obj) {
  OpenFile& of = *job.of;
  if (job.version <= of.committed_version) return false;  // recorded already
  // A newer version being written may have its own mtime by now.
  int64_t mtime = of.writer == job.writer ? of.mtime_ns : job.mtime_ns;
  if (mtime == 0) mtime = NowNs();
  job.mtime_ns = mtime;
  CrashPoint("before-commit");
  auto e = catalog_.EntryById(of.entry_id);
  if (!e.ok()) {
    if (!e.status().is_not_found()) return e.status();
    return false;  // unlinked while open: FinishLocked updates the orphan
  }
  e->hash = obj.hash.hex();
  e->size = obj.size;
  e->mtime_ns = mtime;
  if (of.pending_mode) e->mode = *of.pending_mode;
  SFS_RETURN_IF_ERROR(catalog_.UpdateEntry(*e));
  return true;
}

// After the transaction committed (of->mu held).
void Filesystem::FinishLocked(CommitJob& job, const PublishedObject& obj, bool recorded) {
  OpenFile& of = *job.of;
  if (job.version > of.committed_version) {
    if (recorded || of.orphan) {
      // Unlinked while open: no record takes the data (the object stays
      // until gc), but the handles still open read and extend this
      // version, as POSIX has it, so the orphan's record follows it; and
      // an orphan kept for an unlink or rename-over in progress is this
      // version too.
      if (of.orphan) {
        of.orphan->hash = obj.hash.hex();
        of.orphan->size = obj.size;
        of.orphan->mtime_ns = job.mtime_ns;
        if (of.pending_mode) of.orphan->mode = *of.pending_mode;
      }
      of.published_hash = obj.hash.hex();
      of.pending_mode.reset();
    }
    of.committed_version = job.version;
    if (recorded) committed_versions_.fetch_add(1, std::memory_order_relaxed);
  }
  // Recorded (or its file is gone): nothing left for a recovery to do.
  job.writer->RemoveSeal();
  --of.jobs;
  if (of.writer == job.writer) {
    of.writer.reset();
    of.sealed = false;
  }
}

void Filesystem::DropVersionLocked(OpenFile& of) {
  // Never to be recovered either (a published writer keeps its seal
  // otherwise, and a recovery would record what was dropped).
  if (of.writer) of.writer->RemoveSeal();
  of.writer.reset();
  if (!of.pending_mode) return;
  // A chmod made while the version was pending still holds.
  Transaction txn(catalog_);
  auto e = catalog_.EntryById(of.entry_id);
  Status s = txn.status();
  if (s.ok() && e.ok()) {
    e->mode = *of.pending_mode;
    s = catalog_.UpdateEntry(*e);
    if (s.ok()) s = txn.Commit();
  }
  if (!s.ok()) spdlog::error("keeping the mode of file #{} failed: {}", of.entry_id, s.ToString());
  of.pending_mode.reset();
}

void Filesystem::CommitBatch(std::vector<CommitJob*>& jobs, std::vector<Result<PublishedObject>>& objects,
                             std::vector<Status>& out) {
  // The files' locks first (in entry order: nothing else holds two), then
  // one transaction for the whole round: a few dozen records cost one
  // BEGIN/COMMIT. Lock order as everywhere: OpenFile::mu, then the catalog.
  out.assign(jobs.size(), Status::Ok());
  std::vector<OpenFile*> files;
  bool foreground = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!objects[i].ok()) {
      out[i] = objects[i].status();
      continue;
    }
    files.push_back(jobs[i]->of.get());
    foreground |= !jobs[i]->background;
  }
  std::sort(files.begin(), files.end(), [](OpenFile* a, OpenFile* b) {
    return a->entry_id != b->entry_id ? a->entry_id < b->entry_id : a < b;
  });
  files.erase(std::unique(files.begin(), files.end()), files.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(files.size());
  for (OpenFile* f : files) locks.emplace_back(f->mu);

  std::vector<char> recorded(jobs.size(), 0);
  bool began = false;
  auto run = [&](size_t from, size_t to, int wait_ms) -> Status {
    Transaction txn(catalog_, wait_ms);
    SFS_RETURN_IF_ERROR(txn.status());
    began = true;
    for (size_t i = from; i < to; ++i) {
      if (!objects[i].ok()) continue;
      SFS_ASSIGN_OR_RETURN(bool r, RecordLocked(*jobs[i], *objects[i]));
      recorded[i] = r;
    }
    return txn.Commit();
  };
  // A background round does not hold the catalog (and every change behind
  // it) for the busy timeout while another process has it locked: it gives
  // up after a moment and is retried later.
  const int wait_ms = foreground ? -1 : 200;
  Status all = files.empty() ? Status::Ok() : run(0, jobs.size(), wait_ms);
  if (!all.ok()) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (!objects[i].ok()) continue;
      // The catalog could not be had (locked): that is every job's answer.
      // A failure inside the transaction: one at a time, so that one
      // file's failure is its own.
      out[i] = began ? run(i, i + 1, jobs[i]->background ? 200 : -1) : all;
    }
  }
  bool any = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!objects[i].ok() || !out[i].ok()) continue;
    FinishLocked(*jobs[i], *objects[i], recorded[i]);
    any |= recorded[i] != 0;
  }
  if (any) {
    publish_epoch_.fetch_add(1);
    CrashPoint("after-commit");
  }
  locks.clear();
  for (size_t i = 0; i < jobs.size(); ++i)
    if (out[i].ok()) MaybeRelease(jobs[i]->of);
}

void Filesystem::CommitFailed(CommitJob& job, const Status& s, bool final) {
  OpenFile& of = *job.of;
  if (job.background && (final || job.attempts == 1)) {
    // Nobody waits for this one: the log and .samplefs/errors are where a
    // user learns it (the version stays readable in the mount meanwhile).
    const std::string what = final ? "is not recorded" : "is not recorded yet (retrying)";
    spdlog::error("the new version of {} {}: {}", job.path, what, s.ToString());
    errors_.Add("commit", job.path, s.message() + (final ? "" : " (retrying)"));
  }
  if (!final) return;
  if (job.background) given_up_versions_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(of.mu);
    // The last job of this writer failed: it is the pending version again,
    // which writes may extend (a published one is copied first) and a
    // later fsync or close retries.
    if (--of.jobs == 0 && of.writer == job.writer) of.sealed = false;
  }
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

Seal Filesystem::SealOf(const OpenFile& of, const std::string& path, bool closed) const {
  Seal seal;
  seal.entry_id = of.entry_id;
  seal.sealed_ns = NowNs();
  seal.mtime_ns = of.mtime_ns != 0 ? of.mtime_ns : seal.sealed_ns;
  seal.mode = of.pending_mode ? static_cast<int>(*of.pending_mode) : -1;
  seal.closed = closed;
  seal.path = path;
  return seal;
}

Filesystem::ShutdownReport Filesystem::Shutdown() {
  // The session loop has ended (a signal, an unmount): no RELEASE comes
  // any more. A version that a close() sealed and that nothing changed
  // since is committed like any other; a version still open for writing
  // (cp killed halfway, a lazy unmount under a running copy) is dropped:
  // committing it would record a truncated file as if complete. Then the
  // committer makes a last attempt at everything queued, retries included.
  ShutdownReport report;
  std::vector<std::shared_ptr<OpenFile>> open;
  {
    std::lock_guard lock(files_mu_);
    for (auto& [id, of] : files_) open.push_back(of);
  }
  for (auto& of : open) {
    std::lock_guard lock(of->mu);
    if (!of->writer || of->sealed) continue;
    const std::string path = "file #" + std::to_string(of->entry_id);
    if (of->error.ok() && of->writer->sealed_at(of->writer->generation())) {
      SealLocked(of, true, path);
    } else {
      spdlog::warn("{} was still open for writing at unmount: its new version is dropped", path);
      DropVersionLocked(*of);
      ++report.dropped_open;
    }
  }
  committer_.Stop();
  report.committed = committed_versions_.load();
  report.not_recorded = given_up_versions_.load();
  return report;
}

bool Filesystem::KeepCache(fuse_ino_t ino, const std::string& hash) {
  std::lock_guard lock(cache_mu_);
  auto& slot = cached_hash_[ino];
  bool keep = slot == hash;
  slot = hash;
  return keep;
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
