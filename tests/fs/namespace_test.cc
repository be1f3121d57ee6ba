// Unit tests of Namespace (fs/namespace.h, SPEC section 4): what each path
// means, listings page by page, attributes, and the changes made with file
// tools (mkdir, rmdir, unlink, rename) — all without a mount.
#include "fs/namespace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/names.h"
#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;
using testing_util::FsTest;
using testing_util::RootSpec;
using testing_util::SpecOf;

constexpr unsigned kNoReplace = 1;  // RENAME_NOREPLACE
constexpr unsigned kExchange = 2;   // RENAME_EXCHANGE

// A small catalog with one of everything:
//   species HeLa (P1: S1, S3), Rat (P2: S2)
//   S1 labelled actin/A647 and nucleus/DAPI, S2 labelled actin/DAPI
//   S1/img1 files/: sub/a.tif, notes.txt, link -> sub/a.tif; S2/img2
//   tag "good" on S1, img1 and sub/a.tif
class NamespaceTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    hela = AddSpecies("HeLa");
    rat = AddSpecies("Rat");
    p1 = AddSample("P1", hela.id);
    p2 = AddSample("P2", rat.id);
    a647 = AddDye("A647");
    dapi = AddDye("DAPI");
    s1 = AddSlide("S1", p1.id);
    s2 = AddSlide("S2", p2.id);
    s3 = AddSlide("S3", p1.id);
    AddLabelling(s1.id, "actin", a647.id);
    AddLabelling(s1.id, "nucleus", dapi.id);
    AddLabelling(s2.id, "actin", dapi.id);
    img1 = AddImage(s1.id, "img1");
    img2 = AddImage(s2.id, "img2", "carol");
    files1 = MUST(cat().FilesRoot(img1.id));
    sub = AddFolder(files1.id, "sub", 0750);
    tif = AddFile(sub.id, "a.tif", 1000, 7, 0640, 1600000000123456789);
    txt = AddFile(files1.id, "notes.txt", 5, 8);
    link = AddSymlink(files1.id, "link", "sub/a.tif");
    ASSERT_OK(cat().SetTags(Entity::kSlide, s1.id, {"good"}));
    ASSERT_OK(cat().SetTags(Entity::kImage, img1.id, {"good"}));
    ASSERT_OK(cat().SetTags(Entity::kEntry, tif.id, {"good"}));
    good = MUST(cat().TagByName("good"));
  }

  // Every entry of `dir`: names unique, each looking up to the listed spec,
  // with a working Attr that agrees with the kind (and with the listing's
  // own attributes and rendered sizes); a listing one entry per page gives
  // the same sequence. Recurses into directories.
  void CheckTree(const NodeSpec& dir, const std::string& path, int depth, int* dirs_checked) {
    SCOPED_TRACE(path);
    ++*dirs_checked;
    auto all = ListAll(dir);
    auto one_by_one = ListPaged(dir, 1);
    EXPECT_EQ(Names(all), Names(one_by_one)) << "paged listing differs in " << path;
    std::set<std::string> seen;
    for (const auto& e : all) {
      SCOPED_TRACE(path + "/" + e.name);
      EXPECT_TRUE(seen.insert(e.name).second) << "listed twice: " << e.name;
      auto looked = ns().Lookup(dir, e.name);
      ASSERT_OK(looked);
      EXPECT_EQ(*looked, e.spec) << "listing and lookup disagree on " << e.name;
      auto st = ns().Attr(e.spec);
      ASSERT_OK(st);
      if (e.spec.kind == NodeKind::kSymlink) EXPECT_TRUE(S_ISLNK(st->st_mode));
      else EXPECT_EQ(S_ISDIR(st->st_mode), e.spec.is_dir());
      if (e.attr) {
        EXPECT_EQ(e.attr->st_mode, st->st_mode);
        EXPECT_EQ(e.attr->st_size, st->st_size);
        EXPECT_EQ(e.attr->st_mtim.tv_sec, st->st_mtim.tv_sec);
        EXPECT_EQ(e.attr->st_mtim.tv_nsec, st->st_mtim.tv_nsec);
      }
      if (e.spec.kind == NodeKind::kSidecar || e.spec.kind == NodeKind::kStatusFile) {
        auto body = ns().Render(e.spec);
        ASSERT_OK(body);
        EXPECT_EQ(st->st_size, static_cast<off_t>(body->size()));
        EXPECT_TRUE(nlohmann::json::accept(*body)) << *body;
      }
      if (e.spec.is_dir() && depth > 0) CheckTree(e.spec, path + "/" + e.name, depth - 1, dirs_checked);
    }
  }

  Species hela, rat;
  Sample p1, p2;
  Dye a647, dapi;
  Slide s1, s2, s3;
  Image img1, img2;
  Entry files1, sub, tif, txt, link;
  Tag good;
};

// ---------------------------------------------------------------------------
// Lookup.

TEST_F(NamespaceTest, RootListsEveryViewInOrder) {
  EXPECT_THAT(NamesIn(""), ElementsAre("species", "samples", "slides", "dyes", "structures", "tags",
                                       "query", ".samplefs"));
  EXPECT_EQ(Path("species").kind, NodeKind::kSpeciesView);
  EXPECT_EQ(Path("samples").kind, NodeKind::kSamplesView);
  EXPECT_EQ(Path("slides").kind, NodeKind::kSlidesView);
  EXPECT_EQ(Path("dyes").kind, NodeKind::kDyesView);
  EXPECT_EQ(Path("structures").kind, NodeKind::kStructuresView);
  EXPECT_EQ(Path("tags").kind, NodeKind::kTagsView);
  EXPECT_EQ(Path("query").kind, NodeKind::kQueryView);
  EXPECT_EQ(Path(".samplefs").kind, NodeKind::kMetaDir);
  EXPECT_CODE(ns().Lookup(RootSpec(), "nothing"), Code::kNotFound);
  EXPECT_CODE(ns().Lookup(RootSpec(), "species.json"), Code::kNotFound);
}

TEST_F(NamespaceTest, LookupOfEveryNodeKind) {
  EXPECT_EQ(Path("species/HeLa"), SpecOf(NodeKind::kSpecies, hela.id));
  NodeSpec sidecar = Path("species/HeLa/species.json");
  EXPECT_EQ(sidecar.kind, NodeKind::kSidecar);
  EXPECT_EQ(sidecar.entity, Entity::kSpecies);
  EXPECT_EQ(sidecar.record_id, hela.id);
  EXPECT_EQ(Path("species/HeLa/slides").kind, NodeKind::kSlideList);

  EXPECT_EQ(Path("samples/P1"), SpecOf(NodeKind::kSample, p1.id));
  EXPECT_EQ(Path("samples/P1/sample.json").entity, Entity::kSample);
  EXPECT_EQ(Path("samples/P1/slides").kind, NodeKind::kSlideList);

  EXPECT_EQ(Path("dyes/A647"), SpecOf(NodeKind::kDye, a647.id));
  EXPECT_EQ(Path("dyes/A647/dye.json").entity, Entity::kDye);
  EXPECT_EQ(Path("dyes/A647/slides").kind, NodeKind::kSlideList);

  EXPECT_EQ(Path("structures/actin"), SpecOf(NodeKind::kStructure, 0, "actin"));
  EXPECT_EQ(Path("structures/actin/slides").kind, NodeKind::kSlideList);

  EXPECT_EQ(Path("tags/good"), SpecOf(NodeKind::kTag, good.id));
  EXPECT_EQ(Path("tags/good/slides").kind, NodeKind::kSlideList);
  EXPECT_EQ(Path("tags/good/images"), SpecOf(NodeKind::kTagImages, good.id));
  EXPECT_EQ(Path("tags/good/files"), SpecOf(NodeKind::kTagFiles, good.id));

  EXPECT_EQ(Path("query/species=HeLa"), SpecOf(NodeKind::kQuery, 0, "species=HeLa"));
  EXPECT_EQ(Path("query/species=HeLa/slides").kind, NodeKind::kSlideList);
  EXPECT_EQ(Path("query/species=HeLa/images").kind, NodeKind::kQueryImages);

  EXPECT_EQ(Path("slides/S1"), SpecOf(NodeKind::kSlide, s1.id));
  EXPECT_EQ(Path("slides/S1/slide.json").entity, Entity::kSlide);
  EXPECT_EQ(Path("slides/S1/images"), SpecOf(NodeKind::kImages, s1.id));
  EXPECT_EQ(Path("slides/S1/images/img1"), SpecOf(NodeKind::kImage, img1.id));
  EXPECT_EQ(Path("slides/S1/images/img1/image.json").entity, Entity::kImage);
  EXPECT_EQ(Path("slides/S1/images/img1/files"), SpecOf(NodeKind::kFolder, files1.id));
  EXPECT_EQ(Path("slides/S1/images/img1/files/sub"), SpecOf(NodeKind::kFolder, sub.id));
  EXPECT_EQ(Path("slides/S1/images/img1/files/sub/a.tif"), SpecOf(NodeKind::kFile, tif.id));
  EXPECT_EQ(Path("slides/S1/images/img1/files/notes.txt"), SpecOf(NodeKind::kFile, txt.id));
  EXPECT_EQ(Path("slides/S1/images/img1/files/link"), SpecOf(NodeKind::kSymlink, link.id));

  EXPECT_EQ(Path(".samplefs/status.json").kind, NodeKind::kStatusFile);
  EXPECT_EQ(Path(".samplefs/errors").kind, NodeKind::kErrorsFile);
}

