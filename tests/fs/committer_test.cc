// The committer without a mount: batching, order, waiting, background
// retries and the last attempt at Stop(), over a real object store in a
// temporary directory and a commit function that records what it is given.
#include "fs/committer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/hash.h"
#include "catalog/object_store.h"

namespace samplefs::fs {
namespace {

// A round's commit as one call per job (what the tests check is the
// committer, not the batching of the catalog's transaction).
Committer::CommitFn PerJob(std::function<Status(CommitJob&, const PublishedObject&)> f,
                           std::atomic<int>* rounds = nullptr) {
  return [f, rounds](std::vector<CommitJob*>& jobs, std::vector<Result<PublishedObject>>& objects,
                     std::vector<Status>& out) {
    if (rounds) ++*rounds;
    out.clear();
    for (size_t i = 0; i < jobs.size(); ++i)
      out.push_back(objects[i].ok() ? f(*jobs[i], *objects[i]) : objects[i].status());
  };
}

// Counts the jobs committed; every one succeeds.
Committer::CommitFn Counting(std::atomic<int>* calls) {
  return PerJob([calls](CommitJob&, const PublishedObject&) {
    ++*calls;
    return Status::Ok();
  });
}

// For tests in which no job may fail.
Committer::FailFn NoFailure() {
  return [](CommitJob&, const Status& s, bool) { ADD_FAILURE() << s.ToString(); };
}

class CommitterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/samplefs-committer-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr) << t;
    dir_ = buf.data();
    auto store = ObjectStore::Open(dir_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<CommitJob> Job(const std::string& content, bool background, uint64_t version = 1) {
    auto w = store_->NewWriter();
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE((*w)->Write(content.data(), content.size(), 0).ok());
    auto job = std::make_shared<CommitJob>();
    job->writer = std::shared_ptr<ObjectWriter>(std::move(*w));
    job->version = version;
    job->path = content;
    job->background = background;
    return job;
  }

  std::string dir_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(CommitterTest, CommitsEveryJobInOrderAndInBatches) {
  std::mutex mu;
  std::vector<std::string> committed;
  std::atomic<int> calls{0};
  std::atomic<int> rounds{0};
  Committer c(
      PerJob([&](CommitJob& job, const PublishedObject& obj) {
        ++calls;
        EXPECT_EQ(obj.hash, ContentHash::Of(job.path.data(), job.path.size()));
        EXPECT_TRUE(store_->Exists(obj.hash));
        std::lock_guard lock(mu);
        committed.push_back(job.path);
        return Status::Ok();
      }, &rounds),
      [&](CommitJob&, const Status& s, bool) { ADD_FAILURE() << s.ToString(); });
  c.Start();
  std::vector<std::shared_ptr<CommitJob>> jobs;
  for (int i = 0; i < 300; ++i) {
    jobs.push_back(Job("file " + std::to_string(i), true));
    c.Submit(jobs.back());
  }
  auto last = Job("waited for", false);
  c.Submit(last);
  EXPECT_TRUE(Committer::Wait(*last).ok());
  // Submitted before it, so done before it.
  for (auto& j : jobs) {
    std::lock_guard lock(j->mu);
    EXPECT_TRUE(j->done);
    EXPECT_TRUE(j->status.ok());
  }
  EXPECT_TRUE(c.Drain(std::chrono::seconds(10)));
  EXPECT_EQ(c.pending(), 0u);
  ASSERT_EQ(committed.size(), 301u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(committed[i], "file " + std::to_string(i));
  EXPECT_EQ(committed.back(), "waited for");
  // Submitted faster than one round commits: rounds hold many jobs.
  EXPECT_LT(rounds.load(), 301);
  c.Stop();
}

// Group commit: closes arriving one by one within the gathering delay are
// one round (one syncfs pair, one transaction), not a round each.
TEST_F(CommitterTest, BackgroundVersionsGatherIntoOneRound) {
  std::atomic<int> calls{0};
  Committer c(Counting(&calls), NoFailure());
  c.set_gather_delay(std::chrono::seconds(30));  // only a full round or a waiter starts it
  c.Start();
  std::vector<std::shared_ptr<CommitJob>> jobs;
  for (int i = 0; i < 10; ++i) {
    jobs.push_back(Job("closed " + std::to_string(i), true));
    c.Submit(jobs.back());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls.load(), 0) << "a round started before the gathering delay or a full round";
  EXPECT_EQ(c.pending(), 10u);
  // `sync DIR` (Drain) does not wait for the delay.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.Drain(std::chrono::seconds(20)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(calls.load(), 10);
  EXPECT_EQ(c.rounds(), 1u);
  for (auto& j : jobs) EXPECT_TRUE(Committer::Wait(*j).ok());
  c.Stop();
}

TEST_F(CommitterTest, AWaitedVersionOrAFullRoundIsNotDelayed) {
  std::atomic<int> calls{0};
  Committer c(Counting(&calls), NoFailure());
  c.set_gather_delay(std::chrono::seconds(30));
  c.Start();
  // A version fsync() waits for goes at once, with what gathered before it.
  auto early = Job("closed earlier", true);
  c.Submit(early);
  auto waited = Job("fsynced", false);
  const auto t0 = std::chrono::steady_clock::now();
  c.Submit(waited);
  EXPECT_TRUE(Committer::Wait(*waited).ok());
  EXPECT_TRUE(Committer::Wait(*early).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(calls.load(), 2);
  // kGatherMin background versions are a round of their own.
  std::vector<std::shared_ptr<CommitJob>> jobs;
  for (size_t i = 0; i < Committer::kGatherMin; ++i) {
    jobs.push_back(Job("copied " + std::to_string(i), true));
    c.Submit(jobs.back());
  }
  for (auto& j : jobs) EXPECT_TRUE(Committer::Wait(*j).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(calls.load(), 2 + static_cast<int>(Committer::kGatherMin));
  // Stop() commits what is gathering without waiting either.
  auto last = Job("closed last", true);
  c.Submit(last);
  c.Stop();
  EXPECT_TRUE(Committer::Wait(*last).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

// The gathering delay counts from a version's arrival: one that arrived
// during a long round has waited already and goes right after it (timing
// the delay from the end of the round idled the committer after every
// round under a steady copy).
TEST_F(CommitterTest, AVersionThatWaitedThroughARoundIsNotDelayedAgain) {
  std::atomic<bool> first_round{true};
  Committer c(PerJob([&](CommitJob&, const PublishedObject&) {
                if (first_round.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(2500));
                return Status::Ok();
              }),
              NoFailure());
  c.set_gather_delay(std::chrono::seconds(2));
  c.Start();
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = Job("fsynced", false);  // its round starts at once and takes 2.5 s
  c.Submit(waited);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto closed = Job("closed during the round", true);
  c.Submit(closed);
  EXPECT_TRUE(Committer::Wait(*waited).ok());
  EXPECT_TRUE(Committer::Wait(*closed).ok());
  // Arrived at 0.2 s, so due at 2.2 s: committed when the first round ends
  // (2.5 s), not 2 s after it (4.5 s).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(3900));
  EXPECT_EQ(c.rounds(), 2u);
  c.Stop();
}

TEST_F(CommitterTest, BackgroundFailuresAreRetriedWaitedOnesReported) {
  std::atomic<int> busy_left{2};
  std::vector<std::pair<std::string, bool>> failures;
  std::mutex mu;
  Committer c(
      PerJob([&](CommitJob& job, const PublishedObject&) {
        if (job.path == "locked" && busy_left.fetch_sub(1) > 0) return Status(Code::kBusy, "database is locked");
        if (job.path == "fails") return Status(Code::kBusy, "database is locked");
        return Status::Ok();
      }),
      [&](CommitJob& job, const Status&, bool final) {
        std::lock_guard lock(mu);
        failures.emplace_back(job.path, final);
      });
  c.Start();
  auto bg = Job("locked", true);
  c.Submit(bg);
  // A waited-for job is answered at once, not retried.
  auto fg = Job("fails", false);
  c.Submit(fg);
  Status s = Committer::Wait(*fg);
  EXPECT_EQ(s.code(), Code::kBusy);
  // The background one succeeds on its third attempt (after 0.5 + 1 s).
  EXPECT_TRUE(Committer::Wait(*bg).ok());
  EXPECT_EQ(bg->attempts, 3);
  std::lock_guard lock(mu);
  EXPECT_EQ(failures, (std::vector<std::pair<std::string, bool>>{
                          {"locked", false}, {"fails", true}, {"locked", false}}));
}

TEST_F(CommitterTest, APermanentBackgroundFailureIsNotRetried) {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<bool> finals;
  Committer c(PerJob([&](CommitJob&, const PublishedObject&) {
                ++calls;
                return Status(Code::kCorrupt, "hash collision");
              }),
              [&](CommitJob&, const Status& s, bool final) {
                EXPECT_EQ(s.code(), Code::kCorrupt);
                std::lock_guard lock(mu);
                finals.push_back(final);
              });
  c.Start();
  auto bg = Job("collides", true);
  c.Submit(bg);
  EXPECT_EQ(Committer::Wait(*bg).code(), Code::kCorrupt);
  EXPECT_TRUE(c.Drain(std::chrono::seconds(5)));
  EXPECT_EQ(calls.load(), 1);
  std::lock_guard lock(mu);
  EXPECT_EQ(finals, std::vector<bool>{true});
}

TEST_F(CommitterTest, StopGivesQueuedRetriesALastTry) {
  std::atomic<bool> unlocked{false};
  std::mutex mu;
  std::vector<bool> finals;
  auto seen = [&] {
    std::lock_guard lock(mu);
    return finals;
  };
  Committer c(
      PerJob([&](CommitJob&, const PublishedObject&) {
        return unlocked ? Status::Ok() : Status(Code::kBusy, "database is locked");
      }),
      [&](CommitJob&, const Status&, bool final) {
        std::lock_guard lock(mu);
        finals.push_back(final);
      });
  c.Start();
  auto bg = Job("later", true);
  c.Submit(bg);
  // Its first attempt fails; the retry waits 0.5 s, Stop() does not.
  for (int i = 0; i < 400 && seen().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(seen(), std::vector<bool>{false});
  unlocked = true;
  c.Stop();
  EXPECT_TRUE(Committer::Wait(*bg).ok());
  EXPECT_EQ(seen(), std::vector<bool>{false});
}

TEST_F(CommitterTest, WithoutAThreadSubmitCommitsInline) {
  std::atomic<int> commits{0};
  Committer c(Counting(&commits), NoFailure());
  auto j = Job("inline", false);
  c.Submit(j);
  EXPECT_TRUE(Committer::Wait(*j).ok());
  EXPECT_EQ(commits.load(), 1);
  EXPECT_TRUE(c.Drain(std::chrono::milliseconds(1)));
}

TEST_F(CommitterTest, PublishAllOfTheSameWriterTwiceIsOneObject) {
  auto a = Job("same bytes", false);
  auto b = Job("same bytes", false);
  std::vector<ObjectWriter*> ws{a->writer.get(), b->writer.get(), a->writer.get()};
  auto out = ObjectWriter::PublishAll(ws);
  ASSERT_EQ(out.size(), 3u);
  for (auto& o : out) ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(out[0]->hash, out[1]->hash);
  EXPECT_EQ(out[0]->hash, out[2]->hash);
  EXPECT_FALSE(out[0]->deduplicated);
  EXPECT_TRUE(out[1]->deduplicated);
  EXPECT_TRUE(a->writer->published());
  EXPECT_TRUE(b->writer->published());
}

}  // namespace
}  // namespace samplefs::fs
