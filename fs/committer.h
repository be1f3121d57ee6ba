// Committer: publishes new versions of files in batches (SPEC section 3).
//
// A version is published in two steps: the object store makes the data
// durable and links it under its hash (fsync, link, directory fsync), then
// one catalog transaction points the file's record at it. Done one file at
// a time, every file costs two or three journal commits of the disk (3-10 ms
// each here), so `cp -r` of 10,000 small files took 112 s against 7 s for
// bindfs. The committer runs those steps on its own thread for every
// version handed to it since its last round, so the disk commits once per
// round, not once per file (ObjectWriter::PublishAll).
//
// Who hands versions over:
//   - release() of the last writable handle (close() has already returned:
//     the kernel sends RELEASE after it) submits in the background. Nothing
//     waits; a failure (a locked catalog, a full disk) is retried with a
//     growing delay, and logged to .samplefs/errors, so no closed file is
//     ever silently dropped;
//   - fsync(), truncate(1) and, with `-o sync_close`, close() submit and
//     wait for the outcome, which they return.
// Versions are committed in the order they were sealed (a per-file version
// number guards against a retried old version overwriting a newer one).
//
// Until its record is committed, a version is what every path, stat and
// read shows (the OpenFile keeps its writer), so the only observers of the
// delay are other processes reading the catalog; `sync DIR` on any
// directory of the mount (fsyncdir) waits until everything closed before
// it is committed.
//
// The committer owns both halves of a commit: the store's (ingest's
// PublishBatch, catalog/ingest.h, the path `samplectl import` takes too)
// and the catalog's (RecordBatch: one transaction for the round, in which
// each version is written onto its file's record, then the versions'
// state moves on, fs/open_files.h). Its tests construct it with a commit
// function of their own instead.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "catalog/status.h"

namespace samplefs::fs {

struct OpenFile;
class OpenFiles;
class ErrorLog;

struct CommitJob {
  std::shared_ptr<OpenFile> of;
  std::shared_ptr<ObjectWriter> writer;  // sealed: nobody writes to it any more
  uint64_t version = 0;                  // OpenFile::sealed_version when sealed
  std::string path;                      // for messages
  int64_t mtime_ns = 0;                  // the version's mtime when sealed
  bool background = false;               // from release(): retried, never waited for
  int attempts = 0;
  std::chrono::steady_clock::time_point not_before{};
  std::chrono::steady_clock::time_point queued_at{};  // Submit's time (group commit; kept on retries)

  // The outcome, for a waiting fsync()/close().
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;   // GUARDED_BY(mu)
  Status status;       // GUARDED_BY(mu)
};

class Committer {
 public:
  // Records a round: the catalog half of the commits, run by the
  // committer's thread with the store's answer for each job (an object, or
  // why it failed); sets one status per job in `out`.
  using CommitFn = std::function<void(std::vector<CommitJob*>& jobs, std::vector<Result<PublishedObject>>& objects,
                                      std::vector<Status>& out)>;
  // Reports a background job that failed (it is retried) or gave up.
  // `final`: no retry follows (a waited-for job, a permanent error, or the
  // last attempt at unmount); otherwise a background job is tried again.
  using FailFn = std::function<void(CommitJob&, const Status&, bool final)>;

  Committer(CommitFn commit, FailFn fail) : commit_(std::move(commit)), fail_(std::move(fail)) {}
  // The mount's committer: records each version on its file's record in
  // `catalog` (one transaction a round), moves the versions of `files` on,
  // and reports background failures to `errors`.
  Committer(Catalog& catalog, OpenFiles& files, ErrorLog& errors);
  ~Committer() { Stop(); }

  // Versions recorded since the start; background versions given up.
  uint64_t committed() const { return committed_.load(); }
  uint64_t given_up() const { return given_up_.load(); }
  // Counts rounds that made new versions visible. A listing that sees it
  // move re-reads its files' attributes: the kernel caches what
  // readdirplus answers, and a close does not make it discard an answer
  // that was read from the catalog just before the publish committed.
  uint64_t publish_epoch() const { return publish_epoch_.load(); }
  // Moves the epoch for a write to an open file's record made outside the
  // committer and outside any request whose reply the kernel orders (the
  // mode kept when a version is dropped at RELEASE): a lookup or listing
  // that read the record before it does not answer with it.
  void NoteRecordChanged() { publish_epoch_.fetch_add(1); }

