#include "catalog/fields.h"

#include "catalog/catalog.h"

namespace samplefs {

namespace {

using R = RecordData;

Status NoSuch(const char* what, const std::string& name) {
  return Status(Code::kInvalidArgument, std::string(what) + " \"" + name + "\" does not exist");
}

// Field definitions are built from these, so that each table row below
// reads as one line.
constexpr bool kEdit = true, kRO = false;   // editable
constexpr bool kClear = true, kKeep = false;  // clearable
constexpr bool kStored = true, kNotStored = false;

#define SFS_GET(expr) [](const R& r) -> std::string { return expr; }
#define SFS_SET(lvalue) \
  [](Catalog&, R& r, const std::string& v) -> Status { lvalue = v; return Status::Ok(); }

FieldDef F(const char* name, FieldType type, bool editable, bool clearable, bool stored,
           std::string (*get)(const R&), Status (*set)(Catalog&, R&, const std::string&)) {
  return FieldDef{name, type, editable, clearable, stored, false, get, set};
}
FieldDef FileField(FieldDef f) {
  f.files_only = true;
  return f;
}

Status SetSampleSpecies(Catalog& c, R& r, const std::string& v) {
  auto sp = c.SpeciesByName(v);
  if (!sp.ok()) return sp.status().is_not_found() ? NoSuch("species", v) : sp.status();
  r.sample.species_id = sp->id;
  r.species_name = sp->name;
  return Status::Ok();
}

// A slide's species follows from its sample.
Status SetSlideSample(Catalog& c, R& r, const std::string& v) {
  if (v == r.sample_name && r.slide.sample_id) return Status::Ok();
  auto sa = c.SampleByName(v);
  if (!sa.ok()) return sa.status().is_not_found() ? NoSuch("sample", v) : sa.status();
  SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(sa->species_id));
  r.slide.sample_id = sa->id;
  r.sample_name = sa->name;
  r.species_name = sp.name;
  return Status::Ok();
}

const std::vector<FieldDef> kSpeciesFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.species.id)), nullptr),
    F("name", FieldType::kKey, kEdit, kKeep, kStored, SFS_GET(r.species.name), SFS_SET(r.species.name)),
    F("species", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.species.species), SFS_SET(r.species.species)),
    F("strain", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.species.strain), SFS_SET(r.species.strain)),
    F("notes", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.species.notes), SFS_SET(r.species.notes)),
};

const std::vector<FieldDef> kSampleFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.sample.id)), nullptr),
    F("name", FieldType::kKey, kEdit, kKeep, kStored, SFS_GET(r.sample.name), SFS_SET(r.sample.name)),
    F("species", FieldType::kLink, kEdit, kKeep, kStored, SFS_GET(r.species_name), SetSampleSpecies),
    F("patient_id", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.sample.patient_id), SFS_SET(r.sample.patient_id)),
    F("sample_type", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.sample.sample_type), SFS_SET(r.sample.sample_type)),
    F("notes", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.sample.notes), SFS_SET(r.sample.notes)),
};

const std::vector<FieldDef> kDyeFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.dye.id)), nullptr),
    F("short_name", FieldType::kKey, kEdit, kKeep, kStored, SFS_GET(r.dye.short_name), SFS_SET(r.dye.short_name)),
    F("long_name", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.dye.long_name), SFS_SET(r.dye.long_name)),
    F("spectra_db_name", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.dye.spectra_db_name), SFS_SET(r.dye.spectra_db_name)),
};

const std::vector<FieldDef> kSlideFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.slide.id)), nullptr),
    F("reference", FieldType::kKey, kEdit, kKeep, kStored, SFS_GET(r.slide.reference), SFS_SET(r.slide.reference)),
    F("sample", FieldType::kLink, kEdit, kKeep, kStored, SFS_GET(r.sample_name), SetSlideSample),
    F("species", FieldType::kDerived, kRO, kKeep, kNotStored, SFS_GET(r.species_name), nullptr),
    F("creator", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.slide.creator), SFS_SET(r.slide.creator)),
    F("notes", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.slide.notes), SFS_SET(r.slide.notes)),
    F("created", FieldType::kTimestamp, kEdit, kKeep, kStored, SFS_GET(r.slide.created), SFS_SET(r.slide.created)),
    // Maintained by the catalog; settable only by load (a snapshot).
    F("modified", FieldType::kTimestamp, kRO, kKeep, kStored, SFS_GET(r.slide.modified), SFS_SET(r.slide.modified)),
    F("labellings", FieldType::kDerived, kRO, kKeep, kNotStored, LabellingsText, nullptr),
};