TEST_F(NamespaceTest, ASlideIsTheSameWhereverItIsReached) {
  NodeSpec canonical = Path("slides/S1");
  for (const char* p : {"species/HeLa/slides/S1", "samples/P1/slides/S1", "dyes/A647/slides/S1",
                        "dyes/DAPI/slides/S1", "structures/actin/slides/S1",
                        "structures/nucleus/slides/S1", "tags/good/slides/S1",
                        "query/species=HeLa,dye=A647,tag=good/slides/S1"}) {
    SCOPED_TRACE(p);
    EXPECT_EQ(Path(p), canonical);
    EXPECT_EQ(Path(std::string(p) + "/images/img1/files/sub/a.tif"), SpecOf(NodeKind::kFile, tif.id));
  }
}

TEST_F(NamespaceTest, SlideListsFilterTheirSlides) {
  // A slide of another species is not under species/HeLa/slides.
  EXPECT_CODE(Resolve("species/HeLa/slides/S2"), Code::kNotFound);
  EXPECT_OK(Resolve("species/Rat/slides/S2"));
  EXPECT_CODE(Resolve("species/Rat/slides/S1"), Code::kNotFound);
  EXPECT_CODE(Resolve("samples/P1/slides/S2"), Code::kNotFound);
  EXPECT_OK(Resolve("samples/P1/slides/S3"));
  EXPECT_CODE(Resolve("dyes/A647/slides/S2"), Code::kNotFound);
  EXPECT_CODE(Resolve("dyes/A647/slides/S3"), Code::kNotFound);
  EXPECT_OK(Resolve("dyes/DAPI/slides/S2"));
  EXPECT_CODE(Resolve("structures/nucleus/slides/S2"), Code::kNotFound);
  EXPECT_OK(Resolve("structures/actin/slides/S2"));
  EXPECT_CODE(Resolve("tags/good/slides/S2"), Code::kNotFound);
  EXPECT_CODE(Resolve("query/species=HeLa,dye=A647/slides/S3"), Code::kNotFound);
  EXPECT_CODE(Resolve("query/species=Rat/slides/S1"), Code::kNotFound);
  EXPECT_CODE(Resolve("slides/S9"), Code::kNotFound);
  EXPECT_CODE(Resolve("species/HeLa/slides/S9"), Code::kNotFound);

  EXPECT_THAT(NamesIn("species/HeLa/slides"), ElementsAre("S1", "S3"));
  EXPECT_THAT(NamesIn("species/Rat/slides"), ElementsAre("S2"));
  EXPECT_THAT(NamesIn("samples/P1/slides"), ElementsAre("S1", "S3"));
  EXPECT_THAT(NamesIn("dyes/A647/slides"), ElementsAre("S1"));
  EXPECT_THAT(NamesIn("dyes/DAPI/slides"), ElementsAre("S1", "S2"));
  EXPECT_THAT(NamesIn("structures/actin/slides"), ElementsAre("S1", "S2"));
  EXPECT_THAT(NamesIn("structures/nucleus/slides"), ElementsAre("S1"));
  EXPECT_THAT(NamesIn("tags/good/slides"), ElementsAre("S1"));
  EXPECT_THAT(NamesIn("query/species=HeLa/slides"), ElementsAre("S1", "S3"));
  EXPECT_THAT(NamesIn("query/user=carol/slides"), ElementsAre("S2"));
  EXPECT_THAT(NamesIn("query/creator=ann,species=Rat/slides"), ElementsAre("S2"));
  EXPECT_THAT(NamesIn("slides"), ElementsAre("S1", "S2", "S3"));
}

TEST_F(NamespaceTest, MissingNamesAreNotFound) {
  for (const char* p : {"species/Nope", "samples/Nope", "dyes/Nope", "structures/nope", "tags/nope",
                        "slides/S1/images/nope", "slides/S1/images/img1/files/nope",
                        "slides/S1/images/img1/files/sub/nope", "slides/S1/nope",
                        "slides/S1/images/img1/nope", "species/HeLa/nope", "samples/P1/nope",
                        "dyes/A647/nope", "structures/actin/nope", "tags/good/nope",
                        "query/species=HeLa/nope", ".samplefs/nope", "tags/good/images/S2:img2",
                        "tags/good/images/img1", "tags/good/files/notes.txt",
                        "query/species=Rat/images/S1:img1"}) {
    SCOPED_TRACE(p);
    EXPECT_CODE(Resolve(p), Code::kNotFound);
  }
  // Nothing is below a file.
  EXPECT_CODE(ns().Lookup(SpecOf(NodeKind::kFile, tif.id), "x"), Code::kNotFound);
  EXPECT_CODE(ns().Lookup(Path("slides/S1/slide.json"), "x"), Code::kNotFound);
}

TEST_F(NamespaceTest, MalformedQueryNamesAreInvalidWithAReason) {
  NodeSpec q = Path("query");
  auto no_eq = ns().Lookup(q, "species");
  EXPECT_CODE(no_eq, Code::kInvalidArgument);
  EXPECT_THAT(no_eq.status().message(), HasSubstr("key=value"));
  auto bad_date = ns().Lookup(q, "after=notadate");
  EXPECT_CODE(bad_date, Code::kInvalidArgument);
  EXPECT_THAT(bad_date.status().message(), HasSubstr("notadate"));
  EXPECT_THAT(bad_date.status().message(), HasSubstr("date"));
  for (const char* bad : {"species=", "=HeLa", "species=HeLa,", ",", "spe cies=HeLa",
                          "before=2024-02-30", "after=2024-1-1"}) {
    SCOPED_TRACE(bad);
    auto r = ns().Lookup(q, bad);
    EXPECT_CODE(r, Code::kInvalidArgument);
    EXPECT_FALSE(r.status().message().empty());
  }
  EXPECT_OK(ns().Lookup(q, "after=2000-01-01"));
  EXPECT_OK(ns().Lookup(q, "before=2999-12-31T23:59:59Z,species=HeLa"));
  // Any other key must be an annotation key of some slide: a misspelt key
  // is ENOENT (kReferenceMissing) with the known keys, not an empty answer.
  auto unknown = ns().Lookup(q, "stain_batch=7");
  EXPECT_CODE(unknown, Code::kReferenceMissing);
  EXPECT_THAT(unknown.status().message(), HasSubstr("known keys: species, sample"));
  ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s1.id, "stain_batch", "3"));
  EXPECT_OK(ns().Lookup(q, "stain_batch=7"));
  // The query view lists nothing.
  EXPECT_THAT(NamesIn("query"), IsEmpty());
}

TEST_F(NamespaceTest, QueriesFilterByDateAndAnnotation) {
  Slide old_slide = s3;
  old_slide.created = "2001-02-03T04:05:06Z";
  ASSERT_OK(cat().UpdateSlide(old_slide));
  ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s2.id, "batch", "7"));
  EXPECT_THAT(NamesIn("query/before=2002-01-01/slides"), ElementsAre("S3"));
  EXPECT_THAT(NamesIn("query/after=2002-01-01/slides"), ElementsAre("S1", "S2"));
  EXPECT_THAT(NamesIn("query/batch=7/slides"), ElementsAre("S2"));
  EXPECT_THAT(NamesIn("query/batch=8/slides"), IsEmpty());
}

TEST_F(NamespaceTest, NamesOver255BytesAreTooLong) {
  std::string n256(256, 'x'), n255(255, 'x');
  for (const char* p : {"", "species", "samples", "slides", "dyes", "structures", "tags", "query",
                        ".samplefs", "species/HeLa", "species/HeLa/slides", "slides/S1",
                        "slides/S1/images", "slides/S1/images/img1", "slides/S1/images/img1/files",
                        "tags/good/images", "tags/good/files", "query/species=HeLa/images"}) {
    SCOPED_TRACE(p);
    NodeSpec dir = Path(p);
    EXPECT_CODE(ns().Lookup(dir, n256), Code::kNameTooLong);
    auto r = ns().Lookup(dir, n255);
    EXPECT_NE(r.status().code(), Code::kNameTooLong);
  }
  EXPECT_CODE(ns().Lookup(Path("query"), "species=" + std::string(248, 'h')), Code::kNameTooLong);
  EXPECT_CODE(ns().Mkdir(Path("species"), n256, 0755, "ann"), Code::kNameTooLong);
  EXPECT_CODE(ns().Mkdir(Path("slides/S1/images/img1/files"), n256, 0755, "ann"), Code::kNameTooLong);
  EXPECT_CODE(ns().CreateFile(Path("slides/S1/images/img1/files"), n256, 0644, testing_util::HashN(0)),
              Code::kNameTooLong);
  EXPECT_CODE(ns().Rename(Path("slides/S1/images/img1/files"), "notes.txt",
                          Path("slides/S1/images/img1/files"), n256, 0),
              Code::kNameTooLong);
  // A 255-byte name is fine.
  EXPECT_OK(ns().Mkdir(Path("species"), n255, 0755, "ann"));
  EXPECT_OK(Resolve("species/" + n255));
}

TEST_F(NamespaceTest, NamesWithQuerySyntaxStillFilter) {
  // Record names may hold ',', '=' and '\\', which the filter of a slides/
  // listing must carry through its query expression.
  const std::string sp_name = "a,b=c\\d", sa_name = "x,y\\", dye_name = "Cy,5";
  Species sp = AddSpecies(sp_name);
  Sample sa = AddSample(sa_name, sp.id);
  Dye dy = AddDye(dye_name);
  Slide odd = AddSlide("odd", sa.id);
  AddLabelling(odd.id, "memb,rane", dy.id);
  ASSERT_OK(cat().SetTags(Entity::kSlide, odd.id, {"t=1\\"}));
  for (const std::string& p : {"species/" + sp_name + "/slides", "samples/" + sa_name + "/slides",
                               "dyes/" + dye_name + "/slides", std::string("structures/memb,rane/slides"),
                               std::string("tags/t=1\\/slides")}) {
    SCOPED_TRACE(p);
    EXPECT_THAT(NamesIn(p), ElementsAre("odd"));
    EXPECT_EQ(Path(p + "/odd"), SpecOf(NodeKind::kSlide, odd.id));
    EXPECT_CODE(Resolve(p + "/S1"), Code::kNotFound);
  }
  NodeSpec made = MUST(ns().Mkdir(Path("species/" + sp_name + "/slides"), "odd2", 0755, "ann"));
  EXPECT_EQ(MUST(cat().SampleById(MUST(cat().SlideById(made.record_id)).sample_id)).species_id, sp.id);
  made = MUST(ns().Mkdir(Path("samples/" + sa_name + "/slides"), "odd3", 0755, "ann"));
  EXPECT_EQ(MUST(cat().SlideById(made.record_id)).sample_id, sa.id);
}