  void Start();
  // Runs every queued job once more (failed background jobs are then given
  // up and reported), and ends the thread.
  void Stop();

  void Submit(std::shared_ptr<CommitJob> job);
  static Status Wait(CommitJob& job);
  // Until the queue is empty and no round is running (or `timeout` passed:
  // then false). Background jobs waiting for a retry count as queued.
  bool Drain(std::chrono::milliseconds timeout);
  // Jobs queued or in the running round (status.json).
  size_t pending() const;

  // Blocks while more than kMaxPending versions wait (each holds an open
  // staging file): called before a file is opened for writing, so a copy
  // of many small files never outruns the disk by more than that.
  void Throttle();

  // Group commit. A round of background versions starts once kGatherMin
  // are ready, or gather_delay after the first of them arrived, whichever
  // comes first; a version somebody waits for (fsync, truncate, sync_close),
  // Drain() (`sync DIR`, unmount) and Stop() start it at once. Without the
  // wait a copy of small files ran rounds of one or two files (each round
  // two syncfs of the store's file system and a catalog transaction, and a
  // wake-up of this thread per close): about 3,000-3,600 data syncs for
  // a cp -r of 5,000 files, 150-180 with it (docs/DECISIONS.md "Writes").
  // Nobody waits for a background version (close() has returned; stat and
  // reads show it already), so the delay is seen only by other processes
  // reading the catalog.
  static constexpr size_t kGatherMin = 64;
  static constexpr std::chrono::milliseconds kGatherDelay{20};
  // The committer's thread runs this much nicer than the daemon: on a busy
  // machine, requests (a find or ls while cp -r writes) go before the
  // rounds, most of which nobody waits for. A cold find of 100,000 files
  // during a cp -r of 10,000 went past 1.5x its idle time in 10 of 28
  // rounds without it, 4 of 34 with it (docs/DECISIONS.md "Writes": the
  // figures and the costs: rounds somebody waits for, fsync, run at this
  // value too). On an idle core it changes nothing; kMaxPending bounds how
  // far behind it can fall.
  static constexpr int kBackgroundNice = 10;
  // For tests: how long background versions may gather.
  void set_gather_delay(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    gather_delay_ = d;
  }
  // Rounds run since the start.
  uint64_t rounds() const { return rounds_.load(); }
  static constexpr size_t kMaxBatch = 512;
  static constexpr size_t kMaxPending = 1024;

 private:
  void Run();
  // Whether the ready versions are all background ones and fewer than
  // kGatherMin (then the round may wait for more); `oldest`: when the
  // first of them was submitted. mu_ held.
  bool GatherMore(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::time_point* oldest) const;
  // Publishes and records `batch` (one round); returns the background jobs
  // to try again later (only if `may_retry`), finishes the others.
  std::vector<std::shared_ptr<CommitJob>> CommitRound(std::vector<std::shared_ptr<CommitJob>>& batch,
                                                      bool may_retry);
  void Finish(CommitJob& job, Status s);
  // The catalog half of the mount's commits (the CommitFn and FailFn of
  // the mount's constructor), fs/committer.cc.
  void RecordRound(Catalog& catalog, OpenFiles& files, std::vector<CommitJob*>& jobs,
                   std::vector<Result<PublishedObject>>& objects, std::vector<Status>& out);
  void RecordFailed(ErrorLog& errors, CommitJob& job, const Status& s, bool final);

  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> given_up_{0};
  std::atomic<uint64_t> publish_epoch_{0};
  std::atomic<uint64_t> rounds_{0};
  CommitFn commit_;
  FailFn fail_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // work arrived or stop
  std::condition_variable idle_cv_;  // a round ended (Drain, Throttle)
  std::deque<std::shared_ptr<CommitJob>> queue_;  // GUARDED_BY(mu_)
  size_t running_ = 0;                            // GUARDED_BY(mu_)
  bool stop_ = false;                             // GUARDED_BY(mu_)
  bool gathering_ = false;  // waiting for more background versions; GUARDED_BY(mu_)
  int hurry_ = 0;           // Drain() calls waiting; GUARDED_BY(mu_)
  std::chrono::milliseconds gather_delay_{kGatherDelay};  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace samplefs::fs
