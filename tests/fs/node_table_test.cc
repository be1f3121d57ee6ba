// Unit tests of NodeTable (fs/node_table.h): inode numbers per (parent,
// name), from a counter that never reuses a number, kept while the kernel
// holds lookups.
#include "fs/node_table.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using testing_util::SpecOf;

TEST(NodeTableTest, RootExistsAndIsNeverForgotten) {
  NodeTable t;
  auto root = t.Get(FUSE_ROOT_ID);
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->spec.kind, NodeKind::kRoot);
  EXPECT_EQ(root->ino, FUSE_ROOT_ID);
  t.Forget(FUSE_ROOT_ID, 1000);
  EXPECT_TRUE(t.Get(FUSE_ROOT_ID).has_value());
  EXPECT_EQ(t.size(), 1u);
}

TEST(NodeTableTest, IdsComeFromACounterAndAreNeverReused) {
  NodeTable t;
  std::set<fuse_ino_t> seen{FUSE_ROOT_ID};
  fuse_ino_t last = FUSE_ROOT_ID;
  for (int round = 0; round < 50; ++round) {
    // The same name, over and over, created and forgotten: every time a new
    // number, so a stale inode held by the kernel never aliases a new node.
    Node n = t.Resolve(FUSE_ROOT_ID, "species", SpecOf(NodeKind::kSpeciesView), 1);
    EXPECT_GT(n.ino, last);
    EXPECT_TRUE(seen.insert(n.ino).second) << "inode " << n.ino << " reused";
    last = n.ino;
    t.Forget(n.ino, 1);
    EXPECT_FALSE(t.Get(n.ino).has_value());
  }
  EXPECT_EQ(t.size(), 1u);
}

TEST(NodeTableTest, SameNameAndSpecGiveTheSameInodeAndAddLookups) {
  NodeTable t;
  NodeSpec sp = SpecOf(NodeKind::kSpecies, 7);
  Node a = t.Resolve(FUSE_ROOT_ID, "HeLa", sp, 1);
  Node b = t.Resolve(FUSE_ROOT_ID, "HeLa", sp, 1);
  Node c = t.Resolve(FUSE_ROOT_ID, "HeLa", sp, 0);  // plain readdir: no reference
  EXPECT_EQ(a.ino, b.ino);
  EXPECT_EQ(a.ino, c.ino);
  EXPECT_EQ(a.nlookup, 1u);
  EXPECT_EQ(b.nlookup, 2u);
  EXPECT_EQ(c.nlookup, 2u);
  EXPECT_EQ(t.Get(a.ino)->nlookup, 2u);
  EXPECT_EQ(t.Get(a.ino)->name, "HeLa");
  EXPECT_EQ(t.Get(a.ino)->parent, FUSE_ROOT_ID);
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "HeLa"), a.ino);
}

TEST(NodeTableTest, ADirectoryReachedByTwoPathsHasTwoInodes) {
  NodeTable t;
  Node sp = t.Resolve(FUSE_ROOT_ID, "species", SpecOf(NodeKind::kSpeciesView), 1);
  Node dy = t.Resolve(FUSE_ROOT_ID, "dyes", SpecOf(NodeKind::kDyesView), 1);
  NodeSpec slide = SpecOf(NodeKind::kSlide, 3);
  Node a = t.Resolve(sp.ino, "S1", slide, 1);
  Node b = t.Resolve(dy.ino, "S1", slide, 1);
  EXPECT_NE(a.ino, b.ino);
  EXPECT_EQ(t.Get(a.ino)->spec, t.Get(b.ino)->spec);
}

