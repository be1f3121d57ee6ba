// samplectl dump / load: the whole catalog as one JSON document and back.
//
// The document names records by their natural keys (species name, slide
// reference, image name within its slide, path within files/), never by
// id, so it loads into any empty catalog. Everything is in a fixed order
// (keys sorted bytewise, labellings in their slide's order, entries by
// path) and formatted the same way every time, so dump -> load -> dump
// gives a byte-identical document. Objects are not included: the document
// is the catalog, the store is copied separately (fsck tells what is
// missing).
//
// Memory stays bounded by one slide: dump writes slide by slide, and load
// parses with a callback that applies each slide and discards it.
//
// Version 2 adds each image's desktop trash ("trash": the trashed entries
// with their subtrees, their .trashinfo data and the folder they came
// from); load reads versions 1 and 2.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <tuple>

#include "catalog/fields.h"
#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

constexpr const char* kFormat = "samplefs-dump";
constexpr int kVersion = 2;
constexpr int kOldestVersion = 1;

// Runs `sql` with text/int parameters, calling `fn` per row. Rows are read
// completely before the caller issues nested queries (see callers).
using Bind = std::variant<int64_t, std::string>;
Status Rows(Database& db, const std::string& sql, const std::vector<Bind>& binds,
            const std::function<void(const Statement&)>& fn) {
  SFS_ASSIGN_OR_RETURN(Statement * st, db.Prepare(sql));
  StatementScope scope(*st);
  int i = 1;
  for (const auto& b : binds) {
    if (std::holds_alternative<int64_t>(b)) st->Bind(i++, std::get<int64_t>(b));
    else st->Bind(i++, std::string_view(std::get<std::string>(b)));
  }
  for (;;) {
    SFS_ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return Status::Ok();
    fn(*st);
  }
}

// Adds "tags" and "annotations" to `j` when the record has any.
Status AddTagsAndAnnotations(Catalog& cat, Entity entity, int64_t id, Json* j) {
  SFS_ASSIGN_OR_RETURN(auto tags, cat.TagsOf(entity, id));
  if (!tags.empty()) (*j)["tags"] = tags;
  SFS_ASSIGN_OR_RETURN(auto annotations, cat.AnnotationsOf(entity, id));
  if (!annotations.empty()) {
    Json a = Json::object();
    for (const auto& [k, v] : annotations) a[k] = v;  // already sorted by key
    (*j)["annotations"] = a;
  }
  return Status::Ok();
}

// Indents every line after the first by `n` spaces (JSON strings never
// contain raw newlines, so this only touches structure).
std::string Indent(const std::string& text, int n) {
  std::string out;
  std::string pad(n, ' ');
  for (char c : text) {
    out += c;
    if (c == '\n') out += pad;
  }
  return out;
}

// Ids of a table's records in their dump order: one statement, rows read
// before the records are (nested queries would share its connection).
Result<std::vector<int64_t>> IdsInOrder(Database& db, const std::string& sql, const std::vector<Bind>& binds = {}) {
  std::vector<int64_t> ids;
  SFS_RETURN_IF_ERROR(Rows(db, sql, binds, [&](const Statement& st) { ids.push_back(st.Int(0)); }));
  return ids;
}

// A record's stored fields (catalog/fields.h), in the table's order.
Json StoredFields(const RecordData& r) {
  Json j = Json::object();
  for (const auto& f : FieldsOf(r.entity))
    if (f.stored) j[f.name] = f.get(r);
  return j;
}
Result<Json> StoredFields(Catalog& cat, Entity entity, int64_t id) {
  SFS_ASSIGN_OR_RETURN(RecordData r, LoadRecord(cat, entity, id));
  return StoredFields(r);
}

// ---------------------------------------------------------------------------
// dump

// The columns every entry query below selects, and their JSON.
constexpr const char* kEntryCols =
    "e.id, p.path, e.type, e.size, e.hash, e.mode, e.mtime_ns, e.target, e.kind, e.atime_ns, e.uid, e.gid";
