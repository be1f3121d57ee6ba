// libFuzzer target: sidecar documents (parser, validator, transactional
// apply). Invariant: a rejected document changes nothing in the catalog.
#include <cstdlib>
#include <string>

#include "catalog/catalog.h"
#include "fs/sidecar.h"

using namespace samplefs;

namespace {

struct World {
  std::unique_ptr<Catalog> catalog;
  int64_t slide_id = 0;
  World() {
    catalog = std::move(Catalog::OpenSqlite(":memory:").value());
    Species sp;
    sp.name = "HeLa";
    sp = catalog->CreateSpecies(sp).value();
    Sample sa;
    sa.name = "P1";
    sa.species_id = sp.id;
    sa = catalog->CreateSample(sa).value();
    Dye d;
    d.short_name = "A647";
    (void)catalog->CreateDye(d);
    Slide s;
    s.reference = "S1";
    s.sample_id = sa.id;
    slide_id = catalog->CreateSlide(s).value().id;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  std::string doc(reinterpret_cast<const char*>(data), size);
  std::string before = fs::RenderSidecar(*w.catalog, Entity::kSlide, w.slide_id).value();
  Status s = fs::ApplySidecar(*w.catalog, Entity::kSlide, w.slide_id, doc);
  auto after = fs::RenderSidecar(*w.catalog, Entity::kSlide, w.slide_id);
  if (!after.ok()) {
    // Renaming the slide is allowed; it must still render. Anything else
    // is a bug.
    std::abort();
  }
  if (!s.ok() && *after != before) std::abort();  // a rejected document changed the catalog
  if (s.ok()) {
    // Restore a known state so inputs stay independent.
    (void)fs::ApplySidecar(*w.catalog, Entity::kSlide, w.slide_id, before);
  }
  return 0;
}
