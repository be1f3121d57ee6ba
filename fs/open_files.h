// OpenFiles: the files being written, and the state machine of their
// pending versions (SPEC section 3/4).
//
// One OpenFile per entry with open handles or a version not yet recorded,
// shared by all its handles. Its pending version (`writer`) moves through:
//
//   none     --EnsureWriterLocked-->  writing   first write, truncate or
//                                               O_TRUNC: a staging file,
//                                               copy-on-write of the record's
//                                               content unless truncated
//   writing  --SealLocked-------->    sealed    handed to the committer
//                                               (release, fsync, truncate(1),
//                                               -o sync_close); final
//   sealed   --EnsureWriterLocked-->  writing   a write after the seal goes
//                                               on in a copy (the committer
//                                               may be hashing the sealed one)
//   sealed   --CommittedLocked---->   none      recorded (or its file is gone)
//   sealed   --CommitFailedLocked-->  writing   its last job gave up: pending
//                                               again, a later close retries
//   writing  --DropVersionLocked-->   none      a failed write or truncate
//                                               that was reported, unmount
//                                               of a file still open
//
// Every transition takes the OpenFile's lock (the caller holds it: the
// *Locked names). Lock order: OpenFile::mu, then the Catalog's mutex, then
// NodeTable's; OpenFiles' table lock is taken with no OpenFile lock held,
// except in MaybeRelease, which takes it first and the OpenFile's second.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "catalog/unique_fd.h"
#include "fs/committer.h"

namespace samplefs::fs {

// The write state of one file (entry), shared by all its open handles.
struct OpenFile {
  std::mutex mu;
  int64_t entry_id = 0;
  int writers = 0;                        // GUARDED_BY(mu) writable handles
  std::shared_ptr<ObjectWriter> writer;   // GUARDED_BY(mu) non-null = uncommitted changes
  // The writer was handed to the Committer: its content is final, and a
  // new write starts a copy of it (the committer may be hashing it).
  bool sealed = false;                    // GUARDED_BY(mu)
  uint64_t sealed_version = 0;            // GUARDED_BY(mu) versions handed over
  uint64_t committed_version = 0;         // GUARDED_BY(mu) the last one recorded
  int jobs = 0;                           // GUARDED_BY(mu) handed over, not finished
  int64_t mtime_ns = 0;                   // GUARDED_BY(mu) mtime of the pending version
  int64_t ctime_ns = 0;                   // GUARDED_BY(mu) last write/truncate/chmod/utimens of it (0: none)
  std::optional<mode_t> pending_mode;     // GUARDED_BY(mu) a chmod it carries to its commit
  Status error;                           // GUARDED_BY(mu) sticky write error for flush/fsync
  std::string published_hash;             // GUARDED_BY(mu) last version published here
  // The last record of a file unlinked or replaced by rename while open:
  // POSIX lets open handles fstat, read and write it until the last close
  // (the data of such writes is never published).
  std::optional<Entry> orphan;            // GUARDED_BY(mu)
  // The content the writable handles opened (docs/DECISIONS.md, "A writer
  // starts from what it opened"): pinned by the open that makes the first
  // writer without O_TRUNC, moved on by this mount's own commits, dropped
  // with the last writer. A first write (or truncate) copies this, not the
  // record as another mount or samplectl may have replaced it since.
  std::optional<Entry> base;              // GUARDED_BY(mu)
};

// Wall-clock time in nanoseconds (file mtimes).
int64_t NowNs();

// Opens a file's current object for reading. kCorrupt (EIO) with a log
// line naming the object if it is missing or its size differs from the
// record's. An empty file opens /dev/null: gc --grace 0 may have removed
// the empty object between a create and its record.
Result<std::shared_ptr<UniqueFd>> OpenEntryObject(ObjectStore& store, const std::string& empty_hash,
                                                  const Entry& e, const std::string& path);

class OpenFiles {
 public:
  // `committer` receives sealed versions; it may be stopped (then a seal
  // commits in the caller's thread, as in unit tests).
  OpenFiles(Catalog& catalog, ObjectStore& store, Committer& committer, const std::string& empty_hash)
      : catalog_(catalog), store_(store), committer_(committer), empty_hash_(empty_hash) {}

  // The OpenFile of an entry, created on first use.
  std::shared_ptr<OpenFile> Acquire(int64_t entry_id);
  // Drops the table's reference when no handle uses it any more (no
  // writers, no pending version, nobody else holding it).
  void MaybeRelease(const std::shared_ptr<OpenFile>& of);
  // The OpenFile of an entry if one exists.
  std::shared_ptr<OpenFile> Find(int64_t entry_id);
  bool Any();  // whether Find could find anything
  std::vector<std::shared_ptr<OpenFile>> All();
  size_t size();

  // none/sealed -> writing: starts a writer for `of` if none, copying the
  // content the handles opened (`base`; the record's if none was pinned)
  // unless `truncate_to_zero`. An unchanged writing
  // version is kept. EIO naming the object if the old content is missing.
  Status EnsureWriterLocked(OpenFile& of, bool truncate_to_zero);
  // writing -> sealed: seals the pending version (of->writer is set) and
  // hands it to the committer. `background`: nobody waits (release);
  // otherwise the caller unlocks and calls Committer::Wait on the result.
  std::shared_ptr<CommitJob> SealLocked(const std::shared_ptr<OpenFile>& of, bool background,
                                        const std::string& path);
  // writing -> none: drops the pending version (a failed write or truncate
  // reported it) and its seal; a chmod it carried is recorded on its own.
  void DropVersionLocked(OpenFile& of);
  // sealed -> none: the job's version was recorded (`recorded`), or its
  // file is gone; the committer calls it after its transaction committed.
  // Returns whether a new version of the file became visible.
  static bool CommittedLocked(CommitJob& job, const PublishedObject& obj, bool recorded);
  // sealed -> writing when the last job of the version gave up.
  static void CommitFailedLocked(CommitJob& job);

  // The seal of `of`'s pending version: what a recovery after the
  // daemon's death needs to record it.
  static Seal SealOf(const OpenFile& of, const std::string& path, bool closed);
  // What the catalog does not know: the mode, size and mtime of a version
  // being written. Every reply that carries attributes applies it, or the
  // kernel caches the record's size for attr_timeout.
  static void OverlayPendingLocked(const OpenFile& of, struct stat* st);

 private:
  Catalog& catalog_;
  ObjectStore& store_;
  Committer& committer_;
  const std::string& empty_hash_;
  std::mutex mu_;
  std::unordered_map<int64_t, std::shared_ptr<OpenFile>> files_;  // GUARDED_BY(mu_)
};

}  // namespace samplefs::fs
