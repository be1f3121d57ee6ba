// The callbacks of open files: open, create, read, write, flush, release,
// fsync, fallocate, copy_file_range. Each finds the handle
// (fs/file_handle.h), calls it and replies.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include "catalog/names.h"
#include "fs/fuse_ops.h"
#include "fs/notices.h"

namespace samplefs::fs {

namespace {

// A handle opened write-only (how cp and tar open a file) bypasses the
// kernel's page cache: each write() goes from the caller's buffer to the
// staging file with one copy fewer, and a copied file does not sit in memory
// twice (the mount's pages and the staging file's). The kernel drops cached
// pages of the range a direct write covers, so other handles stay coherent.
// Handles that can read keep the page cache: mmap needs it (rsync opens its
// temporary file O_RDWR).
unsigned WriteOnlyDirect(const fuse_file_info* fi) { return (fi->flags & O_ACCMODE) == O_WRONLY ? 1 : 0; }

// The bits a write by the caller of `req` clears from a file of `mode`
// and group `gid`, as the kernel's should_remove_suid for a local
// filesystem (issue 18 point 5): none with CAP_FSETID in its effective
// set; else setuid, and setgid when group-executable or when the caller is
// not in the file's group. Read from /proc/<pid>/status, and only when the
// file has such a bit.
mode_t PrivsToKill(fuse_req_t req, mode_t mode, gid_t gid) {
  if (!(mode & (S_ISUID | S_ISGID))) return 0;
  const fuse_ctx* ctx = fuse_req_ctx(req);
  bool fsetid = ctx->uid == 0, in_group = ctx->gid == gid;
  if (FILE* f = std::fopen(("/proc/" + std::to_string(ctx->pid) + "/status").c_str(), "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long caps = 0;
      if (std::sscanf(line, "CapEff: %llx", &caps) == 1) fsetid = (caps >> 4) & 1;  // CAP_FSETID
      if (std::strncmp(line, "Groups:", 7) == 0) {
        std::istringstream groups(line + 7);
        for (unsigned long g; groups >> g;) in_group = in_group || g == gid;
      }
    }
    std::fclose(f);
  }
  if (fsetid) return 0;
  mode_t kill = mode & S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || !in_group)) kill |= S_ISGID;
  return kill;
}

// A write-only handle writes directly (WriteOnlyDirect): the kernel then
// sends no SETATTR to clear setuid/setgid before the write; it flags the
// WRITE instead (FUSE_WRITE_KILL_SUIDGID), which libfuse 3.14 does not
// pass on. Through its page cache it sends one, but with the older rule
// (setgid only when group-executable). So the open of any writable handle
// decides, with the caller's credentials: its first write clears them.
void NoteKillPrivs(fuse_req_t req, const struct stat& st, FileHandle& h) {
  if (mode_t kill = PrivsToKill(req, st.st_mode & 07777, st.st_gid)) h.set_kill_privs(kill);
}

// The first write through a handle of NoteKillPrivs: clears `bits`, in
// the pending version (a chmod it carries to its commit).
void KillPrivs(Filesystem& fs, const FileHandle& h, mode_t bits) {
  auto of = h.open_file();
  if (!of) return;
  {
    std::lock_guard lock(of->mu);
    mode_t mode;
    if (of->pending_mode) {
      mode = *of->pending_mode;
    } else {
      auto e = fs.catalog().EntryById(h.spec().record_id);
      if (!e.ok()) return;
      mode = e->mode & 07777;
    }
    if (!(mode & bits)) return;
    of->pending_mode = mode & ~bits;
    of->ctime_ns = NowNs();
  }
  fs.invalidator().PostAttrs(NodeKind::kFile, h.spec().record_id);
}

// A read of a file whose atime is due (fs/atimes.h): moves it, and drops
// the attributes the kernel caches for the file's inodes, before the open
// replies (the kernel drops its cached atime after a READ, but no READ may
// come: see OpenHandle). An open holds no lock the notice needs.
void NoteAccess(Filesystem& fs, int64_t id, int64_t atime_ns, int64_t mtime_ns, int64_t ctime_ns) {
  if (!fs.atimes().Accessed(id, atime_ns, mtime_ns, ctime_ns)) return;
  fs.invalidator().PostAttrs(NodeKind::kFile, id);
  fs.invalidator().Drain();
}

