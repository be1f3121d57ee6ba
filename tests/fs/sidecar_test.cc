// Unit tests of sidecar rendering and record fields (fs/sidecar.h), and of
// the error log shown in /.samplefs/errors (fs/error_log.h).
#include "fs/sidecar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "fs/error_log.h"
#include "fs_testing.h"

namespace samplefs::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using testing_util::FsTest;
using testing_util::HashN;
using testing_util::SpecOf;
using json = nlohmann::json;

class SidecarTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    Species sp;
    sp.name = "HeLa";
    sp.species = "Human";
    sp.strain = "CCL-2";
    sp.notes = "line 1\nline \"2\" \\ tab\t ü";
    hela = MUST(cat().CreateSpecies(sp));
    Sample sa;
    sa.name = "P1";
    sa.species_id = hela.id;
    sa.patient_id = "pt-7";
    sa.sample_type = "Cell Culture";
    sa.notes = "fixed";
    p1 = MUST(cat().CreateSample(sa));
    Dye d;
    d.short_name = "A647";
    d.long_name = "Alexa Fluor 647";
    d.spectra_db_name = "alexa647";
    a647 = MUST(cat().CreateDye(d));
    dapi = AddDye("DAPI");
    Slide sl;
    sl.reference = "S1";
    sl.sample_id = p1.id;
    sl.creator = "ann";
    sl.notes = "good stain";
    sl.created = "2022-01-02T03:04:05Z";
    s1 = MUST(cat().CreateSlide(sl));
    AddLabelling(s1.id, "actin", a647.id);
    AddLabelling(s1.id, "nucleus", dapi.id);
    Image im;
    im.slide_id = s1.id;
    im.name = "img1";
    im.user = "bob";
    im.acquired = "2022-02-03T04:05:06Z";
    im.comments = "63x";
    img = MUST(cat().CreateImage(im));
    ASSERT_OK(cat().SetTags(Entity::kSlide, s1.id, {"good", "best"}));
    ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s1.id, "batch", "7"));
    ASSERT_OK(cat().SetAnnotation(Entity::kSlide, s1.id, "x'); DROP TABLE slide;--", "\"v\""));
    ASSERT_OK(cat().SetTags(Entity::kImage, img.id, {"sharp"}));
    ASSERT_OK(cat().SetAnnotation(Entity::kSpecies, hela.id, "atcc", "CCL-2"));
  }

  json Doc(Entity e, int64_t id) {
    std::string body = MUST(RenderSidecar(cat(), e, id));
    EXPECT_THAT(body, EndsWith("}\n"));
    EXPECT_TRUE(json::accept(body)) << body;
    return json::parse(body);
  }

  Species hela;
  Sample p1;
  Dye a647, dapi;
  Slide s1;
  Image img;
};

TEST_F(SidecarTest, SlideSidecarHasFieldsLabellingsTagsAnnotations) {
  json j = Doc(Entity::kSlide, s1.id);
  Slide rec = MUST(cat().SlideById(s1.id));
  EXPECT_EQ(j["id"], s1.id);
  EXPECT_EQ(j["reference"], "S1");
  EXPECT_EQ(j["sample"], "P1");
  EXPECT_EQ(j["species"], "HeLa");
  EXPECT_EQ(j["creator"], "ann");
  EXPECT_EQ(j["notes"], "good stain");
  EXPECT_EQ(j["created"], "2022-01-02T03:04:05Z");
  EXPECT_EQ(j["modified"], rec.modified);
  ASSERT_TRUE(j["labellings"].is_array());
  ASSERT_EQ(j["labellings"].size(), 2u);
  EXPECT_EQ(j["labellings"][0], (json{{"structure", "actin"}, {"isotype", "IgG"},
                                      {"antibody", "anti-actin"}, {"dye", "A647"}}));
  EXPECT_EQ(j["labellings"][1]["structure"], "nucleus");
  EXPECT_EQ(j["labellings"][1]["dye"], "DAPI");
  EXPECT_EQ(j["tags"], (json{"best", "good"}));
  EXPECT_EQ(j["annotations"], (json{{"batch", "7"}, {"x'); DROP TABLE slide;--", "\"v\""}}));
}