// ---------------------------------------------------------------------------
// Listing.

TEST_F(NamespaceTest, FixedChildrenOfEachNode) {
  EXPECT_THAT(NamesIn(".samplefs"), ElementsAre("status.json", "errors"));
  EXPECT_THAT(NamesIn("species"), ElementsAre("HeLa", "Rat"));
  EXPECT_THAT(NamesIn("species/HeLa"), ElementsAre("species.json", "slides"));
  EXPECT_THAT(NamesIn("samples"), ElementsAre("P1", "P2"));
  EXPECT_THAT(NamesIn("samples/P1"), ElementsAre("sample.json", "slides"));
  EXPECT_THAT(NamesIn("dyes"), ElementsAre("A647", "DAPI"));
  EXPECT_THAT(NamesIn("dyes/A647"), ElementsAre("dye.json", "slides"));
  EXPECT_THAT(NamesIn("structures"), UnorderedElementsAre("actin", "nucleus"));
  EXPECT_THAT(NamesIn("structures/actin"), ElementsAre("slides"));
  EXPECT_THAT(NamesIn("tags"), ElementsAre("good"));
  EXPECT_THAT(NamesIn("tags/good"), ElementsAre("slides", "images", "files"));
  EXPECT_THAT(NamesIn("query/species=HeLa"), ElementsAre("slides", "images"));
  EXPECT_THAT(NamesIn("slides/S1"), ElementsAre("slide.json", "images"));
  EXPECT_THAT(NamesIn("slides/S1/images"), ElementsAre("img1"));
  EXPECT_THAT(NamesIn("slides/S3/images"), IsEmpty());
  EXPECT_THAT(NamesIn("slides/S1/images/img1"), ElementsAre("image.json", "files"));
  EXPECT_THAT(NamesIn("slides/S1/images/img1/files"), ElementsAre("sub", "notes.txt", "link"));
  EXPECT_THAT(NamesIn("slides/S1/images/img1/files/sub"), ElementsAre("a.tif"));
  EXPECT_THAT(NamesIn("tags/good/images"), ElementsAre("S1:img1"));
  EXPECT_THAT(NamesIn("tags/good/files"), ElementsAre("S1:img1:sub:a.tif"));
  EXPECT_THAT(NamesIn("query/species=HeLa/images"), ElementsAre("S1:img1"));
  EXPECT_THAT(NamesIn("query/dye=DAPI/images"), ElementsAre("S1:img1", "S2:img2"));
}

TEST_F(NamespaceTest, ListAndLookupAgreeEverywhere) {
  int dirs = 0;
  CheckTree(RootSpec(), "", 9, &dirs);
  for (const char* q : {"query/species=HeLa", "query/dye=DAPI", "query/tag=good,structure=actin"}) {
    CheckTree(Path(q), q, 7, &dirs);
  }
  EXPECT_GT(dirs, 100);
}

TEST_F(NamespaceTest, ListResumesFromEveryCookie) {
  // Resuming from the cookie of any entry continues right after it.
  for (const char* p : {"", "species/HeLa", "slides", "slides/S1/images/img1",
                        "slides/S1/images/img1/files", "tags/good", "structures"}) {
    SCOPED_TRACE(p);
    NodeSpec dir = Path(p);
    auto all = ListAll(dir);
    for (size_t i = 0; i < all.size(); ++i) {
      std::vector<std::string> rest;
      ASSERT_OK(ns().List(dir, all[i].next_cookie, [&](const DirEntry& e) {
        rest.push_back(e.name);
        return true;
      }));
      std::vector<std::string> expected;
      for (size_t k = i + 1; k < all.size(); ++k) expected.push_back(all[k].name);
      EXPECT_EQ(rest, expected) << "after " << all[i].name;
    }
  }
}

TEST_F(NamespaceTest, AThousandEntryFolderListsEveryEntryOnceInSmallPages) {
  Image big = AddImage(s3.id, "big");
  Entry root = MUST(cat().FilesRoot(big.id));
  std::set<std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "f" + std::to_string(i);
    if (i % 10 == 0) AddFolder(root.id, n);
    else AddFile(root.id, n, i, i + 1);
    expected.insert(n);
  }
  NodeSpec dir = Path("slides/S3/images/big/files");
  for (size_t page : {1u, 7u, 255u, 256u, 257u, 1000u, 5000u}) {
    SCOPED_TRACE(page);
    auto got = Names(ListPaged(dir, page));
    EXPECT_EQ(got.size(), 1000u);
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), expected);
  }
}

TEST_F(NamespaceTest, RmRfDuringAListingOfAThousandEntriesLosesNothing) {
  Image big = AddImage(s3.id, "big");
  Entry root = MUST(cat().FilesRoot(big.id));
  std::vector<std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    std::string n = "f" + std::to_string(i);
    AddFile(root.id, n, i, i + 1);
    expected.push_back(n);
  }
  NodeSpec dir = Path("slides/S3/images/big/files");
  // Like rm -rf: each page is unlinked before the next is read.
  std::vector<std::string> got = Names(ListPaged(dir, 13, [&](const std::vector<DirEntry>& page) {
    for (const auto& e : page) ASSERT_OK(ns().Unlink(dir, e.name));
  }));
  EXPECT_THAT(got, UnorderedElementsAreArray(expected));
  EXPECT_THAT(NamesIn("slides/S3/images/big/files"), IsEmpty());
  EXPECT_OK(ns().Rmdir(Path("slides/S3/images"), "big"));
}

// A view and how to remove one of its entries (false: this entry belongs
// to the fixture and stays).
struct ViewCase {
  std::string dir;
  std::function<bool(const DirEntry&)> remove;
};

class ListStabilityTest : public NamespaceTest {
 protected:
  // Lists `dir` in pages of 3; after each page removes the page's entries
  // (like rm -rf) and one removable entry not yet listed (a concurrent rm).
  // Every entry not removed before it was listed is listed exactly once.
  void CheckStable(const ViewCase& vc) {
    SCOPED_TRACE(vc.dir);
    NodeSpec dir = Path(vc.dir);
    auto initial = ListAll(dir);
    ASSERT_GE(initial.size(), 12u) << "the fixture should fill " << vc.dir;
    std::set<std::string> removed_unlisted, listed, tried;
    std::vector<std::string> got = Names(ListPaged(dir, 3, [&](const std::vector<DirEntry>& page) {
      for (const auto& e : page) listed.insert(e.name);
      for (const auto& e : page) tried.insert(e.name), vc.remove(e);
      for (auto it = initial.rbegin(); it != initial.rend(); ++it) {
        if (listed.count(it->name) || tried.count(it->name)) continue;
        tried.insert(it->name);
        if (vc.remove(*it)) {
          removed_unlisted.insert(it->name);
          break;
        }
      }
    }));
    std::vector<std::string> expected;
    for (const auto& e : initial)
      if (!removed_unlisted.count(e.name)) expected.push_back(e.name);
    EXPECT_THAT(got, UnorderedElementsAreArray(expected));
    EXPECT_GE(removed_unlisted.size(), 2u);
  }
};