Json EntryJson(const Statement& st, const std::string& path) {
  Json e;
  e["path"] = path;
  std::string type = st.Text(2);
  e["type"] = type;
  e["mode"] = st.Int(5);
  e["mtime_ns"] = st.Int(6);
  e["atime_ns"] = st.Int(9);  // schema v7; an owner only when recorded
  if (!st.IsNull(10)) e["uid"] = st.Int(10);
  if (!st.IsNull(11)) e["gid"] = st.Int(11);
  e["kind"] = st.Text(8);
  if (type == "file") {
    e["size"] = st.Int(3);
    e["hash"] = st.Text(4);
  } else if (type == "symlink") {
    e["target"] = st.Text(7);
  }
  return e;
}

// Adds tags and annotations to each entry and returns them as an array.
Result<Json> EntryArray(Catalog& cat, std::vector<std::pair<int64_t, Json>>& entries) {
  Json arr = Json::array();
  for (auto& [entry_id, e] : entries) {
    SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, Entity::kEntry, entry_id, &e));
    arr.push_back(std::move(e));
  }
  return arr;
}

// An image's trash (docs/DECISIONS.md "Trash"): each trashed entry with its
// subtree (paths relative to it, "" for itself), sorted by uid and trash
// name; "original_folder" is the path within files/ of the folder it came
// from, left out once that folder is gone or in the trash itself. Ids never
// appear, so the document loads into any catalog.
Result<Json> DumpTrash(Catalog& cat, int64_t image_id) {
  Database& db = cat.db();
  struct Item {
    TrashItem t;
    Json j;
  };
  std::vector<Item> items;
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT t.id FROM trash t JOIN entry e ON e.id = t.entry_id WHERE e.image_id = ?",
                           {image_id}, [&](const Statement& st) { items.push_back({TrashItem{st.Int(0)}, Json()}); }));
  for (Item& item : items) {
    SFS_ASSIGN_OR_RETURN(item.t, cat.TrashItemById(item.t.id));
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.t.uid, a.t.name) < std::tie(b.t.uid, b.t.name);
  });
  Json arr = Json::array();
  for (Item& item : items) {
    const TrashItem& t = item.t;
    Json j;
    j["uid"] = t.uid;
    j["name"] = t.name;
    j["original_name"] = t.original_name;
    j["original_path"] = t.original_path;
    j["deleted_at"] = t.deleted_at;
    // The original folder's path, walking up to files/.
    if (t.original_parent_id) {
      std::string path;
      bool live = true;
      for (int64_t cur = t.original_parent_id;;) {
        SFS_ASSIGN_OR_RETURN(Entry e, cat.EntryById(cur));
        if (e.parent_id == 0) break;
        if (e.name.rfind('/', 0) == 0) live = false;  // in the trash itself
        path = path.empty() ? e.name : e.name + "/" + path;
        cur = e.parent_id;
      }
      if (live) j["original_folder"] = path;
    }
    // The subtree; the trashed entry's own name ('/<trash id>') is the
    // prefix of every path, taken off here.
    std::vector<std::pair<int64_t, Json>> entries;
    std::string top;
    SFS_RETURN_IF_ERROR(Rows(
        db,
        "WITH RECURSIVE p(id, path) AS ("
        "  SELECT id, name FROM entry WHERE id = ?"
        "  UNION ALL"
        "  SELECT e.id, p.path || '/' || e.name FROM entry e JOIN p ON e.parent_id = p.id)"
        " SELECT " + std::string(kEntryCols) + " FROM p JOIN entry e ON e.id = p.id",
        {t.entry_id}, [&](const Statement& st) {
          std::string path = st.Text(1);
          if (st.Int(0) == t.entry_id) top = path;
          entries.emplace_back(st.Int(0), EntryJson(st, path));
        }));
    for (auto& [id, e] : entries) {
      std::string path = e["path"].get<std::string>();
      e["path"] = path == top ? "" : path.substr(top.size() + 1);
    }
    // Bytewise by path (a folder before what it holds), on every engine.
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      return a.second["path"].template get<std::string>() < b.second["path"].template get<std::string>();
    });
    SFS_ASSIGN_OR_RETURN(j["entries"], EntryArray(cat, entries));
    arr.push_back(std::move(j));
  }
  return arr;
}

struct DumpOptions {
  std::string output;
};