TEST_F(SidecarTest, OtherRecordsSidecars) {
  json sp = Doc(Entity::kSpecies, hela.id);
  EXPECT_EQ(sp["id"], hela.id);
  EXPECT_EQ(sp["name"], "HeLa");
  EXPECT_EQ(sp["species"], "Human");
  EXPECT_EQ(sp["strain"], "CCL-2");
  EXPECT_EQ(sp["notes"], "line 1\nline \"2\" \\ tab\t ü");
  EXPECT_EQ(sp["tags"], json::array());
  EXPECT_EQ(sp["annotations"], (json{{"atcc", "CCL-2"}}));

  json sa = Doc(Entity::kSample, p1.id);
  EXPECT_EQ(sa["name"], "P1");
  EXPECT_EQ(sa["species"], "HeLa");
  EXPECT_EQ(sa["patient_id"], "pt-7");
  EXPECT_EQ(sa["sample_type"], "Cell Culture");
  EXPECT_EQ(sa["notes"], "fixed");
  EXPECT_TRUE(sa["annotations"].is_object());
  EXPECT_TRUE(sa["annotations"].empty());

  json dy = Doc(Entity::kDye, a647.id);
  EXPECT_EQ(dy["short_name"], "A647");
  EXPECT_EQ(dy["long_name"], "Alexa Fluor 647");
  EXPECT_EQ(dy["spectra_db_name"], "alexa647");

  json im = Doc(Entity::kImage, img.id);
  EXPECT_EQ(im["id"], img.id);
  EXPECT_EQ(im["name"], "img1");
  EXPECT_EQ(im["slide"], "S1");
  EXPECT_EQ(im["user"], "bob");
  EXPECT_EQ(im["acquired"], "2022-02-03T04:05:06Z");
  EXPECT_EQ(im["comments"], "63x");
  EXPECT_EQ(im["tags"], (json{"sharp"}));
}

TEST_F(SidecarTest, SidecarsFollowChanges) {
  ASSERT_OK(cat().ReplaceLabellings(s1.id, {}));
  ASSERT_OK(cat().SetTags(Entity::kSlide, s1.id, {}));
  Sample moved = p1;
  moved.name = "P1-renamed";
  ASSERT_OK(cat().UpdateSample(moved));
  json j = Doc(Entity::kSlide, s1.id);
  EXPECT_EQ(j["labellings"], json::array());
  EXPECT_EQ(j["tags"], json::array());
  EXPECT_EQ(j["sample"], "P1-renamed");
}

TEST_F(SidecarTest, NamespaceRendersTheSameDocument) {
  EXPECT_EQ(MUST(ns().Render(Path("slides/S1/slide.json"))), MUST(RenderSidecar(cat(), Entity::kSlide, s1.id)));
  EXPECT_EQ(MUST(ns().Render(Path("species/HeLa/species.json"))),
            MUST(RenderSidecar(cat(), Entity::kSpecies, hela.id)));
  EXPECT_EQ(MUST(ns().Render(Path("slides/S1/images/img1/image.json"))),
            MUST(RenderSidecar(cat(), Entity::kImage, img.id)));
}

TEST_F(SidecarTest, MissingRecordsAndFilesHaveNoSidecar) {
  for (Entity e : {Entity::kSpecies, Entity::kSample, Entity::kDye, Entity::kSlide, Entity::kImage}) {
    SCOPED_TRACE(EntityName(e));
    EXPECT_CODE(RenderSidecar(cat(), e, 999), Code::kNotFound);
  }
  EXPECT_CODE(RenderSidecar(cat(), Entity::kEntry, MUST(cat().FilesRoot(img.id)).id), Code::kInvalidArgument);
}