TEST_F(ListStabilityTest, EveryViewKeepsItsPlaceWhileEntriesAreDeleted) {
  const int kN = 20;
  // species/, samples/, dyes/, tags/ with removable records.
  Species empty_sp = AddSpecies("Empty");
  std::set<std::string> removable;
  for (int i = 0; i < kN; ++i) {
    std::string n = std::to_string(i);
    AddSpecies("sp" + n);
    AddSample("sa" + n, empty_sp.id);
    AddDye("dy" + n);
    MUST(cat().CreateTag("tg" + n));
    removable.insert({"sp" + n, "sa" + n, "dy" + n, "tg" + n});
  }
  auto rmdir_in = [&](const std::string& view) {
    return [this, view, &removable](const DirEntry& e) {
      if (!removable.count(e.name)) return false;
      EXPECT_OK(ns().Rmdir(Path(view), e.name));
      return true;
    };
  };
  CheckStable({"species", rmdir_in("species")});
  CheckStable({"samples", rmdir_in("samples")});
  CheckStable({"dyes", rmdir_in("dyes")});
  CheckStable({"tags", rmdir_in("tags")});

  // Slides: in slides/ and in every kind of slides/ listing. Each slide is
  // in P1 (HeLa), labelled, tagged and annotated, so every filter has them.
  Dye dz = AddDye("DZ");
  std::set<int64_t> made;
  auto make_slides = [&](const std::string& prefix) {
    for (int i = 0; i < kN; ++i) {
      Slide s = AddSlide(prefix + std::to_string(i), p1.id, "dora");
      AddLabelling(s.id, "mito", dz.id);
      ASSERT_OK(cat().SetTags(Entity::kSlide, s.id, {"many"}));
      ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s.id, "lot", "9"));
      made.insert(s.id);
    }
  };
  auto rm_slide = [&](const DirEntry& e) {
    if (!made.count(e.spec.record_id)) return false;
    // Labellings, tags and annotations go first, then the slide.
    EXPECT_OK(cat().ReplaceLabellings(e.spec.record_id, {}));
    EXPECT_OK(cat().SetTags(Entity::kSlide, e.spec.record_id, {}));
    EXPECT_OK(cat().RemoveAnnotation(Entity::kSlide, e.spec.record_id, "lot"));
    EXPECT_OK(cat().DeleteSlide(e.spec.record_id));
    return true;
  };
  int round = 0;
  for (const char* view : {"slides", "species/HeLa/slides", "samples/P1/slides", "dyes/DZ/slides",
                           "structures/mito/slides", "tags/many/slides",
                           "query/creator=dora,lot=9/slides"}) {
    make_slides("x" + std::to_string(round++) + "_");
    CheckStable({view, rm_slide});
  }

  // Images of a slide.
  for (int i = 0; i < kN; ++i) AddImage(s3.id, "im" + std::to_string(i));
  CheckStable({"slides/S3/images", [&](const DirEntry& e) {
                 EXPECT_OK(ns().Rmdir(Path("slides/S3/images"), e.name));
                 return true;
               }});

  // A folder of files/.
  for (int i = 0; i < kN; ++i) AddFile(sub.id, "g" + std::to_string(i), 1, i + 100);
  CheckStable({"slides/S1/images/img1/files/sub", [&](const DirEntry& e) {
                 EXPECT_OK(ns().Unlink(Path("slides/S1/images/img1/files/sub"), e.name));
                 return true;
               }});

  // tags/<t>/images and tags/<t>/files: untagging removes the entry.
  for (int i = 0; i < kN; ++i) {
    Image im = AddImage(s2.id, "t" + std::to_string(i));
    ASSERT_OK(cat().SetTags(Entity::kImage, im.id, {"hot"}));
    Entry f = AddFile(MUST(cat().FilesRoot(im.id)).id, "h" + std::to_string(i), 1, i + 200);
    ASSERT_OK(cat().SetTags(Entity::kEntry, f.id, {"hot"}));
  }
  CheckStable({"tags/hot/images", [&](const DirEntry& e) {
                 EXPECT_OK(cat().SetTags(Entity::kImage, e.spec.record_id, {}));
                 return true;
               }});
  CheckStable({"tags/hot/files", [&](const DirEntry& e) {
                 EXPECT_OK(cat().SetTags(Entity::kEntry, e.spec.record_id, {}));
                 return true;
               }});

  // query/<e>/images: removing an image.
  for (int i = 0; i < kN; ++i) AddImage(s3.id, "q" + std::to_string(i));
  CheckStable({"query/sample=P1/images", [&](const DirEntry& e) {
                 if (e.spec.record_id == img1.id) return false;
                 EXPECT_OK(cat().DeleteImage(e.spec.record_id));
                 return true;
               }});

  // structures/: a structure goes away with its last labelling.
  Slide holder = AddSlide("holder", p2.id);
  std::map<std::string, int64_t> labelling_of;
  for (int i = 0; i < kN; ++i) {
    std::string st = "st" + std::to_string(i);
    labelling_of[st] = AddLabelling(holder.id, st, dapi.id).id;
  }
  CheckStable({"structures", [&](const DirEntry& e) {
                 auto it = labelling_of.find(e.name);
                 if (it == labelling_of.end()) return false;
                 EXPECT_OK(cat().DeleteLabelling(it->second));
                 return true;
               }});
}

TEST_F(NamespaceTest, StructuresListEveryEntryOnceWhenStructuresAreAdded) {
  // New structures that sort before the listing position must not push an
  // already listed structure into the next page again.
  Slide holder = AddSlide("holder", p2.id);
  for (int i = 0; i < 10; ++i) AddLabelling(holder.id, "m" + std::to_string(i), dapi.id);
  int added = 0;
  auto got = Names(ListPaged(Path("structures"), 2, [&](const std::vector<DirEntry>&) {
    if (added < 20) AddLabelling(holder.id, "a" + std::to_string(added++), dapi.id);
  }));
  std::set<std::string> unique(got.begin(), got.end());
  EXPECT_EQ(unique.size(), got.size()) << ::testing::PrintToString(got);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(unique.count("m" + std::to_string(i)));
}

TEST_F(NamespaceTest, QueryImagesListEveryImageOnceAcrossPages) {
  // Image ids do not follow slide order: S3's images are older than S1's
  // newest one, and an image moved from S2 into S1 keeps its small id.
  Image early3 = AddImage(s3.id, "early3");
  Image late1 = AddImage(s1.id, "late1");
  Image late3 = AddImage(s3.id, "late3");
  ASSERT_OK(ns().Rename(Path("slides/S2/images"), "img2", Path("slides/S1/images"), "moved", 0));
  std::vector<std::string> expected = {"S1:img1", "S1:late1", "S1:moved", "S3:early3", "S3:late3"};
  EXPECT_THAT(NamesIn("query/species=HeLa/images"), UnorderedElementsAreArray(expected));
  for (size_t page : {1u, 2u, 3u}) {
    SCOPED_TRACE(page);
    EXPECT_THAT(Names(ListPaged(Path("query/species=HeLa/images"), page)),
                UnorderedElementsAreArray(expected));
  }
  (void)early3;
  (void)late1;
  (void)late3;
}

TEST_F(NamespaceTest, TaggedImagesAreSlideColonImageAndLookUpBack) {
  Slide colon_slide = AddSlide("A:B", p1.id);
  Image colon_image = AddImage(colon_slide.id, "C:D");
  ASSERT_OK(cat().SetTags(Entity::kImage, colon_image.id, {"good"}));
  auto listing = ListAll(Path("tags/good/images"));
  EXPECT_THAT(Names(listing), ElementsAre("S1:img1", "A:B:C:D"));
  for (const auto& e : listing) EXPECT_EQ(MUST(ns().Lookup(Path("tags/good/images"), e.name)), e.spec);
  EXPECT_EQ(Path("tags/good/images/A:B:C:D"), SpecOf(NodeKind::kImage, colon_image.id));
  EXPECT_EQ(Path("tags/good/images/A:B:C:D/files"),
            SpecOf(NodeKind::kFolder, MUST(cat().FilesRoot(colon_image.id)).id));
  // The same through a query.
  EXPECT_EQ(Path("query/sample=P1/images/A:B:C:D"), SpecOf(NodeKind::kImage, colon_image.id));
  EXPECT_CODE(Resolve("tags/good/images/A:B"), Code::kNotFound);
  EXPECT_CODE(Resolve("tags/good/images/A:B:C"), Code::kNotFound);
}

TEST_F(NamespaceTest, ColonNamesThatLookAlikeStayDistinct) {
  // "A:B" + "C" and "A" + "B:C" would both read "A:B:C".
  Slide ab = AddSlide("A:B", p1.id);
  Slide a = AddSlide("A", p1.id);
  Image ab_c = AddImage(ab.id, "C");
  Image a_bc = AddImage(a.id, "B:C");
  ASSERT_OK(cat().SetTags(Entity::kImage, ab_c.id, {"twin"}));
  ASSERT_OK(cat().SetTags(Entity::kImage, a_bc.id, {"twin"}));
  for (const char* p : {"tags/twin/images", "query/sample=P1/images"}) {
    SCOPED_TRACE(p);
    auto listing = ListAll(Path(p));
    std::set<std::string> names;
    std::set<int64_t> ids;
    for (const auto& e : listing) {
      EXPECT_TRUE(names.insert(e.name).second) << "two entries named " << e.name;
      ids.insert(e.spec.record_id);
      EXPECT_EQ(MUST(ns().Lookup(Path(p), e.name)), e.spec) << e.name;
    }
    EXPECT_TRUE(ids.count(ab_c.id));
    EXPECT_TRUE(ids.count(a_bc.id));
  }
}

TEST_F(NamespaceTest, TaggedFilesThatReadAlikeStayDistinct) {
  // File "sub:b.tif" (created first) and sub/b.tif would both read
  // "S1:img1:sub:b.tif"; so would image "img1:sub" with file b.tif.
  Entry colon_file = AddFile(files1.id, "sub:b.tif", 1, 30);
  Entry plain_file = AddFile(sub.id, "b.tif", 1, 31);
  Image colon_image = AddImage(s1.id, "img1:sub");
  Entry third = AddFile(MUST(cat().FilesRoot(colon_image.id)).id, "b.tif", 1, 32);
  for (const Entry& e : {colon_file, plain_file, third})
    ASSERT_OK(cat().SetTags(Entity::kEntry, e.id, {"twin"}));
  auto listing = ListAll(Path("tags/twin/files"));
  ASSERT_EQ(listing.size(), 3u);
  std::set<std::string> names;
  std::set<int64_t> ids;
  for (const auto& e : listing) {
    EXPECT_TRUE(names.insert(e.name).second) << "two entries named " << e.name;
    EXPECT_LE(e.name.size(), kMaxNameBytes);
    ids.insert(e.spec.record_id);
    EXPECT_EQ(MUST(ns().Lookup(Path("tags/twin/files"), e.name)), e.spec) << e.name;
  }
  EXPECT_EQ(ids, (std::set<int64_t>{colon_file.id, plain_file.id, third.id}));
  // The file whose parts have no ':' keeps the plain name.
  EXPECT_EQ(Path("tags/twin/files/S1:img1:sub:b.tif"), SpecOf(NodeKind::kFile, plain_file.id));
}

TEST_F(NamespaceTest, NamesOutsideTheirPlaceFitIn255Bytes) {
  Slide long_slide = AddSlide(std::string(200, 's'), p1.id);
  Image long_image = AddImage(long_slide.id, std::string(100, 'i') + ".czi");
  ASSERT_OK(cat().SetTags(Entity::kImage, long_image.id, {"long"}));
  Entry deep = AddFolder(MUST(cat().FilesRoot(long_image.id)).id, std::string(255, 'd'));
  Entry f = AddFile(deep.id, std::string(251, 'f') + ".tif", 1, 40);
  ASSERT_OK(cat().SetTags(Entity::kEntry, f.id, {"long"}));
  for (const char* p : {"tags/long/images", "tags/long/files", "query/creator=ann/images",
                        "query/sample=P1/images"}) {
    SCOPED_TRACE(p);
    auto listing = ListAll(Path(p));
    ASSERT_FALSE(listing.empty());
    for (const auto& e : listing) {
      EXPECT_LE(e.name.size(), kMaxNameBytes) << e.name;
      auto back = ns().Lookup(Path(p), e.name);
      ASSERT_OK(back);
      EXPECT_EQ(*back, e.spec);
    }
  }
  (void)f;
}

