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
  std::vector<ObjectWriter*> one{job->writer.get()};
  auto objects = ObjectWriter::PublishAll(one);
  std::vector<CommitJob*> jobs{job.get()};
  std::vector<Status> out;
  commit_(jobs, objects, out);
  if (!out[0].ok()) fail_(*job, out[0], true);
  Finish(*job, out[0]);
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
  std::vector<std::shared_ptr<CommitJob>> batch;
  for (;;) {
    bool stopping;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        auto now = std::chrono::steady_clock::now();
        auto next = std::chrono::steady_clock::time_point::max();
        bool ready = false;
        for (const auto& j : queue_) {
          if (stop_ || j->not_before <= now) {
            ready = true;
            break;
          }
          next = std::min(next, j->not_before);
        }
        if (ready) break;
        if (stop_ && queue_.empty()) return;
        if (next == std::chrono::steady_clock::time_point::max()) cv_.wait(lock);
        else cv_.wait_until(lock, next);
      }
      stopping = stop_;
      // In submission order, skipping jobs that wait for a retry.
      auto now = std::chrono::steady_clock::now();
      for (auto it = queue_.begin(); it != queue_.end() && batch.size() < kMaxBatch;) {
        if (stopping || (*it)->not_before <= now) {
          batch.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      running_ = batch.size();
    }

    std::vector<ObjectWriter*> writers;
    std::vector<CommitJob*> jobs;
    writers.reserve(batch.size());
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
      Status s = results[i];
      ++job.attempts;
      if (!s.ok() && job.background && !stopping && Transient(s)) {
        job.not_before = std::chrono::steady_clock::now() + RetryDelay(job.attempts);
        fail_(job, s, false);
        retry.push_back(batch[i]);
        continue;
      }
      if (!s.ok()) fail_(job, s, true);
      Finish(job, std::move(s));
    }
    batch.clear();
    {
      std::lock_guard lock(mu_);
      for (auto& j : retry) queue_.push_back(std::move(j));
      running_ = 0;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace samplefs::fs