// A writable handle on file `entry_id`: one more writer of its versions;
// `truncate` empties it first, `mtime_ns` seeds the pending version's time
// (0: keep). `record` gives the file's record as the opener sees it now.
//
// Without O_TRUNC, the first writer pins that record (OpenFile::base): its
// first write copies the content it opened, even if another mount or
// samplectl recorded a new version in between (docs/DECISIONS.md, "A
// writer starts from what it opened").
//
// O_TRUNC starts a pending version even when the record is empty now: the
// handle's file is empty from here on. Without one, the first write copied
// whatever the record held by then, and another mount (or samplectl) may
// have recorded content meanwhile: mount B's `open(O_TRUNC)`, mount A's
// close of 200 kB, B's 150 kB written at its close (Python buffers up to
// st_blksize) recorded B's bytes over A's tail, a mix of two versions
// (test_facility.test_last_close_wins_whole).
Result<std::shared_ptr<LiveHandle>> OpenWriter(Filesystem& fs, const NodeSpec& spec, fuse_ino_t ino,
                                                bool truncate, const std::function<Result<Entry>()>& record,
                                                int64_t mtime_ns) {
  fs.committer().Throttle();
  auto of = fs.files().Acquire(spec.record_id);
  Status s;
  {
    std::lock_guard lock(of->mu);
    const bool first = of->writers++ == 0;
    if (truncate) {
      auto current = record();
      s = current.status();
      if (s.ok()) {
        const bool changes = current->size > 0 || of->writer;
        s = fs.files().EnsureWriterLocked(*of, true);
        if (s.ok()) s = of->writer->Truncate(0);
        if (changes) {
          of->ctime_ns = of->mtime_ns = NowNs();
        } else if (s.ok()) {
          // Truncating an empty file changes nothing: the pending version
          // keeps the record's time, so a close without writes records the
          // same record again (and the empty object exists: no new one).
          auto e = fs.catalog().EntryById(spec.record_id);
          s = e.status();
          if (s.ok()) {
            of->mtime_ns = e->mtime_ns;
            of->ctime_ns = e->ctime_ns;
          }
          else fs.files().DropVersionLocked(*of);
        }
      }
    } else {
      if (first) {
        auto current = record();
        s = current.status();
        if (s.ok()) of->base = std::move(*current);
      }
      if (mtime_ns) of->mtime_ns = mtime_ns;
    }
    if (!s.ok() && --of->writers == 0) of->base.reset();
  }
  if (!s.ok()) {
    fs.files().MaybeRelease(of);
    return s;
  }
  return std::make_shared<LiveHandle>(spec, ino, true, of);
}

// A handle the kernel did not take (the opener was interrupted): undone.
void DropUnrepliedHandle(Filesystem& fs, uint64_t fh) {
  auto drop = fs.TakeHandle(fh);
  if (!drop) return;
  if (auto of = drop->open_file()) {
    if (drop->writable()) {
      std::lock_guard lock(of->mu);
      if (--of->writers == 0) of->base.reset();
    }
    fs.files().MaybeRelease(of);
  }
}

