#include "fs/xattr.h"

#include <sys/xattr.h>

#include <algorithm>

#include "catalog/names.h"

#include "fs/sidecar.h"

namespace samplefs::fs {

namespace {
constexpr const char* kTags = "user.xdg.tags";
constexpr const char* kComment = "user.xdg.comment";
constexpr const char* kFieldPrefix = "user.samplefs.";

// The field that user.xdg.comment stands for, per entity ("" = annotation).
const char* CommentField(Entity e) {
  switch (e) {
    case Entity::kSpecies:
    case Entity::kSample:
    case Entity::kSlide: return "notes";
    case Entity::kImage: return "comments";
    default: return "";
  }
}
}  // namespace

std::optional<std::pair<Entity, int64_t>> XattrRecord(const NodeSpec& n) {
  switch (n.kind) {
    case NodeKind::kSpecies: return std::make_pair(Entity::kSpecies, n.record_id);
    case NodeKind::kSample: return std::make_pair(Entity::kSample, n.record_id);
    case NodeKind::kDye: return std::make_pair(Entity::kDye, n.record_id);
    case NodeKind::kSlide: return std::make_pair(Entity::kSlide, n.record_id);
    case NodeKind::kImage: return std::make_pair(Entity::kImage, n.record_id);
    case NodeKind::kFolder:
    case NodeKind::kFile:
    case NodeKind::kSymlink: return std::make_pair(Entity::kEntry, n.record_id);
    default: return std::nullopt;
  }
}

std::vector<std::string> SplitTags(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    std::string t = value.substr(start, end - start);
    size_t b = t.find_first_not_of(" \t\n"), e = t.find_last_not_of(" \t\n");
    if (b != std::string::npos) {
      t = t.substr(b, e - b + 1);
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    }
    start = end + 1;
  }
  return out;
}

std::string JoinTags(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) {
    if (!out.empty()) out += ',';
    out += t;
  }
  return out;
}

Result<std::vector<std::string>> ListXattrs(Catalog& c, const NodeSpec& node) {
  std::vector<std::string> names;
  auto rec = XattrRecord(node);
  if (!rec) return names;
  auto [entity, id] = *rec;
  SFS_ASSIGN_OR_RETURN(Catalog::XattrKeys keys, c.XattrKeysOf(entity, id));
  if (keys.tagged) names.push_back(kTags);
  // A file's fields (id, hash, size, kind) are answered by name but not
  // listed: rsync -X removes every listed name its source lacks and cp -a
  // copies every listed name, and neither may fail on derived values.
  // Entries have no comment field either, so their listing needs no record
  // read: one statement per listxattr (getfattr -d sends two per file).
  if (entity != Entity::kEntry) {
    SFS_ASSIGN_OR_RETURN(auto fields, RecordFields(c, entity, id));
    std::string comment_field = CommentField(entity);
    for (const auto& f : fields)
      if (!comment_field.empty() && f.name == comment_field && !f.value.empty())
        names.push_back(kComment);
    for (const auto& f : fields)
      if (!f.value.empty()) names.push_back(kFieldPrefix + f.name);
  }
  for (auto& k : keys.annotation_keys) names.push_back("user." + std::move(k));
  return names;
}

Result<std::string> GetXattr(Catalog& c, const NodeSpec& node, const std::string& name) {
  auto rec = XattrRecord(node);
  if (!rec) return Status(Code::kNotFound, "no attribute " + name);
  auto [entity, id] = *rec;
  if (name == kTags) {
    SFS_ASSIGN_OR_RETURN(auto tags, c.TagsOf(entity, id));
    if (tags.empty()) return Status(Code::kNotFound, "no tags");
    return JoinTags(tags);
  }
  std::string comment_field = CommentField(entity);
  std::string field;
  if (name == kComment && !comment_field.empty()) field = comment_field;
  else if (name.rfind(kFieldPrefix, 0) == 0) field = name.substr(std::string(kFieldPrefix).size());
  if (!field.empty()) {
    SFS_ASSIGN_OR_RETURN(auto fields, RecordFields(c, entity, id));
    for (const auto& f : fields)
      if (f.name == field) {
        if (f.value.empty()) return Status(Code::kNotFound, "attribute " + name + " is empty");
        return f.value;
      }
    return Status(Code::kNotFound, "no attribute " + name);
  }
  if (name.rfind("user.", 0) != 0) return Status(Code::kNotFound, "no attribute " + name);
  return c.Annotation(entity, id, name.substr(5));
}

}  // namespace samplefs::fs

