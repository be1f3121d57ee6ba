// Unit tests of the extended attributes of records (fs/xattr.h, SPEC
// section 4 "Extended attributes"), over an in-memory catalog.
#include "fs/xattr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fs/sidecar.h"
#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using testing_util::FsTest;
using testing_util::HashN;
using testing_util::SpecOf;

class XattrTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    hela = AddSpecies("HeLa");
    rat = AddSpecies("Rat");
    p1 = AddSample("P1", hela.id);
    a647 = AddDye("A647");
    s1 = AddSlide("S1", p1.id);
    AddLabelling(s1.id, "actin", a647.id);
    AddLabelling(s1.id, "nucleus", a647.id);
    img = AddImage(s1.id, "img1");
    root = MUST(cat().FilesRoot(img.id));
    folder = AddFolder(root.id, "raw");
    file = AddFile(folder.id, "a.tif", 4096, 0xabcdef);
    link = AddSymlink(root.id, "ln", "raw/a.tif");
  }

  NodeSpec SlideNode() { return SpecOf(NodeKind::kSlide, s1.id); }
  NodeSpec FileNode() { return SpecOf(NodeKind::kFile, file.id); }
  Result<std::string> Get(const NodeSpec& n, const std::string& name) { return GetXattr(cat(), n, name); }
  Status Set(const NodeSpec& n, const std::string& name, const std::string& value, int flags = 0) {
    return SetXattr(cat(), n, name, value, flags);
  }
  std::vector<std::string> List(const NodeSpec& n) { return MUST(ListXattrs(cat(), n)); }

  Species hela, rat;
  Sample p1;
  Dye a647;
  Slide s1;
  Image img;
  Entry root, folder, file, link;
};

TEST_F(XattrTest, RecordsOfNodes) {
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kSpecies, 3)), std::make_pair(Entity::kSpecies, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kSample, 3)), std::make_pair(Entity::kSample, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kDye, 3)), std::make_pair(Entity::kDye, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kSlide, 3)), std::make_pair(Entity::kSlide, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kImage, 3)), std::make_pair(Entity::kImage, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kFile, 3)), std::make_pair(Entity::kEntry, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kFolder, 3)), std::make_pair(Entity::kEntry, int64_t{3}));
  EXPECT_EQ(XattrRecord(SpecOf(NodeKind::kSymlink, 3)), std::make_pair(Entity::kEntry, int64_t{3}));
  for (NodeKind k : {NodeKind::kRoot, NodeKind::kSpeciesView, NodeKind::kSlideList, NodeKind::kImages,
                     NodeKind::kSidecar, NodeKind::kStatusFile, NodeKind::kTag, NodeKind::kStructure})
    EXPECT_FALSE(XattrRecord(SpecOf(k, 1)).has_value()) << NodeKindName(k);
}

TEST_F(XattrTest, NodesWithoutARecordHaveNoAttributes) {
  NodeSpec view = SpecOf(NodeKind::kSpeciesView);
  EXPECT_THAT(List(view), IsEmpty());
  EXPECT_CODE(Get(view, "user.xdg.tags"), Code::kNotFound);
  EXPECT_CODE(Set(view, "user.foo", "x"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), view, "user.foo"), Code::kNotFound);
}

TEST_F(XattrTest, ListNamesOfASlide) {
  EXPECT_THAT(List(SlideNode()),
              ElementsAre("user.samplefs.id", "user.samplefs.reference", "user.samplefs.sample",
                          "user.samplefs.species", "user.samplefs.creator", "user.samplefs.created",
                          "user.samplefs.modified", "user.samplefs.labellings"));
  ASSERT_OK(cat().SetTags(Entity::kSlide, s1.id, {"good"}));
  ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s1.id, "batch", "7"));
  ASSERT_OK(Set(SlideNode(), "user.xdg.comment", "a note"));
  auto names = List(SlideNode());
  EXPECT_THAT(names, Contains("user.xdg.tags"));
  EXPECT_THAT(names, Contains("user.xdg.comment"));
  EXPECT_THAT(names, Contains("user.samplefs.notes"));
  EXPECT_THAT(names, Contains("user.batch"));
  // Every listed name can be read, with a non-empty value.
  for (const auto& n : names) {
    auto v = Get(SlideNode(), n);
    ASSERT_OK(v);
    EXPECT_FALSE(v->empty()) << n;
  }
}

