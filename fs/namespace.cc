#include "fs/namespace.h"

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "catalog/names.h"
#include "fs/sidecar.h"

namespace samplefs::fs {

namespace {

constexpr int kPage = 256;

NodeSpec SidecarSpec(Entity e, int64_t id) {
  NodeSpec s = Spec(NodeKind::kSidecar, id);
  s.entity = e;
  return s;
}

NodeSpec SlideListSpec(const std::string& key, const std::string& value) {
  // The record's own name, not a pattern: '*' and '|' in it are literal.
  return Spec(NodeKind::kSlideList, 0, Query{{{key, QueryLiteral(value)}}}.ToString());
}

// The slides/ of a record looked up as `record`: those whose `key` is its
// `name` field; the lookup's error if it failed.
template <class T>
Result<NodeSpec> SlideListOf(const std::string& key, const Result<T>& record, std::string T::*name) {
  if (!record.ok()) return record.status();
  return SlideListSpec(key, (*record).*name);
}

Status NotFound(const std::string& name) {
  return Status(Code::kNotFound, "'" + name + "' does not exist");
}

// Maps an entry record to its node kind.
NodeSpec EntrySpec(const Entry& e) {
  switch (e.type) {
    case EntryType::kFolder: return Spec(NodeKind::kFolder, e.id);
    case EntryType::kSymlink: return Spec(NodeKind::kSymlink, e.id);
    case EntryType::kFile: return Spec(NodeKind::kFile, e.id);
  }
  return Spec(NodeKind::kFile, e.id);
}

// Returns the spec if `r` found something, kNotFound otherwise.
template <class T, class F>
Result<NodeSpec> Found(const Result<T>& r, F make) {
  if (!r.ok()) return r.status();
  return make(*r);
}

// The fixed (non-record) children of a node, in listing order. Lookup()
// resolves each of them, so listing and lookup can never disagree.
std::vector<std::string> FixedNames(NodeKind k) {
  switch (k) {
    case NodeKind::kRoot:
      return {"species", "samples", "slides", "dyes", "structures", "tags", "query", ".samplefs"};
    case NodeKind::kMetaDir: return {"status.json", "errors"};
    case NodeKind::kSpecies: return {"species.json", "slides"};
    case NodeKind::kSample: return {"sample.json", "slides"};
    case NodeKind::kDye: return {"dye.json", "slides"};
    case NodeKind::kStructure: return {"slides"};
    case NodeKind::kSlide: return {"slide.json", "images"};
    case NodeKind::kImage: return {"image.json"};
    case NodeKind::kTag: return {"slides", "images", "files"};
    case NodeKind::kQuery: return {"slides", "images"};
    default: return {};
  }
}

// Fixed children whose spec needs no catalog access.
std::optional<NodeSpec> StaticChild(const NodeSpec& n, const std::string& name) {
  if (auto e = RecordDirEntity(n.kind); e && name == SidecarName(*e)) return SidecarSpec(*e, n.record_id);
  switch (n.kind) {
    case NodeKind::kRoot:
      if (name == "species") return Spec(NodeKind::kSpeciesView);
      if (name == "samples") return Spec(NodeKind::kSamplesView);
      if (name == "slides") return Spec(NodeKind::kSlidesView);
      if (name == "dyes") return Spec(NodeKind::kDyesView);
      if (name == "structures") return Spec(NodeKind::kStructuresView);
      if (name == "tags") return Spec(NodeKind::kTagsView);
      if (name == "query") return Spec(NodeKind::kQueryView);
      if (name == ".samplefs") return Spec(NodeKind::kMetaDir);
      break;
    case NodeKind::kMetaDir:
      if (name == "status.json") return Spec(NodeKind::kStatusFile);
      if (name == "errors") return Spec(NodeKind::kErrorsFile);
      break;
    case NodeKind::kSlide:
      if (name == "images") return Spec(NodeKind::kImages, n.record_id);
      break;
    case NodeKind::kTag:
      if (name == "images") return Spec(NodeKind::kTagImages, n.record_id);
      if (name == "files") return Spec(NodeKind::kTagFiles, n.record_id);
      break;
    case NodeKind::kQuery:
      if (name == "slides") return Spec(NodeKind::kSlideList, 0, n.text);
      if (name == "images") return Spec(NodeKind::kQueryImages, 0, n.text);
      break;
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace

struct stat EntryAttr(const Entry& e, const MountIdentity& id) {
  struct stat st {};
  st.st_uid = id.owners && e.uid >= 0 ? static_cast<uid_t>(e.uid) : id.uid;
  st.st_gid = id.owners && e.gid >= 0 ? static_cast<gid_t>(e.gid) : id.gid;
  // A folder has the links of a local filesystem's: its name, its "." and
  // each subfolder's ".." (the catalog keeps the count; issue 18).
  st.st_nlink = e.type == EntryType::kFolder ? static_cast<nlink_t>(2 + e.subfolders) : 1;
  // The size tools use for their buffers: cp then writes 1 MiB at a time
  // (FUSE's largest write). A folder says 4 KiB, so that readdir(3) reads
  // 32 KiB of names per getdents (glibc takes max(st_blksize, 32 KiB)):
  // an `ls -l` of a folder listed lean before stats one getdents' worth
  // with LOOKUPs before the rest is listed again with attributes (OpLookup).
  st.st_blksize = e.type == EntryType::kFolder ? 4096 : 1024 * 1024;
  mode_t type = e.type == EntryType::kFolder ? S_IFDIR : e.type == EntryType::kSymlink ? S_IFLNK : S_IFREG;
  st.st_mode = type | (e.type == EntryType::kSymlink ? 0777 : (e.mode & 07777));
  st.st_size = e.type == EntryType::kSymlink ? static_cast<off_t>(e.target.size())
               : e.type == EntryType::kFile ? static_cast<off_t>(e.size) : 0;
  st.st_blocks = (st.st_size + 511) / 512;
  // files/ of an image is created with no time (0): it shows the mount's
  // until an entry is created, removed or renamed in it.
  int64_t ns = e.parent_id != 0 || e.mtime_ns != 0 ? e.mtime_ns : static_cast<int64_t>(id.mount_time) * 1000000000;
  // ctime is its own (schema v4): 0 only in a record no change has touched.
  int64_t cns = e.ctime_ns != 0 ? e.ctime_ns : ns;
  st.st_mtim = NsToTimespec(ns);
  st.st_ctim = NsToTimespec(cns);
  // atime is its own (schema v7); files/ of an image shows its mtime until
  // something sets it.
  st.st_atim = e.parent_id != 0 || e.atime_ns != 0 ? NsToTimespec(e.atime_ns) : st.st_mtim;
  return st;
}

time_t ParseIso8601(const std::string& s) {
  std::tm tm{};
  if (s.size() < 10) return 0;
  if (sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec) < 3)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

Result<Query> Namespace::FilterOf(const NodeSpec& n) { return Query::Parse(n.text); }

static Status NameFits(const std::string& name) {
  if (name.size() <= kMaxNameBytes) return Status::Ok();
  return Status(Code::kNameTooLong, "name is " + std::to_string(name.size()) + " bytes, the limit is 255");
}

Result<Entry> Namespace::LookupEntry(const NodeSpec& folder, const std::string& name) {
  if (folder.kind != NodeKind::kFolder) return Status(Code::kInvalidArgument, "not a folder");
  SFS_RETURN_IF_ERROR(NameFits(name));
  auto e = catalog_.EntryByName(folder.record_id, name);
  if (!e.ok() && e.status().is_not_found()) return NotFound(name);
  return e;
}

NodeSpec Namespace::SpecOf(const Entry& e) { return EntrySpec(e); }

Result<NodeSpec> Namespace::Lookup(const NodeSpec& parent, const std::string& name) {
  SFS_RETURN_IF_ERROR(NameFits(name));
  if (auto spec = StaticChild(parent, name)) return *spec;
  if (auto trash = LookupTrash(parent, name)) return std::move(*trash);

  switch (parent.kind) {
    case NodeKind::kSpeciesView:
      return Found(catalog_.SpeciesByName(name), [](const Species& s) { return Spec(NodeKind::kSpecies, s.id); });
    case NodeKind::kSamplesView:
      return Found(catalog_.SampleByName(name), [](const Sample& s) { return Spec(NodeKind::kSample, s.id); });
    case NodeKind::kDyesView:
      return Found(catalog_.DyeByName(name), [](const Dye& d) { return Spec(NodeKind::kDye, d.id); });
    case NodeKind::kTagsView:
      return Found(catalog_.TagByName(name), [](const Tag& t) { return Spec(NodeKind::kTag, t.id); });
    case NodeKind::kStructuresView: {
      SFS_ASSIGN_OR_RETURN(auto all, catalog_.ListStructures());
      for (const auto& s : all)
        if (s == name) return Spec(NodeKind::kStructure, 0, s);
      return NotFound(name);
    }
    case NodeKind::kQueryView: {
      // Any name is a query; a malformed one fails with the parser's reason,
      // and a misspelt key (neither a field nor an annotation key) with
      // ENOENT and the known keys (both go to .samplefs/errors).
      SFS_ASSIGN_OR_RETURN(Query q, Query::Parse(name));
      SFS_RETURN_IF_ERROR(catalog_.CheckQueryKeys(q));
      return Spec(NodeKind::kQuery, 0, name);
    }
    case NodeKind::kSpecies:
    case NodeKind::kSample:
    case NodeKind::kDye:
    case NodeKind::kStructure:
    case NodeKind::kTag: {
      // slides/: the query `<kind>=<the record's name>`.
      if (name != "slides") return NotFound(name);
      const int64_t id = parent.record_id;
      switch (parent.kind) {
        case NodeKind::kSpecies: return SlideListOf("species", catalog_.SpeciesById(id), &Species::name);
        case NodeKind::kSample: return SlideListOf("sample", catalog_.SampleById(id), &Sample::name);
        case NodeKind::kDye: return SlideListOf("dye", catalog_.DyeById(id), &Dye::short_name);
        case NodeKind::kTag: return SlideListOf("tag", catalog_.TagById(id), &Tag::name);
        default: return SlideListSpec("structure", parent.text);
      }
    }
    case NodeKind::kSlidesView:
      return Found(catalog_.SlideByReference(name), [](const Slide& s) { return Spec(NodeKind::kSlide, s.id); });
    case NodeKind::kSlideList: {
      SFS_ASSIGN_OR_RETURN(Slide s, catalog_.SlideByReference(name));
      SFS_ASSIGN_OR_RETURN(Query q, FilterOf(parent));
      SFS_ASSIGN_OR_RETURN(bool match, catalog_.SlideMatches(q, s.id));
      if (!match) return NotFound(name);
      return Spec(NodeKind::kSlide, s.id);
    }
    case NodeKind::kImages:
      return Found(catalog_.ImageByName(parent.record_id, name),
                   [](const Image& i) { return Spec(NodeKind::kImage, i.id); });
    case NodeKind::kImage:
      if (name == "files") {
        SFS_ASSIGN_OR_RETURN(Entry root, catalog_.FilesRoot(parent.record_id));
        return Spec(NodeKind::kFolder, root.id);
      }
      return NotFound(name);
    case NodeKind::kFolder:
      return Found(catalog_.EntryByName(parent.record_id, name), EntrySpec);
    case NodeKind::kTagImages:
      return LookupTaggedImage(parent.record_id, name);
    case NodeKind::kQueryImages:
      return LookupQueryImage(parent.text, name);
    case NodeKind::kTagFiles:
      return LookupTaggedFile(parent.record_id, name);
    default:
      return NotFound(name);
  }
}

// Names of records outside their parent ("<slide>:<image>", and tagged
// files' "<slide>:<image>:<path>") can be longer than NAME_MAX; the kernel
// looks such a name up once its readdirplus dentry expires, and gets
// ENAMETOOLONG for a name it listed. Those become "<id>:" followed by the
// end of the record's own name (its extension kept), cut at a UTF-8
// character boundary, which always fits and stays unique.
static std::string ShortName(int64_t id, const std::string& own) {
  std::string prefix = std::to_string(id) + ":";
  size_t room = kMaxNameBytes - prefix.size();
  size_t start = own.size() > room ? own.size() - room : 0;
  while (start < own.size() && (static_cast<unsigned char>(own[start]) & 0xC0) == 0x80) ++start;
  return prefix + own.substr(start);
}

static std::string FitName(const std::string& name, int64_t id, const std::string& own) {
  return name.size() <= kMaxNameBytes ? name : ShortName(id, own);
}

static std::string SlideImageName(const Slide& s, const Image& i) {
  return FitName(s.reference + ":" + i.name, i.id, i.name);
}

// Images outside their slide are named "<slide>:<image>"; both parts may
// contain ':', so every split point is tried. The short form "<image
// id>:<end of image name>" (ShortName) is tried last: the name of an image
// whose full name is too long or is taken by another image (ListedName).
template <class Accept>
static Result<NodeSpec> LookupSlideImageName(Catalog& c, const std::string& name, Accept accept) {
  for (size_t pos = name.find(':'); pos != std::string::npos; pos = name.find(':', pos + 1)) {
    auto slide = c.SlideByReference(name.substr(0, pos));
    if (!slide.ok()) continue;
    auto image = c.ImageByName(slide->id, name.substr(pos + 1));
    if (!image.ok()) continue;
    SFS_ASSIGN_OR_RETURN(bool ok, accept(*slide, *image));
    if (ok) return Spec(NodeKind::kImage, image->id);
  }
  size_t colon = name.find(':');
  if (colon > 0 && colon <= 18 && name.find_first_not_of("0123456789") == colon) {
    auto image = c.ImageById(std::stoll(name.substr(0, colon)));
    if (image.ok()) {
      SFS_ASSIGN_OR_RETURN(Slide slide, c.SlideById(image->slide_id));
      if (ShortName(image->id, image->name) == name) {
        SFS_ASSIGN_OR_RETURN(bool ok, accept(slide, *image));
        if (ok) return Spec(NodeKind::kImage, image->id);
      }
    }
  }
  return NotFound(name);
}

Result<NodeSpec> Namespace::LookupTaggedImage(int64_t tag_id, const std::string& name) {
  return LookupSlideImageName(catalog_, name, [&](const Slide&, const Image& i) -> Result<bool> {
    SFS_ASSIGN_OR_RETURN(Tag t, catalog_.TagById(tag_id));
    SFS_ASSIGN_OR_RETURN(auto tags, catalog_.TagsOf(Entity::kImage, i.id));
    return std::find(tags.begin(), tags.end(), t.name) != tags.end();
  });
}

Result<NodeSpec> Namespace::LookupQueryImage(const std::string& expr, const std::string& name) {
  SFS_ASSIGN_OR_RETURN(Query q, Query::Parse(expr));
  return LookupSlideImageName(catalog_, name, [&](const Slide& s, const Image&) {
    return catalog_.SlideMatches(q, s.id);
  });
}

// The name a record is listed under outside its parent. Flat names can be
// shared when a part contains ':' (image "C" of slide "A:B" and image "B:C"
// of slide "A" both read "A:B:C"); `lookup` resolves such a name to one
// record, and the others are listed under their short form, so a listing
// never holds one name twice and every listed name looks up to its record.
// Only names with ':' inside a part need the extra lookup.
template <class Lookup>
static Result<std::string> ListedName(const std::string& name, bool colon_in_parts, int64_t id,
                                      const std::string& own, Lookup lookup) {
  if (!colon_in_parts) return name;
  auto found = lookup(name);
  if (found.ok() && found->record_id == id) return name;
  if (!found.ok() && !found.status().is_not_found()) return found.status();
  return ShortName(id, own);
}

// Tagged files are listed flat as "<slide>:<image>:<path with '/' as ':'>".
Result<std::string> Namespace::TaggedFileName(const Entry& e, bool* colon_in_parts) {
  bool colons = e.name.find(':') != std::string::npos;
  std::string path = e.name;
  int64_t parent = e.parent_id;
  while (parent) {
    SFS_ASSIGN_OR_RETURN(Entry p, catalog_.EntryById(parent));
    if (p.parent_id == 0) break;
    colons |= p.name.find(':') != std::string::npos;
    path = p.name + ":" + path;
    parent = p.parent_id;
  }
  SFS_ASSIGN_OR_RETURN(Image i, catalog_.ImageById(e.image_id));
  SFS_ASSIGN_OR_RETURN(Slide s, catalog_.SlideById(i.slide_id));
  colons |= (s.reference + i.name).find(':') != std::string::npos;
  if (colon_in_parts) *colon_in_parts = colons;
  return FitName(s.reference + ":" + i.name + ":" + path, e.id, e.name);
}

Result<NodeSpec> Namespace::LookupTaggedFile(int64_t tag_id, const std::string& name) {
  // Tags on files are few compared with files: a scan of the tag's files.
  // When files share a flat name (ListedName), the one without ':' inside
  // its parts has it (its name is unique among such files), else the
  // oldest; the others answer to their short form.
  int64_t after = 0;
  std::optional<NodeSpec> first, short_form;
  for (;;) {
    SFS_ASSIGN_OR_RETURN(auto page, catalog_.ListTaggedEntries(tag_id, after, kPage));
    for (const auto& e : page) {
      bool colons = false;
      SFS_ASSIGN_OR_RETURN(std::string n, TaggedFileName(e, &colons));
      if (n == name && !colons) return EntrySpec(e);
      if (n == name && !first) first = EntrySpec(e);
      if (!short_form && ShortName(e.id, e.name) == name) short_form = EntrySpec(e);
      after = e.id;
    }
    if (static_cast<int>(page.size()) < kPage) break;
  }
  if (first) return *first;
  if (short_form) return *short_form;
  return NotFound(name);
}

Result<struct stat> Namespace::Attr(const NodeSpec& n) {
  struct stat st {};
  st.st_uid = id_.uid;
  st.st_gid = id_.gid;
  st.st_nlink = 1;
  st.st_blksize = 128 * 1024;
  time_t t = id_.mount_time;
  auto set_time = [&](time_t sec, long nsec = 0) {
    st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec = sec;
    st.st_mtim.tv_nsec = st.st_ctim.tv_nsec = st.st_atim.tv_nsec = nsec;
  };
  set_time(t);
  if (auto trash = TrashAttr(n)) return std::move(*trash);
  switch (n.kind) {
    case NodeKind::kFile:
    case NodeKind::kSymlink:
    case NodeKind::kFolder: {
      SFS_ASSIGN_OR_RETURN(Entry e, catalog_.EntryById(n.record_id));
      return EntryAttr(e, id_);
    }
    case NodeKind::kSidecar:
    case NodeKind::kStatusFile: {
      SFS_ASSIGN_OR_RETURN(std::string body, Render(n));
      st.st_mode = S_IFREG | (n.kind == NodeKind::kSidecar ? 0644 : 0444);
      st.st_size = static_cast<off_t>(body.size());
      break;
    }
    case NodeKind::kErrorsFile:
      st.st_mode = S_IFREG | 0444;
      break;  // size filled in by the FUSE layer, which owns the error log
    case NodeKind::kSlide: {
      SFS_ASSIGN_OR_RETURN(Slide s, catalog_.SlideById(n.record_id));
      st.st_mode = S_IFDIR | 0755;
      set_time(ParseIso8601(s.modified));
      break;
    }
    case NodeKind::kImage: {
      SFS_ASSIGN_OR_RETURN(Image i, catalog_.ImageById(n.record_id));
      st.st_mode = S_IFDIR | 0755;
      set_time(ParseIso8601(i.acquired));
      break;
    }
    // The record's directory (kImages: its slide's images/), while the
    // record exists.
    case NodeKind::kSpecies:
    case NodeKind::kSample:
    case NodeKind::kDye:
    case NodeKind::kTag:
    case NodeKind::kImages: {
      Status exists = n.kind == NodeKind::kSpecies ? catalog_.SpeciesById(n.record_id).status()
                      : n.kind == NodeKind::kSample ? catalog_.SampleById(n.record_id).status()
                      : n.kind == NodeKind::kDye    ? catalog_.DyeById(n.record_id).status()
                      : n.kind == NodeKind::kTag    ? catalog_.TagById(n.record_id).status()
                                                    : catalog_.SlideById(n.record_id).status();
      SFS_RETURN_IF_ERROR(exists);
      st.st_mode = S_IFDIR | 0755;
      break;
    }
    // Directories where creating something has a meaning are writable.
    case NodeKind::kSpeciesView:
    case NodeKind::kSamplesView:
    case NodeKind::kSlidesView:
    case NodeKind::kDyesView:
    case NodeKind::kTagsView:
      st.st_mode = S_IFDIR | 0755;
      break;
    case NodeKind::kSlideList: {
      // species/<sp>/slides and samples/<s>/slides create slides; the
      // other listings are views only.
      SFS_ASSIGN_OR_RETURN(Query q, FilterOf(n));
      bool creates = q.terms.size() == 1 && (q.terms[0].key == "species" || q.terms[0].key == "sample") &&
                     q.terms[0].op == QueryOp::kEquals && !q.terms[0].negated;
      st.st_mode = S_IFDIR | (creates ? 0755 : 0555);
      break;
    }
    default:
      st.st_mode = S_IFDIR | 0555;
      break;
  }
  st.st_blocks = (st.st_size + 511) / 512;
  return st;
}

Result<std::string> Namespace::Render(const NodeSpec& n) {
  if (n.kind == NodeKind::kSidecar) return RenderSidecar(catalog_, n.entity, n.record_id);
  if (n.kind == NodeKind::kTrashInfo) return RenderTrashInfo(n.record_id);
  if (n.kind == NodeKind::kStatusFile) {
    SFS_ASSIGN_OR_RETURN(CatalogStats s, catalog_.Stats());
    nlohmann::ordered_json j = {
        {"samplefs", "0.1.0"},
        {"schema_version", catalog_.schema_version()},
        {"engine", catalog_.db().engine()},
        {"catalog", catalog_.db().location()},
        {"mounted_at", static_cast<int64_t>(id_.mount_time)},
        {"species", s.species}, {"samples", s.samples}, {"dyes", s.dyes},
        {"slides", s.slides}, {"images", s.images}, {"files", s.files},
        {"folders", s.folders}, {"tags", s.tags}, {"file_bytes", s.file_bytes},
        {"stored_bytes", s.distinct_bytes},
        // The trash, apart from the live counts above (stored_bytes
        // includes it until the trash is emptied and gc runs).
        {"trash", {{"items", s.trash_items}, {"files", s.trashed_files}, {"folders", s.trashed_folders},
                   {"file_bytes", s.trashed_bytes}}}};
    if (status_hook_) status_hook_(j);
    return j.dump(2) + "\n";
  }
  return Status(Code::kInvalidArgument, "not a generated file");
}

Status Namespace::List(const NodeSpec& dir, uint64_t cookie,
                       const std::function<bool(const DirEntry&)>& emit, int fits) {
  // Rows fetched per catalog query: no more than the reply can hold.
  // Kernels that ask readdirplus for one page (~23 entries) made a fixed
  // 256-row page read 11 times the rows used; the 6.18 kernel here asks
  // for 128 KiB (~750 entries) and gets full pages either way.
  const int limit = fits > 0 ? std::min(fits, kPage) : kPage;
  if (auto trash = ListTrash(dir, cookie, emit)) return *trash;
  if (cookie < kRecordCookieBase) {
    auto fixed = FixedNames(dir.kind);
    for (size_t i = cookie - kFirstCookie; i < fixed.size(); ++i) {
      SFS_ASSIGN_OR_RETURN(NodeSpec spec, Lookup(dir, fixed[i]));
      if (!emit({fixed[i], spec, kFirstCookie + i + 1})) return Status::Ok();
    }
    cookie = kRecordCookieBase;
  }
  int64_t after = static_cast<int64_t>(cookie - kRecordCookieBase);
  auto next = [](int64_t id) { return kRecordCookieBase + static_cast<uint64_t>(id); };

  // Pages of records; each call to `page` returns false when done or full.
  auto run = [&](auto fetch, auto to_entry) -> Status {
    for (;;) {
      auto page = fetch(after);
      if (!page.ok()) return page.status();
      if (page->empty()) return Status::Ok();
      for (const auto& rec : *page) {
        auto e = to_entry(rec);
        if (!e.ok()) return e.status();
        if (!emit(*e)) return Status::Ok();
        after = rec.id;
      }
      if (static_cast<int>(page->size()) < limit) return Status::Ok();
    }
  };

  // An image listed outside its slide (tags/, query/) is named
  // "<slide>:<image>"; `lookup` finds it back by that name.
  auto image_entry = [&](const Image& i, auto lookup) -> Result<DirEntry> {
    SFS_ASSIGN_OR_RETURN(Slide s, catalog_.SlideById(i.slide_id));
    SFS_ASSIGN_OR_RETURN(std::string n,
                         ListedName(SlideImageName(s, i), (s.reference + i.name).find(':') != std::string::npos,
                                    i.id, i.name, lookup));
    return DirEntry{n, Spec(NodeKind::kImage, i.id), next(i.id)};
  };

  switch (dir.kind) {
    case NodeKind::kRoot: {
      // .Trash-<uid> of every uid with something in its trash, as a disk
      // shows each user's (each 0700, its owner's); docs/DECISIONS.md
      // "Trash". The key is uid + 1 (cookies are "after this key").
      SFS_ASSIGN_OR_RETURN(auto uids, catalog_.TrashUids());
      for (int64_t uid : uids)
        if (uid + 1 > after && !emit({".Trash-" + std::to_string(uid), Spec(NodeKind::kTrashDir, uid), next(uid + 1)}))
          return Status::Ok();
      return Status::Ok();
    }
    case NodeKind::kSpeciesView:
      return run([&](int64_t a) { return catalog_.ListSpecies(a, limit); },
                 [&](const Species& s) -> Result<DirEntry> { return DirEntry{s.name, Spec(NodeKind::kSpecies, s.id), next(s.id)}; });
    case NodeKind::kSamplesView:
      return run([&](int64_t a) { return catalog_.ListSamples(0, a, limit); },
                 [&](const Sample& s) -> Result<DirEntry> { return DirEntry{s.name, Spec(NodeKind::kSample, s.id), next(s.id)}; });
    case NodeKind::kDyesView:
      return run([&](int64_t a) { return catalog_.ListDyes(a, limit); },
                 [&](const Dye& d) -> Result<DirEntry> { return DirEntry{d.short_name, Spec(NodeKind::kDye, d.id), next(d.id)}; });
    case NodeKind::kTagsView:
      return run([&](int64_t a) { return catalog_.ListTags(a, limit); },
                 [&](const Tag& t) -> Result<DirEntry> { return DirEntry{t.name, Spec(NodeKind::kTag, t.id), next(t.id)}; });
    case NodeKind::kSlidesView:
    case NodeKind::kSlideList: {
      Query q;
      if (dir.kind == NodeKind::kSlideList) {
        SFS_ASSIGN_OR_RETURN(q, FilterOf(dir));
      }
      return run([&](int64_t a) { return catalog_.ListSlides(q, a, limit); },
                 [&](const Slide& s) -> Result<DirEntry> { return DirEntry{s.reference, Spec(NodeKind::kSlide, s.id), next(s.id)}; });
    }
    case NodeKind::kImages:
      return run([&](int64_t a) { return catalog_.ListImages(dir.record_id, a, limit); },
                 [&](const Image& i) -> Result<DirEntry> { return DirEntry{i.name, Spec(NodeKind::kImage, i.id), next(i.id)}; });
    case NodeKind::kImage: {
      // files/ comes after image.json; its cookie is the root entry's id.
      SFS_ASSIGN_OR_RETURN(Entry root, catalog_.FilesRoot(dir.record_id));
      if (after < root.id) emit({"files", Spec(NodeKind::kFolder, root.id), next(root.id)});
      return Status::Ok();
    }
    case NodeKind::kFolder:
      return run([&](int64_t a) { return catalog_.ListEntries(dir.record_id, a, limit); },
                 [&](const Entry& e) -> Result<DirEntry> {
                   return DirEntry{e.name, EntrySpec(e), next(e.id), EntryAttr(e, id_)};
                 });
    case NodeKind::kStructuresView: {
      SFS_ASSIGN_OR_RETURN(auto all, catalog_.ListStructures());
      // Structures have no ids, and a position in the sorted list shifts
      // when a structure comes or goes during a listing (entries repeated
      // or skipped). The cookie is a 62-bit FNV-1a hash of the name and the
      // listing runs in hash order, so it resumes right after the last entry
      // returned whatever changed (a collision, p ~ 2^-62, would hide one).
      auto key = [](const std::string& s) {
        uint64_t h = 14695981039346656037ull;
        for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
        return static_cast<int64_t>((h >> 2) + 1);
      };
      std::vector<std::pair<int64_t, std::string>> keyed;
      for (auto& s : all) keyed.emplace_back(key(s), std::move(s));
      std::sort(keyed.begin(), keyed.end());
      for (const auto& [k, s] : keyed)
        if (k > after && !emit({s, Spec(NodeKind::kStructure, 0, s), next(k)})) return Status::Ok();
      return Status::Ok();
    }
    case NodeKind::kTagImages: {
      return run(
          [&](int64_t a) -> Result<std::vector<Image>> {
            SFS_ASSIGN_OR_RETURN(auto ids, catalog_.TaggedRecords(Entity::kImage, dir.record_id, a, limit));
            std::vector<Image> out;
            for (int64_t id : ids) {
              SFS_ASSIGN_OR_RETURN(Image i, catalog_.ImageById(id));
              out.push_back(i);
            }
            return out;
          },
          [&](const Image& i) {
            return image_entry(i, [&](const std::string& c) { return LookupTaggedImage(dir.record_id, c); });
          });
    }
    case NodeKind::kTagFiles:
      return run([&](int64_t a) { return catalog_.ListTaggedEntries(dir.record_id, a, limit); },
                 [&](const Entry& e) -> Result<DirEntry> {
                   bool colons = false;
                   SFS_ASSIGN_OR_RETURN(std::string flat, TaggedFileName(e, &colons));
                   SFS_ASSIGN_OR_RETURN(std::string n, ListedName(flat, colons, e.id, e.name, [&](const std::string& c) {
                                          return LookupTaggedFile(dir.record_id, c);
                                        }));
                   return DirEntry{n, EntrySpec(e), next(e.id)};
                 });
    case NodeKind::kQueryImages: {
      SFS_ASSIGN_OR_RETURN(Query q, Query::Parse(dir.text));
      return run([&](int64_t a) { return catalog_.ListImagesMatching(q, a, limit); },
                 [&](const Image& i) {
                   return image_entry(i, [&](const std::string& c) { return LookupQueryImage(dir.text, c); });
                 });
    }
    default:
      return Status::Ok();
  }
}

}  // namespace samplefs::fs
