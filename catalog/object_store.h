// ObjectStore: the content-addressed store of file contents (SPEC section 3).
//
// Layout under the store root (created 0700, files 0400/0600):
//   objects/<h0h1>/<h2h3>/<32-hex-hash>   immutable, read-only objects
//   staging/<random>.tmp                  files being written
//   staging/<session>.d/                  a mount's: lock, seals.log, *.tmp
//
// Writing: ObjectStore::NewWriter() gives an ObjectWriter bound to a fresh
// staging file. Data arrives in chunks at any offset (pwrite); the XXH3-128
// state is fed while writes arrive in order, and the file is re-hashed from
// disk at Publish() only if a write was out of order or the size changed by
// truncate. Publish() fsyncs the staging file, links it into objects/ under
// its hash and fsyncs the directory, so a crash at any point leaves either
// no object or a complete one. If an object of that name already exists,
// the bytes are compared first: equal bytes deduplicate (the staging file is
// dropped and the object's mtime refreshed, so gc's grace period spares it
// until the caller's catalog transaction references it); different bytes
// mean the existing object is corrupt (its bytes no longer hash to its name)
// and is replaced atomically, or — if its bytes do hash to its name — a
// genuine hash collision, which is refused with kCorrupt and never
// substitutes data.
//
// An ObjectWriter destroyed without Publish() unlinks its staging file (and
// its seal). Staging files left by a crash are removed by CleanStaging().
//
// Seals (SPEC section 3: a daemon's death loses nothing closed). A mount
// seals a version when a close() of it returns (and, durably, at fsync):
// one line appended to the session's seal log (catalog/seal_log.h) says
// which record it is and which bytes (size, XXH3-128) were closed, and the
// commit appends a "done" line. The bytes and the log live in the page
// cache, which a killed daemon does not take with it, so the next mount
// finds them (TakeOrphanedSessions), re-hashes the staging file against the
// seal, and commits what verifies. A staging file without a seal was never
// closed, and is never committed. Seals of an older daemon, one small
// `<staging>.seal` file per version, are still read.
//
// Sessions: a mount's staging files live in `staging/<random>.d/`, beside a
// `lock` file it holds with flock() for its lifetime (ClaimSession). A
// session whose lock can be taken belongs to a dead process, so several
// mounts of one store (facility mode) never take each other's files.
//
// Thread safety: ObjectStore is safe to share between threads; an
// ObjectWriter is used by one thread at a time (callers lock).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_set>
#include <utility>
#include <span>
#include <string>
#include <vector>

#include "catalog/unique_fd.h"
#include "catalog/hash.h"
#include "catalog/status.h"
#include "catalog/unique_fd.h"

namespace samplefs {

class ObjectStore;
class SealLog;

// What a seal says (see above): a version of file record `entry_id` whose
// first `size` bytes hash to `hash`.
struct Seal {
  int64_t entry_id = 0;
  ContentHash hash;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t sealed_ns = 0;  // wall clock at sealing: the order of versions
  int mode = -1;          // a chmod carried to the commit; -1: none
  bool closed = true;     // false: sealed by fsync while still open
  std::string path;       // the file's path in the mount, for messages

  // One line of JSON; with `staging`, the staging file's name is in it
  // (the seal log's records).
  std::string Encode(const std::string& staging = {}) const;
  static Result<Seal> Decode(const std::string& text);  // kInvalidArgument if malformed
};

struct PublishedObject {
  ContentHash hash;
  uint64_t size = 0;
  bool deduplicated = false;  // an identical object already existed
};

class ObjectWriter {
 public:
  ~ObjectWriter();  // unlinks the staging file unless published
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  // pwrite of `size` bytes at `offset`. Extends the file as needed.
  // kNoSpace on a full disk; kInvalidArgument after Publish().
  Status Write(const void* data, size_t size, uint64_t offset);
  // Sets the staging file's size (shrink or extend with zeros).
  Status Truncate(uint64_t size);
  // Reads back from the staging file (a file being written is readable).
  // Returns bytes read (0 at/after end).
  Result<size_t> Read(void* buf, size_t size, uint64_t offset) const;
  // Copies the whole contents of an open fd (e.g. an existing object, for
  // copy-on-write of an overwritten file) into the staging file, streaming.
  Status CopyFrom(int src_fd, uint64_t size);

