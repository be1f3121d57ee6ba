#include "fs/sidecar.h"

#include <nlohmann/json.hpp>

#include "catalog/crash_point.h"
#include "catalog/fields.h"

namespace samplefs::fs {

using nlohmann::ordered_json;

const char* SidecarName(Entity entity) {
  switch (entity) {
    case Entity::kSpecies: return "species.json";
    case Entity::kSample: return "sample.json";
    case Entity::kDye: return "dye.json";
    case Entity::kSlide: return "slide.json";
    case Entity::kImage: return "image.json";
    case Entity::kEntry: return "";
  }
  return "";
}

static Status AddTagsAndAnnotations(Catalog& c, Entity e, int64_t id, ordered_json* j) {
  SFS_ASSIGN_OR_RETURN(auto tags, c.TagsOf(e, id));
  SFS_ASSIGN_OR_RETURN(auto ann, c.AnnotationsOf(e, id));
  (*j)["tags"] = tags;
  ordered_json a = ordered_json::object();
  for (const auto& [k, v] : ann) a[k] = v;
  (*j)["annotations"] = a;
  return Status::Ok();
}

Result<std::string> RenderSidecar(Catalog& c, Entity entity, int64_t id) {
  if (entity == Entity::kEntry) return Status(Code::kInvalidArgument, "files have no sidecar");
  SFS_ASSIGN_OR_RETURN(RecordData r, LoadRecord(c, entity, id));
  ordered_json j = ordered_json::object();
  for (const auto& f : FieldsOf(entity)) {
    if (f.type == FieldType::kId) {
      j[f.name] = id;
    } else if (entity == Entity::kSlide && std::string_view(f.name) == "labellings") {
      ordered_json ls = ordered_json::array();
      for (const auto& [l, dye] : r.labellings)
        ls.push_back({{"structure", l.structure}, {"isotype", l.isotype}, {"antibody", l.antibody}, {"dye", dye}});
      j[f.name] = ls;
    } else {
      j[f.name] = f.get(r);
    }
  }
  SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(c, entity, id, &j));
  // Rows written with SQL (sqlite3, pandas) may hold bytes that are not
  // UTF-8; dump() would throw on them and make the sidecar, and every
  // listing of its directory, fail with EIO. Show U+FFFD instead.
  return j.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

Result<std::vector<Field>> RecordFields(Catalog& c, Entity entity, int64_t id) {
  SFS_ASSIGN_OR_RETURN(RecordData r, LoadRecord(c, entity, id));
  std::vector<Field> out;
  for (const auto& f : FieldsOf(entity))
    if (HasField(r, f)) out.push_back({f.name, f.get(r), f.editable});
  return out;
}

}  // namespace samplefs::fs

// ---------------------------------------------------------------------------
// Applying an edited sidecar.

