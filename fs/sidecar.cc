#include "fs/sidecar.h"

#include <nlohmann/json.hpp>

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
  return j.dump(2) + "\n";
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
