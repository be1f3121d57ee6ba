// SealLog: one append-only log of seals per staging session (issue 16).
//
// A mount seals each version when a close() of it returns (and durably at
// fsync; catalog/object_store.h, "Seals"). A seal used to be a file of its
// own beside the staging file (`<staging>.seal`): one inode made at close
// and deleted at commit, per small file, which the profile of `cp -r` of
// small files put at the top of the daemon's CPU. Now every seal is one
// line appended to `seals.log` in the session's directory, and its commit
// (or drop) one more line, a "done" mark:
//
//   <16 hex: XXH3-64 of the payload> <payload: one line of JSON>\n
//   seal:  {"staging":"<name>.tmp","v":1,"entry_id":...,"hash":...,...}
//   done:  {"done":"<name>.tmp"}
//
// The latest line of a staging file's name says what it is: sealed (that
// seal), or done (nothing to recover). Durability is the seal file's: a
// plain append stays in the page cache, which survives a daemon's death
// (kill -9, an abort) but not a power cut; a durable seal (fsync of the
// file) fdatasyncs the log. Each line carries its checksum, so a line cut
// short by a power cut (a torn tail) is seen and ignored, and a damaged
// line elsewhere is reported.
//
// The log stays small: once nothing in it is live (every seal done) and it
// has grown past 64 KiB it is truncated to nothing, and past 1 MiB (and
// four times what is live) it is rewritten with the live seals only and
// renamed over itself (synced first if a live seal was durable).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog/object_store.h"
#include "catalog/status.h"
#include "catalog/unique_fd.h"

namespace samplefs {

class SealLog {
 public:
  static constexpr const char* kFileName = "seals.log";

  // A log in `dir` (a session directory), created at the first seal.
  explicit SealLog(std::string dir);
  ~SealLog() = default;
  SealLog(const SealLog&) = delete;
  SealLog& operator=(const SealLog&) = delete;

  const std::string& dir() const { return dir_; }
  std::string path() const { return dir_ + "/" + kFileName; }

  // Appends the seal of staging file `name` (a file name in dir()),
  // superseding any earlier one of that name. `durable`: the log is
  // fdatasynced (and the directory fsynced when the log is new).
  Status Append(const std::string& name, const Seal& seal, bool durable);
  // Appends a done mark for `name`: its seal is not to be recovered.
  // Nothing if `name` has no live seal.
  void Done(const std::string& name);

  // Staging names with a live seal (EndSession keeps those files).
  std::vector<std::string> LiveNames() const;
  size_t live() const;

  // What a log says (recovery).
  struct Parsed {
    // staging name -> its latest seal, for names whose latest line is a
    // seal (a done mark removes the name).
    std::map<std::string, Seal> live;
    // Damaged lines followed by a good one: byte offsets in the log.
    std::vector<uint64_t> damaged;
    bool torn_tail = false;  // the last line was cut short or damaged
  };
  static Parsed Parse(const std::string& text);
  // One line of the log (tests build logs from these).
  static std::string SealLine(const std::string& name, const Seal& seal);
  static std::string DoneLine(const std::string& name);

 private:
  Status OpenLocked();
  Status WriteLocked(const std::string& line);
  void MaybeShrinkLocked();
  std::string dir_;
  mutable std::mutex mu_;
  UniqueFd fd_;                 // GUARDED_BY(mu_) O_APPEND, opened at first use
  bool entry_durable_ = false;  // GUARDED_BY(mu_) the log's directory entry was fsynced
  uint64_t size_ = 0;           // GUARDED_BY(mu_) bytes in the log
  struct Live {
    std::string line;
    bool durable = false;
  };
  std::unordered_map<std::string, Live> live_;  // GUARDED_BY(mu_)
  uint64_t live_bytes_ = 0;                     // GUARDED_BY(mu_) sum of live lines' sizes
};

}  // namespace samplefs