const std::vector<FieldDef> kImageFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.image.id)), nullptr),
    F("name", FieldType::kKey, kEdit, kKeep, kStored, SFS_GET(r.image.name), SFS_SET(r.image.name)),
    // Read-only (mv moves images); dumps nest images in their slide.
    F("slide", FieldType::kLink, kRO, kKeep, kNotStored, SFS_GET(r.slide_reference), nullptr),
    F("user", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.image.user), SFS_SET(r.image.user)),
    F("acquired", FieldType::kTimestamp, kEdit, kKeep, kStored, SFS_GET(r.image.acquired), SFS_SET(r.image.acquired)),
    F("comments", FieldType::kText, kEdit, kClear, kStored, SFS_GET(r.image.comments), SFS_SET(r.image.comments)),
};

// Files, folders and symlinks inside files/. Dumps write entries as their
// own tree (path, type, mode, mtime), not through these fields.
const std::vector<FieldDef> kEntryFields = {
    F("id", FieldType::kId, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.entry.id)), nullptr),
    FileField(F("hash", FieldType::kDerived, kRO, kKeep, kNotStored, SFS_GET("xxh3-128:" + r.entry.hash), nullptr)),
    FileField(F("size", FieldType::kDerived, kRO, kKeep, kNotStored, SFS_GET(std::to_string(r.entry.size)), nullptr)),
    FileField(F("kind", FieldType::kText, kEdit, kKeep, kNotStored, SFS_GET(r.entry.kind), SFS_SET(r.entry.kind))),
};

#undef SFS_GET
#undef SFS_SET

}  // namespace

std::string JoinLabellings(const std::vector<std::pair<Labelling, std::string>>& labellings) {
  std::string out;
  for (const auto& [l, dye] : labellings) {
    if (!out.empty()) out += ';';
    out += l.structure + ":" + dye;
  }
  return out;
}

std::string LabellingsText(const RecordData& r) { return JoinLabellings(r.labellings); }

const char* EntityPlural(Entity e) {
  switch (e) {
    case Entity::kSpecies: return "species";
    case Entity::kSample: return "samples";
    case Entity::kDye: return "dyes";
    case Entity::kSlide: return "slides";
    case Entity::kImage: return "images";
    case Entity::kEntry: return "files";
  }
  return "records";
}

const std::vector<FieldDef>& FieldsOf(Entity e) {
  switch (e) {
    case Entity::kSpecies: return kSpeciesFields;
    case Entity::kSample: return kSampleFields;
    case Entity::kDye: return kDyeFields;
    case Entity::kSlide: return kSlideFields;
    case Entity::kImage: return kImageFields;
    case Entity::kEntry: return kEntryFields;
  }
  return kEntryFields;
}

const FieldDef* FindField(Entity e, std::string_view name) {
  for (const auto& f : FieldsOf(e))
    if (name == f.name) return &f;
  return nullptr;
}

bool HasField(const RecordData& r, const FieldDef& f) {
  return !f.files_only || r.entry.type == EntryType::kFile;
}

Result<RecordData> LoadRecord(Catalog& c, Entity entity, int64_t id) {
  RecordData r;
  r.entity = entity;
  switch (entity) {
    case Entity::kSpecies: {
      SFS_ASSIGN_OR_RETURN(r.species, c.SpeciesById(id));
      break;
    }
    case Entity::kSample: {
      SFS_ASSIGN_OR_RETURN(r.sample, c.SampleById(id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(r.sample.species_id));
      r.species_name = sp.name;
      break;
    }
    case Entity::kDye: {
      SFS_ASSIGN_OR_RETURN(r.dye, c.DyeById(id));
      break;
    }
    case Entity::kSlide: {
      SFS_ASSIGN_OR_RETURN(r.slide, c.SlideById(id));
      SFS_ASSIGN_OR_RETURN(Sample sa, c.SampleById(r.slide.sample_id));
      SFS_ASSIGN_OR_RETURN(Species sp, c.SpeciesById(sa.species_id));
      r.sample_name = sa.name;
      r.species_name = sp.name;
      SFS_ASSIGN_OR_RETURN(auto labellings, c.LabellingsOfSlide(id));
      for (auto& l : labellings) {
        SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(l.dye_id));
        r.labellings.emplace_back(std::move(l), d.short_name);
      }
      break;
    }
    case Entity::kImage: {
      SFS_ASSIGN_OR_RETURN(r.image, c.ImageById(id));
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(r.image.slide_id));
      r.slide_reference = s.reference;
      break;
    }
    case Entity::kEntry: {
      SFS_ASSIGN_OR_RETURN(r.entry, c.EntryById(id));
      break;
    }
  }
  return r;
}

