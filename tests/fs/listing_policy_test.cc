// ListingPolicy (fs/filesystem.h): folder listings are lean until a file
// lookup, then rich for kRichWindow after the latest one; and the inode
// numbers a lean listing gives without a node.
#include <gtest/gtest.h>

#include "fs/filesystem.h"

namespace samplefs::fs {
namespace {

constexpr int64_t kSec = 1000000000;

TEST(ListingPolicyTest, LeanUntilAFileIsLookedUp) {
  ListingPolicy p;
  EXPECT_FALSE(p.Rich(0));
  EXPECT_FALSE(p.Rich(1000 * kSec));
}

TEST(ListingPolicyTest, RichForTheWindowAfterTheLatestLookup) {
  ListingPolicy p;
  p.FileLookedUp(100 * kSec);
  EXPECT_TRUE(p.Rich(100 * kSec));
  EXPECT_TRUE(p.Rich(100 * kSec + ListingPolicy::kRichWindow - 1));
  EXPECT_FALSE(p.Rich(100 * kSec + ListingPolicy::kRichWindow));
  // A later lookup extends it; an `ls -l` after a lean period re-enters it.
  p.FileLookedUp(120 * kSec);
  EXPECT_TRUE(p.Rich(100 * kSec + ListingPolicy::kRichWindow + kSec));
  EXPECT_FALSE(p.Rich(120 * kSec + ListingPolicy::kRichWindow));
}

TEST(InodeNumberTest, FilesAndSymlinksByEntryOthersByNode) {
  NodeSpec file;
  file.kind = NodeKind::kFile;
  file.record_id = 42;
  NodeSpec link = file;
  link.kind = NodeKind::kSymlink;
  NodeSpec folder = file;
  folder.kind = NodeKind::kFolder;
  // Independent of the node (lean listings have none), equal for every
  // path of the file, never in the range of node ids.
  EXPECT_EQ(InodeNumber(0, file), kFileInoBase + 42);
  EXPECT_EQ(InodeNumber(7, file), InodeNumber(9, file));
  EXPECT_EQ(InodeNumber(7, link), kFileInoBase + 42);
  EXPECT_EQ(InodeNumber(7, folder), 7u);
  EXPECT_GT(InodeNumber(0, file), uint64_t{1} << 40);
}

}  // namespace
}  // namespace samplefs::fs
