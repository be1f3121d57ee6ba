// Shared helpers of the fs/ unit tests: an in-memory catalog, a Namespace
// over it, record builders, path resolution through Namespace::Lookup and
// paged listing through Namespace::List (STYLE practice 2 and 9: the
// namespace is plain code, tested without a mount).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "fs/namespace.h"
#include "fs/node.h"

namespace samplefs {

// gtest prints a Code by name. Identical (inline) in every test file.
inline void PrintTo(Code code, std::ostream* os) { *os << CodeName(code); }

namespace fs {

inline void PrintTo(NodeKind kind, std::ostream* os) { *os << NodeKindName(kind); }
inline void PrintTo(const NodeSpec& s, std::ostream* os) {
  *os << "{" << NodeKindName(s.kind) << " id=" << s.record_id << " entity=" << EntityName(s.entity)
      << " text='" << s.text << "'}";
}

namespace testing_util {

inline const Status& StatusOf(const Status& s) { return s; }
template <class T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

template <class T>
T MustOk(Result<T> r, const char* expr, const char* file, int line) {
  if (!r.ok()) {
    ADD_FAILURE_AT(file, line) << expr << " failed: " << r.status().ToString();
    throw std::runtime_error(std::string(expr) + ": " + r.status().ToString());
  }
  return std::move(r).value();
}

}  // namespace testing_util

// The value of a Result, failing the test (and leaving it) on an error.
#define MUST(expr) ::samplefs::fs::testing_util::MustOk((expr), #expr, __FILE__, __LINE__)

#define EXPECT_OK(expr)                                                       \
  do {                                                                        \
    const auto& _res = (expr);                                                \
    const auto& _st = ::samplefs::fs::testing_util::StatusOf(_res);           \
    EXPECT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();                 \
  } while (0)
#define ASSERT_OK(expr)                                                       \
  do {                                                                        \
    const auto& _res = (expr);                                                \
    const auto& _st = ::samplefs::fs::testing_util::StatusOf(_res);           \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.ToString();                 \
  } while (0)
#define EXPECT_CODE(expr, expected_code)                                      \
  do {                                                                        \
    const auto& _res = (expr);                                                \
    const auto& _st = ::samplefs::fs::testing_util::StatusOf(_res);           \
    EXPECT_EQ(_st.code(), expected_code) << #expr << ": " << _st.ToString();  \
  } while (0)

namespace testing_util {

// A distinct valid content hash per n (32 lowercase hex digits).
inline std::string HashN(unsigned n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%032x", n);
  return buf;
}

inline NodeSpec SpecOf(NodeKind k, int64_t id = 0, std::string text = {}) {
  NodeSpec s;
  s.kind = k;
  s.record_id = id;
  s.text = std::move(text);
  return s;
}

inline NodeSpec RootSpec() { return SpecOf(NodeKind::kRoot); }

// An in-memory catalog with a Namespace over it and builders for records.
class FsTest : public ::testing::Test {
 protected:
  static constexpr time_t kMountTime = 1700000000;

  void SetUp() override {
    catalog_ = MUST(Catalog::OpenSqlite(":memory:"));
    ns_ = std::make_unique<Namespace>(*catalog_, MountIdentity{1234, 5678, kMountTime});
  }

  Catalog& cat() { return *catalog_; }
  Namespace& ns() { return *ns_; }

  Species AddSpecies(const std::string& name) {
    Species s;
    s.name = name;
    return MUST(cat().CreateSpecies(s));
  }
  Sample AddSample(const std::string& name, int64_t species_id) {
    Sample s;
    s.name = name;
    s.species_id = species_id;
    return MUST(cat().CreateSample(s));
  }
  Dye AddDye(const std::string& name) {
    Dye d;
    d.short_name = name;
    return MUST(cat().CreateDye(d));
  }
  Slide AddSlide(const std::string& reference, int64_t sample_id, const std::string& creator = "ann") {
    Slide s;
    s.reference = reference;
    s.sample_id = sample_id;
    s.creator = creator;
    return MUST(cat().CreateSlide(s));
  }
  Labelling AddLabelling(int64_t slide_id, const std::string& structure, int64_t dye_id) {
    Labelling l;
    l.slide_id = slide_id;
    l.structure = structure;
    l.dye_id = dye_id;
    l.isotype = "IgG";
    l.antibody = "anti-" + structure;
    return MUST(cat().AddLabelling(l));
  }
  Image AddImage(int64_t slide_id, const std::string& name, const std::string& user = "bob") {
    Image i;
    i.slide_id = slide_id;
    i.name = name;
    i.user = user;
    return MUST(cat().CreateImage(i));
  }
  Entry AddFile(int64_t parent_id, const std::string& name, uint64_t size = 10, unsigned hash = 1,
                uint32_t mode = 0644, int64_t mtime_ns = 1600000000123456789) {
    Entry e;
    e.parent_id = parent_id;
    e.name = name;
    e.type = EntryType::kFile;
    e.size = size;
    e.hash = HashN(hash);
    e.mode = mode;
    e.mtime_ns = mtime_ns;
    return MUST(cat().CreateEntry(e));
  }
  Entry AddFolder(int64_t parent_id, const std::string& name, uint32_t mode = 0755) {
    Entry e;
    e.parent_id = parent_id;
    e.name = name;
    e.type = EntryType::kFolder;
    e.mode = mode;
    e.mtime_ns = 1600000000000000000;
    return MUST(cat().CreateEntry(e));
  }
  Entry AddSymlink(int64_t parent_id, const std::string& name, const std::string& target) {
    Entry e;
    e.parent_id = parent_id;
    e.name = name;
    e.type = EntryType::kSymlink;
    e.target = target;
    e.mtime_ns = 1600000000000000000;
    return MUST(cat().CreateEntry(e));
  }

  // Resolves a '/'-separated path from the root with Namespace::Lookup.
  Result<NodeSpec> Resolve(const std::string& path) {
    NodeSpec cur = RootSpec();
    std::stringstream ss(path);
    std::string part;
    while (std::getline(ss, part, '/')) {
      if (part.empty()) continue;
      auto next = ns().Lookup(cur, part);
      if (!next.ok()) return next.status();
      cur = *next;
    }
    return cur;
  }
  NodeSpec Path(const std::string& path) { return MUST(Resolve(path)); }

  // Lists `dir` `page` entries at a time: emit refuses the entry after
  // `page` accepted ones (a full reply buffer), and the next call resumes
  // from the last accepted entry's cookie, as the kernel does. `between`
  // runs after every page with the entries of that page.
  std::vector<DirEntry> ListPaged(const NodeSpec& dir, size_t page,
                                  const std::function<void(const std::vector<DirEntry>&)>& between = {}) {
    std::vector<DirEntry> all;
    uint64_t cookie = kFirstCookie;
    for (int calls = 0; calls < 1000000; ++calls) {
      std::vector<DirEntry> got;
      Status s = ns().List(dir, cookie, [&](const DirEntry& e) {
        if (got.size() >= page) return false;
        got.push_back(e);
        return true;
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok() || got.empty()) break;
      cookie = got.back().next_cookie;
      all.insert(all.end(), got.begin(), got.end());
      if (between) between(got);
    }
    return all;
  }
  std::vector<DirEntry> ListAll(const NodeSpec& dir) { return ListPaged(dir, 1u << 30); }

  static std::vector<std::string> Names(const std::vector<DirEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.name);
    return out;
  }
  std::vector<std::string> NamesIn(const std::string& path) { return Names(ListAll(Path(path))); }

  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Namespace> ns_;
};

}  // namespace testing_util
}  // namespace fs
}  // namespace samplefs
