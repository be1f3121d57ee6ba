#include "fs/committer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

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

}  // namespace

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
  bool started;
  {
    std::lock_guard lock(mu_);
    started = thread_.joinable();
    if (started) queue_.push_back(job);
  }
  if (started) {
    cv_.notify_one();
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
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && running_ == 0; });
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
    auto retry = CommitRound(batch, !stopping);
    {
      std::lock_guard lock(mu_);
      for (auto& j : retry) queue_.push_back(std::move(j));
      running_ = 0;
    }
    idle_cv_.notify_all();
  }
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
  auto objects = ObjectWriter::PublishAll(writers);
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
