// The namespace's changes: mkdir, rmdir, create, symlink, unlink and rename
// as records (SPEC "Creating and changing records with file tools").
#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "catalog/names.h"
#include "fs/namespace.h"
#include "fs/sidecar.h"

namespace samplefs::fs {

namespace {

Status NoMeaning(const std::string& what) { return Status(Code::kPermission, what); }

// The single `key=value` of a slides/ listing that can create slides.
std::optional<QueryTerm> CreatingTerm(const NodeSpec& n) {
  if (n.kind != NodeKind::kSlideList) return std::nullopt;
  auto q = Query::Parse(n.text);
  if (!q.ok() || q->terms.size() != 1) return std::nullopt;
  auto t = q->terms[0];
  if (t.key != "species" && t.key != "sample") return std::nullopt;
  if (t.op != QueryOp::kEquals || t.negated) return std::nullopt;
  auto alts = QueryAlternatives(t.value);
  if (alts.size() != 1 || alts[0].wildcard) return std::nullopt;
  t.value = alts[0].text;  // the name itself
  return t;
}

// A new entry of `type` named `name` in folder `parent`, modified now
// (`what`, "files" or "symlinks", names them when refused).
Result<Entry> NewEntry(const NodeSpec& parent, const std::string& name, EntryType type, const char* what) {
  SFS_RETURN_IF_ERROR(ValidateName(name));
  if (parent.kind != NodeKind::kFolder)
    return NoMeaning(std::string(what) + " can only be created inside an image's files/, not in " +
                     NodeKindName(parent.kind));
  Entry e;
  e.parent_id = parent.record_id;
  e.name = name;
  e.type = type;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  e.mtime_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  return e;
}

}  // namespace

Result<NodeSpec> Namespace::Mkdir(const NodeSpec& parent, const std::string& name, mode_t mode,
                                  const std::string& user, Owner owner) {
  SFS_RETURN_IF_ERROR(ValidateName(name));
  switch (parent.kind) {
    case NodeKind::kSpeciesView: {
      Species s;
      s.name = name;
      SFS_ASSIGN_OR_RETURN(s, catalog_.CreateSpecies(s));
      return Spec(NodeKind::kSpecies, s.id);
    }
    case NodeKind::kSamplesView: {
      // A sample needs a species; until sample.json says which, it belongs
      // to "Unspecified" (created on first use).
      Transaction txn(catalog_);
      SFS_RETURN_IF_ERROR(txn.status());
      auto sp = catalog_.SpeciesByName("Unspecified");
      if (!sp.ok() && sp.status().is_not_found()) {
        Species u;
        u.name = "Unspecified";
        u.notes = "samples created with mkdir before their species was set";
        sp = catalog_.CreateSpecies(u);
      }
      if (!sp.ok()) return sp.status();
      Sample s;
      s.name = name;
      s.species_id = sp->id;
      SFS_ASSIGN_OR_RETURN(s, catalog_.CreateSample(s));
      SFS_RETURN_IF_ERROR(txn.Commit());
      return Spec(NodeKind::kSample, s.id);
    }
    case NodeKind::kDyesView: {
      Dye d;
      d.short_name = name;
      SFS_ASSIGN_OR_RETURN(d, catalog_.CreateDye(d));
      return Spec(NodeKind::kDye, d.id);
    }
    case NodeKind::kTagsView: {
      SFS_ASSIGN_OR_RETURN(Tag t, catalog_.CreateTag(name));
      return Spec(NodeKind::kTag, t.id);
    }
    case NodeKind::kSlideList: {
      auto term = CreatingTerm(parent);
      if (!term)
        return NoMeaning("slides are created under samples/<sample>/slides/ or "
                         "species/<species>/slides/, not in this view");
      Transaction txn(catalog_);
      SFS_RETURN_IF_ERROR(txn.status());
      int64_t sample_id = 0;
      if (term->key == "sample") {
        SFS_ASSIGN_OR_RETURN(Sample sa, catalog_.SampleByName(term->value));
        sample_id = sa.id;
      } else {
        // species/<sp>/slides/<S>: the slide gets a new sample of that
        // species, named after the slide (or "<slide>-2", ... if taken).
        SFS_ASSIGN_OR_RETURN(Species sp, catalog_.SpeciesByName(term->value));
        Sample sa;
        sa.species_id = sp.id;
        sa.notes = "created with slide " + name;
        for (int n = 1;; ++n) {
          sa.name = n == 1 ? name : name + "-" + std::to_string(n);
          auto created = catalog_.CreateSample(sa);
          if (created.ok()) { sample_id = created->id; break; }
          if (!created.status().is_exists() || n > 100) return created.status();
        }
      }
      Slide s;
      s.reference = name;
      s.sample_id = sample_id;
      s.creator = user;
      SFS_ASSIGN_OR_RETURN(s, catalog_.CreateSlide(s));
      SFS_RETURN_IF_ERROR(txn.Commit());
      return Spec(NodeKind::kSlide, s.id);
    }
    case NodeKind::kSlidesView:
      return NoMeaning("a slide needs a sample: mkdir samples/<sample>/slides/" + name +
                       " or species/<species>/slides/" + name);
    case NodeKind::kImages: {
      Image i;
      i.slide_id = parent.record_id;
      i.name = name;
      i.user = user;
      SFS_ASSIGN_OR_RETURN(i, catalog_.CreateImage(i));
      return Spec(NodeKind::kImage, i.id);
    }
    case NodeKind::kFolder: {
      Entry e;
      e.parent_id = parent.record_id;
      e.name = name;
      e.type = EntryType::kFolder;
      e.mode = mode & 07777;
      // A folder made in a setgid folder is setgid too, as on a local
      // filesystem (shared group folders; issue 18 point 7). Only the
      // mount does this: an import records the source's own mode.
      SFS_ASSIGN_OR_RETURN(Entry in, catalog_.EntryById(parent.record_id));
      if (in.mode & S_ISGID) e.mode |= S_ISGID;
      e.mtime_ns = static_cast<int64_t>(std::time(nullptr)) * 1000000000;
      e.uid = owner.uid;
      e.gid = owner.gid;
      SFS_ASSIGN_OR_RETURN(e, catalog_.CreateEntry(e));
      return Spec(NodeKind::kFolder, e.id);
    }
    default:
      return NoMeaning(std::string("cannot create a directory in ") + NodeKindName(parent.kind));
  }
}

Status Namespace::Rmdir(const NodeSpec& parent, const std::string& name) {
  if (auto trash = UnlinkTrash(parent, name, true)) return *trash;
  SFS_ASSIGN_OR_RETURN(NodeSpec child, Lookup(parent, name));
  if (!child.is_dir()) return Status(Code::kNotADirectory, "'" + name + "' is not a directory");
  switch (child.kind) {
    case NodeKind::kSpecies: return catalog_.DeleteSpecies(child.record_id);
    case NodeKind::kSample: return catalog_.DeleteSample(child.record_id);
    case NodeKind::kDye: return catalog_.DeleteDye(child.record_id);
    case NodeKind::kTag:
      if (parent.kind != NodeKind::kTagsView) break;
      return catalog_.DeleteTag(child.record_id);
    case NodeKind::kSlide:
      if (parent.kind == NodeKind::kSlidesView || CreatingTerm(parent))
        return catalog_.DeleteSlide(child.record_id);
      break;
    case NodeKind::kImage:
      if (parent.kind != NodeKind::kImages) break;
      return catalog_.DeleteImage(child.record_id);
    case NodeKind::kFolder:
      if (parent.kind != NodeKind::kFolder) break;
      return catalog_.DeleteEntry(child.record_id);
    default:
      break;
  }
  return NoMeaning(std::string("cannot remove ") + NodeKindName(child.kind) + " from " +
                   NodeKindName(parent.kind));
}

Result<Entry> Namespace::CreateFile(const NodeSpec& parent, const std::string& name, mode_t mode,
                                    const std::string& empty_hash, Owner owner) {
  SFS_ASSIGN_OR_RETURN(Entry e, NewEntry(parent, name, EntryType::kFile, "files"));
  e.uid = owner.uid;
  e.gid = owner.gid;
  e.hash = empty_hash;
  e.mode = mode & 07777;
  e.kind = KindFromName(name);
  return catalog_.CreateEntry(e);
}

Result<Entry> Namespace::Symlink(const NodeSpec& parent, const std::string& name,
                                 const std::string& target, Owner owner) {
  SFS_ASSIGN_OR_RETURN(Entry e, NewEntry(parent, name, EntryType::kSymlink, "symlinks"));
  e.uid = owner.uid;
  e.gid = owner.gid;
  e.target = target;
  e.mode = 0777;
  return catalog_.CreateEntry(e);
}

Status Namespace::Unlink(const NodeSpec& parent, const std::string& name) {
  if (auto trash = UnlinkTrash(parent, name, false)) return *trash;
  // The lookup inside the deletion's transaction: one round of catalog
  // locks per file instead of two (rm -rf of thousands of files).
  Transaction txn(catalog_);
  SFS_RETURN_IF_ERROR(txn.status());
  SFS_ASSIGN_OR_RETURN(NodeSpec child, Lookup(parent, name));
  if (child.is_dir()) return Status(Code::kIsADirectory, "'" + name + "' is a directory");
  if (parent.kind != NodeKind::kFolder)
    return NoMeaning(std::string("cannot remove ") + NodeKindName(child.kind) + " '" + name + "'");
  SFS_RETURN_IF_ERROR(catalog_.DeleteEntry(child.record_id));
  return txn.Commit();
}

Result<NodeSpec> Namespace::Rename(const NodeSpec& parent, const std::string& name,
                                   const NodeSpec& new_parent, const std::string& new_name,
                                   unsigned flags) {
  constexpr unsigned kNoReplace = 1, kExchange = 2;  // RENAME_NOREPLACE, RENAME_EXCHANGE
  if (flags & kExchange) return Status(Code::kInvalidArgument, "RENAME_EXCHANGE is not supported");
  bool replace = !(flags & kNoReplace);
  SFS_RETURN_IF_ERROR(ValidateName(new_name));
  if (auto trash = RenameTrash(parent, name, new_parent, new_name)) return std::move(*trash);
  SFS_ASSIGN_OR_RETURN(NodeSpec child, Lookup(parent, name));
  auto exists = [&]() -> Status {
    auto target = Lookup(new_parent, new_name);
    if (target.ok()) {
      if (*target == child) return Status::Ok();
      return Status(Code::kAlreadyExists, "'" + new_name + "' already exists");
    }
    if (!target.status().is_not_found()) return target.status();
    return Status::Ok();
  };
  switch (child.kind) {
    case NodeKind::kFile:
    case NodeKind::kSymlink:
    case NodeKind::kFolder: {
      if (parent.kind != NodeKind::kFolder) break;
      if (new_parent.kind != NodeKind::kFolder)
        return NoMeaning("files can only be moved inside images' files/ folders");
      SFS_RETURN_IF_ERROR(catalog_.MoveEntry(child.record_id, new_parent.record_id, new_name, replace).status());
      return child;
    }
    case NodeKind::kSpecies:
    case NodeKind::kSample:
    case NodeKind::kDye:
    case NodeKind::kTag: {
      if (new_parent.kind != parent.kind)
        return NoMeaning(std::string("cannot move ") + NodeKindName(child.kind) + " out of its view");
      SFS_RETURN_IF_ERROR(exists());
      Transaction txn(catalog_);
      SFS_RETURN_IF_ERROR(txn.status());
      if (child.kind == NodeKind::kSpecies) {
        SFS_ASSIGN_OR_RETURN(Species s, catalog_.SpeciesById(child.record_id));
        s.name = new_name;
        SFS_RETURN_IF_ERROR(catalog_.UpdateSpecies(s));
      } else if (child.kind == NodeKind::kSample) {
        SFS_ASSIGN_OR_RETURN(Sample s, catalog_.SampleById(child.record_id));
        s.name = new_name;
        SFS_RETURN_IF_ERROR(catalog_.UpdateSample(s));
      } else if (child.kind == NodeKind::kDye) {
        SFS_ASSIGN_OR_RETURN(Dye d, catalog_.DyeById(child.record_id));
        d.short_name = new_name;
        SFS_RETURN_IF_ERROR(catalog_.UpdateDye(d));
      } else {
        return NoMeaning("tags cannot be renamed yet; create the new tag and retag");
      }
      SFS_RETURN_IF_ERROR(txn.Commit());
      return child;
    }
    case NodeKind::kSlide: {
      bool from_ok = parent.kind == NodeKind::kSlidesView || parent.kind == NodeKind::kSlideList;
      bool to_ok = new_parent.kind == NodeKind::kSlidesView || new_parent.kind == NodeKind::kSlideList;
      if (!from_ok || !to_ok) break;
      SFS_RETURN_IF_ERROR(exists());
      Transaction txn(catalog_);
      SFS_RETURN_IF_ERROR(txn.status());
      SFS_ASSIGN_OR_RETURN(Slide s, catalog_.SlideById(child.record_id));
      s.reference = new_name;
      if (!(new_parent == parent) && new_parent.kind == NodeKind::kSlideList) {
        auto term = CreatingTerm(new_parent);
        if (!term || term->key != "sample") {
          // Into a view that is not a sample: only allowed when the slide
          // already belongs there (a plain rename through another path).
          SFS_ASSIGN_OR_RETURN(Query q, FilterOf(new_parent));
          SFS_ASSIGN_OR_RETURN(bool match, catalog_.SlideMatches(q, s.id));
          if (!match)
            return NoMeaning("a slide moves to another sample with "
                             "mv slides/<slide> samples/<sample>/slides/");
        } else {
          SFS_ASSIGN_OR_RETURN(Sample sa, catalog_.SampleByName(term->value));
          s.sample_id = sa.id;
        }
      }
      SFS_RETURN_IF_ERROR(catalog_.UpdateSlide(s));
      SFS_RETURN_IF_ERROR(txn.Commit());
      return child;
    }
    case NodeKind::kImage: {
      if (parent.kind != NodeKind::kImages || new_parent.kind != NodeKind::kImages) break;
      SFS_RETURN_IF_ERROR(exists());
      Transaction txn(catalog_);
      SFS_RETURN_IF_ERROR(txn.status());
      SFS_ASSIGN_OR_RETURN(Image i, catalog_.ImageById(child.record_id));
      i.name = new_name;
      i.slide_id = new_parent.record_id;
      SFS_RETURN_IF_ERROR(catalog_.UpdateImage(i));
      SFS_RETURN_IF_ERROR(txn.Commit());
      return child;
    }
    default:
      break;
  }
  return NoMeaning(std::string("cannot move ") + NodeKindName(child.kind) + " '" + name +
                   "' to " + NodeKindName(new_parent.kind));
}

}  // namespace samplefs::fs
