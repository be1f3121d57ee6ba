#include "fs/open_files.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>

#include "catalog/hash.h"
#include "fs/node.h"

namespace samplefs::fs {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Result<std::shared_ptr<UniqueFd>> OpenEntryObject(ObjectStore& store, const std::string& empty_hash,
                                                  const Entry& e, const std::string& path) {
  auto h = ContentHash::FromHex(e.hash);
  if (!h) return Status(Code::kCorrupt, "file record has an invalid hash");
  if (e.size == 0 && e.hash == empty_hash) {
    // Nothing to read: an empty file opens even if gc --grace 0 removed
    // the empty object between a create and its record.
    auto fd = std::make_shared<UniqueFd>(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd->valid()) return Status::FromErrno(errno, "open /dev/null");
    return fd;
  }
  auto opened = store.OpenObject(*h);
  if (!opened.ok()) {
    spdlog::error("object {} of {} cannot be opened: {}", e.hash, path, opened.status().ToString());
    return Status(Code::kCorrupt, "object " + e.hash + " is missing from the store");
  }
  auto owned = std::make_shared<UniqueFd>(std::move(*opened));
  // An object shorter (or longer) than its record would read as a silently
  // different file (cp copies half and succeeds); one fstat catches it.
  // Flipped bytes are left to fsck --verify (see DECISIONS.md, Faults).
  struct stat st;
  if (::fstat(owned->get(), &st) != 0 || static_cast<uint64_t>(st.st_size) != e.size) {
    spdlog::error("object {} of {} has {} bytes but its record says {}: changed behind the catalog's back",
                  e.hash, path, static_cast<int64_t>(st.st_size), e.size);
    return Status(Code::kCorrupt, "object " + e.hash + " is damaged: its size differs from the record's");
  }
  return owned;
}

std::shared_ptr<OpenFile> OpenFiles::Acquire(int64_t entry_id) {
  std::lock_guard lock(mu_);
  auto& slot = files_[entry_id];
  if (!slot) {
    slot = std::make_shared<OpenFile>();
    slot->entry_id = entry_id;
  }
  return slot;
}

bool OpenFiles::Any() {
  std::lock_guard lock(mu_);
  return !files_.empty();
}

size_t OpenFiles::size() {
  std::lock_guard lock(mu_);
  return files_.size();
}

std::vector<std::shared_ptr<OpenFile>> OpenFiles::All() {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<OpenFile>> all;
  all.reserve(files_.size());
  for (auto& [id, of] : files_) all.push_back(of);
  return all;
}

std::shared_ptr<OpenFile> OpenFiles::Find(int64_t entry_id) {
  std::lock_guard lock(mu_);
  auto it = files_.find(entry_id);
  return it == files_.end() ? nullptr : it->second;
}

void OpenFiles::MaybeRelease(const std::shared_ptr<OpenFile>& of) {
  {
    // Not waiting for the file's lock while holding the table's: a commit
    // round may hold the file's for a while (on its nicer thread), and
    // every Find and Acquire (lookups, listings, opens) would wait too.
    // Whoever still uses it (a writer, a round) calls this again when done.
    std::lock_guard ol(of->mu);
    if (of->writers != 0 || of->writer) return;
  }
  std::lock_guard lock(mu_);
  auto it = files_.find(of->entry_id);
  if (it == files_.end() || it->second != of) return;
  std::lock_guard ol(of->mu);
  // The table holds one reference and `of` is another: nobody else uses it.
  if (of->writers == 0 && !of->writer && of.use_count() <= 2) files_.erase(it);
}

Status OpenFiles::EnsureWriterLocked(OpenFile& of, bool truncate_to_zero) {
  if (of.writer && !of.sealed && !of.writer->published()) return Status::Ok();
  SFS_ASSIGN_OR_RETURN(auto writer, store_.NewWriter());
  if (of.writer) {
    // Handed to the committer (final: it may be hashing it), or published
    // to the store but not recorded (the catalog transaction failed, e.g.
    // the catalog was locked; objects are immutable): that version is the
    // pending one, and changes go on in a copy of it.
    if (!truncate_to_zero) SFS_RETURN_IF_ERROR(writer->CopyFrom(of.writer->fd(), of.writer->size()));
    of.writer = std::move(writer);
    of.sealed = false;
    return Status::Ok();
  }
  if (!truncate_to_zero) {
    // What the writers opened, not what another mount may have recorded since.
    Result<Entry> found = of.base ? Result<Entry>(*of.base) : catalog_.EntryById(of.entry_id);
    if (!found.ok() && found.status().is_not_found() && of.orphan) found = *of.orphan;
    SFS_ASSIGN_OR_RETURN(Entry e, std::move(found));
    of.mtime_ns = e.mtime_ns;
    if (e.size > 0) {
      // Copy-on-write: the new version starts as the old content.
      // A missing or damaged object is EIO naming it, as for a read.
      SFS_ASSIGN_OR_RETURN(auto fd, OpenEntryObject(store_, empty_hash_, e, "file #" + std::to_string(e.id)));
      SFS_RETURN_IF_ERROR(writer->CopyFrom(fd->get(), e.size));
    }
  }
  of.writer = std::move(writer);
  return Status::Ok();
}

std::shared_ptr<CommitJob> OpenFiles::SealLocked(const std::shared_ptr<OpenFile>& of, bool background,
                                                 const std::string& path) {
  auto job = std::make_shared<CommitJob>();
  // Normally sealed by the close() before; data of a shared mmap written
  // back after it changes the content. Best effort: the version is being
  // committed now, and a failure here only narrows what a crash recovers.
  if (!of->sealed) {
    Status sealed = of->writer->WriteSeal(SealOf(*of, path, true), false);
    if (!sealed.ok()) spdlog::warn("sealing {}: {}", path, sealed.ToString());
  }
  // A writer handed over again (fsync while its release is being retried)
  // is the same version: whichever job records it first, the other finds
  // it recorded.
  if (!of->sealed) ++of->sealed_version;
  of->sealed = true;
  ++of->jobs;
  job->of = of;
  job->writer = of->writer;
  job->version = of->sealed_version;
  job->mtime_ns = of->mtime_ns;
  job->path = path;
  job->background = background;
  committer_.Submit(job);
  return job;
}

bool OpenFiles::CommittedLocked(CommitJob& job, const PublishedObject& obj, bool recorded) {
  OpenFile& of = *job.of;
  bool visible = false;
  if (job.version > of.committed_version) {
    if (recorded || of.orphan) {
      // Unlinked while open: no record takes the data (the object stays
      // until gc), but the handles still open read and extend this
      // version, as POSIX has it, so the orphan's record follows it; and
      // an orphan kept for an unlink or rename-over in progress is this
      // version too.
      if (of.orphan) {
        of.orphan->hash = obj.hash.hex();
        of.orphan->size = obj.size;
        of.orphan->mtime_ns = job.mtime_ns;
        if (of.pending_mode) of.orphan->mode = *of.pending_mode;
      }
      of.published_hash = obj.hash.hex();
      of.pending_mode.reset();
    }
    // The handles still open hold this version now: a later write starts
    // from it, as from their own file's content.
    if (of.base) {
      of.base->hash = obj.hash.hex();
      of.base->size = obj.size;
      of.base->mtime_ns = job.mtime_ns;
    }
    of.committed_version = job.version;
    visible = recorded;
  }
  // Recorded (or its file is gone): nothing left for a recovery to do.
  job.writer->RemoveSeal();
  --of.jobs;
  if (of.writer == job.writer) {
    of.writer.reset();
    of.sealed = false;
  }
  return visible;
}

void OpenFiles::CommitFailedLocked(CommitJob& job) {
  OpenFile& of = *job.of;
  // The last job of this writer failed: it is the pending version again,
  // which writes may extend (a published one is copied first) and a
  // later fsync or close retries.
  if (--of.jobs == 0 && of.writer == job.writer) of.sealed = false;
}

void OpenFiles::DropVersionLocked(OpenFile& of) {
  // Never to be recovered either (a published writer keeps its seal
  // otherwise, and a recovery would record what was dropped).
  if (of.writer) of.writer->RemoveSeal();
  of.writer.reset();
  if (!of.pending_mode) return;
  // A chmod made while the version was pending still holds.
  Transaction txn(catalog_);
  auto e = catalog_.EntryById(of.entry_id);
  Status s = txn.status();
  if (s.ok() && e.ok()) {
    e->mode = *of.pending_mode;
    s = catalog_.UpdateEntry(*e);
    if (s.ok()) s = txn.Commit();
  }
  committer_.NoteRecordChanged();  // before the file can leave the table (MaybeRelease)
  if (!s.ok()) spdlog::error("keeping the mode of file #{} failed: {}", of.entry_id, s.ToString());
  of.pending_mode.reset();
}

Seal OpenFiles::SealOf(const OpenFile& of, const std::string& path, bool closed) {
  Seal seal;
  seal.entry_id = of.entry_id;
  seal.sealed_ns = NowNs();
  seal.mtime_ns = of.mtime_ns != 0 ? of.mtime_ns : seal.sealed_ns;
  seal.mode = of.pending_mode ? static_cast<int>(*of.pending_mode) : -1;
  seal.closed = closed;
  seal.path = path;
  return seal;
}

void OpenFiles::OverlayPendingLocked(const OpenFile& of, struct stat* st) {
  if (of.pending_mode) st->st_mode = (st->st_mode & S_IFMT) | *of.pending_mode;
  if (of.writer) {
    st->st_size = static_cast<off_t>(of.writer->size());
    st->st_blocks = (st->st_size + 511) / 512;
    st->st_mtim = NsToTimespec(of.mtime_ns);
    // The ctime is the latest change: the record's (its creation), or the
    // last write, truncate, chmod or utimens of the pending version (cp -a's
    // old mtime does not take it back). The commit records the same.
    st->st_ctim = NsToTimespec(std::max(TimespecToNs(st->st_ctim), of.ctime_ns));
  }
}

}  // namespace samplefs::fs
