// The invalidator (fs/invalidator.h) without a mount: its notices go to a
// recording Kernel (Invalidator::SetKernelForTesting) instead of
// fuse_lowlevel_notify_*, over a NodeTable filled as lookups would, and a
// catalog that another connection changes for the external-change poll.
#include "fs/invalidator.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using namespace std::chrono_literals;
using testing_util::SpecOf;

// Records the notices; an entry notice whose parent is in `blocked` waits
// until Release (as the kernel does while a request holds that directory's
// lock).
class Recorder {
 public:
  Invalidator::Kernel kernel() {
    return {[this](fuse_ino_t parent, const std::string& name) {
              std::unique_lock lock(mu_);
              cv_.wait(lock, [&] { return !blocked_.count(parent); });
              events_.push_back("entry " + std::to_string(parent) + " " + name);
              cv_.notify_all();
              return 0;
            },
            [this](fuse_ino_t ino, off_t off) {
              std::lock_guard lock(mu_);
              events_.push_back("inode " + std::to_string(ino) + " " + std::to_string(off));
              cv_.notify_all();
              return 0;
            }};
  }
  void Block(fuse_ino_t dir) {
    std::lock_guard lock(mu_);
    blocked_.insert(dir);
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      blocked_.clear();
    }
    cv_.notify_all();
  }
  std::vector<std::string> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    events_.clear();
  }
  // Waits (at most `timeout`) until `n` notices were recorded.
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return events_.size() >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<fuse_ino_t> blocked_;
  std::vector<std::string> events_;
};

std::string Entry(fuse_ino_t parent, const std::string& name) {
  return "entry " + std::to_string(parent) + " " + name;
}
std::string Inode(fuse_ino_t ino, off_t off) { return "inode " + std::to_string(ino) + " " + std::to_string(off); }

class InvalidatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = MUST(Catalog::OpenSqlite(":memory:"));
    inv_ = std::make_unique<Invalidator>(*catalog_, nodes_);
    inv_->SetKernelForTesting(rec_.kernel());
    // A slide reached through /slides and /samples/P12/slides: two inodes.
    slides_ = nodes_.Resolve(FUSE_ROOT_ID, "slides", SpecOf(NodeKind::kSlidesView), 1).ino;
    samples_ = nodes_.Resolve(FUSE_ROOT_ID, "samples", SpecOf(NodeKind::kSamplesView), 1).ino;
    p12_ = nodes_.Resolve(samples_, "P12", SpecOf(NodeKind::kSample, 1), 1).ino;
    p12_slides_ = nodes_.Resolve(p12_, "slides", SpecOf(NodeKind::kSlidesView, 1), 1).ino;
    p13_ = nodes_.Resolve(samples_, "P13", SpecOf(NodeKind::kSample, 2), 1).ino;
    p13_slides_ = nodes_.Resolve(p13_, "slides", SpecOf(NodeKind::kSlidesView, 2), 1).ino;
    s7_ = nodes_.Resolve(slides_, "S7", SpecOf(NodeKind::kSlide, 7), 1).ino;
    s7_in_p12_ = nodes_.Resolve(p12_slides_, "S7", SpecOf(NodeKind::kSlide, 7), 1).ino;
  }
  void TearDown() override {
    rec_.Release();
    inv_->Stop();
  }

  NodeTable nodes_;
  std::unique_ptr<Catalog> catalog_;
  Recorder rec_;
  std::unique_ptr<Invalidator> inv_;
  fuse_ino_t slides_ = 0, samples_ = 0, p12_ = 0, p12_slides_ = 0, p13_ = 0, p13_slides_ = 0, s7_ = 0,
             s7_in_p12_ = 0;
};

TEST_F(InvalidatorTest, PostedNoticesAreSentByTheThreadInOrderAndDrainAwaitsThem) {
  inv_->Start(nullptr, 60000);
  inv_->PostEntry(slides_, "S7");
  inv_->PostInode(s7_);
  inv_->Drain(5000);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Entry(slides_, "S7"), Inode(s7_, -1)}));
  EXPECT_EQ(inv_->notifications(), 2u);
}

TEST_F(InvalidatorTest, PostRecordReachesEveryPathOfTheRecord) {
  inv_->Start(nullptr, 60000);
  inv_->PostRecord(NodeKind::kSlide, 7);
  inv_->Drain(5000);
  std::vector<std::string> got = rec_.events();
  std::multiset<std::string> set(got.begin(), got.end());
  EXPECT_EQ(set, (std::multiset<std::string>{Entry(slides_, "S7"), Inode(s7_, -1), Entry(p12_slides_, "S7"),
                                             Inode(s7_in_p12_, -1)}));
  // Another record's nodes are left alone.
  rec_.Clear();
  inv_->PostRecord(NodeKind::kSlide, 8);
  inv_->Drain(5000);
  EXPECT_TRUE(rec_.events().empty());
}