  uint64_t size() const { return size_; }
  // Counts changes (Write, Truncate, CopyFrom): a seal or digest taken at
  // one generation still describes the content while it is unchanged.
  uint64_t generation() const { return generation_; }
  // The XXH3-128 of the current content: from the streaming state when
  // writes came in order, else re-read from disk; cached per generation.
  Result<ContentHash> Digest();

  // Appends the seal of the current content to the session's seal log (see
  // the file comment); `seal.hash` and `seal.size` are filled in here.
  // `durable` (fsync): the data, the log and the directory are synced too,
  // so the sealed version survives a power cut. A seal of an unchanged
  // generation is not written again unless `durable` asks for more than
  // was done.
  Status WriteSeal(Seal seal, bool durable);
  // Marks the seal done once the version is recorded (or given up).
  void RemoveSeal();
  bool sealed_at(uint64_t generation) const { return seal_generation_ == generation; }

  // The staging file's descriptor, for splice reads of a file being written.
  int fd() const { return fd_.get(); }
  const std::string& staging_path() const { return path_; }

  // fsync + hash + link into objects/ + directory fsync. After a successful
  // Publish the writer is spent (Write returns kInvalidArgument); Publish()
  // again returns the same object (fsyncing its directory and refreshing its
  // mtime once more), so a caller whose catalog transaction failed can retry.
  Result<PublishedObject> Publish();
  bool published() const { return published_; }

  // Publish() of several writers at once, with the same guarantees for each
  // and one answer per writer, in order. Each phase (fsync the data, link,
  // fsync the directories) runs over the whole batch, so a journalling file
  // system commits once per phase instead of once per file.
  static std::vector<Result<PublishedObject>> PublishAll(std::span<ObjectWriter* const> writers);

 private:
  friend class ObjectStore;
  ObjectWriter(ObjectStore* store, UniqueFd fd, std::string path);
  Result<ContentHash> HashFromDisk() const;
  uint64_t generation_ = 0;
  // Digest() may be asked by a getxattr while the committer hashes.
  std::mutex digest_mu_;
  uint64_t digest_generation_ = UINT64_MAX;  // GUARDED_BY(digest_mu_) `digest_` is of this generation
  ContentHash digest_;                       // GUARDED_BY(digest_mu_)
  uint64_t seal_generation_ = UINT64_MAX;  // the seal file describes this one
  bool seal_durable_ = false;
  bool seal_written_ = false;
  bool entry_durable_ = false;  // the staging file's directory entry was fsynced
  std::shared_ptr<SealLog> seal_log_;  // where seals go (null: never sealed)
  // An object holds this content already: compares the bytes, refreshes
  // the object's mtime, drops the staging file without
  // syncing it and marks the writer published (deduplicated). False, with
  // nothing changed, for anything else.
  bool DeduplicateEarly();
  Status SyncData(bool synced);     // fsync (unless `synced` by a syncfs), then the size as the disk has it
  // Hash, then link or deduplicate. Directories made for the object are
  // added to `dirs_to_sync` (the caller fsyncs them) instead of fsynced.
  Result<PublishedObject> Link(std::vector<std::string>* dirs_to_sync);

  bool early_dedup_ = false;     // published by DeduplicateEarly
  bool dedup_dir_sync_ = false;  // ... and its object's folder needs a sync
  ObjectStore* store_;
  UniqueFd fd_;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t hashed_upto_ = 0;  // bytes [0, hashed_upto_) fed to state_
  bool in_order_ = true;
  bool published_ = false;
  PublishedObject published_object_;  // valid once published_
  int64_t staged_mtime_sec_ = 0;      // the staging file's mtime at SyncData
  uint64_t writeback_from_ = 0;  // bytes below this were handed to writeback
  void DropBehind();
  void StartWriteback(uint64_t end);
  struct HashState;
  std::unique_ptr<HashState> state_;
};

struct ObjectInfo {
  ContentHash hash;
  uint64_t size = 0;
  int64_t mtime_sec = 0;  // when it was published (gc grace period)
};

class ObjectStore {
 public:
  // Opens (creating if missing, with mode 0700) a store at `root`.
  static Result<std::unique_ptr<ObjectStore>> Open(const std::string& root);

