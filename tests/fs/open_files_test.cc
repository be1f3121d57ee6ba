// The open-file versions and their state machine (fs/open_files.h) without
// a mount: an in-memory catalog, a real object store in a temporary
// directory, and the mount's committer on its thread (a seal is made with
// the file's lock held, which the committer's record step takes too).
#include "fs/open_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "catalog/hash.h"
#include "fs/committer.h"
#include "fs/error_log.h"
#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using testing_util::FsTest;

// The mount's pair: the versions and the committer that records them
// (members referring to each other, as in Filesystem).
struct Rig {
  Rig(Catalog& catalog, ObjectStore& store, const std::string& empty_hash)
      : files(catalog, store, committer, empty_hash), committer(catalog, files, errors) {}
  ErrorLog errors;
  OpenFiles files;
  Committer committer;
};

class OpenFilesTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    const char* base = getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/samplefs-openfiles-XXXXXX";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
    store_ = MUST(ObjectStore::Open(dir_ + "/store"));
    empty_hash_ = ContentHash::Of("", 0).hex();
    rig_ = std::make_unique<Rig>(cat(), *store_, empty_hash_);
    rig_->committer.Start();
    auto sp = AddSpecies("HeLa");
    auto sa = AddSample("P1", sp.id);
    auto sl = AddSlide("S1", sa.id);
    auto img = AddImage(sl.id, "img");
    root_ = MUST(cat().FilesRoot(img.id));
    file_ = AddFile(root_.id, "a.tif", 4, 7);
  }
  void TearDown() override {
    rig_.reset();
    std::filesystem::remove_all(dir_);
  }
  OpenFiles& files() { return rig_->files; }

  void Write(OpenFile& of, const std::string& data, uint64_t off = 0) {
    ASSERT_TRUE(of.writer->Write(data.data(), data.size(), off).ok());
  }
  static std::string Hex(const std::string& data) { return ContentHash::Of(data.data(), data.size()).hex(); }
  static std::string Content(ObjectWriter& w) {
    std::string out(w.size(), '\0');
    EXPECT_EQ(MUST(w.Read(out.data(), out.size(), 0)), out.size());
    return out;
  }

  std::string dir_;
  std::unique_ptr<ObjectStore> store_;
  std::string empty_hash_;
  std::unique_ptr<Rig> rig_;
  Entry root_, file_;
};

TEST_F(OpenFilesTest, TableKeepsAFileWhileItIsUsed) {
  EXPECT_FALSE(files().Any());
  auto of = files().Acquire(file_.id);
  EXPECT_EQ(files().Acquire(file_.id), of);
  EXPECT_EQ(files().Find(file_.id), of);
  {
    std::lock_guard lock(of->mu);
    ++of->writers;
  }
  files().MaybeRelease(of);
  EXPECT_TRUE(files().Any()) << "a writer still uses it";
  {
    std::lock_guard lock(of->mu);
    --of->writers;
  }
  auto other = files().Find(file_.id);
  files().MaybeRelease(of);
  EXPECT_TRUE(files().Any()) << "another reference still uses it";
  other.reset();
  files().MaybeRelease(of);
  EXPECT_FALSE(files().Any());
  EXPECT_EQ(files().Find(file_.id), nullptr);
}

