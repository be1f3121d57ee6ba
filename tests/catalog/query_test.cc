// Tests of query expressions (catalog/query.h) and of the slide queries
// that answer them (Catalog::ListSlides, Catalog::SlideMatches).
#include "catalog/query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace samplefs {

// gtest prints a Code by name. Identical (inline) in every test file.
inline void PrintTo(Code code, std::ostream* os) { *os << CodeName(code); }
inline void PrintTo(const QueryTerm& t, std::ostream* os) { *os << t.key << '=' << t.value; }

namespace {

using ::testing::HasSubstr;

Query MustParse(std::string_view expr) {
  auto q = Query::Parse(expr);
  if (!q.ok()) throw std::runtime_error(std::string(expr) + ": " + q.status().ToString());
  return std::move(q).value();
}

// ---------------------------------------------------------------------------
// Parsing.

TEST(QueryParseTest, TermsInOrder) {
  Query q = MustParse("species=HeLa,dye=A647,tag=good");
  ASSERT_EQ(q.terms.size(), 3u);
  EXPECT_EQ(q.terms[0], (QueryTerm{"species", "HeLa"}));
  EXPECT_EQ(q.terms[1], (QueryTerm{"dye", "A647"}));
  EXPECT_EQ(q.terms[2], (QueryTerm{"tag", "good"}));
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.ToString(), "species=HeLa,dye=A647,tag=good");
  EXPECT_TRUE(Query{}.empty());
  EXPECT_EQ(Query{}.ToString(), "");
}

TEST(QueryParseTest, ValuesMayHoldEqualsSpacesUnicodeAndEscapedCommas) {
  Query q = MustParse("notes=a=b,structure=outer membrane,species=\xC3\x9C" "ber,k=1\\,5");
  ASSERT_EQ(q.terms.size(), 4u);
  EXPECT_EQ(q.terms[0].value, "a=b");  // the first '=' splits
  EXPECT_EQ(q.terms[1].value, "outer membrane");
  EXPECT_EQ(q.terms[2].value, "\xC3\x9C" "ber");
  EXPECT_EQ(q.terms[3].value, "1,5");
  EXPECT_EQ(q.ToString(), "notes=a=b,structure=outer membrane,species=\xC3\x9C" "ber,k=1\\,5");
  // Duplicate keys are separate terms (ANDed).
  EXPECT_EQ(MustParse("tag=a,tag=b").terms.size(), 2u);
  // Keys may use letters, digits, '_', '-', '.'.
  EXPECT_EQ(MustParse("lab.batch_no-2=7").terms[0].key, "lab.batch_no-2");
}

TEST(QueryParseTest, ToStringRoundTripsAnyValue) {
  const std::vector<std::string> values = {
      "plain", "a,b", ",", ",,", "trailing\\", "\\", "\\,", "a\\b", "a\\\\,b", "x'); DROP TABLE slide;--",
      "=", "a=b=c", " spaced ", "\xE6\x97\xA5\xE6\x9C\xAC"};
  for (const auto& v : values) {
    Query q;
    q.terms = {{"k", v}, {"tag", "after"}, {"k2", v}};
    auto back = Query::Parse(q.ToString());
    ASSERT_TRUE(back.ok()) << "value '" << v << "': " << back.status().ToString();
    EXPECT_EQ(back->terms, q.terms) << "value '" << v << "' as '" << q.ToString() << "'";
  }
}

