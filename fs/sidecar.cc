#include "fs/sidecar.h"

#include <nlohmann/json.hpp>

#include "catalog/crash_point.h"

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
  ordered_json j;
  switch (entity) {
    case Entity::kSpecies: {
      SFS_ASSIGN_OR_RETURN(Species s, c.SpeciesById(id));
      j = {{"id", s.id}, {"name", s.name}, {"species", s.species}, {"strain", s.strain},
           {"notes", s.notes}};
      break;
    }
    case Entity::kSample: {
      SFS_ASSIGN_OR_RETURN(Sample s, c.SampleById(id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(s.species_id));
      j = {{"id", s.id}, {"name", s.name}, {"species", sp.name}, {"patient_id", s.patient_id},
           {"sample_type", s.sample_type}, {"notes", s.notes}};
      break;
    }
    case Entity::kDye: {
      SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(id));
      j = {{"id", d.id}, {"short_name", d.short_name}, {"long_name", d.long_name},
           {"spectra_db_name", d.spectra_db_name}};
      break;
    }
    case Entity::kSlide: {
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(id));
      SFS_ASSIGN_OR_RETURN(Sample sa, c.SampleById(s.sample_id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(sa.species_id));
      SFS_ASSIGN_OR_RETURN(auto labellings, c.LabellingsOfSlide(id));
      ordered_json ls = ordered_json::array();
      for (const auto& l : labellings) {
        SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(l.dye_id));
        ls.push_back({{"structure", l.structure}, {"isotype", l.isotype},
                      {"antibody", l.antibody}, {"dye", d.short_name}});
      }
      j = {{"id", s.id},           {"reference", s.reference}, {"sample", sa.name},
           {"species", sp.name},   {"creator", s.creator},     {"notes", s.notes},
           {"created", s.created}, {"modified", s.modified},   {"labellings", ls}};
      break;
    }
    case Entity::kImage: {
      SFS_ASSIGN_OR_RETURN(Image i, c.ImageById(id));
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(i.slide_id));
      j = {{"id", i.id},     {"name", i.name},         {"slide", s.reference},
           {"user", i.user}, {"acquired", i.acquired}, {"comments", i.comments}};
      break;
    }
    case Entity::kEntry:
      return Status(Code::kInvalidArgument, "files have no sidecar");
  }
  SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(c, entity, id, &j));
  // Rows written with SQL (sqlite3, pandas) may hold bytes that are not
  // UTF-8; dump() would throw on them and make the sidecar, and every
  // listing of its directory, fail with EIO. Show U+FFFD instead.
  return j.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

Result<std::vector<Field>> RecordFields(Catalog& c, Entity entity, int64_t id) {
  std::vector<Field> f;
  switch (entity) {
    case Entity::kSpecies: {
      SFS_ASSIGN_OR_RETURN(Species s, c.SpeciesById(id));
      f = {{"id", std::to_string(s.id), false}, {"name", s.name, true},
           {"species", s.species, true}, {"strain", s.strain, true}, {"notes", s.notes, true}};
      break;
    }
    case Entity::kSample: {
      SFS_ASSIGN_OR_RETURN(Sample s, c.SampleById(id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(s.species_id));
      f = {{"id", std::to_string(s.id), false}, {"name", s.name, true},
           {"species", sp.name, true}, {"patient_id", s.patient_id, true},
           {"sample_type", s.sample_type, true}, {"notes", s.notes, true}};
      break;
    }
    case Entity::kDye: {
      SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(id));
      f = {{"id", std::to_string(d.id), false}, {"short_name", d.short_name, true},
           {"long_name", d.long_name, true}, {"spectra_db_name", d.spectra_db_name, true}};
      break;
    }
    case Entity::kSlide: {
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(id));
      SFS_ASSIGN_OR_RETURN(Sample sa, c.SampleById(s.sample_id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(sa.species_id));
      SFS_ASSIGN_OR_RETURN(auto labellings, c.LabellingsOfSlide(id));
      std::string ls;
      for (const auto& l : labellings) {
        SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(l.dye_id));
        if (!ls.empty()) ls += ';';
        ls += l.structure + ":" + d.short_name;
      }
      f = {{"id", std::to_string(s.id), false}, {"reference", s.reference, true},
           {"sample", sa.name, true},           {"species", sp.name, false},
           {"creator", s.creator, true},        {"notes", s.notes, true},
           {"created", s.created, true},        {"modified", s.modified, false},
           {"labellings", ls, false}};
      break;
    }
    case Entity::kImage: {
      SFS_ASSIGN_OR_RETURN(Image i, c.ImageById(id));
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(i.slide_id));
      f = {{"id", std::to_string(i.id), false}, {"name", i.name, true},
           {"slide", s.reference, false},       {"user", i.user, true},
           {"acquired", i.acquired, true},      {"comments", i.comments, true}};
      break;
    }
    case Entity::kEntry: {
      SFS_ASSIGN_OR_RETURN(Entry e, c.EntryById(id));
      f = {{"id", std::to_string(e.id), false}};
      if (e.type == EntryType::kFile) {
        f.push_back({"hash", "xxh3-128:" + e.hash, false});
        f.push_back({"size", std::to_string(e.size), false});
        f.push_back({"kind", e.kind, true});
      }
      break;
    }
  }
  return f;
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