TEST_F(SidecarTest, SidecarNames) {
  EXPECT_STREQ(SidecarName(Entity::kSpecies), "species.json");
  EXPECT_STREQ(SidecarName(Entity::kSample), "sample.json");
  EXPECT_STREQ(SidecarName(Entity::kDye), "dye.json");
  EXPECT_STREQ(SidecarName(Entity::kSlide), "slide.json");
  EXPECT_STREQ(SidecarName(Entity::kImage), "image.json");
  EXPECT_STREQ(SidecarName(Entity::kEntry), "");
}

TEST_F(SidecarTest, RecordFieldsInAStableOrder) {
  auto names = [](const std::vector<Field>& fs) {
    std::vector<std::string> out;
    for (const auto& f : fs) out.push_back(f.name + (f.editable ? "" : "(ro)"));
    return out;
  };
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kSpecies, hela.id))),
              ElementsAre("id(ro)", "name", "species", "strain", "notes"));
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kSample, p1.id))),
              ElementsAre("id(ro)", "name", "species", "patient_id", "sample_type", "notes"));
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kDye, a647.id))),
              ElementsAre("id(ro)", "short_name", "long_name", "spectra_db_name"));
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kSlide, s1.id))),
              ElementsAre("id(ro)", "reference", "sample", "species(ro)", "creator", "notes", "created",
                          "modified(ro)", "labellings(ro)"));
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kImage, img.id))),
              ElementsAre("id(ro)", "name", "slide(ro)", "user", "acquired", "comments"));
  Entry root = MUST(cat().FilesRoot(img.id));
  Entry f = AddFile(root.id, "x.csv", 12, 0x42);
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kEntry, f.id))),
              ElementsAre("id(ro)", "hash(ro)", "size(ro)", "kind"));
  auto fields = MUST(RecordFields(cat(), Entity::kEntry, f.id));
  EXPECT_EQ(fields[1].value, "xxh3-128:" + HashN(0x42));
  EXPECT_EQ(fields[2].value, "12");
  EXPECT_THAT(names(MUST(RecordFields(cat(), Entity::kEntry, root.id))), ElementsAre("id(ro)"));
  auto slide_fields = MUST(RecordFields(cat(), Entity::kSlide, s1.id));
  EXPECT_EQ(slide_fields[8].value, "actin:A647;nucleus:DAPI");
  EXPECT_CODE(RecordFields(cat(), Entity::kSlide, 999), Code::kNotFound);
}

// ErrorLog::Add also logs each line; keep the test output readable.
class ErrorLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    level_ = spdlog::get_level();
    spdlog::set_level(spdlog::level::off);
  }
  void TearDown() override { spdlog::set_level(level_); }
  spdlog::level::level_enum level_ = spdlog::level::info;
};

TEST_F(ErrorLogTest, KeepsTheMostRecentLines) {
  ErrorLog log(3);
  EXPECT_EQ(log.Text(), "");
  EXPECT_EQ(log.size(), 0u);
  for (int i = 0; i < 5; ++i) log.Add("mkdir", "/slides/S" + std::to_string(i), "no meaning");
  std::string text = log.Text();
  EXPECT_EQ(log.size(), text.size());
  EXPECT_THAT(text, ::testing::Not(HasSubstr("/slides/S1:")));
  EXPECT_THAT(text, HasSubstr("mkdir /slides/S2: no meaning\n"));
  EXPECT_THAT(text, HasSubstr("mkdir /slides/S4: no meaning\n"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_LT(text.find("/slides/S2"), text.find("/slides/S4"));
}

TEST_F(ErrorLogTest, ConcurrentAdds) {
  ErrorLog log(1000);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&log, t] {
      for (int i = 0; i < 100; ++i) log.Add("write", "/t" + std::to_string(t), "full");
    });
  for (auto& th : ts) th.join();
  std::string text = log.Text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 400);
  EXPECT_EQ(log.size(), text.size());
}

}  // namespace
}  // namespace samplefs::fs
