// Unit tests of the content-addressed object store (SPEC section 3).
#include "catalog/object_store.h"
#include "catalog_testing.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace samplefs {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing_util::TempBase;

using testing_util::ReadWhole;

void WriteWhole(const std::string& path, const std::string& data, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

ContentHash HashOf(const std::string& s) { return ContentHash::Of(s.data(), s.size()); }

// Deterministic, incompressible-enough bytes for sizes that cross chunks.
std::string Pattern(size_t size, uint32_t seed) {
  std::string s(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

class ObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("samplefs_os_test");
    ASSERT_FALSE(dir_.empty()) << std::strerror(errno);
    root_ = dir_ + "/store";
    auto opened = ObjectStore::Open(root_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }

  void TearDown() override {
    test_hooks::SetDigestFilter(nullptr);
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<ObjectWriter> NewWriter() {
    auto w = store_->NewWriter();
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }

  // Writes `data` in order in pieces of `piece` bytes and publishes it.
  PublishedObject PublishBytes(const std::string& data, size_t piece = 4096) {
    auto w = NewWriter();
    if (!w) return {};
    for (size_t off = 0; off < data.size(); off += piece) {
      size_t n = std::min(piece, data.size() - off);
      Status st = w->Write(data.data() + off, n, off);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    auto pub = w->Publish();
    EXPECT_TRUE(pub.ok()) << pub.status().ToString();
    return pub.ok() ? *pub : PublishedObject{};
  }

  std::vector<std::string> StagingFiles() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(root_ + "/staging")) out.push_back(e.path().filename());
    return out;
  }

  std::vector<std::string> ObjectFiles() const {  // every regular file under objects/
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/objects"))
      if (e.is_regular_file()) out.push_back(e.path().string());
    return out;
  }

  // Plants `data` at the path an object with `hash` would have.
  void Plant(const ContentHash& hash, const std::string& data) {
    std::string path = store_->ObjectPath(hash);
    fs::create_directories(fs::path(path).parent_path());
    WriteWhole(path, data, 0400);
  }

  std::string dir_, root_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(ObjectStoreTest, EmptyObject) {
  auto w = NewWriter();
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  // xxhsum -H2 < /dev/null
  EXPECT_EQ(pub->hash.hex(), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(pub->size, 0u);
  EXPECT_FALSE(pub->deduplicated);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(pub->hash)), "");
  EXPECT_TRUE(StagingFiles().empty());
}

TEST_F(ObjectStoreTest, OneByteObject) {
  PublishedObject pub = PublishBytes("a");
  // printf a | xxhsum -H2
  EXPECT_EQ(pub.hash.hex(), "a96faf705af16834e6c632b61e964e1f");
  EXPECT_EQ(pub.size, 1u);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(pub.hash)), "a");
}

TEST_F(ObjectStoreTest, HashMatchesWholeBufferHashAcrossChunkBoundaries) {
  // Sizes around the store's 1 MiB chunk and odd write sizes.
  const size_t kMiB = size_t{1} << 20;
  for (size_t size : {size_t{100}, kMiB - 1, kMiB, kMiB + 1, 3 * kMiB + 12345}) {
    for (size_t piece : {size_t{1000}, size_t{65536}, kMiB + 7}) {
      std::string data = Pattern(size, static_cast<uint32_t>(size + piece));
      PublishedObject pub = PublishBytes(data, piece);
      EXPECT_EQ(pub.hash, HashOf(data)) << "size " << size << " piece " << piece;
      EXPECT_EQ(pub.size, size);
      EXPECT_TRUE(store_->Verify(pub.hash).ok());
    }
  }
}

TEST_F(ObjectStoreTest, OutOfOrderWritesHashLikeInOrder) {
  std::string data = Pattern(3 << 20, 7);
  size_t half = data.size() / 2 + 3;
  auto w = NewWriter();
  ASSERT_TRUE(w->Write(data.data() + half, data.size() - half, half).ok());
  ASSERT_TRUE(w->Write(data.data(), half, 0).ok());
  EXPECT_EQ(w->size(), data.size());
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(pub->hash, HashOf(data));
  EXPECT_EQ(pub->hash, PublishBytes(data).hash);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(pub->hash)), data);
}

