// The callbacks of names and attributes: lookup, forget, getattr, setattr,
// readlink, mknod, mkdir, unlink, rmdir, symlink, rename, link, statfs.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "catalog/names.h"
#include "fs/fuse_ops.h"
#include "fs/notices.h"
#include "fs/sidecar.h"

namespace samplefs::fs {

namespace {

// Before a name of a file goes away (unlink, rename over it): if handles
// are open on it, they keep its record (OpenFile::orphan).
void KeepOrphanIfOpen(Filesystem& fs, const NodeSpec& parent, const std::string& name) {
  if (!fs.files().Any()) return;  // spares a catalog query per file of rm -rf
  auto child = fs.ns().Lookup(parent, name);
  if (!child.ok() || child->kind != NodeKind::kFile) return;
  auto of = fs.files().Find(child->record_id);
  if (!of) return;
  // Read under the lock, so that a commit is either in the record read
  // here or updates the orphan itself (CommitPublished).
  std::lock_guard lock(of->mu);
  auto e = fs.catalog().EntryById(child->record_id);
  if (!e.ok()) return;
  of->orphan = std::move(*e);
}

}  // namespace

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  // The entry found gives the reply's attributes unless it is a file that
  // is open, or a commit round recorded versions while it was read: a
  // version committed meanwhile would make it stale, and the kernel would
  // keep the old size for attr_timeout (NodeAttr reads the record after
  // looking for the open file instead). The concurrent difftest caught a
  // stale order. As in a listing (OpReaddir): during a copy other files
  // are open, and this file's record is still read once, not twice.
  const uint64_t epoch = fs.publish_epoch();  // before the entry is read
  std::optional<Entry> found;
  auto child = [&]() -> Result<NodeSpec> {
    if (ps.kind != NodeKind::kFolder) return fs.ns().Lookup(ps, name);
    auto e = fs.ns().LookupEntry(ps, name);
    if (!e.ok()) return e.status();
    NodeSpec spec = Namespace::SpecOf(*e);
    if (spec.kind != NodeKind::kFile ||
        (!fs.files().Find(spec.record_id) && fs.publish_epoch() == epoch))
      found = std::move(*e);
    return spec;
  }();
  if (!child.ok() && child.status().is_not_found()) {
    if (auto scratch = fs.ns().LookupScratch(ps, name)) child = *scratch;
  }
  if (!child.ok() && child.status().is_not_found() && ps.kind == NodeKind::kFolder &&
      fs.options().negative_timeout > 0) {
    // Remembered as absent for negative_timeout (see MountOptions).
    fuse_entry_param e{};
    e.entry_timeout = fs.options().negative_timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (!child.ok()) return ReplyStatus(req, "lookup", fs.PathOf(parent, name), child.status());
  // A file the kernel holds no inode for: listed lean and now stat'ed.
  // Listings turn rich; one that the kernel caches lean is dropped, so the
  // reader that stats (ls -l after ls) gets the rest of it with attributes
  // instead of sending a LOOKUP per file (it continues from its cookie).
  if (child->kind == NodeKind::kFile || child->kind == NodeKind::kSymlink) {
    fs.FileLookedUp();
    if (ps.kind == NodeKind::kFolder && fs.TakeLeanListing(parent)) fs.invalidator().DropListing(parent);
  }
  ReplyNewEntry(req, parent, name, *child, "lookup", found ? &*found : nullptr);
  SFS_FUSE_CATCH("lookup")
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req).ForgetNode(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Fs(req).ForgetNode(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  auto st = NodeAttr(fs, ino, node->spec);
  if (!st.ok()) return ReplyStatus(req, "getattr", fs.PathOf(ino), st.status());
  fuse_reply_attr(req, &*st, AttrTimeout(fs, node->spec));
  SFS_FUSE_CATCH("getattr")
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  const NodeSpec& spec = node->spec;
  std::string path = fs.PathOf(ino);
  const auto& ident = fs.ns().identity();
  if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && !ident.owners) {
    // A private mount shows its user as the owner of everything (the only
    // user who can reach it): a chown to anyone else could not show.
    if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != ident.uid) ||
        ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != ident.gid))
      return ReplyStatus(req, "chown", path,
                         Status(Code::kPermission, "a mount without -o allow_other shows the mounting user as "
                                                   "the owner of every file; mount with allow_other to keep owners"));
  }
  bool is_entry = spec.kind == NodeKind::kFile || spec.kind == NodeKind::kFolder ||
                  spec.kind == NodeKind::kSymlink;
  std::shared_ptr<FileHandle> fh = fi ? Handle(req, fi) : nullptr;
  if (spec.kind == NodeKind::kScratch) {
    auto f = fs.ns().ScratchOf(spec);
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
  } else if (spec.kind == NodeKind::kSidecar && fh && (to_set & FUSE_SET_ATTR_SIZE) &&
             fh->Truncate(static_cast<uint64_t>(attr->st_size))) {
    // A sidecar being edited: the handle's document is truncated.
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
      auto of = fh && fh->open_file() ? fh->open_file() : fs.files().Acquire(id);
      Status s;
      std::shared_ptr<CommitJob> job;
      {
        std::lock_guard lock(of->mu);
        s = fs.files().EnsureWriterLocked(*of, attr->st_size == 0);
        if (s.ok()) s = of->writer->Truncate(static_cast<uint64_t>(attr->st_size));
        if (s.ok()) of->ctime_ns = of->mtime_ns = NowNs();
        // truncate(1) with no open handle commits at once, and says if it failed.
        if (s.ok() && of->writers == 0) job = fs.files().SealLocked(of, false, path);
        if (!s.ok() && of->writers == 0 && !of->sealed) fs.files().DropVersionLocked(*of);
      }
      if (job) {
        s = Committer::Wait(*job);
        std::lock_guard lock(of->mu);
        // Reported, so not kept (as a failed write is not).
        if (!s.ok() && of->writers == 0 && of->writer == job->writer) {
          fs.files().DropVersionLocked(*of);
          of->sealed = false;
        }
      }
      fs.files().MaybeRelease(of);
      if (!s.ok()) return ReplyStatus(req, "truncate", path, s);
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
      return ReplyStatus(req, "truncate", path, Status(Code::kInvalidArgument, "not a file"));
    }
    // chmod, utimensat and a chown to the owner (the only one accepted
    // above) are status changes: the record's ctime becomes now (issue 18).
    // Times before 1970 are negative: "not given" is nullopt, not -1.
    std::optional<int64_t> mtime, atime;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) mtime = NowNs();
    else if (to_set & FUSE_SET_ATTR_MTIME) mtime = TimespecToNs(attr->st_mtim);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) atime = NowNs();
    else if (to_set & FUSE_SET_ATTR_ATIME) atime = TimespecToNs(attr->st_atim);
    // With allow_other, chown/chgrp record the owner (the kernel checked
    // the caller's right: default_permissions).
    const bool owner_change = ident.owners && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID));
    const int record_fields = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW |
                              (owner_change ? 0 : FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
    const bool change = (to_set & record_fields) || atime;
    bool pending = false;
    if (change && spec.kind == NodeKind::kFile) {
      if (auto of = fs.files().Find(id)) {
        std::lock_guard lock(of->mu);
        // A version not yet committed takes the time and mode with it
        // (cp -a, rsync and tar set both right after close): no
        // transaction of their own. Its atime waits with the reads' ones.
        if (of->writer) {
          if (mtime) of->mtime_ns = *mtime;
          if (to_set & FUSE_SET_ATTR_MODE) of->pending_mode = attr->st_mode & 07777;
          if (atime) fs.atimes().Set(id, *atime);
          of->ctime_ns = NowNs();
          pending = true;
        }
      }
    }
    if ((change && !pending) || owner_change) {
      Transaction txn(fs.catalog());
      Status s = txn.status();
      if (s.ok() && !pending && (to_set & record_fields)) {
        auto e = fs.catalog().EntryById(id);
        s = e.status();
        if (s.ok()) {
          if ((to_set & FUSE_SET_ATTR_MODE) && e->type != EntryType::kSymlink) e->mode = attr->st_mode & 07777;
          if (mtime) e->mtime_ns = *mtime;
          s = fs.catalog().UpdateEntry(*e);
        }
      }
      if (s.ok() && !pending && atime) {
        fs.atimes().Forget(id);
        s = fs.catalog().SetEntryAtime(id, *atime);
      }
      if (s.ok() && owner_change)
        s = fs.catalog().SetEntryOwner(id, (to_set & FUSE_SET_ATTR_UID) ? int64_t{attr->st_uid} : -1,
                                       (to_set & FUSE_SET_ATTR_GID) ? int64_t{attr->st_gid} : -1);
      if (s.ok()) s = txn.Commit();
      if (!s.ok()) return ReplyStatus(req, owner_change ? "chown" : "setattr", path, s);
    }
  }
  auto st = NodeAttr(fs, ino, spec);
  if (!st.ok()) return ReplyStatus(req, "setattr", path, st.status());
  // The reply updates this inode; the record's other inodes (a folder has
  // one per path) cache the old mode, size or time for attr_timeout
  // otherwise. This inode is left alone: the notice would arrive after the
  // reply and throw away the attributes it carries (rsync's stat after
  // utimensat then costs a GETATTR).
  if (is_entry) fs.invalidator().PostAttrs(spec.kind, spec.record_id, ino);
  fuse_reply_attr(req, &*st, fs.options().attr_timeout);
  SFS_FUSE_CATCH("setattr")
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  if (node->spec.kind != NodeKind::kSymlink) return (void)fuse_reply_err(req, EINVAL);
  auto e = fs.catalog().EntryById(node->spec.record_id);
  if (!e.ok()) return ReplyStatus(req, "readlink", fs.PathOf(ino), e.status());
  fuse_reply_readlink(req, e->target.c_str());
  SFS_FUSE_CATCH("readlink")
}

