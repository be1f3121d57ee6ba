// Tests of the field table (catalog/fields.h): every record kind's fields,
// how they render, parse and refuse, and the query keys.
#include "catalog/fields.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace samplefs {

inline void PrintTo(Code code, std::ostream* os) { *os << CodeName(code); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(Entity e) {
  std::vector<std::string> out;
  for (const auto& f : FieldsOf(e)) out.push_back(f.name);
  return out;
}

TEST(FieldTableTest, EachKindHasItsFieldsInDisplayOrder) {
  EXPECT_THAT(Names(Entity::kSpecies), ElementsAre("id", "name", "species", "strain", "notes"));
  EXPECT_THAT(Names(Entity::kSample),
              ElementsAre("id", "name", "species", "patient_id", "sample_type", "notes"));
  EXPECT_THAT(Names(Entity::kDye), ElementsAre("id", "short_name", "long_name", "spectra_db_name"));
  EXPECT_THAT(Names(Entity::kSlide), ElementsAre("id", "reference", "sample", "species", "creator", "notes",
                                                 "created", "modified", "labellings"));
  EXPECT_THAT(Names(Entity::kImage), ElementsAre("id", "name", "slide", "user", "acquired", "comments"));
  EXPECT_THAT(Names(Entity::kEntry), ElementsAre("id", "hash", "size", "kind"));
}

TEST(FieldTableTest, FlagsAreConsistent) {
  for (Entity e : {Entity::kSpecies, Entity::kSample, Entity::kDye, Entity::kSlide, Entity::kImage,
                   Entity::kEntry}) {
    const auto& fields = FieldsOf(e);
    ASSERT_FALSE(fields.empty());
    // The id comes first and is never editable, stored or clearable.
    EXPECT_EQ(fields[0].type, FieldType::kId) << EntityName(e);
    EXPECT_FALSE(fields[0].editable);
    std::set<std::string> seen;
    for (const auto& f : fields) {
      EXPECT_TRUE(seen.insert(f.name).second) << EntityName(e) << "." << f.name << " twice";
      ASSERT_NE(f.get, nullptr) << f.name;
      if (f.editable || f.stored) {
        EXPECT_NE(f.set, nullptr) << EntityName(e) << "." << f.name;
      }
      // Only free text can be emptied by removexattr.
      if (f.clearable) {
        EXPECT_EQ(f.type, FieldType::kText) << EntityName(e) << "." << f.name;
      }
      if (f.type == FieldType::kDerived || f.type == FieldType::kId) {
        EXPECT_FALSE(f.editable) << EntityName(e) << "." << f.name;
        EXPECT_FALSE(f.stored) << EntityName(e) << "." << f.name;
      }
      EXPECT_EQ(FindField(e, f.name), &f);
    }
    EXPECT_EQ(FindField(e, "no_such_field"), nullptr);
  }
  // Record keys and links are never clearable; a species' organism is.
  EXPECT_FALSE(FindField(Entity::kSample, "species")->clearable);
  EXPECT_TRUE(FindField(Entity::kSpecies, "species")->clearable);
  EXPECT_FALSE(FindField(Entity::kSlide, "reference")->clearable);
  // What a dump holds: a slide's modified (a snapshot), not its species.
  EXPECT_TRUE(FindField(Entity::kSlide, "modified")->stored);
  EXPECT_FALSE(FindField(Entity::kSlide, "modified")->editable);
  EXPECT_FALSE(FindField(Entity::kSlide, "species")->stored);
  EXPECT_FALSE(FindField(Entity::kImage, "slide")->stored);
}

class FieldRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::OpenSqlite(":memory:");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    c_ = std::move(opened).value();
    Species hela;
    hela.name = "HeLa";
    hela.species = "Human";
    hela_ = c_->CreateSpecies(hela)->id;
    Species rat;
    rat.name = "Rat";
    rat_ = c_->CreateSpecies(rat)->id;
    Sample p1;
    p1.name = "P1";
    p1.species_id = hela_;
    p1_ = c_->CreateSample(p1)->id;
    Sample r1;
    r1.name = "R1";
    r1.species_id = rat_;
    r1_ = c_->CreateSample(r1)->id;
    Dye d;
    d.short_name = "A647";
    dye_ = c_->CreateDye(d)->id;
    Slide s;
    s.reference = "S1";
    s.sample_id = p1_;
    s.created = "2024-01-02T03:04:05Z";
    slide_ = c_->CreateSlide(s)->id;
    Labelling l;
    l.slide_id = slide_;
    l.structure = "tubulin";
    l.dye_id = dye_;
    ASSERT_TRUE(c_->AddLabelling(l).ok());
    Image i;
    i.slide_id = slide_;
    i.name = "cell01";
    i.user = "ana";
    image_ = c_->CreateImage(i)->id;
    folder_ = c_->FilesRoot(image_)->id;
    Entry e;
    e.parent_id = folder_;
    e.name = "a.tif";
    e.hash = std::string(32, 'a');
    e.size = 7;
    e.kind = "raw";
    file_ = c_->CreateEntry(e)->id;
  }

  std::string Get(Entity e, int64_t id, const char* field) {
    auto r = LoadRecord(*c_, e, id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return FindField(e, field)->get(*r);
  }

  std::unique_ptr<Catalog> c_;
  int64_t hela_ = 0, rat_ = 0, p1_ = 0, r1_ = 0, dye_ = 0, slide_ = 0, image_ = 0, folder_ = 0, file_ = 0;
};