namespace samplefs::fs {

namespace {

// Sets one editable field of a record; kPermission for read-only ones.
Status SetField(Catalog& c, Entity entity, int64_t id, const std::string& field,
                const std::string& value) {
  auto readonly = [&]() {
    return Status(Code::kPermission, "field '" + field + "' is read-only");
  };
  // A value naming a record that does not exist is an invalid value
  // (EINVAL), not a missing attribute (kNotFound would answer ENODATA).
  auto invalid_link = [](const Status& st) {
    return st.is_not_found() ? Status(Code::kInvalidArgument, st.message()) : st;
  };
  switch (entity) {
    case Entity::kSpecies: {
      SFS_ASSIGN_OR_RETURN(Species s, c.SpeciesById(id));
      if (field == "name") s.name = value;
      else if (field == "species") s.species = value;
      else if (field == "strain") s.strain = value;
      else if (field == "notes") s.notes = value;
      else if (field == "id") return readonly();
      else return Status(Code::kInvalidArgument, "species have no field '" + field + "'");
      return c.UpdateSpecies(s);
    }
    case Entity::kSample: {
      SFS_ASSIGN_OR_RETURN(Sample s, c.SampleById(id));
      if (field == "name") s.name = value;
      else if (field == "species") {
        auto sp = c.SpeciesByName(value);
        if (!sp.ok()) return invalid_link(sp.status());
        s.species_id = sp->id;
      } else if (field == "patient_id") s.patient_id = value;
      else if (field == "sample_type") s.sample_type = value;
      else if (field == "notes") s.notes = value;
      else if (field == "id") return readonly();
      else return Status(Code::kInvalidArgument, "samples have no field '" + field + "'");
      return c.UpdateSample(s);
    }
    case Entity::kDye: {
      SFS_ASSIGN_OR_RETURN(Dye d, c.DyeById(id));
      if (field == "short_name") d.short_name = value;
      else if (field == "long_name") d.long_name = value;
      else if (field == "spectra_db_name") d.spectra_db_name = value;
      else if (field == "id") return readonly();
      else return Status(Code::kInvalidArgument, "dyes have no field '" + field + "'");
      return c.UpdateDye(d);
    }
    case Entity::kSlide: {
      SFS_ASSIGN_OR_RETURN(Slide s, c.SlideById(id));
      if (field == "reference") s.reference = value;
      else if (field == "sample") {
        auto sa = c.SampleByName(value);
        if (!sa.ok()) return invalid_link(sa.status());
        s.sample_id = sa->id;
      } else if (field == "creator") s.creator = value;
      else if (field == "notes") s.notes = value;
      else if (field == "created") s.created = value;
      else if (field == "id" || field == "species" || field == "modified" || field == "labellings")
        return readonly();
      else return Status(Code::kInvalidArgument, "slides have no field '" + field + "'");
      return c.UpdateSlide(s);
    }
    case Entity::kImage: {
      SFS_ASSIGN_OR_RETURN(Image i, c.ImageById(id));
      if (field == "name") i.name = value;
      else if (field == "user") i.user = value;
      else if (field == "acquired") i.acquired = value;
      else if (field == "comments") i.comments = value;
      else if (field == "id" || field == "slide") return readonly();
      else return Status(Code::kInvalidArgument, "images have no field '" + field + "'");
      return c.UpdateImage(i);
    }
    case Entity::kEntry: {
      SFS_ASSIGN_OR_RETURN(Entry e, c.EntryById(id));
      if (field == "kind" && e.type == EntryType::kFile) {
        e.kind = value;
        return c.UpdateEntry(e);
      }
      if (field == "id" || field == "hash" || field == "size") return readonly();
      return Status(Code::kInvalidArgument, "files have no field '" + field + "'");
    }
  }
  return Status(Code::kNotFound, "no field '" + field + "'");
}

Status CheckValue(const std::string& value) {
  if (value.size() > kMaxXattrValue) return Status(Code::kTooBig, "value is over 64 KiB");
  if (!IsValidUtf8(value)) return Status(Code::kInvalidArgument, "value is not valid UTF-8");
  if (value.find('\0') != std::string::npos)
    return Status(Code::kInvalidArgument, "value contains a NUL byte");
  return Status::Ok();
}

}  // namespace

Status SetXattr(Catalog& c, const NodeSpec& node, const std::string& name, const std::string& value,
                int flags) {
  auto rec = XattrRecord(node);
  if (!rec) return Status(Code::kPermission, std::string(NodeKindName(node.kind)) + " has no attributes");
  auto [entity, id] = *rec;
  SFS_RETURN_IF_ERROR(CheckValue(value));
  if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
    auto cur = GetXattr(c, node, name);
    if (!cur.ok() && !cur.status().is_not_found()) return cur.status();
    if ((flags & XATTR_CREATE) && cur.ok()) return Status(Code::kAlreadyExists, name + " exists");
    if ((flags & XATTR_REPLACE) && !cur.ok()) return Status(Code::kNotFound, name + " does not exist");
  }
  if (name == kTags) return c.SetTags(entity, id, SplitTags(value));
  std::string comment_field = CommentField(entity);
  if (name == kComment && !comment_field.empty()) return SetField(c, entity, id, comment_field, value);
  if (name.rfind(kFieldPrefix, 0) == 0)
    return SetField(c, entity, id, name.substr(std::string(kFieldPrefix).size()), value);
  if (name.rfind("user.", 0) != 0 || name.size() == 5)
    return Status(Code::kInvalidArgument, "only user.* attributes can be stored");
  return c.SetAnnotation(entity, id, name.substr(5), value);
}

