// Unit tests of the seal log (catalog/seal_log.h) and of the recovery of
// what a dead daemon sealed (catalog/recovery.h): appends, done marks, a
// torn tail, a damaged record, the log kept small, and a recovery of a
// session holding a log and seal files of an older daemon.
#include "catalog/seal_log.h"

#include <fcntl.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/object_store.h"
#include "catalog/recovery.h"
#include "catalog_testing.h"

namespace samplefs {
namespace {

namespace fs = std::filesystem;


using testing_util::ReadWhole;

void WriteWhole(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

Seal SealOf(int64_t entry, const std::string& data, int64_t sealed_ns) {
  Seal s;
  s.entry_id = entry;
  s.hash = ContentHash::Of(data.data(), data.size());
  s.size = data.size();
  s.mtime_ns = 1700000000000000000 + sealed_ns;
  s.sealed_ns = sealed_ns;
  s.path = "files/f" + std::to_string(entry);
  return s;
}

class SealLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir("samplefs_seal_test");
    ASSERT_FALSE(dir_.empty()) << std::strerror(errno);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
};

TEST_F(SealLogTest, TheLatestLineOfANameSaysWhatItIs) {
  SealLog log(dir_);
  ASSERT_TRUE(log.Append("a.tmp", SealOf(1, "one", 1), false).ok());
  ASSERT_TRUE(log.Append("b.tmp", SealOf(2, "two", 2), false).ok());
  ASSERT_TRUE(log.Append("b.tmp", SealOf(2, "two, longer", 3), true).ok());  // re-sealed (fsync)
  ASSERT_TRUE(log.Append("c.tmp", SealOf(3, "three", 4), false).ok());
  log.Done("a.tmp");
  log.Done("never-sealed.tmp");  // nothing to mark
  EXPECT_EQ(log.live(), 2u);

  const std::string text = ReadWhole(log.path());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 5) << text;  // 4 seals, 1 done mark
  SealLog::Parsed p = SealLog::Parse(text);
  EXPECT_TRUE(p.damaged.empty());
  EXPECT_FALSE(p.torn_tail);
  ASSERT_EQ(p.live.size(), 2u);
  EXPECT_EQ(p.live.count("a.tmp"), 0u);
  EXPECT_EQ(p.live.at("b.tmp").size, std::string("two, longer").size());
  EXPECT_EQ(p.live.at("b.tmp").hash, ContentHash::Of("two, longer", 11));
  EXPECT_EQ(p.live.at("b.tmp").sealed_ns, 3);
  EXPECT_EQ(p.live.at("c.tmp").entry_id, 3);
  EXPECT_EQ(p.live.at("c.tmp").path, "files/f3");
}

TEST_F(SealLogTest, ATornTailIsIgnoredAndADamagedRecordReported) {
  std::string text = SealLog::SealLine("a.tmp", SealOf(1, "one", 1)) + SealLog::SealLine("b.tmp", SealOf(2, "two", 2)) +
                     SealLog::SealLine("c.tmp", SealOf(3, "three", 3));
  // The last line cut short (a power cut in the middle of an append).
  std::string torn = text.substr(0, text.size() - 20);
  SealLog::Parsed p = SealLog::Parse(torn);
  EXPECT_TRUE(p.torn_tail);
  EXPECT_TRUE(p.damaged.empty());
  EXPECT_EQ(p.live.size(), 2u);
  EXPECT_EQ(p.live.count("c.tmp"), 0u);
  // A whole last line whose bytes no longer match its checksum: a tail too.
  std::string bad_last = text;
  bad_last[bad_last.size() - 30] ^= 1;
  p = SealLog::Parse(bad_last);
  EXPECT_TRUE(p.torn_tail);
  EXPECT_EQ(p.live.size(), 2u);

  // A byte of the middle record flipped: reported at its offset, the
  // records around it still read.
  const size_t second = text.find('\n') + 1;
  std::string damaged = text;
  damaged[second + 40] ^= 0x20;
  p = SealLog::Parse(damaged);
  EXPECT_FALSE(p.torn_tail);
  ASSERT_EQ(p.damaged.size(), 1u);
  EXPECT_EQ(p.damaged[0], second);
  EXPECT_EQ(p.live.size(), 2u);
  EXPECT_EQ(p.live.count("b.tmp"), 0u);
  // A line whose checksum does not match what follows: damaged.
  p = SealLog::Parse("0000000000000000 {\"staging\":\"x.tmp\"}\n" + text);
  EXPECT_EQ(p.damaged.size(), 1u);
  EXPECT_EQ(p.live.size(), 3u);
  // Empty text, and zeros (a file extended by a power cut before its data).
  EXPECT_TRUE(SealLog::Parse("").live.empty());
  p = SealLog::Parse(text + std::string(4096, '\0'));
  EXPECT_TRUE(p.torn_tail);
  EXPECT_EQ(p.live.size(), 3u);
}

TEST_F(SealLogTest, StaysSmall) {
  SealLog log(dir_);
  // Everything done: truncated once past 64 KiB.
  for (int i = 0; i < 2000; ++i) {
    const std::string name = std::to_string(i) + ".tmp";
    ASSERT_TRUE(log.Append(name, SealOf(i + 1, "x" + std::to_string(i), i), false).ok());
    log.Done(name);
  }
  EXPECT_LT(fs::file_size(log.path()), uint64_t{64} << 10);
  // One seal live throughout: rewritten with the live seal past 1 MiB.
  ASSERT_TRUE(log.Append("keep.tmp", SealOf(99999, "kept", 1), true).ok());
  uint64_t largest = 0;
  for (int i = 0; i < 8000; ++i) {
    const std::string name = "n" + std::to_string(i) + ".tmp";
    ASSERT_TRUE(log.Append(name, SealOf(i + 1, "y" + std::to_string(i), i + 2), false).ok());
    log.Done(name);
    largest = std::max<uint64_t>(largest, fs::file_size(log.path()));
  }
  EXPECT_LE(largest, (uint64_t{1} << 20) + 1024);
  EXPECT_FALSE(fs::exists(log.path() + ".new"));
  SealLog::Parsed p = SealLog::Parse(ReadWhole(log.path()));
  ASSERT_EQ(p.live.size(), 1u);
  EXPECT_EQ(p.live.at("keep.tmp").entry_id, 99999);
  EXPECT_TRUE(p.damaged.empty());
  // Appends go on in the rewritten log.
  ASSERT_TRUE(log.Append("after.tmp", SealOf(5, "after", 99999), false).ok());
  EXPECT_EQ(SealLog::Parse(ReadWhole(log.path())).live.size(), 2u);
}

// A store with a catalog: a mount that dies (its writers leaked, its store
// closed without ending their versions) and the next one's recovery.
class RecoveryTest : public SealLogTest {
 protected:
  void SetUp() override {
    SealLogTest::SetUp();
    catalog_ = std::move(Catalog::OpenUrl(dir_ + "/catalog.db")).value();
    Species sp;
    sp.name = "HeLa";
    sp.species = "Human";
    sp = std::move(catalog_->CreateSpecies(sp)).value();
    Sample sa;
    sa.name = "P1";
    sa.species_id = sp.id;
    sa = std::move(catalog_->CreateSample(sa)).value();
    Slide sl;
    sl.reference = "S1";
    sl.sample_id = sa.id;
    sl = std::move(catalog_->CreateSlide(sl)).value();
    Image im;
    im.name = "i1";
    im.slide_id = sl.id;
    im = std::move(catalog_->CreateImage(im)).value();
    root_ = std::move(catalog_->FilesRoot(im.id)).value();
  }
  void TearDown() override {
    catalog_.reset();
    SealLogTest::TearDown();
  }
  Entry NewFile(const std::string& name) {
    Entry e;
    e.parent_id = root_.id;
    e.name = name;
    e.type = EntryType::kFile;
    e.hash = ContentHash::Of("", 0).hex();
    return std::move(catalog_->CreateEntry(e)).value();
  }
  std::unique_ptr<ObjectStore> OpenStore() { return std::move(ObjectStore::Open(dir_ + "/store")).value(); }
  // A writer a killed daemon leaves behind: never destroyed (its
  // destructor would unlink the staging file), and LeakSanitizer is told so.
  static void Abandon(std::unique_ptr<ObjectWriter> w) {
    ObjectWriter* left = w.release();
#if defined(__SANITIZE_ADDRESS__)
    __lsan_ignore_object(left);
#else
    (void)left;
#endif
  }
  // Writes `data` and seals it as a close() does; the writer is abandoned,
  // as a killed daemon leaves it. Returns its staging path.
  std::string SealedWriter(ObjectStore& store, const Entry& e, const std::string& data, int64_t sealed_ns,
                           bool durable = false) {
    auto w = std::move(store.NewWriter()).value();
    EXPECT_TRUE(w->Write(data.data(), data.size(), 0).ok());
    Seal s = SealOf(e.id, data, sealed_ns);
    s.path = e.name;
    EXPECT_TRUE(w->WriteSeal(s, durable).ok());
    std::string path = w->staging_path();
    Abandon(std::move(w));
    return path;
  }
  std::string SessionDir() {
    for (const auto& d : fs::directory_iterator(dir_ + "/store/staging"))
      if (d.is_directory()) return d.path().string();
    return "";
  }
  std::unique_ptr<Catalog> catalog_;
  Entry root_;
};

TEST_F(RecoveryTest, ALogAndOldSealFilesAreRecoveredOldestFirst) {
  Entry a = NewFile("a.tif"), b = NewFile("b.tif"), c = NewFile("c.tif"), d = NewFile("d.tif"),
        old = NewFile("old.tif");
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->ClaimSession().ok());
    SealedWriter(*store, a, "a, first version", 10);
    SealedWriter(*store, a, "a, second version", 20);  // the later close wins
    SealedWriter(*store, b, "b, durable", 15, true);
    // Recorded by its commit: done, not recovered.
    {
      auto w = std::move(store->NewWriter()).value();
      ASSERT_TRUE(w->Write("c", 1, 0).ok());
      ASSERT_TRUE(w->WriteSeal(SealOf(c.id, "c", 16), false).ok());
      ASSERT_TRUE(w->Publish().ok());
      w->RemoveSeal();
    }
    // Never closed: removed, never recorded.
    auto open = std::move(store->NewWriter()).value();
    ASSERT_TRUE(open->Write("never", 5, 0).ok());
    Abandon(std::move(open));
    // Changed after its seal: dropped and reported.
    std::string changed = SealedWriter(*store, d, "d as sealed", 17);
    WriteWhole(changed, "d, changed!");
    // An older daemon's seal file beside its staging file.
    const std::string old_staging = SessionDir() + "/0123456789abcdef0123456789abcdef.tmp";
    WriteWhole(old_staging, "written by an older daemon");
    Seal os = SealOf(old.id, "written by an older daemon", 5);
    WriteWhole(old_staging + ".seal", os.Encode());
  }  // the mount ends; its sealed versions stay for the next one
  ASSERT_FALSE(SessionDir().empty());
  EXPECT_TRUE(fs::exists(SessionDir() + "/seals.log"));

  auto store = OpenStore();
  auto report = RecoverSealedVersions(*catalog_, *store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  // a's two versions (each its own staging file), b, old's.
  EXPECT_EQ(report->committed, 4) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(report->dropped, 1);
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("d.tif: its bytes changed after it was sealed"), std::string::npos)
      << report->problems[0];
  auto hash_of = [](const std::string& s) { return ContentHash::Of(s.data(), s.size()).hex(); };
  EXPECT_EQ(std::move(catalog_->EntryById(a.id)).value().hash, hash_of("a, second version"));
  EXPECT_EQ(std::move(catalog_->EntryById(b.id)).value().hash, hash_of("b, durable"));
  EXPECT_EQ(std::move(catalog_->EntryById(old.id)).value().hash, hash_of("written by an older daemon"));
  EXPECT_EQ(std::move(catalog_->EntryById(c.id)).value().size, 0u);  // done: left as it was
  EXPECT_EQ(std::move(catalog_->EntryById(d.id)).value().size, 0u);
  EXPECT_TRUE(store->Exists(*ContentHash::FromHex(hash_of("a, second version"))));
  EXPECT_EQ(SessionDir(), "") << "the dead session is removed once recovered";
}