namespace samplefs::fs {

namespace {

using nlohmann::json;

Status Bad(const std::string& why) { return Status(Code::kInvalidArgument, why); }

// Reads an optional string key into `out`.
Status GetString(const json& doc, const char* key, std::string* out) {
  auto it = doc.find(key);
  if (it == doc.end()) return Status::Ok();
  if (!it->is_string()) return Bad(std::string("\"") + key + "\" must be a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

// A read-only key may be present only with its current value.
Status CheckReadOnly(const json& doc, const char* key, const json& current) {
  auto it = doc.find(key);
  if (it == doc.end() || *it == current) return Status::Ok();
  return Bad(std::string("\"") + key + "\" is read-only (it is " + current.dump() + ")");
}

Status CheckKeys(const json& doc, std::initializer_list<const char*> allowed) {
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok |= it.key() == a;
    if (!ok) return Bad("unknown field \"" + it.key() + "\"");
  }
  return Status::Ok();
}

Status ApplyTagsAndAnnotations(Catalog& c, Entity e, int64_t id, const json& doc) {
  if (auto it = doc.find("tags"); it != doc.end()) {
    if (!it->is_array()) return Bad("\"tags\" must be a list of strings");
    std::vector<std::string> tags;
    for (const auto& t : *it) {
      if (!t.is_string()) return Bad("\"tags\" must be a list of strings");
      tags.push_back(t.get<std::string>());
    }
    SFS_RETURN_IF_ERROR(c.SetTags(e, id, tags));
  }
  if (auto it = doc.find("annotations"); it != doc.end()) {
    if (!it->is_object()) return Bad("\"annotations\" must be an object of strings");
    for (auto a = it->begin(); a != it->end(); ++a)
      if (!a->is_string()) return Bad("annotation \"" + a.key() + "\" must be a string");
    SFS_ASSIGN_OR_RETURN(auto current, c.AnnotationsOf(e, id));
    for (const auto& [k, v] : current)
      if (!it->contains(k)) SFS_RETURN_IF_ERROR(c.RemoveAnnotation(e, id, k));
    for (auto a = it->begin(); a != it->end(); ++a)
      SFS_RETURN_IF_ERROR(c.SetAnnotation(e, id, a.key(), a->get<std::string>()));
  }
  return Status::Ok();
}

Status ApplyLabellings(Catalog& c, int64_t slide_id, const json& doc) {
  auto it = doc.find("labellings");
  if (it == doc.end()) return Status::Ok();
  if (!it->is_array()) return Bad("\"labellings\" must be a list");
  std::vector<Labelling> ls;
  size_t n = 0;
  for (const auto& l : *it) {
    ++n;
    std::string where = "labelling " + std::to_string(n) + ": ";
    if (!l.is_object()) return Bad(where + "must be an object {structure, isotype, antibody, dye}");
    SFS_RETURN_IF_ERROR(CheckKeys(l, {"structure", "isotype", "antibody", "dye"}));
    Labelling lab;
    std::string dye;
    for (auto [key, out] : {std::pair{"structure", &lab.structure}, std::pair{"isotype", &lab.isotype},
                            std::pair{"antibody", &lab.antibody}, std::pair{"dye", &dye}}) {
      Status s = GetString(l, key, out);
      if (!s.ok()) return Bad(where + s.message());
    }
    if (lab.structure.empty()) return Bad(where + "\"structure\" is required");
    if (dye.empty()) return Bad(where + "\"dye\" is required");
    auto d = c.DyeByName(dye);
    if (!d.ok()) return Bad(where + "dye \"" + dye + "\" does not exist (create it with mkdir dyes/" + dye + ")");
    lab.dye_id = d->id;
    ls.push_back(lab);
  }
  return c.ReplaceLabellings(slide_id, ls);
}

// Editable fields are parsed first, then read-only ones are compared with
// the result: a slide's "species" must be the one its (new) sample gives.
Status ApplyParsed(Catalog& c, Entity entity, int64_t id, const json& doc) {
  if (entity == Entity::kEntry) return Bad("files have no sidecar");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    bool known = FindField(entity, it.key()) || it.key() == "tags" || it.key() == "annotations";
    if (!known) return Bad("unknown field \"" + it.key() + "\"");
  }
  SFS_ASSIGN_OR_RETURN(RecordData r, LoadRecord(c, entity, id));
  const RecordData before = r;
  for (const auto& f : FieldsOf(entity)) {
    if (!f.editable || !doc.contains(f.name)) continue;
    std::string value;
    SFS_RETURN_IF_ERROR(GetString(doc, f.name, &value));
    SFS_RETURN_IF_ERROR(SetField(c, r, f.name, value));
  }
  for (const auto& f : FieldsOf(entity)) {
    if (f.editable || (entity == Entity::kSlide && std::string_view(f.name) == "labellings")) continue;
    // A slide's modified is compared with the stored value: an optimistic lock.
    const RecordData& current = f.type == FieldType::kTimestamp ? before : r;
    json value = f.type == FieldType::kId ? json(id) : json(f.get(current));
    SFS_RETURN_IF_ERROR(CheckReadOnly(doc, f.name, value));
  }
  SFS_RETURN_IF_ERROR(SaveRecord(c, r));
  if (entity == Entity::kSlide) {
    CrashPoint("during-sidecar-apply");
    SFS_RETURN_IF_ERROR(ApplyLabellings(c, id, doc));
  }
  return ApplyTagsAndAnnotations(c, entity, id, doc);
}

}  // namespace

Status ApplySidecar(Catalog& c, Entity entity, int64_t id, const std::string& document) {
  if (document.size() > kMaxSidecarBytes)
    return Status(Code::kInvalidArgument, "document is " + std::to_string(document.size()) +
                                              " bytes, over the 1 MiB limit");
  json doc;
  try {
    doc = json::parse(document);
  } catch (const json::exception& e) {
    return Bad(std::string("invalid JSON: ") + e.what());
  }
  if (!doc.is_object()) return Bad("the document must be a JSON object");
  Transaction txn(c);
  SFS_RETURN_IF_ERROR(txn.status());
  Status s = ApplyParsed(c, entity, id, doc);
  if (!s.ok()) {
    // Catalog errors (a taken name, a bad value) are rejections of the document too.
    if (s.code() == Code::kAlreadyExists || s.code() == Code::kNameTooLong ||
        s.code() == Code::kReferenceMissing || s.code() == Code::kTooBig)
      return Bad(s.message());
    return s;
  }
  return txn.Commit();
}

}  // namespace samplefs::fs