TEST_F(XattrTest, ValuesOfASlide) {
  Slide rec = MUST(cat().SlideById(s1.id));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.id")), std::to_string(s1.id));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.reference")), "S1");
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.sample")), "P1");
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.species")), "HeLa");
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.creator")), "ann");
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.created")), rec.created);
  EXPECT_EQ(MUST(Get(SlideNode(), "user.samplefs.labellings")), "actin:A647;nucleus:A647");
  // Empty and unknown ones are absent (ENODATA).
  EXPECT_CODE(Get(SlideNode(), "user.samplefs.notes"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "user.xdg.comment"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "user.xdg.tags"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "user.samplefs.bogus"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "user.nothing"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "security.selinux"), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "trusted.x"), Code::kNotFound);
}

TEST_F(XattrTest, FilesCarryTheirHash) {
  EXPECT_EQ(MUST(Get(FileNode(), "user.samplefs.hash")), "xxh3-128:" + HashN(0xabcdef));
  EXPECT_EQ(MUST(Get(FileNode(), "user.samplefs.size")), "4096");
  EXPECT_EQ(MUST(Get(FileNode(), "user.samplefs.kind")), "other");
  EXPECT_EQ(MUST(Get(FileNode(), "user.samplefs.id")), std::to_string(file.id));
  // Answered by name, never listed: rsync -X would try to remove them.
  // Users' own attributes and tags are listed.
  EXPECT_THAT(List(FileNode()), IsEmpty());
  ASSERT_OK(Set(FileNode(), "user.xdg.tags", "t1"));
  ASSERT_OK(Set(FileNode(), "user.origin", "scope-3"));
  EXPECT_THAT(List(FileNode()), ElementsAre("user.xdg.tags", "user.origin"));
  for (const auto& n : List(FileNode())) EXPECT_OK(Get(FileNode(), n));
  // Folders and symlinks have no content hash.
  NodeSpec dir = SpecOf(NodeKind::kFolder, folder.id);
  EXPECT_THAT(List(dir), IsEmpty());
  EXPECT_CODE(Get(dir, "user.samplefs.hash"), Code::kNotFound);
  EXPECT_CODE(Get(SpecOf(NodeKind::kSymlink, link.id), "user.samplefs.hash"), Code::kNotFound);
  // The hash is read-only, and so are size and id.
  EXPECT_CODE(Set(FileNode(), "user.samplefs.hash", "xxh3-128:" + HashN(1)), Code::kPermission);
  EXPECT_CODE(Set(FileNode(), "user.samplefs.size", "1"), Code::kPermission);
  EXPECT_CODE(Set(FileNode(), "user.samplefs.id", "1"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), FileNode(), "user.samplefs.hash"), Code::kPermission);
  EXPECT_EQ(MUST(cat().EntryById(file.id)).hash, HashN(0xabcdef));
  // kind is editable, within its values.
  EXPECT_OK(Set(FileNode(), "user.samplefs.kind", "analysis"));
  EXPECT_EQ(MUST(cat().EntryById(file.id)).kind, "analysis");
  EXPECT_CODE(Set(FileNode(), "user.samplefs.kind", "poetry"), Code::kInvalidArgument);
}

TEST_F(XattrTest, TagsReplaceTheSet) {
  EXPECT_OK(Set(SlideNode(), "user.xdg.tags", " good , best,good,, todo "));
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kSlide, s1.id)), ElementsAre("best", "good", "todo"));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.xdg.tags")), "best,good,todo");
  EXPECT_OK(Set(SlideNode(), "user.xdg.tags", "todo"));
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kSlide, s1.id)), ElementsAre("todo"));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.xdg.tags")), "todo");
  // Tags work on files too, and show up in tags/<tag>/files.
  EXPECT_OK(Set(FileNode(), "user.xdg.tags", "todo,raw-data"));
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kEntry, file.id)), ElementsAre("raw-data", "todo"));
  EXPECT_THAT(NamesIn("tags/todo/files"), ElementsAre("S1:img1:raw:a.tif"));
  EXPECT_THAT(NamesIn("tags/todo/slides"), ElementsAre("S1"));
  // An empty value clears them.
  EXPECT_OK(Set(SlideNode(), "user.xdg.tags", ""));
  EXPECT_CODE(Get(SlideNode(), "user.xdg.tags"), Code::kNotFound);
  // A tag that is not a valid name is refused, and the old set stays.
  EXPECT_OK(Set(SlideNode(), "user.xdg.tags", "keep"));
  EXPECT_CODE(Set(SlideNode(), "user.xdg.tags", "ok,bad/tag"), Code::kInvalidArgument);
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kSlide, s1.id)), ElementsAre("keep"));
}

