#include "fs/attributes.h"

#include <mutex>

#include "fs/filesystem.h"

namespace samplefs::fs {

void OverlayAtime(Filesystem& fs, const NodeSpec& spec, struct stat* st) {
  if (spec.kind != NodeKind::kFile || fs.atimes().Empty()) return;
  if (auto a = fs.atimes().Pending(spec.record_id)) st->st_atim = NsToTimespec(*a);
}

void OverlayLiveAttr(Filesystem& fs, const NodeSpec& spec, struct stat* st) {
  OverlayAtime(fs, spec, st);
  if (spec.kind == NodeKind::kFile) {
    if (auto of = fs.files().Find(spec.record_id)) {
      std::lock_guard lock(of->mu);
      OpenFiles::OverlayPendingLocked(*of, st);
    }
  } else if (spec.kind == NodeKind::kErrorsFile) {
    st->st_size = static_cast<off_t>(fs.errors().size());
  }
}

Result<struct stat> NodeAttr(Filesystem& fs, fuse_ino_t ino, const NodeSpec& spec) {
  if (spec.kind == NodeKind::kScratch) {
    auto f = fs.ns().ScratchOf(spec);
    if (!f) return Status(Code::kNotFound, "'" + spec.text + "' does not exist");
    struct stat st {};
    const auto& id = fs.ns().identity();
    st.st_ino = ino;
    st.st_uid = id.uid;
    st.st_gid = id.gid;
    st.st_nlink = 1;
    st.st_mode = S_IFREG | f->mode;
    std::lock_guard lock(f->mu);
    st.st_size = static_cast<off_t>(f->data.size());
    st.st_mtim = st.st_ctim = st.st_atim = NsToTimespec(f->mtime_ns);
    return st;
  }
  // A file's record and its pending version are read under the OpenFile's
  // lock: a publish between the two would answer the old record's size
  // (0 for a new file), and the kernel would cache it after close().
  auto of = spec.kind == NodeKind::kFile ? fs.files().Find(spec.record_id) : nullptr;
  std::unique_lock<std::mutex> of_lock;
  if (of) of_lock = std::unique_lock<std::mutex>(of->mu);
  auto attr = fs.ns().Attr(spec);
  if (!attr.ok() && attr.status().is_not_found() && of && of->orphan) {
    attr = EntryAttr(*of->orphan, fs.ns().identity());
    attr->st_nlink = 0;
  }
  SFS_ASSIGN_OR_RETURN(struct stat st, std::move(attr));
  st.st_ino = InodeNumber(ino, spec);
  if (of) {
    OpenFiles::OverlayPendingLocked(*of, &st);
    OverlayAtime(fs, spec, &st);
  } else {
    OverlayLiveAttr(fs, spec, &st);
  }
  return st;
}

}  // namespace samplefs::fs