TEST(QueryParseTest, DatesForAfterAndBefore) {
  for (std::string ok : {"after=2024-01-31", "before=2024-02-29", "after=2024-01-01T10:00",
                         "after=2024-01-01T10:00:59", "before=2024-01-01T10:00:00Z",
                         "after=1999-12-31T23:59:59Z"}) {
    EXPECT_TRUE(Query::Parse(ok).ok()) << ok << ": " << Query::Parse(ok).status().ToString();
  }
  for (std::string bad :
       {"after=yesterday", "after=2024-1-1", "after=2024/01/01", "before=2024-13-01",
        "before=2024-00-10", "after=2024-01-32", "after=2024-01-00", "after=2023-02-29",
        "after=2024-01-01T", "after=2024-01-01TZ", "after=2024-01-01T25:00",
        "after=2024-01-01T10:61", "after=2024-01-01T10:00:61Z", "after=2024-01-01T10:00:00ZZ",
        "after=2024-01-01 10:00", "after=2024-01-01T1:2:3", "after=2024-01-01T10:00:00+02:00"}) {
    auto q = Query::Parse(bad);
    EXPECT_EQ(q.status().code(), Code::kInvalidArgument) << bad;
    if (!q.ok()) {
      EXPECT_THAT(q.status().message(), HasSubstr("YYYY-MM-DD")) << bad;
    }
  }
}

TEST(QueryParseTest, ErrorsSayWhichTermIsWrong) {
  struct Case {
    std::string expr;
    std::string message_part;
  };
  const Case cases[] = {
      {"", "empty query"},
      {"species=HeLa,", "empty term"},
      {",species=HeLa", "empty term"},
      {"species=HeLa,,dye=A647", "empty term"},
      {"species", "'species' is not key=value"},
      {"species=HeLa,dye", "'dye' is not key=value"},
      {"=HeLa", "has no key"},
      {"species=", "'species=' has no value"},
      {"spe cies=HeLa", "key 'spe cies'"},
      {"spe/cies=HeLa", "key 'spe/cies'"},
      {"species=\xFF", "not UTF-8"},
  };
  for (const auto& c : cases) {
    auto q = Query::Parse(c.expr);
    EXPECT_EQ(q.status().code(), Code::kInvalidArgument) << "'" << c.expr << "'";
    if (!q.ok()) {
      EXPECT_THAT(q.status().message(), HasSubstr(c.message_part)) << "'" << c.expr << "'";
    }
  }
}

TEST(QueryParseTest, OperatorsNegationAlternativesAndWildcards) {
  Query q = MustParse("!tag=bad,dye!=A647,species=HeLa|Rat,created>2024-01-01,batch<7.5,structure=tub*");
  ASSERT_EQ(q.terms.size(), 6u);
  EXPECT_EQ(q.terms[0], (QueryTerm{"tag", "bad", QueryOp::kEquals, true}));
  EXPECT_EQ(q.terms[1], (QueryTerm{"dye", "A647", QueryOp::kEquals, true}));
  EXPECT_EQ(q.terms[2], (QueryTerm{"species", "HeLa|Rat"}));
  EXPECT_EQ(q.terms[3], (QueryTerm{"created", "2024-01-01", QueryOp::kGreater}));
  EXPECT_EQ(q.terms[4], (QueryTerm{"batch", "7.5", QueryOp::kLess}));
  // The canonical form negates with a leading '!'.
  EXPECT_EQ(q.ToString(), "!tag=bad,!dye=A647,species=HeLa|Rat,created>2024-01-01,batch<7.5,structure=tub*");
  EXPECT_EQ(MustParse(q.ToString()).terms, q.terms);

  auto alts = QueryAlternatives("HeLa|Ra*t|a\\|b\\*c|50%_x");
  ASSERT_EQ(alts.size(), 4u);
  EXPECT_EQ(alts[0].text, "HeLa");
  EXPECT_FALSE(alts[0].wildcard);
  EXPECT_TRUE(alts[1].wildcard);
  EXPECT_EQ(alts[1].like, "Ra%t");
  EXPECT_EQ(alts[2].text, "a|b*c");  // escaped: literal
  EXPECT_FALSE(alts[2].wildcard);
  EXPECT_EQ(alts[3].text, "50%_x");
  // QueryLiteral makes any name a value that matches only itself.
  for (std::string name : {"A*B", "x|y", "back\\slash", "plain"}) {
    auto a = QueryAlternatives(QueryLiteral(name));
    ASSERT_EQ(a.size(), 1u) << name;
    EXPECT_EQ(a[0].text, name);
    EXPECT_FALSE(a[0].wildcard) << name;
    EXPECT_TRUE(Query::Parse(Query{{{"species", QueryLiteral(name)}}}.ToString()).ok()) << name;
  }
}

