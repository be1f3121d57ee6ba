// The callbacks of directories: opendir, readdir, readdirplus, fsyncdir.
#include <sys/stat.h>

#include <memory>

#include "fs/fuse_ops.h"

namespace samplefs::fs {

namespace {

void ReaddirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Filesystem& fs = Fs(req);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  if (off == 0) fs.CountListing();
  // A generated directory's listing, cached by the kernel, is marked so the
  // next write to the catalog drops it (before it is read: a write during
  // the listing drops it too).
  const bool generated = fs.kernel_opens_directories() && node->spec.kind != NodeKind::kFolder;
  const uint64_t generation = generated ? fs.invalidator().NoteGeneratedListing(ino) : 0;
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
    const uint64_t epoch = fs.publish_epoch();  // before the page is read
    // The smallest entry: a name of 8 bytes or less (padded to 8).
    const size_t min_entry = plus ? fuse_add_direntry_plus(req, nullptr, 0, "x", nullptr, 0)
                                  : fuse_add_direntry(req, nullptr, 0, "x", nullptr, 0);
    const int fits = static_cast<int>((size - pos) / min_entry) + 1;
    // Files without attributes: no node here and no inode in the kernel
    // (plain readdir always; readdirplus unless listings are rich).
    const bool lean = !plus || !fs.RichListings();
    bool any_lean = false;
    // A lean READDIRPLUS answers at most this many files (the kernel asks
    // for ~6,000 entries' worth here): an `ls -l` stats each file of the
    // first answer with a LOOKUP before its next getdents turns listings
    // rich, so the answer's size is what that switch costs.
    int lean_left = 512;
    s = fs.ns().List(node->spec, cookie, [&](const DirEntry& d) {
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
                       (fs.files().Find(d.spec.record_id) || fs.publish_epoch() != epoch);
      if (d.attr && !open_file) {
        st = *d.attr;
        OverlayLiveAttr(fs, d.spec, &st);
      } else {
        auto a = NodeAttr(fs, 0, d.spec);
        if (!a.ok()) return true;  // vanished while listing: skip it
        st = *a;
      }
      Node child = fs.nodes().Resolve(ino, d.name, d.spec, plus ? 1 : 0);
      st.st_ino = InodeNumber(child.ino, d.spec);
      fuse_entry_param e = EntryParam(fs, child, st);
      if (!add(d.name, st, &e, static_cast<off_t>(d.next_cookie))) {
        if (plus) fs.ForgetNode(child.ino, 1);
        return false;
      }
      return true;
    }, fits);
    if (any_lean && plus && node->spec.kind == NodeKind::kFolder) fs.NoteLeanListing(ino);
  }
  if (!s.ok() && pos == 0) return ReplyStatus(req, "readdir", fs.PathOf(ino), s);
  fuse_reply_buf(req, buf.get(), pos);
  if (generated) fs.invalidator().ListingReplied(ino, generation);
}

}  // namespace

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  SFS_FUSE_TRY
  Filesystem& fs = Fs(req);
  fs.CountOpendir();
  // The kernel can open directories itself (FUSE_CAP_NO_OPENDIR_SUPPORT):
  // ENOSYS says so, once, and it then keeps every directory's listing
  // (FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE) across opens. Folders inside
  // files/ (SPEC section 4: up to 100,000 entries) are dropped on every
  // change to their contents through the mount (DropListings) and by
  // another process (Invalidator's poll); generated directories (views,
  // queries, tags) on every write to the catalog
  // (Invalidator::NoteGeneratedListing).
  if (fs.kernel_opens_directories()) return (void)fuse_reply_err(req, ENOSYS);
  auto node = fs.nodes().Get(ino);
  if (!node) return (void)fuse_reply_err(req, ESTALE);
  // An older kernel: folders' listings are kept as above; generated
  // directories are listed afresh at each open.
  if (node->spec.kind == NodeKind::kFolder) {
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
  }
  fuse_reply_open(req, fi);
  SFS_FUSE_CATCH("opendir")
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  SFS_FUSE_TRY
  ReaddirCommon(req, ino, size, off, false);
  SFS_FUSE_CATCH("readdir")
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  SFS_FUSE_TRY
  ReaddirCommon(req, ino, size, off, true);
  SFS_FUSE_CATCH("readdirplus")
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  SFS_FUSE_TRY
  // Every directory change is committed before its reply; what this waits
  // for is the files closed before it, committed in the background (`sync
  // DIR` is the barrier for scripts that read the catalog next).
  Filesystem& fs = Fs(req);
  Status s = fs.WaitForCommits(std::chrono::seconds(60));
  if (!s.ok()) return ReplyStatus(req, "fsync", fs.PathOf(ino), s);
  fuse_reply_err(req, 0);
  SFS_FUSE_CATCH("fsyncdir")
}

}  // namespace samplefs::fs