Status SaveRecord(Catalog& c, const RecordData& r) {
  switch (r.entity) {
    case Entity::kSpecies: return c.UpdateSpecies(r.species);
    case Entity::kSample: return c.UpdateSample(r.sample);
    case Entity::kDye: return c.UpdateDye(r.dye);
    case Entity::kSlide: return c.UpdateSlide(r.slide);
    case Entity::kImage: return c.UpdateImage(r.image);
    case Entity::kEntry: return c.UpdateEntry(r.entry);
  }
  return Status(Code::kInvalidArgument, "unknown record kind");
}

Status SetField(Catalog& c, RecordData& r, std::string_view name, const std::string& value) {
  const FieldDef* f = FindField(r.entity, name);
  const char* kinds = r.entity == Entity::kEntry && r.entry.type != EntryType::kFile
                          ? (r.entry.type == EntryType::kFolder ? "folders" : "symlinks")
                          : EntityPlural(r.entity);
  if (!f) return Status(Code::kInvalidArgument, std::string(kinds) + " have no field '" + std::string(name) + "'");
  if (!f->editable || !f->set)
    return Status(Code::kPermission, "field '" + std::string(name) + "' is read-only");
  if (!HasField(r, *f))
    return Status(Code::kInvalidArgument, std::string(kinds) + " have no field '" + std::string(name) + "'");
  return f->set(c, r, value);
}

// ---------------------------------------------------------------------------
// Query keys. Columns are over `slide s JOIN sample sa JOIN species sp`; an
// EXISTS key names its own alias.

const std::vector<QueryKeyDef>& QueryKeys() {
  static const std::vector<QueryKeyDef> keys = {
      {"species", QueryKeyKind::kName, "sp.name", nullptr, "species", "name", "the slide's species"},
      {"sample", QueryKeyKind::kName, "sa.name", nullptr, "sample", "name", "the slide's sample"},
      {"dye", QueryKeyKind::kName, "d.short_name",
       "FROM labelling l JOIN dye d ON d.id = l.dye_id WHERE l.slide_id = s.id", "dye", "short_name",
       "a dye of the slide's labellings"},
      {"structure", QueryKeyKind::kName, "l.structure", "FROM labelling l WHERE l.slide_id = s.id",
       "labelling", "structure", "a labelled structure"},
      {"tag", QueryKeyKind::kName, "t.name",
       "FROM tagging g JOIN tag t ON t.id = g.tag_id WHERE g.entity = 'slide' AND g.record_id = s.id",
       "tag", "name", "a tag of the slide"},
      {"creator", QueryKeyKind::kText, "s.creator", nullptr, nullptr, nullptr, "the slide's creator"},
      {"user", QueryKeyKind::kText, "i.\"user\"", "FROM image i WHERE i.slide_id = s.id", nullptr, nullptr,
       "the user of one of its images"},
      {"created", QueryKeyKind::kTime, "s.created", nullptr, nullptr, nullptr, "when the slide was made"},
      {"modified", QueryKeyKind::kTime, "s.modified", nullptr, nullptr, nullptr, "the slide's last change"},
      {"acquired", QueryKeyKind::kTime, "i.acquired", "FROM image i WHERE i.slide_id = s.id", nullptr,
       nullptr, "when one of its images was acquired"},
      {"after", QueryKeyKind::kAfter, "s.created", nullptr, nullptr, nullptr, "created at or after a date"},
      {"before", QueryKeyKind::kBefore, "s.created", nullptr, nullptr, nullptr, "created before a date"},
  };
  return keys;
}

const QueryKeyDef* FindQueryKey(std::string_view key) {
  for (const auto& k : QueryKeys())
    if (key == k.key) return &k;
  return nullptr;
}

}  // namespace samplefs