TEST_F(InvalidatorTest, PostRecordExceptSkipsTheNameTheRequestCameThrough) {
  // One inode, two names (a file: NodeTable gives every path its node).
  NodeSpec file = SpecOf(NodeKind::kFile, 3);
  fuse_ino_t f = nodes_.Resolve(s7_, "a.tif", file, 1).ino;
  EXPECT_EQ(nodes_.Resolve(s7_in_p12_, "a.tif", file, 1).ino, f);
  inv_->Start(nullptr, 60000);
  inv_->PostRecordExcept(NodeKind::kFile, 3, s7_, "a.tif");
  inv_->Drain(5000);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Entry(s7_in_p12_, "a.tif"), Inode(f, -1)}));
  // A file with no other name: nothing at all (rsync's renames cost no notice).
  rec_.Clear();
  fuse_ino_t g = nodes_.Resolve(s7_, "b.tif", SpecOf(NodeKind::kFile, 4), 1).ino;
  (void)g;
  inv_->PostRecordExcept(NodeKind::kFile, 4, s7_, "b.tif");
  inv_->Drain(5000);
  EXPECT_TRUE(rec_.events().empty());
}

TEST_F(InvalidatorTest, PostAttrsSendsAttributesOnlyButTheException) {
  inv_->Start(nullptr, 60000);
  inv_->PostAttrs(NodeKind::kSlide, 7, s7_);
  inv_->Drain(5000);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(s7_in_p12_, -1)}));
}

TEST_F(InvalidatorTest, DrainIsBoundedWhenANoticeIsHeldUp) {
  inv_->Start(nullptr, 60000);
  rec_.Block(slides_);
  inv_->PostEntry(slides_, "S7");
  auto t0 = std::chrono::steady_clock::now();
  inv_->Drain(100);
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 3s);
  EXPECT_TRUE(rec_.events().empty());
  rec_.Release();
  EXPECT_TRUE(rec_.WaitFor(1));
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Entry(slides_, "S7")}));
}

TEST_F(InvalidatorTest, DrainReturnsAtOnceWithNothingQueuedOrNoThread) {
  auto t0 = std::chrono::steady_clock::now();
  inv_->Drain(2000);  // not started
  inv_->Start(nullptr, 60000);
  inv_->Drain(2000);  // nothing queued
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(InvalidatorTest, ARenamedRecordsOtherPathsAreSentBeforeItReturns) {
  // mv slides/S7 samples/P13/slides/: the kernel holds /slides and
  // P13/slides locked until the reply, so no notice there may hold up the
  // one that drops samples/P12/slides/S7; the renamed name itself (the
  // kernel moves it) gets none.
  inv_->Start(nullptr, 60000);
  rec_.Block(slides_);
  rec_.Block(p13_slides_);
  auto t0 = std::chrono::steady_clock::now();
  inv_->PostRenamedRecord(NodeKind::kSlide, 7, slides_, "S7", p13_slides_, 5000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // not the bound
  std::vector<std::string> got = rec_.events();
  std::multiset<std::string> set(got.begin(), got.end());
  EXPECT_EQ(set, (std::multiset<std::string>{Entry(p12_slides_, "S7"), Inode(s7_, -1), Inode(s7_in_p12_, -1)}));
  // Nothing was left queued behind the locks: the next rename through the
  // same directories is not held up either.
  inv_->PostRenamedRecord(NodeKind::kSlide, 7, slides_, "S7", p13_slides_, 5000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(rec_.events().size(), 6u);
}

TEST_F(InvalidatorTest, ARenamedRecordsOtherNameInALockedDirectoryFollowsTheReply) {
  // A name of the record in the rename's target directory (not the renamed
  // one) is dropped too, once the kernel lets go of that directory.
  fuse_ino_t in_p13 = nodes_.Resolve(p13_slides_, "S7", SpecOf(NodeKind::kSlide, 7), 1).ino;
  inv_->Start(nullptr, 60000);
  rec_.Block(p13_slides_);
  inv_->PostRenamedRecord(NodeKind::kSlide, 7, slides_, "S7", p13_slides_, 5000);
  EXPECT_EQ(rec_.events().size(), 4u);  // P12's name, three attributes
  rec_.Release();
  ASSERT_TRUE(rec_.WaitFor(5));
  EXPECT_EQ(rec_.events().back(), Entry(p13_slides_, "S7"));
  (void)in_p13;
}

TEST_F(InvalidatorTest, InvalidateListingsDropsEveryOtherPathOfAFolderAtOnce) {
  NodeSpec folder = SpecOf(NodeKind::kFolder, 11);
  fuse_ino_t a = nodes_.Resolve(s7_, "d", folder, 1).ino;
  fuse_ino_t b = nodes_.Resolve(s7_in_p12_, "d", folder, 1).ino;
  ASSERT_NE(a, b);
  // Not started: no session, nothing is sent.
  EXPECT_FALSE(inv_->InvalidateListings(11, a, "x"));
  EXPECT_TRUE(rec_.events().empty());
  inv_->Start(nullptr, 60000);
  // Without a name: the listing only, sent from the calling thread.
  EXPECT_FALSE(inv_->InvalidateListings(11, a));
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(b, 0)}));
  // With a name: its (maybe negative) dentry there too, queued.
  rec_.Clear();
  EXPECT_TRUE(inv_->InvalidateListings(11, a, "x"));
  inv_->Drain(5000);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(b, 0), Entry(b, "x")}));
  rec_.Clear();
  inv_->DropListing(a);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(a, 0)}));
}

