// FileHandle: one open file (fuse_file_info::fh is its id in the
// Filesystem's handle table), one implementation per kind of file:
//
//   ObjectHandle       a published file opened read-only: reads splice
//                      from its object, or from the current version once a
//                      newer one appears
//   LiveHandle         a file opened for writing, or read while a version
//                      of it is pending: reads and writes go to the version
//                      (fs/open_files.h)
//   TextHandle         a generated file (status.json, errors, a sidecar
//                      opened read-only): the text rendered at open
//   SidecarEditHandle  a sidecar opened for writing: the document is edited
//                      in memory and applied at flush (close)
//   ScratchHandle      an editor's temporary file (fs/scratch.h)
//
// The FUSE callbacks (fs/ops_files.cc) call these and reply; handles know
// no FUSE request. Errors are Status; a kind that does not support an
// operation answers kBadHandle (EBADF), as the kernel expects for a write
// to a read-only descriptor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "catalog/status.h"
#include "catalog/unique_fd.h"
#include "fs/node.h"
#include "fs/open_files.h"
#include "fs/scratch.h"

namespace samplefs::fs {

class Filesystem;

// What a read returns: a range of a descriptor to splice from (`fd`), or
// `size` bytes at `data` (owned by `owned`, or by the handle).
struct ReadData {
  std::shared_ptr<UniqueFd> fd;
  off_t pos = 0;
  const char* data = nullptr;
  size_t size = 0;
  std::unique_ptr<char[]> owned;
  std::string copy;
};

// Answered with the errno alone (no entry in .samplefs/errors): what a
// program gets for using a descriptor the wrong way.
inline Status BadHandle() { return Status(Code::kIo, "not open for that", EBADF); }
inline Status FileTooBig() { return Status(Code::kIo, "file too big", EFBIG); }
inline bool IsQuietErrno(const Status& s) {
  return s.code() == Code::kIo && (s.to_errno() == EBADF || s.to_errno() == EFBIG);
}

class FileHandle {
 public:
  FileHandle(const NodeSpec& spec, uint64_t ino, bool writable) : spec_(spec), ino_(ino), writable_(writable) {}
  virtual ~FileHandle() = default;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  const NodeSpec& spec() const { return spec_; }
  uint64_t ino() const { return ino_; }
  bool writable() const { return writable_; }
  // The file's versions, for handles of files in files/ (else null).
  virtual std::shared_ptr<OpenFile> open_file() const { return nullptr; }

  // Up to `size` bytes at `off` (fewer at the end; none past it).
  virtual Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) = 0;
  // Writes `size` bytes at `off`. `answer_early` may be called once, before
  // the bytes land, when the write may be answered first (write-behind):
  // then a failure is the caller's to log, not to reply.
  virtual Status Write(Filesystem& fs, const char* buf, size_t size, off_t off,
                       const std::function<void()>& answer_early);
  // close() of one descriptor: what it reports.
  virtual Status Flush(Filesystem& fs);
  // The last reference is gone (after every close and mmap).
  virtual void Release(Filesystem& fs);
  virtual Status Fsync(Filesystem& fs);
  // Makes [offset, offset + length) part of the file.
  virtual Status Fallocate(Filesystem& fs, off_t offset, off_t length);
  // ftruncate through this handle, for kinds whose size is the handle's
  // own (a sidecar being edited); false: not the handle's to answer.
  virtual bool Truncate(uint64_t size);

  // The open found setuid/setgid bits that a write by this caller (no
  // CAP_FSETID) must clear (OpWrite, fs/ops_files.cc).
  void set_kill_privs(unsigned mode_bits) { kill_privs_.store(mode_bits, std::memory_order_relaxed); }
  unsigned take_kill_privs() {  // the bits, once; 0 after
    return kill_privs_.load(std::memory_order_relaxed) ? kill_privs_.exchange(0) : 0;
  }

 private:
  const NodeSpec spec_;
  const uint64_t ino_;
  const bool writable_;
  std::atomic<unsigned> kill_privs_{0};
};