// The handle of an open() of `spec`, and the open flags it wants.
Result<std::shared_ptr<FileHandle>> OpenHandle(Filesystem& fs, const NodeSpec& spec, fuse_ino_t ino,
                                               fuse_file_info* fi) {
  const bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
  switch (spec.kind) {
    case NodeKind::kFile: {
      if (writable) {
        if (fs.options().read_only) return Status(Code::kReadOnly, "read-only mount");
        SFS_ASSIGN_OR_RETURN(auto h, OpenWriter(fs, spec, ino, fi->flags & O_TRUNC, [&]() -> Result<Entry> {
          return fs.catalog().EntryById(spec.record_id);
        }, 0));
        fi->keep_cache = 0;
        fi->direct_io = WriteOnlyDirect(fi);
        return std::shared_ptr<FileHandle>(std::move(h));
      }
      auto of = fs.files().Find(spec.record_id);
      bool live = false;
      if (of) {
        std::lock_guard lock(of->mu);
        live = of->writer != nullptr;
      }
      if (live) {
        fi->keep_cache = 0;
        auto h = std::make_shared<LiveHandle>(spec, ino, false, of);
        if (fs.atimes().enabled() && !(fi->flags & O_NOATIME)) {
          auto st = NodeAttr(fs, ino, spec);  // the pending version's times (atime: relatime)
          if (st.ok())
            NoteAccess(fs, spec.record_id, TimespecToNs(st->st_atim), TimespecToNs(st->st_mtim),
                       TimespecToNs(st->st_ctim));
        }
        return std::shared_ptr<FileHandle>(std::move(h));
      }
      SFS_ASSIGN_OR_RETURN(Entry e, fs.catalog().EntryById(spec.record_id));
      SFS_ASSIGN_OR_RETURN(auto fd, OpenEntryObject(fs.store(), fs.empty_hash(), e, fs.PathOf(ino)));
      // Objects never change: the kernel may keep cached pages as long
      // as this inode still shows the same object.
      fi->keep_cache = fs.page_cache().Keep(ino, e.hash);
      // The file's versions are held so an unlink or rename over the file
      // can leave its record to this handle (fstat of an open, deleted file).
      auto h = std::make_shared<ObjectHandle>(spec, ino, fs.files().Acquire(spec.record_id), std::move(fd), e.hash);
      // relatime (fs/atimes.h): the open of a file for reading moves a due
      // atime. Not its first READ: the kernel answers reads from its page
      // cache (keep_cache), those of an empty file and those past the size
      // it knows without asking, so a READ may never come. O_NOATIME (the
      // owner's backup tools) is honoured, as a local filesystem does.
      if (!(fi->flags & O_NOATIME)) NoteAccess(fs, e.id, e.atime_ns, e.mtime_ns, e.ctime_ns);
      return std::shared_ptr<FileHandle>(std::move(h));
    }
    case NodeKind::kSidecar:
    case NodeKind::kStatusFile:
    case NodeKind::kTrashInfo:
    case NodeKind::kErrorsFile: {
      // Generated text may change size between stat and read.
      fi->direct_io = 1;
      if (writable && spec.kind == NodeKind::kSidecar) {
        if (fs.options().read_only) return Status(Code::kReadOnly, "read-only mount");
        // The document is edited in memory and applied when closed.
        if (fi->flags & O_TRUNC) return std::shared_ptr<FileHandle>(std::make_shared<SidecarEditHandle>(spec, ino, "", true));
        SFS_ASSIGN_OR_RETURN(std::string doc, fs.ns().Render(spec));
        return std::shared_ptr<FileHandle>(std::make_shared<SidecarEditHandle>(spec, ino, std::move(doc), false));
      }
      if (writable) return Status(Code::kPermission, "generated files are read-only");
      std::string text;
      if (spec.kind == NodeKind::kErrorsFile) {
        text = fs.errors().Text();
      } else {
        SFS_ASSIGN_OR_RETURN(text, fs.ns().Render(spec));
      }
      return std::shared_ptr<FileHandle>(std::make_shared<TextHandle>(spec, ino, std::move(text)));
    }
    case NodeKind::kScratch: {
      auto f = fs.ns().ScratchOf(spec);
      if (!f) return Status(Code::kNotFound, "'" + spec.text + "' does not exist");
      if (writable && (fi->flags & O_TRUNC)) {
        std::lock_guard lock(f->mu);
        f->data.clear();
      }
      fi->direct_io = 1;
      return std::shared_ptr<FileHandle>(std::make_shared<ScratchHandle>(spec, ino, writable, std::move(f)));
    }
    default:
      return Status(Code::kIsADirectory, "a directory");
  }
}

// Answers create() with the handle `h` on `node` (resolved with one lookup
// reference, which is dropped again if the answer fails).
void ReplyCreate(fuse_req_t req, fuse_file_info* fi, const Node& node, const struct stat& st,
                 std::shared_ptr<FileHandle> h) {
  Filesystem& fs = Fs(req);
  fuse_entry_param ep = EntryParam(fs, node, st);
  fi->fh = fs.AddHandle(std::move(h));
  if (fuse_reply_create(req, &ep, fi) != 0) {
    DropUnrepliedHandle(fs, fi->fh);
    fs.ForgetNode(node.ino, 1);
  }
}