TEST(NodeTableTest, ADifferentSpecAtTheSameNameGetsANewInodeAndTheOldLivesUntilForgotten) {
  NodeTable t;
  Node old_node = t.Resolve(FUSE_ROOT_ID, "x", SpecOf(NodeKind::kSpecies, 1), 2);
  Node new_node = t.Resolve(FUSE_ROOT_ID, "x", SpecOf(NodeKind::kSpecies, 2), 1);
  EXPECT_NE(old_node.ino, new_node.ino);
  EXPECT_GT(new_node.ino, old_node.ino);
  EXPECT_EQ(new_node.nlookup, 1u);
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "x"), new_node.ino);
  // The old node is still there for the kernel's outstanding references.
  auto old_now = t.Get(old_node.ino);
  ASSERT_TRUE(old_now.has_value());
  EXPECT_EQ(old_now->spec.record_id, 1);
  EXPECT_EQ(old_now->nlookup, 2u);
  // Forgetting the old one must not unbind the name from the new one.
  t.Forget(old_node.ino, 2);
  EXPECT_FALSE(t.Get(old_node.ino).has_value());
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "x"), new_node.ino);
  EXPECT_TRUE(t.Get(new_node.ino).has_value());
  // And going back to the first spec makes yet another inode.
  Node third = t.Resolve(FUSE_ROOT_ID, "x", SpecOf(NodeKind::kSpecies, 1), 1);
  EXPECT_NE(third.ino, old_node.ino);
  EXPECT_NE(third.ino, new_node.ino);
}

TEST(NodeTableTest, ForgetCountsDownAndRemovesAtZero) {
  NodeTable t;
  NodeSpec sp = SpecOf(NodeKind::kDye, 4);
  Node n = t.Resolve(FUSE_ROOT_ID, "A647", sp, 3);
  t.Forget(n.ino, 1);
  ASSERT_TRUE(t.Get(n.ino).has_value());
  EXPECT_EQ(t.Get(n.ino)->nlookup, 2u);
  t.Forget(n.ino, 1);
  EXPECT_EQ(t.Get(n.ino)->nlookup, 1u);
  t.Forget(n.ino, 1);
  EXPECT_FALSE(t.Get(n.ino).has_value());
  EXPECT_FALSE(t.Find(FUSE_ROOT_ID, "A647").has_value());
  EXPECT_EQ(t.size(), 1u);
  // A forget of more than is held, or of an unknown inode, is harmless.
  Node m = t.Resolve(FUSE_ROOT_ID, "A647", sp, 1);
  EXPECT_GT(m.ino, n.ino);
  t.Forget(m.ino, 99);
  EXPECT_FALSE(t.Get(m.ino).has_value());
  t.Forget(m.ino, 1);
  t.Forget(123456, 1);
  EXPECT_EQ(t.size(), 1u);
}

TEST(NodeTableTest, RenameRebindsTheNode) {
  NodeTable t;
  Node a = t.Resolve(FUSE_ROOT_ID, "dir_a", SpecOf(NodeKind::kFolder, 1), 1);
  Node b = t.Resolve(FUSE_ROOT_ID, "dir_b", SpecOf(NodeKind::kFolder, 2), 1);
  Node f = t.Resolve(a.ino, "f.txt", SpecOf(NodeKind::kFile, 3), 1);
  EXPECT_EQ(t.Rename(a.ino, "f.txt", b.ino, "g.txt"), f.ino);
  EXPECT_FALSE(t.Find(a.ino, "f.txt").has_value());
  EXPECT_EQ(t.Find(b.ino, "g.txt"), f.ino);
  auto moved = t.Get(f.ino);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->parent, b.ino);
  EXPECT_EQ(moved->name, "g.txt");
  EXPECT_EQ(moved->nlookup, 1u);
  // Looking up the new name finds the moved inode.
  EXPECT_EQ(t.Resolve(b.ino, "g.txt", SpecOf(NodeKind::kFile, 3), 1).ino, f.ino);
  // Children() sees the move.
  EXPECT_TRUE(t.Children(a.ino).empty());
  ASSERT_EQ(t.Children(b.ino).size(), 1u);
  EXPECT_EQ(t.Children(b.ino)[0].ino, f.ino);
}