Status RemoveXattr(Catalog& c, const NodeSpec& node, const std::string& name) {
  auto rec = XattrRecord(node);
  if (!rec) return Status(Code::kNotFound, "no attribute " + name);
  auto [entity, id] = *rec;
  if (name == kTags) {
    SFS_ASSIGN_OR_RETURN(auto tags, c.TagsOf(entity, id));
    if (tags.empty()) return Status(Code::kNotFound, "no tags");
    return c.SetTags(entity, id, {});
  }
  std::string comment_field = CommentField(entity);
  std::string field;
  if (name == kComment && !comment_field.empty()) field = comment_field;
  else if (name.rfind(kFieldPrefix, 0) == 0) field = name.substr(std::string(kFieldPrefix).size());
  if (!field.empty()) {
    // Removing a free-text field empties it; keys and links cannot be removed.
    static const char* kClearable[] = {"notes", "comments", "species", "strain", "patient_id",
                                       "sample_type", "creator", "user", "long_name",
                                       "spectra_db_name"};
    bool clearable = false;
    for (const char* f : kClearable) clearable |= field == f;
    if (entity == Entity::kSample && field == "species") clearable = false;
    if (!clearable) return Status(Code::kPermission, "field '" + field + "' cannot be removed");
    auto cur = GetXattr(c, node, name);
    if (!cur.ok()) return cur.status();
    return SetField(c, entity, id, field, "");
  }
  if (name.rfind("user.", 0) != 0) return Status(Code::kNotFound, "no attribute " + name);
  return c.RemoveAnnotation(entity, id, name.substr(5));
}

}  // namespace samplefs::fs
