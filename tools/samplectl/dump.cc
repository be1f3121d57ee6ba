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
#include <spdlog/spdlog.h>

#include <fstream>
#include <map>

#include "tools/samplectl/common.h"

namespace samplefs::ctl {

namespace {

constexpr const char* kFormat = "samplefs-dump";
constexpr int kVersion = 1;

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

// ---------------------------------------------------------------------------
// dump

struct DumpOptions {
  std::string output;
};

Result<Json> DumpSlide(Catalog& cat, int64_t slide_id, Json slide) {
  Database& db = cat.db();
  Json labellings = Json::array();
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT l.structure, l.isotype, l.antibody, d.short_name FROM labelling l "
                           "JOIN dye d ON d.id = l.dye_id WHERE l.slide_id = ? ORDER BY l.id",
                           {slide_id}, [&](const Statement& st) {
                             Json l;
                             l["structure"] = st.Text(0);
                             l["isotype"] = st.Text(1);
                             l["antibody"] = st.Text(2);
                             l["dye"] = st.Text(3);
                             labellings.push_back(std::move(l));
                           }));
  slide["labellings"] = std::move(labellings);
  SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, Entity::kSlide, slide_id, &slide));

  std::vector<std::pair<int64_t, Json>> images;
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT id, name, \"user\", acquired, comments FROM image WHERE slide_id = ? "
                           "ORDER BY name",
                           {slide_id}, [&](const Statement& st) {
                             Json i;
                             i["name"] = st.Text(1);
                             i["user"] = st.Text(2);
                             i["acquired"] = st.Text(3);
                             i["comments"] = st.Text(4);
                             images.emplace_back(st.Int(0), std::move(i));
                           }));
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
        "    FROM entry e JOIN p ON e.parent_id = p.id)"
        " SELECT e.id, p.path, e.type, e.size, e.hash, e.mode, e.mtime_ns, e.target, e.kind"
        " FROM p JOIN entry e ON e.id = p.id ORDER BY p.path",
        {image_id}, [&](const Statement& st) {
          Json e;
          e["path"] = st.Text(1);
          std::string type = st.Text(2);
          e["type"] = type;
          e["mode"] = st.Int(5);
          e["mtime_ns"] = st.Int(6);
          e["kind"] = st.Text(8);
          if (type == "file") {
            e["size"] = st.Int(3);
            e["hash"] = st.Text(4);
          } else if (type == "symlink") {
            e["target"] = st.Text(7);
          }
          entries.emplace_back(st.Int(0), std::move(e));
        }));
    Json entry_array = Json::array();
    for (auto& [entry_id, e] : entries) {
      SFS_RETURN_IF_ERROR(AddTagsAndAnnotations(cat, Entity::kEntry, entry_id, &e));
      entry_array.push_back(std::move(e));
    }
    image["entries"] = std::move(entry_array);
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
  SFS_RETURN_IF_ERROR(Rows(db, "SELECT id, name, species, strain, notes FROM species ORDER BY name", {},
                           [&](const Statement& st) {
                             Json j;
                             j["name"] = st.Text(1);
                             j["species"] = st.Text(2);
                             j["strain"] = st.Text(3);
                             j["notes"] = st.Text(4);
                             rows.emplace_back(st.Int(0), std::move(j));
                           }));
  SFS_RETURN_IF_ERROR(flush_array("species", Entity::kSpecies));
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT sa.id, sa.name, sp.name, sa.patient_id, sa.sample_type, sa.notes "
                           "FROM sample sa JOIN species sp ON sp.id = sa.species_id ORDER BY sa.name",
                           {}, [&](const Statement& st) {
                             Json j;
                             j["name"] = st.Text(1);
                             j["species"] = st.Text(2);
                             j["patient_id"] = st.Text(3);
                             j["sample_type"] = st.Text(4);
                             j["notes"] = st.Text(5);
                             rows.emplace_back(st.Int(0), std::move(j));
                           }));
  SFS_RETURN_IF_ERROR(flush_array("samples", Entity::kSample));
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT id, short_name, long_name, spectra_db_name FROM dye ORDER BY short_name",
                           {}, [&](const Statement& st) {
                             Json j;
                             j["short_name"] = st.Text(1);
                             j["long_name"] = st.Text(2);
                             j["spectra_db_name"] = st.Text(3);
                             rows.emplace_back(st.Int(0), std::move(j));
                           }));
  SFS_RETURN_IF_ERROR(flush_array("dyes", Entity::kDye));
  // Every tag, also those no record carries any more.
  Json tags = Json::array();
  SFS_RETURN_IF_ERROR(Rows(db, "SELECT name FROM tag ORDER BY name", {},
                           [&](const Statement& st) { tags.push_back(st.Text(0)); }));
  out.Write(key("tags") + JsonText(tags) + ",\n");

  std::vector<std::pair<int64_t, Json>> slides;
  SFS_RETURN_IF_ERROR(Rows(db,
                           "SELECT s.id, s.reference, sa.name, s.creator, s.notes, s.created, s.modified "
                           "FROM slide s JOIN sample sa ON sa.id = s.sample_id ORDER BY s.reference",
                           {}, [&](const Statement& st) {
                             Json j;
                             j["reference"] = st.Text(1);
                             j["sample"] = st.Text(2);
                             j["creator"] = st.Text(3);
                             j["notes"] = st.Text(4);
                             j["created"] = st.Text(5);
                             j["modified"] = st.Text(6);
                             slides.emplace_back(st.Int(0), std::move(j));
                           }));
  out.Write(key("slides") + (slides.empty() ? "[]\n" : "[\n"));
  for (size_t i = 0; i < slides.size(); ++i) {
    SFS_ASSIGN_OR_RETURN(Json slide, DumpSlide(cat, slides[i].first, std::move(slides[i].second)));
    slides[i].second = Json();  // release as we go
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
  if (Status s = out.Open(o.output); !s.ok()) {
    spdlog::error("{}", s.message());
    return kExitUsage;
  }
  // One read transaction, so the document is a consistent snapshot even
  // while a mount writes.
  Status began = ctx.catalog->db().BeginRead();
  Status s = Dump(*ctx.catalog, out);
  if (began.ok()) (void)ctx.catalog->db().Commit();
  if (!s.ok()) {
    spdlog::error("dump failed: {}", s.message());
    return kExitProblems;
  }
  if (Status c = out.Close(); !c.ok()) {
    spdlog::error("{}", c.message());
    return kExitProblems;
  }
  return kExitOk;
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
    RequireHeader("species");
    if (!arr.is_array()) Fail("species", "expected an array");
    for (const auto& j : arr) {
      std::string where = "species '" + Str(j, "name", "species") + "'";
      CheckKeys(j, where, {"name", "species", "strain", "notes", "tags", "annotations"});
      samplefs::Species s;
      s.name = Str(j, "name", where);
      s.species = Str(j, "species", where, false);
      s.strain = Str(j, "strain", where, false);
      s.notes = Str(j, "notes", where, false);
      auto r = cat_.CreateSpecies(s);
      Check(r.status(), where);
      species_[s.name] = r->id;
      TagsAndAnnotations(j, Entity::kSpecies, r->id, where);
    }
  }

  void Samples(const Json& arr) {
    RequireHeader("samples");
    if (!arr.is_array()) Fail("samples", "expected an array");
    for (const auto& j : arr) {
      std::string where = "sample '" + Str(j, "name", "sample") + "'";
      CheckKeys(j, where, {"name", "species", "patient_id", "sample_type", "notes", "tags", "annotations"});
      Sample s;
      s.name = Str(j, "name", where);
      std::string sp = Str(j, "species", where);
      auto it = species_.find(sp);
      if (it == species_.end()) Fail(where, "species '" + sp + "' is not in the document's species");
      s.species_id = it->second;
      s.patient_id = Str(j, "patient_id", where, false);
      s.sample_type = Str(j, "sample_type", where, false);
      s.notes = Str(j, "notes", where, false);
      auto r = cat_.CreateSample(s);
      Check(r.status(), where);
      samples_[s.name] = r->id;
      TagsAndAnnotations(j, Entity::kSample, r->id, where);
    }
  }

  void Dyes(const Json& arr) {
    RequireHeader("dyes");
    if (!arr.is_array()) Fail("dyes", "expected an array");
    for (const auto& j : arr) {
      std::string where = "dye '" + Str(j, "short_name", "dye") + "'";
      CheckKeys(j, where, {"short_name", "long_name", "spectra_db_name", "tags", "annotations"});
      Dye d;
      d.short_name = Str(j, "short_name", where);
      d.long_name = Str(j, "long_name", where, false);
      d.spectra_db_name = Str(j, "spectra_db_name", where, false);
      auto r = cat_.CreateDye(d);
      Check(r.status(), where);
      dyes_[d.short_name] = r->id;
      TagsAndAnnotations(j, Entity::kDye, r->id, where);
    }
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
    CheckKeys(j, where, {"reference", "sample", "creator", "notes", "created", "modified", "labellings",
                         "tags", "annotations", "images"});
    samplefs::Slide s;
    s.reference = Str(j, "reference", where);
    std::string sample = Str(j, "sample", where);
    auto it = samples_.find(sample);
    if (it == samples_.end()) Fail(where, "sample '" + sample + "' is not in the document's samples");
    s.sample_id = it->second;
    s.creator = Str(j, "creator", where, false);
    s.notes = Str(j, "notes", where, false);
    s.created = Str(j, "created", where);
    s.modified = Str(j, "modified", where);
    auto r = cat_.CreateSlide(s);
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
      if (!value.is_number_integer() || value.get<int64_t>() != kVersion)
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
    CheckKeys(j, where, {"name", "user", "acquired", "comments", "tags", "annotations", "entries"});
    samplefs::Image im;
    im.slide_id = slide_id;
    im.name = Str(j, "name", where);
    im.user = Str(j, "user", where, false);
    im.acquired = Str(j, "acquired", where);
    im.comments = Str(j, "comments", where, false);
    auto r = cat_.CreateImage(im);
    Check(r.status(), where);
    TagsAndAnnotations(j, Entity::kImage, r->id, where);
    auto root = cat_.FilesRoot(r->id);
    Check(root.status(), where);
    std::map<std::string, int64_t> folders;  // path -> id of folders seen so far
    folders[""] = root->id;
    auto entries = j.find("entries");
    if (entries == j.end()) return;
    if (!entries->is_array()) Fail(where, "entries must be an array");
    for (const auto& ej : *entries) {
      std::string path = Str(ej, "path", where + " entry");
      std::string ew = where + " entry '" + path + "'";
      CheckKeys(ej, ew, {"path", "type", "mode", "mtime_ns", "kind", "size", "hash", "target", "tags",
                         "annotations"});
      Entry e;
      std::string type = Str(ej, "type", ew);
      if (type == "file") e.type = EntryType::kFile;
      else if (type == "folder") e.type = EntryType::kFolder;
      else if (type == "symlink") e.type = EntryType::kSymlink;
      else Fail(ew, "type must be file, folder or symlink, not '" + type + "'");
      e.mode = static_cast<uint32_t>(Int(ej, "mode", ew));
      e.mtime_ns = Int(ej, "mtime_ns", ew);
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
      if (path.empty()) {
        if (e.type != EntryType::kFolder) Fail(ew, "the root of files/ must be a folder");
        e.id = root->id;
        e.image_id = r->id;
        Check(cat_.UpdateEntry(e), ew);
        id = root->id;
      } else {
        auto slash = path.rfind('/');
        std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
        e.name = slash == std::string::npos ? path : path.substr(slash + 1);
        auto p = folders.find(parent);
        if (p == folders.end())
          Fail(ew, "its folder '" + parent + "' is not listed before it (entries must be sorted by path)");
        e.parent_id = p->second;
        auto created = cat_.CreateEntry(e);
        Check(created.status(), ew);
        id = created->id;
        if (e.type == EntryType::kFolder) folders[path] = id;
      }
      TagsAndAnnotations(ej, Entity::kEntry, id, ew);
    }
  }

  Catalog& cat_;
  bool format_seen_ = false, version_seen_ = false;
  std::map<std::string, int64_t> species_, samples_, dyes_;
  int64_t slides_loaded_ = 0;
};

int RunLoad(Context& ctx, const LoadOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) {
    spdlog::error("cannot read {}: {}", o.file, std::strerror(errno));
    return kExitUsage;
  }
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
  auto o = std::make_shared<DumpOptions>();
  auto* sub = app.add_subcommand(
      "dump",
      "Write the whole catalog (records with their natural keys, not the objects) as one JSON\n"
      "document, in a deterministic order and format.");
  sub->add_option("-o,--output", o->output, "Write to FILE instead of standard output");
  out.push_back({sub, [o](Context& ctx) { return RunDump(ctx, *o); }});
}

void AddLoadCommand(CLI::App& app, Commands& out) {
  auto o = std::make_shared<LoadOptions>();
  auto* sub = app.add_subcommand(
      "load",
      "Load a document written by 'samplectl dump' into an EMPTY catalog (all or nothing).");
  sub->add_option("FILE", o->file, "The dump document")->required();
  out.push_back({sub, [o](Context& ctx) { return RunLoad(ctx, *o); }});
}

}  // namespace samplefs::ctl