TEST_F(NamespaceTest, TaggedFilesAreFlatAndLookUpBack) {
  Entry deep = AddFolder(sub.id, "deep");
  Entry f = AddFile(deep.id, "x:y.csv", 3, 9);
  ASSERT_OK(cat().SetTags(Entity::kEntry, f.id, {"good"}));
  ASSERT_OK(cat().SetTags(Entity::kEntry, deep.id, {"good"}));
  auto listing = ListAll(Path("tags/good/files"));
  EXPECT_THAT(Names(listing), ElementsAre("S1:img1:sub:a.tif", "S1:img1:sub:deep", "S1:img1:sub:deep:x:y.csv"));
  for (const auto& e : listing) EXPECT_EQ(MUST(ns().Lookup(Path("tags/good/files"), e.name)), e.spec);
  EXPECT_EQ(Path("tags/good/files/S1:img1:sub:deep").kind, NodeKind::kFolder);
  // A path too long for one name falls back to "<id>:<name>".
  Entry longdir = AddFolder(files1.id, std::string(200, 'd'));
  Entry far = AddFile(longdir.id, std::string(100, 'f'), 1, 3);
  ASSERT_OK(cat().SetTags(Entity::kEntry, far.id, {"good"}));
  std::string fallback = std::to_string(far.id) + ":" + std::string(100, 'f');
  EXPECT_EQ(Path("tags/good/files/" + fallback), SpecOf(NodeKind::kFile, far.id));
  EXPECT_THAT(NamesIn("tags/good/files"), ::testing::Contains(fallback));
}

// ---------------------------------------------------------------------------
// Attributes.

TEST_F(NamespaceTest, EntryAttrComesFromTheRecord) {
  auto st = MUST(ns().Attr(SpecOf(NodeKind::kFile, tif.id)));
  EXPECT_EQ(st.st_mode, S_IFREG | 0640);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_blocks, 2);
  EXPECT_EQ(st.st_ino, 0u);

  // A folder's times moved when its entries were created (issue 18); its
  // links are 2 + its subfolders.
  auto dir = MUST(ns().Attr(SpecOf(NodeKind::kFolder, sub.id)));
  Entry sub_now = MUST(cat().EntryById(sub.id));
  EXPECT_EQ(dir.st_mode, S_IFDIR | 0750);
  EXPECT_EQ(dir.st_mtim.tv_sec, sub_now.mtime_ns / 1000000000);
  EXPECT_EQ(dir.st_ctim.tv_sec, sub_now.ctime_ns / 1000000000);
  EXPECT_EQ(dir.st_nlink, static_cast<nlink_t>(2 + sub_now.subfolders));
  EXPECT_EQ(st.st_nlink, 1u);

  auto ln = MUST(ns().Attr(SpecOf(NodeKind::kSymlink, link.id)));
  EXPECT_EQ(ln.st_mode, S_IFLNK | 0777);
  EXPECT_EQ(ln.st_size, static_cast<off_t>(std::string("sub/a.tif").size()));

  // files/ with no time of its own (0: nothing changed in it yet) shows
  // the mount time.
  ASSERT_OK(cat().db().Exec("UPDATE entry SET mtime_ns = 0, ctime_ns = 0 WHERE id = " + std::to_string(files1.id)));
  auto root = MUST(ns().Attr(SpecOf(NodeKind::kFolder, files1.id)));
  EXPECT_TRUE(S_ISDIR(root.st_mode));
  EXPECT_EQ(root.st_mtim.tv_sec, kMountTime);

  // After an update the attributes follow.
  Entry changed = tif;
  changed.size = 4096;
  changed.mode = 0600;
  changed.mtime_ns = 1700000001000000002;
  ASSERT_OK(cat().UpdateEntry(changed));
  st = MUST(ns().Attr(SpecOf(NodeKind::kFile, tif.id)));
  EXPECT_EQ(st.st_mode, S_IFREG | 0600);
  EXPECT_EQ(st.st_size, 4096);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000001);
  EXPECT_EQ(st.st_mtim.tv_nsec, 2);

  // The listing of files/ carries the same attributes.
  for (const auto& e : ListAll(Path("slides/S1/images/img1/files/sub"))) {
    ASSERT_TRUE(e.attr.has_value());
    EXPECT_EQ(e.attr->st_size, 4096);
    EXPECT_EQ(e.attr->st_mode, S_IFREG | 0600);
  }
  EXPECT_CODE(ns().Attr(SpecOf(NodeKind::kFile, 999999)), Code::kNotFound);
}

TEST_F(NamespaceTest, RecordDirectoriesTakeTheirTimesFromTheRecord) {
  Image dated = img1;
  dated.acquired = "2021-03-04T05:06:07Z";
  ASSERT_OK(cat().UpdateImage(dated));
  auto st = MUST(ns().Attr(Path("slides/S1/images/img1")));
  EXPECT_EQ(st.st_mode, S_IFDIR | 0755);
  EXPECT_EQ(st.st_mtim.tv_sec, 1614834367);

  Slide s = MUST(cat().SlideById(s1.id));
  auto sst = MUST(ns().Attr(Path("slides/S1")));
  EXPECT_EQ(sst.st_mtim.tv_sec, ParseIso8601(s.modified));
  EXPECT_GT(sst.st_mtim.tv_sec, 1600000000);

  EXPECT_EQ(ParseIso8601("2021-03-04T05:06:07Z"), 1614834367);
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseIso8601("garbage"), 0);
}

TEST_F(NamespaceTest, AttrOfSidecarsAndStatusEqualsTheRenderedSize) {
  ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s1.id, "note", "héllo \"quoted\"\n"));
  for (const char* p : {"species/HeLa/species.json", "samples/P1/sample.json", "dyes/A647/dye.json",
                        "slides/S1/slide.json", "slides/S1/images/img1/image.json",
                        ".samplefs/status.json"}) {
    SCOPED_TRACE(p);
    NodeSpec n = Path(p);
    auto st = MUST(ns().Attr(n));
    auto body = MUST(ns().Render(n));
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_size, static_cast<off_t>(body.size()));
    EXPECT_EQ(st.st_blocks, static_cast<blkcnt_t>((body.size() + 511) / 512));
    EXPECT_FALSE(body.empty());
    EXPECT_EQ(body.back(), '\n');
  }
  EXPECT_EQ(MUST(ns().Attr(Path("slides/S1/slide.json"))).st_mode, S_IFREG | 0644);
  EXPECT_EQ(MUST(ns().Attr(Path(".samplefs/status.json"))).st_mode, S_IFREG | 0444);
  EXPECT_EQ(MUST(ns().Attr(Path(".samplefs/errors"))).st_mode, S_IFREG | 0444);
  auto status = nlohmann::json::parse(MUST(ns().Render(Path(".samplefs/status.json"))));
  EXPECT_EQ(status["slides"], 3);
  EXPECT_EQ(status["species"], 2);
  EXPECT_EQ(status["files"], 2);
  EXPECT_EQ(status["folders"], 1);
  EXPECT_EQ(status["mounted_at"], kMountTime);
  // A sidecar of a deleted record is gone.
  EXPECT_OK(cat().DeleteSlide(s3.id));
  NodeSpec gone;
  gone.kind = NodeKind::kSidecar;
  gone.entity = Entity::kSlide;
  gone.record_id = s3.id;
  EXPECT_CODE(ns().Attr(gone), Code::kNotFound);
  EXPECT_CODE(ns().Render(Path("slides")), Code::kInvalidArgument);
}

TEST_F(NamespaceTest, DirectoriesThatCreateAreWritable) {
  auto mode = [&](const std::string& p) { return MUST(ns().Attr(Path(p))).st_mode & 07777; };
  for (const char* p : {"species", "samples", "dyes", "tags", "slides", "species/HeLa/slides",
                        "samples/P1/slides", "slides/S1/images/img1/files"})
    EXPECT_EQ(mode(p), 0755u) << p;
  for (const char* p : {"", "structures", "query", ".samplefs", "dyes/A647/slides",
                        "structures/actin/slides", "tags/good/slides", "query/species=HeLa,dye=A647/slides",
                        "tags/good/images", "tags/good/files"})
    EXPECT_EQ(mode(p), 0555u) << p;
  auto st = MUST(ns().Attr(Path("species/HeLa")));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_mtim.tv_sec, kMountTime);
  EXPECT_CODE(ns().Attr(SpecOf(NodeKind::kSpecies, 999)), Code::kNotFound);
  EXPECT_CODE(ns().Attr(SpecOf(NodeKind::kSlide, 999)), Code::kNotFound);
  EXPECT_CODE(ns().Attr(SpecOf(NodeKind::kImage, 999)), Code::kNotFound);
}

// ---------------------------------------------------------------------------
// mkdir.