Result<Json> DumpSlide(Catalog& cat, int64_t slide_id) {
  Database& db = cat.db();
  SFS_ASSIGN_OR_RETURN(RecordData record, LoadRecord(cat, Entity::kSlide, slide_id));
  Json slide = StoredFields(record);
  Json labellings = Json::array();
  for (const auto& [l, dye] : record.labellings) {
    Json lj;
    lj["structure"] = l.structure;
    lj["isotype"] = l.isotype;
    lj["antibody"] = l.antibody;
    lj["dye"] = dye;
    labellings.push_back(std::move(lj));
  }
  slide["labellings"] = std::move(labellings);
  SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, Entity::kSlide, slide_id, &slide));

  std::vector<std::pair<int64_t, Json>> images;
  SFS_ASSIGN_OR_RETURN(auto image_ids, IdsInOrder(db, "SELECT id FROM image WHERE slide_id = ? ORDER BY name", {slide_id}));
  for (int64_t image_id : image_ids) {
    SFS_ASSIGN_OR_RETURN(Json i, StoredFields(cat, Entity::kImage, image_id));
    images.emplace_back(image_id, std::move(i));
  }
  Json image_array = Json::array();
  for (auto& [image_id, image] : images) {
    SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, Entity::kImage, image_id, &image));
    std::vector<std::pair<int64_t, Json>> entries;
    // Paths sort bytewise, so a folder always comes before what it holds
    // (load relies on that). The root ("", files/ itself) comes first; its
    // path is its own name, '' by definition (a literal '' would have the
    // default collation on PostgreSQL, not the column's "C").
    SFS_RETURN_IF_ERROR(Rows(
        db,
        "WITH RECURSIVE p(id, path) AS ("
        "  SELECT id, name FROM entry WHERE image_id = ? AND parent_id IS NULL"
        "  UNION ALL"
        "  SELECT e.id, CASE p.path WHEN '' THEN e.name ELSE p.path || '/' || e.name END"
        "    FROM entry e JOIN p ON e.parent_id = p.id WHERE e.name NOT LIKE '/%')"  // not the trash
        " SELECT " + std::string(kEntryCols) + " FROM p JOIN entry e ON e.id = p.id ORDER BY p.path",
        {image_id}, [&](const Statement& st) { entries.emplace_back(st.Int(0), EntryJson(st, st.Text(1))); }));
    SFS_ASSIGN_OR_RETURN(image["entries"], EntryArray(cat, entries));
    SFS_ASSIGN_OR_RETURN(Json trash, DumpTrash(cat, image_id));
    if (!trash.empty()) image["trash"] = std::move(trash);
    image_array.push_back(std::move(image));
  }
  slide["images"] = std::move(image_array);
  return slide;
}

Status Dump(Catalog& cat, Output& out) {
  Database& db = cat.db();
  auto key = [](const char* k) { return "  " + Json(k).dump() + ": "; };
  out.Write("{\n");
  out.Write(key("format") + Json(kFormat).dump() + ",\n");
  out.Write(key("version") + std::to_string(kVersion) + ",\n");
  out.Write(key("schema_version") + std::to_string(cat.schema_version()) + ",\n");

  // Species, samples, dyes: small tables, written whole.
  std::vector<std::pair<int64_t, Json>> rows;
  auto flush_array = [&](const char* name, Entity entity) -> Status {
    Json arr = Json::array();
    for (auto& [id, j] : rows) {
      SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, entity, id, &j));
      arr.push_back(std::move(j));
    }
    rows.clear();
    out.Write(key(name) + Indent(JsonText(arr, 2), 2) + ",\n");
    return Status::Ok();
  };
  for (auto [name, entity, sql] : {std::tuple{"species", Entity::kSpecies, "SELECT id FROM species ORDER BY name"},
                                   std::tuple{"samples", Entity::kSample, "SELECT id FROM sample ORDER BY name"},
                                   std::tuple{"dyes", Entity::kDye, "SELECT id FROM dye ORDER BY short_name"}}) {
    SFS_ASSIGN_OR_RETURN(auto ids, IdsInOrder(db, sql));
    for (int64_t id : ids) {
      SFS_ASSIGN_OR_RETURN(Json j, StoredFields(cat, entity, id));
      rows.emplace_back(id, std::move(j));
    }
    SFS_RETURN_IF_ERROR(flush_array(name, entity));
  }
  // Every tag, also those no record carries any more.
  Json tags = Json::array();
  SFS_RETURN_IF_ERROR(Rows(db, "SELECT name FROM tag ORDER BY name", {},
                           [&](const Statement& st) { tags.push_back(st.Text(0)); }));
  out.Write(key("tags") + JsonText(tags) + ",\n");

  SFS_ASSIGN_OR_RETURN(auto slides, IdsInOrder(db, "SELECT id FROM slide ORDER BY reference"));
  out.Write(key("slides") + (slides.empty() ? "[]\n" : "[\n"));
  for (size_t i = 0; i < slides.size(); ++i) {
    SFS_ASSIGN_OR_RETURN(Json slide, DumpSlide(cat, slides[i]));
    out.Write("    " + Indent(JsonText(slide, 2), 4) + (i + 1 < slides.size() ? ",\n" : "\n"));
  }
  if (!slides.empty()) out.Write("  ]\n");
  out.Write("}\n");
  return Status::Ok();
}