TEST_F(OpenFilesTest, WritingThenSealedIsRecordedAndGone) {
  auto of = files().Acquire(file_.id);
  std::shared_ptr<CommitJob> job;
  {
    std::lock_guard lock(of->mu);
    ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());  // none -> writing
    Write(*of, "new content");
    of->mtime_ns = 1234;
    of->pending_mode = 0600;
    struct stat st {};
    st.st_mode = S_IFREG | 0644;
    OpenFiles::OverlayPendingLocked(*of, &st);
    EXPECT_EQ(st.st_size, 11);
    EXPECT_EQ(st.st_mode, S_IFREG | 0600u);
    EXPECT_EQ(st.st_mtim.tv_nsec, 1234);
  }
  {  // writing -> sealed -> (recorded) none
    std::lock_guard lock(of->mu);
    job = files().SealLocked(of, false, "a.tif");
  }
  ASSERT_TRUE(Committer::Wait(*job).ok());
  Entry e = MUST(cat().EntryById(file_.id));
  EXPECT_EQ(e.hash, Hex("new content"));
  EXPECT_EQ(e.size, 11u);
  EXPECT_EQ(e.mtime_ns, 1234);
  EXPECT_EQ(e.mode, 0600u);
  std::lock_guard lock(of->mu);
  EXPECT_EQ(of->writer, nullptr);
  EXPECT_FALSE(of->sealed);
  EXPECT_EQ(of->committed_version, 1u);
  EXPECT_EQ(of->published_hash, Hex("new content"));
  EXPECT_FALSE(of->pending_mode);
  EXPECT_EQ(rig_->committer.committed(), 1u);
}

TEST_F(OpenFilesTest, AWriteAfterTheSealGoesOnInACopy) {
  auto of = files().Acquire(file_.id);
  std::shared_ptr<CommitJob> first;
  {
    // Holding the file's lock keeps the committer from recording the
    // sealed version until the next one has begun.
    std::lock_guard lock(of->mu);
    ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());
    Write(*of, "version one");
    first = files().SealLocked(of, true, "a.tif");  // writing -> sealed
    EXPECT_TRUE(of->sealed);
    auto sealed_writer = of->writer;
    ASSERT_TRUE(files().EnsureWriterLocked(*of, false).ok());  // sealed -> writing
    EXPECT_FALSE(of->sealed);
    EXPECT_NE(of->writer, sealed_writer) << "the sealed version is final";
    EXPECT_EQ(Content(*of->writer), "version one");
    Write(*of, "two", 8);
  }
  ASSERT_TRUE(Committer::Wait(*first).ok());
  EXPECT_EQ(MUST(cat().EntryById(file_.id)).hash, Hex("version one"));
  std::shared_ptr<CommitJob> second;
  {
    std::lock_guard lock(of->mu);
    ASSERT_NE(of->writer, nullptr) << "the newer version is still pending";
    EXPECT_EQ(of->committed_version, 1u);
    second = files().SealLocked(of, false, "a.tif");
  }
  ASSERT_TRUE(Committer::Wait(*second).ok());
  EXPECT_EQ(MUST(cat().EntryById(file_.id)).hash, Hex("version two"));
  std::lock_guard lock(of->mu);
  EXPECT_EQ(of->writer, nullptr);
  EXPECT_EQ(of->committed_version, 2u);
}

TEST_F(OpenFilesTest, CopyOnWriteStartsFromTheRecordedContent) {
  auto of = files().Acquire(file_.id);
  std::shared_ptr<CommitJob> job;
  {
    std::lock_guard lock(of->mu);
    ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());
    Write(*of, "abcdef");
    job = files().SealLocked(of, false, "a.tif");
  }
  ASSERT_TRUE(Committer::Wait(*job).ok());
  std::lock_guard lock(of->mu);
  ASSERT_EQ(of->writer, nullptr);
  ASSERT_TRUE(files().EnsureWriterLocked(*of, false).ok());
  EXPECT_EQ(Content(*of->writer), "abcdef");
  files().DropVersionLocked(*of);
}

TEST_F(OpenFilesTest, AMissingObjectIsEioNamingIt) {
  // file_'s record names an object the store does not have.
  auto of = files().Acquire(file_.id);
  std::lock_guard lock(of->mu);
  Status s = files().EnsureWriterLocked(*of, false);
  EXPECT_EQ(s.code(), Code::kCorrupt);
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();
  EXPECT_EQ(of->writer, nullptr);
}