TEST(QueryParseTest, OperatorErrorsSayWhy) {
  struct Case {
    std::string expr;
    std::string message_part;
  };
  const Case cases[] = {
      {"species<HeLa", "'<' and '>' compare dates and numbers"},
      {"tag>good", "'<' and '>' compare dates and numbers"},
      {"created>yesterday", "expected a date"},
      {"created<5", "expected a date"},
      {"batch>seven", "or a number"},
      {"batch>1|2", "or a number"},
      {"batch>1.2.3", "or a number"},
      {"after<2024-01-01", "expected a date, after=YYYY-MM-DD"},
      {"after=2024-01-01|2024-02-01", "YYYY-MM-DD"},
      {"species=HeLa|", "empty alternative"},
      {"species=|HeLa", "empty alternative"},
      {"!=HeLa", "has no key"},
      {"!species", "not key=value"},
  };
  for (const auto& c : cases) {
    auto q = Query::Parse(c.expr);
    EXPECT_EQ(q.status().code(), Code::kInvalidArgument) << "'" << c.expr << "'";
    if (!q.ok()) {
      EXPECT_THAT(q.status().message(), HasSubstr(c.message_part)) << "'" << c.expr << "'";
    }
  }
}

// ---------------------------------------------------------------------------
// Slide queries, on a catalog where every answer is a proper, non-empty
// subset of the slides, and where decoys (tags and annotations of images,
// labellings of other slides) must not leak into slide answers.

class SlideQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::OpenSqlite(":memory:");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    c_ = std::move(opened).value();

    int64_t hela = AddSpecies("HeLa"), rat = AddSpecies("Rat-Wistar"), mouse = AddSpecies("Mouse-B6");
    int64_t p1 = AddSample("P1", hela), p2 = AddSample("P2", hela), r1 = AddSample("R1", rat),
            m1 = AddSample("M1", mouse);
    int64_t a647 = AddDye("A647"), a488 = AddDye("A488"), cy3 = AddDye("Cy3");

    s1_ = AddSlide("S1", p1, "alice", "2024-01-10T09:00:00Z");
    s2_ = AddSlide("S2", p2, "bob", "2024-02-15T12:00:00Z");
    s3_ = AddSlide("S3", r1, "alice", "2024-03-01T00:00:00Z");
    s4_ = AddSlide("S4", m1, "carol", "2024-03-20T18:30:00Z");
    s5_ = AddSlide("S5", p1, "bob", "2023-12-31T23:59:59Z");

    Label(s1_, "tubulin", a647);
    Label(s1_, "actin", a488);
    Label(s2_, "tubulin", cy3);
    Label(s3_, "actin", a647);
    Label(s4_, "mito", a488);
    Label(s4_, "tubulin", a647);

    Ok(c_->SetTags(Entity::kSlide, s1_, {"good"}));
    Ok(c_->SetTags(Entity::kSlide, s2_, {"good", "bad"}));
    Ok(c_->SetTags(Entity::kSlide, s4_, {"good"}));
    Ok(c_->SetTags(Entity::kSlide, s5_, {"bad"}));

    int64_t i1 = ImageOf(s1_, "i1", "bob");
    int64_t i2 = ImageOf(s2_, "i2", "alice");
    int64_t i3 = ImageOf(s3_, "i3", "bob");
    ImageOf(s3_, "i3b", "carol");
    ImageOf(s5_, "i5", "alice");
    ImageOf(s1_, "i1b", "carol");  // a newer image of an older slide

    Ok(c_->SetAnnotation(Entity::kSlide, s1_, "stain", "fresh"));
    Ok(c_->SetAnnotation(Entity::kSlide, s2_, "stain", "old"));
    Ok(c_->SetAnnotation(Entity::kSlide, s3_, "stain", "fresh"));
    Ok(c_->SetAnnotation(Entity::kSlide, s5_, "stain", "fresh"));
    Ok(c_->SetAnnotation(Entity::kSlide, s5_, "batch", "7"));

    // Decoys: the same tag and annotation on images and a sample, and a
    // slide id that equals an image id.
    Ok(c_->AddTag(Entity::kImage, i3, "good"));
    Ok(c_->AddTag(Entity::kSample, r1, "good"));
    Ok(c_->SetAnnotation(Entity::kImage, i2, "stain", "fresh"));
    Ok(c_->SetAnnotation(Entity::kImage, i1, "batch", "7"));
    all_ = {s1_, s2_, s3_, s4_, s5_};
  }

  static void Ok(const Status& s) {
    if (!s.ok()) throw std::runtime_error(s.ToString());
  }
  template <class T>
  static T Ok(Result<T> r) {
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return std::move(r).value();
  }
  int64_t AddSpecies(const std::string& name) {
    samplefs::Species s;
    s.name = name;
    return Ok(c_->CreateSpecies(s)).id;
  }
  int64_t AddSample(const std::string& name, int64_t species) {
    samplefs::Sample s;
    s.name = name;
    s.species_id = species;
    return Ok(c_->CreateSample(s)).id;
  }
  int64_t AddDye(const std::string& name) {
    samplefs::Dye d;
    d.short_name = name;
    return Ok(c_->CreateDye(d)).id;
  }
  int64_t AddSlide(const std::string& ref, int64_t sample, const std::string& creator,
                const std::string& created) {
    samplefs::Slide s;
    s.reference = ref;
    s.sample_id = sample;
    s.creator = creator;
    s.created = created;
    return Ok(c_->CreateSlide(s)).id;
  }
  void Label(int64_t slide, const std::string& structure, int64_t dye) {
    Labelling l;
    l.slide_id = slide;
    l.structure = structure;
    l.dye_id = dye;
    Ok(c_->AddLabelling(l));
  }
  int64_t ImageOf(int64_t slide, const std::string& name, const std::string& user) {
    Image i;
    i.slide_id = slide;
    i.name = name;
    i.user = user;
    int64_t id = Ok(c_->CreateImage(i)).id;
    images_of_[slide].push_back(id);
    return id;
  }

  // Ids of ListImagesMatching(q), paged `limit` at a time.
  std::vector<int64_t> ImageIds(const Query& q, int limit = 1000) {
    std::vector<int64_t> ids;
    int64_t after = 0;
    for (;;) {
      auto page = c_->ListImagesMatching(q, after, limit);
      if (!page.ok()) throw std::runtime_error(page.status().ToString());
      if (page->empty()) return ids;
      for (const auto& i : *page) ids.push_back(i.id);
      after = page->back().id;
    }
  }

  std::vector<int64_t> Ids(const Query& q, int limit = 1000) {
    std::vector<int64_t> ids;
    int64_t after = 0;
    for (;;) {
      auto page = c_->ListSlides(q, after, limit);
      if (!page.ok()) throw std::runtime_error(page.status().ToString());
      if (page->empty()) return ids;
      for (const auto& s : *page) ids.push_back(s.id);
      after = page->back().id;
    }
  }

  std::unique_ptr<Catalog> c_;
  int64_t s1_ = 0, s2_ = 0, s3_ = 0, s4_ = 0, s5_ = 0;
  std::vector<int64_t> all_;
  std::map<int64_t, std::vector<int64_t>> images_of_;
};