TEST_F(ObjectStoreTest, WriteBeyondEndLeavesZeroHole) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("x", 1, 5).ok());
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf(std::string(5, '\0') + "x"));
  EXPECT_EQ(pub->size, 6u);
}

TEST_F(ObjectStoreTest, OverlappingRewrite) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("hello world", 11, 0).ok());
  ASSERT_TRUE(w->Write("WORLD!", 6, 6).ok());
  char buf[32] = {};
  auto got = w->Read(buf, sizeof buf, 0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::string(buf, *got), "hello WORLD!");
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf("hello WORLD!"));
  EXPECT_EQ(ReadWhole(store_->ObjectPath(pub->hash)), "hello WORLD!");
}

TEST_F(ObjectStoreTest, TruncateShrink) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("0123456789", 10, 0).ok());
  ASSERT_TRUE(w->Truncate(4).ok());
  EXPECT_EQ(w->size(), 4u);
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf("0123"));
  EXPECT_EQ(pub->size, 4u);
}

TEST_F(ObjectStoreTest, TruncateExtendThenAppend) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("abc", 3, 0).ok());
  ASSERT_TRUE(w->Truncate(8).ok());
  ASSERT_TRUE(w->Write("Z", 1, 8).ok());
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf(std::string("abc") + std::string(5, '\0') + "Z"));
  EXPECT_EQ(pub->size, 9u);
}

TEST_F(ObjectStoreTest, TruncateToSameSizeKeepsContent) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Truncate(0).ok());  // what open(O_TRUNC) of a new file sends
  ASSERT_TRUE(w->Write("abc", 3, 0).ok());
  ASSERT_TRUE(w->Truncate(3).ok());
  ASSERT_TRUE(w->Write("d", 1, 3).ok());
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf("abcd"));
}

TEST_F(ObjectStoreTest, ReadBackWhileWriting) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("sample", 6, 0).ok());
  char buf[8];
  auto got = w->Read(buf, 3, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::string(buf, *got), "mpl");
  got = w->Read(buf, sizeof buf, 6);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 0u);
}

TEST_F(ObjectStoreTest, DuplicatePublishIsDeduplicated) {
  std::string data = Pattern(200000, 3);
  PublishedObject first = PublishBytes(data);
  EXPECT_FALSE(first.deduplicated);
  // An old object that is published again becomes young for gc's grace period.
  struct timeval old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimes(store_->ObjectPath(first.hash).c_str(), old_times), 0);
  PublishedObject second = PublishBytes(data, 777);
  EXPECT_TRUE(second.deduplicated);
  EXPECT_EQ(second.hash, first.hash);
  EXPECT_EQ(second.size, data.size());
  EXPECT_EQ(ObjectFiles().size(), 1u);
  EXPECT_TRUE(StagingFiles().empty());
  EXPECT_EQ(ReadWhole(store_->ObjectPath(first.hash)), data);
  auto info = store_->Stat(first.hash);
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->mtime_sec, static_cast<int64_t>(std::time(nullptr)) - 600);
}