// A folder's link count moved (a folder made, removed or moved in it): the
// kernel drops the attributes of the folder's inodes itself, but a
// readdirplus of its own folder that read them before the change may
// answer after it and cache the old count for attr_timeout. The notices
// arrive after that answer (difftest --workers found it).
static void PostFolderLinks(Filesystem& fs, const NodeSpec& folder) {
  if (folder.kind == NodeKind::kFolder) fs.invalidator().PostAttrs(NodeKind::kFolder, folder.record_id);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  auto spec = fs.ns().Mkdir(ps, name, mode & ~fuse_req_ctx(req)->umask, UserName(req), RequestOwner(req));
  if (!spec.ok()) return ReplyStatus(req, "mkdir", fs.PathOf(parent, name), spec.status());
  DropListings(fs, ps, parent, name);
  PostFolderLinks(fs, ps);
  ReplyNewEntry(req, parent, name, *spec, "mkdir");
  SFS_FUSE_CATCH("mkdir")
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  if (!S_ISREG(mode))
    return ReplyStatus(req, "mknod", fs.PathOf(parent, name),
                       Status(Code::kPermission, "device nodes, FIFOs and sockets cannot be "
                                                 "stored in the catalog"));
  // mknod(S_IFREG) creates an empty regular file: tar --xattrs does this
  // to set a file's attributes before it writes the data.
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status ready = fs.EnsureEmptyObject();
  if (!ready.ok()) return ReplyStatus(req, "mknod", fs.PathOf(parent, name), ready);
  auto e = fs.ns().CreateFile(ps, name, mode & ~fuse_req_ctx(req)->umask, fs.empty_hash(), RequestOwner(req));
  if (!e.ok()) return ReplyStatus(req, "mknod", fs.PathOf(parent, name), e.status());
  DropListings(fs, ps, parent, name);
  ReplyNewEntry(req, parent, name, Spec(NodeKind::kFile, e->id), "mknod");
  SFS_FUSE_CATCH("mknod")
}