TEST(SplitTagsTest, TrimsDropsEmptiesAndDuplicates) {
  EXPECT_THAT(SplitTags("a,b"), ElementsAre("a", "b"));
  EXPECT_THAT(SplitTags("  a , b,a,, c\t,\n"), ElementsAre("a", "b", "c"));
  EXPECT_THAT(SplitTags(""), IsEmpty());
  EXPECT_THAT(SplitTags(",,, ,"), IsEmpty());
  EXPECT_THAT(SplitTags("two words"), ElementsAre("two words"));
  EXPECT_THAT(SplitTags("ü,ü , é"), ElementsAre("ü", "é"));
  EXPECT_EQ(JoinTags({"a", "b", "c"}), "a,b,c");
  EXPECT_EQ(JoinTags({}), "");
  EXPECT_THAT(SplitTags(JoinTags({"x", "y"})), ElementsAre("x", "y"));
}

TEST_F(XattrTest, ReadOnlyFieldsAreRefused) {
  NodeSpec sp = SpecOf(NodeKind::kSpecies, hela.id);
  NodeSpec sa = SpecOf(NodeKind::kSample, p1.id);
  NodeSpec dy = SpecOf(NodeKind::kDye, a647.id);
  NodeSpec im = SpecOf(NodeKind::kImage, img.id);
  EXPECT_CODE(Set(sp, "user.samplefs.id", "99"), Code::kPermission);
  EXPECT_CODE(Set(sa, "user.samplefs.id", "99"), Code::kPermission);
  EXPECT_CODE(Set(dy, "user.samplefs.id", "99"), Code::kPermission);
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.id", "99"), Code::kPermission);
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.species", "Rat"), Code::kPermission);
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.modified", "2020-01-01T00:00:00Z"), Code::kPermission);
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.labellings", ""), Code::kPermission);
  EXPECT_CODE(Set(im, "user.samplefs.id", "99"), Code::kPermission);
  EXPECT_CODE(Set(im, "user.samplefs.slide", "S2"), Code::kPermission);
  EXPECT_EQ(MUST(cat().SlideById(s1.id)).sample_id, p1.id);
  // Keys and links cannot be removed.
  EXPECT_CODE(RemoveXattr(cat(), sp, "user.samplefs.name"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), sa, "user.samplefs.species"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), SlideNode(), "user.samplefs.reference"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), SlideNode(), "user.samplefs.id"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), SlideNode(), "user.samplefs.species"), Code::kPermission);
  EXPECT_EQ(MUST(Get(sa, "user.samplefs.species")), "HeLa");
}

