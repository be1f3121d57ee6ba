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

// Largest sidecar document accepted (SPEC: "a document over 1 MiB").
inline constexpr size_t kMaxSidecarBytes = 1024 * 1024;

// Validates a sidecar document written by a user and applies it in one
// transaction, or changes nothing. Keys that are absent keep their values;
// read-only keys ("id", a slide's "species" and "modified", an image's
// "slide") may be present only with their current value. A slide's
// "labellings" (list of {structure, isotype, antibody, dye}), "tags" (list
// of strings) and "annotations" (object of strings) replace the record's.
// kInvalidArgument with a message naming the key for: invalid JSON, not an
// object, unknown keys, wrong types, a dye/sample/species that does not
// exist, a changed read-only field, a document over 1 MiB.
Status ApplySidecar(Catalog& catalog, Entity entity, int64_t id, const std::string& document);

struct Field {
  std::string name;   // as in user.samplefs.<name>
  std::string value;  // UTF-8 text
  bool editable;
};

// The flat fields of a record, in a stable order.
Result<std::vector<Field>> RecordFields(Catalog& catalog, Entity entity, int64_t id);

}  // namespace samplefs::fs