TEST_F(NamespaceTest, MkdirCreatesSpeciesDyesAndTags) {
  NodeSpec sp = MUST(ns().Mkdir(Path("species"), "Mouse", 0755, "ann"));
  EXPECT_EQ(sp.kind, NodeKind::kSpecies);
  EXPECT_EQ(Path("species/Mouse"), sp);
  EXPECT_EQ(MUST(cat().SpeciesByName("Mouse")).id, sp.record_id);
  EXPECT_CODE(ns().Mkdir(Path("species"), "Mouse", 0755, "ann"), Code::kAlreadyExists);

  NodeSpec dy = MUST(ns().Mkdir(Path("dyes"), "Cy3", 0755, "ann"));
  EXPECT_EQ(Path("dyes/Cy3"), dy);
  EXPECT_CODE(ns().Mkdir(Path("dyes"), "Cy3", 0755, "ann"), Code::kAlreadyExists);

  NodeSpec tg = MUST(ns().Mkdir(Path("tags"), "todo", 0755, "ann"));
  EXPECT_EQ(Path("tags/todo"), tg);
  EXPECT_CODE(ns().Mkdir(Path("tags"), "todo", 0755, "ann"), Code::kAlreadyExists);
  EXPECT_CODE(ns().Mkdir(Path("tags"), "a,b", 0755, "ann"), Code::kInvalidArgument);
  EXPECT_CODE(ns().Mkdir(Path("species"), "a/b", 0755, "ann"), Code::kInvalidArgument);
  EXPECT_CODE(ns().Mkdir(Path("species"), "..", 0755, "ann"), Code::kInvalidArgument);
  EXPECT_CODE(ns().Mkdir(Path("species"), "", 0755, "ann"), Code::kInvalidArgument);
  EXPECT_CODE(ns().Mkdir(Path("species"), "\xff\xfe", 0755, "ann"), Code::kInvalidArgument);
}

TEST_F(NamespaceTest, MkdirSampleGoesToUnspecifiedSpecies) {
  NodeSpec sa = MUST(ns().Mkdir(Path("samples"), "P9", 0755, "ann"));
  EXPECT_EQ(Path("samples/P9"), sa);
  Sample rec = MUST(cat().SampleById(sa.record_id));
  Species unspecified = MUST(cat().SpeciesByName("Unspecified"));
  EXPECT_EQ(rec.species_id, unspecified.id);
  // The second one reuses it.
  NodeSpec sb = MUST(ns().Mkdir(Path("samples"), "P10", 0755, "ann"));
  EXPECT_EQ(MUST(cat().SampleById(sb.record_id)).species_id, unspecified.id);
  EXPECT_THAT(NamesIn("species"), ElementsAre("HeLa", "Rat", "Unspecified"));
  EXPECT_CODE(ns().Mkdir(Path("samples"), "P1", 0755, "ann"), Code::kAlreadyExists);
}

TEST_F(NamespaceTest, MkdirSlideUnderASpeciesMakesASampleNamedAfterIt) {
  NodeSpec s7 = MUST(ns().Mkdir(Path("species/HeLa/slides"), "S7", 0755, "ann"));
  EXPECT_EQ(s7.kind, NodeKind::kSlide);
  Slide rec = MUST(cat().SlideById(s7.record_id));
  EXPECT_EQ(rec.reference, "S7");
  EXPECT_EQ(rec.creator, "ann");
  Sample sa = MUST(cat().SampleById(rec.sample_id));
  EXPECT_EQ(sa.name, "S7");
  EXPECT_EQ(sa.species_id, hela.id);
  EXPECT_EQ(Path("species/HeLa/slides/S7"), s7);
  EXPECT_EQ(Path("samples/S7/slides/S7"), s7);
  EXPECT_EQ(Path("slides/S7"), s7);

  // A sample "S8" exists already (of another species): the new one is "S8-2",
  // then "S8-3".
  AddSample("S8", rat.id);
  NodeSpec s8 = MUST(ns().Mkdir(Path("species/HeLa/slides"), "S8", 0755, "ann"));
  EXPECT_EQ(MUST(cat().SampleById(MUST(cat().SlideById(s8.record_id)).sample_id)).name, "S8-2");
  EXPECT_EQ(MUST(cat().SampleById(MUST(cat().SlideById(s8.record_id)).sample_id)).species_id, hela.id);
  AddSample("T", rat.id);
  AddSample("T-2", rat.id);
  NodeSpec t = MUST(ns().Mkdir(Path("species/Rat/slides"), "T", 0755, "ann"));
  EXPECT_EQ(MUST(cat().SampleById(MUST(cat().SlideById(t.record_id)).sample_id)).name, "T-3");

  // A slide that exists already: refused, and no stray sample is left.
  EXPECT_CODE(ns().Mkdir(Path("species/HeLa/slides"), "S1", 0755, "ann"), Code::kAlreadyExists);
  EXPECT_CODE(cat().SampleByName("S1"), Code::kNotFound);
}

TEST_F(NamespaceTest, MkdirSlideUnderASample) {
  NodeSpec s9 = MUST(ns().Mkdir(Path("samples/P2/slides"), "S9", 0755, "eve"));
  Slide rec = MUST(cat().SlideById(s9.record_id));
  EXPECT_EQ(rec.sample_id, p2.id);
  EXPECT_EQ(rec.creator, "eve");
  EXPECT_EQ(Path("species/Rat/slides/S9"), s9);
  EXPECT_CODE(ns().Mkdir(Path("samples/P2/slides"), "S1", 0755, "eve"), Code::kAlreadyExists);
}

TEST_F(NamespaceTest, MkdirWhereItHasNoMeaningIsRefusedAndChangesNothing) {
  auto before = MUST(cat().Stats());
  EXPECT_CODE(ns().Mkdir(Path("slides"), "S10", 0755, "ann"), Code::kPermission);
  for (const char* p : {"dyes/A647/slides", "structures/actin/slides", "tags/good/slides",
                        "query/dye=A647/slides", "query/species=HeLa,dye=A647/slides", "",
                        ".samplefs", "structures", "structures/actin", "query", "query/species=HeLa",
                        "tags/good", "tags/good/images", "tags/good/files", "query/species=HeLa/images",
                        "species/HeLa", "samples/P1", "dyes/A647", "slides/S1", "slides/S1/images/img1"}) {
    SCOPED_TRACE(p);
    auto r = ns().Mkdir(Path(p), "S11", 0755, "ann");
    EXPECT_CODE(r, Code::kPermission);
    EXPECT_FALSE(r.status().message().empty());
  }
  EXPECT_CODE(ns().Mkdir(SpecOf(NodeKind::kFile, tif.id), "x", 0755, "ann"), Code::kPermission);
  auto after = MUST(cat().Stats());
  EXPECT_EQ(before.slides, after.slides);
  EXPECT_EQ(before.samples, after.samples);
  EXPECT_EQ(before.folders, after.folders);
  EXPECT_EQ(before.images, after.images);
  EXPECT_CODE(Resolve("slides/S11"), Code::kNotFound);
}

TEST_F(NamespaceTest, MkdirImagesAndFolders) {
  NodeSpec im = MUST(ns().Mkdir(Path("slides/S3/images"), "cell01", 0755, "frank"));
  EXPECT_EQ(im.kind, NodeKind::kImage);
  Image rec = MUST(cat().ImageById(im.record_id));
  EXPECT_EQ(rec.user, "frank");
  EXPECT_EQ(rec.slide_id, s3.id);
  EXPECT_EQ(Path("slides/S3/images/cell01"), im);
  EXPECT_EQ(Path("species/HeLa/slides/S3/images/cell01"), im);
  EXPECT_THAT(NamesIn("slides/S3/images/cell01/files"), IsEmpty());
  EXPECT_CODE(ns().Mkdir(Path("slides/S3/images"), "cell01", 0755, "frank"), Code::kAlreadyExists);

  NodeSpec d = MUST(ns().Mkdir(Path("slides/S3/images/cell01/files"), "raw", 0700, "frank"));
  EXPECT_EQ(d.kind, NodeKind::kFolder);
  NodeSpec dd = MUST(ns().Mkdir(d, "deeper", 040711, "frank"));
  EXPECT_EQ(Path("slides/S3/images/cell01/files/raw/deeper"), dd);
  EXPECT_EQ(MUST(ns().Attr(d)).st_mode, S_IFDIR | 0700);
  EXPECT_EQ(MUST(ns().Attr(dd)).st_mode, S_IFDIR | 0711);
  EXPECT_CODE(ns().Mkdir(d, "deeper", 0755, "frank"), Code::kAlreadyExists);
  EXPECT_CODE(ns().Mkdir(Path("slides/S1/images/img1/files"), "notes.txt", 0755, "frank"),
              Code::kAlreadyExists);
}

// ---------------------------------------------------------------------------
// rmdir and unlink.

TEST_F(NamespaceTest, RmdirRefusesRecordsWithChildren) {
  EXPECT_CODE(ns().Rmdir(Path("species"), "HeLa"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("samples"), "P1"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("dyes"), "A647"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("tags"), "good"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("slides"), "S1"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("slides/S1/images"), "img1"), Code::kNotEmpty);
  EXPECT_CODE(ns().Rmdir(Path("slides/S1/images/img1/files"), "sub"), Code::kNotEmpty);
  // Nothing was lost.
  EXPECT_OK(Resolve("species/HeLa/slides/S1/images/img1/files/sub/a.tif"));
  EXPECT_OK(Resolve("tags/good"));
  EXPECT_OK(Resolve("dyes/A647"));
}

TEST_F(NamespaceTest, RmdirDeletesEmptyRecords) {
  EXPECT_CODE(ns().Rmdir(Path("slides/S1/images/img1/files/sub"), "nothing"), Code::kNotFound);
  Entry empty = AddFolder(files1.id, "empty");
  EXPECT_OK(ns().Rmdir(Path("slides/S1/images/img1/files"), "empty"));
  EXPECT_CODE(cat().EntryById(empty.id), Code::kNotFound);

  EXPECT_OK(ns().Rmdir(Path("slides/S2/images"), "img2"));
  EXPECT_CODE(cat().ImageById(img2.id), Code::kNotFound);

  EXPECT_OK(ns().Rmdir(Path("species/Rat/slides"), "S2"));
  EXPECT_CODE(cat().SlideById(s2.id), Code::kNotFound);
  EXPECT_OK(ns().Rmdir(Path("samples"), "P2"));
  EXPECT_OK(ns().Rmdir(Path("species"), "Rat"));
  EXPECT_CODE(Resolve("species/Rat"), Code::kNotFound);

  Slide s4 = AddSlide("S4", p1.id);
  EXPECT_OK(ns().Rmdir(Path("samples/P1/slides"), "S4"));
  EXPECT_CODE(cat().SlideById(s4.id), Code::kNotFound);
  EXPECT_OK(ns().Rmdir(Path("slides"), "S3"));
  EXPECT_CODE(cat().SlideById(s3.id), Code::kNotFound);

  AddDye("Unused");
  EXPECT_OK(ns().Rmdir(Path("dyes"), "Unused"));
  MUST(cat().CreateTag("unused"));
  EXPECT_OK(ns().Rmdir(Path("tags"), "unused"));
  EXPECT_CODE(Resolve("tags/unused"), Code::kNotFound);
  EXPECT_CODE(ns().Rmdir(Path("tags"), "unused"), Code::kNotFound);
}