TEST_F(XattrTest, EditableFieldsChangeTheRecord) {
  NodeSpec sp = SpecOf(NodeKind::kSpecies, hela.id);
  NodeSpec sa = SpecOf(NodeKind::kSample, p1.id);
  NodeSpec dy = SpecOf(NodeKind::kDye, a647.id);
  NodeSpec im = SpecOf(NodeKind::kImage, img.id);
  EXPECT_OK(Set(sp, "user.samplefs.species", "Human"));
  EXPECT_OK(Set(sp, "user.xdg.comment", "cervical"));
  Species s = MUST(cat().SpeciesById(hela.id));
  EXPECT_EQ(s.species, "Human");
  EXPECT_EQ(s.notes, "cervical");
  EXPECT_EQ(MUST(Get(sp, "user.samplefs.notes")), "cervical");

  EXPECT_OK(Set(sa, "user.samplefs.species", "Rat"));
  EXPECT_EQ(MUST(cat().SampleById(p1.id)).species_id, rat.id);
  EXPECT_THAT(NamesIn("species/Rat/slides"), ElementsAre("S1"));

  EXPECT_OK(Set(dy, "user.samplefs.long_name", "Alexa Fluor 647"));
  EXPECT_EQ(MUST(cat().DyeById(a647.id)).long_name, "Alexa Fluor 647");
  // Dyes have no notes: user.xdg.comment is a free annotation there.
  EXPECT_OK(Set(dy, "user.xdg.comment", "far red"));
  EXPECT_EQ(MUST(Get(dy, "user.xdg.comment")), "far red");
  EXPECT_THAT(List(dy), Contains("user.xdg.comment"));

  EXPECT_OK(Set(SlideNode(), "user.samplefs.creator", "zoe"));
  EXPECT_OK(Set(SlideNode(), "user.samplefs.created", "2020-05-06T07:08:09Z"));
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.created", "yesterday"), Code::kInvalidArgument);
  Slide sl = MUST(cat().SlideById(s1.id));
  EXPECT_EQ(sl.creator, "zoe");
  EXPECT_EQ(sl.created, "2020-05-06T07:08:09Z");

  EXPECT_OK(Set(im, "user.xdg.comment", "blurry"));
  EXPECT_EQ(MUST(cat().ImageById(img.id)).comments, "blurry");
  EXPECT_OK(Set(im, "user.samplefs.name", "img-renamed"));
  EXPECT_EQ(Path("slides/S1/images/img-renamed"), SpecOf(NodeKind::kImage, img.id));

  // A rename of the slide through its reference.
  EXPECT_OK(Set(SlideNode(), "user.samplefs.reference", "S1-new"));
  EXPECT_EQ(Path("slides/S1-new"), SlideNode());
  // Invalid values for a field.
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.reference", "a/b"), Code::kInvalidArgument);
  EXPECT_CODE(Set(sp, "user.samplefs.name", ""), Code::kInvalidArgument);
  EXPECT_CODE(Set(sp, "user.samplefs.name", "Rat"), Code::kAlreadyExists);
}

TEST_F(XattrTest, ALinkToAMissingRecordIsAnInvalidValue) {
  // setxattr must not answer ENODATA for a value naming a record that does
  // not exist: the attribute is there, its new value is wrong.
  NodeSpec sa = SpecOf(NodeKind::kSample, p1.id);
  EXPECT_CODE(Set(sa, "user.samplefs.species", "Nope"), Code::kInvalidArgument);
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.sample", "Nope"), Code::kInvalidArgument);
  EXPECT_EQ(MUST(cat().SampleById(p1.id)).species_id, hela.id);
  EXPECT_EQ(MUST(cat().SlideById(s1.id)).sample_id, p1.id);
}

TEST_F(XattrTest, CreateAndReplaceFlags) {
  EXPECT_CODE(Set(SlideNode(), "user.batch", "1", XATTR_REPLACE), Code::kNotFound);
  EXPECT_CODE(Get(SlideNode(), "user.batch"), Code::kNotFound);
  EXPECT_OK(Set(SlideNode(), "user.batch", "1", XATTR_CREATE));
  EXPECT_CODE(Set(SlideNode(), "user.batch", "2", XATTR_CREATE), Code::kAlreadyExists);
  EXPECT_EQ(MUST(Get(SlideNode(), "user.batch")), "1");
  EXPECT_OK(Set(SlideNode(), "user.batch", "3", XATTR_REPLACE));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.batch")), "3");
  EXPECT_OK(Set(SlideNode(), "user.batch", "4"));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.batch")), "4");

  // The same for tags and fields.
  EXPECT_CODE(Set(SlideNode(), "user.xdg.tags", "a", XATTR_REPLACE), Code::kNotFound);
  EXPECT_OK(Set(SlideNode(), "user.xdg.tags", "a", XATTR_CREATE));
  EXPECT_CODE(Set(SlideNode(), "user.xdg.tags", "b", XATTR_CREATE), Code::kAlreadyExists);
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kSlide, s1.id)), ElementsAre("a"));
  EXPECT_CODE(Set(SlideNode(), "user.xdg.comment", "n", XATTR_REPLACE), Code::kNotFound);
  EXPECT_OK(Set(SlideNode(), "user.xdg.comment", "n", XATTR_CREATE));
  EXPECT_CODE(Set(SlideNode(), "user.samplefs.notes", "m", XATTR_CREATE), Code::kAlreadyExists);
  EXPECT_OK(Set(SlideNode(), "user.samplefs.notes", "m", XATTR_REPLACE));
  EXPECT_EQ(MUST(cat().SlideById(s1.id)).notes, "m");
}

