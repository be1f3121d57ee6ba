#include "fs/notices.h"

#include "catalog/query.h"


#include "fs/filesystem.h"

namespace samplefs::fs {

namespace {

// A directory whose members depend only on who they are (their owner,
// names, labellings), never on their tags, annotations or comment: the
// views, a record's images/, and the slides/ of a species, sample, dye or
// structure.
bool SelectsByIdentity(const NodeSpec& dir) {
  switch (dir.kind) {
    case NodeKind::kSpeciesView:
    case NodeKind::kSamplesView:
    case NodeKind::kSlidesView:
    case NodeKind::kDyesView:
    case NodeKind::kImages:
      return true;
    case NodeKind::kSlideList: {
      auto q = Query::Parse(dir.text);
      if (!q.ok() || q->terms.empty()) return false;
      for (const auto& t : q->terms)
        if (t.key != "species" && t.key != "sample" && t.key != "dye" && t.key != "structure") return false;
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

void PostStructures(Filesystem& fs) { fs.invalidator().PostRecord(NodeKind::kStructure, 0); }

void PostChanged(Filesystem& fs, fuse_ino_t parent, const std::string& name) {
  fs.xattr_memo().Changed();
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
  fs.xattr_memo().Changed();
  auto ino = fs.nodes().Find(parent, name);
  auto n = ino ? fs.nodes().Get(*ino) : std::nullopt;
  if (!n || n->spec.kind == NodeKind::kFile || n->spec.kind == NodeKind::kSymlink ||
      n->spec.kind == NodeKind::kFolder)
    return PostChanged(fs, parent, name);
  fs.invalidator().PostRenamedRecord(n->spec.kind, n->spec.record_id, parent, name, newparent);
  if (n->spec.kind == NodeKind::kSlide) PostStructures(fs);
}

void PostChangedNode(Filesystem& fs, const NodeSpec& spec, Notices notices) {
  fs.xattr_memo().Changed();
  fs.invalidator().PostRecord(spec.kind, spec.record_id);
  if (spec.kind == NodeKind::kSidecar) {
    if (auto dir = RecordDirKind(spec.entity)) fs.invalidator().PostRecord(*dir, spec.record_id);
    if (spec.entity == Entity::kSlide) PostStructures(fs);
  }
  if (notices == Notices::kAwait && spec.kind != NodeKind::kFile && spec.kind != NodeKind::kSymlink &&
      spec.kind != NodeKind::kFolder)
    fs.invalidator().Drain();
}

void PostXattrChanged(Filesystem& fs, fuse_ino_t ino, const NodeSpec& spec, const std::string& name) {
  fs.xattr_memo().Changed();
  if (spec.kind == NodeKind::kFile || spec.kind == NodeKind::kSymlink || spec.kind == NodeKind::kFolder) {
    // An entry's attributes name no path in files/: only its names in
    // tags/<t>/files/ may come or go (user.xdg.tags). Dropping its name in
    // files/ as well (PostRecord) made the kernel forget the inode, so
    // every setfattr cost a FORGET and the next access a LOOKUP (issue 16).
    // Its ctime changed: the kernel refreshes the inode the request came
    // through itself (fuse_setxattr invalidates its attributes); other
    // inodes of the record (a folder's other paths) are told.
    for (const Node& n : fs.nodes().ByRecord(spec.kind, spec.record_id)) {
      for (const auto& link : n.links) {
        auto parent = fs.nodes().Get(link.first);
        if (parent && (parent->spec.kind == NodeKind::kFolder || parent->spec.kind == NodeKind::kImage)) continue;
        fs.invalidator().PostEntry(link.first, link.second);
      }
      if (n.ino != ino) fs.invalidator().PostInode(n.ino);
    }
    return;
  }
  // A record's fields may rename it or move it (user.samplefs.reference,
  // .name, .sample): every path of it goes, awaited, as before.
  if (name.rfind("user.samplefs.", 0) == 0 || !RecordDirEntity(spec.kind))
    return PostChangedNode(fs, spec, Notices::kAwait);
  // Tags, the comment and annotations rename nothing: only its names in
  // listings that select by them (tags/<t>/, query/<e>/, a slides/ of a
  // query) may come or go; its names under the views and its owner's
  // slides/ or images/ stay, so the kernel keeps the inode (no FORGET and
  // LOOKUP per edit: setfattr on 1,000 slides, issue 16). Its other
  // inodes' attributes (a comment moves `modified`) and its sidecar's (the
  // document shows the tags) are told. Awaited as before, so a name that
  // left tags/<t>/ is gone when setfattr returns; with nothing to send
  // (a slide seen only through its owner's slides/) nothing is waited for.
  for (const Node& n : fs.nodes().ByRecord(spec.kind, spec.record_id)) {
    for (const auto& link : n.links) {
      if (auto parent = fs.nodes().Get(link.first); parent && SelectsByIdentity(parent->spec)) continue;
      fs.invalidator().PostEntry(link.first, link.second);
    }
    if (n.ino != ino) fs.invalidator().PostInode(n.ino);
  }
  fs.invalidator().PostAttrs(NodeKind::kSidecar, spec.record_id);
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