TEST(NodeTableTest, RenameOntoABoundNameUnbindsTheReplacedNode) {
  NodeTable t;
  Node src = t.Resolve(FUSE_ROOT_ID, "src", SpecOf(NodeKind::kFile, 1), 1);
  Node dst = t.Resolve(FUSE_ROOT_ID, "dst", SpecOf(NodeKind::kFile, 2), 1);
  EXPECT_EQ(t.Rename(FUSE_ROOT_ID, "src", FUSE_ROOT_ID, "dst"), src.ino);
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "dst"), src.ino);
  EXPECT_FALSE(t.Find(FUSE_ROOT_ID, "src").has_value());
  // The replaced node lives on until forgotten...
  ASSERT_TRUE(t.Get(dst.ino).has_value());
  // ...and forgetting it leaves the moved node's binding alone.
  t.Forget(dst.ino, 1);
  EXPECT_FALSE(t.Get(dst.ino).has_value());
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "dst"), src.ino);
  t.Forget(src.ino, 1);
  EXPECT_FALSE(t.Find(FUSE_ROOT_ID, "dst").has_value());
  EXPECT_EQ(t.size(), 1u);
}

TEST(NodeTableTest, UnbindKeepsTheNodeUntilForgotten) {
  NodeTable t;
  Node n = t.Resolve(FUSE_ROOT_ID, "gone", SpecOf(NodeKind::kFile, 1), 1);
  t.Unbind(FUSE_ROOT_ID, "gone");
  EXPECT_FALSE(t.Find(FUSE_ROOT_ID, "gone").has_value());
  ASSERT_TRUE(t.Get(n.ino).has_value());  // an open file keeps working
  // A new record created at the same name (ids are never reused) gets a new
  // inode, since the name was unbound.
  Node again = t.Resolve(FUSE_ROOT_ID, "gone", SpecOf(NodeKind::kFile, 2), 1);
  EXPECT_NE(again.ino, n.ino);
  // Forgetting the unbound node does not disturb the new binding.
  t.Forget(n.ino, 1);
  EXPECT_FALSE(t.Get(n.ino).has_value());
  EXPECT_EQ(t.Find(FUSE_ROOT_ID, "gone"), again.ino);
  // Unbinding a name that is not bound is harmless.
  t.Unbind(FUSE_ROOT_ID, "never");
  EXPECT_EQ(t.size(), 2u);
}

TEST(NodeTableTest, AFileHasOneInodeWhateverPathReachesIt) {
  NodeTable t;
  Node d1 = t.Resolve(FUSE_ROOT_ID, "d", SpecOf(NodeKind::kFolder, 7), 1);
  Node f = t.Resolve(d1.ino, "f", SpecOf(NodeKind::kFile, 1), 1);
  // The kernel drops the directory's dentry and looks it up again: the
  // directory gets a new inode (directories cannot have two parents), but
  // the file, still open through the old one, keeps its inode.
  Node d2 = t.Resolve(FUSE_ROOT_ID, "other", SpecOf(NodeKind::kFolder, 7), 1);
  EXPECT_NE(d2.ino, d1.ino);
  Node f2 = t.Resolve(d2.ino, "f", SpecOf(NodeKind::kFile, 1), 1);
  EXPECT_EQ(f2.ino, f.ino);
  EXPECT_EQ(t.Get(f.ino)->nlookup, 2u);
  EXPECT_EQ(t.Find(d1.ino, "f"), f.ino);
  EXPECT_EQ(t.Find(d2.ino, "f"), f.ino);
  EXPECT_EQ(t.Get(f.ino)->links.size(), 2u);
  // Renaming one name moves that name only.
  EXPECT_EQ(t.Rename(d2.ino, "f", d2.ino, "g"), f.ino);
  EXPECT_FALSE(t.Find(d2.ino, "f").has_value());
  EXPECT_EQ(t.Find(d2.ino, "g"), f.ino);
  EXPECT_EQ(t.Find(d1.ino, "f"), f.ino);
  // Unbinding one name keeps the other.
  t.Unbind(d1.ino, "f");
  EXPECT_EQ(t.Find(d2.ino, "g"), f.ino);
  ASSERT_EQ(t.Get(f.ino)->links.size(), 1u);
  // Forgetting every lookup drops the node and all its names.
  t.Forget(f.ino, 2);
  EXPECT_FALSE(t.Get(f.ino).has_value());
  EXPECT_FALSE(t.Find(d2.ino, "g").has_value());
  // Renaming a name nobody bound unbinds the target name.
  Node h = t.Resolve(d2.ino, "h", SpecOf(NodeKind::kFile, 3), 1);
  EXPECT_FALSE(t.Rename(d2.ino, "unknown", d2.ino, "h").has_value());
  EXPECT_FALSE(t.Find(d2.ino, "h").has_value());
  EXPECT_TRUE(t.Get(h.ino).has_value());
  EXPECT_TRUE(t.Get(h.ino)->links.empty());
}