// rmdir of a folder in .Trash-<uid>/files/ while another thread creates in
// it, on the catalog a mount has (a file with reader connections: reads
// outside a transaction do not wait for the writer). The check for
// emptiness and the delete are one transaction, so either the rmdir is
// refused (kNotEmpty) and the new folder stays, or the rmdir wins and the
// mkdir finds no parent; never both succeed with the new folder deleted
// along (the trash row's delete cascades to the subtree).
class TrashRaceTest : public FsTest {
 protected:
  void SetUp() override {
    const char* base = getenv("TMPDIR");
    dir_ = std::string(base && *base ? base : "/tmp") + "/samplefs-trash-race-XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    catalog_ = MUST(Catalog::OpenSqlite(dir_ + "/catalog.db"));
    catalog_->EnableReaders(8);
    ns_ = std::make_unique<Namespace>(*catalog_, MountIdentity{1234, 5678, kMountTime});
    Species hela = AddSpecies("HeLa");
    Slide s1 = AddSlide("S1", AddSample("P1", hela.id).id);
    files_ = MUST(cat().FilesRoot(AddImage(s1.id, "img1").id));
  }
  void TearDown() override {
    ns_.reset();
    catalog_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  Entry files_;
};

TEST_F(TrashRaceTest, RmdirInTheTrashRacingACreateNeverLosesIt) {
  const NodeSpec trash_files = SpecOf(NodeKind::kTrashFiles, 1000);
  int refused = 0, removed = 0;
  for (int round = 0; round < 300; ++round) {
    const std::string name = "gone" + std::to_string(round);
    Entry dir = AddFolder(files_.id, name);
    MUST(cat().TrashEntry(dir.id, 1000, name, "slides/S1/images/img1/files/" + name, "2026-01-02T03:04:05"));
    const NodeSpec in_trash = Path(".Trash-1000/files/" + name);
    std::atomic<int> ready{0};
    Status rmdir_status, mkdir_status;
    std::thread rm([&] {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      rmdir_status = ns().Rmdir(trash_files, name);
    });
    std::thread mk([&] {
      ready.fetch_add(1);
      while (ready.load() < 2) {
      }
      mkdir_status = ns().Mkdir(in_trash, "new", 0755, "ann").status();
    });
    rm.join();
    mk.join();
    SCOPED_TRACE(name + ": rmdir " + rmdir_status.ToString() + ", mkdir " + mkdir_status.ToString());
    ASSERT_FALSE(rmdir_status.ok() && mkdir_status.ok()) << "the rmdir deleted a folder created after its check";
    if (mkdir_status.ok()) {
      ASSERT_EQ(rmdir_status.code(), Code::kNotEmpty);
      ASSERT_OK(cat().EntryByName(dir.id, "new"));
      ++refused;
    } else {
      ASSERT_OK(rmdir_status);
      EXPECT_CODE(cat().EntryById(dir.id), Code::kNotFound);
      ++removed;
    }
  }
  std::printf("rmdir refused %d, won %d of 300\n", refused, removed);
}

TEST_F(NamespaceTest, RmdirWhereItHasNoMeaningIsRefused) {
  AddSlide("S5", p1.id);  // empty, so only the place can refuse it
  ASSERT_OK(cat().SetTags(Entity::kSlide, MUST(cat().SlideByReference("S5")).id, {"good"}));
  Slide s6 = AddSlide("S6", p1.id);
  AddLabelling(s6.id, "actin", a647.id);
  Image lonely = AddImage(s6.id, "lonely");
  ASSERT_OK(cat().SetTags(Entity::kImage, lonely.id, {"good"}));
  struct Case {
    const char* parent;
    const char* name;
  } cases[] = {
      {"dyes/A647/slides", "S6"},     {"structures/actin/slides", "S6"},
      {"tags/good/slides", "S5"},     {"query/species=HeLa,tag=good/slides", "S5"},
      {"", "species"},                {"", ".samplefs"},
      {"structures", "actin"},        {"query", "species=HeLa"},
      {"slides/S6", "images"},        {"slides/S6/images/lonely", "files"},
      {"tags/good/images", "S6:lonely"}, {"tags/good", "slides"},
      {"species/HeLa", "slides"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.parent) + "/" + c.name);
    auto s = ns().Rmdir(Path(c.parent), c.name);
    EXPECT_CODE(s, Code::kPermission);
    EXPECT_FALSE(s.message().empty());
  }
  EXPECT_OK(Resolve("slides/S6/images/lonely"));
  EXPECT_OK(Resolve("slides/S5"));
  EXPECT_CODE(ns().Rmdir(Path("slides/S1/images/img1/files"), "notes.txt"), Code::kNotADirectory);
  EXPECT_CODE(ns().Rmdir(Path("slides/S1"), "slide.json"), Code::kNotADirectory);
  EXPECT_CODE(ns().Rmdir(Path("slides"), "nope"), Code::kNotFound);
}

TEST_F(NamespaceTest, UnlinkRemovesFilesAndSymlinksOnly) {
  NodeSpec files = Path("slides/S1/images/img1/files");
  EXPECT_OK(ns().Unlink(files, "notes.txt"));
  EXPECT_CODE(cat().EntryById(txt.id), Code::kNotFound);
  EXPECT_CODE(ns().Lookup(files, "notes.txt"), Code::kNotFound);
  EXPECT_OK(ns().Unlink(files, "link"));
  EXPECT_CODE(cat().EntryById(link.id), Code::kNotFound);
  EXPECT_CODE(ns().Unlink(files, "notes.txt"), Code::kNotFound);
  EXPECT_CODE(ns().Unlink(files, "sub"), Code::kIsADirectory);
  EXPECT_OK(cat().EntryById(sub.id));
  for (const char* p : {"slides/S1/slide.json", "species/HeLa/species.json", ".samplefs/status.json",
                        ".samplefs/errors", "tags/good/files/S1:img1:sub:a.tif"}) {
    SCOPED_TRACE(p);
    std::string s(p);
    auto slash = s.rfind('/');
    EXPECT_CODE(ns().Unlink(Path(s.substr(0, slash)), s.substr(slash + 1)), Code::kPermission);
  }
  EXPECT_OK(cat().EntryById(tif.id));
  EXPECT_CODE(ns().Unlink(Path("slides"), "S1"), Code::kIsADirectory);
}

TEST_F(NamespaceTest, CreateFileAndSymlinkOnlyInsideFiles) {
  NodeSpec files = Path("slides/S1/images/img1/files");
  Entry f = MUST(ns().CreateFile(files, "new.h5", 0600, testing_util::HashN(0)));
  EXPECT_EQ(f.kind, "raw");
  EXPECT_EQ(f.size, 0u);
  EXPECT_EQ(Path("slides/S1/images/img1/files/new.h5"), SpecOf(NodeKind::kFile, f.id));
  EXPECT_EQ(MUST(ns().Attr(SpecOf(NodeKind::kFile, f.id))).st_mode, S_IFREG | 0600);
  EXPECT_CODE(ns().CreateFile(files, "new.h5", 0600, testing_util::HashN(0)), Code::kAlreadyExists);
  Entry l = MUST(ns().Symlink(files, "ln", "new.h5"));
  EXPECT_EQ(Path("slides/S1/images/img1/files/ln"), SpecOf(NodeKind::kSymlink, l.id));
  EXPECT_EQ(l.target, "new.h5");
  for (const char* p : {"slides", "slides/S1", "slides/S1/images", "species/HeLa", ".samplefs",
                        "tags/good/files", "slides/S1/images/img1"}) {
    SCOPED_TRACE(p);
    EXPECT_CODE(ns().CreateFile(Path(p), "x.txt", 0644, testing_util::HashN(0)), Code::kPermission);
    EXPECT_CODE(ns().Symlink(Path(p), "x", "y"), Code::kPermission);
  }
}

// ---------------------------------------------------------------------------
// rename.

TEST_F(NamespaceTest, RenameFilesAndFolders) {
  NodeSpec files = Path("slides/S1/images/img1/files");
  NodeSpec subdir = Path("slides/S1/images/img1/files/sub");
  // Rename in place.
  EXPECT_EQ(MUST(ns().Rename(files, "notes.txt", files, "readme.txt", 0)), SpecOf(NodeKind::kFile, txt.id));
  EXPECT_EQ(Path("slides/S1/images/img1/files/readme.txt"), SpecOf(NodeKind::kFile, txt.id));
  EXPECT_CODE(Resolve("slides/S1/images/img1/files/notes.txt"), Code::kNotFound);
  // Into a folder.
  EXPECT_OK(ns().Rename(files, "readme.txt", subdir, "readme.txt", 0));
  EXPECT_EQ(Path("slides/S1/images/img1/files/sub/readme.txt"), SpecOf(NodeKind::kFile, txt.id));
  // Into another image of another slide.
  NodeSpec files2 = Path("slides/S2/images/img2/files");
  EXPECT_OK(ns().Rename(subdir, "readme.txt", files2, "r.txt", 0));
  EXPECT_EQ(MUST(cat().EntryById(txt.id)).image_id, img2.id);
  EXPECT_EQ(Path("species/Rat/slides/S2/images/img2/files/r.txt"), SpecOf(NodeKind::kFile, txt.id));
  // A folder with its contents.
  EXPECT_OK(ns().Rename(files, "sub", files2, "moved", 0));
  EXPECT_EQ(Path("slides/S2/images/img2/files/moved/a.tif"), SpecOf(NodeKind::kFile, tif.id));
  EXPECT_EQ(MUST(cat().EntryById(tif.id)).image_id, img2.id);
  // A folder into itself.
  NodeSpec moved = Path("slides/S2/images/img2/files/moved");
  NodeSpec inner = MUST(ns().Mkdir(moved, "inner", 0755, "ann"));
  EXPECT_CODE(ns().Rename(files2, "moved", inner, "loop", 0), Code::kInvalidArgument);
  // Onto itself: nothing happens.
  EXPECT_OK(ns().Rename(files2, "r.txt", files2, "r.txt", 0));
  EXPECT_EQ(Path("slides/S2/images/img2/files/r.txt"), SpecOf(NodeKind::kFile, txt.id));
}