TEST_F(OpenFilesTest, DropKeepsAPendingChmod) {
  auto of = files().Acquire(file_.id);
  std::lock_guard lock(of->mu);
  ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());
  Write(*of, "partial");
  of->pending_mode = 0640;
  const uint64_t epoch = rig_->committer.publish_epoch();
  files().DropVersionLocked(*of);  // writing -> none
  EXPECT_EQ(of->writer, nullptr);
  Entry e = MUST(cat().EntryById(file_.id));
  EXPECT_EQ(e.mode, 0640u);
  // Written outside the committer: a lookup that read the record before
  // must not answer with it (OpLookup's epoch test).
  EXPECT_GT(rig_->committer.publish_epoch(), epoch);
  EXPECT_EQ(e.size, 4u) << "the file keeps its previous version";
}

TEST_F(OpenFilesTest, AFailedCommitMakesTheVersionPendingAgain) {
  auto of = files().Acquire(file_.id);
  {
    std::lock_guard lock(of->mu);
    ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());
    Write(*of, "kept");
  }
  ASSERT_TRUE(cat().DeleteEntry(file_.id).ok());  // no record to point at it
  std::shared_ptr<CommitJob> gone;
  {
    std::lock_guard lock(of->mu);
    gone = files().SealLocked(of, false, "a.tif");
  }
  EXPECT_TRUE(Committer::Wait(*gone).ok());
  {
    // The file is gone without an orphan: nothing recorded, the version
    // finished (there is no record a retry could reach).
    std::lock_guard lock(of->mu);
    EXPECT_EQ(of->writer, nullptr);
    EXPECT_EQ(of->jobs, 0);
  }
  EXPECT_EQ(rig_->committer.committed(), 0u);

  // A job that fails for good hands the version back: pending, not sealed.
  auto of2 = std::make_shared<OpenFile>();
  auto job = std::make_shared<CommitJob>();
  {
    std::lock_guard lock(of2->mu);
    of2->writer = std::shared_ptr<ObjectWriter>(MUST(store_->NewWriter()));
    of2->sealed = true;
    of2->jobs = 1;
    job->of = of2;
    job->writer = of2->writer;
    OpenFiles::CommitFailedLocked(*job);
    EXPECT_FALSE(of2->sealed);
    EXPECT_EQ(of2->jobs, 0);
    EXPECT_NE(of2->writer, nullptr);
  }
}

TEST_F(OpenFilesTest, AnOrphanFollowsItsCommittedVersion) {
  auto of = files().Acquire(file_.id);
  std::shared_ptr<CommitJob> job;
  {
    std::lock_guard lock(of->mu);
    of->orphan = MUST(cat().EntryById(file_.id));
    ASSERT_TRUE(cat().DeleteEntry(file_.id).ok());
    ASSERT_TRUE(files().EnsureWriterLocked(*of, true).ok());
    Write(*of, "after unlink");
    job = files().SealLocked(of, false, "a.tif");
  }
  ASSERT_TRUE(Committer::Wait(*job).ok());
  std::lock_guard lock(of->mu);
  ASSERT_TRUE(of->orphan);
  EXPECT_EQ(of->orphan->hash, Hex("after unlink"));
  EXPECT_EQ(of->orphan->size, 12u);
  EXPECT_EQ(cat().EntryById(file_.id).status().code(), Code::kNotFound) << "no record is recreated";
}

TEST_F(OpenFilesTest, SealOfDescribesThePendingVersion) {
  OpenFile of;
  of.entry_id = 42;
  of.mtime_ns = 5;
  of.pending_mode = 0600;
  Seal seal = OpenFiles::SealOf(of, "/slides/S1/x", true);
  EXPECT_EQ(seal.entry_id, 42);
  EXPECT_EQ(seal.mtime_ns, 5);
  EXPECT_EQ(seal.mode, 0600);
  EXPECT_TRUE(seal.closed);
  EXPECT_EQ(seal.path, "/slides/S1/x");
  of.mtime_ns = 0;
  of.pending_mode.reset();
  seal = OpenFiles::SealOf(of, "p", false);
  EXPECT_EQ(seal.mtime_ns, seal.sealed_ns) << "no mtime yet: the seal's time";
  EXPECT_EQ(seal.mode, -1);
}

}  // namespace
}  // namespace samplefs::fs