TEST_F(SlideQueryTest, EachKindOfTerm) {
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"species=HeLa", {s1_, s2_, s5_}},
      {"species=Rat-Wistar", {s3_}},
      {"sample=P1", {s1_, s5_}},
      {"dye=A647", {s1_, s3_, s4_}},
      {"dye=A488", {s1_, s4_}},
      {"structure=tubulin", {s1_, s2_, s4_}},
      {"structure=actin", {s1_, s3_}},
      {"tag=good", {s1_, s2_, s4_}},
      {"tag=bad", {s2_, s5_}},
      {"creator=alice", {s1_, s3_}},
      {"creator=bob", {s2_, s5_}},
      {"user=bob", {s1_, s3_}},
      {"user=alice", {s2_, s5_}},
      {"after=2024-02-01", {s2_, s3_, s4_}},
      {"before=2024-02-01", {s1_, s5_}},
      {"after=2024-03-01", {s3_, s4_}},  // the whole day of the date counts
      {"after=2024-01-01,before=2024-03-01", {s1_, s2_}},
      {"after=2024-02-15T12:00:00Z", {s2_, s3_, s4_}},
      {"before=2024-02-15T12:00:00Z", {s1_, s5_}},
      {"stain=fresh", {s1_, s3_, s5_}},
      {"batch=7", {s5_}},
      {"species=HeLa,dye=A647", {s1_}},
      {"species=HeLa,tag=bad,user=alice", {s2_, s5_}},
      {"structure=tubulin,dye=A647", {s1_, s4_}},
      {"tag=good,tag=bad", {s2_}},
      {"species=HeLa,species=Rat-Wistar", {}},
      {"species=Nope", {}},
      {"dye=Nope", {}},
      {"stain=never", {}},
      {"creator=x' OR '1'='1", {}},
  };
  for (const auto& [expr, ids] : expected) {
    Query q = MustParse(expr);
    EXPECT_EQ(Ids(q), ids) << expr;
    EXPECT_EQ(Ids(q, 1), ids) << expr << " paged one by one";
    // query/<expr>/images: the images of exactly those slides, by image id.
    std::vector<int64_t> images;
    for (int64_t slide : ids)
      images.insert(images.end(), images_of_[slide].begin(), images_of_[slide].end());
    std::sort(images.begin(), images.end());
    EXPECT_EQ(ImageIds(q), images) << expr;
    EXPECT_EQ(ImageIds(q, 1), images) << expr << " images paged one by one";
    std::set<int64_t> in(ids.begin(), ids.end());
    for (int64_t slide : all_) {
      auto m = c_->SlideMatches(q, slide);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      EXPECT_EQ(*m, in.count(slide) == 1) << expr << " slide " << slide;
    }
  }
  EXPECT_EQ(Ids(Query{}), all_);
  EXPECT_EQ(*c_->SlideMatches(Query{}, s3_), true);
  EXPECT_EQ(*c_->SlideMatches(Query{}, 9999), false);
  EXPECT_EQ(*c_->SlideMatches(MustParse("species=HeLa"), 9999), false);
}

TEST_F(SlideQueryTest, AnswersFollowEdits) {
  Query q = MustParse("tag=good,dye=A488");
  EXPECT_EQ(Ids(q), (std::vector<int64_t>{s1_, s4_}));
  Ok(c_->RemoveTag(Entity::kSlide, s4_, "good"));
  EXPECT_EQ(Ids(q), (std::vector<int64_t>{s1_}));
  Ok(c_->ReplaceLabellings(s1_, {}));
  EXPECT_EQ(Ids(q), (std::vector<int64_t>{}));
  EXPECT_EQ(*c_->SlideMatches(q, s1_), false);
  auto structures = Ok(c_->ListStructures());
  EXPECT_EQ(structures, (std::vector<std::string>{"actin", "mito", "tubulin"}));
}

