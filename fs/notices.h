// Notices to the kernel after a change made through the mount: which other
// paths of the changed record, and which listings, it must drop
// (fs/invalidator.h sends them). Called by the callbacks after a change
// succeeded and before they reply.
#pragma once

#include <fuse_lowlevel.h>

#include <string>

#include "fs/node.h"

namespace samplefs::fs {

class Filesystem;

// structures/<s> exists only while a labelling names it: after a slide's
// labellings change (slide.json, rmdir of the slide) a vanished structure's
// cached name would otherwise still stat for entry_timeout. Structure nodes
// all have record id 0, so this reaches every one of them.
void PostStructures(Filesystem& fs);

// After a change to the record at (parent, name): every other path of it.
void PostChanged(Filesystem& fs, fuse_ino_t parent, const std::string& name);

// After a rename of the record at (parent, name) to a name in `newparent`
// (before NodeTable::Rename): every other path of it. A record's directory
// (species, sample, slide, image, ...) is gone from its old paths when the
// rename replies (Invalidator::PostRenamedRecord awaits the notices, within
// Drain's bound): a slide moved to another sample no longer stats through
// the old sample (the test of this flaked under load while they were still
// queued). A file, symlink or folder is as PostChanged: its notices are
// queued and nothing is awaited (rsync renames every file it writes).
void PostRenamed(Filesystem& fs, fuse_ino_t parent, const std::string& name, fuse_ino_t newparent);

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
void PostChangedNode(Filesystem& fs, const NodeSpec& spec, Notices notices);

// After setxattr or removexattr of `name` on inode `ino` (standing for
// `spec`) succeeded. A field (user.samplefs.*) may rename a record:
// PostChangedNode, awaited. Otherwise (tags, comment, annotations) only
// the names in listings that select by them (tags/, query/) and the
// attributes of its other inodes and its sidecar: a file's queued, a
// record directory's awaited. The name the request came through is kept,
// so the kernel keeps the inode (no FORGET and LOOKUP per edit).
void PostXattrChanged(Filesystem& fs, fuse_ino_t ino, const NodeSpec& spec, const std::string& name);

// After a change to the contents of directory `dir` (inode `ino`) made
// through the mount: the kernel keeps listings of folders inside files/
// (OpOpendir) and drops only the one of the inode the change came through,
// so every other path of the folder is told, before the reply (see
// Invalidator::InvalidateListings), so that the next `ls` of any path
// shows the change. Other directories are never cached.
void DropListings(Filesystem& fs, const NodeSpec& dir, fuse_ino_t ino, const std::string& name);

}  // namespace samplefs::fs