TEST_F(NamespaceTest, RenameOverAnExistingFileReplacesItUnlessNoReplace) {
  NodeSpec files = Path("slides/S1/images/img1/files");
  Entry other = AddFile(files1.id, "other.txt", 2, 20);
  EXPECT_CODE(ns().Rename(files, "notes.txt", files, "other.txt", kNoReplace), Code::kAlreadyExists);
  EXPECT_OK(cat().EntryById(other.id));
  EXPECT_OK(cat().EntryById(txt.id));
  EXPECT_OK(ns().Rename(files, "notes.txt", files, "other.txt", 0));
  EXPECT_CODE(cat().EntryById(other.id), Code::kNotFound);
  EXPECT_EQ(Path("slides/S1/images/img1/files/other.txt"), SpecOf(NodeKind::kFile, txt.id));
  // A file over a folder, a folder over a file: refused.
  EXPECT_CODE(ns().Rename(files, "other.txt", files, "sub", 0), Code::kIsADirectory);
  EXPECT_CODE(ns().Rename(files, "sub", files, "other.txt", 0), Code::kNotADirectory);
  EXPECT_CODE(ns().Rename(files, "other.txt", files, "x", kExchange), Code::kInvalidArgument);
  EXPECT_CODE(ns().Rename(files, "missing", files, "x", 0), Code::kNotFound);
}

TEST_F(NamespaceTest, RenameFilesOutOfFilesIsRefused) {
  NodeSpec files = Path("slides/S1/images/img1/files");
  EXPECT_CODE(ns().Rename(files, "notes.txt", Path("slides/S1"), "notes.txt", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(files, "notes.txt", Path("slides"), "notes.txt", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("slides/S1"), "slide.json", Path("slides/S1"), "x.json", 0),
              Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("slides/S1/images/img1"), "files", Path("slides/S1/images/img1"), "data", 0),
              Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("tags/good/files"), "S1:img1:sub:a.tif", files, "a.tif", 0),
              Code::kPermission);
  EXPECT_OK(Resolve("slides/S1/images/img1/files/notes.txt"));
}

TEST_F(NamespaceTest, RenameSlides) {
  // In slides/.
  EXPECT_EQ(MUST(ns().Rename(Path("slides"), "S3", Path("slides"), "S3b", 0)), SpecOf(NodeKind::kSlide, s3.id));
  EXPECT_EQ(MUST(cat().SlideById(s3.id)).reference, "S3b");
  EXPECT_CODE(Resolve("slides/S3"), Code::kNotFound);
  // Re-parented to another sample through samples/P/slides.
  EXPECT_OK(ns().Rename(Path("slides"), "S3b", Path("samples/P2/slides"), "S3b", 0));
  EXPECT_EQ(MUST(cat().SlideById(s3.id)).sample_id, p2.id);
  EXPECT_OK(Resolve("species/Rat/slides/S3b"));
  EXPECT_CODE(Resolve("species/HeLa/slides/S3b"), Code::kNotFound);
  // From one sample to another, renaming on the way.
  EXPECT_OK(ns().Rename(Path("samples/P2/slides"), "S3b", Path("samples/P1/slides"), "S3c", 0));
  Slide rec = MUST(cat().SlideById(s3.id));
  EXPECT_EQ(rec.sample_id, p1.id);
  EXPECT_EQ(rec.reference, "S3c");
  // A rename through a view the slide belongs to.
  EXPECT_OK(ns().Rename(Path("dyes/A647/slides"), "S1", Path("dyes/A647/slides"), "S1x", 0));
  EXPECT_EQ(MUST(cat().SlideById(s1.id)).reference, "S1x");
  // Into a view it does not belong to: refused.
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("dyes/A647/slides"), "S2", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("species/HeLa/slides"), "S2", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("slides/S1x/images"), "S2", 0), Code::kPermission);
  EXPECT_EQ(MUST(cat().SlideById(s2.id)).sample_id, p2.id);
  // Over another slide: never replaced.
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("slides"), "S1x", kNoReplace), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("slides"), "S1x", 0), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("samples/P2/slides"), "S2", Path("samples/P1/slides"), "S1x", 0),
              Code::kAlreadyExists);
  // A slide of that name in another sample is not in the target listing,
  // yet the reference is taken all the same.
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("samples/P2/slides"), "S3c", 0), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("slides"), "S2", Path("samples/P2/slides"), "S3c", kNoReplace),
              Code::kAlreadyExists);
  EXPECT_OK(cat().SlideById(s1.id));
  EXPECT_EQ(MUST(cat().SlideById(s2.id)).reference, "S2");
}

TEST_F(NamespaceTest, RenameImagesWithinAndBetweenSlides) {
  EXPECT_EQ(MUST(ns().Rename(Path("slides/S1/images"), "img1", Path("slides/S1/images"), "cell", 0)),
            SpecOf(NodeKind::kImage, img1.id));
  EXPECT_EQ(Path("slides/S1/images/cell/files/sub/a.tif"), SpecOf(NodeKind::kFile, tif.id));
  EXPECT_OK(ns().Rename(Path("slides/S1/images"), "cell", Path("slides/S3/images"), "cell", 0));
  EXPECT_EQ(MUST(cat().ImageById(img1.id)).slide_id, s3.id);
  EXPECT_EQ(Path("slides/S3/images/cell/files/sub/a.tif"), SpecOf(NodeKind::kFile, tif.id));
  EXPECT_CODE(Resolve("slides/S1/images/cell"), Code::kNotFound);
  // Over another image.
  AddImage(s3.id, "taken");
  EXPECT_CODE(ns().Rename(Path("slides/S3/images"), "cell", Path("slides/S3/images"), "taken", kNoReplace),
              Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("slides/S3/images"), "cell", Path("slides/S3/images"), "taken", 0),
              Code::kAlreadyExists);
  // Out of images/: refused.
  EXPECT_CODE(ns().Rename(Path("slides/S3/images"), "cell", Path("slides"), "cell", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("tags/good/images"), "S3:cell", Path("slides/S1/images"), "c", 0),
              Code::kPermission);
}

TEST_F(NamespaceTest, RenameSpeciesSamplesDyes) {
  EXPECT_EQ(MUST(ns().Rename(Path("species"), "HeLa", Path("species"), "HeLa-S3", 0)),
            SpecOf(NodeKind::kSpecies, hela.id));
  EXPECT_EQ(MUST(cat().SpeciesById(hela.id)).name, "HeLa-S3");
  EXPECT_THAT(NamesIn("species/HeLa-S3/slides"), ElementsAre("S1", "S3"));
  EXPECT_CODE(Resolve("species/HeLa"), Code::kNotFound);

  EXPECT_OK(ns().Rename(Path("samples"), "P1", Path("samples"), "P1b", 0));
  EXPECT_EQ(MUST(cat().SampleById(p1.id)).name, "P1b");
  EXPECT_THAT(NamesIn("samples/P1b/slides"), ElementsAre("S1", "S3"));

  EXPECT_OK(ns().Rename(Path("dyes"), "A647", Path("dyes"), "AF647", 0));
  EXPECT_EQ(MUST(cat().DyeById(a647.id)).short_name, "AF647");
  EXPECT_THAT(NamesIn("dyes/AF647/slides"), ElementsAre("S1"));
  EXPECT_THAT(NamesIn("query/dye=AF647/slides"), ElementsAre("S1"));

  // Onto an existing name, with and without RENAME_NOREPLACE.
  EXPECT_CODE(ns().Rename(Path("species"), "Rat", Path("species"), "HeLa-S3", kNoReplace), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("species"), "Rat", Path("species"), "HeLa-S3", 0), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("samples"), "P2", Path("samples"), "P1b", kNoReplace), Code::kAlreadyExists);
  EXPECT_CODE(ns().Rename(Path("dyes"), "DAPI", Path("dyes"), "AF647", kNoReplace), Code::kAlreadyExists);
  EXPECT_EQ(MUST(cat().SpeciesById(rat.id)).name, "Rat");
  // Onto itself.
  EXPECT_OK(ns().Rename(Path("species"), "Rat", Path("species"), "Rat", kNoReplace));
  // Out of the view, tags: refused.
  EXPECT_CODE(ns().Rename(Path("species"), "Rat", Path("samples"), "Rat", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("dyes"), "DAPI", Path("species"), "DAPI", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("tags"), "good", Path("tags"), "great", 0), Code::kPermission);
  EXPECT_OK(Resolve("tags/good"));
  EXPECT_CODE(ns().Rename(Path(""), "species", Path(""), "sp", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("structures"), "actin", Path("structures"), "act", 0), Code::kPermission);
  EXPECT_CODE(ns().Rename(Path("species"), "Rat", Path("species"), "a/b", 0), Code::kInvalidArgument);
}

}  // namespace
}  // namespace samplefs::fs