class TextHandle : public FileHandle {
 public:
  TextHandle(const NodeSpec& spec, uint64_t ino, std::string text)
      : FileHandle(spec, ino, false), text_(std::move(text)) {}
  Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) override;

 private:
  const std::string text_;
};

class ScratchHandle : public FileHandle {
 public:
  ScratchHandle(const NodeSpec& spec, uint64_t ino, bool writable, std::shared_ptr<ScratchFile> file)
      : FileHandle(spec, ino, writable), file_(std::move(file)) {}
  Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) override;
  // EFBIG beyond ScratchFiles::kMaxFileBytes.
  Status Write(Filesystem& fs, const char* buf, size_t size, off_t off,
               const std::function<void()>& answer_early) override;

 private:
  std::shared_ptr<ScratchFile> file_;
};

class SidecarEditHandle : public FileHandle {
 public:
  // `document`: the current one (empty and already edited for O_TRUNC).
  SidecarEditHandle(const NodeSpec& spec, uint64_t ino, std::string document, bool edited)
      : FileHandle(spec, ino, true), edit_(std::move(document)), edited_(edited) {}
  Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) override;
  // Beyond kMaxSidecarBytes a write is accepted but not kept: the close
  // reports the document as too big.
  Status Write(Filesystem& fs, const char* buf, size_t size, off_t off,
               const std::function<void()>& answer_early) override;
  // Applies an edited document to the record (EINVAL for any rejection).
  Status Flush(Filesystem& fs) override;
  bool Truncate(uint64_t size) override;

 private:
  std::mutex mu_;
  std::string edit_;       // GUARDED_BY(mu_)
  bool edited_ = false;    // GUARDED_BY(mu_)
  bool oversize_ = false;  // GUARDED_BY(mu_)
};

// The handles of a file inside files/: both read the current version.
class VersionHandle : public FileHandle {
 public:
  VersionHandle(const NodeSpec& spec, uint64_t ino, bool writable, std::shared_ptr<OpenFile> of)
      : FileHandle(spec, ino, writable), of_(std::move(of)) {}
  std::shared_ptr<OpenFile> open_file() const override { return of_; }
  Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) override;
  Status Write(Filesystem& fs, const char* buf, size_t size, off_t off,
               const std::function<void()>& answer_early) override;
  Status Flush(Filesystem& fs) override;
  void Release(Filesystem& fs) override;
  Status Fsync(Filesystem& fs) override;
  Status Fallocate(Filesystem& fs, off_t offset, off_t length) override;

 protected:
  // The current version: the growing staging file (copied out under the
  // file's lock), or the object of the record (reopened when it changed).
  Result<ReadData> ReadCurrent(Filesystem& fs, size_t size, off_t off);

  const std::shared_ptr<OpenFile> of_;
  std::mutex mu_;                  // guards fd_ and fd_hash_
  std::shared_ptr<UniqueFd> fd_;   // GUARDED_BY(mu_) the object last read
  std::string fd_hash_;            // GUARDED_BY(mu_)
  // Flushed as the last writable handle; its RELEASE (which hands the
  // version to the committer) is on its way (Filesystem::CloseStarted).
  bool closing_ = false;           // GUARDED_BY(of_->mu)
};

class LiveHandle : public VersionHandle {
 public:
  using VersionHandle::VersionHandle;
};

class ObjectHandle : public VersionHandle {
 public:
  // `fd`: the object of the record read at open, whose hash is `hash`.
  ObjectHandle(const NodeSpec& spec, uint64_t ino, std::shared_ptr<OpenFile> of, std::shared_ptr<UniqueFd> fd,
               std::string hash)
      : VersionHandle(spec, ino, false, std::move(of)) {
    fd_ = std::move(fd);
    fd_hash_ = std::move(hash);
  }
  Result<ReadData> Read(Filesystem& fs, size_t size, off_t off) override;
  // The hash of the object this handle opened (copy_file_range).
  std::string opened_hash() {
    std::lock_guard lock(mu_);
    return fd_hash_;
  }
};

}  // namespace samplefs::fs
