#include "fs/xattr.h"

#include <sys/xattr.h>

#include <algorithm>

#include "catalog/fields.h"
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
  if (auto e = RecordDirEntity(n.kind)) return std::make_pair(*e, n.record_id);
  switch (n.kind) {
    case NodeKind::kFolder:
    case NodeKind::kFile:
    case NodeKind::kSymlink: return std::make_pair(Entity::kEntry, n.record_id);
    default: return std::nullopt;
  }
}

namespace {

// The record whose attribute `name` is asked for; kNotFound (the attribute
// is absent) for a node that has none.
Result<std::pair<Entity, int64_t>> RecordWithAttributes(const NodeSpec& node, const std::string& name) {
  auto rec = XattrRecord(node);
  if (!rec) return Status(Code::kNotFound, "no attribute " + name);
  return *rec;
}

// The record's tags; kNotFound when it has none (user.xdg.tags is absent).
Result<std::vector<std::string>> PresentTags(Catalog& c, Entity entity, int64_t id) {
  SFS_ASSIGN_OR_RETURN(auto tags, c.TagsOf(entity, id));
  if (tags.empty()) return Status(Code::kNotFound, "no tags");
  return tags;
}

}  // namespace

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
  if (entity == Entity::kEntry) {
    SFS_ASSIGN_OR_RETURN(EntryXattrs x, ReadEntryXattrs(c, id));
    return std::move(x.names);
  }
  SFS_ASSIGN_OR_RETURN(Catalog::XattrKeys keys, c.XattrKeysOf(entity, id));
  if (keys.tagged) names.push_back(kTags);
  // A file's fields (id, hash, size, kind) are answered by name but not
  // listed: rsync -X removes every listed name its source lacks and cp -a
  // copies every listed name, and neither may fail on derived values.
  // Entries (answered above) have no comment field either: their listing
  // is one statement, which also gives the tags (ReadEntryXattrs).
  {
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

Result<EntryXattrs> ReadEntryXattrs(Catalog& c, int64_t entry_id) {
  SFS_ASSIGN_OR_RETURN(Catalog::XattrKeys keys, c.XattrKeysOf(Entity::kEntry, entry_id));
  EntryXattrs out;
  if (keys.tagged) out.names.push_back(kTags);
  for (auto& k : keys.annotation_keys) out.names.push_back("user." + std::move(k));
  out.tags = JoinTags(keys.tags);
  return out;
}

uint64_t XattrMemo::epoch() {
  std::lock_guard lock(mu_);
  return epoch_;
}

std::optional<EntryXattrs> XattrMemo::Get(fuse_ino_t ino, int64_t record_id, int64_t now_ns,
                                          std::optional<int64_t> changes) {
  std::lock_guard lock(mu_);
  auto it = memos_.find(ino);
  if (it == memos_.end()) return std::nullopt;
  const Memo& m = it->second;
  const bool stale = m.changes ? m.changes != changes : now_ns >= m.until_ns;
  if (m.record_id != record_id || stale) {
    memos_.erase(it);
    return std::nullopt;
  }
  return it->second.answer;
}

void XattrMemo::Put(fuse_ino_t ino, int64_t record_id, const EntryXattrs& answer, uint64_t epoch,
                    int64_t now_ns, std::optional<int64_t> changes) {
  std::lock_guard lock(mu_);
  if (epoch != epoch_) return;  // changed while it was read
  const size_t max = changes ? kMaxPushedEntries : kMaxEntries;
  if (memos_.size() >= max) {
    // Expired ones first; if all are young (many files at once), all.
    for (auto it = memos_.begin(); it != memos_.end();) {
      const Memo& m = it->second;
      const bool stale = m.changes ? m.changes != changes : now_ns >= m.until_ns;
      it = stale ? memos_.erase(it) : std::next(it);
    }
    if (memos_.size() >= max) memos_.clear();
  }
  memos_[ino] = Memo{record_id, now_ns + kMemoNs, answer, changes};
}

void XattrMemo::Changed() {
  std::lock_guard lock(mu_);
  ++epoch_;
  memos_.clear();
}

Result<std::string> GetXattr(Catalog& c, const NodeSpec& node, const std::string& name) {
  SFS_ASSIGN_OR_RETURN(auto rec, RecordWithAttributes(node, name));
  auto [entity, id] = rec;
  if (name == kTags) {
    SFS_ASSIGN_OR_RETURN(auto tags, PresentTags(c, entity, id));
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

// Sets one editable field of a record (catalog/fields.h); kPermission for
// read-only ones.
Status SetRecordField(Catalog& c, Entity entity, int64_t id, const std::string& field,
                      const std::string& value) {
  // Read and write in one transaction: the read goes to the writer, so a
  // change being committed meanwhile (a sidecar's close) is not written
  // back over (reads outside a transaction use reader connections).
  Transaction txn(c);
  SFS_RETURN_IF_ERROR(txn.status());
  SFS_ASSIGN_OR_RETURN(RecordData r, LoadRecord(c, entity, id));
  SFS_RETURN_IF_ERROR(SetField(c, r, field, value));
  SFS_RETURN_IF_ERROR(SaveRecord(c, r));
  return txn.Commit();
}

Status CheckValue(const std::string& value) {
  if (value.size() > kMaxXattrValue) return Status(Code::kTooBig, "value is over 64 KiB");
  if (!IsValidUtf8(value)) return Status(Code::kInvalidArgument, "value is not valid UTF-8");
  if (value.find('\0') != std::string::npos)
    return Status(Code::kInvalidArgument, "value contains a NUL byte");
  return Status::Ok();
}

}  // namespace

namespace {

Status StoreXattr(Catalog& c, Entity entity, int64_t id, const std::string& name, const std::string& value) {
  if (name == kTags) return c.SetTags(entity, id, SplitTags(value));
  std::string comment_field = CommentField(entity);
  if (name == kComment && !comment_field.empty()) return SetRecordField(c, entity, id, comment_field, value);
  if (name.rfind(kFieldPrefix, 0) == 0)
    return SetRecordField(c, entity, id, name.substr(std::string(kFieldPrefix).size()), value);
  if (name.rfind("user.", 0) != 0 || name.size() == 5)
    return Status(Code::kInvalidArgument, "only user.* attributes can be stored");
  return c.SetAnnotation(entity, id, name.substr(5), value);
}

}  // namespace

Status SetXattr(Catalog& c, const NodeSpec& node, const std::string& name, const std::string& value,
                int flags) {
  auto rec = XattrRecord(node);
  if (!rec) return Status(Code::kPermission, std::string(NodeKindName(node.kind)) + " has no attributes");
  auto [entity, id] = *rec;
  SFS_RETURN_IF_ERROR(CheckValue(value));
  if (!(flags & (XATTR_CREATE | XATTR_REPLACE))) return StoreXattr(c, entity, id, name, value);
  // setfattr --create/--replace: the check and the change in one
  // transaction (its reads go to the writer), so that of two --create of
  // one name exactly one succeeds.
  Transaction txn(c);
  SFS_RETURN_IF_ERROR(txn.status());
  auto cur = GetXattr(c, node, name);
  if (!cur.ok() && !cur.status().is_not_found()) return cur.status();
  if ((flags & XATTR_CREATE) && cur.ok()) return Status(Code::kAlreadyExists, name + " exists");
  if ((flags & XATTR_REPLACE) && !cur.ok()) return Status(Code::kNotFound, name + " does not exist");
  SFS_RETURN_IF_ERROR(StoreXattr(c, entity, id, name, value));
  return txn.Commit();
}

Status RemoveXattr(Catalog& c, const NodeSpec& node, const std::string& name) {
  SFS_ASSIGN_OR_RETURN(auto rec, RecordWithAttributes(node, name));
  auto [entity, id] = rec;
  if (name == kTags) {
    SFS_ASSIGN_OR_RETURN(auto tags, PresentTags(c, entity, id));
    return c.SetTags(entity, id, {});
  }
  std::string comment_field = CommentField(entity);
  std::string field;
  if (name == kComment && !comment_field.empty()) field = comment_field;
  else if (name.rfind(kFieldPrefix, 0) == 0) field = name.substr(std::string(kFieldPrefix).size());
  if (!field.empty()) {
    // Removing a free-text field empties it; keys and links cannot be removed.
    const FieldDef* f = FindField(entity, field);
    bool clearable = f && f->clearable;
    if (!clearable) return Status(Code::kPermission, "field '" + field + "' cannot be removed");
    auto cur = GetXattr(c, node, name);
    if (!cur.ok()) return cur.status();
    return SetRecordField(c, entity, id, field, "");
  }
  if (name.rfind("user.", 0) != 0) return Status(Code::kNotFound, "no attribute " + name);
  return c.RemoveAnnotation(entity, id, name.substr(5));
}

}  // namespace samplefs::fs