int RunDump(Context& ctx, const DumpOptions& o) {
  int rc = ctx.Open(OpenMode::kReadOnly);
  if (rc != kExitOk) return rc;
  Output out;
  if (Status s = out.Open(o.output); !s.ok()) return UsageError("{}", s.message());
  // One read transaction, so the document is a consistent snapshot even
  // while a mount writes.
  Status began = ctx.catalog->db().BeginRead();
  Status s = Dump(*ctx.catalog, out);
  if (began.ok()) (void)ctx.catalog->db().Commit();
  if (!s.ok()) {
    spdlog::error("dump failed: {}", s.message());
    return kExitProblems;
  }
  return CloseOutput(out);
}

// ---------------------------------------------------------------------------
// load

struct LoadOptions {
  std::string file;
};

// A bad document; unwinds out of the parser callback.
struct LoadError {
  Status status;
};

[[noreturn]] void Fail(const std::string& where, const std::string& why) {
  throw LoadError{Status(Code::kInvalidArgument, where + ": " + why)};
}

void Check(const Status& s, const std::string& where) {
  if (!s.ok()) throw LoadError{Status(s.code(), where + ": " + s.message())};
}

void CheckKeys(const Json& j, const std::string& where, std::initializer_list<const char*> allowed) {
  if (!j.is_object()) Fail(where, "expected a JSON object");
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) Fail(where, "unknown field '" + k + "'");
  }
}

std::string Str(const Json& j, const char* key, const std::string& where, bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) Fail(where, std::string("missing field '") + key + "'");
    return "";
  }
  if (!it->is_string()) Fail(where, std::string("field '") + key + "' must be a string");
  return it->get<std::string>();
}

int64_t Int(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) Fail(where, std::string("missing field '") + key + "'");
  if (!it->is_number_integer()) Fail(where, std::string("field '") + key + "' must be an integer");
  return it->get<int64_t>();
}

class Loader {
 public:
  explicit Loader(Catalog& cat) : cat_(cat) {}

  void Species(const Json& arr) {
    Records(arr, "species", "species", Entity::kSpecies,
            [&](const RecordData& r) { return IdOf(cat_.CreateSpecies(r.species)); });
  }
  void Samples(const Json& arr) {
    Records(arr, "samples", "sample", Entity::kSample,
            [&](const RecordData& r) { return IdOf(cat_.CreateSample(r.sample)); });
  }
  void Dyes(const Json& arr) {
    Records(arr, "dyes", "dye", Entity::kDye, [&](const RecordData& r) {
      auto id = IdOf(cat_.CreateDye(r.dye));
      if (id.ok()) dyes_[r.dye.short_name] = *id;
      return id;
    });
  }

  void Tags(const Json& arr) {
    RequireHeader("tags");
    if (!arr.is_array()) Fail("tags", "expected an array");
    for (const auto& t : arr) {
      if (!t.is_string()) Fail("tags", "every tag must be a string");
      auto existing = cat_.TagByName(t.get<std::string>());
      if (existing.ok()) continue;
      Check(cat_.CreateTag(t.get<std::string>()).status(), "tag '" + t.get<std::string>() + "'");
    }
  }

