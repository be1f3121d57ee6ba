// libFuzzer target: xattr value codecs and setxattr on a record. The input
// is split into a name and a value at the first NUL. Invariants: tags
// split/join round-trips; a refused setxattr changes nothing; a stored
// user.* annotation reads back byte for byte.
#include <sys/xattr.h>

#include <cstdlib>
#include <string>

#include "catalog/catalog.h"
#include "fs/sidecar.h"
#include "fs/xattr.h"

using namespace samplefs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Catalog> catalog = std::move(Catalog::OpenSqlite(":memory:").value());
  static int64_t species_id = [] {
    Species s;
    s.name = "HeLa";
    return catalog->CreateSpecies(s).value().id;
  }();
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string name = nul == std::string::npos ? "user.x" : "user." + in.substr(0, nul);
  std::string value = nul == std::string::npos ? in : in.substr(nul + 1);

  auto tags = fs::SplitTags(value);
  if (fs::SplitTags(fs::JoinTags(tags)) != tags) std::abort();

  fs::NodeSpec node;
  node.kind = fs::NodeKind::kSpecies;
  node.record_id = species_id;
  std::string before = fs::RenderSidecar(*catalog, Entity::kSpecies, species_id).value();
  Status s = fs::SetXattr(*catalog, node, name, value, 0);
  std::string after = fs::RenderSidecar(*catalog, Entity::kSpecies, species_id).value();
  if (!s.ok() && after != before) std::abort();
  if (s.ok() && name.rfind("user.samplefs.", 0) != 0 && name != "user.xdg.tags" &&
      name != "user.xdg.comment") {
    auto back = fs::GetXattr(*catalog, node, name);
    if (!back.ok() || *back != value) std::abort();
    (void)fs::RemoveXattr(*catalog, node, name);
  }
  if (s.ok() && (name == "user.samplefs.name")) {
    // Keep the record findable for the next input.
    Species sp = catalog->SpeciesById(species_id).value();
    sp.name = "HeLa";
    (void)catalog->UpdateSpecies(sp);
  }
  return 0;
}
