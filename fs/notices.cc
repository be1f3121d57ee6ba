#include "fs/notices.h"


#include "fs/filesystem.h"

namespace samplefs::fs {

void PostStructures(Filesystem& fs) { fs.invalidator().PostRecord(NodeKind::kStructure, 0); }

void PostChanged(Filesystem& fs, fuse_ino_t parent, const std::string& name) {
  if (auto ino = fs.nodes().Find(parent, name))
    if (auto n = fs.nodes().Get(*ino)) {
      if (n->spec.kind == NodeKind::kFile || n->spec.kind == NodeKind::kSymlink) {
        // A file is one inode (NodeTable): the kernel updates the name the
        // request came through itself; only its other names need a note.
        // (Most files have one name: renames and unlinks of rsync and rm
        // then cost no notification.)
        fs.invalidator().PostRecordExcept(n->spec.kind, n->spec.record_id, parent, name);
        return;
      }
      fs.invalidator().PostRecord(n->spec.kind, n->spec.record_id);
      if (n->spec.kind == NodeKind::kSlide) PostStructures(fs);
    }
}

void PostRenamed(Filesystem& fs, fuse_ino_t parent, const std::string& name, fuse_ino_t newparent) {
  auto ino = fs.nodes().Find(parent, name);
  auto n = ino ? fs.nodes().Get(*ino) : std::nullopt;
  if (!n || n->spec.kind == NodeKind::kFile || n->spec.kind == NodeKind::kSymlink ||
      n->spec.kind == NodeKind::kFolder)
    return PostChanged(fs, parent, name);
  fs.invalidator().PostRenamedRecord(n->spec.kind, n->spec.record_id, parent, name, newparent);
  if (n->spec.kind == NodeKind::kSlide) PostStructures(fs);
}

void PostChangedNode(Filesystem& fs, const NodeSpec& spec, Notices notices) {
  fs.invalidator().PostRecord(spec.kind, spec.record_id);
  if (spec.kind == NodeKind::kSidecar) {
    if (auto dir = RecordDirKind(spec.entity)) fs.invalidator().PostRecord(*dir, spec.record_id);
    if (spec.entity == Entity::kSlide) PostStructures(fs);
  }
  if (notices == Notices::kAwait && spec.kind != NodeKind::kFile && spec.kind != NodeKind::kSymlink &&
      spec.kind != NodeKind::kFolder)
    fs.invalidator().Drain();
}

void DropListings(Filesystem& fs, const NodeSpec& dir, fuse_ino_t ino, const std::string& name) {
  // The name may be cached as absent through the other paths (negative
  // lookups, MountOptions::negative_timeout): those notices are queued (the
  // kernel takes the other directory's lock for them) and awaited, within
  // Drain's bound, so a stat through any path finds what `ls` shows. Most
  // folders have one path: nothing is queued and nothing awaited.
  if (dir.kind == NodeKind::kFolder && fs.invalidator().InvalidateListings(dir.record_id, ino, name))
    fs.invalidator().Drain();
}

}  // namespace samplefs::fs