  void Slide(const Json& j) {
    RequireHeader("slides");
    std::string where = "slide '" + Str(j, "reference", "slide") + "'";
    RecordData record = Parse(j, Entity::kSlide, where, {"labellings", "tags", "annotations", "images"});
    auto r = cat_.CreateSlide(record.slide);
    Check(r.status(), where);
    int64_t slide_id = r->id;
    if (auto ls = j.find("labellings"); ls != j.end()) {
      if (!ls->is_array()) Fail(where, "labellings must be an array");
      for (const auto& lj : *ls) {
        CheckKeys(lj, where + " labelling", {"structure", "isotype", "antibody", "dye"});
        Labelling l;
        l.slide_id = slide_id;
        l.structure = Str(lj, "structure", where + " labelling");
        l.isotype = Str(lj, "isotype", where + " labelling", false);
        l.antibody = Str(lj, "antibody", where + " labelling", false);
        std::string dye = Str(lj, "dye", where + " labelling");
        auto d = dyes_.find(dye);
        if (d == dyes_.end()) Fail(where, "labelling dye '" + dye + "' is not in the document's dyes");
        l.dye_id = d->second;
        Check(cat_.AddLabelling(l).status(), where + " labelling " + l.structure);
      }
    }
    TagsAndAnnotations(j, Entity::kSlide, slide_id, where);
    if (auto images = j.find("images"); images != j.end()) {
      if (!images->is_array()) Fail(where, "images must be an array");
      for (const auto& ij : *images) Image(ij, slide_id, where);
    }
    // Adding labellings moves a slide's `modified`, as an edit should; a
    // load restores a snapshot, so the dumped value is put back.
    auto st = cat_.db().Prepare("UPDATE slide SET modified = ? WHERE id = ?");
    Check(st.status(), where);
    StatementScope scope(**st);
    scope->Bind(1, std::string_view(r->modified));
    scope->Bind(2, slide_id);
    Check(scope->Run(), where);
    ++slides_loaded_;
  }

  int64_t slides_loaded() const { return slides_loaded_; }

  // Header fields must come first, so the document is known to be a dump
  // before anything is created from it.
  void Header(const std::string& key, const Json& value) {
    if (key == "format") {
      if (!value.is_string() || value.get<std::string>() != kFormat)
        Fail("format", std::string("not a samplefs dump (expected \"") + kFormat + "\")");
      format_seen_ = true;
    } else if (key == "version") {
      if (!value.is_number_integer() || value.get<int64_t>() < kOldestVersion || value.get<int64_t>() > kVersion)
        Fail("version", "unsupported dump version " + value.dump() + " (this samplectl reads version " +
                            std::to_string(kVersion) + ")");
      version_seen_ = true;
    } else if (key == "schema_version") {
      if (!value.is_number_integer()) Fail("schema_version", "must be an integer");
      // Informational: records are loaded through the current schema.
    } else {
      Fail(key, "unknown top-level field");
    }
  }

  void Finish() { RequireHeader("the document"); }

 private:
  void RequireHeader(const std::string& what) {
    if (!format_seen_ || !version_seen_)
      Fail(what, std::string("the document does not start with \"format\": \"") + kFormat +
                     "\" and \"version\"; not a samplefs dump");
  }

  // The stored fields of a record (catalog/fields.h) from its object;
  // `extra` are the other keys the object may have. Free text may be left
  // out; keys, links and timestamps are required.
  RecordData Parse(const Json& j, Entity entity, const std::string& where,
                   std::initializer_list<const char*> extra) {
    if (!j.is_object()) Fail(where, "expected a JSON object");
    for (const auto& [k, v] : j.items()) {
      const FieldDef* f = FindField(entity, k);
      bool ok = f && f->stored;
      for (const char* e : extra) ok = ok || k == e;
      if (!ok) Fail(where, "unknown field '" + k + "'");
    }
    RecordData r;
    r.entity = entity;
    for (const auto& f : FieldsOf(entity)) {
      if (!f.stored) continue;
      Check(f.set(cat_, r, Str(j, f.name, where, f.type != FieldType::kText)), where);
    }
    return r;
  }

  // species, samples, dyes: an array of records named by their key.
  void Records(const Json& arr, const char* array_name, const char* what, Entity entity,
               const std::function<Result<int64_t>(const RecordData&)>& create) {
    RequireHeader(array_name);
    if (!arr.is_array()) Fail(array_name, "expected an array");
    const char* key = FieldsOf(entity)[1].name;  // the field after id is the key
    for (const auto& j : arr) {
      std::string where = std::string(what) + " '" + Str(j, key, what) + "'";
      RecordData r = Parse(j, entity, where, {"tags", "annotations"});
      auto id = create(r);
      Check(id.status(), where);
      TagsAndAnnotations(j, entity, *id, where);
    }
  }