  const std::string& root() const { return root_; }
  // objects/<h0h1>/<h2h3>/<hex>; never leaves the store (hex is validated).
  std::string ObjectPath(const ContentHash& hash) const;

  // Staging files go to a directory of this process's own from now on
  // (see "Sessions" above), locked until the store is closed.
  Status ClaimSession();

  Result<std::unique_ptr<ObjectWriter>> NewWriter();

  // A version sealed by a process that died: its seal, and a writer over
  // its staging file (null if the staging file is gone: it was published,
  // or lost). The writer's content is the first `seal.size` bytes, and
  // Publish() recomputes its hash, so the caller compares it to the seal.
  struct Orphan {
    std::string seal_path;
    Result<Seal> seal = Status(Code::kInvalidArgument, "no seal");
    std::unique_ptr<ObjectWriter> writer;
  };
  // The sealed versions of every session whose process is gone, oldest
  // seal first, after taking each session's lock (so two mounts never
  // recover one session). Unsealed staging files in them are removed (never
  // closed: never committed); `unsealed`, if given, counts them. Call
  // FinishOrphanedSessions() once they are recorded or reported.
  Result<std::vector<Orphan>> TakeOrphanedSessions(int* unsealed = nullptr);
  // Removes the sessions TakeOrphanedSessions took (their seals too), or,
  // with `remove` false, only lets go of them for a later try.
  void FinishOrphanedSessions(bool remove = true);

  // Opens an object read-only (O_RDONLY|O_CLOEXEC). kNotFound if missing.
  Result<UniqueFd> OpenObject(const ContentHash& hash) const;
  bool Exists(const ContentHash& hash) const;
  Result<ObjectInfo> Stat(const ContentHash& hash) const;
  // Sets an object's mtime to now, so that gc's grace period spares it until
  // the caller's record references it. kNotFound if it is missing.
  Status Touch(const ContentHash& hash) const;

  // Every object in the store (fsck, gc). Calls `fn` per object; stops and
  // returns the first non-OK status `fn` returns.
  Status ForEachObject(const std::function<Status(const ObjectInfo&)>& fn) const;
  // Removes an object (gc only; records never delete objects).
  Status Remove(const ContentHash& hash);
  // Re-hashes an object's bytes; kCorrupt if they differ from its name.
  Status Verify(const ContentHash& hash) const;

  // Removes staging files older than `min_age_sec` (left by a crash).
  // Returns how many were removed.
  Result<int> CleanStaging(int64_t min_age_sec);
  // Lists staging files older than `min_age_sec` (fsck).
  Result<std::vector<std::string>> StaleStaging(int64_t min_age_sec) const;

  // Bytes available to us, total bytes and free inodes of the store's
  // filesystem (statvfs; any pointer may be null).
  Status Space(uint64_t* free_bytes, uint64_t* total_bytes, uint64_t* free_files = nullptr) const;

  // Counters since Open (tests, benchmarks): staging data made durable
  // (an fsync of one staging file, or a syncfs for a batch), and versions
  // deduplicated before any of their data was synced.
  uint64_t data_syncs() const { return data_syncs_.load(); }
  uint64_t early_dedups() const { return early_dedups_.load(); }

  // Write-behind: may a write be reported done before it reaches the
  // staging file (the mount answers a large write first and writes it
  // while the program reads its next block; a failure is then reported by
  // the next write, fsync or close)? Only while the store's file system
  // has at least `min_free` bytes available (statfs, rechecked at most
  // every 100 ms), so that on a nearly full disk the write() that meets
  // ENOSPC is the one that reports it. kWriteBehindOff: never; 0: always.
  // Default 1 GiB.
  static constexpr uint64_t kWriteBehindOff = std::numeric_limits<uint64_t>::max();
  void SetWriteBehindMinFree(uint64_t min_free) { write_behind_min_free_.store(min_free); }
  bool WriteBehindRoom() const;