// Generated directories' listings, kept by the kernel: a write to the
// catalog drops those listed since the last write, at once (before the
// write returns, so before the request that wrote replies), each once.
TEST_F(InvalidatorTest, AWriteDropsTheGeneratedListingsTheKernelMayKeep) {
  inv_->Start(nullptr, 60000);
  Species a;
  a.name = "HeLa";
  (void)MUST(catalog_->CreateSpecies(a));
  EXPECT_TRUE(rec_.events().empty()) << "nothing listed, nothing to drop";
  const uint64_t g = inv_->NoteGeneratedListing(slides_);
  (void)inv_->NoteGeneratedListing(p12_slides_);
  (void)inv_->NoteGeneratedListing(slides_);  // listed again: one notice
  inv_->ListingReplied(slides_, g);            // no write in between: nothing
  (void)MUST(catalog_->SpeciesByName("HeLa"));  // a read drops nothing
  EXPECT_TRUE(rec_.events().empty());
  Species b;
  b.name = "MCF7";
  (void)MUST(catalog_->CreateSpecies(b));
  std::vector<std::string> got = rec_.events();
  EXPECT_EQ(std::multiset<std::string>(got.begin(), got.end()),
            (std::multiset<std::string>{Inode(slides_, 0), Inode(p12_slides_, 0)}));
  EXPECT_EQ(inv_->generated_listings_dropped(), 2u);
  // Dropped listings are unmarked: the next write sends nothing.
  rec_.Clear();
  Species c;
  c.name = "Mouse";
  (void)MUST(catalog_->CreateSpecies(c));
  EXPECT_TRUE(rec_.events().empty());
  // A transaction drops them once, when it ends.
  (void)inv_->NoteGeneratedListing(samples_);
  {
    Transaction txn(*catalog_);
    Species d;
    d.name = "Rat";
    (void)MUST(catalog_->CreateSpecies(d));
    EXPECT_TRUE(rec_.events().empty());
    ASSERT_OK(txn.Commit());
  }
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(samples_, 0)}));
}

// A listing read while a write ended may carry the state before it, and
// the kernel stores the reply after the daemon sent it: dropped again then.
TEST_F(InvalidatorTest, AListingReadAcrossAWriteIsDroppedAgainAfterItsReply) {
  inv_->Start(nullptr, 60000);
  const uint64_t g = inv_->NoteGeneratedListing(slides_);
  Species a;
  a.name = "HeLa";
  (void)MUST(catalog_->CreateSpecies(a));
  inv_->ListingReplied(slides_, g);
  inv_->Drain(5000);
  EXPECT_EQ(rec_.events(), (std::vector<std::string>{Inode(slides_, 0), Inode(slides_, 0)}));
}

TEST(InvalidatorExternalTest, AChangeByAnotherConnectionInvalidatesEverythingCached) {
  const char* base = getenv("TMPDIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/samplefs-invalidator-XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/catalog.db";
  {
    auto mine = MUST(Catalog::OpenSqlite(path));
    auto other = MUST(Catalog::OpenSqlite(path));
    NodeTable nodes;
    fuse_ino_t slides = nodes.Resolve(FUSE_ROOT_ID, "slides", SpecOf(NodeKind::kSlidesView), 1).ino;
    fuse_ino_t s7 = nodes.Resolve(slides, "S7", SpecOf(NodeKind::kSlide, 7), 1).ino;
    fuse_ino_t d = nodes.Resolve(s7, "d", SpecOf(NodeKind::kFolder, 11), 1).ino;
    Recorder rec;
    Invalidator inv(*mine, nodes);
    inv.SetKernelForTesting(rec.kernel());
    inv.Start(nullptr, 20);
    // A change through the mount's own connection is not another process's.
    Species ours;
    ours.name = "HeLa";
    (void)MUST(mine->CreateSpecies(ours));
    std::this_thread::sleep_for(200ms);
    EXPECT_TRUE(rec.events().empty());
    // Another connection: every name, then every directory's attributes
    // and listing (offset 0: the kernel keeps generated directories'
    // listings too, the root's included).
    Species theirs;
    theirs.name = "MCF7";
    (void)MUST(other->CreateSpecies(theirs));
    ASSERT_TRUE(rec.WaitFor(7));
    inv.Stop();
    std::vector<std::string> got = rec.events();
    ASSERT_EQ(got.size(), 7u);
    std::multiset<std::string> names(got.begin(), got.begin() + 3), attrs(got.begin() + 3, got.end());
    EXPECT_EQ(names, (std::multiset<std::string>{Entry(FUSE_ROOT_ID, "slides"), Entry(slides, "S7"), Entry(s7, "d")}));
    EXPECT_EQ(attrs, (std::multiset<std::string>{Inode(FUSE_ROOT_ID, 0), Inode(slides, 0), Inode(s7, 0), Inode(d, 0)}));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace samplefs::fs
