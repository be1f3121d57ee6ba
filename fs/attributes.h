// The attributes of a node as the kernel must see them: the catalog's
// record, overlaid with what the catalog does not know yet (the size,
// mtime and mode of a version being written, the error log's size), so
// that lookup, getattr and readdirplus never answer a size that read and
// stat then contradict (the kernel caches it for attr_timeout).
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "catalog/status.h"
#include "fs/node.h"

namespace samplefs::fs {

class Filesystem;

// The inode number (st_ino, d_ino) of a node. Files and symlinks have one
// inode for all their paths and take theirs from the entry id, so that a
// listing can give the number of a file the kernel holds no inode for
// (lean listings); every other node shows its node id, from a counter.
// The two ranges never meet: node ids stay below kFileInoBase (2^48 node
// ids would take nine years at a million new directory nodes a second).
constexpr uint64_t kFileInoBase = uint64_t{1} << 48;
inline uint64_t InodeNumber(fuse_ino_t ino, const NodeSpec& spec) {
  if (spec.kind == NodeKind::kFile || spec.kind == NodeKind::kSymlink)
    return kFileInoBase + static_cast<uint64_t>(spec.record_id);
  return ino;
}

// Attributes of node `ino`, including a pending (unpublished) version's
// size; a file unlinked while open answers its orphan record (nlink 0).
// kNotFound if the node's record (or temporary file) is gone.
Result<struct stat> NodeAttr(Filesystem& fs, fuse_ino_t ino, const NodeSpec& spec);

// Applies the overlay to attributes the caller already has (a listing's).
void OverlayLiveAttr(Filesystem& fs, const NodeSpec& spec, struct stat* st);
// Only the part of it for a read's atime not yet written (fs/atimes.h).
void OverlayAtime(Filesystem& fs, const NodeSpec& spec, struct stat* st);

}  // namespace samplefs::fs
