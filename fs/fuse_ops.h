// What the FUSE callbacks share (fs/ops_*.cc): getting the Filesystem from
// the request, the one error reply, the last-resort catch, entry replies.
// The callbacks translate a kernel request into calls below (Namespace,
// OpenFiles, FileHandle, Catalog) and the answer back; they hold no state.
#pragma once

#include <fuse_lowlevel.h>

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "fs/file_handle.h"
#include "fs/filesystem.h"

namespace samplefs::fs {

inline Filesystem& Fs(fuse_req_t req) { return *static_cast<Filesystem*>(fuse_req_userdata(req)); }

// The handle of an open file; null for an unknown id. The caller's
// reference keeps it alive even if a release for it arrives meanwhile.
inline std::shared_ptr<FileHandle> Handle(fuse_req_t req, fuse_file_info* fi) { return Fs(req).GetHandle(fi->fh); }

// The name of the user making the request (a new slide's creator).
std::string UserName(fuse_req_t req);
// The requesting user, recorded as a new entry's owner (schema v7).
Owner RequestOwner(fuse_req_t req);

// Answers an error. Refusals (an operation that has no meaning, a bad
// name or value) also go to .samplefs/errors with their reason; a handle
// used the wrong way (EBADF, EFBIG) answers its errno alone.
void ReplyStatus(fuse_req_t req, const char* op, const std::string& path, const Status& s);

// The parent's spec, or false after answering ESTALE.
bool ParentSpec(fuse_req_t req, fuse_ino_t parent, NodeSpec* spec);

fuse_entry_param EntryParam(Filesystem& fs, const Node& node, const struct stat& st);
// How long the kernel may keep a node's attributes: attr_timeout, but 0 for
// the files under .samplefs, whose sizes change with no write to the
// catalog (nothing drops them; before directories' listings were kept, a
// READDIRPLUS of .samplefs refreshed them at every `ls -l`).
double AttrTimeout(const Filesystem& fs, const NodeSpec& spec);

// Resolves a new child node and answers the request with it. `found`: the
// entry a lookup read, whose attributes then need no second query.
void ReplyNewEntry(fuse_req_t req, fuse_ino_t parent, const std::string& name, const NodeSpec& spec,
                   const char* op, const Entry* found = nullptr);

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

// The callbacks, by file.
// ops_entries.cc: names and attributes.
void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets);
void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
void OpReadlink(fuse_req_t req, fuse_ino_t ino);
void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags);
void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name);
void OpStatfs(fuse_req_t req, fuse_ino_t ino);
// ops_directories.cc: listings.
void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
// ops_files.cc: open files.
void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi);
void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info* fi);
void OpCopyFileRange(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info* fi_in, fuse_ino_t ino_out,
                     off_t off_out, fuse_file_info* fi_out, size_t len, int flags);
// ops_xattrs.cc: extended attributes.
void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags);
void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name);

}  // namespace samplefs::fs