// create() of an existing or new file inside files/: a writable handle.
// `truncate` empties a non-empty file first; `mtime_ns` seeds the pending
// version's time (0: keep).
void ReplyWritableCreate(fuse_req_t req, fuse_file_info* fi, fuse_ino_t parent, const std::string& name,
                         const NodeSpec& spec, bool truncate, int64_t mtime_ns, const std::string& path) {
  Filesystem& fs = Fs(req);
  Node node = fs.nodes().Resolve(parent, name, spec, 1);
  auto st = NodeAttr(fs, node.ino, spec);
  if (!st.ok()) {
    fs.ForgetNode(node.ino, 1);
    return ReplyStatus(req, "create", path, st.status());
  }
  // An empty file (a new one: cp's and rsync's creates) needs no lookup.
  auto record = [&]() -> Result<Entry> {
    if (st->st_size > 0) return fs.catalog().EntryById(spec.record_id);
    Entry e;
    e.id = spec.record_id;
    e.hash = fs.empty_hash();
    e.mtime_ns = static_cast<int64_t>(st->st_mtim.tv_sec) * 1000000000 + st->st_mtim.tv_nsec;
    e.ctime_ns = static_cast<int64_t>(st->st_ctim.tv_sec) * 1000000000 + st->st_ctim.tv_nsec;
    return e;
  };
  auto h = OpenWriter(fs, spec, node.ino, truncate, record, mtime_ns);
  if (!h.ok()) {
    fs.ForgetNode(node.ino, 1);
    return ReplyStatus(req, "create", path, h.status());
  }
  fi->direct_io = WriteOnlyDirect(fi);
  NoteKillPrivs(req, *st, **h);
  ReplyCreate(req, fi, node, *st, std::move(*h));
}