// Two setfattr --create of one name at once (two FUSE threads, or two
// tools on one mount): exactly one succeeds, the other gets EEXIST; the
// check and the change are one transaction.
TEST_F(XattrTest, ConcurrentCreatesOfOneNameLetOneWin) {
  constexpr int kThreads = 4;
  for (int round = 0; round < 300; ++round) {
    const std::string name = "user.race" + std::to_string(round);
    std::atomic<int> ready{0}, created{0}, refused{0};
    auto create = [&](int i) {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      Status s = Set(SlideNode(), name, "v" + std::to_string(i), XATTR_CREATE);
      if (s.ok()) created.fetch_add(1);
      else if (s.code() == Code::kAlreadyExists) refused.fetch_add(1);
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) threads.emplace_back(create, i);
    for (auto& t : threads) t.join();
    ASSERT_EQ(created.load(), 1) << name;
    ASSERT_EQ(refused.load(), kThreads - 1) << name;
  }
}

TEST_F(XattrTest, ValueLimits) {
  std::string max(kMaxXattrValue, 'v');
  EXPECT_OK(Set(SlideNode(), "user.big", max));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.big")), max);
  EXPECT_CODE(Set(SlideNode(), "user.big", max + "v"), Code::kTooBig);
  EXPECT_CODE(Set(SlideNode(), "user.xdg.comment", max + "v"), Code::kTooBig);
  EXPECT_CODE(Set(SlideNode(), "user.xdg.tags", max + "v"), Code::kTooBig);
  EXPECT_EQ(MUST(Get(SlideNode(), "user.big")), max);

  EXPECT_CODE(Set(SlideNode(), "user.bin", std::string("\xff\xfe\x00\x01", 4)), Code::kInvalidArgument);
  EXPECT_CODE(Set(SlideNode(), "user.bin", "\xc0\xaf"), Code::kInvalidArgument);  // overlong '/'
  EXPECT_CODE(Set(SlideNode(), "user.bin", std::string("a\0b", 3)), Code::kInvalidArgument);
  EXPECT_CODE(Set(SlideNode(), "user.xdg.comment", "\xed\xa0\x80"), Code::kInvalidArgument);  // surrogate
  EXPECT_CODE(Get(SlideNode(), "user.bin"), Code::kNotFound);
  EXPECT_OK(Set(SlideNode(), "user.text", "ünïcödé ✓ 𝄞"));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.text")), "ünïcödé ✓ 𝄞");
  EXPECT_OK(Set(SlideNode(), "user.empty", ""));
  EXPECT_EQ(MUST(Get(SlideNode(), "user.empty")), "");
}

TEST_F(XattrTest, OnlyUserNamesAreStored) {
  EXPECT_CODE(Set(SlideNode(), "user.", "x"), Code::kInvalidArgument);
  EXPECT_CODE(Set(SlideNode(), "security.selinux", "x"), Code::kInvalidArgument);
  EXPECT_CODE(Set(SlideNode(), "trusted.x", "x"), Code::kInvalidArgument);
  EXPECT_THAT(MUST(cat().AnnotationsOf(Entity::kSlide, s1.id)), IsEmpty());
  // An unknown samplefs field is not silently stored as an annotation.
  EXPECT_FALSE(Set(SlideNode(), "user.samplefs.bogus", "x").ok());
  EXPECT_THAT(MUST(cat().AnnotationsOf(Entity::kSlide, s1.id)), IsEmpty());
}