// Content already in the store is deduplicated before any of it is synced:
// its staging data is dropped from the page cache, never written (a
// re-copy costs no data writes), and the object's bytes are still compared.
TEST_F(ObjectStoreTest, DuplicatesInABatchAreDroppedBeforeAnySync) {
  const std::string a = Pattern(70000, 21), b = Pattern(4096, 22);
  PublishedObject pa = PublishBytes(a), pb = PublishBytes(b);
  struct timeval old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimes(store_->ObjectPath(pa.hash).c_str(), old_times), 0);
  const uint64_t syncs = store_->data_syncs(), early = store_->early_dedups();

  std::vector<std::unique_ptr<ObjectWriter>> owned;
  std::vector<std::string> staging;
  for (const std::string* data : {&a, &b, &a}) {
    owned.push_back(NewWriter());
    ASSERT_TRUE(owned.back()->Write(data->data(), data->size(), 0).ok());
    staging.push_back(owned.back()->staging_path());
  }
  std::vector<ObjectWriter*> writers;
  for (auto& w : owned) writers.push_back(w.get());
  auto out = ObjectWriter::PublishAll(writers);
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].ok()) << out[i].status().ToString();
    EXPECT_TRUE(out[i]->deduplicated) << i;
    EXPECT_FALSE(fs::exists(staging[i])) << i;
  }
  EXPECT_EQ(out[0]->hash, pa.hash);
  EXPECT_EQ(out[1]->hash, pb.hash);
  EXPECT_EQ(out[1]->size, b.size());
  EXPECT_EQ(store_->data_syncs(), syncs) << "no staging data of a duplicate is synced";
  EXPECT_EQ(store_->early_dedups(), early + 3);
  EXPECT_EQ(ObjectFiles().size(), 2u);
  // Young again for gc's grace period.
  auto info = store_->Stat(pa.hash);
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->mtime_sec, static_cast<int64_t>(std::time(nullptr)) - 600);

  // New content in the same kind of batch is still synced before it is linked.
  const std::string c = Pattern(5000, 23), d = Pattern(6000, 24);
  owned.clear();
  writers.clear();
  for (const std::string* data : {&c, &a, &d}) {
    owned.push_back(NewWriter());
    ASSERT_TRUE(owned.back()->Write(data->data(), data->size(), 0).ok());
    writers.push_back(owned.back().get());
  }
  out = ObjectWriter::PublishAll(writers);
  ASSERT_TRUE(out[0].ok() && out[1].ok() && out[2].ok());
  EXPECT_FALSE(out[0]->deduplicated);
  EXPECT_TRUE(out[1]->deduplicated);
  EXPECT_FALSE(out[2]->deduplicated);
  EXPECT_GT(store_->data_syncs(), syncs);
  EXPECT_EQ(store_->early_dedups(), early + 4);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(out[0]->hash)), c);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(out[2]->hash)), d);
}

// The store remembers which objects/xx/yy exist (no mkdir per object);
// one removed by hand behind its back is made again.
TEST_F(ObjectStoreTest, ObjectFolderRemovedByHandIsMadeAgain) {
  const std::string data = Pattern(3000, 41);
  PublishedObject first = PublishBytes(data);
  const std::string leaf = fs::path(store_->ObjectPath(first.hash)).parent_path();
  ASSERT_TRUE(store_->Remove(first.hash).ok());
  ASSERT_EQ(::rmdir(leaf.c_str()), 0);
  ASSERT_EQ(::rmdir(fs::path(leaf).parent_path().c_str()), 0);
  PublishedObject again = PublishBytes(data);
  EXPECT_EQ(again.hash, first.hash);
  EXPECT_FALSE(again.deduplicated);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(first.hash)), data);
  EXPECT_TRUE(StagingFiles().empty());
}

// Same size, same name, other bytes (a corrupt object, or a collision)
// never deduplicates early: the full path replaces or refuses it.
TEST_F(ObjectStoreTest, EarlyDeduplicationComparesBytes) {
  const std::string good = Pattern(50000, 31);
  std::string bad = good;
  bad[49999] ^= 0x40;
  const ContentHash h = HashOf(good);
  Plant(h, bad);
  const uint64_t early = store_->early_dedups();
  PublishedObject pub = PublishBytes(good);
  EXPECT_FALSE(pub.deduplicated);
  EXPECT_EQ(store_->early_dedups(), early);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(h)), good);
}

// The mount points new files at the empty object without publishing it, so
// it touches the object instead: gc's grace period must then spare it.
TEST_F(ObjectStoreTest, TouchMakesAnObjectYoungAndReportsAMissingOne) {
  PublishedObject pub = PublishBytes("");
  struct timeval old_times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimes(store_->ObjectPath(pub.hash).c_str(), old_times), 0);
  ASSERT_TRUE(store_->Touch(pub.hash).ok());
  auto info = store_->Stat(pub.hash);
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->mtime_sec, static_cast<int64_t>(std::time(nullptr)) - 600);
  ASSERT_TRUE(store_->Remove(pub.hash).ok());
  EXPECT_EQ(store_->Touch(pub.hash).code(), Code::kNotFound);
}