  ~ObjectStore();
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

 private:
  friend class ObjectWriter;
  ObjectStore(std::string root, UniqueFd root_fd) : root_(std::move(root)), root_fd_(std::move(root_fd)) {}
  // Makes objects/xx/yy. A directory made here needs its parent fsynced:
  // done at once, or left to the caller by adding it to `to_sync`.
  Status EnsureObjectDir(const ContentHash& hash, std::vector<std::string>* to_sync = nullptr) const;
  // Its objects/xx/yy is no longer known to exist (a link found it gone).
  void ForgetObjectDir(const ContentHash& hash) const;
  // Objects this store linked and whose folder a batch then synced (the
  // last kMaxDurableLinks at most): deduplicating against them needs no sync.
  bool LinkedDurably(const ContentHash& hash) const;
  void NoteLinkedDurably(const ContentHash& hash) const;
  struct PairHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& k) const { return k.first ^ (k.second * 31); }
  };
  static constexpr size_t kMaxDurableLinks = size_t{1} << 16;
  // A link older than this (the object's ctime) is taken as durable.
  static constexpr int64_t kSettledSec = 60;
  mutable std::mutex durable_mu_;
  mutable std::unordered_set<std::pair<uint64_t, uint64_t>, PairHash> durable_links_;  // GUARDED_BY(durable_mu_)
  // syncfs(2) of the store's file system: every dirty page and one journal
  // commit for a whole batch. Held open since Open(), so it reports every
  // writeback error since then (once).
  Status SyncFilesystem() const;
  void EndSession();
  std::string root_;
  // The seal log of the staging folder new writers go to (the session's
  // once claimed); each writer keeps the one it was made with.
  mutable std::mutex seal_log_mu_;
  std::shared_ptr<SealLog> seal_log_;  // GUARDED_BY(seal_log_mu_)
  UniqueFd root_fd_;
  std::string session_dir_;  // staging/<random>.d once claimed, else empty
  UniqueFd session_lock_fd_;
  std::vector<std::pair<std::string, UniqueFd>> taken_sessions_;  // dir, lock fd
  // Serialises creation of objects/xx/yy so that a publisher that finds the
  // directory already present knows its creator has also fsynced the parent,
  // or, for a batch that fsyncs later (PublishAll), finds the parent in
  // unsynced_parents_ and makes it durable itself.
  mutable std::mutex dir_mu_;
  mutable std::set<std::string> unsynced_parents_;  // GUARDED_BY(dir_mu_)
  // objects/xx/yy known to exist, durably (index: the hash's first two
  // bytes); sized at first use.
  mutable std::vector<bool> known_dirs_;  // GUARDED_BY(dir_mu_)

  std::atomic<uint64_t> data_syncs_{0};
  std::atomic<uint64_t> early_dedups_{0};
  std::atomic<uint64_t> write_behind_min_free_{uint64_t{1} << 30};
  mutable std::mutex room_mu_;                     // one statfs at a time
  mutable std::atomic<int64_t> room_checked_ns_{0};  // steady clock; 0: never
  mutable std::atomic<uint64_t> room_free_{0};
};

// Hashes everything readable from `fd` from offset 0 up to `size` bytes.
Result<ContentHash> HashFd(int fd, uint64_t size);

namespace test_hooks {
// Test-only seam. A genuine XXH3-128 collision cannot be produced on demand,
// so a test installs a filter that every digest the store computes (writer
// and HashFd, hence also Verify) passes through, e.g. mapping all contents to
// one name. nullptr (the default) restores plain XXH3-128. Never set in
// production code; setting it is atomic but not meant to race with writers.
using DigestFilter = ContentHash (*)(const ContentHash&);
void SetDigestFilter(DigestFilter filter);
}  // namespace test_hooks

}  // namespace samplefs
