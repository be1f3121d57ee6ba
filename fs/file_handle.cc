#include "fs/file_handle.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "catalog/crash_point.h"
#include "fs/filesystem.h"
#include "fs/notices.h"
#include "fs/sidecar.h"

namespace samplefs::fs {

namespace {

// Bytes [off, off + size) of an in-memory document, copied out.
ReadData CopyRange(const std::string& data, size_t size, off_t off) {
  ReadData r;
  if (static_cast<size_t>(off) >= data.size()) return r;
  r.copy = data.substr(static_cast<size_t>(off), std::min(size, data.size() - static_cast<size_t>(off)));
  r.data = r.copy.data();
  r.size = r.copy.size();
  return r;
}

ReadData FromFd(std::shared_ptr<UniqueFd> fd, size_t size, off_t off) {
  ReadData r;
  r.fd = std::move(fd);
  r.pos = off;
  r.size = size;
  return r;
}

// Write-behind: may this write be answered before it is in the staging
// file? FUSE writes are synchronous for the program (cp waits for every
// answer), so copying a large file costs the sum of the program's read, the
// transfer, the page-cache write and the hash; answering first overlaps
// the last two with the program's next read, on the other core (a 2 GiB cp
// 1.3-1.7 s -> 1.0-1.2 s, docs/DECISIONS.md "Write-behind"). Only large writes deep
// into a file: the first kWriteBehindFrom bytes of every file are written
// before the answer, so small files (most of a copy's files) keep every
// error in the write() that caused it; and only while the store's disk has
// room (ObjectStore::WriteBehindRoom, -o write_behind_min_free), so ENOSPC
// on a nearly full disk is also reported by the write() that meets it.
constexpr uint64_t kWriteBehindFrom = uint64_t{8} << 20;
constexpr size_t kWriteBehindMinWrite = size_t{64} << 10;

bool WriteBehind(Filesystem& fs, size_t size, off_t off) {
  return size >= kWriteBehindMinWrite && static_cast<uint64_t>(off) + size > kWriteBehindFrom &&
         fs.store().WriteBehindRoom();
}

}  // namespace

// --- defaults: what a kind without the operation answers -----------------

Status FileHandle::Write(Filesystem&, const char*, size_t, off_t, const std::function<void()>&) {
  return BadHandle();
}
Status FileHandle::Flush(Filesystem&) { return Status::Ok(); }
void FileHandle::Release(Filesystem&) {}
Status FileHandle::Fsync(Filesystem&) { return Status::Ok(); }
Status FileHandle::Fallocate(Filesystem&, off_t, off_t) { return BadHandle(); }
bool FileHandle::Truncate(uint64_t) { return false; }

// --- generated text ------------------------------------------------------

Result<ReadData> TextHandle::Read(Filesystem&, size_t size, off_t off) {
  ReadData r;
  if (static_cast<size_t>(off) >= text_.size()) return r;
  r.data = text_.data() + off;  // the text lives as long as the handle
  r.size = std::min(size, text_.size() - static_cast<size_t>(off));
  return r;
}

// --- editors' temporary files ---------------------------------------------

Result<ReadData> ScratchHandle::Read(Filesystem&, size_t size, off_t off) {
  std::lock_guard lock(file_->mu);
  return CopyRange(file_->data, size, off);
}

Status ScratchHandle::Write(Filesystem&, const char* buf, size_t size, off_t off, const std::function<void()>&) {
  std::lock_guard lock(file_->mu);
  size_t end = static_cast<size_t>(off) + size;
  if (end > ScratchFiles::kMaxFileBytes) return FileTooBig();
  if (file_->data.size() < end) file_->data.resize(end);
  file_->data.replace(static_cast<size_t>(off), size, buf, size);
  return Status::Ok();
}

// --- a sidecar being edited -------------------------------------------------

Result<ReadData> SidecarEditHandle::Read(Filesystem&, size_t size, off_t off) {
  std::lock_guard lock(mu_);
  return CopyRange(edit_, size, off);
}

Status SidecarEditHandle::Write(Filesystem&, const char* buf, size_t size, off_t off,
                                const std::function<void()>&) {
  std::lock_guard lock(mu_);
  size_t end = static_cast<size_t>(off) + size;
  edited_ = true;
  if (end > kMaxSidecarBytes) {
    // Accepted but not kept: the close reports the document as too big.
    oversize_ = true;
    return Status::Ok();
  }
  if (edit_.size() < end) edit_.resize(end);
  edit_.replace(static_cast<size_t>(off), size, buf, size);
  return Status::Ok();
}

bool SidecarEditHandle::Truncate(uint64_t size) {
  std::lock_guard lock(mu_);
  if (size > kMaxSidecarBytes) oversize_ = true;
  else edit_.resize(static_cast<size_t>(size));
  edited_ = true;
  return true;
}

Status SidecarEditHandle::Flush(Filesystem& fs) {
  std::lock_guard lock(mu_);
  if (!edited_) return Status::Ok();
  edited_ = false;
  Status s = oversize_ ? Status(Code::kInvalidArgument, "document is over the 1 MiB limit")
                       : ApplySidecar(fs.catalog(), spec().entity, spec().record_id, edit_);
  if (s.ok()) PostChangedNode(fs, spec(), Notices::kAwait);  // flush holds no lock
  // Every rejection of a document is EINVAL at close (SPEC section 4).
  if (!s.ok() && s.code() != Code::kBusy && s.code() != Code::kIo && s.code() != Code::kNoSpace)
    s = Status(Code::kInvalidArgument, s.message());
  return s;
}

// --- files in files/ ---------------------------------------------------------

Result<ReadData> ObjectHandle::Read(Filesystem& fs, size_t size, off_t off) {
  // Every handle reads the current version. The kernel keeps one page
  // cache per inode: a handle still reading the object it opened would
  // fill it with stale pages, and its short reads shrink the cached
  // size, which the writer's own reads then return (the concurrent
  // difftest caught this). Until a new version appears, splice as is.
  std::shared_ptr<UniqueFd> fd;
  {
    std::lock_guard lock(of_->mu);
    std::lock_guard hl(mu_);
    if (!of_->writer && (of_->published_hash.empty() || of_->published_hash == fd_hash_)) fd = fd_;
  }
  if (fd) return FromFd(std::move(fd), size, off);
  return ReadCurrent(fs, size, off);  // the staging file or the new object
}

Result<ReadData> VersionHandle::Read(Filesystem& fs, size_t size, off_t off) { return ReadCurrent(fs, size, off); }

Result<ReadData> VersionHandle::ReadCurrent(Filesystem& fs, size_t size, off_t off) {
  std::unique_lock lock(of_->mu);
  if (of_->writer) {
    // The growing staging file: copy out under the lock, because a
    // publish may retire the staging file right after.
    ReadData r;
    r.owned.reset(new char[size]);  // not zeroed: only the bytes read are sent
    SFS_ASSIGN_OR_RETURN(r.size, of_->writer->Read(r.owned.get(), size, static_cast<uint64_t>(off)));
    r.data = r.owned.get();
    return r;
  }
  std::lock_guard hl(mu_);
  auto e = fs.catalog().EntryById(spec().record_id);
  if (!e.ok() && e.status().is_not_found() && of_->orphan) e = *of_->orphan;
  if (!e.ok()) return e.status();
  if (!fd_ || fd_hash_ != e->hash) {
    SFS_ASSIGN_OR_RETURN(fd_, OpenEntryObject(fs.store(), fs.empty_hash(), *e, fs.PathOf(ino())));
    fd_hash_ = e->hash;
  }
  return FromFd(fd_, size, off);
}

Status VersionHandle::Write(Filesystem& fs, const char* buf, size_t size, off_t off,
                            const std::function<void()>& answer_early) {
  if (!writable()) return BadHandle();
  std::lock_guard lock(of_->mu);
  Status s = of_->error;
  if (s.ok()) s = fs.files().EnsureWriterLocked(*of_, false);
  if (s.ok() && WriteBehind(fs, size, off)) {
    // Answered first: the program reads its next block while this one
    // is written and hashed. The lock is held until the bytes are in the
    // staging file, so whatever follows the answer (a read, stat,
    // truncate, fsync or close of any handle) sees them.
    answer_early();
    fs.NoteWriteBehind();
  }
  if (s.ok()) s = of_->writer->Write(buf, size, static_cast<uint64_t>(off));
  if (s.ok()) of_->ctime_ns = of_->mtime_ns = NowNs();
  // A failed write makes the pending version incomplete: it is never
  // published, and close() reports the error again (also the next write
  // and fsync, for a write that was answered before it failed).
  else if (of_->error.ok()) of_->error = s;
  return s;
}

Status VersionHandle::Flush(Filesystem& fs) {
  if (!writable()) return Status::Ok();
  std::shared_ptr<CommitJob> job;
  Status s;
  {
    std::lock_guard lock(of_->mu);
    s = of_->error;
    // The last writer's close: the version is committed at release (data
    // of a shared mmap may still come), or here with -o sync_close. A
    // version that failed is dropped at release, which still records a
    // chmod it carried: `sync DIR` waits for that release too.
    // Every close() of a writer seals what it leaves (a line appended to
    // the session's seals.log), so that a daemon killed before the commit loses
    // nothing whose close() returned 0: the next mount verifies and
    // records it (ObjectStore's seals, catalog/recovery.h).
    if (s.ok() && of_->writer && !of_->sealed)
      s = of_->writer->WriteSeal(OpenFiles::SealOf(*of_, fs.PathOf(ino()), true), false);
    if (of_->writers == 1 && of_->writer) {
      if (s.ok() && fs.options().sync_close) {
        job = fs.files().SealLocked(of_, false, fs.PathOf(ino()));
      } else if (!closing_) {
        closing_ = true;
        fs.CloseStarted();
      }
    }
  }
  if (job) {
    s = Committer::Wait(*job);
    if (s.ok()) CrashPoint("before-reply");
  }
  return s;
}

void VersionHandle::Release(Filesystem& fs) {
  bool closing;
  {
    std::lock_guard lock(of_->mu);
    closing = closing_;
    if (writable() && --of_->writers == 0) {
      of_->base.reset();  // the next writer pins what it opens
      if (!of_->error.ok()) {
        // The error was reported at write/close; drop the incomplete version.
        if (!of_->sealed) fs.files().DropVersionLocked(*of_);
        of_->error = Status::Ok();
      } else if (of_->writer && !of_->sealed) {
        // Committed in the background with the other versions of this
        // moment; failures are retried and logged (fs/committer.h).
        fs.files().SealLocked(of_, true, fs.PathOf(ino()));
      }
    }
  }
  if (closing) fs.CloseEnded();
  fs.files().MaybeRelease(of_);
}

Status VersionHandle::Fsync(Filesystem& fs) {
  Status s;
  std::shared_ptr<CommitJob> job;
  {
    std::lock_guard lock(of_->mu);
    s = of_->error;
    if (s.ok() && of_->writer) {
      if (of_->writers > 0 && !of_->sealed) {
        // Still open for writing: made durable and recoverable where it is
        // (staging data, seal and directory fsynced), not published. An
        // acquisition that fsyncs every few MiB would otherwise publish a
        // new object of the whole file each time: a store growing with the
        // sum of the file's prefixes. The object is published once, when
        // the version is closed.
        s = of_->writer->WriteSeal(OpenFiles::SealOf(*of_, fs.PathOf(ino()), false), true);
        if (s.ok()) CrashPoint("before-reply");
      } else {
        job = fs.files().SealLocked(of_, false, fs.PathOf(ino()));
      }
    }
  }
  if (job) {
    s = Committer::Wait(*job);
    if (s.ok()) CrashPoint("before-reply");
  }
  return s;
}

Status VersionHandle::Fallocate(Filesystem& fs, off_t offset, off_t length) {
  if (!writable()) return BadHandle();
  std::lock_guard lock(of_->mu);
  Status s = fs.files().EnsureWriterLocked(*of_, false);
  uint64_t end = static_cast<uint64_t>(offset + length);
  if (s.ok() && end > of_->writer->size()) s = of_->writer->Truncate(end);
  return s;
}

}  // namespace samplefs::fs