Status ApplyParsed(Catalog& c, Entity entity, int64_t id, const json& doc) {
  switch (entity) {
    case Entity::kSpecies: {
      SFS_RETURN_IF_ERROR(CheckKeys(doc, {"id", "name", "species", "strain", "notes", "tags", "annotations"}));
      SFS_ASSIGN_OR_RETURN(Species s, c.SpeciesById(id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "id", s.id));
      SFS_RETURN_IF_ERROR(GetString(doc, "name", &s.name));
      SFS_RETURN_IF_ERROR(GetString(doc, "species", &s.species));
      SFS_RETURN_IF_ERROR(GetString(doc, "strain", &s.strain));
      SFS_RETURN_IF_ERROR(GetString(doc, "notes", &s.notes));
      SFS_RETURN_IF_ERROR(c.UpdateSpecies(s));
      break;
    }
    case Entity::kSample: {
      SFS_RETURN_IF_ERROR(CheckKeys(doc, {"id", "name", "species", "patient_id", "sample_type", "notes", "tags", "annotations"}));
      SFS_ASSIGN_OR_RETURN(Sample s, c.SampleById(id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "id", s.id));
      std::string species;
      SFS_RETURN_IF_ERROR(GetString(doc, "species", &species));
      if (!species.empty()) {
        auto sp = c.SpeciesByName(species);
        if (!sp.ok()) return Bad("species \"" + species + "\" does not exist");
        s.species_id = sp->id;
      }
      SFS_RETURN_IF_ERROR(GetString(doc, "name", &s.name));
      SFS_RETURN_IF_ERROR(GetString(doc, "patient_id", &s.patient_id));
      SFS_RETURN_IF_ERROR(GetString(doc, "sample_type", &s.sample_type));
      SFS_RETURN_IF_ERROR(GetString(doc, "notes", &s.notes));
      SFS_RETURN_IF_ERROR(c.UpdateSample(s));
      break;
    }
    case Entity::kDye: {
      SFS_RETURN_IF_ERROR(CheckKeys(doc, {"id", "short_name", "long_name", "spectra_db_name", "tags", "annotations"}));
      SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "id", d.id));
      SFS_RETURN_IF_ERROR(GetString(doc, "short_name", &d.short_name));
      SFS_RETURN_IF_ERROR(GetString(doc, "long_name", &d.long_name));
      SFS_RETURN_IF_ERROR(GetString(doc, "spectra_db_name", &d.spectra_db_name));
      SFS_RETURN_IF_ERROR(c.UpdateDye(d));
      break;
    }
    case Entity::kSlide: {
      SFS_RETURN_IF_ERROR(CheckKeys(doc, {"id", "reference", "sample", "species", "creator", "notes",
                                          "created", "modified", "labellings", "tags", "annotations"}));
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(id));
      SFS_ASSIGN_OR_RETURN(Sample sa, c.SampleById(s.sample_id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(sa.species_id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "id", s.id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "modified", s.modified));
      std::string sample = sa.name;
      SFS_RETURN_IF_ERROR(GetString(doc, "sample", &sample));
      if (sample != sa.name) {
        auto nsa = c.SampleByName(sample);
        if (!nsa.ok()) return Bad("sample \"" + sample + "\" does not exist");
        s.sample_id = nsa->id;
        SFS_ASSIGN_OR_RETURN(sp, c.SpeciesById(nsa->species_id));
      }
      // The species follows from the sample: only its current value is valid.
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "species", sp.name));
      SFS_RETURN_IF_ERROR(GetString(doc, "reference", &s.reference));
      SFS_RETURN_IF_ERROR(GetString(doc, "creator", &s.creator));
      SFS_RETURN_IF_ERROR(GetString(doc, "notes", &s.notes));
      SFS_RETURN_IF_ERROR(GetString(doc, "created", &s.created));
      SFS_RETURN_IF_ERROR(c.UpdateSlide(s));
      CrashPoint("during-sidecar-apply");
      SFS_RETURN_IF_ERROR(ApplyLabellings(c, id, doc));
      break;
    }
    case Entity::kImage: {
      SFS_RETURN_IF_ERROR(CheckKeys(doc, {"id", "name", "slide", "user", "acquired", "comments", "tags", "annotations"}));
      SFS_ASSIGN_OR_RETURN(Image i, c.ImageById(id));
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(i.slide_id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "id", i.id));
      SFS_RETURN_IF_ERROR(CheckReadOnly(doc, "slide", s.reference));
      SFS_RETURN_IF_ERROR(GetString(doc, "name", &i.name));
      SFS_RETURN_IF_ERROR(GetString(doc, "user", &i.user));
      SFS_RETURN_IF_ERROR(GetString(doc, "acquired", &i.acquired));
      SFS_RETURN_IF_ERROR(GetString(doc, "comments", &i.comments));
      SFS_RETURN_IF_ERROR(c.UpdateImage(i));
      break;
    }
    case Entity::kEntry:
      return Bad("files have no sidecar");
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