TEST_F(XattrTest, AnnotationKeysAndValuesAreStoredLiterally) {
  const std::string key = "x'); DROP TABLE slide;--";
  const std::string value = "'; DELETE FROM species; -- \"quoted\" \\ back";
  EXPECT_OK(Set(SlideNode(), "user." + key, value));
  EXPECT_EQ(MUST(Get(SlideNode(), "user." + key)), value);
  EXPECT_THAT(List(SlideNode()), Contains("user." + key));
  EXPECT_EQ(MUST(cat().Annotation(Entity::kSlide, s1.id, key)), value);
  // Nothing was dropped or deleted.
  EXPECT_OK(cat().SlideById(s1.id));
  EXPECT_OK(cat().SpeciesByName("HeLa"));
  EXPECT_THAT(NamesIn("slides"), ElementsAre("S1"));
  // More awkward keys.
  for (const std::string k : {"a\"b", "with space", "dots.and-dashes", "ünï", "%s%n", "a=b,c"}) {
    SCOPED_TRACE(k);
    EXPECT_OK(Set(FileNode(), "user." + k, "v:" + k));
    EXPECT_EQ(MUST(Get(FileNode(), "user." + k)), "v:" + k);
    EXPECT_THAT(List(FileNode()), Contains("user." + k));
  }
  // The sidecar shows the annotation verbatim.
  auto doc = nlohmann::json::parse(MUST(RenderSidecar(cat(), Entity::kSlide, s1.id)));
  EXPECT_EQ(doc["annotations"][key], value);
}

TEST_F(XattrTest, RemoveXattr) {
  NodeSpec im = SpecOf(NodeKind::kImage, img.id);
  ASSERT_OK(Set(im, "user.batch", "1"));
  EXPECT_OK(RemoveXattr(cat(), im, "user.batch"));
  EXPECT_CODE(Get(im, "user.batch"), Code::kNotFound);
  EXPECT_CODE(RemoveXattr(cat(), im, "user.batch"), Code::kNotFound);
  EXPECT_THAT(List(im), Not(Contains("user.batch")));

  ASSERT_OK(Set(im, "user.xdg.tags", "a,b"));
  EXPECT_OK(RemoveXattr(cat(), im, "user.xdg.tags"));
  EXPECT_THAT(MUST(cat().TagsOf(Entity::kImage, img.id)), IsEmpty());
  EXPECT_CODE(RemoveXattr(cat(), im, "user.xdg.tags"), Code::kNotFound);

  ASSERT_OK(Set(im, "user.xdg.comment", "blurry"));
  EXPECT_OK(RemoveXattr(cat(), im, "user.xdg.comment"));
  EXPECT_EQ(MUST(cat().ImageById(img.id)).comments, "");
  EXPECT_CODE(RemoveXattr(cat(), im, "user.xdg.comment"), Code::kNotFound);

  EXPECT_OK(RemoveXattr(cat(), im, "user.samplefs.user"));
  EXPECT_EQ(MUST(cat().ImageById(img.id)).user, "");
  EXPECT_CODE(RemoveXattr(cat(), im, "user.samplefs.user"), Code::kNotFound);
  EXPECT_CODE(RemoveXattr(cat(), im, "user.samplefs.name"), Code::kPermission);
  EXPECT_CODE(RemoveXattr(cat(), im, "security.selinux"), Code::kNotFound);
}

TEST_F(XattrTest, AttributesOfDeletedRecords) {
  NodeSpec gone = SpecOf(NodeKind::kSlide, 999);
  EXPECT_CODE(ListXattrs(cat(), gone), Code::kNotFound);
  EXPECT_CODE(Get(gone, "user.samplefs.id"), Code::kNotFound);
  EXPECT_FALSE(Set(gone, "user.x", "y").ok());
  EXPECT_FALSE(Set(gone, "user.xdg.tags", "y").ok());
}


// ReadEntryXattrs: listxattr's names and user.xdg.tags's value of an entry,
// from one statement, as ListXattrs and GetXattr give them.
TEST_F(XattrTest, EntryXattrsMatchListAndGet) {
  ASSERT_OK(Set(FileNode(), "user.xdg.tags", "raw,good"));
  ASSERT_OK(Set(FileNode(), "user.stage", "3"));
  ASSERT_OK(Set(FileNode(), "user.a", "x"));
  EntryXattrs x = MUST(ReadEntryXattrs(cat(), file.id));
  EXPECT_EQ(x.names, List(FileNode()));
  EXPECT_THAT(x.names, ElementsAre("user.xdg.tags", "user.a", "user.stage"));
  EXPECT_EQ(x.tags, MUST(Get(FileNode(), "user.xdg.tags")));
  EXPECT_EQ(x.tags, "good,raw");
  // Untagged: no name, empty value (getxattr is ENODATA).
  EntryXattrs bare = MUST(ReadEntryXattrs(cat(), folder.id));
  EXPECT_THAT(bare.names, IsEmpty());
  EXPECT_EQ(bare.tags, "");
}