TEST_F(FieldRecordTest, RendersValuesAndLinkedKeys) {
  EXPECT_EQ(Get(Entity::kSpecies, hela_, "species"), "Human");
  EXPECT_EQ(Get(Entity::kSample, p1_, "species"), "HeLa");
  EXPECT_EQ(Get(Entity::kSlide, slide_, "id"), std::to_string(slide_));
  EXPECT_EQ(Get(Entity::kSlide, slide_, "sample"), "P1");
  EXPECT_EQ(Get(Entity::kSlide, slide_, "species"), "HeLa");
  EXPECT_EQ(Get(Entity::kSlide, slide_, "created"), "2024-01-02T03:04:05Z");
  EXPECT_EQ(Get(Entity::kSlide, slide_, "labellings"), "tubulin:A647");
  EXPECT_EQ(Get(Entity::kImage, image_, "slide"), "S1");
  EXPECT_EQ(Get(Entity::kImage, image_, "user"), "ana");
  EXPECT_EQ(Get(Entity::kEntry, file_, "hash"), "xxh3-128:" + std::string(32, 'a'));
  EXPECT_EQ(Get(Entity::kEntry, file_, "size"), "7");
  EXPECT_EQ(Get(Entity::kEntry, file_, "kind"), "raw");
  // Folders have no file fields.
  auto folder = LoadRecord(*c_, Entity::kEntry, folder_);
  ASSERT_TRUE(folder.ok());
  EXPECT_FALSE(HasField(*folder, *FindField(Entity::kEntry, "kind")));
  EXPECT_TRUE(HasField(*folder, *FindField(Entity::kEntry, "id")));
  EXPECT_EQ(LoadRecord(*c_, Entity::kSlide, 9999).status().code(), Code::kNotFound);
}

TEST_F(FieldRecordTest, SetParsesResolvesLinksAndRefuses) {
  auto slide = LoadRecord(*c_, Entity::kSlide, slide_);
  ASSERT_TRUE(slide.ok());
  // Moving the slide to a sample of another species changes its species.
  ASSERT_TRUE(SetField(*c_, *slide, "sample", "R1").ok());
  EXPECT_EQ(slide->slide.sample_id, r1_);
  EXPECT_EQ(FindField(Entity::kSlide, "species")->get(*slide), "Rat");
  ASSERT_TRUE(SetField(*c_, *slide, "creator", "bob").ok());
  ASSERT_TRUE(SaveRecord(*c_, *slide).ok());
  EXPECT_EQ(Get(Entity::kSlide, slide_, "creator"), "bob");
  EXPECT_EQ(Get(Entity::kSlide, slide_, "sample"), "R1");

  Status s = SetField(*c_, *slide, "sample", "Nope");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("sample \"Nope\" does not exist"));
  EXPECT_EQ(SetField(*c_, *slide, "species", "HeLa").code(), Code::kPermission);
  EXPECT_EQ(SetField(*c_, *slide, "modified", "2024-01-01").code(), Code::kPermission);
  EXPECT_EQ(SetField(*c_, *slide, "id", "1").code(), Code::kPermission);
  s = SetField(*c_, *slide, "colour", "red");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("slides have no field 'colour'"));

  auto sample = LoadRecord(*c_, Entity::kSample, p1_);
  ASSERT_TRUE(sample.ok());
  EXPECT_THAT(SetField(*c_, *sample, "species", "Zebrafish").message(),
              HasSubstr("species \"Zebrafish\" does not exist"));

  // A file's kind is editable; a folder has none.
  auto file = LoadRecord(*c_, Entity::kEntry, file_);
  ASSERT_TRUE(SetField(*c_, *file, "kind", "analysis").ok());
  ASSERT_TRUE(SaveRecord(*c_, *file).ok());
  EXPECT_EQ(Get(Entity::kEntry, file_, "kind"), "analysis");
  EXPECT_EQ(SetField(*c_, *file, "hash", "x").code(), Code::kPermission);
  auto folder = LoadRecord(*c_, Entity::kEntry, folder_);
  EXPECT_EQ(SetField(*c_, *folder, "kind", "raw").code(), Code::kInvalidArgument);
}

TEST(QueryKeyTableTest, KnownKeys) {
  std::vector<std::string> keys;
  for (const auto& k : QueryKeys()) keys.push_back(k.key);
  for (const char* k : {"species", "sample", "dye", "structure", "tag", "creator", "user", "after", "before"})
    EXPECT_NE(FindQueryKey(k), nullptr) << k;
  EXPECT_EQ(FindQueryKey("speceis"), nullptr);
  EXPECT_EQ(FindQueryKey("species")->kind, QueryKeyKind::kName);
  EXPECT_EQ(FindQueryKey("creator")->kind, QueryKeyKind::kText);
}

}  // namespace
}  // namespace samplefs