  template <class T>
  static Result<int64_t> IdOf(const Result<T>& r) {
    if (!r.ok()) return r.status();
    return r->id;
  }

  void TagsAndAnnotations(const Json& j, Entity entity, int64_t id, const std::string& where) {
    if (auto t = j.find("tags"); t != j.end()) {
      if (!t->is_array()) Fail(where, "tags must be an array");
      for (const auto& name : *t) {
        if (!name.is_string()) Fail(where, "tags must be strings");
        Check(cat_.AddTag(entity, id, name.get<std::string>()), where + " tag");
      }
    }
    if (auto a = j.find("annotations"); a != j.end()) {
      if (!a->is_object()) Fail(where, "annotations must be an object");
      for (const auto& [k, v] : a->items()) {
        if (!v.is_string()) Fail(where, "annotation '" + k + "' must be a string");
        Check(cat_.SetAnnotation(entity, id, k, v.get<std::string>()), where + " annotation '" + k + "'");
      }
    }
  }

  void Image(const Json& j, int64_t slide_id, const std::string& slide_where) {
    std::string where = slide_where + " image '" + Str(j, "name", slide_where + " image") + "'";
    RecordData record = Parse(j, Entity::kImage, where, {"tags", "annotations", "entries", "trash"});
    record.image.slide_id = slide_id;
    auto r = cat_.CreateImage(record.image);
    Check(r.status(), where);
    TagsAndAnnotations(j, Entity::kImage, r->id, where);
    auto root = cat_.FilesRoot(r->id);
    Check(root.status(), where);
    // Creating an entry sets its folder's mtime to now (a local
    // filesystem's rule): the folders' own times are set again at the end,
    // as cp -a and tar do, so that a dump loads back to the same document.
    std::vector<Entry> folder_times;
    std::map<std::string, int64_t> folders;  // path within files/ -> id of the folders loaded
    if (auto entries = j.find("entries"); entries != j.end())
      Entries(*entries, r->id, root->id, 0, "", folders, folder_times, where);
    else
      folders[""] = root->id;
    if (auto trash = j.find("trash"); trash != j.end()) {
      if (!trash->is_array()) Fail(where, "trash must be an array");
      for (const auto& tj : *trash) Trashed(tj, r->id, root->id, folders, folder_times, where);
    }
    for (auto it = folder_times.rbegin(); it != folder_times.rend(); ++it)
      Check(cat_.UpdateEntry(*it), where + " folder '" + it->name + "'");
  }