TEST_F(ObjectStoreTest, CorruptExistingObjectIsReplacedNotReused) {
  const std::string good = Pattern(50000, 11);
  std::string same_size = good;
  same_size[12345] ^= 0x01;
  for (const std::string& bad : {same_size, good.substr(0, 100), good + "tail", std::string()}) {
    const ContentHash h = HashOf(good);
    Plant(h, bad);
    PublishedObject pub = PublishBytes(good);
    EXPECT_EQ(pub.hash, h);
    EXPECT_FALSE(pub.deduplicated);
    EXPECT_EQ(ReadWhole(store_->ObjectPath(h)), good) << "planted " << bad.size() << " bytes";
    EXPECT_EQ(ModeOf(store_->ObjectPath(h)), 0400);
    EXPECT_TRUE(store_->Verify(h).ok());
    EXPECT_TRUE(StagingFiles().empty());
    EXPECT_EQ(ObjectFiles().size(), 1u);
    ASSERT_TRUE(store_->Remove(h).ok());
  }
}

ContentHash EverythingCollides(const ContentHash&) { return *ContentHash::FromHex("0123456789abcdef0123456789abcdef"); }

TEST_F(ObjectStoreTest, GenuineCollisionIsRefusedAndExistingObjectUntouched) {
  test_hooks::SetDigestFilter(&EverythingCollides);
  const ContentHash h = EverythingCollides(ContentHash{});
  PublishedObject first = PublishBytes("first contents");
  ASSERT_EQ(first.hash, h);
  struct stat before;
  ASSERT_EQ(::stat(store_->ObjectPath(h).c_str(), &before), 0);

  for (const std::string other : {"second contents", "other length, other bytes"}) {
    auto w = NewWriter();
    ASSERT_TRUE(w->Write(other.data(), other.size(), 0).ok());
    const std::string staging = w->staging_path();
    auto pub = w->Publish();
    ASSERT_FALSE(pub.ok());
    EXPECT_EQ(pub.status().code(), Code::kCorrupt);
    EXPECT_THAT(pub.status().message(), HasSubstr("hash collision on " + h.hex()));
    EXPECT_EQ(pub.status().to_errno(), EIO);
    w.reset();
    EXPECT_FALSE(fs::exists(staging));
  }
  struct stat after;
  ASSERT_EQ(::stat(store_->ObjectPath(h).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(ReadWhole(store_->ObjectPath(h)), "first contents");
  EXPECT_EQ(ObjectFiles().size(), 1u);
  EXPECT_TRUE(StagingFiles().empty());
  // The same bytes still deduplicate under the filter.
  EXPECT_TRUE(PublishBytes("first contents").deduplicated);
}

TEST_F(ObjectStoreTest, WriterDestroyedBeforePublishLeavesNothing) {
  std::string staging;
  {
    auto w = NewWriter();
    ASSERT_TRUE(w->Write("abandoned", 9, 0).ok());
    staging = w->staging_path();
    EXPECT_TRUE(fs::exists(staging));
    EXPECT_EQ(fs::path(staging).parent_path(), fs::path(root_ + "/staging"));
    EXPECT_THAT(staging, ::testing::EndsWith(".tmp"));
  }
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_TRUE(StagingFiles().empty());
  EXPECT_TRUE(ObjectFiles().empty());
}

TEST_F(ObjectStoreTest, ModesOfFilesAndDirectories) {
  EXPECT_EQ(ModeOf(root_), 0700);
  EXPECT_EQ(ModeOf(root_ + "/objects"), 0700);
  EXPECT_EQ(ModeOf(root_ + "/staging"), 0700);
  auto w = NewWriter();
  EXPECT_EQ(ModeOf(w->staging_path()), 0600);
  ASSERT_TRUE(w->Write("mode", 4, 0).ok());
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  const std::string path = store_->ObjectPath(pub->hash);
  EXPECT_EQ(ModeOf(path), 0400);
  EXPECT_EQ(ModeOf(fs::path(path).parent_path()), 0700);
  EXPECT_EQ(ModeOf(fs::path(path).parent_path().parent_path()), 0700);
}

TEST_F(ObjectStoreTest, WriterIsSpentAfterPublish) {
  auto w = NewWriter();
  ASSERT_TRUE(w->Write("x", 1, 0).ok());
  auto first = w->Publish();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(w->published());
  EXPECT_EQ(w->Write("y", 1, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(w->Truncate(0).code(), Code::kInvalidArgument);
  // Publishing again (a retry after a failed catalog transaction) returns
  // the same object and changes nothing.
  auto again = w->Publish();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->hash, first->hash);
  EXPECT_EQ(again->size, 1u);
  w.reset();  // must not remove the published object
  EXPECT_EQ(ReadWhole(store_->ObjectPath(HashOf("x"))), "x");
}

TEST_F(ObjectStoreTest, VerifyDetectsFlippedByte) {
  std::string data = Pattern(100000, 5);
  PublishedObject pub = PublishBytes(data);
  EXPECT_TRUE(store_->Verify(pub.hash).ok());
  const std::string path = store_->ObjectPath(pub.hash);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char c = static_cast<char>(data[54321] ^ 0x40);
  ASSERT_EQ(::pwrite(fd, &c, 1, 54321), 1);
  ::close(fd);
  Status st = store_->Verify(pub.hash);
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_THAT(st.message(), HasSubstr(pub.hash.hex()));
  EXPECT_EQ(store_->Verify(HashOf("never stored")).code(), Code::kNotFound);
}

TEST_F(ObjectStoreTest, ForEachObjectListsExactlyThePublishedObjects) {
  std::map<std::string, uint64_t> expected;
  for (uint32_t i = 0; i < 20; ++i) {
    PublishedObject pub = PublishBytes(Pattern(i * 100, i));
    expected[pub.hash.hex()] = pub.size;
  }
  // Things in objects/ that are not objects.
  const ContentHash stray = HashOf("stray");
  const std::string sh = stray.hex();
  const std::string wrong_dir = root_ + "/objects/" + (sh.substr(0, 2) == "00" ? "11" : "00") + "/" + sh.substr(2, 2);
  fs::create_directories(wrong_dir);
  WriteWhole(wrong_dir + "/" + sh, "stray");                 // valid name, wrong prefix dir
  fs::create_directories(root_ + "/objects/ab/cd");
  WriteWhole(root_ + "/objects/ab/cd/notahash", "junk");     // not a hash
  WriteWhole(root_ + "/objects/ab/cd/ABCD" + sh.substr(4), "junk");  // upper case
  fs::create_directories(root_ + "/objects/lost+found");
  fs::create_directories(root_ + "/objects/ab/cd/" + "abcd" + sh.substr(4));  // a directory
  WriteWhole(root_ + "/objects/README", "not an object");

  std::map<std::string, uint64_t> seen;
  Status st = store_->ForEachObject([&](const ObjectInfo& info) {
    EXPECT_TRUE(seen.emplace(info.hash.hex(), info.size).second) << "listed twice";
    EXPECT_GT(info.mtime_sec, 0);
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(seen, expected);

  // A non-OK status from the callback stops the walk and is returned.
  int calls = 0;
  st = store_->ForEachObject([&](const ObjectInfo&) {
    ++calls;
    return Status(Code::kBusy, "stop");
  });
  EXPECT_EQ(st.code(), Code::kBusy);
  EXPECT_EQ(calls, 1);
}

TEST_F(ObjectStoreTest, OpenStatExistsRemove) {
  PublishedObject pub = PublishBytes("contents");
  EXPECT_TRUE(store_->Exists(pub.hash));
  auto info = store_->Stat(pub.hash);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 8u);
  EXPECT_EQ(info->hash, pub.hash);
  auto fd = store_->OpenObject(pub.hash);
  ASSERT_TRUE(fd.ok());
  char buf[16];
  EXPECT_EQ(::pread(fd->get(), buf, sizeof buf, 0), 8);
  EXPECT_EQ(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(::fcntl(fd->get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  fd->reset();

  ASSERT_TRUE(store_->Remove(pub.hash).ok());
  EXPECT_FALSE(store_->Exists(pub.hash));
  EXPECT_EQ(store_->OpenObject(pub.hash).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Stat(pub.hash).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Remove(pub.hash).code(), Code::kNotFound);
}

TEST_F(ObjectStoreTest, ObjectPathStaysInsideTheStore) {
  const ContentHash h = *ContentHash::FromHex("ABCDEF0123456789abcdef0123456789");
  EXPECT_EQ(store_->ObjectPath(h), root_ + "/objects/ab/cd/abcdef0123456789abcdef0123456789");
}

TEST(ObjectStoreHashTest, FromHexRejectsAnythingButThirtyTwoHexDigits) {
  EXPECT_FALSE(ContentHash::FromHex("../../etc/passwd"));
  EXPECT_FALSE(ContentHash::FromHex("../../etc/passwd0123456789abcdef"));  // 32 chars
  EXPECT_FALSE(ContentHash::FromHex(std::string(31, 'a')));
  EXPECT_FALSE(ContentHash::FromHex(std::string(33, 'a')));
  EXPECT_FALSE(ContentHash::FromHex(""));
  EXPECT_FALSE(ContentHash::FromHex("0123456789abcdef0123456789abcdeg"));
  EXPECT_FALSE(ContentHash::FromHex("0123456789abcdef0123456789abcde/"));
  EXPECT_FALSE(ContentHash::FromHex(std::string("0123456789abcdef0123456789abcde\0", 32)));
  auto h = ContentHash::FromHex("0123456789ABCDEF0123456789abcdef");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->hex(), "0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(IsHashHex("0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(IsHashHex("0123456789ABCDEF0123456789abcdef"));
}

TEST_F(ObjectStoreTest, CleanStagingRemovesOnlyOldStagingFiles) {
  const std::string crashed = root_ + "/staging/0123456789abcdef.tmp";
  WriteWhole(crashed, "left by a crash");
  struct timeval old_times[2];
  ::gettimeofday(&old_times[0], nullptr);
  old_times[0].tv_sec -= 2 * 3600;
  old_times[1] = old_times[0];
  ASSERT_EQ(::utimes(crashed.c_str(), old_times), 0);
  WriteWhole(root_ + "/staging/keep.me", "not a staging file");
  ASSERT_EQ(::utimes((root_ + "/staging/keep.me").c_str(), old_times), 0);

  auto live = NewWriter();
  ASSERT_TRUE(live->Write("live", 4, 0).ok());

  auto stale = store_->StaleStaging(3600);
  ASSERT_TRUE(stale.ok());
  EXPECT_THAT(*stale, ::testing::ElementsAre(crashed));

  auto removed = store_->CleanStaging(3600);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(fs::exists(crashed));
  EXPECT_TRUE(fs::exists(live->staging_path()));
  EXPECT_TRUE(fs::exists(root_ + "/staging/keep.me"));
  EXPECT_TRUE(live->Publish().ok());
}

TEST_F(ObjectStoreTest, OpenCreatesMissingParentsAndKeepsAnExistingRootMode) {
  auto nested = ObjectStore::Open(dir_ + "/a/b/c/");
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  EXPECT_EQ((*nested)->root(), dir_ + "/a/b/c");
  EXPECT_TRUE(fs::is_directory(dir_ + "/a/b/c/objects"));
  EXPECT_TRUE(fs::is_directory(dir_ + "/a/b/c/staging"));

  const std::string mine = dir_ + "/mine";
  ASSERT_EQ(::mkdir(mine.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(mine.c_str(), 0755), 0);
  auto opened = ObjectStore::Open(mine);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(ModeOf(mine), 0755);
  EXPECT_EQ(ModeOf(mine + "/objects"), 0700);

  // Reopening a store finds its objects.
  PublishedObject pub = PublishBytes("persisted");
  auto again = ObjectStore::Open(root_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->Exists(pub.hash));

  WriteWhole(dir_ + "/file", "x");
  EXPECT_FALSE(ObjectStore::Open(dir_ + "/file").ok());
  EXPECT_EQ(ObjectStore::Open("").status().code(), Code::kInvalidArgument);
}

TEST_F(ObjectStoreTest, CopyFromAnObject) {
  const std::string data = Pattern((5 << 20) + 333, 9);
  PublishedObject orig = PublishBytes(data, 1 << 20);
  auto fd = store_->OpenObject(orig.hash);
  ASSERT_TRUE(fd.ok());

  {  // plain copy: same object again
    auto w = NewWriter();
    ASSERT_TRUE(w->CopyFrom(fd->get(), data.size()).ok());
    EXPECT_EQ(w->size(), data.size());
    auto pub = w->Publish();
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(pub->hash, orig.hash);
    EXPECT_TRUE(pub->deduplicated);
  }
  {  // copy then append: the hash continues in order
    auto w = NewWriter();
    ASSERT_TRUE(w->CopyFrom(fd->get(), data.size()).ok());
    ASSERT_TRUE(w->Write("appended", 8, data.size()).ok());
    auto pub = w->Publish();
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(pub->hash, HashOf(data + "appended"));
  }
  {  // copy then overwrite in the middle (copy-on-write of an edit)
    auto w = NewWriter();
    ASSERT_TRUE(w->CopyFrom(fd->get(), data.size()).ok());
    ASSERT_TRUE(w->Write("EDIT", 4, 1000).ok());
    std::string edited = data;
    edited.replace(1000, 4, "EDIT");
    auto pub = w->Publish();
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(pub->hash, HashOf(edited));
  }
  {  // a copy into a non-empty writer overwrites from offset 0
    auto w = NewWriter();
    ASSERT_TRUE(w->Write("prefix", 6, 0).ok());
    ASSERT_TRUE(w->CopyFrom(fd->get(), data.size()).ok());
    auto pub = w->Publish();
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(pub->hash, orig.hash);
  }
  {  // a source shorter than announced is an error, not a short object
    auto w = NewWriter();
    Status st = w->CopyFrom(fd->get(), data.size() + 10);
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Code::kIo);
  }
  fd->reset();
}

TEST_F(ObjectStoreTest, CopyFromAnotherFilesystemFallsBackToReadWrite) {
  // copy_file_range refuses most cross-filesystem pairs (EXDEV), which
  // exercises the pread/pwrite path.
  struct stat shm, store;
  if (::stat("/dev/shm", &shm) != 0 || ::stat(root_.c_str(), &store) != 0 || shm.st_dev == store.st_dev)
    GTEST_SKIP() << "no /dev/shm on a filesystem other than the store's";
  char tmpl[] = "/dev/shm/samplefs_os_test.XXXXXX";
  int src = ::mkstemp(tmpl);
  ASSERT_GE(src, 0);
  ::unlink(tmpl);
  const std::string data = Pattern((2 << 20) + 17, 4);
  ASSERT_EQ(::pwrite(src, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  auto w = NewWriter();
  Status st = w->CopyFrom(src, data.size());
  ::close(src);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->hash, HashOf(data));
  EXPECT_EQ(ReadWhole(store_->ObjectPath(pub->hash)), data);
}

TEST_F(ObjectStoreTest, ConcurrentPublishersShareOneObjectPerContent) {
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string data = Pattern(10000 + i, static_cast<uint32_t>(i % 10));  // each thread publishes the same 25 contents
        auto w = store_->NewWriter();
        if (!w.ok()) { errors[t].push_back(w.status().ToString()); continue; }
        Status st = (*w)->Write(data.data(), data.size(), 0);
        if (!st.ok()) errors[t].push_back(st.ToString());
        auto pub = (*w)->Publish();
        if (!pub.ok()) errors[t].push_back(pub.status().ToString());
        else if (pub->hash != HashOf(data)) errors[t].push_back("wrong hash");
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) EXPECT_THAT(e, ::testing::IsEmpty());
  std::set<std::string> distinct;
  for (int i = 0; i < kPerThread; ++i) distinct.insert(HashOf(Pattern(10000 + i, i % 10)).hex());
  EXPECT_EQ(ObjectFiles().size(), distinct.size());
  EXPECT_TRUE(StagingFiles().empty());
}

TEST_F(ObjectStoreTest, SpaceReportsTheFilesystem) {
  uint64_t free_bytes = 0, total = 0;
  ASSERT_TRUE(store_->Space(&free_bytes, &total).ok());
  EXPECT_GT(total, 0u);
  EXPECT_LE(free_bytes, total);
}

// Peak resident set (VmHWM) in KiB; -1 if unknown.
long PeakRssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  struct rusage ru;
  return ::getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0) so growth is measured from
// here rather than from the largest earlier test.
void ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

TEST_F(ObjectStoreTest, BigStreamKeepsMemoryFlat) {
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  constexpr uint64_t kTotal = uint64_t{3} << 30;
  uint64_t free_bytes = 0;
  ASSERT_TRUE(store_->Space(&free_bytes, nullptr).ok());
  if (free_bytes < kTotal + (uint64_t{1} << 30)) GTEST_SKIP() << "needs 4 GiB free in " << TempBase();

  ResetPeakRss();
  const long rss_before = PeakRssKib();
  const auto start = std::chrono::steady_clock::now();

  std::vector<uint64_t> chunk(kChunk / sizeof(uint64_t));
  XXH3_state_t* expected_state = XXH3_createState();
  ASSERT_NE(expected_state, nullptr);
  XXH3_128bits_reset(expected_state);
  auto w = NewWriter();
  for (uint64_t off = 0, i = 0; off < kTotal; off += kChunk, ++i) {
    // A counter pattern: cheap, deterministic, and every chunk differs.
    for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = (i << 32) | j;
    XXH3_128bits_update(expected_state, chunk.data(), kChunk);
    Status st = w->Write(chunk.data(), kChunk, off);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto pub = w->Publish();
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(expected_state));
  XXH3_freeState(expected_state);
  ContentHash expected;
  std::memcpy(expected.bytes.data(), canon.digest, 16);

  EXPECT_EQ(pub->hash, expected);
  EXPECT_EQ(pub->size, kTotal);
  auto info = store_->Stat(pub->hash);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, kTotal);

  const long rss_after = PeakRssKib();
  ASSERT_GT(rss_before, 0);
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << "peak RSS grew by " << (rss_after - rss_before) << " KiB";
  std::cout << "[ info     ] 3 GiB written + published in " << seconds << " s ("
            << (kTotal / (1 << 20)) / seconds << " MiB/s), peak RSS growth " << (rss_after - rss_before)
            << " KiB\n";
}

// Pages of `path` in the page cache, and its size in pages.
std::pair<size_t, size_t> ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {0, 0};
  struct stat st;
  ::fstat(fd, &st);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return {0, pages};
  std::vector<unsigned char> vec(pages);
  size_t resident = 0;
  if (::mincore(map, static_cast<size_t>(st.st_size), vec.data()) == 0)
    for (unsigned char v : vec) resident += v & 1;
  ::munmap(map, static_cast<size_t>(st.st_size));
  return {resident, pages};
}

TEST_F(ObjectStoreTest, LargeObjectsLeaveThePageCacheOncePublished) {
  struct statfs sfs;
  ASSERT_EQ(::statfs(root_.c_str(), &sfs), 0);
  if (sfs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "on tmpfs the page cache is the data";
  std::string big(80u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  const std::string small(1u << 20, 's');
  PublishedObject b = PublishBytes(big, 1u << 20);
  PublishedObject s = PublishBytes(small, 1u << 20);
  auto [big_resident, big_pages] = ResidentPages(store_->ObjectPath(b.hash));
  auto [small_resident, small_pages] = ResidentPages(store_->ObjectPath(s.hash));
  ASSERT_EQ(big_pages, big.size() / 4096);
  // Dropped (DropBehind) but for pages something else touched meanwhile.
  EXPECT_LT(big_resident, big_pages / 10) << big_resident << " of " << big_pages << " pages still cached";
  EXPECT_EQ(small_resident, small_pages) << "a small object stays cached";
  EXPECT_EQ(ReadWhole(store_->ObjectPath(b.hash)), big);  // and reads back from disk
}

TEST_F(ObjectStoreTest, WriteBehindNeedsTheConfiguredFreeSpace) {
  uint64_t free_bytes = 0;
  ASSERT_TRUE(store_->Space(&free_bytes, nullptr).ok());
  ASSERT_GT(free_bytes, 4096u);
  store_->SetWriteBehindMinFree(0);
  EXPECT_TRUE(store_->WriteBehindRoom()) << "0: whatever the free space";
  store_->SetWriteBehindMinFree(ObjectStore::kWriteBehindOff);
  EXPECT_FALSE(store_->WriteBehindRoom()) << "off";
  store_->SetWriteBehindMinFree(4096);
  EXPECT_TRUE(store_->WriteBehindRoom()) << "a disk with room";
  // More than the disk has: the same measurement (cached for 100 ms)
  // now says no.
  store_->SetWriteBehindMinFree(free_bytes * 4);
  EXPECT_FALSE(store_->WriteBehindRoom()) << free_bytes << " bytes free";
}

}  // namespace
}  // namespace samplefs