TEST_F(RecoveryTest, ADamagedLogRecoversWhatItCanAndReportsTheRest) {
  Entry a = NewFile("a.tif"), b = NewFile("b.tif"), c = NewFile("c.tif");
  std::string log_path;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->ClaimSession().ok());
    SealedWriter(*store, a, "a sealed", 1);
    SealedWriter(*store, b, "b sealed", 2);
    SealedWriter(*store, c, "c sealed", 3);
    log_path = SessionDir() + "/seals.log";
  }
  // b's record damaged, and a torn record after c's.
  std::string text = ReadWhole(log_path);
  const size_t second = text.find('\n') + 1;
  text[second + 50] ^= 0x01;
  text += SealLog::SealLine("zz.tmp", SealOf(a.id, "x", 4)).substr(0, 30);
  WriteWhole(log_path, text);

  auto store = OpenStore();
  auto report = RecoverSealedVersions(*catalog_, *store);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->committed, 2) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(report->dropped, 1);
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("seals.log: a damaged record at byte " + std::to_string(second)),
            std::string::npos)
      << report->problems[0];
  EXPECT_EQ(std::move(catalog_->EntryById(a.id)).value().size, 8u);
  EXPECT_EQ(std::move(catalog_->EntryById(b.id)).value().size, 0u);
  EXPECT_EQ(std::move(catalog_->EntryById(c.id)).value().size, 8u);
  EXPECT_EQ(report->never_closed, 1) << "b's staging file, its seal unreadable";
}

}  // namespace
}  // namespace samplefs