  // The entries of `arr` (sorted by path, a folder before what it holds).
  // Path "" is the top: the existing `top_id` (files/ itself), or, when
  // top_id is 0, a new entry named `top_name` in folder `create_in`.
  // Folders land in `folders` by path and in `folder_times`; returns the
  // top's id.
  int64_t Entries(const Json& arr, int64_t image_id, int64_t top_id, int64_t create_in, const std::string& top_name,
                  std::map<std::string, int64_t>& folders, std::vector<Entry>& folder_times, const std::string& where) {
    if (!arr.is_array()) Fail(where, "entries must be an array");
    std::map<std::string, int64_t> local;  // path -> id within this array
    if (top_id) local[""] = top_id;
    for (const auto& ej : arr) {
      std::string path = Str(ej, "path", where + " entry");
      std::string ew = where + " entry '" + path + "'";
      CheckKeys(ej, ew, {"path", "type", "mode", "mtime_ns", "atime_ns", "uid", "gid", "kind", "size", "hash",
                         "target", "tags", "annotations"});
      Entry e;
      std::string type = Str(ej, "type", ew);
      if (type == "file") e.type = EntryType::kFile;
      else if (type == "folder") e.type = EntryType::kFolder;
      else if (type == "symlink") e.type = EntryType::kSymlink;
      else Fail(ew, "type must be file, folder or symlink, not '" + type + "'");
      e.mode = static_cast<uint32_t>(Int(ej, "mode", ew));
      e.mtime_ns = Int(ej, "mtime_ns", ew);
      // Optional (dumps before schema v7): atime is then the mtime, the
      // owner not recorded.
      if (ej.contains("atime_ns")) e.atime_ns = Int(ej, "atime_ns", ew);
      if (ej.contains("uid")) e.uid = Int(ej, "uid", ew);
      if (ej.contains("gid")) e.gid = Int(ej, "gid", ew);
      if (e.uid < -1 || e.gid < -1 || e.uid > UINT32_MAX || e.gid > UINT32_MAX)
        Fail(ew, "uid and gid must be between 0 and 4294967295");
      e.kind = Str(ej, "kind", ew, false);
      if (e.kind.empty()) e.kind = "other";
      if (e.type == EntryType::kFile) {
        int64_t size = Int(ej, "size", ew);
        if (size < 0) Fail(ew, "size must not be negative");
        e.size = static_cast<uint64_t>(size);
        e.hash = Str(ej, "hash", ew);
      } else if (e.type == EntryType::kSymlink) {
        e.target = Str(ej, "target", ew);
      }
      int64_t id;
      if (path.empty() && top_id) {
        if (e.type != EntryType::kFolder) Fail(ew, "the root of files/ must be a folder");
        e.id = top_id;
        e.image_id = image_id;
        Check(cat_.UpdateEntry(e), ew);
        // UpdateEntry writes neither atime nor owner.
        Check(cat_.SetAtimes({{top_id, e.atime_ns == Entry::kTimeUnset ? e.mtime_ns : e.atime_ns}}), ew);
        if (e.uid >= 0 || e.gid >= 0) Check(cat_.SetEntryOwner(top_id, e.uid, e.gid), ew);
        id = top_id;
      } else {
        if (path.empty()) {
          if (local.count("")) Fail(ew, "listed twice");
          e.name = top_name;
          e.parent_id = create_in;
        } else {
          auto slash = path.rfind('/');
          std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
          e.name = slash == std::string::npos ? path : path.substr(slash + 1);
          auto p = local.find(parent);
          if (p == local.end())
            Fail(ew, "its folder '" + parent + "' is not listed before it (entries must be sorted by path)");
          e.parent_id = p->second;
        }
        auto created = cat_.CreateEntry(e);
        Check(created.status(), ew);
        id = created->id;
        if (path.empty()) local[""] = id;
      }
      if (e.type == EntryType::kFolder) {
        local[path] = id;
        e.id = id;
        folder_times.push_back(e);
      }
      TagsAndAnnotations(ej, Entity::kEntry, id, ew);
    }
    if (!local.count("")) Fail(where, "no entry with path \"\" (the top)");
    if (top_id) folders = local;
    return local[""];
  }

  // One trashed entry (DumpTrash): created in files/ under a name of its
  // own, moved into the trash, then told where it came from.
  void Trashed(const Json& tj, int64_t image_id, int64_t root_id, const std::map<std::string, int64_t>& folders,
               std::vector<Entry>& folder_times, const std::string& image_where) {
    std::string where = image_where + " trash item";
    CheckKeys(tj, where, {"uid", "name", "original_name", "original_path", "deleted_at", "original_folder", "entries"});
    std::string name = Str(tj, "name", where);
    where += " '" + name + "'";
    int64_t uid = Int(tj, "uid", where);
    if (uid < 0 || uid > 0xfffffffeLL) Fail(where, "uid must be between 0 and 4294967294");
    std::string original_name = Str(tj, "original_name", where);
    std::string original_path = Str(tj, "original_path", where);
    std::string deleted_at = Str(tj, "deleted_at", where);
    auto entries = tj.find("entries");
    if (entries == tj.end()) Fail(where, "missing field 'entries'");
    std::string scratch;
    for (int n = 0;; ++n) {  // a name free in files/ for the moment
      scratch = ".samplectl-load-trash-" + std::to_string(n);
      if (cat_.EntryByName(root_id, scratch).status().is_not_found()) break;
    }
    std::map<std::string, int64_t> subtree;
    int64_t id = Entries(*entries, image_id, 0, root_id, scratch, subtree, folder_times, where);
    auto t = cat_.TrashEntry(id, uid, name, original_path, deleted_at);
    Check(t.status(), where);
    int64_t parent = 0;
    if (auto f = tj.find("original_folder"); f != tj.end()) {
      if (!f->is_string()) Fail(where, "field 'original_folder' must be a string");
      auto p = folders.find(f->get<std::string>());
      if (p == folders.end()) Fail(where, "original_folder '" + f->get<std::string>() + "' is not among the image's folders");
      parent = p->second;
    }
    auto st = cat_.db().Prepare("UPDATE trash SET original_parent_id = ?, original_name = ? WHERE id = ?");
    Check(st.status(), where);
    StatementScope scope(**st);
    if (parent) scope->Bind(1, parent);
    else scope->BindNull(1);
    scope->Bind(2, std::string_view(original_name));
    scope->Bind(3, t->id);
    Check(scope->Run(), where);
  }

