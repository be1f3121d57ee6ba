#include "fs/committer.h"

#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "catalog/crash_point.h"
#include "catalog/ingest.h"
#include "fs/error_log.h"
#include "fs/open_files.h"

namespace samplefs::fs {

namespace {

// Worth another try later: the catalog was locked, the disk was full (gc or
// a user may free space), an I/O error. Anything else (a hash collision, a
// corrupt store) will fail the same way again.
bool Transient(const Status& s) {
  return s.code() == Code::kBusy || s.code() == Code::kNoSpace || s.code() == Code::kIo;
}

std::chrono::milliseconds RetryDelay(int attempts) {
  int ms = 500 << std::min(attempts - 1, 6);  // 0.5 s, 1 s, 2 s ... 32 s
  return std::chrono::milliseconds(std::min(ms, 30000));
}

// The record update of one job, in the round's transaction (its file's
// lock held). Returns false if the job is recorded already or its file is
// gone.
Result<bool> RecordVersionLocked(Catalog& catalog, CommitJob& job, const PublishedObject& obj) {
  OpenFile& of = *job.of;
  if (job.version <= of.committed_version) return false;  // recorded already
  // A newer version being written may have its own mtime by now.
  int64_t mtime = of.writer == job.writer ? of.mtime_ns : job.mtime_ns;
  if (mtime == 0) mtime = NowNs();
  job.mtime_ns = mtime;
  CrashPoint("before-commit");
  // The ctime stat showed while the version was pending (OverlayPendingLocked),
  // unless the record's is later. No record (unlinked while open):
  // CommittedLocked updates the orphan.
  return catalog.RecordFileVersion(of.entry_id, obj.hash.hex(), obj.size, mtime,
                                   of.pending_mode ? static_cast<int>(*of.pending_mode) : -1, of.ctime_ns);
}

}  // namespace

Committer::Committer(Catalog& catalog, OpenFiles& files, ErrorLog& errors)
    : commit_([this, &catalog, &files](std::vector<CommitJob*>& jobs, std::vector<Result<PublishedObject>>& objects,
                                       std::vector<Status>& out) { RecordRound(catalog, files, jobs, objects, out); }),
      fail_([this, &errors](CommitJob& job, const Status& s, bool final) { RecordFailed(errors, job, s, final); }) {}

void Committer::RecordRound(Catalog& catalog, OpenFiles& files, std::vector<CommitJob*>& jobs,
                            std::vector<Result<PublishedObject>>& objects, std::vector<Status>& out) {
  // The files' locks first (in entry order: nothing else holds two), then
  // one transaction for the whole round: a few dozen records cost one
  // BEGIN/COMMIT. Lock order as everywhere: OpenFile::mu, then the catalog.
  std::vector<OpenFile*> locked;
  bool foreground = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!objects[i].ok()) continue;
    locked.push_back(jobs[i]->of.get());
    foreground |= !jobs[i]->background;
  }
  std::sort(locked.begin(), locked.end(), [](OpenFile* a, OpenFile* b) {
    return a->entry_id != b->entry_id ? a->entry_id < b->entry_id : a < b;
  });
  locked.erase(std::unique(locked.begin(), locked.end()), locked.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(locked.size());
  for (OpenFile* f : locked) locks.emplace_back(f->mu);

  std::vector<char> recorded(jobs.size(), 0);
  RecordOptions options;
  // A background round does not hold the catalog (and every change behind
  // it) for the busy timeout while another process has it locked: it gives
  // up after a moment and is retried later.
  options.wait_ms = foreground ? -1 : 200;
  options.item_wait_ms = [&](size_t i) { return jobs[i]->background ? 200 : -1; };
  out = RecordBatch(
      catalog, jobs.size(), [&](size_t i) { return objects[i].ok(); },
      [&](size_t i) -> Status {
        SFS_ASSIGN_OR_RETURN(bool r, RecordVersionLocked(catalog, *jobs[i], *objects[i]));
        recorded[i] = r;
        return Status::Ok();
      },
      options);
  bool any = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!objects[i].ok()) {
      out[i] = objects[i].status();
      continue;
    }
    if (!out[i].ok()) continue;
    if (OpenFiles::CommittedLocked(*jobs[i], *objects[i], recorded[i]))
      committed_.fetch_add(1, std::memory_order_relaxed);
    any |= recorded[i] != 0;
  }
  if (any) {
    publish_epoch_.fetch_add(1);
    CrashPoint("after-commit");
  }
  locks.clear();
  for (size_t i = 0; i < jobs.size(); ++i)
    if (out[i].ok()) files.MaybeRelease(jobs[i]->of);
}

void Committer::RecordFailed(ErrorLog& errors, CommitJob& job, const Status& s, bool final) {
  if (job.background && (final || job.attempts == 1)) {
    // Nobody waits for this one: the log and .samplefs/errors are where a
    // user learns it (the version stays readable in the mount meanwhile).
    const std::string what = final ? "is not recorded" : "is not recorded yet (retrying)";
    spdlog::error("the new version of {} {}: {}", job.path, what, s.ToString());
    errors.Add("commit", job.path, s.message() + (final ? "" : " (retrying)"));
  }
  if (!final) return;
  if (job.background) given_up_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(job.of->mu);
  OpenFiles::CommitFailedLocked(job);
}