TEST_F(SlideQueryTest, OrNotWildcardsComparisonsAndCase) {
  // Numeric annotations compare as numbers ("12" > "7" although not as
  // text); values that are not numbers never match a comparison.
  Ok(c_->SetAnnotation(Entity::kSlide, s2_, "batch", "12"));
  Ok(c_->SetAnnotation(Entity::kSlide, s3_, "batch", "abc"));
  Ok(c_->SetAnnotation(Entity::kSlide, s4_, "batch", "-3.5"));
  Ok(c_->SetAnnotation(Entity::kSlide, s1_, "seen", "2024-05-01"));
  const std::map<std::string, std::vector<int64_t>> expected = {
      // Names ignore case when only one name matches that way.
      {"species=hela", {s1_, s2_, s5_}},
      {"species=HELA|rat-wistar", {s1_, s2_, s3_, s5_}},
      {"dye=a647", {s1_, s3_, s4_}},
      {"tag=GOOD", {s1_, s2_, s4_}},
      {"structure=Tubulin", {s1_, s2_, s4_}},
      {"sample=p1", {s1_, s5_}},
      // Free text and annotation values match exactly.
      {"creator=Alice", {}},
      {"stain=FRESH", {}},
      // | is or.
      {"dye=A647|Cy3", {s1_, s2_, s3_, s4_}},
      {"creator=alice|carol", {s1_, s3_, s4_}},
      {"stain=old|never", {s2_}},
      // ! is not: the slide has no such tag / dye at all.
      {"!tag=bad", {s1_, s3_, s4_}},
      {"tag!=bad", {s1_, s3_, s4_}},
      {"!species=HeLa", {s3_, s4_}},
      {"!dye=A647", {s2_, s5_}},
      {"!stain=fresh", {s2_, s4_}},
      {"!dye=A647|A488", {s2_, s5_}},
      // * matches any run of characters, regardless of case.
      {"structure=TUB*", {s1_, s2_, s4_}},
      {"species=*-*", {s3_, s4_}},
      {"creator=a*", {s1_, s3_}},
      {"tag=*o*", {s1_, s2_, s4_}},
      {"stain=*", {s1_, s2_, s3_, s5_}},
      {"dye=A6*|C*", {s1_, s2_, s3_, s4_}},
      // Dates: <, >, and = with a prefix or a pattern.
      {"created>2024-02-15", {s2_, s3_, s4_}},
      {"created>2024-02-15T12:00:00Z", {s3_, s4_}},
      {"created<2024-01-10T09:00:00Z", {s5_}},
      {"created<2024-01-10T09:00", {s5_}},
      {"created=2024-03", {s3_, s4_}},
      {"created=2024-0*-01*", {s3_}},
      {"!created=2024", {s5_}},
      {"modified>2000-01-01", {s1_, s2_, s3_, s4_, s5_}},
      {"acquired>2000-01-01", {s1_, s2_, s3_, s5_}},
      {"acquired<2000-01-01", {}},
      // Numbers on annotations.
      {"batch>5", {s2_, s5_}},
      {"batch>10", {s2_}},
      {"batch<0", {s4_}},
      {"batch<-4", {}},
      {"!batch>5", {s1_, s3_, s4_}},
      {"seen>2024-04-30", {s1_}},
      {"seen<2024-04-30", {}},
      {"species=HeLa,!tag=bad,dye=A647|A488", {s1_}},
  };
  for (const auto& [expr, ids] : expected) {
    Query q = MustParse(expr);
    EXPECT_EQ(Ids(q), ids) << expr;
    EXPECT_EQ(Ids(q, 1), ids) << expr << " paged one by one";
    std::set<int64_t> in(ids.begin(), ids.end());
    for (int64_t slide : all_) {
      auto m = c_->SlideMatches(q, slide);
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      EXPECT_EQ(*m, in.count(slide) == 1) << expr << " slide " << slide;
    }
  }
}