// The memo keeps an answer kMemoNs for its inode and record, forgets all
// on Changed(), and never keeps an answer read before a change.
TEST(XattrMemoTest, KeepsAMomentAndForgetsOnChange) {
  XattrMemo memo;
  EntryXattrs a{{"user.xdg.tags"}, "good"};
  const int64_t t0 = 1'000'000'000;
  uint64_t e = memo.epoch();
  memo.Put(7, 70, a, e, t0);
  ASSERT_TRUE(memo.Get(7, 70, t0 + 1).has_value());
  EXPECT_EQ(memo.Get(7, 70, t0 + 1)->tags, "good");
  EXPECT_FALSE(memo.Get(8, 70, t0).has_value());                    // another inode
  EXPECT_FALSE(memo.Get(7, 71, t0).has_value());                    // the inode now stands for another record
  memo.Put(7, 70, a, memo.epoch(), t0);
  EXPECT_FALSE(memo.Get(7, 70, t0 + XattrMemo::kMemoNs).has_value());  // expired
  memo.Put(7, 70, a, memo.epoch(), t0);
  memo.Changed();
  EXPECT_FALSE(memo.Get(7, 70, t0).has_value());
  // Read before a change, put after it: not kept.
  e = memo.epoch();
  memo.Changed();
  memo.Put(7, 70, a, e, t0);
  EXPECT_FALSE(memo.Get(7, 70, t0).has_value());
  // Bounded: many inodes at once never grow it past kMaxEntries.
  for (fuse_ino_t i = 1; i <= XattrMemo::kMaxEntries * 2; ++i) memo.Put(i, 1, a, memo.epoch(), t0);
  size_t kept = 0;
  for (fuse_ino_t i = 1; i <= XattrMemo::kMaxEntries * 2; ++i) kept += memo.Get(i, 1, t0).has_value();
  EXPECT_LE(kept, XattrMemo::kMaxEntries);
  EXPECT_TRUE(memo.Get(XattrMemo::kMaxEntries * 2, 1, t0).has_value());  // the newest is kept
}

// Where other writers' changes are pushed (PostgreSQL's NOTIFY counter),
// an answer is kept past kMemoNs until the counter moves; an answer read
// before the counter moved is never kept after it.
TEST(XattrMemoTest, WithPushedChangesKeepsUntilTheCounterMoves) {
  XattrMemo memo;
  EntryXattrs a{{"user.xdg.tags"}, "good"};
  const int64_t t0 = 1'000'000'000;
  memo.Put(7, 70, a, memo.epoch(), t0, int64_t{5});
  ASSERT_TRUE(memo.Get(7, 70, t0 + 100 * XattrMemo::kMemoNs, int64_t{5}).has_value());  // no time limit
  EXPECT_FALSE(memo.Get(7, 70, t0 + 1, int64_t{6}).has_value());  // another writer changed the catalog
  EXPECT_FALSE(memo.Get(7, 70, t0 + 1, int64_t{5}).has_value());  // and it is gone for good
  // Read at counter 5, the counter moved to 6 meanwhile: the answer is
  // never served at 6.
  memo.Put(7, 70, a, memo.epoch(), t0, int64_t{5});
  EXPECT_FALSE(memo.Get(7, 70, t0, int64_t{6}).has_value());
  // This mount's own change still forgets it.
  memo.Put(7, 70, a, memo.epoch(), t0, int64_t{6});
  memo.Changed();
  EXPECT_FALSE(memo.Get(7, 70, t0, int64_t{6}).has_value());
  // Holds more than the timed memo (a 10,000-file getfattr -d stays warm).
  for (fuse_ino_t i = 1; i <= XattrMemo::kMaxEntries * 2; ++i) memo.Put(i, 1, a, memo.epoch(), t0, int64_t{6});
  size_t kept = 0;
  for (fuse_ino_t i = 1; i <= XattrMemo::kMaxEntries * 2; ++i) kept += memo.Get(i, 1, t0, int64_t{6}).has_value();
  EXPECT_EQ(kept, XattrMemo::kMaxEntries * 2);
}

}  // namespace
}  // namespace samplefs::fs
