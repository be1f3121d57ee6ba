// Sidecar JSON documents (slide.json, ...) and flat record fields (the
// user.samplefs.* xattrs), rendered from the catalog.
#pragma once

#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace samplefs::fs {

// Pretty-printed JSON of a record's fields, tags and annotations, ending in
// a newline. Slides include their labellings. kNotFound if the record is gone.
Result<std::string> RenderSidecar(Catalog& catalog, Entity entity, int64_t id);

// The file name of a record's sidecar: "slide.json", ...
const char* SidecarName(Entity entity);

struct Field {
  std::string name;   // as in user.samplefs.<name>
  std::string value;  // UTF-8 text
  bool editable;
};

// The flat fields of a record, in a stable order.
Result<std::vector<Field>> RecordFields(Catalog& catalog, Entity entity, int64_t id);

}  // namespace samplefs::fs