TEST_F(SlideQueryTest, CaseIsIgnoredOnlyWhereNamesAreUniqueThatWay) {
  int64_t other = AddSpecies("MOUSE-B6");
  int64_t s6 = AddSlide("S6", AddSample("M2", other), "dan", "2024-04-01T00:00:00Z");
  EXPECT_EQ(Ids(MustParse("species=Mouse-B6")), (std::vector<int64_t>{s4_}));  // exact
  EXPECT_EQ(Ids(MustParse("species=MOUSE-B6")), (std::vector<int64_t>{s6}));
  EXPECT_EQ(Ids(MustParse("species=mouse-b6")), (std::vector<int64_t>{}));     // which one?
  EXPECT_EQ(Ids(MustParse("species=mouse-b6|mouse-B6")), (std::vector<int64_t>{}));
  EXPECT_EQ(Ids(MustParse("species=mouse*")), (std::vector<int64_t>{s4_, s6}));  // a pattern: all
  EXPECT_EQ(Ids(MustParse("species=hela")), (std::vector<int64_t>{s1_, s2_, s5_}));
  // A name with '*' or '|' in it is matched literally when escaped
  // (record views, species/<name>/slides, do so).
  int64_t star = AddSpecies("Od*d|x");
  int64_t s7 = AddSlide("S7", AddSample("X1", star), "dan", "2024-04-02T00:00:00Z");
  Query literal{{{"species", QueryLiteral("Od*d|x")}}};
  EXPECT_EQ(Ids(literal), (std::vector<int64_t>{s7}));
  EXPECT_EQ(Ids(MustParse(literal.ToString())), (std::vector<int64_t>{s7}));
}

TEST_F(SlideQueryTest, UnknownKeysAreRefusedWithTheKnownOnes) {
  for (std::string ok : {"species=x", "stain=x", "batch>3", "created>2024-01-01", "after=2024-01-01",
                         "acquired=2024", "!tag=x"})
    EXPECT_TRUE(c_->CheckQueryKeys(MustParse(ok)).ok()) << ok;
  Status s = c_->CheckQueryKeys(MustParse("species=HeLa,speceis=HeLa"));
  EXPECT_EQ(s.code(), Code::kReferenceMissing);
  EXPECT_EQ(s.to_errno(), ENOENT);
  EXPECT_THAT(s.message(), HasSubstr("query key 'speceis' is neither a field nor an annotation key"));
  EXPECT_THAT(s.message(), HasSubstr("known keys: species, sample, dye, structure, tag"));
  EXPECT_THAT(s.message(), HasSubstr("annotation keys: batch, stain"));
  // An annotation key of images only is not one a slide query can match.
  int64_t image = images_of_[s1_][0];
  Ok(c_->SetAnnotation(Entity::kImage, image, "focus", "1"));
  EXPECT_EQ(c_->CheckQueryKeys(MustParse("focus=1")).code(), Code::kReferenceMissing);
  Ok(c_->SetAnnotation(Entity::kSlide, s1_, "focus", "1"));
  EXPECT_TRUE(c_->CheckQueryKeys(MustParse("focus=1")).ok());
}

TEST_F(SlideQueryTest, MalformedTermsBuiltInCodeAreRefused) {
  // Queries need not come from Parse; the catalog checks the values it
  // compares as dates itself.
  for (const Query& q : {Query{{{"after", "yesterday"}}}, Query{{{"before", "2024-13-01"}}},
                         Query{{{"species", ""}}}, Query{{{"", "x"}}},
                         Query{{{"species", "HeLa", QueryOp::kLess}}}, Query{{{"batch", "x", QueryOp::kGreater}}},
                         Query{{{"species", "a|"}}}}) {
    EXPECT_EQ(c_->ListSlides(q, 0, 10).status().code(), Code::kInvalidArgument) << q.ToString();
    EXPECT_EQ(c_->ListImagesMatching(q, 0, 10).status().code(), Code::kInvalidArgument)
        << q.ToString();
    EXPECT_EQ(c_->SlideMatches(q, s1_).status().code(), Code::kInvalidArgument) << q.ToString();
  }
}

}  // namespace
}  // namespace samplefs