  Catalog& cat_;
  bool format_seen_ = false, version_seen_ = false;
  std::map<std::string, int64_t> dyes_;
  int64_t slides_loaded_ = 0;
};

int RunLoad(Context& ctx, const LoadOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) return UsageError("cannot read {}: {}", o.file, std::strerror(errno));
  int rc = ctx.Open(OpenMode::kReadWrite);
  if (rc != kExitOk) return rc;
  Catalog& cat = *ctx.catalog;
  auto stats = cat.Stats();
  if (!stats.ok()) {
    spdlog::error("{}", stats.status().message());
    return kExitProblems;
  }
  if (stats->species || stats->dyes || stats->tags || stats->annotations) {
    spdlog::error(
        "the catalog {} is not empty ({} species, {} dyes, {} slides, {} tags); load only into a new "
        "catalog (e.g. samplectl init --catalog NEW.db)",
        RedactCatalogUrl(ctx.config.catalog), stats->species, stats->dyes, stats->slides, stats->tags);
    return kExitUsage;
  }

  // All or nothing: one transaction for the whole document.
  Transaction txn(cat);
  if (!txn.status().ok()) {
    spdlog::error("{}", txn.status().message());
    return kExitProblems;
  }
  Loader loader(cat);
  std::string top_key;
  try {
    Json rest = Json::parse(in, [&](int depth, Json::parse_event_t event, Json& parsed) {
      using E = Json::parse_event_t;
      if (depth == 0 && event == E::array_start) Fail(o.file, "the document is not a JSON object");
      if (depth == 0 && event == E::object_start) return true;
      if (depth == 1 && event == E::key) {
        top_key = parsed.get<std::string>();
        return true;
      }
      if (depth == 1 && (event == E::value || event == E::array_end || event == E::object_end)) {
        if (top_key == "species") loader.Species(parsed);
        else if (top_key == "samples") loader.Samples(parsed);
        else if (top_key == "dyes") loader.Dyes(parsed);
        else if (top_key == "tags") loader.Tags(parsed);
        else if (top_key == "slides") {
          if (!parsed.is_array() || !parsed.empty()) Fail("slides", "expected an array of objects");
        } else loader.Header(top_key, parsed);
        return false;  // applied: drop it from memory
      }
      if (depth == 2 && top_key == "slides" && event == E::object_end) {
        loader.Slide(parsed);
        return false;
      }
      return true;
    });
    if (!rest.is_object()) Fail(o.file, "the document is not a JSON object");
    loader.Finish();
  } catch (const LoadError& e) {
    spdlog::error("{}: {}; nothing was loaded", o.file, e.status.message());
    return e.status.code() == Code::kInvalidArgument || e.status.code() == Code::kAlreadyExists ||
                   e.status.code() == Code::kNameTooLong || e.status.code() == Code::kReferenceMissing
               ? kExitUsage
               : kExitProblems;
  } catch (const Json::exception& e) {
    spdlog::error("{}: not valid JSON: {}; nothing was loaded", o.file, e.what());
    return kExitUsage;
  }
  if (Status s = txn.Commit(); !s.ok()) {
    spdlog::error("cannot commit the load: {}", s.message());
    return kExitProblems;
  }
  if (!ctx.globals.quiet) std::printf("loaded %lld slides from %s\n", static_cast<long long>(loader.slides_loaded()), o.file.c_str());
  return kExitOk;
}

}  // namespace

void AddDumpCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<DumpOptions>(app, out, "dump",
      "Write the whole catalog (records with their natural keys, not the objects) as one JSON\n"
      "document, in a deterministic order and format.", RunDump);
  sub->add_option("-o,--output", o->output, "Write to FILE instead of standard output");
}

void AddLoadCommand(CLI::App& app, Commands& out) {
  auto [sub, o] = AddCommand<LoadOptions>(app, out, "load",
      "Load a document written by 'samplectl dump' into an EMPTY catalog (all or nothing).", RunLoad);
  sub->add_option("FILE", o->file, "The dump document")->required();
}

}  // namespace samplefs::ctl
