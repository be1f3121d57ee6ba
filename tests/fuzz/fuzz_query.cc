// libFuzzer target: query expressions. Invariants: parsing never crashes;
// a parsed query prints to an expression that parses to the same terms;
// running it is one parameterized statement that never fails on input.
#include <cstdlib>
#include <string>

#include "catalog/catalog.h"
#include "catalog/query.h"

using namespace samplefs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Catalog> catalog = std::move(Catalog::OpenSqlite(":memory:").value());
  std::string expr(reinterpret_cast<const char*>(data), size);
  auto q = Query::Parse(expr);
  if (!q.ok()) {
    if (q.status().code() != Code::kInvalidArgument || q.status().message().empty()) std::abort();
    return 0;
  }
  auto again = Query::Parse(q->ToString());
  if (!again.ok() || again->terms != q->terms) std::abort();
  auto slides = catalog->ListSlides(*q, 0, 10);
  if (!slides.ok()) std::abort();
  return 0;
}