void Committer::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Committer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Committer::Submit(std::shared_ptr<CommitJob> job) {
  bool started, wake = false;
  {
    std::lock_guard lock(mu_);
    started = thread_.joinable();
    if (started) {
      // A thread gathering background versions wakes at its deadline or
      // for a full round; waking it for each close cost a context switch
      // per file.
      wake = !gathering_ || !job->background || queue_.size() + 1 >= kGatherMin;
      job->queued_at = std::chrono::steady_clock::now();
      queue_.push_back(job);
    }
  }
  if (started) {
    if (wake) cv_.notify_one();
    return;
  }
  // Not running (unit tests of the namespace, or after Stop): commit here.
  std::vector<std::shared_ptr<CommitJob>> one{std::move(job)};
  CommitRound(one, false);
}

Status Committer::Wait(CommitJob& job) {
  std::unique_lock lock(job.mu);
  job.cv.wait(lock, [&] { return job.done; });
  return job.status;
}

bool Committer::Drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  ++hurry_;  // somebody waits: no gathering
  cv_.notify_all();
  bool idle = idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && running_ == 0; });
  --hurry_;
  return idle;
}

size_t Committer::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

void Committer::Throttle() {
  std::unique_lock lock(mu_);
  if (!thread_.joinable()) return;
  idle_cv_.wait(lock, [&] { return stop_ || queue_.size() + running_ <= kMaxPending; });
}

void Committer::Finish(CommitJob& job, Status s) {
  {
    std::lock_guard lock(job.mu);
    job.done = true;
    job.status = std::move(s);
  }
  job.cv.notify_all();
}

void Committer::Run() {
  pthread_setname_np(pthread_self(), "sfs-committer");  // top -H, perf, /proc/PID/task
  // kBackgroundNice (committer.h). On Linux the nice value is the thread's
  // own (setpriority(2) on a thread id).
  const id_t tid = static_cast<id_t>(gettid());
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, tid);
  if ((nice != -1 || errno == 0) && setpriority(PRIO_PROCESS, tid, std::min(nice + kBackgroundNice, 19)) != 0)
    spdlog::warn("the committer keeps the daemon's priority: {}", strerror(errno));
  for (;;) {
    std::vector<std::shared_ptr<CommitJob>> batch;
    bool stopping;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        // In submission order, skipping jobs that wait for a retry (at
        // Stop() every job goes, for its last try).
        stopping = stop_;
        const auto now = std::chrono::steady_clock::now();
        std::chrono::steady_clock::time_point oldest;
        if (!stopping && hurry_ == 0 && GatherMore(now, &oldest)) {
          // Group commit (kGatherMin, kGatherDelay in committer.h), timed
          // from the oldest version's arrival: versions that arrived during
          // the last round have waited already, and go at once if that
          // round took longer than the delay.
          const auto until = oldest + gather_delay_;
          if (now < until) {
            gathering_ = true;
            cv_.wait_until(lock, until);
            gathering_ = false;
            continue;
          }
        }
        auto next = std::chrono::steady_clock::time_point::max();
        for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxBatch;) {
          if (stopping || (*it)->not_before <= now) {
            batch.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            next = std::min(next, (*it)->not_before);
            ++it;
          }
        }
        if (!batch.empty()) break;
        if (stopping) return;  // and the queue is empty
        if (next == std::chrono::steady_clock::time_point::max()) cv_.wait(lock);
        else cv_.wait_until(lock, next);
      }
      running_ = batch.size();
    }
    rounds_.fetch_add(1, std::memory_order_relaxed);
    auto retry = CommitRound(batch, !stopping);
    {
      std::lock_guard lock(mu_);
      for (auto& j : retry) queue_.push_back(std::move(j));
      running_ = 0;
    }
    idle_cv_.notify_all();
  }
}

bool Committer::GatherMore(std::chrono::steady_clock::time_point now,
                           std::chrono::steady_clock::time_point* oldest) const {
  size_t ready = 0;
  for (const auto& job : queue_) {
    if (job->not_before > now) continue;
    if (!job->background) return false;  // somebody waits for it
    if (++ready >= kGatherMin) return false;
    if (ready == 1 || job->queued_at < *oldest) *oldest = job->queued_at;
  }
  return ready > 0;
}

std::vector<std::shared_ptr<CommitJob>> Committer::CommitRound(std::vector<std::shared_ptr<CommitJob>>& batch,
                                                               bool may_retry) {
  std::vector<ObjectWriter*> writers;
  std::vector<CommitJob*> jobs;
  writers.reserve(batch.size());
  jobs.reserve(batch.size());
  for (const auto& j : batch) {
    writers.push_back(j->writer.get());
    jobs.push_back(j.get());
  }
  auto objects = PublishBatch(writers);
  std::vector<Status> results;
  commit_(jobs, objects, results);

  std::vector<std::shared_ptr<CommitJob>> retry;
  for (size_t i = 0; i < batch.size(); ++i) {
    CommitJob& job = *batch[i];
    Status s = std::move(results[i]);
    ++job.attempts;
    if (!s.ok() && may_retry && job.background && Transient(s)) {
      job.not_before = std::chrono::steady_clock::now() + RetryDelay(job.attempts);
      fail_(job, s, false);
      retry.push_back(batch[i]);
      continue;
    }
    if (!s.ok()) fail_(job, s, true);
    Finish(job, std::move(s));
  }
  return retry;
}

}  // namespace samplefs::fs