void OpLink(fuse_req_t req, fuse_ino_t, fuse_ino_t parent, const char* name) {
  Filesystem& fs = Fs(req);
  ReplyStatus(req, "link", fs.PathOf(parent, name),
              Status(Code::kPermission, "hard links cannot be stored in the catalog; copy the file "
                                        "(identical contents are stored once) or use a symlink"));
}

// After a successful unlink or rmdir of (parent, name): the other paths'
// notices, the listings, the name unbound, and the reply.
static void ReplyRemoved(fuse_req_t req, Filesystem& fs, const NodeSpec& ps, fuse_ino_t parent, const char* name) {
  PostChanged(fs, parent, name);
  DropListings(fs, ps, parent, name);
  fs.nodes().Unbind(parent, name);
  fuse_reply_err(req, 0);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status s;
  if (auto scratch = fs.ns().LookupScratch(ps, name)) {
    s = fs.scratch().Remove(scratch->entity, scratch->record_id, name);
  } else {
    KeepOrphanIfOpen(fs, ps, name);
    s = fs.ns().Unlink(ps, name);
  }
  if (!s.ok()) return ReplyStatus(req, "unlink", fs.PathOf(parent, name), s);
  ReplyRemoved(req, fs, ps, parent, name);
  SFS_FUSE_CATCH("unlink")
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  Status s = fs.ns().Rmdir(ps, name);
  if (!s.ok()) return ReplyStatus(req, "rmdir", fs.PathOf(parent, name), s);
  PostFolderLinks(fs, ps);
  ReplyRemoved(req, fs, ps, parent, name);
  SFS_FUSE_CATCH("rmdir")
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  auto e = fs.ns().Symlink(ps, name, link, RequestOwner(req));
  if (!e.ok()) return ReplyStatus(req, "symlink", fs.PathOf(parent, name), e.status());
  DropListings(fs, ps, parent, name);
  ReplyNewEntry(req, parent, name, Spec(NodeKind::kSymlink, e->id), "symlink");
  SFS_FUSE_CATCH("symlink")
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps, nps;
  if (!ParentSpec(req, parent, &ps) || !ParentSpec(req, newparent, &nps)) return;
  auto dir = Namespace::ScratchDirOf(ps);
  if (dir && fs.scratch().Get(dir->entity, dir->id, name)) {
    // An editor's temporary file: renamed over the sidecar it is applied,
    // renamed to another temporary name it just moves.
    std::string path = fs.PathOf(newparent, newname);
    if (!(Namespace::ScratchDirOf(nps) == dir))
      return ReplyStatus(req, "rename", path, Status(Code::kPermission, "temporary files stay in their directory"));
    auto target = fs.ns().Lookup(nps, newname);
    if (target.ok() && target->kind == NodeKind::kSidecar) {
      auto f = fs.scratch().Get(dir->entity, dir->id, name);
      std::string doc;
      {
        std::lock_guard lock(f->mu);
        doc = f->data;
      }
      Status s = ApplySidecar(fs.catalog(), dir->entity, dir->id, doc);
      if (!s.ok()) return ReplyStatus(req, "rename", path, s);
      PostChangedNode(fs, *target, Notices::kQueue);
      (void)fs.scratch().Remove(dir->entity, dir->id, name);
        if (auto ino = fs.nodes().Rename(parent, name, newparent, newname)) fs.nodes().SetSpec(*ino, *target);
      return (void)fuse_reply_err(req, 0);
    }
    if (target.ok()) return ReplyStatus(req, "rename", path, Status(Code::kPermission, "cannot replace " + std::string(NodeKindName(target->kind))));
    if ((flags & 1) && fs.scratch().Get(dir->entity, dir->id, newname))
      return ReplyStatus(req, "rename", path, Status(Code::kAlreadyExists, "'" + std::string(newname) + "' exists"));
    Status s = fs.scratch().Rename(dir->entity, dir->id, name, newname);
    if (!s.ok()) return ReplyStatus(req, "rename", path, s);
    if (auto ino = fs.nodes().Rename(parent, name, newparent, newname))
      fs.nodes().SetSpec(*ino, Namespace::ScratchSpec(*dir, newname));
    return (void)fuse_reply_err(req, 0);
  }
  KeepOrphanIfOpen(fs, nps, newname);  // replaced by the rename
  auto r = fs.ns().Rename(ps, name, nps, newname, flags);
  if (!r.ok()) return ReplyStatus(req, "rename", fs.PathOf(parent, name), r.status());
  PostRenamed(fs, parent, name, newparent);  // also the old name on other paths
  if (nps == ps) {
    DropListings(fs, ps, parent, newname);
  } else {
    DropListings(fs, ps, parent, {});
    DropListings(fs, nps, newparent, newname);
    PostFolderLinks(fs, ps);
    PostFolderLinks(fs, nps);
  }
  fs.nodes().Rename(parent, name, newparent, newname);
  if (ps.kind == NodeKind::kTrashFiles || nps.kind == NodeKind::kTrashFiles) {
    // Into or out of the trash: its .trashinfo appears or goes (it was a
    // scratch file while gio wrote it).
    const NodeSpec& trash = ps.kind == NodeKind::kTrashFiles ? ps : nps;
    const std::string info = std::string(ps.kind == NodeKind::kTrashFiles ? name : newname) + ".trashinfo";
    auto info_dirs = fs.nodes().Select([&](const Node& candidate) {
      return candidate.spec.kind == NodeKind::kTrashInfoDir && candidate.spec.record_id == trash.record_id;
    });
    for (const Node& info_dir : info_dirs) {
      fs.invalidator().PostEntry(info_dir.ino, info);
      fs.invalidator().DropListing(info_dir.ino);
    }
  }
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("rename")
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  SFS_FUSE_TRY
  // df's "used" is f_blocks - f_bfree: the bytes of the objects the
  // catalog references, while free/avail are the store disk's (what can
  // still be written). So the size is the sum of the two, not the disk's:
  // the disk also holds other things, which are not this mount's
  // (docs/DECISIONS.md, "df and stat -f").
  Filesystem& fs = Fs(req);
  uint64_t avail = 0, free_files = 0;
  Status s = fs.store().Space(&avail, nullptr, &free_files);
  if (!s.ok()) return ReplyStatus(req, "statfs", "/", s);
  auto usage = fs.CachedUsage();
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

}  // namespace samplefs::fs