void ReplyRead(fuse_req_t req, const ReadData& r) {
  if (!r.fd) return (void)fuse_reply_buf(req, r.data, r.size);
  fuse_bufvec buf = FUSE_BUFVEC_INIT(r.size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = r.fd->get();
  buf.buf[0].pos = r.pos;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

}  // namespace

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  auto h = OpenHandle(fs, node->spec, ino, fi);
  if (!h.ok()) {
    if (h.status().code() == Code::kIsADirectory) return (void)fuse_reply_err(req, EISDIR);
    if (node->spec.kind == NodeKind::kScratch && h.status().is_not_found())
      return (void)fuse_reply_err(req, ENOENT);
    return ReplyStatus(req, "open", fs.PathOf(ino), h.status());
  }
  // close() of a read-only handle has nothing to report (OpFlush acts on
  // writers only): spare the FLUSH round trip (cat, cmp, rsync's lchmod).
  if (!(*h)->writable()) fi->noflush = 1;
  // O_TRUNC truncates in the OPEN (atomic_o_trunc): the kernel's SETATTR
  // that would clear setuid/setgid is not sent either, so they go now.
  if ((*h)->writable() && node->spec.kind == NodeKind::kFile) {
    auto st = NodeAttr(fs, ino, node->spec);
    if (st.ok()) NoteKillPrivs(req, *st, **h);
    if (fi->flags & O_TRUNC)
      if (mode_t kill = (*h)->take_kill_privs()) KillPrivs(fs, **h, kill);
  }
  fi->fh = fs.AddHandle(std::move(*h));
  if (fuse_reply_open(req, fi) != 0) DropUnrepliedHandle(fs, fi->fh);
  SFS_FUSE_CATCH("open")
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  NodeSpec ps;
  if (!ParentSpec(req, parent, &ps)) return;
  std::string path = fs.PathOf(parent, name);
  if (!S_ISREG(mode)) return ReplyStatus(req, "create", path, Status(Code::kPermission, "only regular files"));
  if (auto dir = Namespace::ScratchDirOf(ps)) {
    // Editors' temporary files next to a sidecar (see fs/scratch.h).
    if (fs.ns().Lookup(ps, name).ok())
      return ReplyStatus(req, "create", path, Status(Code::kAlreadyExists, "'" + std::string(name) + "' exists"));
    Status valid = ValidateName(name);
    if (!valid.ok()) return ReplyStatus(req, "create", path, valid);
    auto f = fs.scratch().Create(dir->entity, dir->id, name, mode & ~fuse_req_ctx(req)->umask);
    if (!f.ok()) return ReplyStatus(req, "create", path, f.status());
    NodeSpec spec = Namespace::ScratchSpec(*dir, name);
    Node node = fs.nodes().Resolve(parent, name, spec, 1);
    auto st = NodeAttr(fs, node.ino, spec);
    if (!st.ok()) {
      fs.ForgetNode(node.ino, 1);
      return ReplyStatus(req, "create", path, st.status());
    }
    fi->direct_io = 1;
    return ReplyCreate(req, fi, node, *st, std::make_shared<ScratchHandle>(spec, node.ino, true, *f));
  }
  Status ready = fs.EnsureEmptyObject();
  if (!ready.ok()) return ReplyStatus(req, "create", path, ready);
  auto e = fs.ns().CreateFile(ps, name, mode & ~fuse_req_ctx(req)->umask, fs.empty_hash(), RequestOwner(req));
  if (!e.ok()) {
    // O_CREAT without O_EXCL on an existing name is an open.
    if (e.status().is_exists() && !(fi->flags & O_EXCL)) {
      auto existing = fs.ns().Lookup(ps, name);
      if (existing.ok() && existing->kind == NodeKind::kFile)
        return ReplyWritableCreate(req, fi, parent, name, *existing, fi->flags & O_TRUNC, 0, path);
    }
    return ReplyStatus(req, "create", path, e.status());
  }
  DropListings(fs, ps, parent, name);
  ReplyWritableCreate(req, fi, parent, name, Spec(NodeKind::kFile, e->id), false, e->mtime_ns, path);
  SFS_FUSE_CATCH("create")
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  auto r = h->Read(fs, size, off);
  if (!r.ok()) return ReplyStatus(req, "read", fs.PathOf(h->ino()), r.status());
  ReplyRead(req, *r);
  SFS_FUSE_CATCH("read")
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  // Before the data, as a local filesystem does (file_remove_privs).
  if (mode_t kill = h->take_kill_privs()) KillPrivs(fs, *h, kill);
  bool answered = false;
  Status s = h->Write(fs, buf, size, off, [&] {
    fuse_reply_write(req, size);
    answered = true;
  });
  if (answered) {
    if (!s.ok()) fs.errors().Add("write", fs.PathOf(h->ino()), s.message() + " (reported by the next write or close)");
    return;
  }
  if (!s.ok()) return ReplyStatus(req, "write", fs.PathOf(h->ino()), s);
  fuse_reply_write(req, size);
  SFS_FUSE_CATCH("write")
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  Status s = h->Flush(fs);
  if (!s.ok()) return ReplyStatus(req, "close", fs.PathOf(h->ino()), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("flush")
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = fs.TakeHandle(fi->fh);
  if (h) h->Release(fs);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("release")
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  Status s = h->Fsync(fs);
  if (!s.ok()) return ReplyStatus(req, "fsync", fs.PathOf(ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fsync")
}

void OpFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto h = Handle(req, fi);
  if (!h) return (void)fuse_reply_err(req, EBADF);
  if (mode != 0) return (void)fuse_reply_err(req, EOPNOTSUPP);
  Status s = h->Fallocate(fs, offset, length);
  if (!s.ok()) return ReplyStatus(req, "fallocate", fs.PathOf(h->ino()), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fallocate")
}

void OpCopyFileRange(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                     off_t off_out, fuse_file_info* fi_out, size_t len, int) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  auto in = Handle(req, fi_in);
  auto out = Handle(req, fi_out);
  if (!in || !out) return (void)fuse_reply_err(req, EBADF);
  // Whole-file copy of a published file into an empty new file: record the
  // same object (an instant, deduplicated copy). Anything else falls back
  // to the kernel's read/write copy.
  auto* object = dynamic_cast<ObjectHandle*>(in.get());
  auto of = out->open_file();
  if (object && out->writable() && of && off_in == 0 && off_out == 0) {
    // Both records are read and the copy written in one transaction (lock
    // order: the file's lock, then the catalog's): outside one, the reads
    // go to a reader connection and answer as before a transaction still
    // open on another thread, and writing that back whole (mode, times,
    // kind) undid a chmod, touch or copy committed in between.
    std::optional<Entry> copied;
    Status s;
    {
      std::lock_guard lock(of->mu);
      Transaction txn(fs.catalog());
      s = txn.status();
      auto src = fs.catalog().EntryById(in->spec().record_id);
      auto dst = fs.catalog().EntryById(out->spec().record_id);
      if (s.ok() && src.ok() && src->hash == object->opened_hash() && len >= src->size && dst.ok() &&
          !of->writer && dst->size == 0 && of->error.ok()) {
        dst->hash = src->hash;
        dst->size = src->size;
        dst->mtime_ns = NowNs();
        s = fs.catalog().UpdateEntry(*dst);
        if (s.ok()) s = txn.Commit();
        if (s.ok()) copied = *dst;
      } else {
        s = Status::Ok();  // not such a copy: the kernel's fallback
      }
    }
    if (!s.ok()) return ReplyStatus(req, "copy_file_range", fs.PathOf(out->ino()), s);
    if (copied) {
      // The kernel updates the written inode itself (a file has one
      // inode for all its paths).
      fs.invalidator().PostAttrs(NodeKind::kFile, copied->id, out->ino());
      fuse_reply_write(req, copied->size);
      return;
    }
  }
  fuse_reply_err(req, EOPNOTSUPP);
  SFS_FUSE_CATCH("copy_file_range")
}

}  // namespace samplefs::fs
