// libFuzzer target: the name validator. Invariants: a valid name is
// 1..255 bytes of UTF-8 without '/' or NUL and not "." or ".."; every
// valid name round-trips through the catalog as a key, literally.
#include <cstdlib>
#include <string>

#include "catalog/catalog.h"
#include "catalog/names.h"

using namespace samplefs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<Catalog> catalog = std::move(Catalog::OpenSqlite(":memory:").value());
  std::string name(reinterpret_cast<const char*>(data), size);
  Status s = ValidateName(name);
  bool expect = !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
                name.find('/') == std::string::npos && name.find('\0') == std::string::npos &&
                IsValidUtf8(name);
  if (s.ok() != expect) std::abort();
  if (!s.ok()) return 0;
  Species sp;
  sp.name = name;
  auto created = catalog->CreateSpecies(sp);
  if (!created.ok()) std::abort();
  auto found = catalog->SpeciesByName(name);
  if (!found.ok() || found->name != name) std::abort();
  if (!catalog->DeleteSpecies(created->id).ok()) std::abort();
  return 0;
}