TEST(NodeTableTest, NameOfFallsBackToANameWhoseDirectoryIsStillKnown) {
  // A sidecar reached through two views (slides/S1/slide.json, then
  // species/HeLa/slides/S1/slide.json): one inode, last resolved under the
  // second view's directory. The kernel forgets that directory (its dentry
  // was invalidated) while the file is still open through the first: its
  // path for messages (Filesystem::PathOf) goes through the first.
  NodeTable t;
  Node slides = t.Resolve(FUSE_ROOT_ID, "slides", SpecOf(NodeKind::kSlidesView), 1);
  Node s1 = t.Resolve(slides.ino, "S1", SpecOf(NodeKind::kSlide, 1), 1);
  NodeSpec sidecar = SpecOf(NodeKind::kSidecar, 1);
  Node f = t.Resolve(s1.ino, "slide.json", sidecar, 1);
  Node other = t.Resolve(FUSE_ROOT_ID, "other", SpecOf(NodeKind::kSlide, 1), 1);
  EXPECT_EQ(t.Resolve(other.ino, "slide.json", sidecar, 1).ino, f.ino);
  EXPECT_EQ(t.NameOf(f.ino), std::make_pair(other.ino, std::string("slide.json")));
  t.Forget(other.ino, 1);
  EXPECT_EQ(t.NameOf(f.ino), std::make_pair(s1.ino, std::string("slide.json")));
  EXPECT_EQ(t.NameOf(s1.ino), std::make_pair(slides.ino, std::string("S1")));
  EXPECT_EQ(t.NameOf(slides.ino), std::make_pair(fuse_ino_t{FUSE_ROOT_ID}, std::string("slides")));
  // Every directory it was named in forgotten: no name.
  t.Forget(s1.ino, 1);
  EXPECT_FALSE(t.NameOf(f.ino).has_value());
  t.Forget(f.ino, 2);
  EXPECT_FALSE(t.NameOf(f.ino).has_value());
}

TEST(NodeTableTest, SetSpecAndSelect) {
  NodeTable t;
  Node a = t.Resolve(FUSE_ROOT_ID, "a", SpecOf(NodeKind::kFile, 1), 1);
  Node b = t.Resolve(FUSE_ROOT_ID, "b", SpecOf(NodeKind::kFile, 2), 1);
  t.SetSpec(a.ino, SpecOf(NodeKind::kFile, 10));
  EXPECT_EQ(t.Get(a.ino)->spec.record_id, 10);
  auto hits = t.Select([](const Node& n) { return n.spec.kind == NodeKind::kFile && n.spec.record_id == 2; });
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].ino, b.ino);
  // Resolve with the updated spec keeps the inode.
  EXPECT_EQ(t.Resolve(FUSE_ROOT_ID, "a", SpecOf(NodeKind::kFile, 10), 1).ino, a.ino);
}

TEST(NodeTableTest, ConcurrentResolveAndForgetKeepCountsExact) {
  NodeTable t;
  constexpr int kThreads = 4, kIters = 2000;
  NodeSpec spec = SpecOf(NodeKind::kSlide, 9);
  Node keep = t.Resolve(FUSE_ROOT_ID, "S", spec, 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < kIters; ++k) {
        Node n = t.Resolve(FUSE_ROOT_ID, "S", spec, 1);
        EXPECT_EQ(n.ino, keep.ino);
        t.Forget(n.ino, 1);
      }
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(t.Get(keep.ino).has_value());
  EXPECT_EQ(t.Get(keep.ino)->nlookup, 1u);
}

}  // namespace
}  // namespace samplefs::fs
